// Package stdlib holds the .lll sources of the standard bundle, embedded:
//
//	canonical.lll  validator canonical_contract_v1, the span contract
//	policies.lll   policies trajectory_linker, quality_meter,
//	               derived_events_perf with the defaults of docs/quality.md
//	pipelines.lll  pipeline trajectory_linker, validators
//	               trajectory_quality_score and quality_meter_v1_1
//	schemas.lll    schemas of the span and the four derived events
//
// The canonical contract requires id, tenant, when (RFC 3339), who, did,
// this and status (non-empty strings; status one of confirmed, pending,
// rejected, cancelled, which the span schema declares too), allows
// confirmed_by (an array of strings) and data (an object), and rejects any
// other top-level member:
// a span with an unknown member is refused rather than stored with a
// member no one declared, so that what the ledger holds is exactly what
// the contract names. Apps that need more put it under data.
//
// Source names are "stdlib/<file>", the positions violations report
// (stdlib/canonical.lll:6:3).
package stdlib

import (
	"crypto/ed25519"
	"embed"
	"fmt"
	"io/fs"
	"sort"

	"github.com/loglineos/loglineos/internal/bundle"
	"github.com/loglineos/loglineos/internal/lll"
	"github.com/loglineos/loglineos/internal/lll/diag"
	"github.com/loglineos/loglineos/internal/lll/ir"
)

//go:embed *.lll
var files embed.FS

// Sources returns the standard sources, sorted by name.
func Sources() []lll.Source {
	names, _ := fs.Glob(files, "*.lll")
	sort.Strings(names)
	out := make([]lll.Source, 0, len(names))
	for _, n := range names {
		b, _ := files.ReadFile(n)
		out = append(out, lll.Source{Name: "stdlib/" + n, Text: b})
	}
	return out
}

// Compile compiles the standard sources.
func Compile() (*ir.Program, error) {
	p, errs := lll.Compile(Sources())
	if len(errs) > 0 {
		return nil, fmt.Errorf("stdlib: %w", errs)
	}
	return p, nil
}

// Build compiles the standard sources and returns the bundle signed with key.
func Build(key ed25519.PrivateKey) ([]byte, error) {
	b, errs, err := bundle.Compile(Sources(), key, bundle.BuildOptions{})
	if len(errs) > 0 {
		return nil, fmt.Errorf("stdlib: %w", diag.List(errs))
	}
	return b, err
}
