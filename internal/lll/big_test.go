package lll_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/loglineos/loglineos/internal/lll"
	"github.com/loglineos/loglineos/internal/lll/diag"
	"github.com/loglineos/loglineos/internal/lll/scanner"
)

// TestBigInputs feeds large pathological sources: time stays linear and
// the number of diagnostics bounded.
func TestBigInputs(t *testing.T) {
	for _, src := range [][]byte{
		bytes.Repeat([]byte("$"), 1<<18),
		bytes.Repeat([]byte("("), 1<<18),
		bytes.Repeat([]byte("["), 1<<18),
		bytes.Repeat([]byte("{"), 1<<18),
		bytes.Repeat([]byte("policy p { a: [1, 2, 3] }\n"), 10000),
		bytes.Repeat([]byte("a "), 1<<17),
		bytes.Repeat([]byte("\"x\n"), 1<<18),
		append([]byte("validator v { check "), bytes.Repeat([]byte("not "), 1<<16)...),
		append([]byte("validator v { check 1"), bytes.Repeat([]byte(" + 1"), 1<<16)...),
	} {
		start := time.Now()
		_, errs := lll.Compile([]lll.Source{{Name: "big.lll", Text: src}})
		d := time.Since(start)
		t.Logf("%.20q...: %v, %d errors", src, d, len(errs))
		if len(errs) > diag.MaxErrors+1 {
			t.Errorf("%.20q: %d errors, want at most %d", src, len(errs), diag.MaxErrors+1)
		}
		if d > 10*time.Second {
			t.Errorf("%.20q: %v", src, d)
		}
	}
	_, errs := lll.Compile([]lll.Source{{Name: "huge.lll", Text: make([]byte, scanner.MaxSource+1)}})
	if len(errs) != 1 || errs[0].Code != diag.TooLarge {
		t.Errorf("a file over MaxSource: %v", errs)
	}
}
