package wasmtest

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/loglineos/loglineos/internal/lll/abi"
	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/lll/ir"
)

// SpanVariants are the members of a valid span, as raw JSON, and the variants the generator
// draws each member from: valid values, and each kind of invalid one.
func SpanVariants() map[string][]string {
	return map[string][]string{
		"id":                             {`"s_01JD8X3K2M4N5P6Q7R8S9T0V1W"`, `""`, "-"},
		"tenant":                         {`"t_voulezvous"`, `""`, "-"},
		"who":                            {`"dan"`, `""`, "-", `"` + strings.Repeat("w", 80) + `"`},
		"did":                            {`"sale.post"`, `""`, "-"},
		"this":                           {`"order:12345"`, `""`, "-"},
		"when":                           {`"2025-10-05T22:18:07Z"`, `"2025-10-05T22:18:07.214+02:00"`, `"2025-13-45"`, `"yesterday"`, `""`, "-", `"` + strings.Repeat("9", 70) + `"`},
		"status":                         {`"confirmed"`, `"pending"`, `"rejected"`, `"cancelled"`, `"confirmed "`, `"Confirmed"`, `"confirme"`, `""`, "-"},
		"confirmed_by":                   {"-", `["pos://register-7"]`, `[]`, `["a","b"]`},
		"data":                           {"-", `{}`, `{"gross":19.9,"items":3}`},
		"extra":                          {"-", `1`, `"x"`},
		"":                               {"-", `null`},
		"aaa":                            {"-", `true`},
		"zzz_" + strings.Repeat("z", 70): {"-", `0`},
	}
}

// GenSpan draws one span: mostly valid members, sometimes one of the
// invalid variants, members in a random order.
func GenSpan(r *rand.Rand, vs map[string][]string) []byte {
	names := make([]string, 0, len(vs))
	for k := range vs {
		names = append(names, k)
	}
	slices.Sort(names)
	r.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	var b strings.Builder
	b.WriteByte('{')
	for _, k := range names {
		opts := vs[k]
		v := opts[0]
		if r.IntN(4) == 0 {
			v = opts[r.IntN(len(opts))]
		}
		if v == "-" {
			continue
		}
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		q, _ := json.Marshal(k)
		b.Write(q)
		b.WriteByte(':')
		b.WriteString(v)
	}
	b.WriteByte('}')
	return []byte(b.String())
}

// Gen writes random well-typed expressions of the subset codegen
// compiles: has over every top-level field, the string fields' values,
// matches with a constant pattern,
// string, number and bool constants, ==, !=, the orders over numbers, in
// over list literals, len of a string, + - * / and unary minus over
// numbers (with constants that overflow and divide by zero), the orders
// over strings (null among them), lower, upper and concatenation of
// strings (null and non-ASCII among them), not, and, or.
type Gen struct{ R *rand.Rand }

// The string fields, every field, and the string constants drawn.
func genStrFields() []string { return []string{"id", "tenant", "who", "did", "this", "status"} }
func genAllFields() []string {
	return []string{"id", "tenant", "who", "did", "this", "when", "status", "confirmed_by", "data"}
}
func genStrings() []string {
	return []string{`"dan"`, `"sale.post"`, `""`, `"confirmed"`, `"x"`, `"é"`, `"DAN"`, `"Sale."`}
}

// genGlobs are the patterns of matches drawn.
func genGlobs() []string {
	return []string{`"sale.*"`, `"*"`, `"d?n"`, `"[a-d]*"`, `"*.post"`, `"[^x]*"`, `"?"`, `"*é*"`, `"con*ed"`}
}

func (g Gen) pick(s []string) string { return s[g.R.IntN(len(s))] }

func (g Gen) str() string {
	switch g.R.IntN(8) {
	case 0, 1:
		return g.pick(genStrings())
	case 2:
		return g.pick([]string{"policy.p.s", "policy.p.m.t", "data.note"})
	}
	return g.pick(genStrFields())
}

// strExpr is a string: most often a field or constant, else the case of
// one or a concatenation.
func (g Gen) strExpr(depth int) string {
	if depth <= 0 || g.R.IntN(3) != 0 {
		return g.str()
	}
	switch g.R.IntN(3) {
	case 0:
		return "lower(" + g.strExpr(depth-1) + ")"
	case 1:
		return "upper(" + g.strExpr(depth-1) + ")"
	}
	// One side of a known type: the checker types the sum of two values
	// known only at run time (data.note + policy.p.m.t) a number.
	return "(" + g.strExpr(depth-1) + " + " + g.pick(append(genStrings(), genStrFields()...)) + ")"
}

// genNumbers are number constants drawn besides small integers: near the
// largest number (sums and products overflow), fractions (quotients grow)
// and zero (division by zero).
func genNumbers() []string {
	return []string{"9223372036853.999999", "9000000000000", "3037000", "0.5", "0.000001", "0", "0", "1.25"}
}

func (g Gen) num(depth int) string {
	n := 6
	if depth <= 0 {
		n = 3
	}
	switch g.R.IntN(n) {
	case 0:
		return fmt.Sprint(g.R.IntN(12))
	case 1:
		if g.R.IntN(4) == 0 {
			return g.pick([]string{"policy.p.n", "policy.p.m.k", "data.gross", "data.m.k"})
		}
		return g.pick(genNumbers())
	case 2:
		if g.R.IntN(5) == 0 {
			return "len(confirmed_by)"
		}
		return "len(" + g.strExpr(1) + ")"
	case 3:
		return "-(" + g.num(depth-1) + ")"
	}
	return "(" + g.num(depth-1) + g.pick([]string{" + ", " - ", " * ", " / "}) + g.num(depth-1) + ")"
}

// dur is a duration: constants (the largest among them), the policy's,
// sums and differences, products and quotients by numbers, differences of
// instants.
func (g Gen) dur(depth int) string {
	n := 5
	if depth <= 0 {
		n = 2
	}
	switch g.R.IntN(n) {
	case 0:
		return g.pick([]string{"1h", "30m", "0s", "2562047h", "90m", "1ms"})
	case 1:
		return "policy.p.d"
	case 2:
		return "(" + g.dur(depth-1) + g.pick([]string{" + ", " - "}) + g.dur(depth-1) + ")"
	case 3:
		return "(" + g.dur(depth-1) + g.pick([]string{" * ", " / "}) + g.pick(genNumbers()) + ")" // a number of known type
	}
	return "(" + g.instant(depth-1) + " - " + g.instant(depth-1) + ")"
}

// instant is the instant of when (written (when), which marks a program
// that reads it), moved by durations.
func (g Gen) instant(depth int) string {
	if depth <= 0 || g.R.IntN(2) == 0 {
		return "(when)"
	}
	return "(" + g.instant(depth-1) + g.pick([]string{" + ", " - "}) + g.dur(depth-1) + ")"
}

func (g Gen) boolean(depth int) string {
	n := 8
	if depth <= 0 {
		n = 5
	}
	switch g.R.IntN(n) {
	case 0:
		switch g.R.IntN(6) {
		case 0:
			return "features." + g.pick(abi.Features())
		case 1:
			return "policy.p.b"
		case 2:
			return "has(data." + g.pick([]string{"gross", "note", "m.k", "ok"}) + ")"
		case 3:
			return "data.ok"
		}
		return "has(" + g.pick(genAllFields()) + ")"
	case 4:
		return g.strExpr(1) + " matches " + g.pick(genGlobs())
	case 1:
		return g.strExpr(2) + g.pick([]string{" == ", " != ", " < ", " <= ", " > ", " >= "}) + g.strExpr(2)
	case 2:
		cmp := g.pick([]string{" < ", " <= ", " > ", " >= ", " == ", " != "})
		switch g.R.IntN(5) {
		case 0:
			return g.dur(2) + cmp + g.dur(2)
		case 1:
			return g.instant(2) + cmp + g.instant(2)
		}
		return g.num(2) + cmp + g.num(2)
	case 3:
		switch g.R.IntN(5) {
		case 0:
			return g.str() + " in confirmed_by"
		case 1:
			return g.str() + " in policy.p.l"
		}
		elems := make([]string, g.R.IntN(4))
		for i := range elems {
			elems[i] = g.str()
		}
		return g.str() + " in [" + strings.Join(elems, ", ") + "]"
	case 5:
		return "not (" + g.boolean(depth-1) + ")"
	case 6:
		return "(" + g.boolean(depth-1) + ") and (" + g.boolean(depth-1) + ")"
	}
	return "(" + g.boolean(depth-1) + ") or (" + g.boolean(depth-1) + ")"
}

// Env draws what a run sees: each feature flag on or off, and the policy
// p (see program) as the program has it or overridden, its keys
// sometimes absent, sometimes of another kind than the program's.
func (g Gen) Env() eval.Env {
	var env eval.Env
	for _, f := range abi.Features() {
		if g.R.IntN(2) == 0 {
			if env.Features == nil {
				env.Features = map[string]bool{}
			}
			env.Features[f] = true
		}
	}
	if g.R.IntN(2) == 0 {
		return env
	}
	odd := func() bool { return g.R.IntN(10) == 0 } // a value of another kind
	num := func() ir.Value {
		if odd() {
			return ir.StringValue("3")
		}
		return []ir.Value{ir.IntValue(0), ir.IntValue(7), ir.NumberMicros(500000), ir.NumberMicros(9223372036853999999)}[g.R.IntN(4)]
	}
	str := func() ir.Value {
		if odd() {
			return ir.IntValue(1)
		}
		return ir.StringValue(g.pick([]string{"dan", "DAN", "", "é", "sale.post"}))
	}
	pol := &ir.Policy{Name: "p"}
	for _, key := range []string{"b", "d", "l", "m", "n", "s"} { // sorted, as Policy.Fields are
		if g.R.IntN(3) == 0 {
			continue
		}
		var v ir.Value
		switch key {
		case "b":
			v = ir.BoolValue(g.R.IntN(2) == 0)
			if odd() {
				v = ir.IntValue(1)
			}
		case "m":
			m := map[string]ir.Value{}
			if g.R.IntN(4) != 0 {
				m["k"] = num()
			}
			if g.R.IntN(4) != 0 {
				m["t"] = str()
			}
			v = ir.MapValue(m)
			if odd() {
				v = ir.IntValue(5)
			}
		case "d":
			v = ir.DurationValue(time.Duration(g.R.Int64N(1e13)))
			if odd() {
				v = ir.IntValue(1)
			}
		case "l":
			var l []ir.Value
			for range g.R.IntN(3) {
				l = append(l, str())
			}
			v = ir.ListValue(l)
			if odd() {
				v = ir.NullValue()
			}
		case "n":
			v = num()
		case "s":
			v = str()
		}
		pol.Fields = append(pol.Fields, &ir.PolicyField{Key: key, Value: v})
	}
	env.Policies = map[string]*ir.Policy{"p": pol}
	return env
}

// Program writes a span validator: most often a guard, a field rule or
// two, one to three check rules.
func (g Gen) Program() string {
	var b strings.Builder
	b.WriteString("policy p {\n  n: 3\n  s: \"dan\"\n  b: true\n  d: 90m\n  l: [\"dan\", \"x\"]\n  m: { k: 2, t: \"x\" }\n}\n")
	b.WriteString("validator g {\n")
	if g.R.IntN(3) != 0 {
		b.WriteString("  when " + g.boolean(1+g.R.IntN(3)) + "\n")
	}
	if g.R.IntN(3) == 0 {
		b.WriteString(`  require field "who"` + "\n")
	}
	if g.R.IntN(3) == 0 {
		b.WriteString("  " + g.pick([]string{`require field "data.gross" as "number"`, `allow field "data.note" as "nonempty" in ["DAN", "x"]`,
			`allow field "data.m.k" as "integer" in [2, 9223372036853.999999, true]`, `allow field "data.ok" as "bool"`,
			`allow field "data.m" as "object"`}) + "\n")
	}
	for i := range 1 + g.R.IntN(3) {
		b.WriteString("  check " + g.boolean(3))
		if i%2 == 1 {
			b.WriteString(` else "rule ` + fmt.Sprint(i) + `"`)
		}
		b.WriteString("\n")
	}
	if g.R.IntN(3) == 0 {
		b.WriteString("  reject unknown fields\n")
	}
	b.WriteString("  on_fail \"reject\"\n}\n")
	return b.String()
}

// ExprVariants are the span members the expressions' spans draw from:
// those of the canonical contract's test and values the expressions'
// constants name.
func ExprVariants() map[string][]string {
	vs := SpanVariants()
	vs["data"] = append([]string{`{"gross":0,"note":"DAN","ok":true,"m":{"k":2}}`}, vs["data"]...) // mostly this one
	vs["data"] = append(vs["data"], `{"gross":"19.9","note":"x"}`,
		`{"note":"é","ok":false,"m":3,"gross":7}`, `{"gross":-5.5,"m":{"k":"x"},"note":null}`, `{"gross":3,"m":{"k":9223372036853.999999}}`)
	for _, k := range []string{"who", "did", "this", "status", "tenant"} {
		vs[k] = append(vs[k], `"dan"`, `"sale.post"`, `"x"`, `"confirmed"`, `""`, `"é"`, `"da"`, `"DAN"`, `"Sale.Post"`, `"ÉTÉ"`, "-", "-")
	}
	return vs
}
