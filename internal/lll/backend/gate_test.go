package backend

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/loglineos/loglineos/internal/lll"
	"github.com/loglineos/loglineos/internal/lll/abi"
	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/lll/ir"
	"github.com/loglineos/loglineos/internal/lll/wasm/codegen"
	"github.com/loglineos/loglineos/internal/span"
	"github.com/loglineos/loglineos/stdlib"
)

// gateSpans is the size of the gate's span corpus.
const gateSpans = 10_000

// gateProgram is one program of the gate's corpus.
type gateProgram struct {
	name string
	prog *ir.Program
	out  *codegen.Output
}

// gatePrograms returns the corpus's programs: the standard bundle's and
// every golden program (internal/lll/testdata) that compiles and whose
// span validators the wasm backend compiles; skipped lists the others
// with a span validator, and why.
func gatePrograms(t *testing.T) (progs []gateProgram, skipped []string) {
	t.Helper()
	p, err := stdlib.Compile()
	if err != nil {
		t.Fatal(err)
	}
	out, err := codegen.Compile(p)
	if err != nil {
		t.Fatalf("the standard bundle does not compile to wasm: %v", err)
	}
	progs = append(progs, gateProgram{"stdlib", p, out})
	for _, c := range goldenCases(t) {
		p, errs := lll.Compile(c.srcs)
		if len(errs) > 0 || !hasSpanValidator(p) {
			continue
		}
		out, err := codegen.Compile(p)
		if err != nil {
			skipped = append(skipped, c.name+": "+err.Error())
			continue
		}
		progs = append(progs, gateProgram{c.name, p, out})
	}
	return progs, skipped
}

// spanValidators returns the validators of ep over spans.
func spanValidators(ep *eval.Program) []*eval.Validator {
	var vs []*eval.Validator
	for _, v := range ep.Validators() {
		if v.AppliesTo(abi.InputSpan) {
			vs = append(vs, v)
		}
	}
	return vs
}

func hasSpanValidator(p *ir.Program) bool {
	for _, v := range p.Validators {
		if slices.Contains(v.Input, abi.InputSpan) {
			return true
		}
	}
	return false
}

// gateCorpus returns gateSpans spans: every span line of the golden
// inputs, then mutations of them: members replaced by values seen under
// the same name elsewhere in the corpus or by values of other kinds
// (empty, null, numbers, long and non-ASCII strings, lists, objects),
// removed, or added. The seed is fixed: the corpus is the same on every
// run.
func gateCorpus(t *testing.T) []*span.Span {
	t.Helper()
	var base []map[string]json.RawMessage
	for _, c := range goldenCases(t) {
		for _, line := range c.lines {
			var m map[string]json.RawMessage
			if json.Unmarshal([]byte(line), &m) == nil && m["type"] == nil {
				base = append(base, m)
			}
		}
	}
	good, err := os.ReadFile("testdata/good_span.json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(good, &m); err != nil {
		t.Fatal(err)
	}
	base = append(base, m)
	pool := map[string][]json.RawMessage{}
	for _, m := range base {
		for k, v := range m {
			pool[k] = append(pool[k], v)
		}
	}
	names := make([]string, 0, len(pool))
	for k := range pool {
		names = append(names, k)
	}
	sort.Strings(names)
	others := []string{`""`, `null`, `0`, `-1.5`, `1e3`, `true`, `"Ünïcödé ß"`, `"` + strings.Repeat("x", 200) + `"`,
		`"sale.post"`, `"test.one"`, `"confirmed"`, `"2025-10-05T22:18:07Z"`, `"2025-10-05T22:18:07.5+02:00"`, `"2025-02-30T00:00:00Z"`,
		`[]`, `["a"]`, `["a",1]`, `{}`, `{"gross":19.9,"items":3}`, `{"gross":"x"}`, `"DAN"`, `"dan"`}
	r := rand.New(rand.NewPCG(13, 10000))
	var spans []*span.Span
	add := func(m map[string]json.RawMessage) {
		b, _ := json.Marshal(m)
		if s, err := span.Parse(b, span.Limits{}); err == nil {
			spans = append(spans, s)
		}
	}
	for _, m := range base {
		add(m)
	}
	for tries := 0; len(spans) < gateSpans; tries++ {
		if tries > 20*gateSpans {
			t.Fatalf("only %d of %d spans parse", len(spans), gateSpans)
		}
		src := base[r.IntN(len(base))]
		if r.IntN(3) == 0 {
			src = base[len(base)-1] // the valid canonical span, so that later rules are reached too
		}
		m := make(map[string]json.RawMessage, len(src)+1)
		for k, v := range src {
			m[k] = v
		}
		for n := r.IntN(3); n > 0; n-- {
			k := names[r.IntN(len(names))]
			switch r.IntN(8) {
			case 0:
				delete(m, k)
			case 1, 2:
				m[k] = json.RawMessage(others[r.IntN(len(others))])
			case 3:
				m[fmt.Sprintf("extra_%d", r.IntN(3))] = json.RawMessage(others[r.IntN(len(others))])
			default:
				m[k] = pool[k][r.IntN(len(pool[k]))]
			}
		}
		add(m)
	}
	return spans
}

// TestShadowGate is the gate every change to the IR, the interpreter or
// the wasm backend passes: every program of the corpus runs in shadow
// mode over the whole span corpus, at the default step budget and at a
// random smaller one, with the feature flags it reads on and off, and
// the backends never diverge. The corpus must keep its size and its
// variety: at least 10,000 spans, the standard bundle and several golden
// programs, at least ten of them both passing and failing, and fuel
// running out. (A program can be uniform on it: duration_arith's rules
// do not read the span.)
func TestShadowGate(t *testing.T) {
	ctx := context.Background()
	progs, skipped := gatePrograms(t)
	spans := gateCorpus(t)
	if len(spans) < gateSpans {
		t.Fatalf("%d spans, want %d", len(spans), gateSpans)
	}
	if len(progs) < 5 {
		t.Fatalf("only %d programs compile to wasm (skipped: %q)", len(progs), skipped)
	}
	r := rand.New(rand.NewPCG(17, 1))
	var evals, outOfFuel int64
	var varied int
	var uniform []string
	for _, gp := range progs {
		ep, err := eval.Compile(gp.prog)
		if err != nil {
			t.Fatal(err)
		}
		vs := spanValidators(ep)
		var divs []Divergence
		c, err := newSpans(ctx, Shadow, vs, gp.prog, gp.out, Options{OnDivergence: func(d Divergence) { divs = append(divs, d) }}, nil)
		if err != nil {
			t.Fatalf("%s: %v", gp.name, err)
		}
		pass, fail := 0, 0
		on := map[string]bool{}
		for _, f := range gp.out.Features {
			on[f] = true
		}
		for i, s := range spans {
			env := &eval.Env{Timeout: -1}
			if i%2 == 1 {
				env.MaxSteps = 1 + r.Int64N(12)
			}
			if i%4 >= 2 {
				env.Features = on // the flags the program reads, on for half the spans
			}
			for _, v := range vs {
				vi := c.CheckSpan(ctx, v, s, env)
				switch {
				case vi == nil:
					pass++
				case strings.Contains(vi.Detail, "LLL100"):
					outOfFuel++
					fail++
				default:
					fail++
				}
			}
		}
		st := c.Stats()
		evals += st.Runs
		if err := c.Close(ctx); err != nil {
			t.Fatal(err)
		}
		for i, d := range divs {
			if i == 5 {
				t.Errorf("%s: ... %d divergences in all", gp.name, len(divs))
				break
			}
			t.Errorf("%s: divergence: %s", gp.name, d)
		}
		if pass > 0 && fail > 0 {
			varied++
		} else {
			uniform = append(uniform, gp.name)
		}
		t.Logf("%s: %d evaluations, %d pass, %d fail, %d answered by the interpreter, %d divergences", gp.name, st.Runs, pass, fail, st.Fallbacks, st.Divergences)
	}
	if varied < 10 {
		t.Errorf("only %d programs both pass and fail on the corpus (always the same outcome: %q)", varied, uniform)
	}
	if outOfFuel == 0 {
		t.Error("no evaluation ran out of fuel: the smaller budgets do not reach the charge points")
	}
	t.Logf("%d programs, %d spans, %d evaluations in shadow, %d out of fuel; not compiled yet: %d programs", len(progs), len(spans), evals, outOfFuel, len(skipped))
	for _, s := range skipped {
		t.Logf("  not compiled: %s", s)
	}
}
