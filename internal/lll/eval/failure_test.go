package eval_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/loglineos/loglineos/internal/lll"
	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/lll/ir"
	"github.com/loglineos/loglineos/internal/span"
)

// TestSpanViolation: a failure a second backend reports is worded as
// CheckSpan words it; a failure that does not fit the validator is an
// error.
func TestSpanViolation(t *testing.T) {
	src := "validator v {\n  require field \"who\"\n  check who == \"dan\" else \"not dan\"\n  reject unknown fields\n  on_fail \"reject\"\n}\n"
	_, v := compileValidator(t, "v", src)
	for _, tc := range []struct {
		span string
		f    eval.Failure
	}{
		{`{"id":"x"}`, eval.Failure{Why: eval.WhyRequired, Rule: 0}},
		{`{"who":""}`, eval.Failure{Why: eval.WhyEmpty, Rule: 0}},
		{`{"who":"ann"}`, eval.Failure{Why: eval.WhyCheck, Rule: 1}},
		{`{"who":"dan","extra":1}`, eval.Failure{Why: eval.WhyUnknown, Rule: 2, Member: 0}}, // members in canonical order,
	} {
		s, err := span.Parse([]byte(tc.span), span.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		got, err := v.SpanViolation(s, tc.f)
		if err != nil {
			t.Errorf("%s: %v", tc.span, err)
			continue
		}
		if diff := cmp.Diff(v.CheckSpan(context.Background(), s, nil), got); diff != "" {
			t.Errorf("%s: (-CheckSpan +SpanViolation):\n%s", tc.span, diff)
		}
	}
	s, _ := span.Parse([]byte(`{"who":"dan","extra":1}`), span.Limits{})
	for _, f := range []eval.Failure{
		{Why: eval.WhyRequired, Rule: 3},
		{Why: eval.WhyRequired, Rule: -1},
		{Why: eval.WhyBudget, Rule: -1}, // no guard
		{Why: eval.WhyCheck, Rule: 0},
		{Why: eval.WhyNotOneOf, Rule: 0}, // no in [...]
		{Why: eval.WhyUnknown, Rule: 2, Member: 2},
		{Why: 99, Rule: 0},
	} {
		if vi, err := v.SpanViolation(s, f); err == nil {
			t.Errorf("%+v: %v, want an error", f, vi)
		}
	}
}

// TestSpanViolationFault: an arithmetic fault or an order of values
// without one a second backend reports (in the guard, in a check) is
// worded as CheckSpan words it.
func TestSpanViolationFault(t *testing.T) {
	src := "validator w {\n  when 9000000000000 * len(who) >= 0\n  check 1 / len(did) > 0\n  check did < who\n  on_fail \"reject\"\n}\n"
	p, v := compileValidator(t, "w", src)
	guard, check, order := p.Validators[0].Guard.Args[0], p.Validators[0].Rules[0].Cond.Args[0], p.Validators[0].Rules[1].Cond
	for _, tc := range []struct {
		span string
		f    eval.Failure
	}{
		{`{"who":"dan"}`, eval.Failure{Why: eval.WhyFault, Rule: -1, Pos: guard.Pos, Fault: eval.FaultOverflow, Op: guard.Op,
			A: ir.IntValue(9000000000000), B: ir.IntValue(3)}},
		{`{"who":""}`, eval.Failure{Why: eval.WhyFault, Rule: 0, Pos: check.Pos, Fault: eval.FaultDivZero, Op: check.Op,
			A: ir.IntValue(1), B: ir.IntValue(0)}},
		{`{"did":"x"}`, eval.Failure{Why: eval.WhyFault, Rule: 1, Pos: order.Pos, Fault: eval.FaultOrder, Op: order.Op,
			A: ir.StringValue("x"), B: ir.NullValue()}},
	} {
		sameViolation(t, v, tc.span, nil, tc.f, "LLL102", "LLL103")
	}
	s, _ := span.Parse([]byte(`{"who":"dan"}`), span.Limits{})
	for _, f := range []eval.Failure{
		{Why: eval.WhyFault, Rule: 0},                           // no fault
		{Why: eval.WhyFault, Rule: 0, Fault: 99},                // an unknown fault
		{Why: eval.WhyFault, Rule: 2, Fault: eval.FaultDivZero}, // no such rule
	} {
		if vi, err := v.SpanViolation(s, f); err == nil {
			t.Errorf("%+v: %v, want an error", f, vi)
		}
	}
}

// TestSpanViolationStrings: the faults of strings a second backend
// reports (lower of a null, a concatenation with a null, the byte budget
// running out) are worded as CheckSpan words them.
func TestSpanViolationStrings(t *testing.T) {
	src := "validator w {\n  check upper(did) != \"\"\n  check who + this != \"\"\n  check lower(who) != \"\"\n  on_fail \"reject\"\n}\n"
	p, v := compileValidator(t, "w", src)
	upper, concat, lower := p.Validators[0].Rules[0].Cond.Args[0], p.Validators[0].Rules[1].Cond.Args[0], p.Validators[0].Rules[2].Cond.Args[0]
	for _, tc := range []struct {
		span     string
		maxBytes int64
		f        eval.Failure
	}{
		{`{"who":"dan"}`, 0, eval.Failure{Why: eval.WhyFault, Rule: 0, Pos: upper.Pos, Fault: eval.FaultType, Op: upper.Op, Name: "upper",
			A: ir.NullValue()}},
		{`{"who":"dan","did":"x"}`, 0, eval.Failure{Why: eval.WhyFault, Rule: 1, Pos: concat.Pos, Fault: eval.FaultType, Op: concat.Op,
			A: ir.StringValue("dan"), B: ir.NullValue()}},
		{`{"who":"dan","did":"x","this":"y"}`, 200, eval.Failure{Why: eval.WhyFault, Rule: 2, Pos: lower.Pos, Fault: eval.FaultBytes, Budget: 200}},
	} {
		sameViolation(t, v, tc.span, &eval.Env{MaxBytes: tc.maxBytes, Timeout: -1}, tc.f, "LLL102", "LLL105")
	}
}

// compileValidator compiles src and returns it and its validator name.
func compileValidator(t *testing.T, name, src string) (*ir.Program, *eval.Validator) {
	t.Helper()
	p, errs := lll.Compile([]lll.Source{{Name: name + ".lll", Text: []byte(src)}})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	ep, err := eval.Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	return p, ep.Validator(name)
}

// sameViolation checks that CheckSpan with env fails the span line with
// one of the codes and that SpanViolation words f as CheckSpan does.
func sameViolation(t *testing.T, v *eval.Validator, line string, env *eval.Env, f eval.Failure, codes ...string) {
	t.Helper()
	s, err := span.Parse([]byte(line), span.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	want := v.CheckSpan(context.Background(), s, env)
	if want == nil || !slices.ContainsFunc(codes, func(c string) bool { return strings.Contains(want.Detail, c) }) {
		t.Fatalf("%s: CheckSpan gives %v, want a violation of %v", line, want, codes)
	}
	got, err := v.SpanViolation(s, f)
	if err != nil {
		t.Errorf("%s: %v", line, err)
		return
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s: (-CheckSpan +SpanViolation):\n%s", line, diff)
	}
}
