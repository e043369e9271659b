package tenant

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/loglineos/loglineos/internal/derive"
)

func TestParseConfig(t *testing.T) {
	withAppendix := derive.DefaultTenantConfig()
	withAppendix.Linker.CloseTimeout = 2 * time.Hour
	withAppendix.Meter.MinScore = 60

	everything := derive.DefaultTenantConfig()
	everything.Features = derive.Features{Trajectory: true, Diamond: false, Cluster: true}
	everything.Linker = derive.LinkerPolicy{
		KeyFields: []string{"this", "who"}, Window: 48 * time.Hour, CloseTimeout: 90 * time.Minute,
		Exceptions: []string{"this:heartbeat-*", "did:ping"}, CloseOnDid: []string{"order.delivered", "order.cancelled"},
		MaxOpen: 250_000,
	}
	everything.Meter = derive.MeterPolicy{
		Weights: derive.Weights{Mass: 35, Persistence: 25, Verification: 40}, MassSaturation: 12,
		PersistenceSaturation: 6 * time.Hour, ConfirmerSaturation: 2, PercentileTarget: "p97.5",
		MinScore: 55, Warmup: 250, Window: 72 * time.Hour, TieRationing: false, CreditBudget: false,
	}
	everything.Perf = derive.PerfPolicy{MaxPerMinute: 6000, OnOverload: "reject_429"}

	tests := []struct {
		name string
		in   any // map[string]any, or a JSON document
		want derive.TenantConfig
	}{{
		name: "empty is the default",
		in:   map[string]any{},
		want: derive.DefaultTenantConfig(),
	}, {
		name: "Appendix A, as a YAML decoder gives it",
		in: map[string]any{
			"features": map[string]any{"trajectory": true, "diamond": true, "cluster": false},
			"quotas":   map[string]any{"ingest_per_second": 2000, "burst": 4000},
			"policies": map[string]any{
				"trajectory_linker": map[string]any{"close_timeout": "2h", "exceptions": []any{"this:heartbeat-*"}},
				"quality_meter":     map[string]any{"percentile_target": "p96", "min_score": 60},
			},
			"redact": []any{"data.customer_email"},
		},
		want: withAppendix,
	}, {
		name: "every member, from JSON (numbers are float64)",
		in: `{"features":{"trajectory":true,"diamond":false,"cluster":true},
		      "policies":{
		        "trajectory_linker":{"key_fields":["this","who"],"window":"48h","close_timeout":"90m",
		                             "exceptions":["this:heartbeat-*","did:ping"],"close_on_did":["order.delivered","order.cancelled"],
		                             "max_open_trajectories":250000},
		        "quality_meter":{"weights":{"mass":0.35,"persistence":0.25,"verification":"0.4"},"mass_saturation":12,
		                         "persistence_saturation":"6h","confirmer_saturation":2,"percentile_target":"p97.5",
		                         "min_score":55,"warmup":250,"window":"72h","tie_rationing":false,"credit_budget":false},
		        "derived_events_perf":{"max_per_minute":6000,"on_overload":"reject_429"},
		        "validators":{"anything":"belongs to someone else"}}}`,
		want: everything,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, ok := tc.in.(map[string]any)
			if !ok {
				if err := json.Unmarshal([]byte(tc.in.(string)), &m); err != nil {
					t.Fatal(err)
				}
			}
			got, err := ParseConfig(m)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseConfigErrors(t *testing.T) {
	pol := func(name string, m map[string]any) map[string]any {
		return map[string]any{"policies": map[string]any{name: m}}
	}
	lk := func(m map[string]any) map[string]any { return pol("trajectory_linker", m) }
	qm := func(m map[string]any) map[string]any { return pol("quality_meter", m) }
	tests := []struct {
		name string
		in   map[string]any
		want string // substring of the error
	}{
		{"typo in a member", lk(map[string]any{"close_timout": "2h"}), `policies.trajectory_linker.close_timout: unknown member (did you mean "close_timeout"?)`},
		{"typo in a policy name", pol("quality_metr", map[string]any{}), `policies.quality_metr: unknown policy (did you mean "quality_meter"?)`},
		{"typo in a feature", map[string]any{"features": map[string]any{"diamonds": true}}, `features.diamonds: unknown feature (did you mean "diamond"?)`},
		{"feature not a bool", map[string]any{"features": map[string]any{"diamond": "yes"}}, `features.diamond: want true or false, got "yes"`},
		{"duration without unit", lk(map[string]any{"window": 7200}), `policies.trajectory_linker.window: want a duration string such as "90m" or "6h" (a bare number has no unit), got int 7200`},
		{"bad duration", lk(map[string]any{"close_timeout": "2 hours"}), `policies.trajectory_linker.close_timeout: want a duration such as "90m" or "6h", got "2 hours"`},
		{"negative duration", lk(map[string]any{"close_timeout": "-1h"}), `policies.trajectory_linker.close_timeout: must be a positive duration, got -1h0m0s`},
		{"unknown key field", lk(map[string]any{"key_fields": []any{"thsi"}}), `policies.trajectory_linker.key_fields[0]: unknown span field "thsi" (did you mean "this"?)`},
		{"no key fields", lk(map[string]any{"key_fields": []any{}}), `key_fields: must list 1 to 8 fields, got 0`},
		{"duplicate key field", lk(map[string]any{"key_fields": []any{"this", "this"}}), `key_fields[1]: field "this" listed twice`},
		{"key fields not strings", lk(map[string]any{"key_fields": []any{"this", 3}}), `key_fields[1]: want a string, got int 3`},
		{"exception without field", lk(map[string]any{"exceptions": []any{"heartbeat-*"}}), `exceptions[0]: want "field:glob" (e.g. "this:heartbeat-*"), got "heartbeat-*"`},
		{"exception with a bad glob", lk(map[string]any{"exceptions": []any{"this:[a-"}}), `exceptions[0]: bad glob "[a-": syntax error in pattern`},
		{"empty closing did", lk(map[string]any{"close_on_did": []any{""}}), `close_on_did[0]: must not be empty`},
		{"no open trajectory allowed", lk(map[string]any{"max_open_trajectories": 0}), `policies.trajectory_linker.max_open_trajectories: must be a count between 1 and 2147483648, got 0`},
		{"negative open trajectories", lk(map[string]any{"max_open_trajectories": -5}), `max_open_trajectories: must be a count between 1 and 2147483648, got -5`},
		{"too many open trajectories", lk(map[string]any{"max_open_trajectories": float64(1 << 32)}), `max_open_trajectories: must be a count between 1 and 2147483648, got 4294967296`},
		{"fractional open trajectories", lk(map[string]any{"max_open_trajectories": 2.5}), `max_open_trajectories: want an integer, got float64 2.5`},
		{"open trajectories as a string", lk(map[string]any{"max_open_trajectories": "1M"}), `max_open_trajectories: want an integer, got "1M"`},
		{"typo in max_open_trajectories", lk(map[string]any{"max_open_trajectores": 5}), `unknown member (did you mean "max_open_trajectories"?)`},
		{"weights not summing to 1", qm(map[string]any{"weights": map[string]any{"mass": 0.5}}), `policies.quality_meter.weights: must sum to 1, got 1.1 (0.5 + 0.3 + 0.3)`},
		{"weight with three decimals", qm(map[string]any{"weights": map[string]any{"mass": 0.333}}), `weights.mass: want a number between 0 and 1 with at most two decimals, got "0.333": more than two decimals`},
		{"weight above 1", qm(map[string]any{"weights": map[string]any{"mass": 1.5}}), `weights.mass: want a number between 0 and 1 with at most two decimals, got "1.5": greater than 1`},
		{"weight negative", qm(map[string]any{"weights": map[string]any{"mass": -0.1}}), `weights.mass: want a number between 0 and 1 with at most two decimals, got "-0.1": not a plain decimal number`},
		{"float arithmetic is not a weight", qm(map[string]any{"weights": map[string]any{"mass": addFloats(0.1, 0.2)}}), `got "0.30000000000000004": more than two decimals`},
		{"percentile without p", qm(map[string]any{"percentile_target": "96"}), `percentile_target: want "pNN" or "pNN.N" between p1 and p99.9 (e.g. "p96"), got "96"`},
		{"percentile 100", qm(map[string]any{"percentile_target": "p100"}), `got "p100"`},
		{"percentile as a number", qm(map[string]any{"percentile_target": 96}), `percentile_target: want a string, got int 96`},
		{"min_score above 100", qm(map[string]any{"min_score": 120}), `policies.quality_meter.min_score: must be between 0 and 100, got 120`},
		{"fractional count", qm(map[string]any{"warmup": 10.5}), `policies.quality_meter.warmup: want an integer, got float64 10.5`},
		{"confirmer saturation too high", qm(map[string]any{"confirmer_saturation": 9}), `confirmer_saturation: must be between 1 and 4, got 9`},
		{"meter window too short", qm(map[string]any{"window": "30s"}), `policies.quality_meter.window: must be at least 1m, got 30s`},
		{"unknown overload mode", pol("derived_events_perf", map[string]any{"on_overload": "shed"}), `on_overload: want "shed_derived", "slow_ingest" or "reject_429", got "shed"`},
		{"negative cap", pol("derived_events_perf", map[string]any{"max_per_minute": -1}), `max_per_minute: must be between 0 (no cap) and 2147483648, got -1`},
		{"policy not a map", pol("trajectory_linker", nil), ``}, // null is an empty override: accepted
		{"policies not a map", map[string]any{"policies": []any{}}, `policies: want a map, got a []interface {}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig(tc.in)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted, want an error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error:\n  %v\nwant it to contain:\n  %s", err, tc.want)
			}
			if !errors.Is(err, derive.ErrInvalidConfig) {
				t.Errorf("errors.Is(err, derive.ErrInvalidConfig) = false for %v", err)
			}
			var ce *derive.ConfigError
			if !errors.As(err, &ce) || ce.Path == "" {
				t.Errorf("no *derive.ConfigError with a path in %v", err)
			}
		})
	}
}

func TestParsePolicies(t *testing.T) {
	policy := func(name string, m map[string]any) (derive.TenantConfig, error) {
		return ParseConfig(map[string]any{"policies": map[string]any{name: m}})
	}
	c, err := policy("trajectory_linker", map[string]any{"close_on_did": []string{"order.closed"}})
	l := c.Linker
	if err != nil {
		t.Fatal(err)
	}
	wantL := derive.DefaultLinkerPolicy()
	wantL.CloseOnDid = []string{"order.closed"}
	if diff := cmp.Diff(wantL, l); diff != "" {
		t.Errorf("linker (-want +got):\n%s", diff)
	}
	c, err = policy("quality_meter", map[string]any{"percentile_target": "p99", "weights": map[string]any{"mass": 1, "persistence": 0, "verification": 0}})
	m := c.Meter
	if err != nil {
		t.Fatal(err)
	}
	wantM := derive.DefaultMeterPolicy()
	wantM.PercentileTarget = "p99"
	wantM.Weights = derive.Weights{Mass: 100}
	if diff := cmp.Diff(wantM, m); diff != "" {
		t.Errorf("meter (-want +got):\n%s", diff)
	}
	c, err = policy("derived_events_perf", map[string]any{"max_per_minute": json.Number("100")})
	p := c.Perf
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(derive.PerfPolicy{MaxPerMinute: 100, OnOverload: "shed_derived"}, p); diff != "" {
		t.Errorf("perf (-want +got):\n%s", diff)
	}
	if _, err := policy("quality_meter", map[string]any{"min_score": "high"}); err == nil {
		t.Error("min_score \"high\" accepted")
	}
}

// addFloats adds at run time (a constant expression would be exact).
func addFloats(a, b float64) float64 { return a + b }
