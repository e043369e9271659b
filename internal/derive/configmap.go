package derive

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ParseTenantConfig builds a TenantConfig from the generic form a tenant
// configuration decodes to (YAML or JSON into map[string]any), starting from
// DefaultTenantConfig and overriding what m sets:
//
//	features: {trajectory: true, diamond: true, cluster: false}
//	policies:
//	  trajectory_linker:   {key_fields: ["this"], window: "24h", close_timeout: "6h",
//	                        exceptions: ["this:heartbeat-*"], close_on_did: [],
//	                        max_open_trajectories: 1000000}
//	  quality_meter:       {weights: {mass: 0.4, persistence: 0.3, verification: 0.3},
//	                        mass_saturation: 10, persistence_saturation: "12h",
//	                        confirmer_saturation: 3, percentile_target: "p96",
//	                        min_score: 50, warmup: 100, window: "168h"}
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
// *ConfigError wrapping ErrInvalidConfig.
func ParseTenantConfig(m map[string]any) (TenantConfig, error) {
	c := DefaultTenantConfig()
	var ce configErrors
	for _, k := range sortedKeys(m) {
		v := m[k]
		switch k {
		case "features":
			fm, ok := asMap(v)
			if !ok {
				ce.add("features", "want a map, got %s", describe(v))
				continue
			}
			for _, fk := range sortedKeys(fm) {
				var dst *bool
				switch fk {
				case "trajectory":
					dst = &c.Features.Trajectory
				case "diamond":
					dst = &c.Features.Diamond
				case "cluster":
					dst = &c.Features.Cluster
				default:
					ce.add("features."+fk, "unknown feature%s (known: trajectory, diamond, cluster)", didYouMean(fk, []string{"trajectory", "diamond", "cluster"}))
					continue
				}
				b, ok := fm[fk].(bool)
				if !ok {
					ce.add("features."+fk, "want true or false, got %s", describe(fm[fk]))
					continue
				}
				*dst = b
			}
		case "policies":
			pm, ok := asMap(v)
			if !ok {
				ce.add("policies", "want a map, got %s", describe(v))
				continue
			}
			known := []string{"trajectory_linker", "quality_meter", "derived_events_perf"}
			for _, pk := range sortedKeys(pm) {
				switch pk {
				case "trajectory_linker":
					parseLinker(&c.Linker, pm[pk], &ce)
				case "quality_meter":
					parseMeter(&c.Meter, pm[pk], &ce)
				case "derived_events_perf":
					parsePerf(&c.Perf, pm[pk], &ce)
				default:
					if s := didYouMean(pk, known); s != "" {
						ce.add("policies."+pk, "unknown policy%s", s)
					}
				}
			}
		}
	}
	if err := ce.err(); err != nil {
		return TenantConfig{}, err
	}
	if err := c.Validate(); err != nil {
		return TenantConfig{}, err
	}
	return c, nil
}

// ParseLinkerPolicy builds a trajectory_linker policy from its generic form,
// starting from DefaultLinkerPolicy. Errors are as for ParseTenantConfig.
func ParseLinkerPolicy(m map[string]any) (LinkerPolicy, error) {
	c := DefaultTenantConfig()
	var ce configErrors
	parseLinker(&c.Linker, m, &ce)
	return c.Linker, finish(c, &ce)
}

// ParseMeterPolicy builds a quality_meter policy from its generic form,
// starting from DefaultMeterPolicy.
func ParseMeterPolicy(m map[string]any) (MeterPolicy, error) {
	c := DefaultTenantConfig()
	var ce configErrors
	parseMeter(&c.Meter, m, &ce)
	return c.Meter, finish(c, &ce)
}

// ParsePerfPolicy builds a derived_events_perf policy from its generic form,
// starting from DefaultPerfPolicy.
func ParsePerfPolicy(m map[string]any) (PerfPolicy, error) {
	c := DefaultTenantConfig()
	var ce configErrors
	parsePerf(&c.Perf, m, &ce)
	return c.Perf, finish(c, &ce)
}

func finish(c TenantConfig, ce *configErrors) error {
	if err := ce.err(); err != nil {
		return err
	}
	return c.Validate()
}

func parseLinker(l *LinkerPolicy, v any, ce *configErrors) {
	m, ok := asMap(v)
	if !ok {
		ce.add(strings.TrimSuffix(pathLinker, "."), "want a map, got %s", describe(v))
		return
	}
	known := []string{"key_fields", "window", "close_timeout", "exceptions", "close_on_did", "max_open_trajectories"}
	for _, k := range sortedKeys(m) {
		p, v := pathLinker+k, m[k]
		switch k {
		case "key_fields":
			l.KeyFields = getStrings(p, v, ce, l.KeyFields)
		case "window":
			l.Window = getDuration(p, v, ce, l.Window)
		case "close_timeout":
			l.CloseTimeout = getDuration(p, v, ce, l.CloseTimeout)
		case "exceptions":
			l.Exceptions = getStrings(p, v, ce, l.Exceptions)
		case "close_on_did":
			l.CloseOnDid = getStrings(p, v, ce, l.CloseOnDid)
		case "max_open_trajectories":
			l.MaxOpen = getInt(p, v, ce, l.MaxOpen)
		default:
			ce.add(p, "unknown member%s (known: %s)", didYouMean(k, known), strings.Join(known, ", "))
		}
	}
}

func parseMeter(q *MeterPolicy, v any, ce *configErrors) {
	m, ok := asMap(v)
	if !ok {
		ce.add(strings.TrimSuffix(pathMeter, "."), "want a map, got %s", describe(v))
		return
	}
	known := []string{"weights", "mass_saturation", "persistence_saturation", "confirmer_saturation", "percentile_target", "min_score", "warmup", "window"}
	for _, k := range sortedKeys(m) {
		p, v := pathMeter+k, m[k]
		switch k {
		case "weights":
			wm, ok := asMap(v)
			if !ok {
				ce.add(p, "want a map {mass, persistence, verification}, got %s", describe(v))
				continue
			}
			for _, wk := range sortedKeys(wm) {
				var dst *int
				switch wk {
				case "mass":
					dst = &q.Weights.Mass
				case "persistence":
					dst = &q.Weights.Persistence
				case "verification":
					dst = &q.Weights.Verification
				default:
					ce.add(p+"."+wk, "unknown weight%s (known: mass, persistence, verification)", didYouMean(wk, []string{"mass", "persistence", "verification"}))
					continue
				}
				*dst = getWeight(p+"."+wk, wm[wk], ce, *dst)
			}
		case "mass_saturation":
			q.MassSaturation = getInt(p, v, ce, q.MassSaturation)
		case "persistence_saturation":
			q.PersistenceSaturation = getDuration(p, v, ce, q.PersistenceSaturation)
		case "confirmer_saturation":
			q.ConfirmerSaturation = getInt(p, v, ce, q.ConfirmerSaturation)
		case "percentile_target":
			q.PercentileTarget = getString(p, v, ce, q.PercentileTarget)
		case "min_score":
			q.MinScore = getInt(p, v, ce, q.MinScore)
		case "warmup":
			q.Warmup = getInt(p, v, ce, q.Warmup)
		case "window":
			q.Window = getDuration(p, v, ce, q.Window)
		default:
			ce.add(p, "unknown member%s (known: %s)", didYouMean(k, known), strings.Join(known, ", "))
		}
	}
}

func parsePerf(pp *PerfPolicy, v any, ce *configErrors) {
	m, ok := asMap(v)
	if !ok {
		ce.add(strings.TrimSuffix(pathPerf, "."), "want a map, got %s", describe(v))
		return
	}
	known := []string{"max_per_minute", "on_overload"}
	for _, k := range sortedKeys(m) {
		p, v := pathPerf+k, m[k]
		switch k {
		case "max_per_minute":
			pp.MaxPerMinute = getInt(p, v, ce, pp.MaxPerMinute)
		case "on_overload":
			pp.OnOverload = getString(p, v, ce, pp.OnOverload)
		default:
			ce.add(p, "unknown member%s (known: %s)", didYouMean(k, known), strings.Join(known, ", "))
		}
	}
}

func asMap(v any) (map[string]any, bool) {
	switch m := v.(type) {
	case map[string]any:
		return m, true
	case nil:
		return map[string]any{}, true
	}
	return nil, false
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

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

func getString(p string, v any, ce *configErrors, old string) string {
	s, ok := v.(string)
	if !ok {
		ce.add(p, "want a string, got %s", describe(v))
		return old
	}
	return s
}

func getStrings(p string, v any, ce *configErrors, old []string) []string {
	switch x := v.(type) {
	case []string:
		return append([]string{}, x...)
	case []any:
		out := make([]string, 0, len(x))
		for i, e := range x {
			s, ok := e.(string)
			if !ok {
				ce.add(fmt.Sprintf("%s[%d]", p, i), "want a string, got %s", describe(e))
				return old
			}
			out = append(out, s)
		}
		return out
	}
	ce.add(p, "want a list of strings, got %s", describe(v))
	return old
}

func getDuration(p string, v any, ce *configErrors, old time.Duration) time.Duration {
	switch x := v.(type) {
	case time.Duration:
		return x
	case string:
		d, err := time.ParseDuration(x)
		if err != nil {
			ce.add(p, `want a duration such as "90m" or "6h", got %q`, x)
			return old
		}
		return d
	}
	ce.add(p, `want a duration string such as "90m" or "6h" (a bare number has no unit), got %s`, describe(v))
	return old
}

// getInt accepts Go integers, json.Number and integral float64 values (JSON
// decoders produce float64 for every number).
func getInt(p string, v any, ce *configErrors, old int) int {
	n, ok := toInt(v)
	if !ok {
		ce.add(p, "want an integer, got %s", describe(v))
		return old
	}
	return n
}

func toInt(v any) (int, bool) {
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

// getWeight reads a weight in [0,1] with at most two decimals and returns it
// in hundredths. Floats are converted through their shortest decimal form
// (strconv 'f', -1), so 0.3 is exactly 30 and no float arithmetic is involved.
func getWeight(p string, v any, ce *configErrors, old int) int {
	var s string
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			ce.add(p, "want a number between 0 and 1, got %v", x)
			return old
		}
		s = strconv.FormatFloat(x, 'f', -1, 64)
	case float32:
		s = strconv.FormatFloat(float64(x), 'f', -1, 32)
	case string:
		s = x
	case json.Number:
		s = string(x)
	default:
		n, ok := toInt(v)
		if !ok {
			ce.add(p, "want a number between 0 and 1, got %s", describe(v))
			return old
		}
		s = strconv.Itoa(n)
	}
	h, err := parseHundredths(s)
	if err != nil {
		ce.add(p, "want a number between 0 and 1 with at most two decimals, got %q: %v", s, err)
		return old
	}
	return h
}

func parseHundredths(s string) (int, error) {
	ip, fp, _ := strings.Cut(s, ".")
	if ip == "" {
		ip = "0"
	}
	if !allDigits(ip) || !allDigits(fp) {
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
