package spanfield_test

import (
	"testing"

	"github.com/loglineos/loglineos/internal/lll/eval/spanfield"
)

// TestNames: Of and Name are inverse over the fields, Count counts them,
// and every other name is None.
func TestNames(t *testing.T) {
	if got, want := spanfield.Field(spanfield.Count-1), spanfield.Data; got != want {
		t.Errorf("the last field is %d, want %d (Data)", got, want)
	}
	for f := spanfield.ID; int(f) < spanfield.Count; f++ {
		if got := spanfield.Of(f.Name()); got != f {
			t.Errorf("Of(%q) = %d, want %d", f.Name(), got, f)
		}
	}
	for _, name := range []string{"", "ID", "data.gross", "extra", "confirmedBy"} {
		if got := spanfield.Of(name); got != spanfield.None {
			t.Errorf("Of(%q) = %d, want None", name, got)
		}
	}
	if got := spanfield.Field(spanfield.Count).Name(); got != "" {
		t.Errorf("the name of a field out of range is %q, want none", got)
	}
}
