package eval

import (
	"time"
)

// Glob is a compiled glob pattern: * matches any run of characters
// (including none), ? exactly one character (rune), \ escapes the next
// character. Matching is linear in the length of the input.
type Glob struct {
	parts []globPart
}

type globPart struct {
	star bool
	one  bool
	lit  rune
}

// CompileGlob compiles a pattern (see check.ValidGlob for what is valid).
func CompileGlob(p string) *Glob {
	g := &Glob{}
	rs := []rune(p)
	for i := 0; i < len(rs); i++ {
		switch r := rs[i]; r {
		case '*':
			if n := len(g.parts); n == 0 || !g.parts[n-1].star {
				g.parts = append(g.parts, globPart{star: true})
			}
		case '?':
			g.parts = append(g.parts, globPart{one: true})
		case '\\':
			if i+1 < len(rs) {
				i++
			}
			g.parts = append(g.parts, globPart{lit: rs[i]})
		default:
			g.parts = append(g.parts, globPart{lit: r})
		}
	}
	return g
}

// Match reports whether s matches the whole pattern.
func (g *Glob) Match(s string) bool {
	rs := []rune(s)
	pi, si := 0, 0
	starP, starS := -1, 0
	for si < len(rs) {
		if pi < len(g.parts) {
			p := g.parts[pi]
			switch {
			case p.star:
				starP, starS = pi, si
				pi++
				continue
			case p.one || p.lit == rs[si]:
				pi++
				si++
				continue
			}
		}
		if starP < 0 {
			return false
		}
		starS++
		si = starS
		pi = starP + 1
	}
	for pi < len(g.parts) && g.parts[pi].star {
		pi++
	}
	return pi == len(g.parts)
}

func durationOf(n int64) time.Duration { return time.Duration(n) }
func timeOf(n int64) time.Time         { return time.Unix(0, n).UTC() }
