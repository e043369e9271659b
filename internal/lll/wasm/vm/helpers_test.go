package vm_test

import (
	"context"
	"strings"
	"testing"

	"github.com/loglineos/loglineos/internal/lll"
	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/lll/wasm/layout"
	"github.com/loglineos/loglineos/internal/lll/wasm/vm"
)

// backends is one validator v compiled for both backends.
type backends struct {
	ev *eval.Validator
	in *vm.Instance
	m  *vm.Module
}

// compileBoth compiles src, whose validator is named v, for both
// backends; the module is closed when the test ends.
func compileBoth(t *testing.T, src string) backends {
	t.Helper()
	p, errs := lll.Compile([]lll.Source{{Name: "v.lll", Text: []byte(src)}})
	if len(errs) > 0 {
		t.Fatalf("%v\n%s", errs, src)
	}
	ep, m := compileProgram(t, p)
	in, err := m.NewInstance(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return backends{ev: ep.Validator("v"), in: in, m: m}
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
	case strings.Contains(vi.Detail, "error[LLL104]"):
		return layout.TrapHost
	}
	return layout.TrapNone
}

// lllString quotes s as a .lll string literal.
func lllString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
