package lll_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/loglineos/loglineos/internal/lll"
	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/lll/ir"
	"github.com/loglineos/loglineos/internal/lll/scanner"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"24h", 24 * time.Hour, true},
		{"1h30m", 90 * time.Minute, true},
		{"250ms", 250 * time.Millisecond, true},
		{"7d", 0, false},
		{"168h", 168 * time.Hour, true},
		{"1.5h", 90 * time.Minute, true},
		{"6 hours", 0, false},
		{"h", 0, false},
		{"", 0, false},
		{"5", 0, false},
		{"-1h", 0, false},
		{"99999999999999h", 0, false},
	}
	for _, tt := range tests {
		got, ok := scanner.ParseDuration(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestNumbers(t *testing.T) {
	for _, s := range []string{"0", "60", "0.4", "-1.5", "19.9", "0.000001", "9000000000000"} {
		n, err := ir.ParseMicros(s)
		if err != nil {
			t.Errorf("ParseMicros(%q): %v", s, err)
			continue
		}
		if got := ir.FormatMicros(n); got != s {
			t.Errorf("FormatMicros(ParseMicros(%q)) = %q", s, got)
		}
	}
	for _, s := range []string{"1.1234567", "1e3", "", ".5", "99999999999999999"} {
		if _, err := ir.ParseMicros(s); err == nil {
			t.Errorf("ParseMicros(%q) accepted", s)
		}
	}
}

func TestGlob(t *testing.T) {
	tests := []struct {
		pat, s string
		want   bool
	}{
		{"heartbeat-*", "heartbeat-1", true},
		{"heartbeat-*", "heartbeat-", true},
		{"heartbeat-*", "xheartbeat-1", false},
		{"heartbeat-*", "heartbeat-a/b", false}, // path.Match: * stops at /
		{"sale.*", "sale.post", true},
		{"*.cancelled", "order.cancelled", true},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{`a\*`, "a*", true},
		{`a\*`, "ab", false},
		{"*a*b*", "xxaxxbxx", true},
		{"*a*b*", "xxbxxaxx", false},
		{"order-[0-9]", "order-7", true},
		{"order-[^0-9]", "order-7", false},
	}
	for _, tt := range tests {
		if got := eval.CompileGlob(tt.pat).Match(tt.s); got != tt.want {
			t.Errorf("%q matches %q = %v, want %v", tt.s, tt.pat, got, tt.want)
		}
	}
}

// TestOrderIndependent compiles the same files in two orders.
func TestOrderIndependent(t *testing.T) {
	a := lll.Source{Name: "a.lll", Text: []byte("policy p { x: 1 }\n")}
	b := lll.Source{Name: "b.lll", Text: []byte("validator v { check policy.p.x == 1 }\n")}
	p1, e1 := lll.Compile([]lll.Source{a, b})
	p2, e2 := lll.Compile([]lll.Source{b, a})
	if e1 != nil || e2 != nil {
		t.Fatal(e1, e2)
	}
	if diff := cmp.Diff(p1.String(), p2.String()); diff != "" {
		t.Error(diff)
	}
}

// TestEvalErrors checks the runtime errors: step budget, cancellation,
// arithmetic.
func TestEvalErrors(t *testing.T) {
	src := `
policy p { big: 9000000000000, zero: 0 }
validator budget { check len(who) + len(who) + len(who) + len(who) > 0 }
validator overflow { check policy.p.big * policy.p.big > 0 }
validator divzero { check 1 / policy.p.zero > 0 }
validator anytype { check data.gross > 0 }
`
	ep := compileEval(t, src)
	s := spanOf(t, `{"id":"a","who":"w","data":{"gross":"x"}}`)
	tests := []struct {
		validator string
		env       *eval.Env
		want      string
	}{
		{"budget", &eval.Env{MaxSteps: 3}, "cannot evaluate: e.lll:3:35: error[LLL100]: evaluation exceeded its budget of 3 steps"},
		{"budget", nil, ""},
		{"overflow", nil, "cannot evaluate: e.lll:4:41: error[LLL103]: arithmetic overflow in 9000000000000 mul 9000000000000"},
		{"divzero", nil, "cannot evaluate: e.lll:5:29: error[LLL103]: division by zero"},
		{"anytype", nil, `cannot evaluate: e.lll:6:38: error[LLL102]: cannot order string "x" and number 0`},
	}
	for _, tt := range tests {
		vi := ep.Validator(tt.validator).CheckSpan(t.Context(), s, tt.env)
		got := ""
		if vi != nil {
			got = vi.Detail
		}
		if got != tt.want {
			t.Errorf("%s: detail %q, want %q", tt.validator, got, tt.want)
		}
	}
}

// TestAllowedValuesOfEvents checks "in" on a derived event's fields: the
// value must be one of the list, a missing field is judged by require or
// allow, and the violation names the field and the values.
func TestAllowedValuesOfEvents(t *testing.T) {
	src := `
validator closes {
  input: "trajectory_closed"
  require field "reason" in ["timeout", "rule"]
}
validator scores {
  input: "trajectory_quality"
  allow field "score" in [0, 50, 100]
}
`
	ep := compileEval(t, src)
	ev := func(typ string, kv ...any) ir.Value {
		m := map[string]ir.Value{"type": ir.StringValue(typ)}
		for i := 0; i < len(kv); i += 2 {
			switch v := kv[i+1].(type) {
			case string:
				m[kv[i].(string)] = ir.StringValue(v)
			case int:
				m[kv[i].(string)] = ir.IntValue(int64(v))
			}
		}
		return ir.MapValue(m)
	}
	tests := []struct {
		validator string
		event     ir.Value
		want      string // the violation's detail; "" passes
	}{
		{"closes", ev("trajectory_closed", "reason", "rule"), ""},
		{"closes", ev("trajectory_closed", "reason", "manual"), `field "reason" is not one of "timeout", "rule": "manual"`},
		{"closes", ev("trajectory_closed"), `field "reason" is required`},
		{"scores", ev("trajectory_quality", "score", 50), ""},
		{"scores", ev("trajectory_quality"), ""},
		{"scores", ev("trajectory_quality", "score", 51), `field "score" is not one of 0, 50, 100: 51`},
	}
	for _, tt := range tests {
		res, err := ep.Validator(tt.validator).CheckEvent(t.Context(), tt.event, nil)
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		if res.Violation != nil {
			got = res.Violation.Detail
			if res.Violation.Field == "" {
				t.Errorf("%s %v: the violation names no field", tt.validator, tt.event)
			}
		}
		if got != tt.want {
			t.Errorf("%s %v: detail %q, want %q", tt.validator, tt.event, got, tt.want)
		}
	}
}
