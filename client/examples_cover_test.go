package client_test

import (
	"go/ast"
	"go/doc"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestEveryExportedHasAnExample keeps the SDK's documentation whole: every
// exported function and method of client and client/webhook has an
// example that the documentation shows with it (ExampleF, ExampleT_M) and
// that go test runs (it has an output comment).
func TestEveryExportedHasAnExample(t *testing.T) {
	for _, dir := range []string{".", "webhook"} {
		fset := token.NewFileSet()
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var files []*ast.File
		for _, e := range entries {
			if e.IsDir() || !strings.HasSuffix(e.Name(), ".go") {
				continue
			}
			f, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, parser.ParseComments)
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, f)
		}
		p, err := doc.NewFromFiles(fset, files, "github.com/loglineos/loglineos/client/"+strings.TrimPrefix(dir, "."))
		if err != nil {
			t.Fatal(err)
		}
		check := func(name string, exs []*doc.Example) {
			if len(exs) == 0 {
				t.Errorf("%s: %s has no example (Example%s)", p.Name, name, strings.ReplaceAll(name, ".", "_"))
				return
			}
			if !slices.ContainsFunc(exs, func(e *doc.Example) bool { return e.Output != "" || e.EmptyOutput }) {
				t.Errorf("%s: the examples of %s have no output comment: go test does not run them", p.Name, name)
			}
		}
		for _, f := range p.Funcs {
			check(f.Name, f.Examples)
		}
		for _, typ := range p.Types {
			for _, f := range typ.Funcs {
				check(f.Name, f.Examples)
			}
			for _, m := range typ.Methods {
				check(typ.Name+"."+m.Name, m.Examples)
			}
		}
	}
}
