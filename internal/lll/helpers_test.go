package lll_test

import (
	"testing"

	"github.com/loglineos/loglineos/internal/span"
)

func spanOf(t *testing.T, s string) *span.Span {
	t.Helper()
	sp, err := span.Parse([]byte(s), span.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return sp
}
