package codegen_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"

	"github.com/google/go-cmp/cmp"
	"github.com/loglineos/loglineos/internal/lll"
	"github.com/loglineos/loglineos/internal/lll/ir"
	"github.com/loglineos/loglineos/internal/lll/wasm/codegen"
	"github.com/loglineos/loglineos/internal/lll/wasm/wasmtest"
	"github.com/loglineos/loglineos/stdlib"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func compileSrc(t *testing.T, src string) *ir.Program {
	t.Helper()
	p, errs := lll.Compile([]lll.Source{{Name: "t.lll", Text: []byte(src)}})
	if len(errs) > 0 {
		t.Fatalf("compile: %v", errs)
	}
	return p
}

// TestStdlib compiles the standard bundle's span validators (the canonical
// contract), checks the module with both validators and against its
// golden bytes (testdata/stdlib.wasm.hex, -update rewrites it).
func TestStdlib(t *testing.T) {
	p, err := stdlib.Compile()
	if err != nil {
		t.Fatal(err)
	}
	out, err := codegen.Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"canonical_contract_v1"}, out.Validators); diff != "" {
		t.Errorf("validators (-want +got):\n%s", diff)
	}
	wasmtest.Validate(t, "stdlib", out.Wasm)
	for range 3 {
		again, err := codegen.Compile(p)
		if err != nil || string(again.Wasm) != string(out.Wasm) {
			t.Fatalf("a second compilation differs (err %v)", err)
		}
	}
	golden(t, "stdlib.wasm.hex", out.Wasm)
}

// golden compares a module with its golden bytes in testdata/name
// (-update rewrites them).
func golden(t *testing.T, name string, wasm []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	got := hexLines(wasm)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("module bytes of %s (-want +got; sha256 %x):\n%s", name, sha256.Sum256(wasm), diff)
	}
}

// exprsSrc has a guard and check rules over every operator codegen
// compiles.
const exprsSrc = `validator exprs {
  when has(who) and not (status == "draft")
  require field "did"
  check who != "" or len(this) >= 3 else "who or a long this"
  check did in ["sale.post", "sale.void", who] else "a known did"
  check len(id) < 40 and len(id) > 0 and len(id) <= 39 and len(id) == len(id)
  check has(confirmed_by) or not has(data) or status in ["pending", 1, true]
  on_fail "reject"
}
`

// TestExprs compiles a validator with a guard and check rules, checks the
// module with both validators and against its golden bytes
// (testdata/exprs.wasm.hex) and its charge points.
func TestExprs(t *testing.T) {
	out, err := codegen.Compile(compileSrc(t, exprsSrc))
	if err != nil {
		t.Fatal(err)
	}
	wasmtest.Validate(t, "exprs", out.Wasm)
	golden(t, "exprs.wasm.hex", out.Wasm)
	// The guard's charge points: has(who), then eq and its operands (not
	// and and charge none).
	want := []codegen.Point{
		{Validator: "exprs", Rule: -1, Pos: "t.lll:2:8", Op: ir.OpHas},
		{Validator: "exprs", Rule: -1, Pos: "t.lll:2:33", Op: ir.OpEq},
		{Validator: "exprs", Rule: -1, Pos: "t.lll:2:26", Op: ir.OpField},
		{Validator: "exprs", Rule: -1, Pos: "t.lll:2:36", Op: ir.OpConst},
	}
	if diff := cmp.Diff(want, out.Points[:4]); diff != "" {
		t.Errorf("the guard's charge points (-want +got):\n%s", diff)
	}
}

// arithSrc uses each arithmetic operator, in a guard and in checks, and
// the orders over strings.
const arithSrc = `validator arith {
  when len(who) * 2 - 1 > -(3)
  check len(did) / 2 + 0.5 >= 1 else "a did"
  check 9000000000000 * len(this) - len(id) / 0.25 != 0
  check who < did or "a" >= this or who <= "b" or did > who
  on_fail "reject"
}
`

// TestArithModule compiles arithmetic (each operator, the product and
// quotient helper once) and string order (its helper once), checks the
// module with both validators, against
// its golden bytes (testdata/arith.wasm.hex) and its charge points: one
// for each operator but neg, with the operator.
func TestArithModule(t *testing.T) {
	out, err := codegen.Compile(compileSrc(t, arithSrc))
	if err != nil {
		t.Fatal(err)
	}
	wasmtest.Validate(t, "arith", out.Wasm)
	golden(t, "arith.wasm.hex", out.Wasm)
	var ops []ir.Op
	for _, pt := range out.Points[:7] {
		ops = append(ops, pt.Op)
	}
	want := []ir.Op{ir.OpGt, ir.OpSub, ir.OpMul, ir.OpCall, ir.OpField, ir.OpConst, ir.OpConst}
	if diff := cmp.Diff(want, ops); diff != "" {
		t.Errorf("the guard's charge points (-want +got):\n%s", diff)
	}
}

// hexLines writes b as hex, 32 bytes a line, for readable golden diffs.
func hexLines(b []byte) string {
	var s strings.Builder
	for len(b) > 0 {
		n := min(32, len(b))
		s.WriteString(hex.EncodeToString(b[:n]) + "\n")
		b = b[n:]
	}
	return s.String()
}

// TestRules compiles one validator for each shape of field rule codegen
// covers and checks each module independently.
func TestRules(t *testing.T) {
	for name, body := range map[string]string{
		"require":        `require field "who"`,
		"allow empty ok": `allow field "this"`,
		"allow in":       `allow field "did" in ["a", "b"]`,
		"require string": `require field "tenant" as "string"`,
		"allow when":     `allow field "when" as "rfc3339"`,
		"confirmed_by":   `require field "confirmed_by" as "array"`,
		"data":           `require field "data" as "object"`,
		"closed":         `reject unknown fields`,
		"two in lists":   `require field "status" in ["x", "y"]` + "\n" + `allow field "did" in ["y", "z"]`,
		"nonempty":       `allow field "who" as "nonempty"` + "\n" + `require field "did" as "nonempty" in ["y"]`,
	} {
		p := compileSrc(t, "validator v {\n"+body+"\non_fail \"reject\"\n}\n")
		out, err := codegen.Compile(p)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		wasmtest.Validate(t, name, out.Wasm)
	}
}

// TestUnsupported: what codegen does not compile yet is refused, with
// ErrUnsupported, never compiled to something else.
func TestUnsupported(t *testing.T) {
	for name, src := range map[string]string{
		"map policy":     "check policy.limits.m == policy.limits.m",
		"empty list":     `check "x" in policy.limits.none`,
		"data itself":    "check data == data",
		"data and data":  "check data.a == data.b",
		"data duration":  "check data.a == 1h",
		"confirmed_by":   `check confirmed_by == confirmed_by`,
		"index":          `check [who, did][0] == "dan"`,
		"data timestamp": "check data.a < when",
		"dotted format":  `require field "data.at" as "rfc3339"`,
		"format":         `require field "who" as "rfc3339"`,
	} {
		src = "policy limits {\n  grace: 90m\n  names: [\"x\"]\n  none: []\n  m: { a: 1, b: \"x\" }\n}\nvalidator v {\n" + src + "\non_fail \"reject\"\n}\n"
		p, errs := lll.Compile([]lll.Source{{Name: "t.lll", Text: []byte(src)}})
		if len(errs) > 0 {
			t.Errorf("%s: the source does not compile: %v", name, errs)
			continue
		}
		if _, err := codegen.Compile(p); !errors.Is(err, codegen.ErrUnsupported) {
			t.Errorf("%s: err = %v, want ErrUnsupported", name, err)
		}
	}
}

// globSrc uses matches with patterns of every element, one of them twice.
const globSrc = `validator glob {
  when did matches "sale.*"
  check who matches "[a-c]?[^/]*" or this matches "*/\\**" or status matches "sale.*" else "a known who"
  check not (id matches "s_?")
  on_fail "reject"
}
`

// TestGlobModule compiles matches (a matcher a pattern, used twice but
// added once; its chunks; the rune decoder), checks the module with both
// validators and against its golden bytes (testdata/glob.wasm.hex).
func TestGlobModule(t *testing.T) {
	out, err := codegen.Compile(compileSrc(t, globSrc))
	if err != nil {
		t.Fatal(err)
	}
	wasmtest.Validate(t, "glob", out.Wasm)
	golden(t, "glob.wasm.hex", out.Wasm)
}

// stringsSrc uses lower, upper and concatenation (their helpers once
// each), with a list literal charged to the byte budget.
const stringsSrc = `validator strs {
  when lower(did) matches "sale.*"
  check upper(who + "-" + this) != "" or lower(who) in ["dan", upper(did)] else "a case"
  on_fail "reject"
}
`

// TestStringsModule compiles lower, upper and concatenation, checks the
// module with both validators and against its golden bytes
// (testdata/strings.wasm.hex), and the names of its builtins' charge
// points.
func TestStringsModule(t *testing.T) {
	out, err := codegen.Compile(compileSrc(t, stringsSrc))
	if err != nil {
		t.Fatal(err)
	}
	wasmtest.Validate(t, "strings", out.Wasm)
	golden(t, "strings.wasm.hex", out.Wasm)
	var names []string
	for _, pt := range out.Points {
		if pt.Op == ir.OpCall {
			names = append(names, pt.Name)
		}
	}
	if diff := cmp.Diff([]string{"lower", "upper", "lower", "upper"}, names); diff != "" {
		t.Errorf("the builtins' charge points (-want +got):\n%s", diff)
	}
	if out.Unicode != unicode.Version {
		t.Errorf("Unicode %q, want %q", out.Unicode, unicode.Version)
	}
	if plain, _ := codegen.Compile(compileSrc(t, globSrc)); plain.Unicode != "" {
		t.Errorf("a module without lower and upper records Unicode %q", plain.Unicode)
	}
}

// envSrc reads feature flags, policy values (one of them twice), values
// below data (in expressions and field rules), the length and strings of
// confirmed_by and a policy list.
const envSrc = `policy p {
  n: 3
  s: "dan"
  b: true
  m: { k: 2, t: "x" }
  l: ["a", "b"]
}
validator env {
  when policy.p.b or features.cluster
  check features.diamond or who == policy.p.s
  check policy.p.n + policy.p.m.k > policy.p.n or policy.p.m.t != "x"
  check data.gross > 0 or has(data.m.k) or data.note == "x" or data.gross + data.m.k > 1
  check len(confirmed_by) <= policy.p.n and not ("x" in confirmed_by) and who in policy.p.l
  require field "data.gross" as "number"
  allow field "data.note" as "nonempty" in ["x", "y"]
  allow field "data.m.k" as "integer" in [1, 2, true]
  on_fail "warn"
}
`

// TestEnvModule compiles feature flags and policy values read from the
// env region, checks the module with both validators, against its golden
// bytes (testdata/env.wasm.hex), and the flags, policy values and paths
// below data it reads, each once, in the order of their first use.
func TestEnvModule(t *testing.T) {
	out, err := codegen.Compile(compileSrc(t, envSrc))
	if err != nil {
		t.Fatal(err)
	}
	wasmtest.Validate(t, "env", out.Wasm)
	golden(t, "env.wasm.hex", out.Wasm)
	if diff := cmp.Diff([]string{"cluster", "diamond"}, out.Features); diff != "" {
		t.Errorf("features (-want +got):\n%s", diff)
	}
	want := []codegen.PolicyRef{
		{Name: "p", Path: []string{"b"}, Kind: ir.Bool},
		{Name: "p", Path: []string{"s"}, Kind: ir.String},
		{Name: "p", Path: []string{"n"}, Kind: ir.Number},
		{Name: "p", Path: []string{"m", "k"}, Kind: ir.Number},
		{Name: "p", Path: []string{"m", "t"}, Kind: ir.String},
		{Name: "p", Path: []string{"l"}, Kind: ir.List, Elem: ir.String},
	}
	if diff := cmp.Diff(want, out.Policies); diff != "" {
		t.Errorf("policy values (-want +got):\n%s", diff)
	}
	if !out.ConfirmedBy {
		t.Error("the module reads confirmed_by's strings, but Output.ConfirmedBy is false")
	}
	if diff := cmp.Diff([][]string{{"gross"}, {"m", "k"}, {"note"}}, out.Data); diff != "" {
		t.Errorf("paths below data (-want +got):\n%s", diff)
	}
}

// timeSrc uses durations (constants, a policy's), the instant of when and
// their arithmetic and order.
const timeSrc = `policy limits {
  grace: 90m
}
validator time {
  when when - policy.limits.grace < when
  check when + 1h - when == 1h and -(1h) < 0s and 1h * 2 / 0.5 >= policy.limits.grace
  check 2 * 30m in [1h, 2h]
  on_fail "warn"
}
`

// TestTimeModule compiles durations and instants, checks the module with
// both validators, against its golden bytes (testdata/time.wasm.hex), and
// the operand kinds its arithmetic charge points record.
func TestTimeModule(t *testing.T) {
	out, err := codegen.Compile(compileSrc(t, timeSrc))
	if err != nil {
		t.Fatal(err)
	}
	wasmtest.Validate(t, "time", out.Wasm)
	golden(t, "time.wasm.hex", out.Wasm)
	if got, want := out.Points[1].Kinds, [2]ir.Kind{ir.Timestamp, ir.Duration}; out.Points[1].Op != ir.OpSub || got != want {
		t.Errorf("the guard's subtraction: %v %v, want sub of %v", out.Points[1].Op, got, want)
	}
}

// TestStrings: Output.Strings names the string fields whose bytes the
// module reads, in spanfield's order, each once: the field of an in
// [...] rule and the fields whose value an expression reads, not those
// whose presence, length or instant only it reads.
func TestStrings(t *testing.T) {
	std, err := stdlib.Compile()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		p    *ir.Program
		want []string
	}{
		{"the standard contract", std, []string{"status"}},
		{"presence, length and instants", compileSrc(t, `validator v {
  require field "id"
  allow field "who" as "nonempty"
  require field "when" as "rfc3339"
  check has(tenant) and when > when - 1h
}
`), nil},
		{"values", compileSrc(t, `validator v {
  when did != "x"
  require field "status" in ["a", "b"]
  check lower(this) == this and did < "m" and who matches "a*"
}
`), []string{"who", "did", "this", "status"}},
	} {
		out, err := codegen.Compile(tc.p)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if diff := cmp.Diff(tc.want, out.Strings); diff != "" {
			t.Errorf("%s: strings (-want +got):\n%s", tc.name, diff)
		}
	}
}
