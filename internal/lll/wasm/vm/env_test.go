package vm_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loglineos/loglineos/internal/lll"
	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/lll/ir"
	"github.com/loglineos/loglineos/internal/lll/wasm/codegen"
	"github.com/loglineos/loglineos/internal/lll/wasm/vm"
	"github.com/loglineos/loglineos/internal/span"
)

// envSrc reads feature flags and policy values of each kind compiled.
const envSrc = `policy p {
  n: 3
  s: "dan"
  b: true
  m: { k: 2, t: "x" }
}
validator v {
  when policy.p.b or features.cluster
  check features.diamond or who == policy.p.s else "who"
  check policy.p.n + policy.p.m.k > 4 else "sum"
  check not features.trajectory or policy.p.m.t != "x" else "t"
  on_fail "warn"
}
`

// TestEnv: feature flags and policy values as the run's Env has them give
// the interpreter's answer; a policy value of another kind than the
// program's, or strings over the env region, are the interpreter's to
// answer (vm.ErrUnsupported).
func TestEnv(t *testing.T) {
	b := compileBoth(t, envSrc)
	pol := func(fields ...*ir.PolicyField) map[string]*ir.Policy {
		return map[string]*ir.Policy{"p": {Name: "p", Fields: fields}}
	}
	field := func(key string, v ir.Value) *ir.PolicyField { return &ir.PolicyField{Key: key, Value: v} }
	m := func(k, t ir.Value) ir.Value { return ir.MapValue(map[string]ir.Value{"k": k, "t": t}) }
	for _, tc := range []struct {
		name, who string
		env       eval.Env
		want      string // the rule that fails ("" none, "unsupported")
	}{
		{name: "defaults", who: "dan"},
		{name: "who", who: "ann", want: "who"},
		{name: "diamond", who: "ann", env: eval.Env{Features: map[string]bool{"diamond": true}}},
		{name: "s overridden", who: "ann", env: eval.Env{Policies: pol(field("s", ir.StringValue("ann")))}},
		{name: "b off", who: "ann", env: eval.Env{Policies: pol(field("b", ir.BoolValue(false)))}},
		{name: "b off, cluster", who: "ann", env: eval.Env{Policies: pol(field("b", ir.BoolValue(false))), Features: map[string]bool{"cluster": true}}, want: "who"},
		{name: "n small", who: "dan", env: eval.Env{Policies: pol(field("n", ir.IntValue(2)))}, want: "sum"},
		{name: "m.k small", who: "dan", env: eval.Env{Policies: pol(field("m", m(ir.IntValue(1), ir.StringValue("x"))))}, want: "sum"},
		{name: "trajectory", who: "dan", env: eval.Env{Features: map[string]bool{"trajectory": true}}, want: "t"},
		{name: "m.t other", who: "dan", env: eval.Env{Features: map[string]bool{"trajectory": true}, Policies: pol(field("m", m(ir.IntValue(2), ir.StringValue("y"))))}},
		{name: "m.t absent", who: "dan", env: eval.Env{Features: map[string]bool{"trajectory": true}, Policies: pol(field("m", ir.MapValue(map[string]ir.Value{"k": ir.IntValue(2)})))}},
		{name: "s a number", who: "dan", env: eval.Env{Policies: pol(field("s", ir.IntValue(1)))}, want: "unsupported"},
		{name: "m not a map", who: "dan", env: eval.Env{Policies: pol(field("m", ir.IntValue(5)))}, want: "unsupported"},
		{name: "n a percentile", who: "dan", env: eval.Env{Policies: pol(field("n", ir.PercentileMicros(95_000_000)))}, want: "unsupported"},
		{name: "s too long", who: "dan", env: eval.Env{Policies: pol(field("s", ir.StringValue(strings.Repeat("s", 20000))))}, want: "unsupported"},
	} {
		line := `{"who":` + lllString(tc.who) + `}`
		if tc.want == "unsupported" {
			ctx := context.Background()
			s, _ := span.Parse([]byte(line), span.Limits{})
			if vi, _, err := b.in.CheckSpanEnv(ctx, "v", s, &tc.env); !errors.Is(err, vm.ErrUnsupported) {
				t.Errorf("%s: %v, %v; want ErrUnsupported", tc.name, vi, err)
			}
			continue
		}
		vi := b.sameEnv(t, line, &tc.env)
		got := ""
		if vi != nil {
			got = strings.TrimPrefix(vi.Detail, "check failed: ")
		}
		if got != tc.want {
			t.Errorf("%s: the interpreter says %v, want %q", tc.name, vi, tc.want)
		}
	}
}

// TestDeadline: the module answers a run the deadline and the context
// cannot have decided as the interpreter does; a run they may have
// decided is the interpreter's (vm.ErrUnsupported): one whose context is
// done and that counted a step (the interpreter fails at its first), one
// that counted steps where the interpreter looks at the clock (256 and
// more, or when its budget runs out) and took longer than its deadline.
func TestDeadline(t *testing.T) {
	elems := strings.Repeat(`"a", `, 300)
	long := compileBoth(t, "validator v {\n  check who in ["+elems+"\"dan\"]\n  on_fail \"warn\"\n}\n") // 304 steps
	short := compileBoth(t, "validator v {\n  check who == \"dan\"\n  on_fail \"warn\"\n}\n")           // 3 steps
	fields := compileBoth(t, "validator v {\n  require field \"who\"\n  on_fail \"warn\"\n}\n")         // none
	line := `{"who":"dan"}`
	s, _ := span.Parse([]byte(line), span.Limits{})
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name  string
		b     backends
		ctx   context.Context
		env   eval.Env
		eval  string // what the interpreter says with env and ctx: "" passes
		fault bool   // the module leaves the run to the interpreter
	}{
		{name: "long, no deadline", b: long, env: eval.Env{Timeout: -1}},
		{name: "long, an hour", b: long, env: eval.Env{Timeout: time.Hour}},
		{name: "long, deadline passed", b: long, env: eval.Env{Timeout: time.Nanosecond}, eval: "LLL106", fault: true},
		{name: "short, deadline passed", b: short, env: eval.Env{Timeout: time.Nanosecond}},
		{name: "short, budget out, deadline passed", b: short, env: eval.Env{Timeout: time.Nanosecond, MaxSteps: 2}, eval: "LLL106", fault: true},
		{name: "short, budget out, no deadline", b: short, env: eval.Env{Timeout: -1, MaxSteps: 2}, eval: "LLL100"},
		{name: "long, canceled", b: long, ctx: canceled, env: eval.Env{Timeout: -1}, eval: "LLL101", fault: true},
		{name: "short, canceled", b: short, ctx: canceled, env: eval.Env{Timeout: -1}, eval: "LLL101", fault: true},
		{name: "no steps, canceled", b: fields, ctx: canceled, env: eval.Env{Timeout: time.Nanosecond}},
	} {
		ctx := tc.ctx
		if ctx == nil {
			ctx = context.Background()
		}
		want := tc.b.ev.CheckSpan(ctx, s, &tc.env)
		if (want == nil) != (tc.eval == "") || want != nil && !strings.Contains(want.Detail, tc.eval) {
			t.Errorf("%s: the interpreter says %v, want %q", tc.name, want, tc.eval)
		}
		got, _, err := tc.b.in.CheckSpanEnv(ctx, "v", s, &tc.env)
		switch {
		case tc.fault && !errors.Is(err, vm.ErrUnsupported):
			t.Errorf("%s: %v, %v; want ErrUnsupported", tc.name, got, err)
		case !tc.fault && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case !tc.fault && (got == nil) != (want == nil):
			t.Errorf("%s: the module says %v, the interpreter %v", tc.name, got, want)
		}
	}
}

// TestMismatch: a description that is not what codegen makes of the
// program is refused (a description that lost a field would let the
// module read what the host did not write); the bytes are not compared.
func TestMismatch(t *testing.T) {
	p, errs := lll.Compile([]lll.Source{{Name: "v.lll", Text: []byte(envSrc)}})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	for name, change := range map[string]func(o *codegen.Output){
		"as compiled":     func(*codegen.Output) {},
		"another byte":    func(o *codegen.Output) { o.Wasm = slices.Clone(o.Wasm); o.Wasm[len(o.Wasm)-1] ^= 1 },
		"no features":     func(o *codegen.Output) { o.Features = nil },
		"no strings":      func(o *codegen.Output) { o.Strings = nil },
		"a policy's path": func(o *codegen.Output) { o.Policies = slices.Clone(o.Policies); o.Policies[0].Path = []string{"x"} },
		"a point's kinds": func(o *codegen.Output) { o.Points = slices.Clone(o.Points); o.Points[3].Kinds[0] = ir.Duration },
	} {
		out, err := codegen.Compile(p)
		if err != nil {
			t.Fatal(err)
		}
		change(out)
		m, err := vm.Compile(context.Background(), p, out)
		if name == "as compiled" || name == "another byte" {
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
		} else if !errors.Is(err, vm.ErrMismatch) {
			t.Errorf("%s: %v, %v; want ErrMismatch", name, m, err)
		}
		if m != nil {
			_ = m.Close(context.Background())
		}
	}
}
