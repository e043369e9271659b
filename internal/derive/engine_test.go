package derive

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/loglineos/loglineos/internal/span"
)

// The tests below drive an Engine with short ledgers written inline and
// compare a compact projection of the derived events:
//
//	edge T1 #0 s1 @1h seq=2        trajectory_edge of span s1, position 0
//	closed T1 timeout @8h seq=5    trajectory_closed
//	quality T1 50=20+10+20 @8h     trajectory_quality (score = mass+persistence+verification)
//	candidate T1 78>=76 @8h        diamond_candidate (score >= threshold)
//	shed 00:01 edge=3 @00:02       shed_derived for the minute starting at 00:01
//
// Trajectory ids are shown as T1, T2, ... in order of first appearance; times
// are offsets from epoch.

type sopt func(*span.Span)

func tenantOf(t string) sopt { return func(s *span.Span) { s.Tenant = t } }
func didOf(d string) sopt    { return func(s *span.Span) { s.Did = d } }
func whoOf(w string) sopt    { return func(s *span.Span) { s.Who = w } }
func confirmedBy(c ...string) sopt {
	return func(s *span.Span) { s.Status, s.ConfirmedBy = "confirmed", c }
}

func spanIn(seq uint64, id, this string, at time.Duration, opts ...sopt) Input {
	s := spanAt("t", id, this, "order.step", epoch.Add(at), "pending")
	for _, o := range opts {
		o(s)
	}
	return Input{Seq: seq, Kind: KindSpan, Span: s}
}

func tickIn(seq uint64, at time.Duration) Input {
	return Input{Seq: seq, Kind: KindTick, Tick: epoch.Add(at)}
}

func cfgIn(seq uint64, tenant string, c *TenantConfig) Input {
	return Input{Seq: seq, Kind: KindConfig, Tenant: tenant, Config: c}
}

type projector struct {
	ids map[TrajectoryID]string
}

func (p *projector) id(id TrajectoryID) string {
	if p.ids == nil {
		p.ids = map[TrajectoryID]string{}
	}
	if s, ok := p.ids[id]; ok {
		return s
	}
	s := fmt.Sprintf("T%d", len(p.ids)+1)
	p.ids[id] = s
	return s
}

func offset(ns int64) string { return time.Unix(0, ns).Sub(epoch).String() }

func (p *projector) line(ev *Event) string {
	tenant := ""
	if ev.Tenant != "t" {
		tenant = " [" + ev.Tenant + "]"
	}
	var s string
	switch ev.Type {
	case EdgeEvent:
		s = fmt.Sprintf("edge %s #%d %s", p.id(ev.Trajectory), ev.Position, ev.SrcSpanID)
	case ClosedEvent:
		s = fmt.Sprintf("closed %s %s", p.id(ev.Trajectory), ev.Reason)
	case QualityEvent:
		c := ev.Components
		s = fmt.Sprintf("quality %s %d=%d+%d+%d", p.id(ev.Trajectory), ev.Score, c.Mass, c.Persistence, c.Verification)
	case CandidateEvent:
		s = fmt.Sprintf("candidate %s %d>=%d", p.id(ev.Trajectory), ev.Score, ev.Threshold)
	case ShedEvent:
		s = "shed " + offset(ev.ShedMinute)
		for i, n := range ev.Shed {
			if n > 0 {
				s += fmt.Sprintf(" %s=%d", strings.TrimPrefix(EventType(i+1).String(), "trajectory_"), n)
			}
		}
	}
	return fmt.Sprintf("%s%s @%s seq=%d", s, tenant, offset(ev.TS), ev.Seq)
}

// run feeds inputs to e and returns the projection of everything derived.
func run(t *testing.T, e *Engine, inputs ...Input) []string {
	t.Helper()
	var p projector
	var out []string
	var evs []Event
	for _, in := range inputs {
		var err error
		evs, err = e.Step(evs[:0], in)
		if err != nil {
			t.Fatalf("Step(seq %d): %v", in.Seq, err)
		}
		for i := range evs {
			out = append(out, p.line(&evs[i]))
		}
	}
	return out
}

func newEngine(t *testing.T, mod func(*TenantConfig)) *Engine {
	t.Helper()
	c := DefaultTenantConfig()
	c.Meter.Warmup = 1000 // no candidates in these small tests unless asked
	if mod != nil {
		mod(&c)
	}
	e, err := New(Config{Default: &c})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

const h = time.Hour

// engineCase is a short ledger and the projection of what it derives, with
// the default configuration changed by mod.
type engineCase struct {
	name   string
	mod    func(*TenantConfig)
	inputs []Input
	want   []string
}

func runCases(t *testing.T, tests []engineCase) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := run(t, newEngine(t, tc.mod), tc.inputs...)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLinker(t *testing.T) {
	runCases(t, []engineCase{{
		name: "edges from position 0, close by timeout on a tick",
		inputs: []Input{
			spanIn(1, "s1", "order:1", 0, confirmedBy("pos://7")),
			spanIn(2, "s2", "order:1", 1*h, confirmedBy("pos://7")),
			spanIn(3, "s3", "order:1", 2*h, confirmedBy("bank://x")),
			tickIn(4, 8*h), // exactly last + close_timeout: not past it yet
			tickIn(5, 8*h+1),
		},
		want: []string{
			"edge T1 #0 s1 @0s seq=1",
			"edge T1 #1 s2 @1h0m0s seq=2",
			"edge T1 #2 s3 @2h0m0s seq=3",
			"closed T1 timeout @8h0m0.000000001s seq=5",
			// mass 3/10*40=12, persistence 2h/12h*30=5, verification 3/3*(3+2)/6*30=25
			"quality T1 42=12+5+25 @8h0m0.000000001s seq=5",
		},
	}, {
		name: "a span of another thing advances the clock and closes",
		inputs: []Input{
			spanIn(1, "s1", "order:1", 0),
			spanIn(2, "s2", "order:2", 7*h),
		},
		want: []string{
			"edge T1 #0 s1 @0s seq=1",
			"closed T1 timeout @7h0m0s seq=2",
			"quality T1 4=4+0+0 @7h0m0s seq=2",
			"edge T2 #0 s2 @7h0m0s seq=2",
		},
	}, {
		name: "window closes a busy trajectory at 24h of age",
		inputs: []Input{
			spanIn(1, "s1", "order:1", 0),
			spanIn(2, "s2", "order:1", 5*h),
			spanIn(3, "s3", "order:1", 10*h),
			spanIn(4, "s4", "order:1", 15*h),
			spanIn(5, "s5", "order:1", 20*h),
			spanIn(6, "s6", "order:1", 24*h+1),
		},
		want: []string{
			"edge T1 #0 s1 @0s seq=1",
			"edge T1 #1 s2 @5h0m0s seq=2",
			"edge T1 #2 s3 @10h0m0s seq=3",
			"edge T1 #3 s4 @15h0m0s seq=4",
			"edge T1 #4 s5 @20h0m0s seq=5",
			"closed T1 timeout @24h0m0.000000001s seq=6",
			"quality T1 50=20+30+0 @24h0m0.000000001s seq=6",
			"edge T2 #0 s6 @24h0m0.000000001s seq=6",
		},
	}, {
		name: "close_on_did closes by rule right after linking",
		mod:  func(c *TenantConfig) { c.Linker.CloseOnDid = []string{"order.delivered"} },
		inputs: []Input{
			spanIn(1, "s1", "order:1", 0),
			spanIn(2, "s2", "order:1", 1*h, didOf("order.delivered")),
			spanIn(3, "s3", "order:1", 2*h),
		},
		want: []string{
			"edge T1 #0 s1 @0s seq=1",
			"edge T1 #1 s2 @1h0m0s seq=2",
			"closed T1 rule @1h0m0s seq=2",
			"quality T1 11=8+3+0 @1h0m0s seq=2",
			"edge T2 #0 s3 @2h0m0s seq=3",
		},
	}, {
		name: "exceptions are never linked but still move the clock",
		inputs: []Input{
			spanIn(1, "s1", "order:1", 0),
			spanIn(2, "hb1", "heartbeat-7", 1*h),
			spanIn(3, "hb2", "heartbeat-7", 6*h+1),
			spanIn(4, "hb3", "heartbeat-8/x", 6*h+2), // '*' does not cross '/': linked
		},
		want: []string{
			"edge T1 #0 s1 @0s seq=1",
			"closed T1 timeout @6h0m0.000000001s seq=3",
			"quality T1 4=4+0+0 @6h0m0.000000001s seq=3",
			"edge T2 #0 hb3 @6h0m0.000000002s seq=4",
		},
	}, {
		name: "late span joins its open trajectory; persistence uses when",
		inputs: []Input{
			spanIn(1, "s1", "order:1", 3*h),
			spanIn(2, "s2", "order:2", 4*h),
			spanIn(3, "s3", "order:1", 0), // late: when before the clock
			tickIn(4, 11*h),
		},
		want: []string{
			"edge T1 #0 s1 @3h0m0s seq=1",
			"edge T2 #0 s2 @4h0m0s seq=2",
			"edge T1 #1 s3 @4h0m0s seq=3", // ts is the clock, not the span's when
			"closed T1 timeout @11h0m0s seq=4",
			"quality T1 16=8+8+0 @11h0m0s seq=4", // 3h of persistence
			"closed T2 timeout @11h0m0s seq=4",
			"quality T2 4=4+0+0 @11h0m0s seq=4",
		},
	}, {
		name: "late span after its trajectory closed opens a new one",
		inputs: []Input{
			spanIn(1, "s1", "order:1", 0),
			spanIn(2, "s2", "order:2", 7*h),
			spanIn(3, "s3", "order:1", 1*h),
		},
		want: []string{
			"edge T1 #0 s1 @0s seq=1",
			"closed T1 timeout @7h0m0s seq=2",
			"quality T1 4=4+0+0 @7h0m0s seq=2",
			"edge T2 #0 s2 @7h0m0s seq=2",
			"edge T3 #0 s3 @7h0m0s seq=3",
		},
	}, {
		name: "closes at one tick are ordered by deadline, then id",
		inputs: []Input{
			spanIn(1, "a", "order:a", 0),
			spanIn(2, "b", "order:b", 1*h),
			spanIn(3, "c", "order:c", 1*h),
			spanIn(4, "d", "order:d", 1*h),
			tickIn(5, 30*h),
		},
		want: []string{
			"edge T1 #0 a @0s seq=1",
			"edge T2 #0 b @1h0m0s seq=2",
			"edge T3 #0 c @1h0m0s seq=3",
			"edge T4 #0 d @1h0m0s seq=4",
			"closed T1 timeout @30h0m0s seq=5",
			"quality T1 4=4+0+0 @30h0m0s seq=5",
			// T2..T4 share a deadline (7h): by id (T2 < T3 < T4 here,
			// TestCloseOrderIsByDeadlineThenID checks the ids themselves)
			"closed T2 timeout @30h0m0s seq=5",
			"quality T2 4=4+0+0 @30h0m0s seq=5",
			"closed T3 timeout @30h0m0s seq=5",
			"quality T3 4=4+0+0 @30h0m0s seq=5",
			"closed T4 timeout @30h0m0s seq=5",
			"quality T4 4=4+0+0 @30h0m0s seq=5",
		},
	}, {
		name: "a tick seen before a tenant's first span sets its clock",
		inputs: []Input{
			tickIn(1, 10*h),
			spanIn(2, "s1", "order:1", 0), // when far behind the tick
			tickIn(3, 16*h),
			tickIn(4, 16*h+1),
		},
		want: []string{
			"edge T1 #0 s1 @10h0m0s seq=2",
			"closed T1 timeout @16h0m0.000000001s seq=4",
			"quality T1 4=4+0+0 @16h0m0.000000001s seq=4",
		},
	}, {
		name: "tenants have separate clocks; ticks close in tenant order",
		inputs: []Input{
			spanIn(1, "s1", "order:1", 0, tenantOf("b")),
			spanIn(2, "s2", "order:1", 0, tenantOf("a")),
			spanIn(3, "s3", "order:2", 20*h, tenantOf("b")),
			tickIn(4, 21*h),
		},
		want: []string{
			"edge T1 #0 s1 [b] @0s seq=1",
			"edge T2 #0 s2 [a] @0s seq=2",
			"closed T1 timeout [b] @20h0m0s seq=3",
			"quality T1 4=4+0+0 [b] @20h0m0s seq=3",
			"edge T3 #0 s3 [b] @20h0m0s seq=3",
			"closed T2 timeout [a] @21h0m0s seq=4",
			"quality T2 4=4+0+0 [a] @21h0m0s seq=4",
		},
	}, {
		name: "several key fields",
		mod:  func(c *TenantConfig) { c.Linker.KeyFields = []string{"this", "who"} },
		inputs: []Input{
			spanIn(1, "s1", "order:1", 0, whoOf("dan")),
			spanIn(2, "s2", "order:1", 1*h, whoOf("eve")),
			spanIn(3, "s3", "order:1", 2*h, whoOf("dan")),
			spanIn(4, "s4", "order:1", 3*h, whoOf("")), // empty key field: not linked
		},
		want: []string{
			"edge T1 #0 s1 @0s seq=1",
			"edge T2 #0 s2 @1h0m0s seq=2",
			"edge T1 #1 s3 @2h0m0s seq=3",
		},
	}, {
		name: "distinct confirmers earn credit, up to the saturation",
		inputs: []Input{
			spanIn(1, "s1", "order:1", 0, confirmedBy("a", "b")),
			spanIn(2, "s2", "order:1", 0, confirmedBy("c", "d", "a", "")),
			spanIn(3, "s3", "order:1", 0, confirmedBy("")), // no non-empty confirmer
			spanIn(4, "s4", "order:2", 0, confirmedBy("a")),
			spanIn(5, "s5", "order:2", 0, func(s *span.Span) { s.ConfirmedBy = []string{"a"} }), // status pending
			tickIn(6, 7*h),
		},
		want: []string{
			"edge T1 #0 s1 @0s seq=1",
			"edge T1 #1 s2 @0s seq=2",
			"edge T1 #2 s3 @0s seq=3",
			"edge T2 #0 s4 @0s seq=4",
			"edge T2 #1 s5 @0s seq=5",
			"closed T1 timeout @7h0m0s seq=6",
			// verification 2/3 * (3+3)/6 * 30 = 20
			"quality T1 32=12+0+20 @7h0m0s seq=6",
			"closed T2 timeout @7h0m0s seq=6",
			// verification 1/2 * (3+1)/6 * 30 = 10
			"quality T2 18=8+0+10 @7h0m0s seq=6",
		},
	}})
}

func TestOnlyTicksCloseOpenTrajectories(t *testing.T) {
	e := newEngine(t, nil)
	var inputs []Input
	for i := 0; i < 50; i++ {
		inputs = append(inputs, spanIn(uint64(i+1), fmt.Sprint("s", i), fmt.Sprint("order:", i%10), time.Duration(i)*time.Minute))
	}
	run(t, e, inputs...)
	if got := e.Stats("t").Open; got != 10 {
		t.Fatalf("open = %d, want 10", got)
	}
	// Ticks every 30 minutes of server time; no more spans.
	var closed []string
	for i := 0; i < 20; i++ {
		for _, l := range run(t, e, tickIn(uint64(100+i), 1*h+time.Duration(i)*30*time.Minute)) {
			if strings.HasPrefix(l, "closed") {
				closed = append(closed, l)
			}
		}
	}
	if len(closed) != 10 {
		t.Errorf("closed %d trajectories by ticks, want 10: %q", len(closed), closed)
	}
	for _, l := range closed {
		if !strings.Contains(l, "timeout") {
			t.Errorf("closed by %q, want timeout", l)
		}
	}
	if st := e.Stats("t"); st.Open != 0 || st.Timeout != 10 {
		t.Errorf("stats open=%d timeout=%d, want 0 and 10", st.Open, st.Timeout)
	}
}

func TestConfigChangesBehaviourFromItsPosition(t *testing.T) {
	short := DefaultTenantConfig()
	short.Meter.Warmup = 1000
	short.Linker.CloseTimeout = 1 * h
	short.Linker.Exceptions = []string{"this:noise-?"}
	multi := short
	multi.Linker.KeyFields = []string{"this", "who"}
	noTraj := short
	noTraj.Features.Trajectory = false

	tests := []struct {
		name   string
		inputs []Input
		want   []string
	}{{
		name: "timeout and exceptions change at the config record",
		inputs: []Input{
			spanIn(1, "s1", "order:1", 0),
			spanIn(2, "n1", "noise-1", 0),
			cfgIn(3, "t", &short),
			spanIn(4, "s2", "order:2", 1*h+1), // closes T1 under the new 1h timeout
			spanIn(5, "hb", "heartbeat-1", 1*h+2),
			spanIn(6, "n2", "noise-2", 1*h+3),
			cfgIn(7, "t", nil), // back to the default: 6h, heartbeat-*
			spanIn(8, "s3", "order:2", 6*h),
		},
		want: []string{
			"edge T1 #0 s1 @0s seq=1",
			"edge T2 #0 n1 @0s seq=2",
			"closed T1 timeout @1h0m0.000000001s seq=4",
			"quality T1 4=4+0+0 @1h0m0.000000001s seq=4",
			"closed T2 timeout @1h0m0.000000001s seq=4",
			"quality T2 4=4+0+0 @1h0m0.000000001s seq=4",
			"edge T3 #0 s2 @1h0m0.000000001s seq=4",
			"edge T4 #0 hb @1h0m0.000000002s seq=5",
			"edge T3 #1 s3 @6h0m0s seq=8",
		},
	}, {
		name: "a change of key_fields closes open trajectories by rule",
		inputs: []Input{
			spanIn(1, "s1", "order:1", 0),
			spanIn(2, "s2", "order:2", 0),
			cfgIn(3, "t", &multi),
			spanIn(4, "s3", "order:1", 1*time.Minute),
		},
		want: []string{
			"edge T1 #0 s1 @0s seq=1",
			"edge T2 #0 s2 @0s seq=2",
			"closed T1 rule @0s seq=3",
			"quality T1 4=4+0+0 @0s seq=3",
			"closed T2 rule @0s seq=3",
			"quality T2 4=4+0+0 @0s seq=3",
			"edge T3 #0 s3 @1m0s seq=4",
		},
	}, {
		name: "features.trajectory off: no new links, open ones still close",
		inputs: []Input{
			spanIn(1, "s1", "order:1", 0),
			cfgIn(2, "t", &noTraj),
			spanIn(3, "s2", "order:1", 30*time.Minute),
			tickIn(4, 2*h),
		},
		want: []string{
			"edge T1 #0 s1 @0s seq=1",
			"closed T1 timeout @2h0m0s seq=4",
			"quality T1 4=4+0+0 @2h0m0s seq=4",
		},
	}, {
		name: "a config for another tenant changes nothing here",
		inputs: []Input{
			spanIn(1, "s1", "order:1", 0),
			cfgIn(2, "other", &short),
			spanIn(3, "s2", "order:1", 2*h),
		},
		want: []string{
			"edge T1 #0 s1 @0s seq=1",
			"edge T1 #1 s2 @2h0m0s seq=3",
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := run(t, newEngine(t, nil), tc.inputs...)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
			// Replay in a fresh engine reproduces it.
			if again := run(t, newEngine(t, nil), tc.inputs...); !cmp.Equal(got, again) {
				t.Errorf("replay differs:\n%s", cmp.Diff(got, again))
			}
		})
	}
}

func TestBadInputsLeaveStateUnchanged(t *testing.T) {
	bad := DefaultTenantConfig()
	bad.Meter.Weights.Mass = 50
	noWhen := spanIn(5, "x", "order:1", 0)
	noWhen.Span.WhenOK = false
	noTenant := spanIn(5, "x", "order:1", 0, tenantOf(""))
	tests := []struct {
		name string
		in   Input
		want string
	}{
		{"repeated seq", spanIn(2, "x", "order:1", 0), "sequence numbers must increase"},
		{"older seq", tickIn(1, 0), "sequence numbers must increase"},
		{"span record without span", Input{Seq: 5, Kind: KindSpan}, "without a span"},
		{"span without when", noWhen, "no valid when"},
		{"span without tenant", noTenant, "no tenant"},
		{"config without tenant", cfgIn(5, "", nil), "without a tenant"},
		{"invalid config", cfgIn(5, "t", &bad), "weights: must sum to 1"},
		{"unknown kind", Input{Seq: 5, Kind: 9}, "unknown input kind"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, nil)
			run(t, e, spanIn(2, "s1", "order:1", 0))
			before, _ := e.MarshalBinary()
			evs, err := e.Step(nil, tc.in)
			if !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want ErrBadInput mentioning %q", err, tc.want)
			}
			if len(evs) != 0 {
				t.Errorf("derived %d events from a bad input", len(evs))
			}
			after, _ := e.MarshalBinary()
			if string(before) != string(after) {
				t.Error("state changed")
			}
		})
	}
}

func TestZeroEngineUsesDefaults(t *testing.T) {
	var e Engine
	got := run(t, &e, spanIn(1, "s1", "order:1", 0), spanIn(2, "s2", "heartbeat-1", 0))
	want := []string{"edge T1 #0 s1 @0s seq=1"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(DefaultTenantConfig(), e.TenantConfig("t")); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
}

func TestTimeIsClampedNotWrapped(t *testing.T) {
	e := newEngine(t, nil)
	far := spanIn(2, "s2", "order:2", 0)
	far.Span.When = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	old := spanIn(3, "s3", "order:3", 0)
	old.Span.When = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	got := run(t, e, spanIn(1, "s1", "order:1", 0), far, old)
	want := []string{
		"edge T1 #0 s1 @0s seq=1",
		"closed T1 timeout @2562047h47m16.854775807s seq=2",
		"quality T1 4=4+0+0 @2562047h47m16.854775807s seq=2",
		"edge T2 #0 s2 @2562047h47m16.854775807s seq=2",
		"edge T3 #0 s3 @2562047h47m16.854775807s seq=3",
	}
	// Offsets are printed relative to epoch; the clock saturates at the
	// largest int64 nanosecond (2262-04-11T23:47:16.854775807Z).
	for i := range want {
		want[i] = strings.ReplaceAll(want[i], "2562047h47m16.854775807s", offset(1<<63-1))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestCloseOrderIsByDeadlineThenID(t *testing.T) {
	e := newEngine(t, nil)
	var inputs []Input
	for i := 0; i < 200; i++ {
		// 20 distinct last-activity times, 10 trajectories each.
		inputs = append(inputs, spanIn(uint64(i+1), fmt.Sprint("s", i), fmt.Sprint("order:", i), time.Duration(i/10)*time.Minute))
	}
	for _, in := range inputs {
		if _, err := e.Step(nil, in); err != nil {
			t.Fatal(err)
		}
	}
	evs, err := e.Step(nil, tickIn(1000, 48*h))
	if err != nil {
		t.Fatal(err)
	}
	deadline := map[TrajectoryID]time.Duration{}
	for i := 0; i < 200; i++ {
		deadline[wantID("t", [][2]string{{"this", fmt.Sprint("order:", i)}}, fmt.Sprint("s", i))] = time.Duration(i/10)*time.Minute + 6*h
	}
	var prev *Event
	n := 0
	for i := range evs {
		ev := &evs[i]
		if ev.Type != ClosedEvent {
			continue
		}
		n++
		if _, ok := deadline[ev.Trajectory]; !ok {
			t.Fatalf("closed unknown trajectory %s", ev.Trajectory)
		}
		if prev != nil {
			dp, dc := deadline[prev.Trajectory], deadline[ev.Trajectory]
			if dp > dc || (dp == dc && prev.Trajectory.String() >= ev.Trajectory.String()) {
				t.Errorf("%s (deadline %v) closed before %s (deadline %v)", prev.Trajectory, dp, ev.Trajectory, dc)
			}
		}
		prev = ev
	}
	if n != 200 {
		t.Errorf("closed %d, want 200", n)
	}
}

// features.diamond gates only the candidate events: the meter runs either
// way, so turning it on later starts from a current distribution.
func TestDiamondFeature(t *testing.T) {
	ledger := func() []Input {
		var in []Input
		seq := uint64(0)
		for i := 0; i < 400; i++ {
			seq++
			opts := []sopt{}
			if i%7 == 0 {
				opts = append(opts, confirmedBy("a", "b", "c"))
			}
			in = append(in, spanIn(seq, fmt.Sprint("s", i), fmt.Sprint("order:", i), time.Duration(i)*time.Minute, opts...))
			if i%3 == 0 { // some trajectories get a second span, an hour later
				seq++
				in = append(in, spanIn(seq, fmt.Sprint("x", i), fmt.Sprint("order:", i), time.Duration(i)*time.Minute+h, opts...))
			}
		}
		seq++
		return append(in, tickIn(seq, 1000*h))
	}
	count := func(diamond bool, cluster bool) (cands int, st Stats) {
		e := newEngine(t, func(c *TenantConfig) {
			c.Meter.Warmup = 20
			c.Meter.MinScore = 0
			c.Features.Diamond = diamond
			c.Features.Cluster = cluster
		})
		for _, l := range run(t, e, ledger()...) {
			if strings.HasPrefix(l, "candidate") {
				cands++
			}
		}
		return cands, e.Stats("t")
	}
	on, stOn := count(true, false)
	off, stOff := count(false, false)
	clusterOn, stCluster := count(true, true)
	if on == 0 || off != 0 || stOn.Candidates != uint64(on) || stOff.Candidates != 0 {
		t.Errorf("candidates: diamond on %d (stats %d), off %d (stats %d)", on, stOn.Candidates, off, stOff.Candidates)
	}
	if stOn.Histogram != stOff.Histogram || stOn.LastThreshold != stOff.LastThreshold {
		t.Error("the meter behaved differently with diamond off")
	}
	if clusterOn != on || !cmp.Equal(stCluster, stOn) {
		t.Error("features.cluster changed derivation")
	}
}

func TestPercentilesAndStats(t *testing.T) {
	e := newEngine(t, nil)
	if p50, p95, p99 := e.Percentiles("nobody"); p50|p95|p99 != 0 {
		t.Errorf("unknown tenant percentiles %d %d %d", p50, p95, p99)
	}
	var in []Input
	for i := 0; i < 100; i++ {
		// order:i gets 1 + i%10 spans: mass 4*(1+i%10)
		for k := 0; k <= i%10; k++ {
			in = append(in, spanIn(uint64(len(in)+1), fmt.Sprint("s", i, "_", k), fmt.Sprint("order:", i), time.Duration(i)*time.Second))
		}
	}
	in = append(in, tickIn(uint64(len(in)+1), 7*h))
	run(t, e, in...)
	p50, p95, p99 := e.Percentiles("t")
	if p50 != 20 || p95 != 40 || p99 != 40 {
		t.Errorf("p50/p95/p99 = %d/%d/%d, want 20/40/40", p50, p95, p99)
	}
	// The window the console draws: 100 scores, 10 of each mass level
	// (4, 8, …, 40), whose percentiles are the meter's.
	hist, n := e.Window("t")
	if n != 100 || hist[4] != 10 || hist[40] != 10 || histPercentile(&hist, n, 50) != p50 || histPercentile(&hist, n, 99) != p99 {
		t.Errorf("window: n=%d hist[4]=%d hist[40]=%d", n, hist[4], hist[40])
	}
	if _, n := e.Window("nobody"); n != 0 {
		t.Errorf("unknown tenant's window holds %d", n)
	}
	st := e.Stats("t")
	if st.Scored != 100 || st.Opened != 100 || st.Timeout != 100 || st.Linked != 550 || st.Open != 0 {
		t.Errorf("stats %+v", st)
	}
	if c, ok := e.Clock("t"); !ok || !c.Equal(epoch.Add(7*h)) {
		t.Errorf("clock %v %v", c, ok)
	}
	if diff := cmp.Diff([]string{"t"}, e.Tenants()); diff != "" {
		t.Errorf("tenants (-want +got):\n%s", diff)
	}
}
