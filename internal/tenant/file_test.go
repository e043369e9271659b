package tenant

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/loglineos/loglineos/internal/derive"
)

// TestTenantFileMaxOpen: a tenant file's max_open_trajectories is read, and
// a bad value is refused with its path.
func TestTenantFileMaxOpen(t *testing.T) {
	tests := []struct {
		yaml    string
		want    int
		wantErr string
	}{
		{"policies:\n  trajectory_linker: {max_open_trajectories: 5000}\n", 5000, ""},
		{"policies:\n  trajectory_linker: {close_timeout: 1h}\n", derive.DefaultMaxOpenTrajectories, ""},
		{"policies:\n  trajectory_linker: {max_open_trajectories: 0}\n", 0, "policies.trajectory_linker.max_open_trajectories: must be a count between 1 and 2147483648, got 0"},
		{"policies:\n  trajectory_linker: {max_open_trajectories: lots}\n", 0, `policies.trajectory_linker.max_open_trajectories: want an integer, got "lots"`},
		{"policies:\n  trajectory_linker: {max_open_trajectories: 1.5e3}\n", 1500, ""},
	}
	for _, tc := range tests {
		f, err := Parse("", []byte(tc.yaml), map[string]any{})
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: error %v, want %q", tc.yaml, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.yaml, err)
			continue
		}
		cfg, err := ParseConfig(f.Doc)
		if err != nil || cfg.Linker.MaxOpen != tc.want {
			t.Errorf("%q: max open %d (%v), want %d", tc.yaml, cfg.Linker.MaxOpen, err, tc.want)
		}
	}
}

// TestParseErrors: every problem of a file is reported in line order, each
// an *Error at its line that unwraps to ErrInvalid (and, for a derivation setting, to
// derive.ErrInvalidConfig); a value the file does not set is placed at the
// nearest member it does.
func TestParseErrors(t *testing.T) {
	src := "features: {diamond: true}\n" +
		"quotas: {burst: -1}\n" +
		"policies:\n" +
		"  quality_meter:\n" +
		"    weights: {mass: 0.5}\n" +
		"    min_score: 120\n" +
		"redact: [who, when]\n"
	_, err := Parse("t.yaml", []byte(src), nil)
	var lines []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var fe *Error
		if !errors.As(e, &fe) || !errors.Is(e, ErrInvalid) {
			t.Fatalf("%v: not an *Error wrapping ErrInvalid", e)
		}
		lines = append(lines, fmt.Sprintf("%d %v", fe.Line, errors.Is(e, derive.ErrInvalidConfig)))
	}
	want := []string{"2 false", "5 true", "6 true", "7 false"}
	if diff := cmp.Diff(want, lines); diff != "" {
		t.Errorf("lines of %v (-want +got):\n%s", err, diff)
	}
}
