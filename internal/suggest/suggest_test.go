package suggest

import "testing"

func TestSuggest(t *testing.T) {
	tests := []struct {
		name  string
		cands []string
		want  string
	}{
		{"rfc3389", []string{"rfc3339", "string"}, "rfc3339"},
		{"wen", []string{"who", "when", "did"}, "when"},
		{"polcy", []string{"policy", "validator"}, "policy"},
		{"trajectroy", []string{"cluster", "diamond", "trajectory"}, "trajectory"},
		{"x", []string{"id", "who"}, ""},
		{"completely_different", []string{"policy"}, ""},
		{"id", []string{"id"}, ""},
	}
	for _, tt := range tests {
		if got := Suggest(tt.name, tt.cands); got != tt.want {
			t.Errorf("Suggest(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestDidYouMean(t *testing.T) {
	if got, want := DidYouMean("diamonds", []string{"trajectory", "diamond"}), ` (did you mean "diamond"?)`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := DidYouMean("zzz", []string{"trajectory"}); got != "" {
		t.Errorf("got %q, want nothing", got)
	}
}
