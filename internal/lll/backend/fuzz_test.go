package backend

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/loglineos/loglineos/internal/lll"
	"github.com/loglineos/loglineos/internal/lll/abi"
	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/lll/ir"
	"github.com/loglineos/loglineos/internal/lll/wasm/codegen"
	"github.com/loglineos/loglineos/internal/lll/wasm/wasmtest"
	"github.com/loglineos/loglineos/internal/span"
)

// FuzzShadow is the differential fuzz target: a program (any text; the
// fuzzer finds the ones that compile, starting from the golden programs
// and the standard bundle) and a span line (any bytes, starting from the
// golden inputs), run in shadow mode at the step budget the fuzzer
// picks: whenever the program compiles to WebAssembly and the line is a
// span, the backends must agree, violation and steps. CI runs it for a
// bounded time (.ci/run); its corpus is testdata/fuzz/FuzzShadow.
func FuzzShadow(f *testing.F) {
	var progs, lines [][]byte
	for _, c := range goldenCases(f) {
		for _, src := range c.srcs {
			progs = append(progs, src.Text)
		}
		for _, l := range c.lines {
			lines = append(lines, []byte(l))
		}
	}
	std, err := os.ReadFile("../../../stdlib/canonical.lll")
	if err != nil {
		f.Fatal(err)
	}
	good, err := os.ReadFile("testdata/good_span.json")
	if err != nil {
		f.Fatal(err)
	}
	progs, lines = append(progs, std, []byte(heavySource())), append(lines, good)
	for i, p := range progs {
		f.Add(p, lines[i%len(lines)], uint16(0))
		f.Add(p, good, uint16(i%16))
	}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, src, line []byte, budget uint16) {
		prog, errs := lll.Compile([]lll.Source{{Name: "f.lll", Text: src}})
		if len(errs) > 0 {
			return
		}
		out, err := codegen.Compile(prog)
		if err != nil {
			return
		}
		s, err := span.Parse(line, span.Limits{})
		if err != nil {
			return
		}
		ep, err := eval.Compile(prog)
		if err != nil {
			t.Fatalf("checked program does not compile for eval: %v", err)
		}
		var vs []*eval.Validator
		for _, v := range ep.Validators() {
			if v.AppliesTo(abi.InputSpan) {
				vs = append(vs, v)
			}
		}
		if len(vs) == 0 {
			return
		}
		c, err := newSpans(ctx, Shadow, vs, prog, out, Options{OnDivergence: func(d Divergence) {
			t.Errorf("divergence: %s\nprogram:\n%s", d, src)
		}}, nil)
		if err != nil {
			t.Fatalf("module of a program codegen compiled: %v", err)
		}
		defer c.Close(ctx)
		env := &eval.Env{Timeout: -1, MaxSteps: int64(budget)}
		if budget%2 == 1 {
			env.Features = map[string]bool{}
			for _, f := range out.Features {
				env.Features[f] = true
			}
		}
		for _, v := range vs {
			c.CheckSpan(ctx, v, s, env)
		}
		if st := c.Stats(); st.Runs != int64(len(vs)) {
			t.Errorf("stats %+v after %d validators", st, len(vs))
		}
	})
}

// FuzzShadowGenerated is the differential fuzz target over generated
// programs: the fuzzer picks the seeds of a well-typed program of what
// the wasm backend compiles (wasmtest.Gen, the grammar's expressions,
// guards, field rules, a policy), of what the run sees (feature flags,
// policy overrides, some of another kind) and of eight spans; each span
// runs in shadow mode at the default budget and at the one the fuzzer
// picks. The backends must agree.
func FuzzShadowGenerated(f *testing.F) {
	for i := range 32 {
		f.Add(uint64(i), uint64(i*7+1), uint16(i%20))
	}
	ctx := context.Background()
	vs := wasmtest.ExprVariants()
	f.Fuzz(func(t *testing.T, progSeed, spanSeed uint64, budget uint16) {
		g := wasmtest.Gen{R: rand.New(rand.NewPCG(progSeed, 1))}
		src := g.Program()
		prog, out, ep := compileGenerated(t, "g.lll", src)
		if out == nil {
			return // two values below data compared: refused, never approximated
		}
		vals := []*eval.Validator{ep.Validator("g")}
		c, err := newSpans(ctx, Shadow, vals, prog, out, Options{OnDivergence: func(d Divergence) {
			t.Errorf("divergence: %s\nprogram:\n%s", d, src)
		}}, nil)
		if err != nil {
			t.Fatalf("%v\n%s", err, src)
		}
		defer c.Close(ctx)
		world := g.Env()
		sr := rand.New(rand.NewPCG(spanSeed, 2))
		for range 8 {
			s, err := span.Parse(wasmtest.GenSpan(sr, vs), span.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			for _, steps := range []int64{0, int64(budget)} {
				env := world
				env.Timeout, env.MaxSteps = -1, steps
				c.CheckSpan(ctx, vals[0], s, &env)
			}
		}
	})
}

// FuzzShadowHosted is the differential fuzz target over generated
// programs with host calls and a router (wasmtest.Gen.HostedProgram): a
// generated host (env, key-value store, a call that fails now and then)
// and eight spans, each checked by the validator and routed by the
// router in shadow mode at the default budget and at the one the fuzzer
// picks. The backends must agree on violations, actions, errors, steps
// and host calls.
func FuzzShadowHosted(f *testing.F) {
	for i := range 32 {
		f.Add(uint64(i), uint64(i*5+3), uint16(i%25))
	}
	ctx := context.Background()
	vs := wasmtest.ExprVariants()
	f.Fuzz(func(t *testing.T, progSeed, spanSeed uint64, budget uint16) {
		g := wasmtest.Gen{R: rand.New(rand.NewPCG(progSeed, 3))}
		src := g.HostedProgram()
		prog, out, ep := compileGenerated(t, "h.lll", src)
		if out == nil {
			return // refused, never approximated
		}
		c, err := newSpans(ctx, Shadow, spanValidators(ep), prog, out, Options{OnDivergence: func(d Divergence) {
			t.Errorf("divergence: %s\nprogram:\n%s", d, src)
		}}, nil)
		if err != nil {
			t.Fatalf("%v\n%s", err, src)
		}
		defer c.Close(ctx)
		world, host := g.Env(), g.Host()
		sr := rand.New(rand.NewPCG(spanSeed, 4))
		for range 8 {
			s, err := span.Parse(wasmtest.GenSpan(sr, vs), span.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			for _, steps := range []int64{0, int64(budget)} {
				env := world
				env.Timeout, env.MaxSteps, env.Host = -1, steps, host
				for _, v := range c.Validators() {
					c.CheckSpan(ctx, v, s, &env)
				}
				for _, r := range ep.Routers() {
					_, _ = c.Route(ctx, r, eval.Input{Span: s}, &env)
				}
			}
		}
		if st := c.Stats(); st.Runs == 0 {
			t.Errorf("no evaluation ran on the module\n%s", src)
		}
	})
}

// compileGenerated compiles the generated program src for both backends;
// out is nil when the wasm backend refuses it (codegen.ErrUnsupported).
func compileGenerated(t *testing.T, name, src string) (*ir.Program, *codegen.Output, *eval.Program) {
	t.Helper()
	prog, errs := lll.Compile([]lll.Source{{Name: name, Text: []byte(src)}})
	if len(errs) > 0 {
		t.Fatalf("generated program does not compile: %v\n%s", errs, src)
	}
	out, err := codegen.Compile(prog)
	if errors.Is(err, codegen.ErrUnsupported) {
		return prog, nil, nil
	}
	if err != nil {
		t.Fatalf("%v\n%s", err, src)
	}
	ep, err := eval.Compile(prog)
	if err != nil {
		t.Fatal(err)
	}
	return prog, out, ep
}
