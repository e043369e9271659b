package derive

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestGuardrailSheds(t *testing.T) {
	capped := func(c *TenantConfig) { c.Perf.MaxPerMinute = 3 }
	tests := []struct {
		name   string
		mod    func(*TenantConfig)
		inputs []Input
		want   []string
	}{{
		name: "over the cap in one event-time minute, reported at the next",
		mod:  capped,
		inputs: []Input{
			spanIn(1, "s1", "order:1", 0),
			spanIn(2, "s2", "order:2", 10*time.Second),
			spanIn(3, "s3", "order:3", 20*time.Second),
			spanIn(4, "s4", "order:4", 30*time.Second),
			spanIn(5, "s5", "order:5", 59*time.Second),
			spanIn(6, "s6", "order:6", 61*time.Second),
			spanIn(7, "s7", "order:7", 62*time.Second),
			tickIn(8, 3*time.Minute),
		},
		want: []string{
			"edge T1 #0 s1 @0s seq=1",
			"edge T2 #0 s2 @10s seq=2",
			"edge T3 #0 s3 @20s seq=3",
			"shed 0s edge=2 @1m1s seq=6",
			"edge T4 #0 s6 @1m1s seq=6",
			"edge T5 #0 s7 @1m2s seq=7",
		},
	}, {
		name: "closes count too, and shedding leaves derivation intact",
		mod:  func(c *TenantConfig) { capped(c); c.Linker.CloseTimeout = time.Minute },
		inputs: []Input{
			spanIn(1, "s1", "order:1", 0),
			spanIn(2, "s2", "order:2", 0),
			spanIn(3, "s3", "order:3", 5*time.Minute), // closes T1, T2: 4 events + 1 edge
			spanIn(4, "s4", "order:3", 6*time.Minute),
		},
		want: []string{
			"edge T1 #0 s1 @0s seq=1",
			"edge T2 #0 s2 @0s seq=2",
			"closed T1 timeout @5m0s seq=3",
			"quality T1 4=4+0+0 @5m0s seq=3",
			"closed T2 timeout @5m0s seq=3",
			"shed 5m0s edge=1 quality=1 @6m0s seq=4",
			"edge T3 #1 s4 @6m0s seq=4", // T3 was opened though its edge was shed
		},
	}, {
		name: "slow_ingest leaves derivation to ingest: nothing shed",
		mod:  func(c *TenantConfig) { capped(c); c.Perf.OnOverload = "slow_ingest" },
		inputs: []Input{
			spanIn(1, "s1", "order:1", 0),
			spanIn(2, "s2", "order:2", 0),
			spanIn(3, "s3", "order:3", 0),
			spanIn(4, "s4", "order:4", 0),
			spanIn(5, "s5", "order:5", 2*time.Minute),
		},
		want: []string{
			"edge T1 #0 s1 @0s seq=1",
			"edge T2 #0 s2 @0s seq=2",
			"edge T3 #0 s3 @0s seq=3",
			"edge T4 #0 s4 @0s seq=4",
			"edge T5 #0 s5 @2m0s seq=5",
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := run(t, newEngine(t, tc.mod), tc.inputs...)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}

// With a cap, the derivation state (what opens, closes, scores and is
// flagged) is the same as without one; only emission differs, and every
// shed event is accounted for in a shed_derived event.
func TestGuardrailOnlyChangesEmission(t *testing.T) {
	spec := defaultLedger(60_000)
	spec.configs = false
	spec.tenants = 2
	base := DefaultTenantConfig()
	capped := base
	capped.Perf.MaxPerMinute = 40
	count := func(c TenantConfig) (Stats, map[EventType]uint64) {
		e, err := New(Config{Default: &c})
		if err != nil {
			t.Fatal(err)
		}
		counts := map[EventType]uint64{}
		var evs []Event
		for in := range spec.ledger() {
			if evs, err = e.Step(evs[:0], in); err != nil {
				t.Fatal(err)
			}
			for i := range evs {
				counts[evs[i].Type]++
				if evs[i].Type == ShedEvent {
					for j, n := range evs[i].Shed {
						counts[EventType(j+1)] += n
					}
				}
			}
		}
		// Close everything, then enter the next minute so that the
		// last shed report comes out.
		for i, at := range []time.Duration{1000 * h, 1000*h + time.Minute} {
			evs, _ = e.Step(evs[:0], tickIn(1<<40+uint64(i), at))
			for i := range evs {
				counts[evs[i].Type]++
				if evs[i].Type == ShedEvent {
					for j, n := range evs[i].Shed {
						counts[EventType(j+1)] += n
					}
				}
			}
		}
		var all Stats
		for _, name := range e.Tenants() {
			st := e.Stats(name)
			all.Spans += st.Spans
			all.Opened += st.Opened
			all.Timeout += st.Timeout
			all.Rule += st.Rule
			all.Candidates += st.Candidates
			for i := range st.Histogram {
				all.Histogram[i] += st.Histogram[i]
			}
			for i := range st.Shed {
				all.Shed[i] += st.Shed[i]
			}
		}
		return all, counts
	}
	st0, c0 := count(base)
	st1, c1 := count(capped)
	if c1[ShedEvent] == 0 {
		t.Fatal("the cap never shed anything; the test needs a busier ledger")
	}
	for _, typ := range []EventType{EdgeEvent, ClosedEvent, QualityEvent, CandidateEvent} {
		if c0[typ] != c1[typ] {
			t.Errorf("%s: %d without cap, %d emitted+shed with cap", typ, c0[typ], c1[typ])
		}
	}
	st1.Shed = st0.Shed
	if diff := cmp.Diff(st0, st1); diff != "" {
		t.Errorf("derivation changed under the cap (-without +with):\n%s", diff)
	}
	t.Logf("shed_derived events: %d; %s", c1[ShedEvent], fmt.Sprint(st1.Candidates, " candidates either way"))
}
