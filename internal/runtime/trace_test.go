package runtime

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/loglineos/loglineos/internal/derive"
	"github.com/loglineos/loglineos/internal/ledger"
	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
	"github.com/loglineos/loglineos/internal/lll/eval"
)

const tracedRouters = `router tills {
  uses "http.request"
  uses "env.get"
  route when did == "sale.post" and env.get("mode") != "off" to http.request(env.get("hook"), {id: id, mode: env.get("mode")})
  route when did == "sale.void" and crypto.verify("11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=", "", who) to http.request(env.get("hook"))
}
router last {
  uses "kv.get"
  uses "kv.set"
  uses "http.request"
  uses "env.get"
  route when did != "sale.void" to http.request(env.get("hook"), {this: this, before: kv.get(this)})
  route to kv.set(this, id)
}
router candidates {
  input: "diamond_candidate"
  uses "http.request"
  uses "env.get"
  route when score >= 50 to http.request(env.get("hook"))
}`

// tracedRuntime opens a runtime with tracedRouters for tenant acme, its
// trace written to the returned buffer.
func tracedRuntime(t *testing.T) (*Runtime, []*eval.Router, *bytes.Buffer) {
	t.Helper()
	ten := endpointTenant("http://127.0.0.1:1/hook", "http.request", "env.get", "kv.get", "kv.set")
	ten.Env["mode"] = "live"
	trace := &bytes.Buffer{}
	rs, caps := compile(t, tracedRouters)
	rt, err := Open(Config{Dir: t.TempDir(), Routers: rs, BundleCaps: caps, ServerCaps: caps,
		Tenants: tenants{"acme": ten}, Trace: trace, BundleHash: "sha256:test", KeepDone: 1, QueuePerTenant: 1 << 30,
		Ledger: openLedger(t, t.TempDir())})
	if err != nil {
		t.Fatal(err)
	}
	return rt, rs, trace
}

// A trace recorded over 10,000 records (spans with env.get, kv.get,
// kv.set, crypto.verify and http.request, and derived events) replays byte
// for byte; a one-byte change is reported as a divergence at the line and
// record changed.
func TestTraceReplays(t *testing.T) {
	rt, rs, trace := tracedRuntime(t)
	const n = 10_000
	for seq := uint64(1); seq <= n; seq++ {
		did, who := "sale.post", "till"
		switch seq % 7 {
		case 3:
			did = "sale.pack"
		case 5:
			did, who = "sale.void", "5VZDAMNgrHKQhuLMgG6CioSHfx645dl02HPgZSJJAVVfuIIVkKM7rMYeOXAc+bRr0lv18FlbviRlUUFDjnoQCw=="
		}
		body := fmt.Sprintf(`{"id":"s_%d","tenant":"acme","who":%q,"did":%q,"this":"order:%d","when":"2025-10-05T09:00:00Z","status":"confirmed"}`, seq, who, did, seq%100)
		var evs []derive.Event
		if seq%10 == 0 {
			evs = []derive.Event{{Type: derive.CandidateEvent, Tenant: "acme", Trajectory: derive.TrajectoryID{byte(seq)}, Score: int(seq % 100), Seq: seq, TS: 1e18}}
		}
		if err := rt.Record(ledger.Record{Seq: seq, Kind: ledgerfmt.KindSpan, Body: []byte(body)}, evs); err != nil {
			t.Fatal(err)
		}
		if seq%1000 == 0 {
			if err := rt.Sync(seq + 1); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := rt.Close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(trace.String()), "\n")
	if len(lines) < n {
		t.Fatalf("%d trace lines for %d records", len(lines), n)
	}

	res, div, err := Replay(rs, strings.NewReader(trace.String()))
	if got := res.Evaluations; err != nil || div != nil || got != len(lines)-1 {
		t.Fatalf("replay: %d evaluations, divergence %v, err %v; want %d, none", got, div, err, len(lines)-1)
	}

	// One byte changed in a recorded env value, in an action, in the input.
	tests := []struct {
		name, old, new, what, router string
	}{
		{"env value", `"args":["mode"],"result":"live"},{"name":"env.get","args":["hook"],"result":"http://127.0.0.1:1/hook"},{"name":"env.get","args":["mode"],"result":"live"`,
			`"args":["mode"],"result":"live"},{"name":"env.get","args":["hook"],"result":"http://127.0.0.1:1/hook"},{"name":"env.get","args":["mode"],"result":"livE"`, "actions", ""},
		{"call", `"args":["mode"]`, `"args":["modE"]`, "call 1", ""},
		{"action", `"args":["http://127.0.0.1:1/hook",{"id":"s_`, `"args":["http://127.0.0.1:1/hooK",{"id":"s_`, "actions", ""},
		{"input", `"did\":\"sale.pack\"`, `"did\":\"sale.post\"`, "call 1", "tills"},
		{"kv read", `{"name":"kv.get","args":["order:42"],"result":"s_`, `{"name":"kv.get","args":["order:42"],"result":"S_`, "actions", "last"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			at := -1
			for i := 1; i < len(lines); i++ {
				if strings.Contains(lines[i], tt.old) && i > 5000 && strings.Contains(lines[i], `"router":"`+tt.router) {
					at = i
					break
				}
			}
			if at < 0 {
				t.Fatalf("no line after 5000 holds %s", tt.old)
			}
			changed := append([]string{}, lines...)
			changed[at] = strings.Replace(changed[at], tt.old, tt.new, 1)
			_, div, err := Replay(rs, strings.NewReader(strings.Join(changed, "\n")))
			if err != nil {
				t.Fatal(err)
			}
			if div == nil || div.Line != at+1 || div.What != tt.what {
				t.Fatalf("divergence %v, want line %d (%s)", div, at+1, tt.what)
			}
			var tl TraceLine
			jsonUnmarshal(t, lines[at], &tl)
			if div.Seq != tl.Seq {
				t.Fatalf("divergence at seq %d, want %d", div.Seq, tl.Seq)
			}
		})
	}
}

func jsonUnmarshal(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatal(err)
	}
}

// An evaluation recorded as ended by its deadline (a loaded machine) is
// compared as far as it went, and counted as cut; the same line with
// another error is a divergence.
func TestReplayOfAnEvaluationCutByItsDeadline(t *testing.T) {
	rs, _ := compile(t, tracedRouters)
	span := `{"id":"s_1","tenant":"acme","who":"till","did":"sale.post","this":"order:1","when":"2025-10-05T09:00:00Z","status":"confirmed"}`
	line := func(calls []TraceCall, errText string) string {
		b, err := json.Marshal(TraceLine{Seq: 1, Tenant: "acme", Router: "tills", Input: "span", Span: span, Calls: calls, Error: errText})
		if err != nil {
			t.Fatal(err)
		}
		return `{"trace":"` + TraceFormat + `","bundle":"sha256:test"}` + "\n" + string(b) + "\n"
	}
	first := []TraceCall{{Name: "env.get", Args: []any{"mode"}, Result: "live"}}
	res, div, err := Replay(rs, strings.NewReader(line(first, "app.lll:4:3: error[LLL106]: evaluation ran past its deadline of 50ms")))
	if err != nil || div != nil || res.Evaluations != 1 || res.Cut != 1 {
		t.Fatalf("cut by its deadline: %+v %v %v", res, div, err)
	}
	wrong := []TraceCall{{Name: "env.get", Args: []any{"mood"}, Result: "live"}}
	if _, div, _ := Replay(rs, strings.NewReader(line(wrong, "app.lll:4:3: error[LLL106]: evaluation ran past its deadline of 50ms"))); div == nil || div.What != "call 1" {
		t.Fatalf("a cut evaluation whose calls differ: divergence %v", div)
	}
	if _, div, _ := Replay(rs, strings.NewReader(line(first, "app.lll:4:3: error[LLL102]: want a bool"))); div == nil {
		t.Fatal("an evaluation that stopped on another error replays as identical")
	}
}

// TestTraceBeforeRoutedMark: the outbox's sync (each second, and at every
// routed mark) writes the trace's lines first. A record the outbox marks
// routed is not evaluated again after a crash, so a trace still in memory
// then would lose its evaluations for good (kv.txtar's replay once found
// 9,880 of 10,001 after a SIGKILL).
func TestTraceBeforeRoutedMark(t *testing.T) {
	rt, _, trace := tracedRuntime(t)
	defer rt.Close()
	const n = 50
	for seq := uint64(1); seq <= n; seq++ {
		body := fmt.Sprintf(`{"id":"s_%d","tenant":"acme","who":"till","did":"sale.post","this":"order:%d","when":"2025-10-05T09:00:00Z","status":"confirmed"}`, seq, seq)
		if err := rt.Record(ledger.Record{Seq: seq, Kind: ledgerfmt.KindSpan, Body: []byte(body)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := rt.syncOutbox(); err != nil {
		t.Fatal(err)
	}
	if _, seen := rt.ob.marks(); seen != n+1 {
		t.Fatalf("the outbox marks records below %d routed, want %d", seen, n+1)
	}
	// Two routers take spans: two evaluations a record, after the header.
	if got := strings.Count(trace.String(), "\n"); got != 1+2*n {
		t.Fatalf("%d trace lines written when the outbox marks %d records routed, want %d", got, n, 1+2*n)
	}
}
