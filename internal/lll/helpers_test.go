package lll_test

import (
	"testing"

	"github.com/loglineos/loglineos/internal/lll"
	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/span"
)

func spanOf(t testing.TB, s string) *span.Span {
	t.Helper()
	sp, err := span.Parse([]byte(s), span.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

// compileEval compiles one source, e.lll, that must check, for EVAL.
func compileEval(t testing.TB, src string) *eval.Program {
	t.Helper()
	prog, errs := lll.Compile([]lll.Source{{Name: "e.lll", Text: []byte(src)}})
	if errs != nil {
		t.Fatal(errs)
	}
	ep, err := eval.Compile(prog)
	if err != nil {
		t.Fatal(err)
	}
	return ep
}
