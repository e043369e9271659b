package eval

import (
	"time"

	"github.com/loglineos/loglineos/internal/lll/abi"
)

// Glob is a compiled glob pattern, matched as abi.MatchGlob (Go's
// path.Match) does.
type Glob struct {
	pat string
}

// CompileGlob compiles a pattern (see abi.ValidGlob for what is valid).
func CompileGlob(p string) *Glob { return &Glob{pat: p} }

// Match reports whether s matches the whole pattern.
func (g *Glob) Match(s string) bool { return abi.MatchGlob(g.pat, s) }

func durationOf(n int64) time.Duration { return time.Duration(n) }
func timeOf(n int64) time.Time         { return time.Unix(0, n).UTC() }
