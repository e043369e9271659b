package openapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/txtar"

	"github.com/loglineos/loglineos/internal/bundle"
	"github.com/loglineos/loglineos/internal/span"
)

// sample is a span found in the project's test data and docs.
type sample struct {
	from string // file:where
	raw  string
}

// The reference examples of the span's wire
// form and the span of Appendix A's record line.
func specSamples() []sample {
	return []sample{
		{"reference span", `{"id":"s_01JD8X3K2M4N5P6Q7R8S9T0V1W","tenant":"t_voulezvous","who":"dan","did":"sale.post",
 "this":"order:12345","when":"2025-10-05T22:18:07Z","confirmed_by":["pos://register-7"],
 "status":"confirmed","data":{"gross":19.90,"items":3}}`},
		{"reference appendix span", `{"confirmed_by":["pos://register-7"],"data":{"gross":19.9,"items":3},"did":"sale.post","id":"s_01FJ...","status":"confirmed","tenant":"t_voulezvous","this":"order:12345","when":"2025-10-05T22:18:07Z","who":"dan"}`},
	}
}

// repoRoot is the module root, two levels up.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatal(err)
	}
	return root
}

// candidates returns the JSON objects in data that look like spans (they
// have an id and are not a line's result); lines that are not JSON objects
// are skipped.
func candidates(from string, data []byte, lines bool) []sample {
	var chunks [][]byte
	if lines {
		chunks = bytes.Split(data, []byte("\n"))
	} else {
		chunks = [][]byte{data}
	}
	var out []sample
	for i, c := range chunks {
		c = bytes.TrimSpace(c)
		var v any
		if len(c) == 0 || json.Unmarshal(c, &v) != nil {
			continue
		}
		var objs []string
		switch v.(type) {
		case map[string]any:
			objs = []string{string(c)}
		case []any:
			var elems []json.RawMessage
			json.Unmarshal(c, &elems)
			for _, e := range elems {
				objs = append(objs, string(e))
			}
		}
		for j, o := range objs {
			var m map[string]any
			if json.Unmarshal([]byte(o), &m) != nil {
				continue
			}
			_, id := m["id"]
			_, line := m["line"]
			if id && !line {
				where := from
				if lines {
					where = fmt.Sprintf("%s:%d", from, i+1)
				} else if len(objs) > 1 {
					where = fmt.Sprintf("%s[%d]", from, j)
				}
				out = append(out, sample{where, o})
			}
		}
	}
	return out
}

// collectSamples gathers the sample spans: the gateway tests' span
// literals (goodSpan and the like), the *.json and *.ndjson sections of the
// CLI scripts, the README's examples and the reference ones.
func collectSamples(t *testing.T) []sample {
	t.Helper()
	root := repoRoot(t)
	out := specSamples()

	// The gateway tests: string literals that start a span object (goodSpan's
	// format, its %q verb becoming an id), and the calls
	// spanWith(id, member, value) with literal arguments, which replace (or,
	// with "", remove) one member of goodSpan's span.
	files, _ := filepath.Glob(filepath.Join(root, "internal/gateway/*_test.go"))
	var good map[string]json.RawMessage
	type call struct {
		from string
		args [3]string
	}
	var calls []call
	for _, f := range files {
		fset := token.NewFileSet()
		af, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(af, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.BasicLit:
				s, err := strconv.Unquote(n.Value)
				if n.Kind != token.STRING || err != nil || !strings.HasPrefix(s, `{"id":`) {
					return true
				}
				s = strings.ReplaceAll(s, "%q", `"s_sample"`)
				found := candidates(fmt.Sprintf("%s:%d", filepath.Base(f), fset.Position(n.Pos()).Line), []byte(s), false)
				if len(found) == 1 && good == nil {
					json.Unmarshal([]byte(found[0].raw), &good)
				}
				out = append(out, found...)
			case *ast.CallExpr:
				if id, ok := n.Fun.(*ast.Ident); !ok || id.Name != "spanWith" || len(n.Args) != 3 {
					return true
				}
				var c call
				for i, a := range n.Args {
					lit, ok := a.(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						return true
					}
					c.args[i], _ = strconv.Unquote(lit.Value)
				}
				c.from = fmt.Sprintf("%s:%d", filepath.Base(f), fset.Position(n.Pos()).Line)
				calls = append(calls, c)
			}
			return true
		})
	}
	if good == nil {
		t.Fatal("goodSpan's span not found in the gateway tests")
	}
	for _, c := range calls {
		m := map[string]json.RawMessage{}
		for k, v := range good {
			m[k] = v
		}
		m["id"], _ = json.Marshal(c.args[0])
		if c.args[2] == "" {
			delete(m, c.args[1])
		} else {
			m[c.args[1]] = json.RawMessage(c.args[2])
		}
		b, err := json.Marshal(m)
		if err != nil {
			continue // not JSON: a case for the decoder
		}
		out = append(out, sample{c.from, string(b)})
	}

	// The sections of the CLI scripts.
	for _, pattern := range []string{"internal/cli/testdata/script/*.txtar", "internal/lllc/testdata/script/*.txtar"} {
		files, _ := filepath.Glob(filepath.Join(root, pattern))
		for _, f := range files {
			a, err := txtar.ParseFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range a.Files {
				from := filepath.Base(f) + ":" + s.Name
				switch {
				case strings.HasSuffix(s.Name, ".ndjson"):
					out = append(out, candidates(from, s.Data, true)...)
				case strings.HasSuffix(s.Name, ".json"):
					out = append(out, candidates(from, s.Data, false)...)
				}
			}
		}
	}

	// The README's lines that are spans.
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, candidates("README.md", readme, true)...)
	return out
}

// contractAccepts is the server's verdict on a span: strict decoding, then
// the bundle's ingest validators. A span that is not even JSON text (a
// syntax error, a duplicate member) or exceeds a limit is a matter for the
// decoder, not for a schema: ok is false then.
func contractAccepts(b *bundle.Bundle, raw string) (accepted, ok bool, why string) {
	s, err := span.Parse([]byte(raw), span.DefaultLimits())
	var se *span.SyntaxError
	var le *span.LimitError
	switch {
	case errors.As(err, &se), errors.As(err, &le):
		return false, false, err.Error()
	case err != nil:
		return false, true, err.Error()
	}
	for _, v := range b.IngestValidators() {
		if vi := v.Validate(s); vi != nil {
			return false, true, vi.Error()
		}
	}
	return true, true, ""
}

// Every sample span of the project agrees with the generated span schema:
// the ones the contract accepts validate, the ones it rejects do not.
func TestSampleSpansMatchTheSchema(t *testing.T) {
	b := standardBundle(t)
	doc := kinLoad(t, yamlOf(t, document(t, b, Options{})))
	spanSchema := schema(t, doc, "span")
	samples := collectSamples(t)
	good, bad := 0, 0
	for _, s := range samples {
		var v any
		if err := json.Unmarshal([]byte(s.raw), &v); err != nil {
			t.Fatalf("%s: %v", s.from, err)
		}
		accepted, ok, why := contractAccepts(b, s.raw)
		if !ok {
			continue
		}
		err := visit(spanSchema, v)
		switch {
		case accepted && err != nil:
			t.Errorf("%s: the contract accepts the span but the schema does not: %v\n%s", s.from, err, s.raw)
		case !accepted && err == nil:
			t.Errorf("%s: the schema accepts the span but the contract does not (%s)\n%s", s.from, why, s.raw)
		case accepted:
			good++
		default:
			bad++
		}
	}
	t.Logf("%d sample spans: %d valid, %d invalid, all judged alike by the schema and the contract", len(samples), good, bad)
	// The collection is not empty by accident: goodSpan, the scripts'
	// spans, the README's two and the two reference ones.
	if good < 10 || bad < 3 {
		t.Errorf("only %d valid and %d invalid samples found", good, bad)
	}
}

// Spans that break the contract fail the schema, each for its reason.
func TestInvalidSpansFailTheSchema(t *testing.T) {
	b := standardBundle(t)
	spanSchema := schema(t, kinLoad(t, yamlOf(t, document(t, b, Options{}))), "span")
	good := map[string]any{}
	if err := json.Unmarshal([]byte(exampleSpan1), &good); err != nil {
		t.Fatal(err)
	}
	if err := visit(spanSchema, good); err != nil {
		t.Fatalf("the example span fails: %v", err)
	}
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for k, v := range good {
			m[k] = v
		}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	for _, tc := range []struct {
		name string
		span map[string]any
		want string // in the error
	}{
		{"missing id", with("id", nil), `"id"`},
		{"missing tenant", with("tenant", nil), `"tenant"`},
		{"missing when", with("when", nil), `"when"`},
		{"missing status", with("status", nil), `"status"`},
		{"status not allowed", with("status", "shipped"), "/status"},
		{"status in capitals", with("status", "Confirmed"), "/status"},
		{"who a number", with("who", 5.0), "/who"},
		{"id an object", with("id", map[string]any{"v": 1.0}), "/id"},
		{"empty did", with("did", ""), "/did"},
		{"when not RFC 3339", with("when", "2025-13-45T00:00:00Z"), "/when"},
		{"when a date", with("when", "2025-10-05"), "/when"},
		{"confirmed_by a string", with("confirmed_by", "pos://7"), "/confirmed_by"},
		{"confirmed_by of numbers", with("confirmed_by", []any{7.0}), "/confirmed_by"},
		{"data an array", with("data", []any{1.0}), "/data"},
		{"unknown member", with("colour", "red"), "colour"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := visit(spanSchema, tc.span)
			if err == nil {
				t.Fatal("the schema accepts it")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name %s", err, tc.want)
			}
			raw, _ := json.Marshal(tc.span)
			if accepted, _, _ := contractAccepts(b, string(raw)); accepted {
				t.Errorf("the contract accepts %s", raw)
			}
		})
	}
}
