// Package abi is the catalog of ABI v1 of the .lll language: the names a
// program can refer to without declaring them. It is the single source that
// the checker (which names exist, with which types), the interpreter (what
// a format accepts) and the documentation agree on:
//
//   - the input types: the span, the four derived events of the neutral
//     cycle and the webhook, with their fields;
//   - the formats that "as" accepts (rfc3339, array, ...);
//   - the pure builtins (len, lower, upper, has);
//   - the kernels, stateful functions implemented in Go by the host
//     (percentile, window_count, threshold, components,
//     link_open_or_continue, close_by_timeout_or_rule);
//   - the host calls and the capabilities that gate them;
//   - the feature flags;
//   - the standard policies whose keys the kernels read.
package abi

import (
	"fmt"
	"maps"
	"net/url"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/loglineos/loglineos/internal/lll/diag"
	"github.com/loglineos/loglineos/internal/lll/ir"
	"github.com/loglineos/loglineos/internal/span"
)

// Version is the ABI version.
const Version = ir.ABI

// Field is a field of an input type.
type Field struct {
	Name string
	Type ir.Type
}

// Input types.
const (
	InputSpan = "span"
	// InputWebhook is a webhook the server accepted, for routers only
	// (never with other inputs): its source (the configured name), id
	// (the webhook-id), received_at, tenant and payload (the decoded JSON
	// body).
	InputWebhook = "webhook"
)

// Inputs returns the fields of each input type, by name.
func Inputs() map[string][]Field {
	str := ir.TString
	ts := ir.TTimestamp
	num := ir.TNumber
	return map[string][]Field{
		"span": {{"id", str}, {"tenant", str}, {"who", str}, {"did", str}, {"this", str},
			{"when", ts}, {"status", str}, {"confirmed_by", ir.ListOf(str)}, {"data", ir.TAny}},
		"trajectory_edge": {{"type", str}, {"trajectory_id", str}, {"position", num},
			{"src_span_id", str}, {"this", str}, {"tenant", str}, {"ts", ts}, {"seq", num}},
		"trajectory_closed": {{"type", str}, {"trajectory_id", str}, {"reason", str},
			{"tenant", str}, {"ts", ts}, {"seq", num}},
		"trajectory_quality": {{"type", str}, {"trajectory_id", str}, {"score", num},
			{"components", ir.MapOf(num)}, {"tenant", str}, {"ts", ts}, {"seq", num}},
		"diamond_candidate": {{"type", str}, {"trajectory_id", str}, {"score", num},
			{"threshold", num}, {"tenant", str}, {"ts", ts}, {"seq", num}},
		InputWebhook: {{"source", str}, {"id", str}, {"received_at", ts}, {"tenant", str}, {"payload", ir.TAny}},
	}
}

// InputNames returns the input type names, sorted.
func InputNames() []string { return slices.Sorted(maps.Keys(Inputs())) }

// EventNames returns the derived event types (inputs other than span and
// webhook), sorted.
func EventNames() []string {
	var out []string
	for _, n := range InputNames() {
		if n != InputSpan && n != InputWebhook {
			out = append(out, n)
		}
	}
	return out
}

// SpanMembers returns the top-level members of the span, in canonical order.
func SpanMembers() []string {
	return []string{"confirmed_by", "data", "did", "id", "status", "tenant", "this", "when", "who"}
}

// Format is a format that "as FORMAT" checks.
type Format struct {
	Name string
	// Doc is the one-line meaning.
	Doc string
	// Kinds are the kinds of field the format can match (any field of
	// type any can match every format).
	Kinds []ir.Kind
	// Match reports whether a value has the format; the string is the
	// reason it does not ("is not RFC 3339").
	Match func(v ir.Value) (bool, string)
	// Schema is the JSON Schema keywords the format stands for.
	Schema map[string]any
}

// Formats returns the formats by name.
func Formats() map[string]Format {
	isStr := []ir.Kind{ir.String, ir.Timestamp}
	return map[string]Format{
		"string": {Name: "string", Doc: "a string", Kinds: isStr,
			Match:  kindIs("is not a string", ir.String),
			Schema: map[string]any{"type": "string"}},
		"nonempty": {Name: "nonempty", Doc: "a string that is not empty", Kinds: isStr,
			Match: func(v ir.Value) (bool, string) {
				if v.Kind() != ir.String || v.Str() == "" {
					return false, "is empty"
				}
				return true, ""
			},
			Schema: map[string]any{"type": "string", "minLength": 1}},
		"rfc3339": {Name: "rfc3339", Doc: "an RFC 3339 timestamp (2025-10-05T22:18:07Z)", Kinds: isStr,
			Match: func(v ir.Value) (bool, string) {
				if v.Kind() == ir.Timestamp {
					return true, ""
				}
				if v.Kind() == ir.String {
					if _, ok := ValidRFC3339(v.Str()); ok {
						return true, ""
					}
				}
				return false, "is not RFC 3339"
			},
			Schema: map[string]any{"type": "string", "format": "date-time"}},
		"ulid": {Name: "ulid", Doc: "a ULID, optionally after a prefix ending in _ (s_01JD...)", Kinds: isStr,
			Match: func(v ir.Value) (bool, string) {
				if v.Kind() == ir.String && validULID(v.Str()) {
					return true, ""
				}
				return false, "is not a ULID"
			},
			Schema: map[string]any{"type": "string", "pattern": "^([a-z]+_)?[0-9A-HJKMNP-TV-Z]{26}$"}},
		"uri": {Name: "uri", Doc: "an absolute URI (scheme:...)", Kinds: isStr,
			Match: func(v ir.Value) (bool, string) {
				if v.Kind() == ir.String {
					if u, err := url.Parse(v.Str()); err == nil && u.Scheme != "" {
						return true, ""
					}
				}
				return false, "is not an absolute URI"
			},
			Schema: map[string]any{"type": "string", "format": "uri"}},
		"number": {Name: "number", Doc: "a number", Kinds: []ir.Kind{ir.Number},
			Match:  kindIs("is not a number", ir.Number),
			Schema: map[string]any{"type": "number"}},
		"integer": {Name: "integer", Doc: "a number without a fractional part", Kinds: []ir.Kind{ir.Number},
			Match: func(v ir.Value) (bool, string) {
				if v.Kind() == ir.Number && v.Micros()%ir.NumberScale == 0 {
					return true, ""
				}
				return false, "is not an integer"
			},
			Schema: map[string]any{"type": "integer"}},
		"bool": {Name: "bool", Doc: "true or false", Kinds: []ir.Kind{ir.Bool},
			Match:  kindIs("is not a bool", ir.Bool),
			Schema: map[string]any{"type": "boolean"}},
		"array": {Name: "array", Doc: "a JSON array", Kinds: []ir.Kind{ir.List},
			Match:  kindIs("is not an array", ir.List),
			Schema: map[string]any{"type": "array"}},
		"array_of_strings": {Name: "array_of_strings", Doc: "a JSON array of strings", Kinds: []ir.Kind{ir.List},
			Match: func(v ir.Value) (bool, string) {
				if v.Kind() != ir.List {
					return false, "is not an array"
				}
				for _, e := range v.List() {
					if e.Kind() != ir.String {
						return false, "is not an array of strings"
					}
				}
				return true, ""
			},
			Schema: map[string]any{"type": "array", "items": map[string]any{"type": "string"}}},
		"object": {Name: "object", Doc: "a JSON object", Kinds: []ir.Kind{ir.Map},
			Match:  kindIs("is not an object", ir.Map),
			Schema: map[string]any{"type": "object"}},
	}
}

func kindIs(reason string, k ir.Kind) func(ir.Value) (bool, string) {
	return func(v ir.Value) (bool, string) {
		if v.Kind() == k {
			return true, ""
		}
		return false, reason
	}
}

// FormatNames returns the format names, sorted.
func FormatNames() []string { return slices.Sorted(maps.Keys(Formats())) }

// ValidRFC3339 reports whether s is an RFC 3339 timestamp and returns its
// instant. It is span.ValidRFC3339, the definition the span decoder uses to
// set Span.WhenOK, so the contract and the decoder never disagree.
func ValidRFC3339(s string) (time.Time, bool) { return span.ValidRFC3339(s) }

func validULID(s string) bool {
	if i := strings.LastIndexByte(s, '_'); i >= 0 {
		for _, c := range s[:i] {
			if c < 'a' || c > 'z' {
				return false
			}
		}
		s = s[i+1:]
	}
	if len(s) != 26 || s[0] > '7' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'Z') || c == 'I' || c == 'L' || c == 'O' || c == 'U' {
			return false
		}
	}
	return true
}

// Where a function may be called.
const (
	InExpr   = "expr"   // in any expression
	InEmit   = "emit"   // after "emit: EVENT with"
	InDerive = "derive" // after "derive EVENT on"
	InRoute  = "route"  // after "route ... to"
)

// Func describes a builtin, a kernel or a host call.
type Func struct {
	Name string
	// Sig is the signature as documented: "percentile(score: number) -> number".
	Sig string
	Doc string
	// Params are the parameter types; a Symbol param takes bare names
	// from Symbols; Variadic repeats the last parameter.
	Params   []ir.Type
	Variadic bool
	Symbols  []string
	Result   ir.Type
	// Where lists the contexts the function may be used in.
	Where []string
	// Cap is the capability a host call needs ("" for none).
	Cap string
	// Kind is "builtin", "kernel" or "host".
	Kind string
	// Inputs restricts kernels to validators of these input types (nil: any).
	Inputs []string
}

// Funcs returns every builtin, kernel and host call by name.
func Funcs() map[string]Func {
	num, str, any_ := ir.TNumber, ir.TString, ir.TAny
	fs := []Func{
		{Name: "len", Kind: "builtin", Sig: "len(x: string|list|map) -> number", Doc: "length of a string (bytes), list or map",
			Params: []ir.Type{any_}, Result: num, Where: []string{InExpr}},
		{Name: "lower", Kind: "builtin", Sig: "lower(s: string) -> string", Doc: "s in lower case",
			Params: []ir.Type{str}, Result: str, Where: []string{InExpr}},
		{Name: "upper", Kind: "builtin", Sig: "upper(s: string) -> string", Doc: "s in upper case",
			Params: []ir.Type{str}, Result: str, Where: []string{InExpr}},
		{Name: "has", Kind: "builtin", Sig: "has(field) -> bool", Doc: "whether a field (or data.path) is present",
			Params: []ir.Type{any_}, Result: ir.TBool, Where: []string{InExpr}},
		{Name: "percentile", Kind: "kernel", Sig: "percentile(x: number) -> number",
			Doc:    "the highest percentile target (in steps of 0.1) at which x is at or above the threshold of the meter's window before it (0 while the window is empty); with tie_rationing, x equal to the threshold of percentile_target ranks at or above it only for the tail quota's share of such scores",
			Params: []ir.Type{num}, Result: num, Where: []string{InExpr}, Inputs: []string{"trajectory_quality"}},
		{Name: "window_count", Kind: "kernel", Sig: "window_count() -> number",
			Doc:    "number of scores in the meter's window before this one (for the warm-up)",
			Result: num, Where: []string{InExpr}, Inputs: []string{"trajectory_quality"}},
		{Name: "threshold", Kind: "kernel", Sig: "threshold(p: percentile) -> {threshold: number}",
			Doc:    "the threshold at percentile p of the meter's window (the smallest score s with 1000 * #{<= s} > p_permille * n; 0 while empty), as the member threshold of the emitted event",
			Params: []ir.Type{ir.TPercentile}, Result: ir.MapOf(num), Where: []string{InEmit}, Inputs: []string{"trajectory_quality"}},
		{Name: "components", Kind: "kernel", Sig: "components(name...: mass|persistence|verification) -> {components: map<number>, score: number}",
			Doc:    "the quality components of the closed trajectory in points, and their sum as score",
			Params: []ir.Type{{Kind: ir.String}}, Variadic: true, Symbols: []string{"mass", "persistence", "verification"},
			Result: ir.MapOf(any_), Where: []string{InEmit}, Inputs: []string{"trajectory_edge", "trajectory_closed"}},
		{Name: "link_open_or_continue", Kind: "kernel", Sig: "link_open_or_continue() -> trajectory_edge",
			Doc:    "links a span to the open trajectory of its key (opening one at position 0), per the policy trajectory_linker",
			Result: any_, Where: []string{InDerive}},
		{Name: "close_by_timeout_or_rule", Kind: "kernel", Sig: "close_by_timeout_or_rule() -> trajectory_closed",
			Doc:    "closes trajectories idle for close_timeout, older than window, or matched by close_on",
			Result: any_, Where: []string{InDerive}},
		{Name: "ledger.append", Kind: "host", Cap: "ledger.append", Sig: "ledger.append(payload: any) -> string",
			Doc: "appends a span to the ledger; returns the receipt id", Params: []ir.Type{any_}, Result: str, Where: []string{InRoute}},
		{Name: "kv.get", Kind: "host", Cap: "kv.get", Sig: "kv.get(key: string) -> any",
			Doc: "reads a key of the bundle's key-value store", Params: []ir.Type{str}, Result: any_, Where: []string{InExpr}},
		{Name: "kv.set", Kind: "host", Cap: "kv.set", Sig: "kv.set(key: string, value: any)",
			Doc: "writes a key of the bundle's key-value store", Params: []ir.Type{str, any_}, Result: ir.TNull, Where: []string{InRoute}},
		{Name: "env.get", Kind: "host", Cap: "env.get", Sig: "env.get(name: string) -> string",
			Doc: "reads a recorded environment value (the only source of time or randomness)", Params: []ir.Type{str}, Result: str, Where: []string{InExpr}},
		{Name: "ws.send", Kind: "host", Cap: "ws.send", Sig: "ws.send(channel: string[, payload: any])",
			Doc: "sends the input (or payload) to a WebSocket channel", Params: []ir.Type{str, any_}, Result: ir.TNull, Where: []string{InRoute}},
		{Name: "http.request", Kind: "host", Cap: "http.request", Sig: "http.request(url: string[, payload: any])",
			Doc: "posts the input (or payload) to a URL", Params: []ir.Type{str, any_}, Result: ir.TNull, Where: []string{InRoute}},
		{Name: "crypto.verify", Kind: "host", Sig: "crypto.verify(public_key: string, message: string, signature: string) -> bool",
			Doc: "verifies an ed25519 signature (base64 key and signature); pure, needs no capability", Params: []ir.Type{str, str, str}, Result: ir.TBool, Where: []string{InExpr}},
	}
	m := make(map[string]Func, len(fs))
	for _, f := range fs {
		m[f.Name] = f
	}
	return m
}

// OptionalParams returns how many trailing parameters of f may be omitted.
func (f Func) OptionalParams() int {
	switch f.Name {
	case "ws.send", "http.request":
		return 1
	}
	return 0
}

// FuncNames returns the names of the functions of the given kind ("" for
// all), sorted.
func FuncNames(kind string) []string {
	var out []string
	for n, f := range Funcs() {
		if kind == "" || f.Kind == kind {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// Caps returns the capability names, sorted.
func Caps() []string {
	var out []string
	for _, f := range Funcs() {
		if f.Cap != "" {
			out = append(out, f.Cap)
		}
	}
	sort.Strings(out)
	return out
}

// HostNamespaces are the prefixes of host calls.
func HostNamespaces() []string { return []string{"crypto", "env", "http", "kv", "ledger", "ws"} }

// Features returns the feature flags, sorted.
func Features() []string { return []string{"cluster", "diamond", "trajectory"} }

// OnFailActions returns the on_fail actions.
func OnFailActions() []string { return []string{"reject", "warn"} }

// PolicyKey is a key of a standard policy.
type PolicyKey struct {
	Name string
	Type ir.Type
	Doc  string
	// Keys, for a map, are its allowed keys; OneOf, for a string, its values.
	Keys  []string
	OneOf []string
	// Pattern, for a list of strings, is "key_field" (each a span field
	// the linker can key on) or "field_glob" (each "field:glob").
	Pattern string
	// Min and Max bound a number or percentile (decimal text; "" for no
	// bound); Integer requires a whole number; Decimals, when > 0, is the
	// most fractional digits allowed (of each element of a map).
	Min, Max string
	Integer  bool
	Decimals int
	// SumTo, for a map of numbers, is the sum its values must have.
	SumTo string
	// MinDuration is the least duration allowed.
	MinDuration time.Duration
}

// KeyFields are the span fields the linker can key on and match globs
// against (the "when" member as sent).
func KeyFields() []string { return []string{"id", "tenant", "who", "did", "this", "status", "when"} }

// StandardPolicies returns the keys of the policies the kernels of the
// derivation (internal/derive) read. A policy of one of these names may
// only have these keys, with these types and ranges.
func StandardPolicies() map[string][]PolicyKey {
	return map[string][]PolicyKey{
		"trajectory_linker": {
			{Name: "key_fields", Type: ir.ListOf(ir.TString), Pattern: "key_field", Doc: "span fields whose values, all equal, make spans one trajectory"},
			{Name: "window", Type: ir.TDuration, MinDuration: 1, Doc: "maximum age of a trajectory (event time); older closes with reason timeout"},
			{Name: "close_timeout", Type: ir.TDuration, MinDuration: 1, Doc: "idle time (event time) after which a trajectory closes with reason timeout"},
			{Name: "exceptions", Type: ir.ListOf(ir.TString), Pattern: "field_glob", Doc: "field:glob entries; a matching span is never linked"},
			{Name: "close_on_did", Type: ir.ListOf(ir.TString), Doc: "did values (exact) that close the span's trajectory with reason rule"},
			{Name: "max_open_trajectories", Type: ir.TNumber, Integer: true, Min: "1", Max: "2147483648", Doc: "open trajectories of a tenant at most; one more first closes the oldest with reason evicted"},
		},
		"quality_meter": {
			{Name: "weights", Type: ir.MapOf(ir.TNumber), Keys: []string{"mass", "persistence", "verification"}, Min: "0", Max: "1", Decimals: 2, SumTo: "1", Doc: "weight of each component, at most two decimals, summing to 1"},
			{Name: "mass_saturation", Type: ir.TNumber, Integer: true, Min: "1", Max: "1048576", Doc: "span count at which mass reaches 1"},
			{Name: "persistence_saturation", Type: ir.TDuration, MinDuration: 1, Doc: "first-to-last event time at which persistence reaches 1"},
			{Name: "confirmer_saturation", Type: ir.TNumber, Integer: true, Min: "1", Max: "4", Doc: "distinct confirmers that earn full confirmer credit"},
			{Name: "percentile_target", Type: ir.TPercentile, Min: "1", Max: "99.9", Decimals: 1, Doc: "a score at or above this percentile of the window can be a candidate (\"p96\")"},
			{Name: "min_score", Type: ir.TNumber, Integer: true, Min: "0", Max: "100", Doc: "a candidate's score is at least this"},
			{Name: "warmup", Type: ir.TNumber, Integer: true, Min: "0", Doc: "scores the window must hold before the first candidate"},
			{Name: "window", Type: ir.TDuration, MinDuration: time.Minute, Doc: "event-time width of the meter's sliding window"},
			{Name: "tie_rationing", Type: ir.TBool, Doc: "of the scores equal to the threshold, admit only the share the tail quota has room for; false admits them all"},
			{Name: "credit_budget", Type: ir.TBool, Doc: "hold candidates to the tail share of the scores decided after warm-up; false lets every eligible score be a candidate"},
		},
		"derived_events_perf": {
			{Name: "max_per_minute", Type: ir.TNumber, Integer: true, Min: "0", Doc: "derived events per tenant per event-time minute; 0: no cap"},
			{Name: "on_overload", Type: ir.TString, OneOf: []string{"shed_derived", "slow_ingest", "reject_429"}, Doc: "what happens over the limit"},
		},
	}
}

// PolicyAliases returns, by policy, the other names a key may be written
// with, mapped to its name. The checker writes only the name into the IR.
func PolicyAliases() map[string]map[string]string {
	return map[string]map[string]string{
		"derived_events_perf": {"overflow_action": "on_overload"}, // the name in the source document (§15.3)
	}
}

// Check reports why v is not a valid value of k ("" when it is). It checks
// ranges, integers, decimals, sums, allowed values and list patterns; the
// type itself is the caller's business.
func (k PolicyKey) Check(v ir.Value) string {
	bound := func(x ir.Value, what string) string {
		if what != "" {
			what += " "
		}
		if k.Min != "" {
			if lo, _ := ir.ParseMicros(k.Min); x.Micros() < lo {
				return fmt.Sprintf("%smust be at least %s, not %s", what, k.Min, ir.FormatMicros(x.Micros()))
			}
		}
		if k.Max != "" {
			if hi, _ := ir.ParseMicros(k.Max); x.Micros() > hi {
				return fmt.Sprintf("%smust be at most %s, not %s", what, k.Max, ir.FormatMicros(x.Micros()))
			}
		}
		if k.Integer && x.Micros()%ir.NumberScale != 0 {
			return fmt.Sprintf("%smust be a whole number, not %s", what, ir.FormatMicros(x.Micros()))
		}
		if k.Decimals > 0 {
			unit := int64(ir.NumberScale)
			for i := 0; i < k.Decimals; i++ {
				unit /= 10
			}
			if x.Micros()%unit != 0 {
				return fmt.Sprintf("%shas more than %d decimal%s: %s", what, k.Decimals, map[bool]string{true: "s"}[k.Decimals > 1], ir.FormatMicros(x.Micros()))
			}
		}
		return ""
	}
	switch k.Type.Kind {
	case ir.Number, ir.Percentile:
		return bound(v, "")
	case ir.Duration:
		if v.Duration() < k.MinDuration && k.MinDuration <= 1 {
			return fmt.Sprintf("must be a positive duration, not %s", ir.FormatDuration(v.Duration()))
		}
		if v.Duration() < k.MinDuration {
			return fmt.Sprintf("must be at least %s, not %s", ir.FormatDuration(max(k.MinDuration, 0)), ir.FormatDuration(v.Duration()))
		}
	case ir.String:
		if len(k.OneOf) > 0 && !contains(k.OneOf, v.Str()) {
			q := make([]string, len(k.OneOf))
			for i, o := range k.OneOf {
				q[i] = strconv.Quote(o)
			}
			return fmt.Sprintf("must be one of %s, not %q%s", strings.Join(q, ", "), v.Str(), diag.DidYouMean(v.Str(), k.OneOf))
		}
	case ir.Map:
		var sum int64
		for _, key := range v.Keys() {
			if len(k.Keys) > 0 && !contains(k.Keys, key) {
				return fmt.Sprintf("has no key %s%s (its keys are %s)", key, diag.DidYouMean(key, k.Keys), strings.Join(k.Keys, ", "))
			}
			e, _ := v.Get(key)
			if r := bound(e, key); r != "" {
				return r
			}
			sum += e.Micros()
		}
		if k.SumTo != "" {
			if want, _ := ir.ParseMicros(k.SumTo); sum != want {
				return fmt.Sprintf("must sum to %s; they sum to %s", k.SumTo, ir.FormatMicros(sum))
			}
		}
	case ir.List:
		for i, e := range v.List() {
			if r := CheckPattern(k.Pattern, e.Str()); r != "" {
				return fmt.Sprintf("[%d]: %s", i, r)
			}
		}
	}
	return ""
}

// CheckPattern checks one element of a list against a pattern
// ("key_field" or "field_glob"; "" accepts anything).
func CheckPattern(pattern, s string) string {
	switch pattern {
	case "key_field":
		if !contains(KeyFields(), s) {
			return fmt.Sprintf("%q is not a span field the linker can key on%s (%s)", s, diag.DidYouMean(s, KeyFields()), strings.Join(KeyFields(), ", "))
		}
	case "field_glob":
		field, glob, ok := strings.Cut(s, ":")
		if !ok {
			return fmt.Sprintf("%q must be field:glob (e.g. \"this:heartbeat-*\")", s)
		}
		if !contains(KeyFields(), field) {
			return fmt.Sprintf("%q is not a span field the linker can match%s (%s)", field, diag.DidYouMean(field, KeyFields()), strings.Join(KeyFields(), ", "))
		}
		if r := ValidGlob(glob); r != "" {
			return fmt.Sprintf("%q: %s", s, r)
		}
	}
	return ""
}

// ValidGlob reports why p is not a valid glob ("" when it is). Globs have
// the syntax and meaning of Go's path.Match, everywhere in the system (the
// matches operator and the linker's exceptions alike): * matches any run of
// characters other than /, ? one such character, [a-z] and [^a-z] a class,
// \ escapes the next character; the whole string must match.
func ValidGlob(p string) string {
	if p == "" {
		return "empty pattern"
	}
	if _, err := path.Match(p, ""); err != nil {
		return "malformed glob " + strconv.Quote(p) + " (unclosed [ or a trailing \\)"
	}
	return ""
}

// MatchGlob reports whether s matches the glob p (see ValidGlob).
func MatchGlob(p, s string) bool {
	ok, _ := path.Match(p, s)
	return ok
}

func contains(s []string, x string) bool {
	for _, y := range s {
		if x == y {
			return true
		}
	}
	return false
}
