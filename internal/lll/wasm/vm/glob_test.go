package vm_test

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/loglineos/loglineos/internal/lll"
	"github.com/loglineos/loglineos/internal/lll/abi"
	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/lll/wasm/codegen"
	"github.com/loglineos/loglineos/internal/lll/wasm/layout"
	"github.com/loglineos/loglineos/internal/lll/wasm/vm"
)

// backends is one validator v compiled for both backends.
type backends struct {
	ev *eval.Validator
	in *vm.Instance
}

// compileBoth compiles src, whose validator is named v, for both
// backends; the module is closed when the test ends.
func compileBoth(t *testing.T, src string) backends {
	t.Helper()
	p, errs := lll.Compile([]lll.Source{{Name: "v.lll", Text: []byte(src)}})
	if len(errs) > 0 {
		t.Fatalf("%v\n%s", errs, src)
	}
	out, err := codegen.Compile(p)
	if err != nil {
		t.Fatalf("%v\n%s", err, src)
	}
	ep, err := eval.Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	m, err := vm.Compile(ctx, p, out)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(ctx) })
	in, err := m.NewInstance(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return backends{ev: ep.Validator("v"), in: in}
}

// same runs both backends over the span line: the same violation, fuel
// and the trap the violation implies. It returns the interpreter's
// violation.
func (b backends) same(t *testing.T, line string) *eval.Violation {
	t.Helper()
	return b.sameEnv(t, line, &eval.Env{})
}

// trapOf is the trap a module gives for the interpreter's violation vi.
func trapOf(vi *eval.Violation) uint32 {
	switch {
	case vi == nil:
		return layout.TrapNone
	case strings.Contains(vi.Detail, "error[LLL100]"):
		return layout.TrapFuel
	case strings.Contains(vi.Detail, "error[LLL103]"), strings.Contains(vi.Detail, "error[LLL102]"),
		strings.Contains(vi.Detail, "error[LLL105]"):
		return layout.TrapFault
	}
	return layout.TrapNone
}

// lllString quotes s as a .lll string literal.
func lllString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// globStrings are the strings TestGlob matches: ASCII, '/', runes of two,
// three and four bytes, U+FFFD, the pattern's own metacharacters.
func globStrings() []string {
	return []string{"", "a", "ab", "abc", "a/b", "/", "a/", "/a", "é", "aé", "éa", "a.b.c", "sale.post", "sale.",
		"sale/post", "x*y", "a?c", "[a]", `\`, "ab/cd/ef", "日本", "a日b", "\uFFFD", "a-b", "^", "]", "𝄞", "a𝄞c", "-", "aaa", "abab"}
}

// TestGlob: matches with a constant pattern gives the interpreter's
// answer (path.Match's) on both backends, with the same fuel, over fixed
// patterns of every element (literals, escapes, ?, classes with ranges,
// negation and escapes, runes of every width, stars leading, inner and
// trailing) and over random patterns and strings.
func TestGlob(t *testing.T) {
	patterns := []string{"*", "a*", "*a", "a?c", "?", "??", "*/*", "a*b*c", "sale.*", "[a-c]*", "[^a]*", "[é]", "[^é]?",
		`\*`, `x\*y`, `[\]]`, "[!]", "[^/]", "*[b]", "[日-本]*", "**", "a**b", "?*?", "[a-z][a-z]", "*.*", "a*/b",
		"?/?", "[^a-b]", "[\uFFFD]", "[𝄞]", "a?", "*c", "*b", "ab*", `\a\b`, "*a*", "a*a", "*?b", `[\]a]`, `[^\]a]`, "[a-a]", "[b-a]"}
	r := rand.New(rand.NewPCG(7, 8))
	elems := []string{"a", "b", "/", "*", "?", "[a-b]", "[^b]", `\*`, "é", ".", "*", "?"}
	for range 60 {
		var p strings.Builder
		for range 1 + r.IntN(6) {
			p.WriteString(elems[r.IntN(len(elems))])
		}
		patterns = append(patterns, p.String())
	}
	strs := globStrings()
	alphabet := []string{"a", "b", "/", "é", ".", "*", "日"}
	for range 40 {
		var s strings.Builder
		for range r.IntN(8) {
			s.WriteString(alphabet[r.IntN(len(alphabet))])
		}
		strs = append(strs, s.String())
	}
	seen := map[bool]int{}
	for _, pat := range patterns {
		if abi.ValidGlob(pat) != "" {
			t.Fatalf("pattern %q: %s", pat, abi.ValidGlob(pat))
		}
		b := compileBoth(t, "validator v {\n  check who matches "+lllString(pat)+"\n  on_fail \"warn\"\n}\n")
		for _, s := range strs {
			q, _ := json.Marshal(s)
			vi := b.same(t, `{"who":`+string(q)+`}`)
			if (vi == nil) != abi.MatchGlob(pat, s) {
				t.Fatalf("%q matches %q: the interpreter says %v", s, pat, vi)
			}
			seen[vi == nil]++
		}
		b.same(t, `{}`) // null does not match
	}
	if seen[true] < 200 || seen[false] < 200 {
		t.Errorf("matched %d, did not match %d; want 200 or more of each", seen[true], seen[false])
	}
}
