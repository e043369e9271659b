package vm_test

import (
	"context"
	"errors"
	"testing"

	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/lll/ir"
	"github.com/loglineos/loglineos/internal/lll/wasm/vm"
	"github.com/loglineos/loglineos/internal/span"
)

// TestTime: durations and the instant of when (its order, equality,
// sums, differences, products and quotients) give the interpreter's
// answer, overflow and division by zero worded with the operands as the
// interpreter shows them; a when that is absent or not RFC 3339 is the
// interpreter's to answer.
func TestTime(t *testing.T) {
	const line = `{"who":"dan","when":"2025-10-05T22:18:07.5+02:00"}`
	for _, tc := range []struct{ expr, fault string }{
		{"1h + 30m == 90m", ""},
		{"2h - 3h == -(1h)", ""},
		{"1h * 2 == 2h and 2 * 1h == 2h and 1h * 0.5 == 30m", ""},
		{"1h / 2 == 30m and 1ms / 3 < 1ms and 1ms / 0.000001 == 1000s", ""},
		{"1h < 2h and -(1h) < 0s and not (1h != 60m) and 2h >= 2h", ""},
		{"1h in [2h, 60m]", ""},
		{"1h / 0 > 0s", "division by zero"},
		{"2562047h + 2562047h > 0s", "arithmetic overflow in 2562047h add 2562047h"},
		{"1h * 9223372036853 > 0s", "arithmetic overflow in 1h mul 9223372036853"},
		{"when - when == 0s", ""},
		{"when > when - 1h and when - 1h < when and when >= when and when <= when", ""},
		{"when + 1h - when == 1h and when == when and not (when != when)", ""},
		{"when + 2562047h > when", `arithmetic overflow in "2025-10-05T20:18:07.5Z" add 2562047h`},
		{"when - 2562047h - 2562047h < when", "arithmetic overflow"},
		{"when - (when - 2562047h) == 2562047h", ""},
	} {
		edge(t, tc.expr, line, tc.fault)
	}
	b := compileBoth(t, "validator v {\n  check when > when - 1h\n  on_fail \"warn\"\n}\n")
	for _, l := range []string{`{"who":"dan"}`, `{"when":""}`, `{"when":"yesterday"}`} {
		s, err := span.Parse([]byte(l), span.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if vi, _, err := b.in.CheckSpan(context.Background(), "v", s, 0); !errors.Is(err, vm.ErrUnsupported) {
			t.Errorf("%s: %v, %v; want ErrUnsupported", l, vi, err)
		}
	}
}

// TestDurationPolicy: a policy value that is a duration, as the program
// has it and overridden.
func TestDurationPolicy(t *testing.T) {
	b := compileBoth(t, "policy limits {\n  grace: 90m\n}\nvalidator v {\n  check policy.limits.grace * 2 == 3h else \"grace\"\n  on_fail \"warn\"\n}\n")
	over := func(v ir.Value) *eval.Env {
		return &eval.Env{Policies: map[string]*ir.Policy{"limits": {Name: "limits", Fields: []*ir.PolicyField{{Key: "grace", Value: v}}}}}
	}
	if vi := b.sameEnv(t, `{}`, &eval.Env{}); vi != nil {
		t.Errorf("the program's grace: %v", vi)
	}
	if vi := b.sameEnv(t, `{}`, over(ir.DurationValue(3600e9))); vi == nil {
		t.Error("a grace of 1h passes")
	}
	s, _ := span.Parse([]byte(`{}`), span.Limits{})
	if vi, _, err := b.in.CheckSpanEnv(context.Background(), "v", s, over(ir.IntValue(1))); !errors.Is(err, vm.ErrUnsupported) {
		t.Errorf("a grace that is a number: %v, %v; want ErrUnsupported", vi, err)
	}
}
