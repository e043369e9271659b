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
	"github.com/loglineos/loglineos/internal/lll/wasm/wasmtest"
	"github.com/loglineos/loglineos/internal/span"
)

// mapHost answers env.get and kv.get from maps, crypto.verify with true
// when its message is "ok", and logs every call.
type mapHost struct {
	env   map[string]string
	kv    map[string]ir.Value
	calls []string
	fail  bool
}

func (h *mapHost) Call(_ context.Context, name string, args []ir.Value) (ir.Value, error) {
	var parts []string
	for _, a := range args {
		parts = append(parts, a.String())
	}
	h.calls = append(h.calls, name+"("+strings.Join(parts, ",")+")")
	if h.fail {
		return ir.Value{}, errors.New("the store is down")
	}
	switch name {
	case "env.get":
		if v, ok := h.env[args[0].Str()]; ok {
			return ir.StringValue(v), nil
		}
	case "kv.get":
		if v, ok := h.kv[args[0].Str()]; ok {
			return v, nil
		}
	case "crypto.verify":
		return ir.BoolValue(args[1].Str() == "ok"), nil
	}
	return ir.NullValue(), nil
}

// hostSrc makes every host call of expressions, kv.get's value read as
// each kind.
const hostSrc = `validator v {
  uses "env.get", "kv.get"
  check env.get("region") == "eu" or who == "root" else "region"
  check len(kv.get(this)) < 4 else "short"
  check kv.get("limit") > 2 or kv.get("open") else "limit"
  check crypto.verify(who, did, lower(env.get("k") + "x")) else "sig"
  on_fail "warn"
}
`

// TestHostCalls: env.get, kv.get and crypto.verify in a validator are
// performed by the run's eval.Host with the interpreter's arguments and
// give its answers, steps and bytes, and a call that fails its LLL104; a
// value of another kind than the code reads, or a run without a host, is
// the interpreter's to answer.
func TestHostCalls(t *testing.T) {
	p, errs := lll.Compile([]lll.Source{{Name: "v.lll", Text: []byte(hostSrc)}})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	out, err := codegen.Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	wasmtest.Validate(t, "host", out.Wasm)
	if diff := cmp.Diff([]string{"crypto.verify", "env.get", "kv.get"}, out.Imports); diff != "" {
		t.Errorf("imports (-want +got):\n%s", diff)
	}
	b := compileBoth(t, hostSrc)
	ctx := context.Background()
	kv := func(kvs ...any) map[string]ir.Value {
		m := map[string]ir.Value{}
		for i := 0; i < len(kvs); i += 2 {
			v, err := ir.FromJSON(kvs[i+1])
			if err != nil {
				t.Fatal(err)
			}
			m[kvs[i].(string)] = v
		}
		return m
	}
	line := func(who, did, this string) string {
		return `{"id":"s","who":"` + who + `","did":"` + did + `","this":"` + this + `"}`
	}
	for _, tc := range []struct {
		name        string
		line        string
		host        *mapHost
		budget      int64
		bytes       int64
		unsupported bool
	}{
		{name: "pass", line: line("ann", "ok", "o"), host: &mapHost{env: map[string]string{"region": "eu", "k": "K"}, kv: kv("o", "abc", "limit", 3)}},
		{name: "region", line: line("ann", "ok", "o"), host: &mapHost{env: map[string]string{"region": "us"}, kv: kv("limit", 3)}},
		{name: "root", line: line("root", "ok", "o"), host: &mapHost{kv: kv("limit", 3)}},
		{name: "short", line: line("root", "ok", "o"), host: &mapHost{kv: kv("o", "abcdef", "limit", 3)}},
		{name: "limit", line: line("root", "ok", "o"), host: &mapHost{kv: kv("limit", 1, "open", false)}},
		{name: "open", line: line("root", "ok", "o"), host: &mapHost{kv: kv("limit", 1, "open", true)}},
		{name: "sig", line: line("root", "bad", "o"), host: &mapHost{kv: kv("limit", 3), env: map[string]string{"k": "K"}}},
		{name: "k null", line: line("root", "ok", "o"), host: &mapHost{kv: kv("limit", 3)}},
		{name: "out of fuel", line: line("ann", "ok", "o"), host: &mapHost{env: map[string]string{"region": "eu"}, kv: kv("limit", 3)}, budget: 9},
		{name: "out of bytes", line: line("ann", "ok", "o"), host: &mapHost{env: map[string]string{"region": "eu"}, kv: kv("o", strings.Repeat("x", 300), "limit", 3)}, bytes: 500},
		{name: "limit a string", line: line("root", "ok", "o"), host: &mapHost{kv: kv("limit", "3")}, unsupported: true},
		{name: "limit null", line: line("root", "ok", "o"), host: &mapHost{}, unsupported: true},
		{name: "the host fails", line: line("root", "ok", "o"), host: &mapHost{fail: true}},
		{name: "no host", line: line("root", "ok", "o"), unsupported: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := &eval.Env{MaxSteps: tc.budget, MaxBytes: tc.bytes}
			if tc.host != nil {
				env.Host = tc.host
			}
			s, err := span.Parse([]byte(tc.line), span.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if !tc.unsupported {
				eh := *tc.host
				e := *env
				e.Host, e.Timeout = &eh, -1
				want, steps := b.ev.CheckSpanSteps(ctx, s, &e)
				got, res, err := b.in.CheckSpanEnv(ctx, "v", s, env)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("violation (-eval +wasm):\n%s", diff)
				}
				if res.FuelUsed != steps || res.Trap != trapOf(want) {
					t.Errorf("trap %d after %d steps, want trap %d after %d", res.Trap, res.FuelUsed, trapOf(want), steps)
				}
				if diff := cmp.Diff(eh.calls, tc.host.calls); diff != "" {
					t.Errorf("host calls (-eval +wasm):\n%s", diff)
				}
				t.Logf("%v after %d steps, calls %q", want, steps, eh.calls)
				return
			}
			if _, _, err := b.in.CheckSpanEnv(ctx, "v", s, env); !errors.Is(err, vm.ErrUnsupported) {
				t.Fatalf("err %v, want vm.ErrUnsupported", err)
			}
		})
	}
}

// TestCapabilityGate: a module whose imports the capabilities do not grant
// compiles but cannot be instantiated, and the error names the call and
// its capability; crypto.verify needs none.
func TestCapabilityGate(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name, src string
		caps      []string
		want      string // "" instantiates
	}{
		{name: "env.get not granted", src: hostSrc, caps: []string{"kv.get"}, want: `env.get, which needs the capability "env.get"`},
		{name: "granted", src: hostSrc, caps: []string{"env.get", "kv.get"}},
		{name: "http.request not granted", src: "router r {\n  uses \"http.request\"\n  route when did == \"x\" to http.request(\"https://x.example\", {who: who})\n}\n",
			caps: []string{"ws.send", "kv.get"}, want: `http.request, which needs the capability "http.request"`},
		{name: "http.request granted", src: "router r {\n  uses \"http.request\"\n  route to http.request(\"https://x.example\")\n}\n", caps: []string{"http.request"}},
		{name: "crypto.verify", src: "validator v {\n  check crypto.verify(who, did, this) else \"x\"\n}\n", caps: []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, errs := lll.Compile([]lll.Source{{Name: "v.lll", Text: []byte(tc.src)}})
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			out, err := codegen.Compile(p)
			if err != nil {
				t.Fatal(err)
			}
			wasmtest.Validate(t, tc.name, out.Wasm)
			m, err := vm.CompileWith(ctx, p, out, vm.Options{Caps: tc.caps})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close(ctx)
			_, err = m.NewInstance(ctx)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("instantiate: %v", err)
			case tc.want != "" && (!errors.Is(err, vm.ErrCapability) || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("instantiate: err %v, want vm.ErrCapability naming %s", err, tc.want)
			}
		})
	}
}

// TestHostCallStrings: a string field whose bytes the module reads only
// as the argument of a host call (tenant) or of an action (status, and
// this inside a map) is one codegen's Output.Strings lists, so the host
// copies its bytes and the call gets the span's value, as the
// interpreter's does.
func TestHostCallStrings(t *testing.T) {
	const src = `validator v {
  uses "kv.get"
  check len(kv.get(tenant)) < 4 else "short"
}
router r {
  uses "ws.send"
  route to ws.send(status, {this: this})
}
`
	p, errs := lll.Compile([]lll.Source{{Name: "v.lll", Text: []byte(src)}})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	out, err := codegen.Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"tenant", "this", "status"}, out.Strings); diff != "" {
		t.Errorf("strings (-want +got):\n%s", diff)
	}
	ep, m := compileProgram(t, p)
	ctx := context.Background()
	in, err := m.NewInstance(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s, err := span.Parse([]byte(`{"id":"a","tenant":"acme","who":"ana","did":"x","this":"o1","status":"closed"}`), span.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	eh := &mapHost{kv: map[string]ir.Value{"acme": ir.StringValue("toolong")}}
	wh := &mapHost{kv: map[string]ir.Value{"acme": ir.StringValue("toolong")}}
	want := ep.Validator("v").CheckSpan(ctx, s, &eval.Env{Host: eh, Timeout: -1})
	got, _, err := in.CheckSpanEnv(ctx, "v", s, &eval.Env{Host: wh, Timeout: -1})
	if err != nil {
		t.Fatal(err)
	}
	if want == nil {
		t.Fatal("the interpreter passes the span: want the value of kv.get(\"acme\") to fail it")
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("violation (-eval +wasm):\n%s", diff)
	}
	if diff := cmp.Diff(eh.calls, wh.calls); diff != "" {
		t.Errorf("host calls (-eval +wasm):\n%s", diff)
	}
	wantActs, err := ep.Routers()[0].Route(ctx, eval.Input{Span: s}, &eval.Env{Timeout: -1})
	if err != nil {
		t.Fatal(err)
	}
	gotActs, _, err := in.Route(ctx, "r", eval.Input{Span: s}, &eval.Env{Timeout: -1})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantActs, gotActs, cmp.Comparer(func(a, b ir.Value) bool { return a.Equal(b) && a.Kind() == b.Kind() })); diff != "" {
		t.Errorf("actions (-eval +wasm):\n%s", diff)
	}
}
