package openapi

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/loglineos/loglineos/internal/server"
)

// documented returns the operations of a document as "METHOD /path".
func documented(d Doc) []string {
	var out []string
	for path, item := range d["paths"].(map[string]any) {
		for method := range item.(map[string]any) {
			out = append(out, strings.ToUpper(method)+" "+path)
		}
	}
	slices.Sort(out)
	return out
}

// mountedInSource returns the routes the project's Go code mounts: every
// string literal "METHOD /path" outside tests and this package, as the
// gateway's routes() and the server's mount() write them.
func mountedInSource(t *testing.T) map[string]string {
	t.Helper()
	root := repoRoot(t)
	re := regexp.MustCompile(`^(GET|POST|PUT|PATCH|DELETE) /\S*$`)
	out := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || rel == filepath.Join("internal", "openapi") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if s, err := strconv.Unquote(lit.Value); err == nil && re.MatchString(s) {
					out[s] = fset.Position(lit.Pos()).String()
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// notYetMounted are documented routes the server may not mount yet: the
// server mounts GET /openapi.yaml with this package's Handler. Once a
// source mounts one, the tests hold it to the same rules as the others.
func notYetMounted() []string { return []string{"GET /openapi.yaml"} }

// Every route the code mounts is documented, and every documented route is
// mounted somewhere.
func TestEveryMountedRouteIsDocumented(t *testing.T) {
	mounted := mountedInSource(t)
	if _, ok := mounted["POST /ingest"]; !ok {
		t.Fatalf("the scan found no POST /ingest; found %v", mounted)
	}
	doc := documented(document(t, standardBundle(t), Options{}))
	for route, at := range mounted {
		if !slices.Contains(doc, route) {
			t.Errorf("%s (mounted at %s) is not documented: add it to internal/openapi/routes.go", route, at)
		}
	}
	for _, route := range doc {
		if _, ok := mounted[route]; !ok && !slices.Contains(notYetMounted(), route) {
			t.Errorf("%s is documented but no code mounts it", route)
		}
	}
}

// routeLabels returns the route labels of the server's request counter: the
// mux pattern each request was served by ("other" for none).
func routeLabels(t *testing.T, s *server.Server) map[string]bool {
	t.Helper()
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
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
	b := standardBundle(t)
	mounted := mountedInSource(t)
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
			d := document(t, b, Options{Dev: dev})
			k := kinLoad(t, yamlOf(t, d))
			doc := documented(d)
			all := documented(document(t, b, Options{}))
			fill := strings.NewReplacer("{tenant}", "t_bakery", "{id}", "s_2", "{this}", "order:12345", "{name}", "invalid-span")
			for _, route := range all {
				method, path, _ := strings.Cut(route, " ")
				r := httptest.NewRequest(method, fill.Replace(path), nil)
				w := httptest.NewRecorder()
				s.Handler().ServeHTTP(w, r)
				// The answer is one the document describes.
				pending := slices.Contains(notYetMounted(), route) && mounted[route] == ""
				if slices.Contains(doc, route) && !pending && w.Code != http.StatusSwitchingProtocols && w.Code != http.StatusUpgradeRequired {
					checkResponse(t, k, route, exchange{method: method, pattern: path}, w)
				}
			}
			served := routeLabels(t, s)
			for _, route := range all {
				_, inSource := mounted[route]
				switch {
				case slices.Contains(doc, route) && !served[route]:
					if slices.Contains(notYetMounted(), route) && !inSource {
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
