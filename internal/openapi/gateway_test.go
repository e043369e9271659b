package openapi

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/getkin/kin-openapi/openapi3"

	"github.com/loglineos/loglineos/internal/bundle"
	"github.com/loglineos/loglineos/internal/gateway"
	"github.com/loglineos/loglineos/internal/gateway/reply"
	"github.com/loglineos/loglineos/internal/identity"
	"github.com/loglineos/loglineos/internal/ledger"
	"github.com/loglineos/loglineos/internal/span"
)

// A gateway over an in-memory ledger, with the bundle's span contract, whose
// every caller is a writer of t_bakery.

type testLedger struct{ *ledger.Ledger }

func (l testLedger) VerifierKey() string { return l.Signer().VerifierKey() }
func (l testLedger) OpenReader(from uint64) (gateway.RecordReader, error) {
	return l.NewReader(from)
}

type bakeryAuth struct{}

func (bakeryAuth) Authenticate(r *http.Request) (*identity.Principal, error) {
	if r.Header.Get("Authorization") == "Bearer bad" {
		return nil, &identity.Error{Kind: identity.KindUnauthenticated, Reason: identity.ReasonExpired}
	}
	return &identity.Principal{Subject: "sa:pos-7", Tenant: exampleTenant,
		Caps: []identity.Capability{identity.CapIngest, identity.CapStreamRead, identity.CapReceiptsRead, identity.CapQualityDryrun}}, nil
}

type contract []*bundle.Validator

func (vs contract) Validate(s *span.Span) *gateway.Rejection {
	for _, v := range vs {
		if vi := v.Validate(s); vi != nil {
			return &gateway.Rejection{Validator: vi.Validator, Rule: vi.Rule, Field: vi.Field, Detail: vi.Detail, At: vi.Pos}
		}
	}
	return nil
}

func newGateway(t *testing.T, b *bundle.Bundle) (*gateway.Gateway, *ledger.Ledger) {
	t.Helper()
	l, err := ledger.Open("data", ledger.Config{FS: vfs.NewMem(), Origin: exampleOrigin})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	// GET /openapi.yaml, mounted as the server mounts it.
	oa, err := Handler(b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	g := gateway.New(gateway.Config{
		Mount: func(mux *http.ServeMux, wrap gateway.Wrap) {
			mux.Handle("GET /openapi.yaml", wrap("GET /openapi.yaml", oa, false))
		},
		Ledger:    testLedger{l},
		Auth:      bakeryAuth{},
		Validator: contract(b.IngestValidators()),
		Now:       func() time.Time { return time.Date(2025, 10, 6, 0, 0, 0, 0, time.UTC) },
	})
	return g, l
}

// The document lists the API's problem types (reply.ProblemTypes), and the
// gateway serves a page for each with the same title, status and
// description.
func TestProblemTypesMatchGateway(t *testing.T) {
	g, _ := newGateway(t, standardBundle(t))
	for _, p := range reply.ProblemTypes() {
		r := httptest.NewRequest("GET", "/problems/"+p.Name, nil)
		r.Header.Set("Accept", "application/json")
		w := httptest.NewRecorder()
		g.ServeHTTP(w, r)
		var page struct {
			Type, Title, Description string
			Status                   int
		}
		if err := json.Unmarshal(w.Body.Bytes(), &page); err != nil || w.Code != 200 {
			t.Errorf("GET /problems/%s: %d %s", p.Name, w.Code, w.Body)
			continue
		}
		if page.Title != p.Title || page.Status != p.Status || page.Description != p.Doc {
			t.Errorf("GET /problems/%s: %+v, want %+v", p.Name, page, p)
		}
	}
}

// exchange is one request to the gateway and the operation it is for.
type exchange struct {
	method, pattern, path string
	ctype, body, auth     string
	status                int
}

// TestDocumentDescribesTheGateway sends requests to a real gateway and
// checks each answer against the document: its status is documented for the
// operation (or falls under default), its media type is one the response
// lists, and its body validates against that media type's schema (for
// NDJSON, each line against the item schema).
func TestDocumentDescribesTheGateway(t *testing.T) {
	b := standardBundle(t)
	doc := kinLoad(t, yamlOf(t, document(t, b, Options{})))
	g, l := newGateway(t, b)
	allBad := exampleSpanBad + "\nnot json\n"
	steps := []exchange{
		{"POST", "/ingest", "/ingest", "application/x-ndjson", exampleNDJSON(), "", 200},
		{"POST", "/ingest", "/ingest", "application/x-ndjson", exampleNDJSON(), "", 200}, // duplicates now
		{"POST", "/ingest", "/ingest", "application/json", exampleSpan3, "", 200},
		{"POST", "/ingest", "/ingest", "application/json", "[" + exampleSpan3 + "," + exampleSpanBad + "]", "", 200},
		{"POST", "/ingest", "/ingest", "application/x-ndjson", allBad, "", 422},
		{"POST", "/ingest", "/ingest", "application/x-ndjson", exampleSpanBad, "", 422},
		{"POST", "/ingest", "/ingest", "text/plain", exampleSpan1, "", 415},
		{"POST", "/ingest", "/ingest", "application/x-ndjson", exampleSpan1, "Bearer bad", 401},
		{"POST", "/ingest", "/ingest", "application/x-ndjson", strings.Replace(exampleSpan1, "t_bakery", "t_cafe", 1), "", 403},
		{"GET", "/ingest", "/ingest", "", "", "", 405},
		{"GET", "/spans/{tenant}/{id}", "/spans/t_bakery/s_2", "", "", "", 200},
		{"GET", "/spans/{tenant}/{id}", "/spans/t_bakery/s_404", "", "", "", 404},
		{"GET", "/spans/{tenant}/{id}", "/spans/t_cafe/s_2", "", "", "", 403},
		{"GET", "/things/{tenant}/{this}", "/things/t_bakery/order:12345?limit=2", "", "", "", 200},
		{"GET", "/things/{tenant}/{this}", "/things/t_bakery/order:12345?limit=0", "", "", "", 400},
		{"GET", "/receipts/{tenant}/{id}", "/receipts/t_bakery/s_2", "", "", "", 200},
		{"GET", "/ledger/stream", "/ledger/stream?cursor=0&tenant=t_bakery", "", "", "", 200},
		{"GET", "/ledger/stream", "/ledger/stream?cursor=x&tenant=t_bakery", "", "", "", 400},
		{"GET", "/ledger/stream", "/ledger/stream?cursor=0", "", "", "", 403},
		{"GET", "/ledger/checkpoint", "/ledger/checkpoint", "", "", "", 200},
		{"GET", "/ledger/key", "/ledger/key", "", "", "", 200},
		{"GET", "/ledger/proof", "/ledger/proof?seq=1", "", "", "", 200},
		{"GET", "/ledger/proof", "/ledger/proof?from=1&size=3", "", "", "", 200},
		{"GET", "/ledger/proof", "/ledger/proof", "", "", "", 400},
		{"GET", "/ledger/proof", "/ledger/proof?seq=99", "", "", "", 404},
		{"GET", "/derived/stream", "/derived/stream?tenant=t_bakery", "", "", "", 503},
		{"GET", "/trajectories/{tenant}/{id}", "/trajectories/t_bakery/t_x", "", "", "", 503},
		{"POST", "/quality/dryrun", "/quality/dryrun", "application/x-ndjson", exampleNDJSON(), "", 503},
		{"GET", "/healthz", "/healthz", "", "", "", 200},
		{"GET", "/readyz", "/readyz", "", "", "", 200},
		{"GET", "/problems/{name}", "/problems/invalid-span", "application/json", "", "", 200},
		{"GET", "/problems/{name}", "/problems/invalid-span", "", "", "", 200},
		{"GET", "/problems/{name}", "/problems/nope", "", "", "", 404},
		{"GET", "/openapi.yaml", "/openapi.yaml", "", "", "", 200},
	}
	for i, x := range steps {
		if x.path == "/ledger/checkpoint" {
			if _, err := l.WriteCheckpoint(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		var body io.Reader
		if x.body != "" {
			body = strings.NewReader(x.body)
		}
		r := httptest.NewRequest(x.method, x.path, body)
		if x.body != "" {
			r.Header.Set("Content-Type", x.ctype)
		} else if x.ctype != "" {
			r.Header.Set("Accept", x.ctype)
		}
		if x.auth != "" {
			r.Header.Set("Authorization", x.auth)
		}
		w := httptest.NewRecorder()
		g.ServeHTTP(w, r)
		name := strconv.Itoa(i) + " " + x.method + " " + x.path
		if w.Code != x.status {
			t.Errorf("%s: HTTP %d, want %d: %s", name, w.Code, x.status, w.Body)
			continue
		}
		checkResponse(t, doc, name, x, w)
	}
}

// checkResponse checks an answer against the operation's documented
// responses.
func checkResponse(t *testing.T, doc *openapi3.T, name string, x exchange, w *httptest.ResponseRecorder) {
	t.Helper()
	pattern := x.pattern
	if w.Code == http.StatusMethodNotAllowed {
		pattern, x.method = "/ingest", "POST" // the default response of the path's operation
	}
	item := doc.Paths.Value(pattern)
	if item == nil || item.GetOperation(x.method) == nil {
		t.Errorf("%s: %s %s is not documented", name, x.method, pattern)
		return
	}
	op := item.GetOperation(x.method)
	resp := op.Responses.Status(w.Code)
	if resp == nil {
		// Only a method the path does not take falls under default.
		if w.Code != http.StatusMethodNotAllowed {
			t.Errorf("%s: status %d is not documented", name, w.Code)
			return
		}
		resp = op.Responses.Default()
	}
	ct := w.Header().Get("Content-Type")
	mt := resp.Value.Content.Get(ct)
	if mt == nil {
		t.Errorf("%s: media type %q is not documented for %d (documented: %v)", name, ct, w.Code, keys(resp.Value.Content))
		return
	}
	if w.Header().Get("X-Request-Id") == "" {
		t.Errorf("%s: no X-Request-Id", name)
	}
	base, _, _ := mime.ParseMediaType(ct)
	switch base {
	case "application/json", "application/problem+json":
		var v any
		if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
			t.Errorf("%s: %v", name, err)
			return
		}
		if err := visit(mt.Schema.Value, v); err != nil {
			t.Errorf("%s: the body does not match the documented schema: %v\n%s", name, err, w.Body)
		}
	case "application/x-ndjson":
		sc := bufio.NewScanner(w.Body)
		sc.Buffer(nil, 1<<20)
		n := 0
		for sc.Scan() {
			var v any
			if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			item := "Record"
			switch {
			case strings.HasPrefix(pattern, "/derived/"):
				item = "DerivedEvent"
			case strings.HasPrefix(pattern, "/exports/"):
				item = "ExportLine"
			}
			if err := visit(schema(t, doc, item), v); err != nil {
				t.Errorf("%s: line %d is not a %s: %v", name, n+1, item, err)
			}
			n++
		}
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
