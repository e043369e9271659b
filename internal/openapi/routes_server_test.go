package openapi_test

// These tests run a real server, which itself imports this package, so they
// live in the external test package and reach the package's test helpers
// through export_test.go.

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
	"github.com/loglineos/loglineos/internal/openapi"
	"github.com/loglineos/loglineos/internal/server"
)

// routeLabels returns the route labels of the server's request counter: the
// mux pattern each request was served by ("other" for none).
func routeLabels(t *testing.T, s *server.Server) map[string]bool {
	t.Helper()
	w := httptest.NewRecorder()
	s.Metrics().Handler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	re := regexp.MustCompile(`logline_gateway_requests_total\{[^}]*route="([^"]+)"`)
	out := map[string]bool{}
	for _, m := range re.FindAllStringSubmatch(w.Body.String(), -1) {
		out[m[1]] = true
	}
	return out
}

// Every documented route is served by a real server: one request to each
// operation, then the server's own metrics say which route served it.
// A --dev server serves exactly the --dev document's routes: no identity.
func TestEveryDocumentedRouteIsServed(t *testing.T) {
	b := openapi.StandardBundle(t)
	mounted := openapi.MountedInSource(t)
	for _, dev := range []bool{false, true} {
		t.Run(map[bool]string{false: "production", true: "dev"}[dev], func(t *testing.T) {
			cfg := server.DefaultConfig()
			cfg.Data = t.TempDir()
			cfg.Dev = dev
			s, err := server.Open(context.Background(), cfg, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			d := openapi.DocumentT(t, b, openapi.Options{Dev: dev})
			k := openapi.KinLoad(t, openapi.YAMLOf(t, d))
			doc := openapi.Documented(d)
			all := openapi.Documented(openapi.DocumentT(t, b, openapi.Options{}))
			fill := strings.NewReplacer("{tenant}", "t_bakery", "{id}", "s_2", "{this}", "order:12345", "{name}", "invalid-span")
			for _, route := range all {
				method, path, _ := strings.Cut(route, " ")
				// A live stream (a channel) ends with its request.
				ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
				r := httptest.NewRequestWithContext(ctx, method, fill.Replace(path), nil)
				w := httptest.NewRecorder()
				s.Handler().ServeHTTP(w, r)
				cancel()
				// The answer is one the document describes.
				pending := slices.Contains(openapi.NotYetMounted(), route) && mounted[route] == ""
				if slices.Contains(doc, route) && !pending && w.Code != http.StatusSwitchingProtocols && w.Code != http.StatusUpgradeRequired {
					openapi.CheckResponse(t, k, route, method, path, w)
				}
			}
			served := routeLabels(t, s)
			for _, route := range all {
				_, inSource := mounted[route]
				switch {
				case slices.Contains(doc, route) && !served[route]:
					if slices.Contains(openapi.NotYetMounted(), route) && !inSource {
						t.Logf("%s: not mounted yet", route)
						continue
					}
					t.Errorf("%s is documented but the server does not serve it", route)
				case !slices.Contains(doc, route) && served[route]:
					t.Errorf("%s is served, yet the document (dev=%v) leaves it out", route, dev)
				}
			}
		})
	}
}

// Every kind of record the ledger stores reaches the all-tenant stream of a
// real server (an operator's), and every line validates against Record:
// the audit records of its first start (the token keys, the operator
// account), a tenant file's config record, clock ticks and a span.
func TestStreamOfEveryRecordKindMatchesTheSchema(t *testing.T) {
	openapi.SkipKinUnderRace(t)
	data := t.TempDir()
	if err := os.MkdirAll(filepath.Join(data, "cfg", "tenants"), 0o755); err != nil {
		t.Fatal(err)
	}
	tenantFile := "features: {diamond: false}\npolicies:\n  trajectory_linker: {close_timeout: \"2h\"}\n"
	if err := os.WriteFile(filepath.Join(data, "cfg", "tenants", "t_bakery.yaml"), []byte(tenantFile), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := server.DefaultConfig()
	cfg.Data = data
	cfg.Derive.TickInterval = 10 * time.Millisecond
	cfg.Derive.TenantScanInterval = 10 * time.Millisecond
	s, err := server.Open(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	h := s.Handler()
	doc := openapi.KinLoad(t, openapi.YAMLOf(t, openapi.DocumentT(t, openapi.StandardBundle(t), openapi.Options{})))

	// The operator's token, from the credentials of the first start.
	var creds struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	b, err := os.ReadFile(filepath.Join(data, "identity", "operator.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &creds); err != nil {
		t.Fatal(err)
	}
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {creds.ClientID}, "client_secret": {creds.ClientSecret}}
	r := httptest.NewRequest("POST", "/auth/token", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("POST /auth/token: HTTP %d: %s", w.Code, w.Body)
	}
	do := func(method, path, body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, path, strings.NewReader(body))
		r.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		if body != "" {
			r.Header.Set("Content-Type", "application/x-ndjson")
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	if w := do("POST", "/ingest", `{"id":"s_1","tenant":"t_bakery","who":"dan","did":"sale.post","this":"order:1","when":"2025-10-05T22:18:07Z","status":"confirmed"}`+"\n"); w.Code != http.StatusOK {
		t.Fatalf("POST /ingest: HTTP %d: %s", w.Code, w.Body)
	}

	// Wait until every kind is in the ledger (a tick and the config record
	// come from the background), then check the whole stream.
	want := []string{ledgerfmt.KindSpan, ledgerfmt.KindTick, ledgerfmt.KindConfig, server.KindAudit}
	deadline := time.Now().Add(10 * time.Second)
	for {
		w := do("GET", "/ledger/stream?cursor=0", "")
		seen := map[string]int{}
		for _, line := range strings.Split(strings.TrimSpace(w.Body.String()), "\n") {
			var rec map[string]json.RawMessage
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("%v: %s", err, line)
			}
			for k := range rec {
				switch k {
				case "seq", "ts", "leaf", "crc":
				default:
					seen[k]++
				}
			}
		}
		missing := slices.DeleteFunc(slices.Clone(want), func(k string) bool { return seen[k] > 0 })
		if len(missing) == 0 {
			t.Logf("records by kind: %v", seen)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %v record reached the stream in 10 s; seen %v", missing, seen)
		}
		time.Sleep(20 * time.Millisecond)
	}
	openapi.CheckResponse(t, doc, "GET /ledger/stream", "GET", "/ledger/stream", do("GET", "/ledger/stream?cursor=0", ""))
}
