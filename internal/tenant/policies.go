package tenant

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/loglineos/loglineos/internal/bundle"
	"github.com/loglineos/loglineos/internal/derive"
	"github.com/loglineos/loglineos/internal/suggest"
)

// ParseConfig builds a tenant's derivation configuration from the generic
// form its features and policies decode to (YAML or JSON into
// map[string]any; a config record's "config" member), starting from
// derive.DefaultTenantConfig and overriding what doc sets:
//
//	features: {trajectory: true, diamond: true, cluster: false}
//	policies:
//	  trajectory_linker:   {key_fields: ["this"], window: "24h", close_timeout: "6h",
//	                        exceptions: ["this:heartbeat-*"], close_on_did: [],
//	                        max_open_trajectories: 1000000}
//	  quality_meter:       {weights: {mass: 0.4, persistence: 0.3, verification: 0.3},
//	                        mass_saturation: 10, persistence_saturation: "12h",
//	                        confirmer_saturation: 3, percentile_target: "p96",
//	                        min_score: 60, warmup: 100, window: "168h",
//	                        tie_rationing: true, credit_budget: true}
//	  derived_events_perf: {max_per_minute: 0, on_overload: "shed_derived"}
//
// Other top-level members (quotas, redact, ...) and other policies belong to
// other subsystems and are ignored, except that a policy name one or two
// letters away from one of the three above is reported as a likely typo.
// Unknown members inside features and the three policies are errors.
// Durations are Go duration strings ("90m", "6h"); weights are numbers in
// [0,1] with at most two decimals (0.35), or such numbers as strings.
//
// The result is validated; the error joins every problem found, each a
// *derive.ConfigError (wrapping derive.ErrInvalidConfig) whose Path names
// the value as written ("policies.quality_meter.min_score").
func ParseConfig(doc map[string]any) (derive.TenantConfig, error) {
	c := derive.DefaultTenantConfig()
	var errs problems
	for _, k := range slices.Sorted(maps.Keys(doc)) {
		switch k {
		case "features":
			features().set(&c, doc[k], &errs)
		case "policies":
			setPolicies(&c, doc[k], &errs)
		}
	}
	if err := errs.err(); err != nil {
		return derive.TenantConfig{}, err
	}
	if err := c.Validate(); err != nil {
		return derive.TenantConfig{}, err
	}
	return c, nil
}

// Merge lays overrides over base, recursively for maps; base is not
// changed. It is how a tenant file's features and policies override the
// bundle's: a config record carries the merged document.
func Merge(base, overrides map[string]any) map[string]any {
	out := maps.Clone(base)
	if out == nil {
		out = make(map[string]any, len(overrides))
	}
	for k, v := range overrides {
		if bm, ok := out[k].(map[string]any); ok {
			if om, ok := v.(map[string]any); ok {
				out[k] = Merge(bm, om)
				continue
			}
		}
		out[k] = v
	}
	return out
}

// The policies the engine reads, by their name in a tenant file.
const (
	policyLinker = "trajectory_linker"
	policyMeter  = "quality_meter"
	policyPerf   = "derived_events_perf"
)

// DerivationPolicies names the policies derivation reads, in the order
// they are documented. A tenant file's other policies are recorded and
// ignored.
func DerivationPolicies() []string { return []string{policyLinker, policyMeter, policyPerf} }

func setPolicies(c *derive.TenantConfig, v any, errs *problems) {
	m, ok := asMap(v)
	if !ok {
		errs.add("policies", "want a map, got %s", describe(v))
		return
	}
	for _, name := range slices.Sorted(maps.Keys(m)) {
		switch name {
		case policyLinker:
			linker().set(c, m[name], errs)
		case policyMeter:
			meter().set(c, m[name], errs)
		case policyPerf:
			perf().set(c, m[name], errs)
		default:
			if s := suggest.DidYouMean(name, DerivationPolicies()); s != "" {
				errs.add("policies."+name, "unknown policy%s", s)
			}
		}
	}
}

// A section is a map of settings: the features, one policy, the weights.
// Its members are all known; any other is an error.
type section struct {
	path     string // as written: "policies.quality_meter"
	noun     string // what a member is called in "unknown <noun>"
	shape    string // what a value of the section must be
	settings []setting
}

// A setting is one member of a section: its name, and how a value in
// generic form sets it in a TenantConfig, adding an error at path instead
// when it cannot.
type setting struct {
	name string
	set  func(c *derive.TenantConfig, path string, v any, errs *problems)
}

// field is a setting whose value is converted by conv and stored at dst.
func field[T any](name string, conv func(path string, v any, errs *problems) (T, bool), dst func(*derive.TenantConfig) *T) setting {
	return setting{name, func(c *derive.TenantConfig, path string, v any, errs *problems) {
		if x, ok := conv(path, v, errs); ok {
			*dst(c) = x
		}
	}}
}

// nested is a setting that is itself a section.
func nested(s section) setting {
	return setting{s.path[strings.LastIndexByte(s.path, '.')+1:], func(c *derive.TenantConfig, _ string, v any, errs *problems) {
		s.set(c, v, errs)
	}}
}

func (s section) names() []string {
	names := make([]string, len(s.settings))
	for i, st := range s.settings {
		names[i] = st.name
	}
	return names
}

// set applies v, a map of the section's members, to c; null is an empty
// map (nothing overridden).
func (s section) set(c *derive.TenantConfig, v any, errs *problems) {
	m, ok := asMap(v)
	if !ok {
		errs.add(s.path, "want %s, got %s", s.shape, describe(v))
		return
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		p := s.path + "." + k
		i := slices.IndexFunc(s.settings, func(st setting) bool { return st.name == k })
		if i < 0 {
			errs.add(p, "unknown %s%s (known: %s)", s.noun, suggest.DidYouMean(k, s.names()), strings.Join(s.names(), ", "))
			continue
		}
		s.settings[i].set(c, p, m[k], errs)
	}
}

// The sections, each with its settings in documented order.

func features() section {
	return section{path: "features", noun: "feature", shape: "a map", settings: []setting{
		field("trajectory", toBool, func(c *derive.TenantConfig) *bool { return &c.Features.Trajectory }),
		field("diamond", toBool, func(c *derive.TenantConfig) *bool { return &c.Features.Diamond }),
		field("cluster", toBool, func(c *derive.TenantConfig) *bool { return &c.Features.Cluster }),
	}}
}

func linker() section {
	return section{path: "policies." + policyLinker, noun: "member", shape: "a map", settings: []setting{
		field("key_fields", toStrings, func(c *derive.TenantConfig) *[]string { return &c.Linker.KeyFields }),
		field("window", toDuration, func(c *derive.TenantConfig) *time.Duration { return &c.Linker.Window }),
		field("close_timeout", toDuration, func(c *derive.TenantConfig) *time.Duration { return &c.Linker.CloseTimeout }),
		field("exceptions", toStrings, func(c *derive.TenantConfig) *[]string { return &c.Linker.Exceptions }),
		field("close_on_did", toStrings, func(c *derive.TenantConfig) *[]string { return &c.Linker.CloseOnDid }),
		field("max_open_trajectories", toInt, func(c *derive.TenantConfig) *int { return &c.Linker.MaxOpen }),
	}}
}

func meter() section {
	weights := section{path: "policies." + policyMeter + ".weights", noun: "weight", shape: "a map {mass, persistence, verification}", settings: []setting{
		field("mass", toWeight, func(c *derive.TenantConfig) *int { return &c.Meter.Weights.Mass }),
		field("persistence", toWeight, func(c *derive.TenantConfig) *int { return &c.Meter.Weights.Persistence }),
		field("verification", toWeight, func(c *derive.TenantConfig) *int { return &c.Meter.Weights.Verification }),
	}}
	return section{path: "policies." + policyMeter, noun: "member", shape: "a map", settings: []setting{
		nested(weights),
		field("mass_saturation", toInt, func(c *derive.TenantConfig) *int { return &c.Meter.MassSaturation }),
		field("persistence_saturation", toDuration, func(c *derive.TenantConfig) *time.Duration { return &c.Meter.PersistenceSaturation }),
		field("confirmer_saturation", toInt, func(c *derive.TenantConfig) *int { return &c.Meter.ConfirmerSaturation }),
		field("percentile_target", toString, func(c *derive.TenantConfig) *string { return &c.Meter.PercentileTarget }),
		field("min_score", toInt, func(c *derive.TenantConfig) *int { return &c.Meter.MinScore }),
		field("warmup", toInt, func(c *derive.TenantConfig) *int { return &c.Meter.Warmup }),
		field("window", toDuration, func(c *derive.TenantConfig) *time.Duration { return &c.Meter.Window }),
		field("tie_rationing", toBool, func(c *derive.TenantConfig) *bool { return &c.Meter.TieRationing }),
		field("credit_budget", toBool, func(c *derive.TenantConfig) *bool { return &c.Meter.CreditBudget }),
	}}
}

func perf() section {
	return section{path: "policies." + policyPerf, noun: "member", shape: "a map", settings: []setting{
		field("max_per_minute", toInt, func(c *derive.TenantConfig) *int { return &c.Perf.MaxPerMinute }),
		field("on_overload", toString, func(c *derive.TenantConfig) *string { return &c.Perf.OnOverload }),
	}}
}

// problems collects the errors of one parse, in the order found.
type problems struct{ errs []error }

func (ps *problems) add(path, format string, args ...any) {
	ps.errs = append(ps.errs, &derive.ConfigError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (ps *problems) err() error { return errors.Join(ps.errs...) }

func asMap(v any) (map[string]any, bool) {
	switch m := v.(type) {
	case map[string]any:
		return m, true
	case nil:
		return map[string]any{}, true
	}
	return nil, false
}

// describe names a value in an error: its Go type and value, as the
// decoder produced it (YAML gives int, JSON float64).
func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return strconv.Quote(x)
	case bool, int, int64, float64, json.Number:
		return fmt.Sprintf("%T %v", v, x)
	}
	return fmt.Sprintf("a %T", v)
}

// The conversions of generic values to settings. Each reports a value it
// cannot take and returns false.

func toBool(p string, v any, errs *problems) (bool, bool) {
	b, ok := v.(bool)
	if !ok {
		errs.add(p, "want true or false, got %s", describe(v))
	}
	return b, ok
}

func toString(p string, v any, errs *problems) (string, bool) {
	s, ok := v.(string)
	if !ok {
		errs.add(p, "want a string, got %s", describe(v))
	}
	return s, ok
}

func toStrings(p string, v any, errs *problems) ([]string, bool) {
	switch x := v.(type) {
	case []string:
		return append([]string{}, x...), true
	case []any:
		out := make([]string, 0, len(x))
		for i, e := range x {
			s, ok := e.(string)
			if !ok {
				errs.add(fmt.Sprintf("%s[%d]", p, i), "want a string, got %s", describe(e))
				return nil, false
			}
			out = append(out, s)
		}
		return out, true
	}
	errs.add(p, "want a list of strings, got %s", describe(v))
	return nil, false
}

func toDuration(p string, v any, errs *problems) (time.Duration, bool) {
	switch x := v.(type) {
	case time.Duration:
		return x, true
	case string:
		d, err := time.ParseDuration(x)
		if err != nil {
			errs.add(p, `want a duration such as "90m" or "6h", got %q`, x)
			return 0, false
		}
		return d, true
	}
	errs.add(p, `want a duration string such as "90m" or "6h" (a bare number has no unit), got %s`, describe(v))
	return 0, false
}

// toInt accepts Go integers, json.Number and integral float64 values (JSON
// decoders produce float64 for every number).
func toInt(p string, v any, errs *problems) (int, bool) {
	n, ok := intValue(v)
	if !ok {
		errs.add(p, "want an integer, got %s", describe(v))
	}
	return n, ok
}

func intValue(v any) (int, bool) {
	switch x := v.(type) {
	case int:
		return x, true
	case int8:
		return int(x), true
	case int16:
		return int(x), true
	case int32:
		return int(x), true
	case int64:
		return int(x), true
	case uint8:
		return int(x), true
	case uint16:
		return int(x), true
	case uint32:
		return int(x), true
	case uint64:
		if x > math.MaxInt64 {
			return 0, false
		}
		return int(x), true
	case uint:
		if uint64(x) > math.MaxInt64 {
			return 0, false
		}
		return int(x), true
	case float64:
		if x != math.Trunc(x) || math.Abs(x) > 1<<53 {
			return 0, false
		}
		return int(x), true
	case json.Number:
		n, err := strconv.ParseInt(string(x), 10, 64)
		if err != nil {
			return 0, false
		}
		return int(n), true
	}
	return 0, false
}

// toWeight reads a weight in [0,1] with at most two decimals and returns it
// in hundredths. Floats are converted through their shortest decimal form
// (strconv 'f', -1), so 0.3 is exactly 30 and no float arithmetic is
// involved.
func toWeight(p string, v any, errs *problems) (int, bool) {
	var s string
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			errs.add(p, "want a number between 0 and 1, got %v", x)
			return 0, false
		}
		s = strconv.FormatFloat(x, 'f', -1, 64)
	case float32:
		s = strconv.FormatFloat(float64(x), 'f', -1, 32)
	case string:
		s = x
	case json.Number:
		s = string(x)
	default:
		n, ok := intValue(v)
		if !ok {
			errs.add(p, "want a number between 0 and 1, got %s", describe(v))
			return 0, false
		}
		s = strconv.Itoa(n)
	}
	h, err := parseHundredths(s)
	if err != nil {
		errs.add(p, "want a number between 0 and 1 with at most two decimals, got %q: %v", s, err)
		return 0, false
	}
	return h, true
}

func parseHundredths(s string) (int, error) {
	ip, fp, _ := strings.Cut(s, ".")
	if ip == "" {
		ip = "0"
	}
	if strings.Trim(ip, "0123456789") != "" || strings.Trim(fp, "0123456789") != "" {
		return 0, errors.New("not a plain decimal number")
	}
	fp = strings.TrimRight(fp, "0")
	if len(fp) > 2 {
		return 0, errors.New("more than two decimals")
	}
	for len(fp) < 2 {
		fp += "0"
	}
	ip = strings.TrimLeft(ip, "0")
	if len(ip) > 1 || (ip == "1" && fp != "00") {
		return 0, errors.New("greater than 1")
	}
	i, _ := strconv.Atoi("0" + ip)
	f, _ := strconv.Atoi(fp)
	return i*100 + f, nil
}

// BasePolicies returns the derivation configuration the bundle sets for
// every tenant: derive's default features and the bundle's linker, meter and
// perf policies, as a map a tenant file's overrides are merged into.
func BasePolicies(b *bundle.Bundle) map[string]any {
	def := derive.DefaultTenantConfig().Features
	policies := map[string]any{}
	for _, name := range DerivationPolicies() {
		p, ok := b.Policy(name)
		if !ok {
			continue
		}
		m := map[string]any{}
		for _, f := range p.IR().Fields {
			m[f.Key] = f.Value.Interface()
		}
		policies[name] = m
	}
	return map[string]any{
		"features": map[string]any{"trajectory": def.Trajectory, "diamond": def.Diamond, "cluster": def.Cluster},
		"policies": policies,
	}
}
