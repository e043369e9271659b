package derive

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestValidateReportsEveryProblem(t *testing.T) {
	c := DefaultTenantConfig()
	c.Linker.Window = 0
	c.Meter.MinScore = -1
	c.Perf.OnOverload = ""
	err := c.Validate()
	var paths []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var ce *ConfigError
		if errors.As(e, &ce) {
			paths = append(paths, ce.Path)
		}
	}
	want := []string{"policies.trajectory_linker.window", "policies.quality_meter.min_score", "policies.derived_events_perf.on_overload"}
	if diff := cmp.Diff(want, paths); diff != "" {
		t.Errorf("paths (-want +got):\n%s", diff)
	}
}

func TestPercentileTargets(t *testing.T) {
	for in, want := range map[string]uint64{"p96": 960, "p99.9": 999, "p1": 10, "p50.5": 505, "p09": 90} {
		if got, ok := parsePercentile(in); !ok || got != want {
			t.Errorf("parsePercentile(%q) = %d %v, want %d", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "p", "96", "p0", "p0.5", "p100", "p99.99", "p9x", "P96", "p-1", "p96."} {
		if got, ok := parsePercentile(in); ok {
			t.Errorf("parsePercentile(%q) = %d, want refusal", in, got)
		}
	}
}

func TestExceptionMatching(t *testing.T) {
	tests := []struct {
		pattern, value string
		want           bool
	}{
		{"this:heartbeat-*", "heartbeat-7", true},
		{"this:heartbeat-*", "heartbeat-", true},
		{"this:heartbeat-*", "heartbeat-a/b", false}, // path.Match: '*' stops at '/'
		{"this:heartbeat-*", "xheartbeat-1", false},
		{"this:heartbeat-?", "heartbeat-12", false},
		{"this:heartbeat-?", "heartbeat-1", true},
		{"this:order:[0-9]*", "order:12", true},
		{"this:order:[0-9]*", "order:x", false},
		{"did:ping", "ping", true},
		{"did:ping", "pings", false},
		{`this:a\*`, "a*", true},
		{`this:a\*`, "ab", false},
		{"this:*", "", true},
	}
	for _, tc := range tests {
		m, msg := compileException(tc.pattern)
		if msg != "" {
			t.Fatalf("%q: %s", tc.pattern, msg)
		}
		if got := m.match(tc.value); got != tc.want {
			t.Errorf("%q matching %q = %v, want %v", tc.pattern, tc.value, got, tc.want)
		}
	}
}
