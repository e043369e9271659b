package span

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// spanView is what a test compares of a Span: its exported fields and the
// canonical form.
type spanView struct {
	Span      Span
	Canonical string
}

func view(s *Span) spanView {
	return spanView{Span: *s, Canonical: string(s.Canonical())}
}

var cmpSpan = cmpopts.IgnoreUnexported(Span{})

func TestParse(t *testing.T) {
	when := time.Date(2025, 10, 5, 22, 18, 7, 0, time.UTC)
	cases := []struct {
		name string
		in   string
		want spanView
	}{
		{
			name: "spec example",
			in:   string(specSpan),
			want: spanView{
				Span: Span{
					ID: "s_01JD8X3K2M4N5P6Q7R8S9T0V1W", Tenant: "t_voulezvous", Who: "dan",
					Did: "sale.post", This: "order:12345",
					WhenRaw: "2025-10-05T22:18:07Z", When: when, WhenOK: true,
					Status:      "confirmed",
					ConfirmedBy: []string{"pos://register-7"},
					Data:        []byte(`{"gross":19.9,"items":3}`),
					Members:     []string{"confirmed_by", "data", "did", "id", "status", "tenant", "this", "when", "who"},
				},
				Canonical: `{"confirmed_by":["pos://register-7"],"data":{"gross":19.9,"items":3},"did":"sale.post","id":"s_01JD8X3K2M4N5P6Q7R8S9T0V1W","status":"confirmed","tenant":"t_voulezvous","this":"order:12345","when":"2025-10-05T22:18:07Z","who":"dan"}`,
			},
		},
		{
			name: "empty object",
			in:   " {}\r\n",
			want: spanView{Span: Span{Members: []string{}}, Canonical: `{}`},
		},
		{
			name: "unknown members kept",
			in:   `{"zeta":1,"id":"x","alpha":[true,{"b":null,"a":0}]}`,
			want: spanView{
				Span:      Span{ID: "x", Members: []string{"alpha", "id", "zeta"}},
				Canonical: `{"alpha":[true,{"a":0,"b":null}],"id":"x","zeta":1}`,
			},
		},
		{
			name: "escaped values and names",
			in:   `{"id":"a\"b\u00e9\/","who":"\n","\u0074his":"\ud83d\ude00","did":"tab\there","x\\y":0}`,
			want: spanView{
				Span:      Span{ID: "a\"bé/", Who: "\n", This: "😀", Did: "tab\there", Members: []string{"did", "id", "this", "who", `x\y`}},
				Canonical: `{"did":"tab\there","id":"a\"bé/","this":"😀","who":"\n","x\\y":0}`,
			},
		},
		{
			name: "invalid when is kept, not an error",
			in:   `{"when":"2025-13-45"}`,
			want: spanView{
				Span:      Span{WhenRaw: "2025-13-45", Members: []string{"when"}},
				Canonical: `{"when":"2025-13-45"}`,
			},
		},
		{
			name: "when with offset is UTC",
			in:   `{"when":"2025-10-06T00:18:07+02:00"}`,
			want: spanView{
				Span:      Span{WhenRaw: "2025-10-06T00:18:07+02:00", When: when, WhenOK: true, Members: []string{"when"}},
				Canonical: `{"when":"2025-10-06T00:18:07+02:00"}`,
			},
		},
		{
			name: "empty confirmed_by",
			in:   `{"confirmed_by":[],"data":{}}`,
			want: spanView{
				Span:      Span{ConfirmedBy: []string{}, Data: []byte(`{}`), Members: []string{"confirmed_by", "data"}},
				Canonical: `{"confirmed_by":[],"data":{}}`,
			},
		},
		{
			name: "many confirmers, escaped",
			in:   `{"confirmed_by":["a","b\"\\","c\u0001",""," d "]}`,
			want: spanView{
				Span:      Span{ConfirmedBy: []string{"a", "b\"\\", "c\x01", "", " d "}, Members: []string{"confirmed_by"}},
				Canonical: `{"confirmed_by":["a","b\"\\","c\u0001",""," d "]}`,
			},
		},
		{
			name: "empty strings",
			in:   `{"id":"","tenant":"","status":""}`,
			want: spanView{
				Span:      Span{Members: []string{"id", "status", "tenant"}},
				Canonical: `{"id":"","status":"","tenant":""}`,
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse([]byte(tc.in), Limits{})
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.in, err)
			}
			if diff := cmp.Diff(tc.want, view(s), cmpSpan); diff != "" {
				t.Errorf("Parse(%q) (-want +got):\n%s", tc.in, diff)
			}
			c, err := Canonicalize([]byte(tc.in))
			if err != nil || string(c) != string(s.Canonical()) {
				t.Errorf("Canonicalize(%q) = %s, %v; want Parse's %s", tc.in, c, err, s.Canonical())
			}
		})
	}
}

func TestParseConfirmedByNil(t *testing.T) {
	s, err := Parse([]byte(`{"id":"x"}`), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if s.ConfirmedBy != nil || s.Data != nil {
		t.Errorf("absent confirmed_by, data = %#v, %#v; want nil, nil", s.ConfirmedBy, s.Data)
	}
	s, err = Parse([]byte(`{"confirmed_by":[]}`), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if s.ConfirmedBy == nil {
		t.Errorf("empty confirmed_by is nil, want an empty slice")
	}
}

// TestParseManyMembers goes past the inline buffers of Span and parser.
func TestParseManyMembers(t *testing.T) {
	for _, n := range []int{9, 10, 11, 16, 17, 40} {
		var in strings.Builder
		var names []string
		in.WriteString(`{"id":"x"`)
		for i := n - 1; i > 0; i-- {
			fmt.Fprintf(&in, `,"m%02d":"%d"`, i, i)
		}
		in.WriteString(`,"confirmed_by":["a","b","c"]}`)
		names = append(names, "confirmed_by", "id")
		for i := 1; i < n; i++ {
			names = append(names, fmt.Sprintf("m%02d", i))
		}
		s, err := Parse([]byte(in.String()), Limits{})
		if err != nil {
			t.Fatalf("%d members: %v", n, err)
		}
		if diff := cmp.Diff(names, s.Members); diff != "" {
			t.Errorf("%d members: Members (-want +got):\n%s", n, diff)
		}
		if s.ID != "x" || !cmp.Equal(s.ConfirmedBy, []string{"a", "b", "c"}) {
			t.Errorf("%d members: ID, ConfirmedBy = %q, %q", n, s.ID, s.ConfirmedBy)
		}
	}
}

func TestParseFieldErrors(t *testing.T) {
	cases := []struct {
		in    string
		field string
		msg   string
	}{
		{`{"id":1}`, "id", `field "id" must be a string, not a number`},
		{`{"tenant":null}`, "tenant", `field "tenant" must be a string, not null`},
		{`{"who":true}`, "who", `field "who" must be a string, not a boolean`},
		{`{"did":{}}`, "did", `field "did" must be a string, not an object`},
		{`{"this":["x"]}`, "this", `field "this" must be a string, not an array`},
		{`{"status":-0}`, "status", `field "status" must be a string, not a number`},
		{`{"when":1728166687}`, "when", `field "when" must be a string, not a number`},
		{`{"confirmed_by":"pos://register-7"}`, "confirmed_by", `field "confirmed_by" must be an array of strings, not a string`},
		{`{"confirmed_by":null}`, "confirmed_by", `field "confirmed_by" must be an array of strings, not null`},
		{`{"confirmed_by":[1]}`, "confirmed_by", `field "confirmed_by" must be an array of strings; element 0 is a number`},
		{`{"confirmed_by":["a","b\"",null]}`, "confirmed_by", `field "confirmed_by" must be an array of strings; element 2 is null`},
		{`{"confirmed_by":["a",["b"]]}`, "confirmed_by", `field "confirmed_by" must be an array of strings; element 1 is an array`},
		{`{"data":[]}`, "data", `field "data" must be an object, not an array`},
		{`{"data":"{}"}`, "data", `field "data" must be an object, not a string`},
		// The first wrong member in canonical order is reported.
		{`{"who":1,"did":2}`, "did", `field "did" must be a string, not a number`},
	}
	for _, tc := range cases {
		s, err := Parse([]byte(tc.in), Limits{})
		want := &FieldError{Field: tc.field, Rule: RuleType, Msg: tc.msg}
		var fe *FieldError
		if !errors.As(err, &fe) {
			t.Errorf("Parse(%s) = %v, %v; want %v", tc.in, s, err, want)
			continue
		}
		if diff := cmp.Diff(want, fe); diff != "" {
			t.Errorf("Parse(%s) error (-want +got):\n%s", tc.in, diff)
		}
		if err.Error() != tc.msg {
			t.Errorf("Parse(%s) error text = %q, want %q", tc.in, err.Error(), tc.msg)
		}
	}
}

func TestParseSyntaxErrors(t *testing.T) {
	cases := []struct {
		in  string
		msg string
		off int64
	}{
		{``, `empty input`, 0},
		{"\n", `empty input`, 1},
		{`[]`, `span must be a JSON object, not an array`, 0},
		{` "s"`, `span must be a JSON object, not a string`, 1},
		{`12`, `span must be a JSON object, not a number`, 0},
		{`-1`, `span must be a JSON object, not a number`, 0},
		{`null`, `span must be a JSON object, not null`, 0},
		{`true`, `span must be a JSON object, not a boolean`, 0},
		{`x`, `invalid character 'x' looking for beginning of value`, 0},
		{`{"id":"x"`, `unexpected end of input (truncated?)`, 9},
		{`{"id":"x","id":"y"}`, `duplicate member "id"`, 10},
		{`{"id":"x"} {"id":"y"}`, `invalid character '{' after top-level value`, 11},
		{"{\"id\":\"\xff\"}", `invalid UTF-8`, 7},
		{`{"data":{"gross":1e999}}`, `number 1e999 overflows float64`, 17},
	}
	for _, tc := range cases {
		s, err := Parse([]byte(tc.in), Limits{})
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("Parse(%q) = %v, %v; want a *SyntaxError", tc.in, s, err)
			continue
		}
		if diff := cmp.Diff(&SyntaxError{Offset: tc.off, Msg: tc.msg}, se); diff != "" {
			t.Errorf("Parse(%q) error (-want +got):\n%s", tc.in, diff)
		}
	}
}

func TestParseLimits(t *testing.T) {
	nest := func(levels int) string { // a span nesting that deep
		return `{"x":` + strings.Repeat(`[`, levels-1) + strings.Repeat(`]`, levels-1) + `}`
	}
	members := func(n int) string {
		var b strings.Builder
		b.WriteString("{")
		for i := range n {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `"m%d":%d`, i, i)
		}
		b.WriteString("}")
		return b.String()
	}
	big := `{"data":"` + strings.Repeat("x", 64<<10) + `"}`
	cases := []struct {
		name string
		in   string
		lim  Limits
		want *LimitError // nil: accepted
		msg  string
	}{
		{"default bytes", big, Limits{}, &LimitError{LimitBytes, 64 << 10, len(big)}, "span is 65547 bytes, over the limit of 65536"},
		{"bytes at limit", `{"a":1}`, Limits{MaxBytes: 7}, nil, ""},
		{"bytes over", `{"a":1} `, Limits{MaxBytes: 7}, &LimitError{LimitBytes, 7, 8}, "span is 8 bytes, over the limit of 7"},
		{"default members", members(1024), Limits{}, nil, ""},
		{"default members over", members(1025), Limits{}, &LimitError{LimitMembers, 1024, 1025}, "span has more than 1024 members"},
		{"members counted in all objects", `{"a":{"b":1,"c":2}}`, Limits{MaxMembers: 2}, &LimitError{LimitMembers, 2, 3}, "span has more than 2 members"},
		{"members in arrays", `{"a":[{"b":1},{"c":2}]}`, Limits{MaxMembers: 3}, nil, ""},
		{"default depth", nest(16), Limits{}, nil, ""},
		{"default depth over", nest(17), Limits{}, &LimitError{LimitDepth, 16, 17}, "span nests deeper than 16 levels"},
		{"depth of objects", `{"a":{"b":{}}}`, Limits{MaxDepth: 2}, &LimitError{LimitDepth, 2, 3}, "span nests deeper than 2 levels"},
		{"depth 1", `{"a":1,"b":"x"}`, Limits{MaxDepth: 1}, nil, ""},
		{"depth 1 over", `{"a":[]}`, Limits{MaxDepth: 1}, &LimitError{LimitDepth, 1, 2}, "span nests deeper than 1 levels"},
		{"depth beyond Canonicalize's", nest(40), Limits{MaxDepth: 64}, nil, ""},
		{"negative means default", nest(17), Limits{MaxDepth: -1, MaxBytes: -1, MaxMembers: -1}, &LimitError{LimitDepth, 16, 17}, "span nests deeper than 16 levels"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in), tc.lim)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Parse: %v, want no error", err)
				}
				return
			}
			var le *LimitError
			if !errors.As(err, &le) {
				t.Fatalf("Parse: %v, want %v", err, tc.want)
			}
			if diff := cmp.Diff(tc.want, le); diff != "" {
				t.Errorf("Parse error (-want +got):\n%s", diff)
			}
			if err.Error() != tc.msg {
				t.Errorf("Parse error text = %q, want %q", err.Error(), tc.msg)
			}
		})
	}
}

func TestDefaultLimits(t *testing.T) {
	want := Limits{MaxBytes: 65536, MaxMembers: 1024, MaxDepth: 16}
	if got := DefaultLimits(); got != want {
		t.Errorf("DefaultLimits() = %+v, want %+v", got, want)
	}
	if got := (Limits{}).withDefaults(); got != want {
		t.Errorf("Limits{}.withDefaults() = %+v, want %+v", got, want)
	}
}

// TestParseSharesNothingMutable checks that the strings of one Span do not
// change when another is parsed (no buffer is reused across calls).
func TestParseSharesNothingMutable(t *testing.T) {
	a, err := Parse([]byte(`{"id":"first","confirmed_by":["x"]}`), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse([]byte(`{"id":"other","confirmed_by":["y"]}`), Limits{}); err != nil {
		t.Fatal(err)
	}
	if a.ID != "first" || a.ConfirmedBy[0] != "x" || string(a.Canonical()) != `{"confirmed_by":["x"],"id":"first"}` {
		t.Errorf("first span changed: %q %q %s", a.ID, a.ConfirmedBy, a.Canonical())
	}
}

func TestParseAllocs(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := Parse(specSpan, Limits{}); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 3 {
		t.Errorf("Parse allocates %v times per span, want at most 3", allocs)
	}
}
