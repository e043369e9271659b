package span

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"
)

// The seed corpora are testdata/fuzz/FuzzCanonicalize and
// testdata/fuzz/FuzzParse, plus the inputs of the table tests.

func FuzzCanonicalize(f *testing.F) {
	for _, tc := range canonicalCases {
		f.Add([]byte(tc.in))
	}
	f.Add(specSpan)
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := Canonicalize(in)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Canonicalize(%q): %T %v, want a *SyntaxError", in, err, err)
			}
			if se.Offset < 0 || se.Offset > int64(len(in)) {
				t.Fatalf("Canonicalize(%q): offset %d outside the input", in, se.Offset)
			}
			return
		}
		if !json.Valid(in) {
			t.Fatalf("Canonicalize(%q) = %q, but encoding/json rejects the input", in, out)
		}
		if !utf8.Valid(in) {
			t.Fatalf("Canonicalize(%q) accepts invalid UTF-8", in)
		}
		if !json.Valid(out) {
			t.Fatalf("Canonicalize(%q) = %q, which encoding/json rejects", in, out)
		}
		again, err := Canonicalize(out)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("Canonicalize(%q) = %q, not a fixed point: %q, %v", in, out, again, err)
		}
		want, err := refCanonical(in)
		if err != nil {
			t.Fatalf("reference canonicalizer: %v", err)
		}
		if !bytes.Equal(out, want) {
			t.Fatalf("Canonicalize(%q)\n got %q\nwant %q (reference)", in, out, want)
		}
		if a, b := decodeJSON(t, in), decodeJSON(t, out); !reflect.DeepEqual(a, b) {
			t.Fatalf("Canonicalize(%q) = %q, another value: %v vs %v", in, out, a, b)
		}
		app, err := AppendCanonical([]byte("x"), in)
		if err != nil || string(app[1:]) != string(out) {
			t.Fatalf("AppendCanonical(%q) = %q, %v; want x%s", in, app, err, out)
		}
	})
}

func FuzzParse(f *testing.F) {
	f.Add(specSpan)
	f.Add([]byte(`{"id":"a\"\u00e9","confirmed_by":["x","y\n"],"data":{"b":[1,2.50,{"z":null,"a":true}],"a":"\ud83d\ude00"},"when":"2025-10-06T00:18:07.5+02:00","extra":-0}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := Parse(in, Limits{})
		if err != nil {
			switch err.(type) {
			case *SyntaxError, *LimitError, *FieldError:
			default:
				t.Fatalf("Parse(%q): %T %v", in, err, err)
			}
			return
		}
		c, err := Canonicalize(in)
		if err != nil || !bytes.Equal(c, s.Canonical()) {
			t.Fatalf("Parse(%q).Canonical() = %q; Canonicalize gives %q, %v", in, s.Canonical(), c, err)
		}
		var m map[string]any
		dec := json.NewDecoder(bytes.NewReader(in))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("Parse(%q) accepted what encoding/json cannot decode: %v", in, err)
		}
		names := make([]string, 0, len(m))
		for k := range m {
			names = append(names, k)
		}
		slices.SortFunc(names, compareUTF16)
		if !slices.Equal(names, s.Members) {
			t.Fatalf("Parse(%q).Members = %q, want %q", in, s.Members, names)
		}
		for name, got := range map[string]string{
			"id": s.ID, "tenant": s.Tenant, "who": s.Who, "did": s.Did, "this": s.This,
			"status": s.Status, "when": s.WhenRaw,
		} {
			want, _ := m[name].(string)
			if got != want {
				t.Fatalf("Parse(%q): %s = %q, want %q", in, name, got, want)
			}
		}
		if s.WhenOK {
			if _, ok := ValidRFC3339(s.WhenRaw); !ok {
				t.Fatalf("WhenOK for %q", s.WhenRaw)
			}
		}
		if v, ok := m["confirmed_by"]; ok {
			var want []string
			for _, e := range v.([]any) {
				want = append(want, e.(string))
			}
			if !slices.Equal(want, s.ConfirmedBy) || s.ConfirmedBy == nil {
				t.Fatalf("Parse(%q).ConfirmedBy = %q, want %q", in, s.ConfirmedBy, want)
			}
		} else if s.ConfirmedBy != nil {
			t.Fatalf("Parse(%q).ConfirmedBy = %q, want nil", in, s.ConfirmedBy)
		}
		if v, ok := m["data"]; ok {
			if d := decodeJSON(t, s.Data); !reflect.DeepEqual(numbersToFloats(v), d) {
				t.Fatalf("Parse(%q).Data = %s, want %v", in, s.Data, v)
			}
		} else if s.Data != nil {
			t.Fatalf("Parse(%q).Data = %s, want nil", in, s.Data)
		}
	})
}

// decodeJSON decodes b with encoding/json, numbers as float64 values
// parsed from their json.Number text (so that 1E400 is not an error, as
// encoding/json makes it, but +Inf).
func decodeJSON(t *testing.T, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("encoding/json cannot decode %q: %v", b, err)
	}
	return numbersToFloats(v)
}

// numbersToFloats replaces the json.Numbers in v by their float64 values.
// (go-cmp is exponential on deeply nested slices: compare with
// reflect.DeepEqual, where -0 == 0.)
func numbersToFloats(v any) any {
	switch v := v.(type) {
	case json.Number:
		f, _ := strconv.ParseFloat(string(v), 64)
		return f
	case []any:
		for i := range v {
			v[i] = numbersToFloats(v[i])
		}
	case map[string]any:
		for k := range v {
			v[k] = numbersToFloats(v[k])
		}
	}
	return v
}

// refCanonical is a slow, obvious RFC 8785 canonicalizer built on
// encoding/json, to check Canonicalize against. It does not reject what
// encoding/json lets through (duplicates, invalid UTF-8, lone surrogates).
func refCanonical(in []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(in))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data")
	}
	var b strings.Builder
	if err := refEncode(&b, v); err != nil {
		return nil, err
	}
	return []byte(b.String()), nil
}

func refEncode(b *strings.Builder, v any) error {
	switch v := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(v))
	case string:
		refString(b, v)
	case json.Number:
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil {
			return err
		}
		b.WriteString(refNumber(f))
	case []any:
		b.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := refEncode(b, e); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, compareUTF16)
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			refString(b, k)
			b.WriteByte(':')
			if err := refEncode(b, v[k]); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	}
	return nil
}

func compareUTF16(a, b string) int {
	return slices.Compare(utf16.Encode([]rune(a)), utf16.Encode([]rune(b)))
}

func refString(b *strings.Builder, s string) {
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20:
			b.WriteString(`\u00`)
			b.WriteByte("0123456789abcdef"[r>>4])
			b.WriteByte("0123456789abcdef"[r&15])
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
}

// refNumber is ECMAScript's Number::toString, step by step from the
// shortest digits strconv finds.
func refNumber(f float64) string {
	if f == 0 {
		return "0"
	}
	sign := ""
	if f < 0 {
		sign, f = "-", -f
	}
	e := strconv.FormatFloat(f, 'e', -1, 64) // d[.ddd]e±x
	mant, exp, _ := strings.Cut(e, "e")
	digits := strings.Replace(mant, ".", "", 1)
	x, _ := strconv.Atoi(exp)
	k, n := len(digits), x+1
	switch {
	case k <= n && n <= 21:
		return sign + digits + strings.Repeat("0", n-k)
	case 0 < n && n <= 21:
		return sign + digits[:n] + "." + digits[n:]
	case -6 < n && n <= 0:
		return sign + "0." + strings.Repeat("0", -n) + digits
	}
	s := sign + digits[:1]
	if k > 1 {
		s += "." + digits[1:]
	}
	if n-1 >= 0 {
		return s + "e+" + strconv.Itoa(n-1)
	}
	return s + "e-" + strconv.Itoa(1-n)
}
