// Package loglineos_test holds the tests of the module as a whole.
package loglineos_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestPackageDocs: every package of the module says what it is in a doc
// comment, "Package NAME ..." or, for a command, "Command NAME ...".
func TestPackageDocs(t *testing.T) {
	if missing := missingDocs(t, "."); len(missing) > 0 {
		t.Errorf("packages without a doc comment (write one, e.g. in doc.go):\n\t%s", strings.Join(missing, "\n\t"))
	}
}

// TestPackageDocsCheck: the check finds a package without a doc comment,
// one whose comment names another package, and passes the others, test
// files and testdata aside.
func TestPackageDocsCheck(t *testing.T) {
	root := t.TempDir()
	for path, src := range map[string]string{
		"good/a.go":            "// Package good is documented.\npackage good\n",
		"good/b.go":            "package good\n",
		"cmd/tool/main.go":     "// Command tool does things.\npackage main\n",
		"none/a.go":            "package none\n",
		"none/a_test.go":       "// Package none is documented only in a test.\npackage none\n",
		"wrong/a.go":           "// Package other is not this one.\npackage wrong\n",
		"detached/a.go":        "// Package detached: the comment is not attached.\n\npackage detached\n",
		"x/testdata/t/a.go":    "package t\n",
		"onlytests/a_test.go":  "package onlytests\n",
		"nested/deeper/a.go":   "package deeper\n",
		"nested/doc.go":        "// Package nested is documented.\npackage nested\n",
		"hidden/.git/x/a.go":   "package x\n",
		"_ignored/a.go":        "package ignored\n",
		"good/notes.txt":       "not Go\n",
		"wrong/b_external.go":  "package wrong\n",
		"cmd/other/main.go":    "package main\n",
		"cmd/other/helpers.go": "package main\n",
	} {
		p := filepath.Join(root, filepath.FromSlash(path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"cmd/other", "detached", "nested/deeper", "none", "wrong"}
	if d := cmp.Diff(want, missingDocs(t, root)); d != "" {
		t.Errorf("missing docs (-want +got):\n%s", d)
	}
}

// missingDocs lists the directories below root (slash-separated, relative)
// holding a Go package with no doc comment of the right form. It skips
// testdata, hidden and _-prefixed directories, as the go command does.
func missingDocs(t *testing.T, root string) []string {
	t.Helper()
	var missing []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		name := d.Name()
		if path != root && (name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
			return filepath.SkipDir
		}
		files, err := filepath.Glob(filepath.Join(path, "*.go"))
		if err != nil {
			return err
		}
		found, documented := false, false
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.PackageClauseOnly|parser.ParseComments)
			if err != nil {
				return err
			}
			found = true
			prefix := "Package " + af.Name.Name + " "
			if af.Name.Name == "main" {
				prefix = "Command "
			}
			if af.Doc != nil && strings.HasPrefix(af.Doc.Text(), prefix) {
				documented = true
			}
		}
		if found && !documented {
			rel, _ := filepath.Rel(root, path)
			missing = append(missing, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return missing
}
