package vm_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/loglineos/loglineos/internal/lll"
	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/lll/ir"
	"github.com/loglineos/loglineos/internal/lll/wasm/codegen"
	"github.com/loglineos/loglineos/internal/lll/wasm/vm"
	"github.com/loglineos/loglineos/internal/span"
)

// stagingHost is a mapHost whose kv.get reads what the run's kv.set
// actions wrote (read-your-writes), and logs every action staged.
type stagingHost struct {
	mapHost
	staged []string
}

func (h *stagingHost) Stage(_ context.Context, a *eval.Action) error {
	h.staged = append(h.staged, a.Call+" "+ir.ListValue(a.Args).String())
	if a.Call == "kv.set" {
		if h.kv == nil {
			h.kv = map[string]ir.Value{}
		}
		h.kv[a.Args[0].Str()] = a.Args[1]
	}
	if h.fail && a.Call == "kv.set" {
		return errors.New("the store is down")
	}
	return nil
}

// routerSrc routes to every action, with map and list literals, every
// kind of leaf, the input omitted, guards over host calls and data, and
// a kv.set a later route reads.
const routerSrc = `policy p {
  d: 5m
}
router r {
  uses "ws.send", "kv.set", "kv.get", "ledger.append", "http.request", "env.get"
  route when did == "sale.post" and data.gross >= 100 to ws.send("big-sales")
  route when did matches "refund.*" to ws.send("refunds", {id: id, who: who, n: len(who) * 2, ok: has(this), l: [1, "a", false], d: policy.p.d * 2})
  route when len(kv.get(this)) == 0 to ws.send("first", {this: this})
  route to kv.set(this, id)
  route when kv.get(this) == id to ledger.append({who: upper(who), did: "seen", this: this})
  route when features.diamond to http.request(env.get("hook"))
  route when when - 1h > when - 2h to ws.send("late", when + 1h)
  route to ws.send("any", {v: kv.get(this), l: [kv.get("big"), 1], g: data.gross, m: data.m})
}
`

// TestRouters: a router's module gives the interpreter's actions (calls,
// arguments, the input added, order), steps, errors (out of fuel, of
// bytes, a host call or a staging that fails) and host calls, and tells a
// Stager host of each action as the interpreter does.
func TestRouters(t *testing.T) {
	p, errs := lll.Compile([]lll.Source{{Name: "r.lll", Text: []byte(routerSrc)}})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	ep, m := compileProgram(t, p)
	ctx := context.Background()
	in, err := m.NewInstance(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r := ep.Routers()[0]
	lines := []string{
		`{"id":"a","did":"sale.post","this":"o1","data":{"gross":150,"m":{"k":[1,"x"]}}}`,
		`{"id":"b","did":"sale.post","this":"o1","data":{"gross":15}}`,
		`{"id":"c","did":"refund.full","who":"ana","this":"o2","when":"2025-10-05T22:18:07Z"}`,
		`{"id":"d","did":"refund.x","who":"Ünïcödé","when":"2025-10-05T22:18:07+02:00"}`,
		`{"id":"e","did":"x","when":"2024-10-05T22:18:07Z","this":"o3"}`,
		`{"id":"f","did":"x","who":"fay","when":"2024-10-05T22:18:07Z","this":"o4","data":{"gross":5,"m":[1,{"n":null}]}}`,
	}
	big := ir.MapValue(map[string]ir.Value{"a": ir.ListValue([]ir.Value{ir.StringValue("x"), ir.IntValue(2)}), "b": ir.NullValue()})
	var runs, errored int
	for _, line := range lines {
		s, err := span.Parse([]byte(line), span.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		envs := []eval.Env{{}, {Features: map[string]bool{"diamond": true}}}
		for n := range int64(45) {
			envs = append(envs, eval.Env{MaxSteps: 1 + n}) // every budget below what the runs need
		}
		for n := range int64(4000) {
			envs = append(envs, eval.Env{MaxBytes: 1 + n}) // and every byte budget
		}
		for i, env := range envs {
			fail := i%3 == 1 // the host fails its calls and its kv.set
			eh := &stagingHost{mapHost: mapHost{env: map[string]string{"hook": "https://h.example"}, kv: map[string]ir.Value{"o3": ir.StringValue("e"), "big": big}, fail: fail}}
			wh := &stagingHost{mapHost: mapHost{env: map[string]string{"hook": "https://h.example"}, kv: map[string]ir.Value{"o3": ir.StringValue("e"), "big": big}, fail: fail}}
			ee, we := env, env
			ee.Host, ee.Timeout = eh, -1
			we.Host, we.Timeout = wh, -1
			want, steps, werr := r.RouteSteps(ctx, eval.Input{Span: s}, &ee)
			got, res, gerr := in.Route(ctx, "r", eval.Input{Span: s}, &we)
			if errors.Is(gerr, vm.ErrUnsupported) {
				t.Fatalf("%s %+v: %v", line, env, gerr)
			}
			runs++
			if werr != nil {
				errored++
			}
			if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b ir.Value) bool { return a.Equal(b) && a.Kind() == b.Kind() })); diff != "" {
				t.Errorf("%s %+v: actions (-eval +wasm):\n%s", line, env, diff)
			}
			if diff := cmp.Diff(errString(werr), errString(gerr)); diff != "" || res.FuelUsed != steps {
				t.Errorf("%s %+v: %d steps (eval %d); error (-eval +wasm):\n%s", line, env, res.FuelUsed, steps, diff)
			}
			if diff := cmp.Diff(eh.calls, wh.calls); diff != "" {
				t.Errorf("%s %+v: host calls (-eval +wasm):\n%s", line, env, diff)
			}
			if diff := cmp.Diff(eh.staged, wh.staged); diff != "" {
				t.Errorf("%s %+v: staged (-eval +wasm):\n%s", line, env, diff)
			}
		}
	}
	if errored == 0 || errored == runs {
		t.Errorf("%d of %d runs failed: want some of each", errored, runs)
	}
}

// TestRouterFallback: a router run the module cannot answer (a kv.get
// value of another kind) fails with vm.ErrUnsupported, naming why.
func TestRouterFallback(t *testing.T) {
	p, errs := lll.Compile([]lll.Source{{Name: "r.lll", Text: []byte(routerSrc)}})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	_, m := compileProgram(t, p)
	ctx := context.Background()
	in, err := m.NewInstance(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s, err := span.Parse([]byte(`{"id":"e","did":"x","this":"o3"}`), span.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		host *stagingHost
		want string
	}{
		{"a number", &stagingHost{mapHost: mapHost{kv: map[string]ir.Value{"o3": ir.IntValue(3)}}}, "kv.get returned a number"},
	} {
		_, _, err := in.Route(ctx, "r", eval.Input{Span: s}, &eval.Env{Host: tc.host})
		if !errors.Is(err, vm.ErrUnsupported) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want vm.ErrUnsupported naming %q", tc.name, err, tc.want)
		}
	}
	if _, _, err := in.Route(ctx, "nope", eval.Input{Span: s}, nil); !errors.Is(err, vm.ErrNoRouter) {
		t.Errorf("err %v, want vm.ErrNoRouter", err)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestEventRouters: a router of derived events (or webhooks) that does not
// read its input is compiled, and gives the interpreter's actions, the
// event itself as the payload a route omits; one that reads its input is
// not part of the module.
func TestEventRouters(t *testing.T) {
	src := `router candidates {
  input: "diamond_candidate"
  uses "http.request", "env.get", "ws.send"
  route to http.request(env.get("hook"))
  route when features.diamond to ws.send("c", {n: 1, hook: env.get("hook")})
}
router hooks {
  input: "webhook"
  uses "ws.send"
  route when source == "stripe" to ws.send("stripe")
}
`
	p, errs := lll.Compile([]lll.Source{{Name: "r.lll", Text: []byte(src)}})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	ep, m := compileProgram(t, p)
	out, err := codegen.Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"candidates"}, out.Routers); diff != "" {
		t.Errorf("routers compiled (-want +got):\n%s", diff)
	}
	ctx := context.Background()
	in, err := m.NewInstance(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ev := ir.MapValue(map[string]ir.Value{"type": ir.StringValue("diamond_candidate"), "id": ir.StringValue("e1"), "score": ir.IntValue(9)})
	for _, env := range []eval.Env{{}, {Features: map[string]bool{"diamond": true}}, {MaxSteps: 2}, {MaxBytes: 150}} {
		eh := &stagingHost{mapHost: mapHost{env: map[string]string{"hook": "https://h.example"}}}
		wh := &stagingHost{mapHost: mapHost{env: map[string]string{"hook": "https://h.example"}}}
		ee, we := env, env
		ee.Host, ee.Timeout = eh, -1
		we.Host, we.Timeout = wh, -1
		want, steps, werr := ep.Routers()[0].RouteSteps(ctx, eval.Input{Event: ev}, &ee)
		got, res, gerr := in.Route(ctx, "candidates", eval.Input{Event: ev}, &we)
		if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b ir.Value) bool { return a.Equal(b) && a.Kind() == b.Kind() })); diff != "" {
			t.Errorf("%+v: actions (-eval +wasm):\n%s", env, diff)
		}
		if errString(werr) != errString(gerr) || res.FuelUsed != steps {
			t.Errorf("%+v: %d steps, error %v; eval %d steps, %v", env, res.FuelUsed, gerr, steps, werr)
		}
		if diff := cmp.Diff(eh.calls, wh.calls); diff != "" {
			t.Errorf("%+v: host calls (-eval +wasm):\n%s", env, diff)
		}
	}
	if _, _, err := in.Route(ctx, "hooks", eval.Input{Event: ev}, nil); !errors.Is(err, vm.ErrNoRouter) {
		t.Errorf("hooks: err %v, want vm.ErrNoRouter", err)
	}
}
