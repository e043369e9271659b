package ir

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// NumberScale is the fixed-point scale of numbers: a Number value is an
// integer count of millionths. Every backend computes with these integers,
// so results agree bit for bit.
const NumberScale = 1_000_000

// Value is a value of the language. The zero Value is null.
type Value struct {
	kind Kind
	n    int64 // bool 0/1; number and percentile in millionths; duration in ns; timestamp in Unix ns
	s    string
	l    []Value
	m    *mapValue
}

type mapValue struct {
	keys []string // sorted
	vals []Value
}

// Constructors.
func NullValue() Value                    { return Value{kind: Null} }
func BoolValue(b bool) Value              { return Value{kind: Bool, n: b2i(b)} }
func StringValue(s string) Value          { return Value{kind: String, s: s} }
func DurationValue(d time.Duration) Value { return Value{kind: Duration, n: int64(d)} }
func TimestampValue(t time.Time) Value    { return Value{kind: Timestamp, n: t.UnixNano()} }
func ListValue(elems []Value) Value       { return Value{kind: List, l: elems} }

// NumberMicros returns the number micros/1e6.
func NumberMicros(micros int64) Value { return Value{kind: Number, n: micros} }

// IntValue returns the number i.
func IntValue(i int64) Value { return Value{kind: Number, n: i * NumberScale} }

// PercentileMicros returns the percentile p = micros/1e6 (p96 is 96e6).
func PercentileMicros(micros int64) Value { return Value{kind: Percentile, n: micros} }

// MapValue returns a map of the given entries (keys are sorted; a later
// duplicate replaces an earlier one).
func MapValue(entries map[string]Value) Value {
	keys := make([]string, 0, len(entries))
	for k := range entries {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	vals := make([]Value, len(keys))
	for i, k := range keys {
		vals[i] = entries[k]
	}
	return Value{kind: Map, m: &mapValue{keys: keys, vals: vals}}
}

// SortedMapValue returns the map keys[i] -> vals[i] without copying: keys
// must be sorted and unique and as long as vals, and neither slice may
// change while the value is in use. It is MapValue for callers that build
// the same shape of map many times (a derivation's events).
func SortedMapValue(keys []string, vals []Value) Value {
	return Value{kind: Map, m: &mapValue{keys: keys, vals: vals}}
}

// SetSortedMap makes *v the map keys[i] -> vals[i], as SortedMapValue
// does, reusing the memory of *v when it is a map already: every copy of
// the old *v then changes with it. It is for a buffer of the caller's own
// that is rebuilt many times and whose maps are not kept.
func (v *Value) SetSortedMap(keys []string, vals []Value) {
	if v.kind != Map || v.m == nil {
		*v = SortedMapValue(keys, vals)
		return
	}
	v.m.keys, v.m.vals = keys, vals
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// Kind returns the kind of the value (Null for the zero Value).
func (v Value) Kind() Kind {
	if v.kind == Invalid {
		return Null
	}
	return v.kind
}

// IsNull reports whether v is null.
func (v Value) IsNull() bool { return v.Kind() == Null }

// Bool returns the value of a bool.
func (v Value) Bool() bool { return v.n != 0 }

// Str returns the value of a string.
func (v Value) Str() string { return v.s }

// Micros returns a number or percentile in millionths.
func (v Value) Micros() int64 { return v.n }

// Float64 returns a number or percentile as a float64.
func (v Value) Float64() float64 { return float64(v.n) / NumberScale }

// Int returns the integer part of a number.
func (v Value) Int() int64 { return v.n / NumberScale }

// Duration returns the value of a duration.
func (v Value) Duration() time.Duration { return time.Duration(v.n) }

// Time returns the value of a timestamp, in UTC.
func (v Value) Time() time.Time { return time.Unix(0, v.n).UTC() }

// List returns the elements of a list.
func (v Value) List() []Value { return v.l }

// Keys returns the sorted keys of a map.
func (v Value) Keys() []string {
	if v.m == nil {
		return nil
	}
	return v.m.keys
}

// Values returns the values of a map, in the order of Keys.
func (v Value) Values() []Value {
	if v.m == nil {
		return nil
	}
	return v.m.vals
}

// Get returns the value of key in a map.
func (v Value) Get(key string) (Value, bool) {
	if v.m == nil {
		return Value{}, false
	}
	keys := v.m.keys
	if len(keys) <= 8 {
		// A scan beats a binary search on the small maps of events.
		for i, k := range keys {
			if k == key {
				return v.m.vals[i], true
			}
		}
		return Value{}, false
	}
	i := sort.SearchStrings(keys, key)
	if i < len(keys) && keys[i] == key {
		return v.m.vals[i], true
	}
	return Value{}, false
}

// Len returns the length of a list, map or string.
func (v Value) Len() int {
	switch v.Kind() {
	case List:
		return len(v.l)
	case Map:
		if v.m == nil {
			return 0
		}
		return len(v.m.keys)
	case String:
		return len(v.s)
	}
	return 0
}

// Equal reports whether v and w are the same value (numbers and
// percentiles compare by value).
func (v Value) Equal(w Value) bool {
	if v.Kind() != w.Kind() {
		num := func(k Kind) bool { return k == Number || k == Percentile }
		return num(v.kind) && num(w.kind) && v.n == w.n
	}
	switch v.Kind() {
	case Null:
		return true
	case String:
		return v.s == w.s
	case List:
		if len(v.l) != len(w.l) {
			return false
		}
		for i := range v.l {
			if !v.l[i].Equal(w.l[i]) {
				return false
			}
		}
		return true
	case Map:
		vk, wk := v.Keys(), w.Keys()
		if len(vk) != len(wk) {
			return false
		}
		for i := range vk {
			if vk[i] != wk[i] || !v.m.vals[i].Equal(w.m.vals[i]) {
				return false
			}
		}
		return true
	}
	return v.n == w.n
}

// FormatMicros writes a fixed-point number in its shortest decimal form.
func FormatMicros(n int64) string {
	neg := n < 0
	u := uint64(n)
	if neg {
		u = uint64(-n)
	}
	ip, fp := u/NumberScale, u%NumberScale
	s := strconv.FormatUint(ip, 10)
	if fp != 0 {
		f := strings.TrimRight(fmt.Sprintf("%06d", fp), "0")
		s += "." + f
	}
	if neg {
		s = "-" + s
	}
	return s
}

// ParseMicros parses a decimal number (at most 6 fractional digits) into
// millionths.
func ParseMicros(s string) (int64, error) {
	neg := strings.HasPrefix(s, "-")
	t := strings.TrimPrefix(s, "-")
	ip, fp, _ := strings.Cut(t, ".")
	if ip == "" || strings.ContainsAny(ip+fp, "+-eE") {
		return 0, fmt.Errorf("malformed number %q", s)
	}
	if len(fp) > 6 {
		return 0, fmt.Errorf("number %q has more than 6 decimal places", s)
	}
	i, err := strconv.ParseUint(ip, 10, 63)
	if err != nil || i > math.MaxInt64/NumberScale-1 {
		return 0, fmt.Errorf("number %q out of range", s)
	}
	var f uint64
	if fp != "" {
		f, err = strconv.ParseUint(fp+strings.Repeat("0", 6-len(fp)), 10, 63)
		if err != nil {
			return 0, fmt.Errorf("malformed number %q", s)
		}
	}
	n := int64(i*NumberScale + f)
	if neg {
		n = -n
	}
	return n, nil
}

// FormatDuration writes a duration in the language's syntax (6h, 1h30m,
// 250ms, 168h), which Go's time.ParseDuration reads too.
func FormatDuration(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	var b strings.Builder
	if d < 0 {
		b.WriteByte('-')
		d = -d
	}
	for _, u := range []struct {
		n string
		d time.Duration
	}{{"h", time.Hour}, {"m", time.Minute}, {"s", time.Second}, {"ms", time.Millisecond}} {
		if d >= u.d {
			fmt.Fprintf(&b, "%d%s", d/u.d, u.n)
			d %= u.d
		}
	}
	if d > 0 {
		fmt.Fprintf(&b, "%dns", int64(d))
	}
	return b.String()
}

// String returns the value in the language's literal syntax.
func (v Value) String() string {
	switch v.Kind() {
	case Null:
		return "null"
	case Bool:
		return strconv.FormatBool(v.Bool())
	case Number:
		return FormatMicros(v.n)
	case Percentile:
		return `"p` + FormatMicros(v.n) + `"`
	case String:
		return strconv.Quote(v.s)
	case Duration:
		return FormatDuration(v.Duration())
	case Timestamp:
		return strconv.Quote(v.Time().Format(time.RFC3339Nano))
	case List:
		parts := make([]string, len(v.l))
		for i, e := range v.l {
			parts[i] = e.String()
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case Map:
		parts := make([]string, 0, v.Len())
		for i, k := range v.Keys() {
			parts = append(parts, k+": "+v.m.vals[i].String())
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return "<invalid>"
}

// Interface returns the value as plain Go data for JSON: nil, bool, string,
// json.Number, []any, map[string]any; durations as their text ("6h"),
// percentiles as "p96", timestamps as RFC 3339 text.
func (v Value) Interface() any {
	switch v.Kind() {
	case Bool:
		return v.Bool()
	case Number:
		return json.Number(FormatMicros(v.n))
	case Percentile:
		return "p" + FormatMicros(v.n)
	case String:
		return v.s
	case Duration:
		return FormatDuration(v.Duration())
	case Timestamp:
		return v.Time().Format(time.RFC3339Nano)
	case List:
		out := make([]any, len(v.l))
		for i, e := range v.l {
			out[i] = e.Interface()
		}
		return out
	case Map:
		out := make(map[string]any, v.Len())
		for i, k := range v.Keys() {
			out[k] = v.m.vals[i].Interface()
		}
		return out
	}
	return nil
}

// wireValue is the JSON form of a Value in the IR: exactly one member set.
type wireValue struct {
	Null       bool              `json:"null,omitempty"`
	Bool       *bool             `json:"bool,omitempty"`
	Number     string            `json:"number,omitempty"`
	String     *string           `json:"string,omitempty"`
	DurationNS *int64            `json:"duration_ns,omitempty"`
	Percentile string            `json:"percentile,omitempty"`
	TimeNS     *int64            `json:"timestamp_ns,omitempty"`
	List       *[]Value          `json:"list,omitempty"`
	Map        *map[string]Value `json:"map,omitempty"`
}

// MarshalJSON encodes the value for the IR.
func (v Value) MarshalJSON() ([]byte, error) {
	var w wireValue
	switch v.Kind() {
	case Null:
		w.Null = true
	case Bool:
		b := v.Bool()
		w.Bool = &b
	case Number:
		w.Number = FormatMicros(v.n)
	case Percentile:
		w.Percentile = FormatMicros(v.n)
	case String:
		s := v.s
		w.String = &s
	case Duration:
		n := v.n
		w.DurationNS = &n
	case Timestamp:
		n := v.n
		w.TimeNS = &n
	case List:
		l := v.l
		if l == nil {
			l = []Value{}
		}
		w.List = &l
	case Map:
		m := make(map[string]Value, v.Len())
		for i, k := range v.Keys() {
			m[k] = v.m.vals[i]
		}
		w.Map = &m
	default:
		return nil, fmt.Errorf("ir: cannot encode %s value", v.kind)
	}
	return json.Marshal(w)
}

// UnmarshalJSON decodes the IR form of a value.
func (v *Value) UnmarshalJSON(b []byte) error {
	var w wireValue
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	set := 0
	for _, ok := range []bool{w.Null, w.Bool != nil, w.Number != "", w.String != nil, w.DurationNS != nil,
		w.Percentile != "", w.TimeNS != nil, w.List != nil, w.Map != nil} {
		if ok {
			set++
		}
	}
	if set != 1 {
		return fmt.Errorf("ir: value must have exactly one kind, has %d", set)
	}
	switch {
	case w.Null:
		*v = Value{}
	case w.Bool != nil:
		*v = BoolValue(*w.Bool)
	case w.Number != "", w.Percentile != "":
		s, k := w.Number, Number
		if s == "" {
			s, k = w.Percentile, Percentile
		}
		n, err := ParseMicros(s)
		if err != nil {
			return fmt.Errorf("ir: %v", err)
		}
		*v = Value{kind: k, n: n}
	case w.String != nil:
		*v = StringValue(*w.String)
	case w.DurationNS != nil:
		*v = Value{kind: Duration, n: *w.DurationNS}
	case w.TimeNS != nil:
		*v = Value{kind: Timestamp, n: *w.TimeNS}
	case w.List != nil:
		*v = ListValue(*w.List)
	case w.Map != nil:
		*v = MapValue(*w.Map)
	}
	return nil
}

// FromJSON converts a decoded JSON value (as from encoding/json with
// UseNumber) into a Value: objects become maps, arrays lists, numbers
// fixed-point numbers (rounded to 6 decimals).
func FromJSON(x any) (Value, error) {
	switch x := x.(type) {
	case nil:
		return Value{}, nil
	case bool:
		return BoolValue(x), nil
	case string:
		return StringValue(x), nil
	case json.Number:
		if n, err := ParseMicros(string(x)); err == nil {
			return NumberMicros(n), nil
		}
		f, err := x.Float64()
		if err != nil || math.Abs(f) > math.MaxInt64/NumberScale {
			return Value{}, fmt.Errorf("number %s out of range", x)
		}
		return NumberMicros(int64(math.Round(f * NumberScale))), nil
	case float64:
		if math.IsNaN(x) || math.Abs(x) > math.MaxInt64/NumberScale {
			return Value{}, fmt.Errorf("number %v out of range", x)
		}
		return NumberMicros(int64(math.Round(x * NumberScale))), nil
	case int:
		return IntValue(int64(x)), nil
	case int64:
		return IntValue(x), nil
	case []any:
		l := make([]Value, len(x))
		for i, e := range x {
			v, err := FromJSON(e)
			if err != nil {
				return Value{}, err
			}
			l[i] = v
		}
		return ListValue(l), nil
	case []string:
		l := make([]Value, len(x))
		for i, e := range x {
			l[i] = StringValue(e)
		}
		return ListValue(l), nil
	case map[string]any:
		m := make(map[string]Value, len(x))
		for k, e := range x {
			v, err := FromJSON(e)
			if err != nil {
				return Value{}, err
			}
			m[k] = v
		}
		return MapValue(m), nil
	}
	return Value{}, fmt.Errorf("unsupported value of type %T", x)
}
