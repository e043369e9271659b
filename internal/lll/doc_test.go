package lll_test

import (
	"os"
	"strings"
	"testing"

	"github.com/loglineos/loglineos/internal/lll/abi"
	"github.com/loglineos/loglineos/internal/lll/diag"
)

// TestDocCoversABI checks that docs/lll.md documents every diagnostic
// code, format, builtin, kernel, host call, capability, feature flag and
// standard policy key, so the documentation cannot fall behind.
func TestDocCoversABI(t *testing.T) {
	b, err := os.ReadFile("../../docs/lll.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	var want []string
	for _, c := range diag.Codes() {
		want = append(want, "| "+c.Code+" |")
	}
	for _, f := range abi.FormatNames() {
		want = append(want, "| `"+f+"` |")
	}
	for _, f := range abi.Funcs() {
		want = append(want, "`"+strings.ReplaceAll(f.Sig, "|", "|")[:len(f.Name)+1])
	}
	for _, c := range abi.Caps() {
		want = append(want, "`"+c+"`")
	}
	for _, f := range abi.Features() {
		want = append(want, "`"+f+"`")
	}
	for p, keys := range abi.StandardPolicies() {
		want = append(want, "`"+p+"`")
		for _, k := range keys {
			want = append(want, "| `"+k.Name+"` |")
		}
	}
	for _, in := range abi.InputNames() {
		want = append(want, "| `"+in+"` |")
	}
	for _, w := range want {
		if !strings.Contains(doc, w) {
			t.Errorf("docs/lll.md does not mention %s", w)
		}
	}
}
