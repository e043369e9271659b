package cli

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestRunbookQuotesWhatTheProgramPrints holds docs/runbooks.md to the
// program: every message it quotes (a code span with a space that is not a
// command) must be one the program writes: a string literal of its source,
// or a concatenation or format of them, with "…" for what varies. The
// scripts (trust.txtar) check the main ones as printed.
func TestRunbookQuotesWhatTheProgramPrints(t *testing.T) {
	doc, err := os.ReadFile("../../docs/runbooks.md")
	if err != nil {
		t.Fatal(err)
	}
	msgs := runbookMessages(string(doc))
	if len(msgs) < 8 {
		t.Fatalf("found only %d messages in the runbook: %q", len(msgs), msgs)
	}
	lits := programStrings(t, "../..")
	for _, m := range msgs {
		if !someMatch(m, lits) {
			t.Errorf("the runbook quotes %q, which the program does not write", m)
		}
	}
	// And every metric it names is one the program registers.
	for _, m := range regexp.MustCompile("`(logline_[a-z0-9_]+)").FindAllStringSubmatch(string(doc), -1) {
		if !slices.Contains(lits, m[1]) {
			t.Errorf("the runbook names the metric %s, which the program does not have", m[1])
		}
	}
}

// runbookMessages returns the quoted messages of a markdown text: code
// spans (which may run over a line break) holding a space, other than
// commands, paths and status codes, outside fenced blocks.
func runbookMessages(doc string) []string {
	var out []string
	// Fenced blocks are configuration or output examples, not quotes.
	fence := regexp.MustCompile("(?ms)^```.*?^```")
	doc = fence.ReplaceAllString(doc, "")
	for _, para := range strings.Split(doc, "\n\n") {
		para = strings.Join(strings.Fields(para), " ")
		parts := strings.Split(para, "`")
		for i := 1; i < len(parts); i += 2 {
			s := parts[i]
			switch {
			case !strings.Contains(s, " "), strings.HasPrefix(s, "logline "), strings.HasPrefix(s, "logline_"),
				strings.HasPrefix(s, "kill "), strings.HasPrefix(s, "/"), s[0] >= '0' && s[0] <= '9':
				continue
			}
			out = append(out, s)
		}
	}
	return out
}

// programStrings returns the string literals of the module's non-test Go
// source, with format verbs and non-literal operands of + as "…".
func programStrings(t *testing.T, root string) []string {
	t.Helper()
	verb := regexp.MustCompile(`%[-+# 0-9.]*[a-zA-Z]`)
	var out []string
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		var str func(e ast.Expr) string
		str = func(e ast.Expr) string {
			switch e := e.(type) {
			case *ast.BasicLit:
				if e.Kind == token.STRING {
					if s, err := strconv.Unquote(e.Value); err == nil {
						return verb.ReplaceAllString(s, "…")
					}
				}
			case *ast.BinaryExpr:
				if e.Op == token.ADD {
					return str(e.X) + str(e.Y)
				}
			case *ast.ParenExpr:
				return str(e.X)
			}
			return "…"
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.BinaryExpr:
				if s := str(n); strings.Trim(s, "…") != "" {
					out = append(out, strings.TrimSpace(s))
				}
				return false
			case *ast.BasicLit:
				if s := str(n); s != "…" {
					out = append(out, strings.TrimSpace(s))
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

// someMatch reports whether msg and a literal agree, "…" standing for
// anything on either side.
func someMatch(msg string, lits []string) bool {
	wild := func(s string) *regexp.Regexp {
		return regexp.MustCompile("^" + strings.ReplaceAll(regexp.QuoteMeta(s), "…", ".*") + "$")
	}
	// What a side fixes, "…" aside: a literal must fix a third of what
	// the message fixes, and 8 characters, so that "%s: %s" matches nothing.
	fixed := func(s string) int { return len(strings.ReplaceAll(strings.ReplaceAll(s, "…", ""), " ", "")) }
	m := wild(msg)
	for _, l := range lits {
		if !strings.Contains(l, " ") || fixed(l) < 8 || 3*fixed(l) < fixed(msg) {
			continue
		}
		if m.MatchString(l) || wild(l).MatchString(msg) {
			return true
		}
	}
	return false
}

// runbooksNotScripted are the sections of docs/runbooks.md that no script
// performs, each with why and what tests it instead. Keep it short: a new
// runbook gets a script (testdata/script/runbook_<slug>.txtar).
var runbooksNotScripted = map[string]string{
	// A failing disk or a scrub finding damage cannot be made on demand
	// under a real binary: internal/ledger's fault-injecting vfs tests and
	// internal/server's TestScrubberStopsAppendsOnDamage perform it.
	"The ledger turned read-only (`/readyz` says so; ingest answers 503)": "fault injection",
	// Derivation stopping needs an error it cannot skip (a derived file it
	// cannot write): internal/server's TestDerivationStoppedNotReady.
	"Derivation stopped (`/readyz`: `not ready: derivation stopped: …`)": "fault injection",
	// The bounds need hundreds of concurrent clients: internal/gateway's
	// trust tests.
	"Overload: 503 `overloaded`, 429 `too-many-in-flight`": "load",
}

// TestEveryRunbookHasAScript holds docs/runbooks.md to the scripts: every
// "## " section is performed by a script whose leading comment lines name
// it ("# Runbook: <section title>"), unless runbooksNotScripted says why
// not; so a new runbook without a script fails, and so does a script that
// names a section the runbook no longer has.
func TestEveryRunbookHasAScript(t *testing.T) {
	doc, err := os.ReadFile("../../docs/runbooks.md")
	if err != nil {
		t.Fatal(err)
	}
	var sections []string
	for _, line := range strings.Split(string(doc), "\n") {
		if title, ok := strings.CutPrefix(line, "## "); ok {
			sections = append(sections, strings.TrimSpace(title))
		}
	}
	if len(sections) < 10 {
		t.Fatalf("found only %d sections in the runbook", len(sections))
	}
	named := map[string][]string{} // section -> scripts
	scripts, err := filepath.Glob("testdata/script/*.txtar")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range scripts {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			title, ok := strings.CutPrefix(line, "# Runbook: ")
			if !ok {
				break
			}
			named[strings.TrimSpace(title)] = append(named[strings.TrimSpace(title)], filepath.Base(name))
		}
	}
	for _, s := range sections {
		_, exempt := runbooksNotScripted[s]
		switch {
		case exempt && len(named[s]) > 0:
			t.Errorf("runbook %q is performed by %v and also listed as not scripted", s, named[s])
		case !exempt && len(named[s]) == 0:
			t.Errorf("runbook %q is performed by no script (want a first line \"# Runbook: %s\")", s, s)
		}
	}
	for title, names := range named {
		if !slices.Contains(sections, title) {
			t.Errorf("%v name the runbook %q, which docs/runbooks.md does not have", names, title)
		}
	}
	for title := range runbooksNotScripted {
		if !slices.Contains(sections, title) {
			t.Errorf("runbooksNotScripted lists %q, which docs/runbooks.md does not have", title)
		}
	}
}
