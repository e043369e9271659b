package vm_test

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/loglineos/loglineos/internal/lll/abi"
)

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
