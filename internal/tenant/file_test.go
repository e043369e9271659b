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

// YAML merge keys, which the strict decoding of earlier versions took,
// still parse: a file recorded then must not be refused now.
func TestMergeKeysAccepted(t *testing.T) {
	for _, in := range []string{
		"quotas: {<<: {ingest_per_second: 5}, burst: 10}\n",
		"<<: {quotas: {burst: 3}}\n",
		"base: &b {ingest_per_second: 7}\n",
	} {
		f, err := Parse("t.yaml", []byte(in), nil)
		if in == "base: &b {ingest_per_second: 7}\n" {
			if err == nil {
				t.Errorf("%q: an unknown member was accepted", in)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		if f.Quotas.Burst == 0 {
			t.Errorf("%q: quotas %+v, want the merged ones", in, f.Quotas)
		}
	}
	// A merged mapping's members are checked too.
	if _, err := Parse("t.yaml", []byte("quotas: {<<: {burts: 5}}\n"), nil); err == nil || !strings.Contains(err.Error(), `did you mean "burst"`) {
		t.Errorf("a misspelt merged member: %v", err)
	}
}

// A policy named by a scalar that is not a string is recorded by its text,
// as earlier versions recorded it.
func TestPolicyNameRecordedAsWritten(t *testing.T) {
	for _, c := range []struct{ in, key string }{
		{"policies: {1.0: {a: 1}}\n", `"1.0":`},
		{"policies: {2024-01-02: {a: 1}}\n", `"2024-01-02":`},
	} {
		f, err := Parse("t.yaml", []byte(c.in), nil)
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		e, err := ConfigEntry("t_a", f.Doc)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(e.Body), c.key) {
			t.Errorf("%q recorded as %s, want the key %s", c.in, e.Body, c.key)
		}
	}
}

// redact: [~] names nothing, as before.
func TestRedactNullEntry(t *testing.T) {
	f, err := Parse("t.yaml", []byte("redact: [~]\n"), nil)
	if err != nil || len(f.Redact) != 0 {
		t.Fatalf("redact: [~]: %v, %v", f, err)
	}
}

// TestRoleQuotas: quotas.roles gives roles buckets of their own; an
// unknown member is named at its line, a bucket that is not positive is
// refused.
func TestRoleQuotas(t *testing.T) {
	f, err := Parse("t.yaml", []byte("quotas:\n  burst: 20\n  roles:\n    reader: {ingest_per_second: 2.5, burst: 5}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Quotas.Roles["reader"]; got != (RoleQuota{IngestPerSecond: 2.5, Burst: 5}) || f.Quotas.Burst != 20 {
		t.Fatalf("quotas %+v", f.Quotas)
	}
	for _, tc := range []struct{ src, want string }{
		{"quotas:\n  roles:\n    reader: {ingest_per_second: 1, brust: 5}\n", `t.yaml:3: quotas.roles.reader.brust: unknown member (did you mean "burst"?)`},
		{"quotas:\n  roles:\n    reader: {ingest_per_second: 1}\n", "quotas.roles.reader: ingest_per_second and burst must both be positive"},
	} {
		_, err := Parse("t.yaml", []byte(tc.src), nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.src, err, tc.want)
		}
	}
}
