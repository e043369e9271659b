package openapi_test

// These tests run a real server, which itself imports this package, so they
// live in the external test package and reach the package's test helpers
// through export_test.go.

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

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
				r := httptest.NewRequest(method, fill.Replace(path), nil)
				w := httptest.NewRecorder()
				s.Handler().ServeHTTP(w, r)
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
