package vm_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/lll/wasm/vm"
	"github.com/loglineos/loglineos/internal/span"
)

// TestStrings: lower, upper and concatenation give the interpreter's
// answer on both backends, at the edges of ASCII's letters, with null
// (LLL102), with the byte budget at and one byte below what a run needs
// (LLL105); a case of a string that is not ASCII, and strings that
// overflow the scratch region, are left to the interpreter
// (vm.ErrUnsupported), never answered otherwise.
func TestStrings(t *testing.T) {
	long := strings.Repeat("w", 1000)
	tree := "who"
	for range 6 {
		tree = "(" + tree + " + " + tree + ")" // 64 times who, 384 KB in all its parts
	}
	for _, tc := range []struct {
		expr, who string
		fault     string // "": the expression holds; "unsupported": the module leaves it to the interpreter
		bytes     int64  // the bytes the run charges, when > 0: run again with one byte less (LLL105)
	}{
		{expr: `lower(who) == "dan@[z"`, who: "DaN@[Z"},
		{expr: `upper(who) == "DAN` + "`{A" + `"`, who: "dAn`{a"},
		{expr: `lower("ABCXYZ@[") + upper("abcxyz` + "`{" + `") == "abcxyz@[ABCXYZ` + "`{" + `"`},
		{expr: `upper(who + "x") == "DANX"`, who: "dan", bytes: 64 + 4 + 64 + 3*4},
		{expr: `len(who + "abc") == 6`, who: "dan"},
		{expr: `who + "" == who and "" + "" == ""`, who: "dan"},
		{expr: `who + "a" < who + "b"`, who: "dan"},
		{expr: `(who + "/x") matches "*/x"`, who: "dan"},
		{expr: `lower(who) in ["a", "dan"]`, who: "DAN", bytes: 64 + 9 + 64 + 24 + 2*64},
		{expr: `len(lower(who)) == 1000`, who: long, bytes: 64 + 3000},
		{expr: `did + who == "x"`, who: "dan", fault: "cannot add null and string"},
		{expr: `who + did == "x"`, who: "dan", fault: "cannot add string and null"},
		{expr: `lower(did) == "x"`, who: "dan", fault: "lower of a null"},
		{expr: `upper(did + who) == "x"`, who: "dan", fault: "cannot add null and string"},
		{expr: `lower(who) == "été"`, who: "ÉTÉ", fault: "unsupported"},
		{expr: "upper(who) == \"X\u00a0\"", who: "x\u00a0", fault: "unsupported"},
		{expr: `lower("É") == "é"`, fault: "unsupported"},
		{expr: `who + "É" == "xÉ"`, who: "x"}, // concatenation copies any byte
		{expr: "len(" + tree + ") == 64000", who: long, fault: "unsupported"},
	} {
		b := compileBoth(t, "validator v {\n  check "+tc.expr+"\n  on_fail \"warn\"\n}\n")
		line := `{"who":` + lllString(tc.who) + `}`
		if tc.who == "" {
			line = `{}`
		}
		if tc.fault == "unsupported" {
			unsupported(t, b, line, tc.expr)
			continue
		}
		want := b.sameEnv(t, line, &eval.Env{})
		if (want == nil) != (tc.fault == "") || want != nil && !strings.Contains(want.Detail, tc.fault) {
			t.Errorf("%s: the interpreter says %v, want %q", tc.expr, want, tc.fault)
		}
		if tc.bytes > 0 {
			if vi := b.sameEnv(t, line, &eval.Env{MaxBytes: tc.bytes}); vi != nil {
				t.Errorf("%s with %d bytes: %v", tc.expr, tc.bytes, vi)
			}
			if vi := b.sameEnv(t, line, &eval.Env{MaxBytes: tc.bytes - 1}); vi == nil || !strings.Contains(vi.Detail, "error[LLL105]") {
				t.Errorf("%s with %d bytes: %v, want LLL105", tc.expr, tc.bytes-1, vi)
			}
		}
	}
}

// unsupported checks that the module leaves the run over line to the
// interpreter, which answers it.
func unsupported(t *testing.T, b backends, line, expr string) {
	t.Helper()
	ctx := context.Background()
	s, err := span.Parse([]byte(line), span.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if vi, _, err := b.in.CheckSpan(ctx, "v", s, 0); !errors.Is(err, vm.ErrUnsupported) {
		t.Errorf("%s: %v, %v; want ErrUnsupported", expr, vi, err)
	}
	if vi := b.ev.CheckSpan(ctx, s, &eval.Env{Timeout: -1}); vi != nil {
		t.Errorf("%s: the interpreter says %v", expr, vi)
	}
}

// sameEnv is same with a run's Env (its MaxSteps and MaxBytes).
func (b backends) sameEnv(t *testing.T, line string, env *eval.Env) *eval.Violation {
	t.Helper()
	ctx := context.Background()
	s, err := span.Parse([]byte(line), span.Limits{})
	if err != nil {
		t.Fatalf("span %s: %v", line, err)
	}
	e := *env
	e.Timeout = -1
	want, steps := b.ev.CheckSpanSteps(ctx, s, &e)
	got, res, err := b.in.CheckSpanEnv(ctx, "v", s, env)
	if err != nil {
		t.Fatalf("span %s: %v", line, err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("span %s: violation (-eval +wasm):\n%s", line, diff)
	}
	if res.FuelUsed != steps || res.Trap != trapOf(want) {
		t.Fatalf("span %s: trap %d after %d steps, want trap %d after %d", line, res.Trap, res.FuelUsed, trapOf(want), steps)
	}
	return want
}
