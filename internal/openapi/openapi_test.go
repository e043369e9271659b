package openapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"github.com/loglineos/loglineos/internal/lll"
	"github.com/loglineos/loglineos/stdlib"
)

func TestDocumentValidatesWithKin(t *testing.T) {
	skipKinUnderRace(t)
	b := standardBundle(t)
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"production", Options{ServerURL: "https://logline.example.com"}},
		{"dev", Options{Dev: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The JSON says the same (TestYAMLAndJSONSayTheSame).
			kin(t, yamlOf(t, document(t, b, tc.opts)))
		})
	}
}

// The validation above is not vacuous: kin-openapi checks every example
// against its schema (as JSON Schema 2020-12) and the schemas themselves.
func TestKinCatchesMistakes(t *testing.T) {
	skipKinUnderRace(t)
	d := document(t, standardBundle(t), Options{})
	for _, tc := range []struct {
		name   string
		mutate func(d Doc)
		want   string // in kin-openapi's error
	}{
		{"example of the wrong shape", func(d Doc) {
			ex := d["components"].(map[string]any)["examples"].(map[string]any)["ingest-answer"].(map[string]any)
			ex["value"].(map[string]any)["accepted"] = "one"
		}, `example mixed: validation failed due to: error at "/accepted"`},
		{"accepted line without its receipt (if/then/else, a 3.1 keyword)", func(d Doc) {
			ex := d["components"].(map[string]any)["examples"].(map[string]any)["ingest-answer"].(map[string]any)
			line := ex["value"].(map[string]any)["results"].([]any)[0].(map[string]any)
			delete(line, "receipt")
		}, `missing property 'receipt'`},
		{"receipt with a short signature", func(d Doc) {
			ex := d["components"].(map[string]any)["examples"].(map[string]any)["receipt"].(map[string]any)
			ex["value"].(map[string]any)["sig"] = "c2ln"
		}, `Error at "/sig"`},
		{"span example missing a member", func(d Doc) {
			ex := d["components"].(map[string]any)["examples"].(map[string]any)["span"].(map[string]any)
			delete(ex["value"].(map[string]any), "who")
		}, `property "who" is missing`},
		{"unknown schema type", func(d Doc) {
			s := d["components"].(map[string]any)["schemas"].(map[string]any)["Hash"].(map[string]any)
			s["type"] = "strnig"
		}, "strnig"},
		{"dangling reference", func(d Doc) {
			s := d["components"].(map[string]any)["schemas"].(map[string]any)["IngestResponse"].(map[string]any)
			s["properties"].(map[string]any)["results"] = map[string]any{"$ref": "#/components/schemas/Nope"}
		}, "Nope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c Doc
			if err := json.Unmarshal(jsonOf(t, d), &c); err != nil {
				t.Fatal(err)
			}
			tc.mutate(c)
			data := jsonOf(t, c)
			doc, err := openapi3.NewLoader().LoadFromData(data)
			if err == nil {
				err = doc.Validate(context.Background())
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("kin-openapi: %v; want an error with %q", err, tc.want)
			}
		})
	}
}

func TestDeterministic(t *testing.T) {
	// The same sources signed with different keys: the same bytes.
	a := document(t, standardBundle(t), Options{})
	b := document(t, compileBundle(t, stdlib.Sources()...), Options{})
	if ya, yb := yamlOf(t, a), yamlOf(t, b); !bytes.Equal(ya, yb) {
		t.Errorf("two runs give different YAML:\n%s", cmp.Diff(string(ya), string(yb)))
	}
	if ja, jb := jsonOf(t, a), jsonOf(t, b); !bytes.Equal(ja, jb) {
		t.Errorf("two runs give different JSON:\n%s", cmp.Diff(string(ja), string(jb)))
	}
}

func TestYAMLAndJSONSayTheSame(t *testing.T) {
	d := document(t, standardBundle(t), Options{})
	var fromYAML, fromJSON any
	if err := yaml.Unmarshal(yamlOf(t, d), &fromYAML); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(jsonOf(t, d), &fromJSON); err != nil {
		t.Fatal(err)
	}
	// Through JSON, so that numbers compare as float64 on both sides.
	y, err := json.Marshal(fromYAML)
	if err != nil {
		t.Fatal(err)
	}
	var fromYAMLJSON any
	if err := json.Unmarshal(y, &fromYAMLJSON); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(fromJSON, fromYAMLJSON); diff != "" {
		t.Errorf("YAML and JSON differ (-json +yaml):\n%s", diff)
	}
	if !bytes.HasPrefix(yamlOf(t, d), []byte("openapi: 3.1.0\ninfo:\n")) {
		t.Errorf("the YAML does not start with openapi and info:\n%.80s", yamlOf(t, d))
	}
}

// The document's schemas are the bundle's: another bundle, other schemas.
func TestSchemasComeFromTheBundle(t *testing.T) {
	skipKinUnderRace(t)
	src := lll.Source{Name: "app.lll", Text: []byte(`
schema span {
  id: string as "nonempty"
  tenant: string
  who: string
  did: string
  this: string
  when: string as "rfc3339"
  status: string
  confirmed_by?: [string]
  data?: {...}
}
schema sale {
  gross: number(0..1000000)
  kind: "sale" | "refund"
  span: span
}
`)}
	d := document(t, compileBundle(t, src), Options{})
	doc := kin(t, yamlOf(t, d))
	sale := schema(t, doc, "sale")
	if got := sale.Properties["span"].Ref; got != "#/components/schemas/span" {
		t.Errorf("sale.span refers to %q", got)
	}
	if _, ok := doc.Components.Schemas["trajectory_edge"]; ok {
		t.Error("a schema of the standard bundle appears in another bundle's document")
	}
	// This span schema lets tenant be empty; the standard one does not.
	span := schema(t, doc, "span")
	if err := visit(span, map[string]any{"id": "s", "tenant": "", "who": "w", "did": "d", "this": "t", "when": "2025-10-05T22:18:07Z", "status": "ok"}); err != nil {
		t.Errorf("the bundle's own span schema is not the one used: %v", err)
	}
}

func TestDocumentRefusals(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{"no span schema", `schema sale { gross: number }`, "no schema span"},
		{"a schema named like the API's", `schema Problem { what: string }
schema span { id: string, tenant: string, who: string, did: string, this: string, when: string as "rfc3339", status: string, confirmed_by?: [string], data?: {...} }`, "Problem"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Document(compileBundle(t, lll.Source{Name: "x.lll", Text: []byte(tc.src)}), Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one naming %q", err, tc.want)
			}
		})
	}
}

// Every example is used by some media type, so kin-openapi checks it
// against that media type's schema.
func TestEveryExampleIsUsed(t *testing.T) {
	d := document(t, standardBundle(t), Options{})
	y := string(jsonOf(t, d))
	for name := range d["components"].(map[string]any)["examples"].(map[string]any) {
		if !strings.Contains(y, `"#/components/examples/`+name+`"`) {
			t.Errorf("example %s is not referenced by any operation", name)
		}
	}
}

func TestDevDocument(t *testing.T) {
	d := document(t, standardBundle(t), Options{Dev: true})
	paths := d["paths"].(map[string]any)
	for p := range paths {
		if strings.HasPrefix(p, "/auth/") || strings.HasPrefix(p, "/.well-known/") {
			t.Errorf("a --dev server does not serve %s, yet it is documented", p)
		}
	}
	ingest := paths["/ingest"].(map[string]any)["post"].(map[string]any)
	if _, ok := ingest["security"]; ok {
		t.Error("--dev: POST /ingest asks for a credential")
	}
	if _, ok := ingest["responses"].(map[string]any)["401"]; ok {
		t.Error("--dev: POST /ingest documents 401")
	}
	prod := document(t, standardBundle(t), Options{})
	ingest = prod["paths"].(map[string]any)["/ingest"].(map[string]any)["post"].(map[string]any)
	if _, ok := ingest["security"]; !ok {
		t.Error("POST /ingest asks for no credential")
	}
}

func TestHandler(t *testing.T) {
	b := standardBundle(t)
	h, err := Handler(b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/openapi.yaml", nil))
	body, _ := io.ReadAll(w.Result().Body)
	if ct := w.Header().Get("Content-Type"); ct != "application/yaml" {
		t.Errorf("Content-Type %q", ct)
	}
	if want := yamlOf(t, document(t, b, Options{})); !bytes.Equal(body, want) {
		t.Error("GET /openapi.yaml is not the document")
	}
}
