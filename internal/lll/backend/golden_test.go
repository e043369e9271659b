package backend

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/txtar"

	"github.com/loglineos/loglineos/internal/lll"
)

// goldenCase is one case of the language's golden tests
// (internal/lll/testdata): its .lll sources and the lines of its input.
type goldenCase struct {
	name  string
	srcs  []lll.Source
	lines []string // in.ndjson, without empty lines
}

// goldenCases reads every golden case.
func goldenCases(tb testing.TB) []goldenCase {
	tb.Helper()
	files, _ := filepath.Glob("../testdata/*.txtar")
	if len(files) == 0 {
		tb.Fatal("no golden cases in ../testdata")
	}
	var cases []goldenCase
	for _, file := range files {
		a, err := txtar.ParseFile(file)
		if err != nil {
			tb.Fatal(err)
		}
		c := goldenCase{name: strings.TrimSuffix(filepath.Base(file), ".txtar")}
		for _, f := range a.Files {
			switch {
			case strings.HasSuffix(f.Name, ".lll"):
				c.srcs = append(c.srcs, lll.Source{Name: f.Name, Text: f.Data})
			case f.Name == "in.ndjson":
				for _, l := range strings.Split(string(f.Data), "\n") {
					if l != "" {
						c.lines = append(c.lines, l)
					}
				}
			}
		}
		cases = append(cases, c)
	}
	return cases
}
