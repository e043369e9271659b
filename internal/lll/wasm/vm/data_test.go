package vm_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/lll/ir"
	"github.com/loglineos/loglineos/internal/lll/wasm/vm"
	"github.com/loglineos/loglineos/internal/span"
)

// dataSrc reads paths below data as numbers, strings and bools, and has
// of them.
const dataSrc = `validator v {
  check data.gross > 10 else "gross"
  check has(data.note) or not has(data.m.k) else "note"
  check not has(data.note) or lower(data.note) != "x" else "x"
  check not has(data.ok) or data.ok else "ok"
  check not has(data.m.k) or data.m.k * 2 != 6 or data.gross == 19.9 else "k"
  on_fail "warn"
}
`

// TestData: values below a span's data give the interpreter's answer,
// the first read of data charging its bytes (LLL105 where the interpreter
// says it); a value of another kind than the expression compiled (a
// string compared as a number, null where a number is wanted) and data
// that does not decode are the interpreter's to answer (ErrUnsupported).
func TestData(t *testing.T) {
	b := compileBoth(t, dataSrc)
	for _, tc := range []struct {
		data     string
		maxBytes int64
		want     string // the rule that fails ("" none; "unsupported"; a fault)
	}{
		{data: `{"gross":19.9}`},
		{data: `{"gross":5}`, want: "gross"},
		{data: `{"gross":20,"m":{"k":1}}`, want: "note"},
		{data: `{"gross":20,"m":{"k":1},"note":"X"}`, want: "x"},
		{data: `{"gross":20,"m":{"k":1},"note":"y","ok":false}`, want: "ok"},
		{data: `{"gross":20,"note":"y","ok":true,"m":{"k":3}}`, want: "k"},
		{data: `{"gross":19.9,"note":"y","ok":true,"m":{"k":3}}`},
		{data: `{"gross":19.9,"m":3}`},
		{data: `{"gross":19.9,"note":null}`},
		{data: `{"gross":20,"note":"` + strings.Repeat("n", 300) + `"}`, maxBytes: 400, want: "error[LLL105]"},
		// The JSON's 12 bytes and the map's value (64 + 48 + 2*(16+64) + 5),
		// charged once however often data is read.
		{data: `{"gross":20}`, maxBytes: 12 + 64 + 48 + 160 + 5},
		{data: `{"gross":20}`, maxBytes: 12 + 64 + 48 + 160 + 5 - 1, want: "error[LLL105]"},
		{data: `{"gross":"19.9"}`, want: "unsupported"},
		{data: `{}`, want: "unsupported"},
		{data: `{"gross":20,"note":5}`, want: "unsupported"},
		{data: `{"gross":20,"ok":"yes"}`, want: "unsupported"},
		{data: `{"gross":1e300}`, want: "unsupported"},
	} {
		line := `{"who":"dan","data":` + tc.data + `}`
		if tc.want == "unsupported" {
			s, err := span.Parse([]byte(line), span.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if vi, _, err := b.in.CheckSpan(context.Background(), "v", s, 0); !errors.Is(err, vm.ErrUnsupported) {
				t.Errorf("%s: %v, %v; want ErrUnsupported", tc.data, vi, err)
			}
			continue
		}
		vi := b.sameEnv(t, line, &eval.Env{MaxBytes: tc.maxBytes})
		got := ""
		if vi != nil {
			got = strings.TrimPrefix(vi.Detail, "check failed: ")
		}
		if tc.want == "" && vi != nil || tc.want != "" && !strings.Contains(got, tc.want) {
			t.Errorf("%s: the interpreter says %v, want %q", tc.data, vi, tc.want)
		}
	}
}

// TestLenConfirmedBy: len(confirmed_by) is the interpreter's (0 without
// the member), the list it makes charging the byte budget ValueBytes +
// SliceBytes + ValueBytes a string.
func TestLenConfirmedBy(t *testing.T) {
	b := compileBoth(t, "validator v {\n  check len(confirmed_by) < 2 else \"two\"\n  on_fail \"warn\"\n}\n")
	for _, tc := range []struct {
		members  string
		maxBytes int64
		want     string
	}{
		{members: ``},
		{members: `,"confirmed_by":[]`},
		{members: `,"confirmed_by":["a"]`},
		{members: `,"confirmed_by":["a","b"]`, want: "two"},
		{members: `,"confirmed_by":["a","b"]`, maxBytes: 64 + 24 + 2*64, want: "two"},
		{members: `,"confirmed_by":["a","b"]`, maxBytes: 64 + 24 + 2*64 - 1, want: "error[LLL105]"},
		{members: `,"confirmed_by":[]`, maxBytes: 64 + 24 - 1, want: "error[LLL105]"},
	} {
		vi := b.sameEnv(t, `{"who":"dan"`+tc.members+`}`, &eval.Env{MaxBytes: tc.maxBytes})
		if tc.want == "" && vi != nil || tc.want != "" && (vi == nil || !strings.Contains(vi.Detail, tc.want)) {
			t.Errorf("%s: the interpreter says %v, want %q", tc.members, vi, tc.want)
		}
	}
}

// TestDataRules: require and allow of a field below data, with each
// format compiled and in [...], give the interpreter's violation (its
// wording of the value), the first read of data charging its bytes at the
// rule.
func TestDataRules(t *testing.T) {
	b := compileBoth(t, `validator v {
  require field "data.gross" as "number"
  allow field "data.note" as "nonempty" in ["x", "y"]
  allow field "data.m.k" as "integer" in [1, 2, true]
  allow field "data.ok" as "bool"
  allow field "data.items" as "array"
  allow field "data.m" as "object"
  allow field "data.s" as "string" in ["a"]
  allow field "data.t" in [3.5, "b", false]
  on_fail "reject"
}
`)
	for _, tc := range []struct {
		data     string
		maxBytes int64
		want     string // a part of the violation's detail; "" none
	}{
		{data: `{"gross":1}`},
		{data: `{}`, want: `field "data.gross" is required`},
		{data: `{"gross":null}`, want: `is required`},
		{data: `{"gross":"1"}`, want: `field "data.gross" is not a number: "1"`},
		{data: `{"gross":1,"note":""}`, want: `field "data.note" is empty: ""`},
		{data: `{"gross":1,"note":"z"}`, want: `field "data.note" is not one of "x", "y": "z"`},
		{data: `{"gross":1,"note":"y","m":{"k":2}}`},
		{data: `{"gross":1,"m":{"k":2.5}}`, want: `is not an integer: 2.5`},
		{data: `{"gross":1,"m":{"k":3}}`, want: `is not one of 1, 2, true: 3`},
		{data: `{"gross":1,"m":{"k":-1}}`, want: `is not one of`},
		{data: `{"gross":1,"m":5}`, want: `field "data.m" is not an object: 5`},
		{data: `{"gross":1,"ok":1}`, want: `is not a bool`},
		{data: `{"gross":1,"ok":false,"items":[1],"m":{},"s":"a"}`},
		{data: `{"gross":1,"items":{}}`, want: `is not an array`},
		{data: `{"gross":1,"s":"b"}`, want: `is not one of "a": "b"`},
		{data: `{"gross":1,"s":7}`, want: `is not a string: 7`},
		{data: `{"gross":1,"t":3.5}`},
		{data: `{"gross":1,"t":"b"}`},
		{data: `{"gross":1,"t":false}`},
		{data: `{"gross":1,"t":true}`, want: `is not one of 3.5, "b", false: true`},
		{data: `{"gross":1,"t":"3.5"}`, want: `is not one of`},
		{data: `{"gross":1}`, maxBytes: 11 + 64 + 48 + 160 + 5},
		{data: `{"gross":1}`, maxBytes: 11 + 64 + 48 + 160 + 5 - 1, want: "error[LLL105]"},
	} {
		vi := b.sameEnv(t, `{"who":"dan","data":`+tc.data+`}`, &eval.Env{MaxBytes: tc.maxBytes})
		if tc.want == "" && vi != nil || tc.want != "" && (vi == nil || !strings.Contains(vi.Detail, tc.want)) {
			t.Errorf("%s: the interpreter says %v, want %q", tc.data, vi, tc.want)
		}
	}
	s, _ := span.Parse([]byte(`{"who":"dan"}`), span.Limits{}) // no data: data.gross is required
	if vi, _, err := b.in.CheckSpan(context.Background(), "v", s, 0); err != nil || vi == nil || !strings.Contains(vi.Detail, "is required") {
		t.Errorf("no data: %v, %v", vi, err)
	}
}

// TestNonempty: the format nonempty on a string field, with and without
// in [...], gives the interpreter's violation.
func TestNonempty(t *testing.T) {
	b := compileBoth(t, `validator v {
  require field "did" as "nonempty"
  allow field "who" as "nonempty" in ["dan", "eve"]
  allow field "this" as "nonempty"
  on_fail "reject"
}
`)
	for _, tc := range []struct{ line, want string }{
		{`{"did":"x","who":"dan","this":"y"}`, ""},
		{`{"did":"x"}`, ""},
		{`{}`, `field "did" is required`},
		{`{"did":""}`, `field "did" is empty`},
		{`{"did":"x","who":""}`, `field "who" is empty: ""`},
		{`{"did":"x","who":"ann"}`, `field "who" is not one of "dan", "eve": "ann"`},
		{`{"did":"x","this":""}`, `field "this" is empty: ""`},
	} {
		vi := b.same(t, tc.line)
		if tc.want == "" && vi != nil || tc.want != "" && (vi == nil || vi.Detail != tc.want) {
			t.Errorf("%s: the interpreter says %v, want %q", tc.line, vi, tc.want)
		}
	}
}

// TestInLists: in over confirmed_by and over policy lists (of strings, of
// numbers; the program's, overridden, null) gives the interpreter's
// answer, the list of confirmed_by charged to the byte budget; a policy
// list of another kind is the interpreter's to answer.
func TestInLists(t *testing.T) {
	b := compileBoth(t, `policy routing {
  vip: ["ana", "bo"]
  codes: [1, 2.5]
}
validator v {
  check who in policy.routing.vip else "vip"
  check not ("x" in confirmed_by) else "x"
  check len(who) in policy.routing.codes or who != "bo" else "codes"
  on_fail "warn"
}
`)
	over := func(key string, v ir.Value) *eval.Env {
		return &eval.Env{Policies: map[string]*ir.Policy{"routing": {Name: "routing", Fields: []*ir.PolicyField{{Key: key, Value: v}}}}}
	}
	strs := func(s ...string) ir.Value {
		var l []ir.Value
		for _, x := range s {
			l = append(l, ir.StringValue(x))
		}
		return ir.ListValue(l)
	}
	for _, tc := range []struct {
		line string
		env  *eval.Env
		want string
	}{
		{line: `{"who":"ana"}`},
		{line: `{"who":"cy"}`, want: "vip"},
		{line: `{"who":"bo"}`, want: "codes"},
		{line: `{"who":"ana","confirmed_by":["a","x"]}`, want: "x"},
		{line: `{"who":"ana","confirmed_by":["a","xx",""]}`},
		{line: `{"who":"ana","confirmed_by":[]}`},
		{line: `{"who":"ana","confirmed_by":["a","x"]}`, env: &eval.Env{MaxBytes: 64 + 24 + 2*64 - 1}, want: "error[LLL105]"},
		{line: `{"who":"ana","confirmed_by":["a","b"]}`, env: &eval.Env{MaxBytes: 64 + 24 + 2*64}},
		{line: `{"who":"cy"}`, env: over("vip", strs("cy", "dé"))},
		{line: `{"who":"ana"}`, env: over("vip", strs()), want: "vip"},
		{line: `{"who":"ana"}`, env: over("vip", ir.NullValue()), want: "vip"},
		{line: `{"who":"bo"}`, env: over("codes", ir.ListValue([]ir.Value{ir.IntValue(2)}))},
		{line: `{"who":"ana"}`, env: over("vip", ir.ListValue([]ir.Value{ir.IntValue(2)})), want: "unsupported"},
		{line: `{"who":"ana"}`, env: over("vip", ir.StringValue("ana")), want: "unsupported"},
	} {
		env := tc.env
		if env == nil {
			env = &eval.Env{}
		}
		if tc.want == "unsupported" {
			s, _ := span.Parse([]byte(tc.line), span.Limits{})
			if vi, _, err := b.in.CheckSpanEnv(context.Background(), "v", s, env); !errors.Is(err, vm.ErrUnsupported) {
				t.Errorf("%s: %v, %v; want ErrUnsupported", tc.line, vi, err)
			}
			continue
		}
		vi := b.sameEnv(t, tc.line, env)
		if tc.want == "" && vi != nil || tc.want != "" && (vi == nil || !strings.Contains(vi.Detail, tc.want)) {
			t.Errorf("%s: the interpreter says %v, want %q", tc.line, vi, tc.want)
		}
	}
}
