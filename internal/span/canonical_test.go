package span

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// canonicalCases are valid JSON texts and their canonical forms. The first
// ones are the test data of RFC 8785's reference implementations
// (cyberphone/json-canonicalization, testdata/input and testdata/output).
var canonicalCases = []struct {
	name, in, want string
}{
	{"rfc8785/arrays",
		"[\n  56,\n  {\n    \"d\": true,\n    \"10\": null,\n    \"1\": [ ]\n  }\n]",
		`[56,{"1":[],"10":null,"d":true}]`},
	{"rfc8785/french",
		"{\n  \"peach\": \"This sorting order\",\n  \"péché\": \"is wrong according to French\",\n  \"pêche\": \"but canonicalization MUST\",\n  \"sin\":   \"ingnore locale\"\n}\n",
		`{"peach":"This sorting order","péché":"is wrong according to French","pêche":"but canonicalization MUST","sin":"ingnore locale"}`},
	{"rfc8785/structures",
		"{\n  \"1\": {\"f\": {\"f\": \"hi\",\"F\": 5} ,\"\\n\": 56.0},\n  \"10\": { },\n  \"\": \"empty\",\n  \"a\": { },\n  \"111\": [ { } ],\n  \"A\": { }\n}",
		`{"":"empty","1":{"\n":56,"f":{"F":5,"f":"hi"}},"10":{},"111":[{}],"A":{},"a":{}}`},
	{"rfc8785/values",
		"{\n  \"numbers\": [1E30, 4.50, 333333333.33333329, 2e-3, 0.000000000000000000000000001],\n  \"escaping\": \"\\u20ac$\\u000F\\u000aA'\\u0042\\u0022\\u005c\\\\\\\"\\/\",\n  \"literals\": [null, true, false]\n}",
		`{"escaping":"€$\u000f\nA'B\"\\\\\"/","literals":[null,true,false],"numbers":[1e+30,4.5,333333333.3333333,0.002,1e-27]}`},
	{"rfc8785/weird",
		"{\n  \"\\u20ac\": \"Euro Sign\",\n  \"1\": \"One\",\n  \"\\u0080\": \"Control\\u007f\",\n  \"\\ud83d\\ude02\": \"Smiley\",\n  \"\\u00f6\": \"Latin Small Letter O With Diaeresis\",\n  \"\\ufb33\": \"Hebrew Letter Dalet With Dagesh\",\n  \"</script>\": \"Browser Challenge\"\n}\n",
		"{\"1\":\"One\",\"</script>\":\"Browser Challenge\",\"\u0080\":\"Control\u007f\",\"ö\":\"Latin Small Letter O With Diaeresis\",\"€\":\"Euro Sign\",\"😂\":\"Smiley\",\"\ufb33\":\"Hebrew Letter Dalet With Dagesh\"}"},
	{"rfc8785/unicode",
		"{\n  \"Unnormalized Unicode\":\"\\u1e0d\\u0307\"\n}\n",
		"{\"Unnormalized Unicode\":\"\u1e0d\u0307\"}"},
	// RFC 8785 §3.2.3's sorting example.
	{"rfc8785/sorting",
		`{"\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One","\ud83d\ude00":"Emoji: Grinning Face","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis"}`,
		"{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u0080\":\"Control\",\"ö\":\"Latin Small Letter O With Diaeresis\",\"€\":\"Euro Sign\",\"😀\":\"Emoji: Grinning Face\",\"\ufb33\":\"Hebrew Letter Dalet With Dagesh\"}"},

	// Numbers.
	{"num/1e21", `1e21`, `1e+21`},
	{"num/1e20", `1e20`, `100000000000000000000`},
	{"num/21 digits", `999999999999999999999`, `1e+21`},
	{"num/1e-7", `1e-7`, `1e-7`},
	{"num/0.0000001", `0.0000001`, `1e-7`},
	{"num/0.000001", `0.000001`, `0.000001`},
	{"num/1E-6", `1E-6`, `0.000001`},
	{"num/5e-324", `5e-324`, `5e-324`},
	{"num/2.5e-324", `2.5e-324`, `5e-324`},
	{"num/max", `1.7976931348623157e308`, `1.7976931348623157e+308`},
	{"num/-max", `-1.7976931348623157e308`, `-1.7976931348623157e+308`},
	{"num/underflow", `1e-400`, `0`},
	{"num/-underflow", `-1e-400`, `0`},
	{"num/-0", `-0`, `0`},
	{"num/-0.0", `-0.0`, `0`},
	{"num/0e10", `0e10`, `0`},
	{"num/-0e-10", `-0E-10`, `0`},
	{"num/100", `100`, `100`},
	{"num/1e2", `1e2`, `100`},
	{"num/1E+2", `1E+2`, `100`},
	{"num/1.0", `1.0`, `1`},
	{"num/19.90", `19.90`, `19.9`},
	{"num/123e-2", `123e-2`, `1.23`},
	{"num/1234.5e10", `1234.5e10`, `12345000000000`},
	{"num/0.00001234", `0.00001234`, `0.00001234`},
	{"num/-1.5E-7", `-1.5E-7`, `-1.5e-7`},
	{"num/1.5e300", `1.5e300`, `1.5e+300`},
	{"num/2^53+1", `9007199254740993`, `9007199254740992`},
	{"num/0.1+0.2", `0.30000000000000004`, `0.30000000000000004`},
	{"num/30 digits", `123456789012345678901234567890`, `1.2345678901234568e+29`},
	{"num/15 digits", `123456789012345`, `123456789012345`},
	{"num/16 digits", `1234567890123456`, `1234567890123456`},
	{"num/17 digits", `12345678901234567`, `12345678901234568`},
	{"num/-int", `-42`, `-42`},
	{"num/leading frac zeros", `0.` + strings.Repeat("0", 1000) + `1e1005`, `10000`},
	{"num/trailing zeros", `1` + strings.Repeat("0", 400) + `e-400`, `1`},
	{"num/exp saturates", `1e-99999999999999999999999`, `0`},
	{"num/333333333.33333329", `333333333.33333329`, `333333333.3333333`},
	{"num/round to even", `1424953923781206.25`, `1424953923781206.2`},

	// Strings.
	{"str/controls", `"\u0000\u001F\u0008\u000c\u000A\u000d\u0009\u007f\u0080"`, "\"\\u0000\\u001f\\b\\f\\n\\r\\t\u007f\u0080\""},
	{"str/solidus", `"\/a/b"`, `"/a/b"`},
	{"str/short escapes", `"\b\f\n\r\t\"\\"`, `"\b\f\n\r\t\"\\"`},
	{"str/line separators", `"\u2028\u2029"`, "\"\u2028\u2029\""},
	{"str/html", `"<a href='x'>&amp;</a>"`, `"<a href='x'>&amp;</a>"`},
	{"str/raw utf8", `"é€😀"`, `"é€😀"`},
	{"str/escaped utf8", `"\u00e9\u20AC\uD83D\uDE00"`, `"é€😀"`},
	{"str/U+FFFD", `"\ufffd` + "\uFFFD" + `"`, "\"\uFFFD\uFFFD\""},
	{"str/escape after non-ASCII", `"é\n"`, `"é\n"`},
	{"str/long", `"` + strings.Repeat("abcdefgh", 20) + `"`, `"` + strings.Repeat("abcdefgh", 20) + `"`},

	// Member order.
	{"sort/nested", `{"b":1,"a":{"d":1,"c":2}}`, `{"a":{"c":2,"d":1},"b":1}`},
	{"sort/prefix", `{"ab":1,"a":2,"abc":3,"":4}`, `{"":4,"a":2,"ab":1,"abc":3}`},
	{"sort/long common prefix", `{"confirmed_by_z":1,"confirmed_by_a":2,"confirmed_by":3}`, `{"confirmed_by":3,"confirmed_by_a":2,"confirmed_by_z":1}`},
	{"sort/non-BMP before U+E000", `{"\ue000":1,"\ud800\udc00":2,"\uffff":3,"\ud7ff":4}`, "{\"\ud7ff\":4,\"\U00010000\":2,\"\ue000\":1,\"\uffff\":3}"},
	{"sort/non-BMP among themselves", `{"\ud83d\ude02":1,"\ud83d\ude00":2,"\ud800\udc00":3}`, "{\"\U00010000\":3,\"😀\":2,\"😂\":1}"},
	{"sort/escaped control first", `{"A":1,"\n":2,"\u0000":3}`, `{"\u0000":3,"\n":2,"A":1}`},
	{"sort/quote and backslash", `{"\\":1,"\"":2,"#":3,"!":4}`, `{"!":4,"\"":2,"#":3,"\\":1}`},
	{"sort/non-ASCII after ASCII", `{"é":1,"z":2,"e":3}`, `{"e":3,"z":2,"é":1}`},
	{"sort/escaped vs raw", `{"b\u00e9":1,"bz":2,"b":3}`, `{"b":3,"bz":2,"bé":1}`},
	{"sort/in array", `[{"b":1,"a":2},{"d":3,"c":4}]`, `[{"a":2,"b":1},{"c":4,"d":3}]`},

	// Whitespace and the other values.
	{"ws", " \t\r\n{ \"a\" : [ 1 , 2 ] , \"b\" : { } }\n", `{"a":[1,2],"b":{}}`},
	{"true", `true`, `true`},
	{"false", ` false `, `false`},
	{"null", `null`, `null`},
	{"string", `"x"`, `"x"`},
	{"empty array", `[ ]`, `[]`},
	{"empty object", `{ }`, `{}`},
	{"nested empty", `[[],{},[{}]]`, `[[],{},[{}]]`},
	{"depth 32", strings.Repeat("[", 32) + strings.Repeat("]", 32), strings.Repeat("[", 32) + strings.Repeat("]", 32)},
}

func TestCanonicalize(t *testing.T) {
	for _, tc := range append(canonicalCases, bigCases()...) {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Canonicalize([]byte(tc.in))
			if err != nil {
				t.Fatalf("Canonicalize(%q): %v", tc.in, err)
			}
			if diff := cmp.Diff(tc.want, string(got)); diff != "" {
				t.Errorf("Canonicalize(%q) (-want +got):\n%s", tc.in, diff)
			}
			// Idempotence: the canonical form is a fixed point.
			again, err := Canonicalize(got)
			if err != nil || !bytes.Equal(again, got) {
				t.Errorf("Canonicalize(Canonicalize(x)) = %q, %v; want %q", again, err, got)
			}
			// AppendCanonical appends after what dst holds, in place.
			prefix := []byte("prefix:")
			app, err := AppendCanonical(prefix, []byte(tc.in))
			if err != nil || string(app) != "prefix:"+tc.want {
				t.Errorf("AppendCanonical(%q) = %q, %v; want %q", tc.in, app, err, "prefix:"+tc.want)
			}
		})
	}
}

// bigCases are objects past the small-object paths: more members than the
// insertion sort takes, more than a kilobyte of members.
func bigCases() []struct{ name, in, want string } {
	var in, want strings.Builder
	in.WriteString("{")
	want.WriteString("{")
	for i := 40; i > 0; i-- {
		if i < 40 {
			in.WriteString(",")
		}
		fmt.Fprintf(&in, `"k%02d":%d`, i, i)
	}
	for i := 1; i <= 40; i++ {
		if i > 1 {
			want.WriteString(",")
		}
		fmt.Fprintf(&want, `"k%02d":%d`, i, i)
	}
	in.WriteString("}")
	want.WriteString("}")
	long := strings.Repeat("x", 2000)
	return []struct{ name, in, want string }{
		{"big/40 members", in.String(), want.String()},
		{"big/40 members nested", `[` + in.String() + `]`, `[` + want.String() + `]`},
		{"big/2 KB members", `{"z":"` + long + `","a":1}`, `{"a":1,"z":"` + long + `"}`},
		{"big/2 KB members nested", `[{"z":"` + long + `","a":1}]`, `[{"a":1,"z":"` + long + `"}]`},
	}
}

// TestNumberAppendixB checks RFC 8785 Appendix B: IEEE 754 values and their
// serialization, reached from three spellings of each value.
func TestNumberAppendixB(t *testing.T) {
	cases := []struct {
		bits uint64
		want string
	}{
		{0x0000000000000000, "0"},
		{0x8000000000000000, "0"},
		{0x0000000000000001, "5e-324"},
		{0x8000000000000001, "-5e-324"},
		{0x7fefffffffffffff, "1.7976931348623157e+308"},
		{0xffefffffffffffff, "-1.7976931348623157e+308"},
		{0x4340000000000000, "9007199254740992"},
		{0xc340000000000000, "-9007199254740992"},
		{0x4430000000000000, "295147905179352830000"},
		{0x44b52d02c7e14af5, "9.999999999999997e+22"},
		{0x44b52d02c7e14af6, "1e+23"},
		{0x44b52d02c7e14af7, "1.0000000000000001e+23"},
		{0x444b1ae4d6e2ef4e, "999999999999999700000"},
		{0x444b1ae4d6e2ef4f, "999999999999999900000"},
		{0x444b1ae4d6e2ef50, "1e+21"},
		{0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"},
		{0x3eb0c6f7a0b5ed8d, "0.000001"},
		{0x41b3de4355555553, "333333333.3333332"},
		{0x41b3de4355555554, "333333333.33333325"},
		{0x41b3de4355555555, "333333333.3333333"},
		{0x41b3de4355555556, "333333333.3333334"},
		{0x41b3de4355555557, "333333333.33333343"},
		{0xbecbf647612f3696, "-0.0000033333333333333333"},
		{0x43143ff3c1cb0959, "1424953923781206.2"},
	}
	for _, tc := range cases {
		f := math.Float64frombits(tc.bits)
		for _, in := range []string{
			strconv.FormatFloat(f, 'g', -1, 64),
			strconv.FormatFloat(f, 'e', 20, 64),
			strconv.FormatFloat(f, 'f', -1, 64),
		} {
			got, err := Canonicalize([]byte(in))
			if err != nil || string(got) != tc.want {
				t.Errorf("%016x: Canonicalize(%s) = %s, %v; want %s", tc.bits, in, got, err, tc.want)
			}
		}
	}
}

func TestCanonicalizeErrors(t *testing.T) {
	deep := strings.Repeat("[", 33) + strings.Repeat("]", 33)
	cases := []struct {
		name, in string
		msg      string
		off      int64
	}{
		{"empty", ``, `empty input`, 0},
		{"blank", " \n\t", `empty input`, 3},
		{"truncated object", `{`, `unexpected end of input (truncated?)`, 1},
		{"truncated member", `{"a":1`, `unexpected end of input (truncated?)`, 6},
		{"truncated key", `{"a"`, `unexpected end of input (truncated?)`, 4},
		{"truncated value", `{"a":`, `unexpected end of input (truncated?)`, 5},
		{"truncated array", `[1,2`, `unexpected end of input (truncated?)`, 4},
		{"truncated string", `"abc`, `unexpected end of input (truncated?)`, 4},
		{"truncated escape", `"ab\`, `unexpected end of input (truncated?)`, 4},
		{"truncated \\u", `"\u12`, `unexpected end of input (truncated?)`, 5},
		{"truncated surrogate pair", `"\ud83d`, `unexpected end of input (truncated?)`, 7},
		{"truncated literal", `tru`, `unexpected end of input (truncated?)`, 3},
		{"truncated minus", `-`, `unexpected end of input (truncated?)`, 1},
		{"truncated fraction", `1.`, `unexpected end of input (truncated?)`, 2},
		{"truncated exponent", `1e+`, `unexpected end of input (truncated?)`, 3},
		{"trailing comma object", `{"a":1 , }`, `trailing comma in object`, 7},
		{"trailing comma array", `[1,]`, `trailing comma in array`, 2},
		{"missing comma", `[1 2]`, `invalid character '2' after array element`, 3},
		{"missing colon", `{"a" 1}`, `invalid character '1' after object key`, 5},
		{"missing member comma", `{"a":1 "b":2}`, `invalid character '"' after object key:value pair`, 7},
		{"unquoted key", `{a:1}`, `invalid character 'a' looking for beginning of object key string`, 1},
		{"single quotes", `{'a':1}`, `invalid character '\'' looking for beginning of object key string`, 1},
		{"single quoted value", `['a']`, `invalid character '\'' looking for beginning of value`, 1},
		{"comment", "// c\n{}", `invalid character '/' looking for beginning of value`, 0},
		{"block comment", `[1/*c*/]`, `invalid character '/' after array element`, 2},
		{"missing value", `{"a":}`, `invalid character '}' looking for beginning of value`, 5},
		{"empty member", `{,}`, `invalid character ',' looking for beginning of object key string`, 1},
		{"empty element", `[,]`, `invalid character ',' looking for beginning of value`, 1},
		{"garbage after", `{} x`, `invalid character 'x' after top-level value`, 3},
		{"two values", `{}{}`, `invalid character '{' after top-level value`, 2},
		{"extra bracket", `{"a":1}}`, `invalid character '}' after top-level value`, 7},
		{"leading zero", `01`, `leading zero in number`, 0},
		{"leading zero negative", `[-012]`, `leading zero in number`, 2},
		{"plus sign", `+1`, `invalid character '+' looking for beginning of value`, 0},
		{"leading point", `.5`, `invalid character '.' looking for beginning of value`, 0},
		{"minus letter", `-a`, `invalid character 'a' in numeric literal`, 1},
		{"point exponent", `1.e5`, `invalid character 'e' after decimal point in numeric literal`, 2},
		{"bad exponent", `1ex`, `invalid character 'x' in exponent of numeric literal`, 2},
		{"hex number", `0x10`, `invalid character 'x' after top-level value`, 1},
		{"NaN", `NaN`, `invalid character 'N' looking for beginning of value`, 0},
		{"Infinity", `[Infinity]`, `invalid character 'I' looking for beginning of value`, 1},
		{"-Infinity", `-Infinity`, `invalid character 'I' in numeric literal`, 1},
		{"overflow", `1E400`, `number 1E400 overflows float64`, 0},
		{"negative overflow", `[0, -1.8e308]`, `number -1.8e308 overflows float64`, 4},
		{"long overflow", `1` + strings.Repeat("0", 400), `number 10000000000000000000000000000... overflows float64`, 0},
		{"bad literal", `trux`, `invalid character 'x' in literal true (expecting 'e')`, 3},
		{"capital literal", `True`, `invalid character 'T' looking for beginning of value`, 0},
		{"null prefix", `nil`, `invalid character 'i' in literal null (expecting 'u')`, 1},
		{"raw control", "\"a\x01\"", `invalid character U+0001 in string literal`, 2},
		{"raw tab", "\"a\tb\"", `invalid character U+0009 in string literal`, 2},
		{"raw newline", "{\"a\n\":1}", `invalid character U+000A in string literal`, 3},
		{"bad escape", `"\x"`, `invalid character 'x' in string escape code`, 2},
		{"escaped quote char", `"\'"`, `invalid character '\'' in string escape code`, 2},
		{"bad \\u", `"\u12G4"`, `invalid character 'G' in \u hexadecimal character escape`, 5},
		{"lone high surrogate", `"\ud800"`, `lone surrogate \ud800 in string literal`, 1},
		{"lone low surrogate", `["x\uDC00"]`, `lone surrogate \uDC00 in string literal`, 3},
		{"high then letter", `"\ud800\u0041"`, `lone surrogate \ud800 in string literal`, 1},
		{"high then escape", `"\ud800\n"`, `lone surrogate \ud800 in string literal`, 1},
		{"high then high", `"\ud800\ud800"`, `lone surrogate \ud800 in string literal`, 1},
		{"invalid UTF-8", "\"\xff\"", `invalid UTF-8`, 1},
		{"invalid UTF-8 after escape", "\"\\n\xff\"", `invalid UTF-8`, 3},
		{"invalid UTF-8 outside", "[\xff]", `invalid UTF-8`, 1},
		{"UTF-8 surrogate", "\"\xed\xa0\x80\"", `invalid UTF-8`, 1},
		{"overlong UTF-8", "\"\xc0\xaf\"", `invalid UTF-8`, 1},
		{"truncated UTF-8", "\"\xe2\x82\"", `invalid UTF-8`, 1},
		{"byte order mark", "\ufeff{}", `invalid character U+FEFF looking for beginning of value`, 0},
		{"non-ASCII outside", `é`, `invalid character 'é' looking for beginning of value`, 0},
		{"duplicate", `{"a":1,"a":2}`, `duplicate member "a"`, 7},
		{"duplicate escaped", `{"a":1,"\u0061":2}`, `duplicate member "a"`, 7},
		{"duplicate escaped first", `{"a\u0062":1,"ab":2}`, `duplicate member "ab"`, 13},
		{"duplicate unsorted", `{"b":1,"a":2,"b":3}`, `duplicate member "b"`, 13},
		{"duplicate first in input", `{"b":1,"a":2,"b":3,"a":4}`, `duplicate member "b"`, 13},
		{"duplicate nested", `[{"x":{"y":1,"y":2}}]`, `duplicate member "y"`, 13},
		{"duplicate long name", `{"` + strings.Repeat("n", 100) + `":1,"` + strings.Repeat("n", 100) + `":2}`,
			`duplicate member "` + strings.Repeat("n", 59) + `..."`, 106},
		{"duplicate empty", `{"":1,"":2}`, `duplicate member ""`, 6},
		{"too deep", deep, `nesting deeper than 32`, 32},
		{"too deep objects", strings.Repeat(`{"a":`, 33), `nesting deeper than 32`, 32 * 5},
		{"syntax before duplicate", `{"a":1,"a":2,}`, `trailing comma in object`, 12},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Canonicalize([]byte(tc.in))
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Canonicalize(%q) = %q, %v; want a *SyntaxError", tc.in, got, err)
			}
			want := &SyntaxError{Offset: tc.off, Msg: tc.msg}
			if diff := cmp.Diff(want, se); diff != "" {
				t.Errorf("Canonicalize(%q) error (-want +got):\n%s", tc.in, diff)
			}
			if got != nil {
				t.Errorf("Canonicalize(%q) = %q with an error, want nil", tc.in, got)
			}
			dst := []byte("keep")
			app, err2 := AppendCanonical(dst, []byte(tc.in))
			if err2 == nil || string(app) != "keep" {
				t.Errorf("AppendCanonical(%q) = %q, %v; want dst unchanged and an error", tc.in, app, err2)
			}
		})
	}
}

func TestSyntaxErrorMessage(t *testing.T) {
	_, err := Canonicalize([]byte(`{"id":1 x}`))
	want := `invalid character 'x' after object key:value pair at byte 8`
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
}

// TestAppendCanonicalAllocs checks the promise of AppendCanonical: no
// allocation for a typical span given room in dst.
func TestAppendCanonicalAllocs(t *testing.T) {
	buf := make([]byte, 0, 1024)
	allocs := testing.AllocsPerRun(100, func() {
		var err error
		if buf, err = AppendCanonical(buf[:0], specSpan); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("AppendCanonical allocates %v times per call, want 0", allocs)
	}
}

func TestCompareKeys(t *testing.T) {
	// Pairs in strictly increasing UTF-16 order, as canonical name bytes.
	ordered := []string{``, `\u0000`, `\b`, `\n`, `\u001f`, ` `, `!`, `\"`, `A`, `\\`, `a`, "\u007f", "\u0080", "é", "\u07ff", "\u0800", "\ud7ff", "\U00010000", "😀", "\U0010ffff", "\ue000", "\ufb33", "\uffff"}
	for i := range ordered {
		for j := range ordered {
			a, b := []byte(ordered[i]), []byte(ordered[j])
			got := compareKeys(a, b)
			switch {
			case i < j && got >= 0, i > j && got <= 0, i == j && got != 0:
				t.Errorf("compareKeys(%q, %q) = %d; want sign of %d", a, b, got, i-j)
			}
		}
	}
}
