package openapi

import (
	"context"
	"crypto/ed25519"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/loglineos/loglineos/internal/bundle"
	"github.com/loglineos/loglineos/internal/lll"
	"github.com/loglineos/loglineos/stdlib"
)

func testKey(n byte) ed25519.PrivateKey {
	seed := make([]byte, ed25519.SeedSize)
	seed[0] = n
	return ed25519.NewKeyFromSeed(seed)
}

func loadSigned(t testing.TB, data []byte, key ed25519.PrivateKey) *bundle.Bundle {
	t.Helper()
	b, err := bundle.Load(data, bundle.LoadOptions{Trusted: []ed25519.PublicKey{key.Public().(ed25519.PublicKey)}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// standardBundle is the standard bundle, signed with test key 1.
func standardBundle(t testing.TB) *bundle.Bundle {
	t.Helper()
	data, err := stdlib.Build(testKey(1))
	if err != nil {
		t.Fatal(err)
	}
	return loadSigned(t, data, testKey(1))
}

// compileBundle compiles .lll sources into a loaded bundle.
func compileBundle(t testing.TB, srcs ...lll.Source) *bundle.Bundle {
	t.Helper()
	data, errs, err := bundle.Compile(srcs, testKey(2), bundle.BuildOptions{})
	if err != nil || len(errs) > 0 {
		t.Fatal(err, errs)
	}
	return loadSigned(t, data, testKey(2))
}

func document(t testing.TB, b *bundle.Bundle, opts Options) Doc {
	t.Helper()
	doc, err := Document(b, opts)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func yamlOf(t testing.TB, d Doc) []byte {
	t.Helper()
	y, err := d.YAML()
	if err != nil {
		t.Fatal(err)
	}
	return y
}

func jsonOf(t testing.TB, d Doc) []byte {
	t.Helper()
	j, err := d.JSON()
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// kin loads a document with kin-openapi and validates it (as OpenAPI 3.1:
// kin-openapi switches to JSON Schema 2020-12 when the document says 3.1).
func kin(t testing.TB, data []byte) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(data)
	if err != nil {
		t.Fatalf("kin-openapi cannot load the document: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Fatalf("kin-openapi reads version %q, not 3.1", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background(), openapi3.EnableMultiError()); err != nil {
		t.Fatalf("kin-openapi: the document is not valid:\n%v", err)
	}
	return doc
}

// kinLoad loads a document with kin-openapi without validating it (the
// validation, which checks every example, takes a second; the documents
// of these options are validated by TestDocumentValidatesWithKin).
func kinLoad(t testing.TB, data []byte) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(data)
	if err != nil {
		t.Fatalf("kin-openapi cannot load the document: %v", err)
	}
	return doc
}

// schema returns a component schema of a kin-loaded document.
func schema(t testing.TB, doc *openapi3.T, name string) *openapi3.Schema {
	t.Helper()
	s := doc.Components.Schemas[name]
	if s == nil || s.Value == nil {
		t.Fatalf("no schema %s", name)
	}
	return s.Value
}

// visit validates a JSON value against a schema as JSON Schema 2020-12,
// formats asserted.
func visit(s *openapi3.Schema, v any) error {
	return s.VisitJSON(v, openapi3.EnableJSONSchema2020(), openapi3.MultiErrors())
}

// skipKinUnderRace skips a test whose time goes to kin-openapi's validation
// of whole documents: under the race detector that takes ten times as long
// and exercises no concurrency of ours. .ci/run runs the package without
// the race detector too, so these run there.
func skipKinUnderRace(t *testing.T) {
	t.Helper()
	if raceEnabled {
		t.Skip("kin-openapi's whole-document checks run without -race (.ci/run's full-size step)")
	}
}
