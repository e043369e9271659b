package vm_test

import (
	"context"
	"errors"
	"math"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/loglineos/loglineos/internal/lll"
	"github.com/loglineos/loglineos/internal/lll/abi"
	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/lll/ir"
	"github.com/loglineos/loglineos/internal/lll/wasm/codegen"
	"github.com/loglineos/loglineos/internal/lll/wasm/layout"
	"github.com/loglineos/loglineos/internal/lll/wasm/vm"
	"github.com/loglineos/loglineos/internal/lll/wasm/wasmtest"
	"github.com/loglineos/loglineos/internal/span"
)

// TestDifferentialExprs runs the interpreter and the module over generated
// programs of the subset codegen compiles and generated spans: the same
// violation (every field) and the same fuel; then again with a step budget
// drawn at or below what the run needs: the module traps with TrapFuel
// exactly when the interpreter's violation is its LLL100 budget error, at
// the same step count and with the same violation; it traps with
// TrapFault exactly when the interpreter's violation is an LLL103
// arithmetic error or an LLL102 order of a null.
func TestDifferentialExprs(t *testing.T) {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(4, 4))
	g := wasmtest.Gen{R: r}
	vs := wasmtest.ExprVariants()
	seen := map[string]int{}
	const programs, spans = 250, 40
	for pn := range programs {
		src := g.Program()
		p, errs := lll.Compile([]lll.Source{{Name: "g.lll", Text: []byte(src)}})
		if len(errs) > 0 {
			t.Fatalf("program %d does not compile: %v\n%s", pn, errs, src)
		}
		out, err := codegen.Compile(p)
		if errors.Is(err, codegen.ErrUnsupported) && strings.Contains(err.Error(), "kind the expression does not fix") {
			seen["two values of data compared"]++ // data.gross == data.m.k
			continue
		}
		if err != nil {
			t.Fatalf("program %d: %v\n%s", pn, err, src)
		}
		ep, err := eval.Compile(p)
		if err != nil {
			t.Fatal(err)
		}
		ev := ep.Validator("g")
		m, err := vm.Compile(ctx, p, out)
		if err != nil {
			t.Fatalf("program %d: %v\n%s", pn, err, src)
		}
		in, err := m.NewInstance(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for sn := range spans {
			line := wasmtest.GenSpan(r, vs)
			s, err := span.Parse(line, span.Limits{})
			if err != nil {
				t.Fatalf("span %s: %v", line, err)
			}
			_, steps := ev.CheckSpanSteps(ctx, s, &eval.Env{Timeout: -1})
			envs := []eval.Env{{MaxSteps: eval.DefaultMaxSteps}}
			if steps > 0 {
				envs = append(envs, eval.Env{MaxSteps: 1 + r.Int64N(steps)}, eval.Env{MaxBytes: 50 + r.Int64N(600)})
			}
			for i := range envs {
				world := g.Env()
				envs[i].Features, envs[i].Policies = world.Features, world.Policies
			}
			for _, env := range envs {
				env.Timeout = -1
				budget := env.MaxSteps
				want, wantSteps := ev.CheckSpanSteps(ctx, s, &env)
				got, res, err := in.CheckSpanEnv(ctx, "g", s, &env)
				if errors.Is(err, vm.ErrUnsupported) {
					// Left to the interpreter: a policy value or a value
					// below data of another kind than the program's.
					switch {
					case strings.Contains(err.Error(), "policy."):
						if !oddPolicy(t, ep, out, &env) {
							t.Fatalf("program %d span %d %s: %v, but every policy value is of its kind\n%s", pn, sn, line, err, src)
						}
						seen["policy of another kind"]++
					case strings.Contains(src, "(when)") && !validWhen(s):
						seen["when not an instant"]++
					case len(out.Data) > 0:
						seen["data of another kind"]++ // data.gross is a string, or null
					default:
						t.Fatalf("program %d span %d %s: %v\n%s", pn, sn, line, err, src)
					}
					continue
				}
				if err != nil {
					t.Fatalf("program %d span %d %s budget %d: %v\n%s", pn, sn, line, budget, err, src)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Fatalf("program %d span %d %s budget %d: violation (-eval +wasm):\n%s\n%s", pn, sn, line, budget, diff, src)
				}
				if res.FuelUsed != wantSteps {
					t.Fatalf("program %d span %d %s budget %d: fuel used %d, eval counted %d steps\n%s", pn, sn, line, budget, res.FuelUsed, wantSteps, src)
				}
				if wantTrap := trapOf(want); res.Trap != wantTrap {
					t.Fatalf("program %d span %d %s budget %d: trap %d, want %d: eval's violation %v\n%s", pn, sn, line, budget, res.Trap, wantTrap, want, src)
				}
				seen[outcome(want)]++
			}
		}
		if err := m.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if seen["two values of data compared"] > programs/10 {
		t.Errorf("%d programs of %d not compiled", seen["two values of data compared"], programs)
	}
	for _, must := range []string{"policy of another kind", "data of another kind", "data field", "when not an instant", "pass", "check", "check else", "guard out of fuel", "check out of fuel", "field",
		"guard division by zero", "check division by zero", "guard overflow", "check overflow",
		"guard order of null", "check order of null", "guard case of null", "check case of null",
		"guard concatenation of null", "check concatenation of null", "guard byte budget", "check byte budget"} {
		if seen[must] == 0 {
			t.Errorf("no run gave %q; seen %v", must, seen)
		}
	}
	t.Logf("outcomes: %v", seen)
}

// validWhen reports whether the span's when is an instant, as the
// interpreter reads it.
func validWhen(s *span.Span) bool {
	_, ok := abi.ValidRFC3339(s.WhenRaw)
	return s.WhenOK || ok
}

// oddPolicy reports whether a policy value the module reads is, in env,
// of another kind than the program's own.
func oddPolicy(t *testing.T, ep *eval.Program, out *codegen.Output, env *eval.Env) bool {
	t.Helper()
	for _, ref := range out.Policies {
		def, err := ep.PolicyValue(nil, ref.Name, ref.Path)
		if err != nil {
			t.Fatal(err)
		}
		v, _ := ep.PolicyValue(env, ref.Name, ref.Path)
		nullOK := def.Kind() == ir.String || def.Kind() == ir.List // null is a string's, and no values
		if v.Kind() != def.Kind() && !(nullOK && v.IsNull()) {
			return true
		}
		for _, x := range v.List() {
			if def.Kind() == ir.List && x.Kind() != def.List()[0].Kind() {
				return true
			}
		}
	}
	return false
}

func outcome(vi *eval.Violation) string {
	if vi == nil {
		return "pass"
	}
	where := "check"
	if vi.Rule == "when" {
		where = "guard"
	}
	for _, k := range []struct{ in, name string }{
		{"error[LLL100]", "out of fuel"},
		{"division by zero", "division by zero"},
		{"arithmetic overflow", "overflow"},
		{"cannot order", "order of null"},
		{"er of a null", "case of null"},
		{"cannot add", "concatenation of null"},
		{"error[LLL105]", "byte budget"},
		{"error[LLL102]", "type error"},
	} {
		if strings.Contains(vi.Detail, k.in) {
			return where + " " + k.name
		}
	}
	switch {
	case strings.HasPrefix(vi.Detail, "check failed"):
		return "check"
	case strings.HasPrefix(vi.Detail, "rule "):
		return "check else"
	case strings.HasPrefix(vi.Field, "data."):
		return "data field"
	}
	return "field"
}

// TestFuelExhausted: a check of known steps runs out of fuel at the
// budget where the interpreter does, with trap code TrapFuel, the same
// count and the interpreter's violation (at the expression whose step
// exceeded the budget).
func TestFuelExhausted(t *testing.T) {
	ctx := context.Background()
	// 1 (in) + 1 (who) + 1 (the list) + 3 (its elements) = 6 steps.
	src := "validator f {\n  check who in [\"a\", \"b\", \"dan\"]\n  on_fail \"warn\"\n}\n"
	p, errs := lll.Compile([]lll.Source{{Name: "f.lll", Text: []byte(src)}})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	out, err := codegen.Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	ep, _ := eval.Compile(p)
	m, err := vm.Compile(ctx, p, out)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(ctx)
	in, err := m.NewInstance(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := span.Parse([]byte(`{"who":"dan"}`), span.Limits{})
	for budget := int64(1); budget <= 7; budget++ {
		want, steps := ep.Validator("f").CheckSpanSteps(ctx, s, &eval.Env{MaxSteps: budget, Timeout: -1})
		got, res, err := in.CheckSpan(ctx, "f", s, budget)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("budget %d: violation (-eval +wasm):\n%s", budget, diff)
		}
		wantTrap, wantSteps := uint32(layout.TrapFuel), budget+1
		if budget >= 6 {
			wantTrap, wantSteps = layout.TrapNone, 6
		}
		if res.Trap != wantTrap || res.FuelUsed != wantSteps || steps != wantSteps {
			t.Errorf("budget %d: trap %d after %d steps (eval %d), want trap %d after %d", budget, res.Trap, res.FuelUsed, steps, wantTrap, wantSteps)
		}
	}
}

// TestNoValidator: an instance answers only for its module's validators.
func TestNoValidator(t *testing.T) {
	_, _, pool := setup(t)
	ctx := context.Background()
	in, err := pool.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := span.Parse([]byte(`{}`), span.Limits{})
	if _, _, err := in.CheckSpan(ctx, "nope", s, 0); !errors.Is(err, vm.ErrNoValidator) {
		t.Errorf("err = %v, want ErrNoValidator", err)
	}
}

// TestArith: arithmetic at its edges gives the interpreter's answer: the
// same value (each true case holds for both), the same overflow where the
// interpreter reports one (including its overflows of a product or
// quotient of exactly 2^63, and its wrapping negation of the smallest
// number), division by zero, with the same fuel.
func TestArith(t *testing.T) {
	const minNum = "(-(9223372036853.999999) - 0.775809)" // the smallest number, -2^63 millionths
	for _, tc := range []struct {
		expr  string
		fault string // "": the expression holds
	}{
		{"7 / 2 == 3.5", ""},
		{"-(7) / 2 == -(3.5)", ""},
		{"1 / 3 == 0.333333", ""},
		{"-(1) / 3 == -(0.333333)", ""},
		{"2 / -(3) == -(0.666666)", ""},
		{"0.000001 * 0.5 == 0", ""},
		{"-(0.000001) * 0.5 == 0", ""},
		{"3037000 * 3037000 == 9223369000000", ""},
		{"1 / 0.000001 == 1000000", ""},
		{"9223372036853.999999 * 1 == 9223372036853.999999", ""},
		{"-(9223372036853.999999) * -(1) == 9223372036853.999999", ""},
		{"9223372036853.999999 + 0.775808 - 0.775808 == 9223372036853.999999", ""},
		{"-(" + minNum + ") == " + minNum, ""},
		{"0 - " + minNum + " == " + minNum, ""},
		{"len(who) * 2 - 1 == 5", ""},
		{"9223372036853.999999 + 0.775809 > 0", "arithmetic overflow"},
		{minNum + " - 0.000001 < 0", "arithmetic overflow"},
		{"1 - " + minNum + " == " + minNum + " + 1", ""}, // the interpreter negates the smallest number to itself, then adds
		{minNum + " * 1 < 0", "arithmetic overflow"},
		{minNum + " / 1 < 0", "arithmetic overflow"},
		{minNum + " * -(1) > 0", "arithmetic overflow"},
		{"4611686018427.387904 * 2 > 0", "arithmetic overflow"},
		{"-(4611686018427.387904) * 2 < 0", "arithmetic overflow"},
		{"9223372036853.999999 * 1.000001 > 0", "arithmetic overflow"},
		{"9223372036853 / 0.000001 > 0", "arithmetic overflow"},
		{"1 / 0 > 0", "division by zero"},
		{"0 / 0 > 0", "division by zero"},
		{"1 / (0.5 - 0.5) > 0", "division by zero"},
		{"1 / len(did) > 0", "division by zero"},
	} {
		edge(t, tc.expr, `{"who":"dan"}`, tc.fault)
	}
}

// TestStringOrder: strings are ordered by their bytes (unsigned, the
// shorter of a common prefix first) as the interpreter orders them; a null
// cannot be ordered (LLL102, worded with both operands).
func TestStringOrder(t *testing.T) {
	for _, tc := range []struct {
		expr  string
		fault string // "": the expression holds
	}{
		{`"da" < who`, ""},
		{`who < "dana"`, ""},
		{`who <= "dan" and who >= "dan"`, ""},
		{`"" < who`, ""},
		{`"x" < "é"`, ""},
		{`"é" > "z"`, ""},
		{`not ("b" < "a")`, ""},
		{`"ab" > "a"`, ""},
		{`did < who`, "cannot order null null and string"},
		{`who > did`, "cannot order string \"dan\" and null null"},
		{`did >= this`, "cannot order null null and null null"},
	} {
		edge(t, tc.expr, `{"who":"dan"}`, tc.fault)
	}
}

// edge checks a check rule over one span on both backends: the
// interpreter's verdict is the one expected (pass, or a violation whose
// detail has fault), and the module gives the same violation, trap and
// fuel.
func edge(t *testing.T, expr, line, fault string) {
	t.Helper()
	b := compileBoth(t, "validator v {\n  check "+expr+"\n  on_fail \"warn\"\n}\n")
	want := b.same(t, line)
	if (want == nil) != (fault == "") || want != nil && !strings.Contains(want.Detail, fault) {
		t.Fatalf("%s: the interpreter says %v, want fault %q", expr, want, fault)
	}
	if err := b.m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestArithRandom: products and quotients of random numbers of every
// magnitude (and sums and differences near the largest) give the
// interpreter's value or its overflow on both backends; the interpreter's
// verdict is checked against math/big (a product or quotient truncated
// toward zero overflows when its magnitude exceeds the largest number).
func TestArithRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	maxLit := big.NewInt(9223372036853999999) // the largest literal, in millionths
	// draw returns a number below 10^k millionths, k drawn from lo to
	// hi-1 (19: up to the largest literal), of either sign.
	draw := func(lo, hi int) *big.Int {
		limit := maxLit.Int64() + 1
		if k := lo + r.IntN(hi-lo); k < 19 {
			limit = int64(math.Pow10(k))
		}
		n := big.NewInt(r.Int64N(limit))
		if r.IntN(2) == 0 {
			n.Neg(n)
		}
		return n
	}
	lit := func(n *big.Int) string { return "(" + ir.FormatMicros(n.Int64()) + ")" }
	scale, maxNum := big.NewInt(ir.NumberScale), big.NewInt(math.MaxInt64)
	seen := map[string]int{}
	for range 200 {
		a, b := draw(0, 20), draw(0, 20)
		op, want := " * ", new(big.Int).Mul(a, b)
		want.Quo(want, scale)
		if r.IntN(2) == 0 {
			if r.IntN(2) == 0 {
				a, b = draw(14, 20), draw(0, 7) // a large number over one below 1
			}
			if b.Sign() == 0 {
				continue
			}
			op, want = " / ", new(big.Int).Mul(a, scale)
			want.Quo(want, b)
		}
		expr, fault := lit(a)+op+lit(b)+" > 0", "arithmetic overflow"
		if new(big.Int).Abs(want).Cmp(maxNum) <= 0 {
			if new(big.Int).Abs(want).Cmp(maxLit) > 0 {
				continue // a value no literal can name
			}
			expr, fault = lit(a)+op+lit(b)+" == "+lit(want), ""
		}
		edge(t, expr, `{}`, fault)
		seen[op+fault]++
	}
	for _, k := range []string{" * ", " / ", " * arithmetic overflow", " / arithmetic overflow"} {
		if seen[k] < 10 {
			t.Errorf("%d cases of %q, want 10 or more; seen %v", seen[k], k, seen)
		}
	}
}
