package vm_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode"

	"github.com/google/go-cmp/cmp"
	"github.com/loglineos/loglineos/internal/lll"
	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/lll/wasm/codegen"
	"github.com/loglineos/loglineos/internal/lll/wasm/vm"
	"github.com/loglineos/loglineos/internal/span"
)

// TestStrings: lower, upper and concatenation give the interpreter's
// answer on both backends, at the edges of ASCII's letters, with null
// (LLL102), with the byte budget at and one byte below what a run needs
// (LLL105), for runes of every width; strings that overflow the scratch
// region are left to the interpreter (vm.ErrUnsupported), never answered
// otherwise.
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
		{expr: `lower(who) == "été"`, who: "ÉTÉ", bytes: 64 + 3*5},
		{expr: "upper(who) == \"X\u00a0Ǆ\"", who: "x\u00a0ǆ"},
		{expr: `lower("É") == "é" and upper("ß") == "ß" and lower("İ") == "i"`},
		{expr: `lower(who) == "ⱦⱦ" and len(lower(who)) == 6`, who: "ȾȾ"}, // 3-byte runes from 2-byte ones
		{expr: `who + "É" == "xÉ"`, who: "x"},                            // concatenation copies any byte
		{expr: "len(" + tree + ") == 64000", who: long, fault: "unsupported"},
		// Each case reserves 3 bytes a byte (60 KB) and keeps what it wrote.
		{expr: "len(lower(who)) + len(upper(who)) + len(lower(who)) == 60000", who: strings.Repeat("w", 20000)},
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

// TestCaseEveryRune: lower and upper of every rune (surrogates aside, which
// no span holds) are strings.ToLower's and strings.ToUpper's, 512 runes a
// span, each span's who cased and compared with its did and this, which
// hold Go's answers.
func TestCaseEveryRune(t *testing.T) {
	b := compileBoth(t, "validator v {\n  check upper(who) == did else \"upper\"\n  check lower(who) == this else \"lower\"\n  on_fail \"warn\"\n}\n")
	ctx := context.Background()
	var runes []rune
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if r < 0xd800 || r > 0xdfff {
			runes = append(runes, r)
		}
	}
	for len(runes) > 0 {
		n := min(512, len(runes))
		who := string(runes[:n])
		runes = runes[n:]
		q := func(s string) string { j, _ := json.Marshal(s); return string(j) }
		s, err := span.Parse([]byte(`{"who":`+q(who)+`,"did":`+q(strings.ToUpper(who))+`,"this":`+q(strings.ToLower(who))+`}`), span.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if vi, _, err := b.in.CheckSpan(ctx, "v", s, 0); vi != nil || err != nil {
			for _, r := range who {
				one, _ := span.Parse([]byte(`{"who":`+q(string(r))+`,"did":`+q(strings.ToUpper(string(r)))+`,"this":`+q(strings.ToLower(string(r)))+`}`), span.Limits{})
				if vi, _, err := b.in.CheckSpan(ctx, "v", one, 0); vi != nil || err != nil {
					t.Fatalf("%U (%q): %v, %v", r, string(r), vi, err)
				}
			}
			t.Fatalf("runes %U to %U: %v, %v", []rune(who)[0], []rune(who)[n-1], vi, err)
		}
	}
}

// TestUnicodeVersion: a module whose case table is of another Unicode
// version than the interpreter's is refused.
func TestUnicodeVersion(t *testing.T) {
	p, errs := lll.Compile([]lll.Source{{Name: "v.lll", Text: []byte("validator v {\n  check lower(who) == who\n  on_fail \"warn\"\n}\n")}})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	out, err := codegen.Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	out.Unicode = "9.0.0"
	if m, err := vm.Compile(context.Background(), p, out); !errors.Is(err, vm.ErrUnsupported) {
		t.Errorf("%v, %v; want ErrUnsupported", m, err)
	}
}
