package openapi

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
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
			// examples/ are apps of their own, with their own routes.
			if strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || rel == filepath.Join("internal", "openapi") || rel == "examples" {
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

// notAPI are mounted routes that are pages for people, not API: the web
// console and the root that leads to it. They have no /v1 form and no
// place in the API's document.
func notAPI() []string { return []string{"GET /console/", "GET /{$}"} }

// Every route the code mounts is documented, and every documented route is
// mounted somewhere.
func TestEveryMountedRouteIsDocumented(t *testing.T) {
	mounted := mountedInSource(t)
	if _, ok := mounted["POST /ingest"]; !ok {
		t.Fatalf("the scan found no POST /ingest; found %v", mounted)
	}
	doc := documented(document(t, standardBundle(t), Options{}))
	for route, at := range mounted {
		if !slices.Contains(doc, route) && !slices.Contains(notAPI(), route) {
			t.Errorf("%s (mounted at %s) is not documented: add it to internal/openapi/routes.go", route, at)
		}
	}
	for _, route := range doc {
		if _, ok := mounted[route]; !ok && !slices.Contains(notYetMounted(), route) {
			t.Errorf("%s is documented but no code mounts it", route)
		}
	}
}
