package client_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// maxMinimalDeps bounds the packages outside the standard library that the
// smallest app (examples/minimal) links, the program and the SDK included.
const maxMinimalDeps = 40

// heavyDeps are packages an app must not link through the SDK, with the
// packages under them: the server's storage, metrics and command line.
var heavyDeps = []string{
	"github.com/cockroachdb/pebble",
	"github.com/prometheus",
	"github.com/spf13/cobra",
	"github.com/loglineos/loglineos/internal/ledger",
	"github.com/loglineos/loglineos/internal/server",
}

// lightDeps are the exceptions to heavyDeps: the ledger's formats, which
// import no storage code.
var lightDeps = []string{"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"}

// TestMinimalWeight keeps the SDK light for the apps that link it: the
// minimal program (one service account, one span, one receipt checked)
// links at most maxMinimalDeps packages outside the standard library and
// none of the server's heavy dependencies. docs/BENCHMARKS.md ("The SDK's
// weight") has the figures.
func TestMinimalWeight(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go is not on PATH: cannot list the packages examples/minimal links")
	}
	out, err := exec.Command(goTool, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "../examples/minimal").Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("go list -deps ../examples/minimal: %v\n%s", err, stderr)
	}
	deps := strings.Fields(string(out))
	if len(deps) > maxMinimalDeps {
		t.Errorf("examples/minimal links %d packages outside the standard library, want at most %d:\n%s", len(deps), maxMinimalDeps, strings.Join(deps, "\n"))
	}
	for _, d := range deps {
		if heavy(d) {
			t.Errorf("examples/minimal links %s", d)
		}
	}
}

// heavy reports whether pkg is one of heavyDeps or under one, and not one
// of lightDeps or under one.
func heavy(pkg string) bool {
	under := func(roots []string) bool {
		return slices.ContainsFunc(roots, func(r string) bool { return pkg == r || strings.HasPrefix(pkg, r+"/") })
	}
	return under(heavyDeps) && !under(lightDeps)
}
