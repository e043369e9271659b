package tenant

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/rogpeppe/go-internal/txtar"
)

var update = flag.Bool("update", false, "rewrite the expected sections of testdata/files/*.txtar (out/record only where it is missing)")

// TestFiles parses the in.yaml of every testdata/files/*.txtar case over
// the standard bundle's features and policies (testdata/base.json, as
// BasePolicies gives them) and compares:
//
//	out/record  the body of the config record: ledger format, as earlier
//	            versions wrote it for the same file; -update adds it to a
//	            new case and never changes it
//	out/config  the configuration DecodeConfig reads back from the record
//	out/errors  Parse's errors, one a line, when the file is refused
func TestFiles(t *testing.T) {
	base := readBase(t)
	files, _ := filepath.Glob("testdata/files/*.txtar")
	if len(files) < 20 {
		t.Fatalf("only %d cases", len(files))
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txtar"), func(t *testing.T) {
			a, err := txtar.ParseFile(file)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string][]byte{}
			f, err := Parse("t_x.yaml", archiveFile(a, "in.yaml"), base)
			if err != nil {
				got["out/errors"] = []byte(err.Error() + "\n")
			} else {
				e, err := ConfigEntry("t_x", f.Doc)
				if err != nil {
					t.Fatal(err)
				}
				got["out/record"] = append(e.Body, '\n')
				name, cfg, err := DecodeConfig(e.Body)
				if err != nil || name != "t_x" {
					t.Fatalf("DecodeConfig: %q, %v", name, err)
				}
				if diff := cmp.Diff(*cfg, f.Config); diff != "" {
					t.Errorf("the record reads back as another configuration than Parse's (-record +Parse):\n%s", diff)
				}
				j, _ := json.MarshalIndent(cfg, "", "  ")
				got["out/config"] = append(j, '\n')
			}
			compareSections(t, file, a, got)
		})
	}
}

func readBase(t *testing.T) map[string]any {
	t.Helper()
	data, err := os.ReadFile("testdata/base.json")
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // as the bundle's numbers are
	var base map[string]any
	if err := dec.Decode(&base); err != nil {
		t.Fatal(err)
	}
	return base
}

func archiveFile(a *txtar.Archive, name string) []byte {
	for _, f := range a.Files {
		if f.Name == name {
			return f.Data
		}
	}
	return nil
}

// compareSections compares the out/ sections of a with got, or rewrites
// them under -update (an existing out/record is never rewritten).
func compareSections(t *testing.T, file string, a *txtar.Archive, got map[string][]byte) {
	t.Helper()
	out := &txtar.Archive{Comment: a.Comment}
	changed := false
	for _, f := range a.Files {
		if !strings.HasPrefix(f.Name, "out/") {
			out.Files = append(out.Files, f)
		}
	}
	for _, name := range []string{"out/record", "out/config", "out/errors"} {
		want, g := archiveFile(a, name), got[name]
		if !bytes.Equal(want, g) {
			if !*update || (name == "out/record" && want != nil) {
				t.Errorf("%s (-want +got):\n%s", name, cmp.Diff(string(want), string(g)))
			}
			changed = true
		}
		if g != nil {
			out.Files = append(out.Files, txtar.File{Name: name, Data: g})
		}
	}
	if *update && changed {
		if err := os.WriteFile(file, txtar.Format(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
