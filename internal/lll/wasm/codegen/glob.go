package codegen

import (
	"fmt"
	"path"
	"slices"
	"unicode/utf8"

	"github.com/loglineos/loglineos/internal/lll/wasm/enc"
)

// A glob (the constant pattern of matches) is compiled to code that does
// what Go's path.Match does with it, step for step, as the interpreter
// matches (eval.Glob, abi.MatchGlob): the pattern is cut into chunks as
// path.Match's scanChunk cuts it (a run of stars, then what follows up to
// the next star outside a class), each chunk becomes a function
// (ptr, len) -> the length left after it matched at ptr, or -1, and the
// pattern a function (ptr, len) -> i32 that tries each chunk at the
// current place and, after a star, at each later byte up to a '/', taking
// the first place where the chunk matches (for the last chunk, the first
// where it matches to the end), as path.Match does. Within a chunk, a
// literal byte matches that byte; ? one rune that does not start with '/';
// a class one rune in (or, negated, not in) its ranges, runes decoded as
// utf8.DecodeRuneInString decodes them (an invalid byte is U+FFFD, one
// byte long).

// globElem is one element of a chunk.
type globElem struct {
	class  bool       // a class; else a literal byte, or ? (any)
	any    bool       // ?
	b      byte       // the literal byte
	neg    bool       // a negated class
	ranges [][2]int32 // the class's ranges, lo and hi runes
}

// globChunk is a chunk of a pattern: whether stars precede it, and its
// elements (none: a trailing star).
type globChunk struct {
	star  bool
	elems []globElem
}

// parseGlob cuts p into chunks as path.Match does. It fails for a pattern
// path.Match finds malformed (the checker refuses those).
func parseGlob(p string) ([]globChunk, error) {
	if _, err := path.Match(p, ""); err != nil {
		return nil, fmt.Errorf("malformed glob %q", p)
	}
	var chunks []globChunk
	for len(p) > 0 {
		var ch globChunk
		for len(p) > 0 && p[0] == '*' {
			p, ch.star = p[1:], true
		}
		// scanChunk: the chunk ends at a star outside a class.
		end, inrange := len(p), false
	scan:
		for i := 0; i < len(p); i++ {
			switch p[i] {
			case '\\':
				if i+1 < len(p) {
					i++
				}
			case '[':
				inrange = true
			case ']':
				inrange = false
			case '*':
				if !inrange {
					end = i
					break scan
				}
			}
		}
		elems, err := parseChunk(p[:end])
		if err != nil {
			return nil, err
		}
		ch.elems, p = elems, p[end:]
		chunks = append(chunks, ch)
	}
	return chunks, nil
}

// parseChunk reads a chunk's elements as matchChunk reads them.
func parseChunk(c string) ([]globElem, error) {
	bad := fmt.Errorf("malformed chunk %q", c)
	var elems []globElem
	for len(c) > 0 {
		switch c[0] {
		case '[':
			e := globElem{class: true}
			c = c[1:]
			if len(c) > 0 && c[0] == '^' {
				e.neg, c = true, c[1:]
			}
			for {
				if len(c) > 0 && c[0] == ']' && len(e.ranges) > 0 {
					c = c[1:]
					break
				}
				var lo, hi rune
				var ok bool
				if lo, c, ok = globEsc(c); !ok {
					return nil, bad
				}
				hi = lo
				if c[0] == '-' {
					if hi, c, ok = globEsc(c[1:]); !ok {
						return nil, bad
					}
				}
				e.ranges = append(e.ranges, [2]int32{lo, hi})
			}
			elems = append(elems, e)
		case '?':
			elems, c = append(elems, globElem{any: true}), c[1:]
		case '\\':
			if len(c) < 2 {
				return nil, bad
			}
			elems, c = append(elems, globElem{b: c[1]}), c[2:]
		default:
			elems, c = append(elems, globElem{b: c[0]}), c[1:]
		}
	}
	return elems, nil
}

// globEsc reads one rune of a class as getEsc does.
func globEsc(c string) (rune, string, bool) {
	if len(c) == 0 || c[0] == '-' || c[0] == ']' {
		return 0, c, false
	}
	if c[0] == '\\' {
		if c = c[1:]; len(c) == 0 {
			return 0, c, false
		}
	}
	r, n := utf8.DecodeRuneInString(c)
	if r == utf8.RuneError && n == 1 || len(c) == n {
		return 0, c, false
	}
	return r, c[n:], true
}

// glob returns the index of the function (ptr, len) -> i32 that matches
// the string at ptr against the pattern p as path.Match does, adding it
// (its chunks before it, and the rune decoder at its first use) to the
// module.
func (g *gen) glob(p string) (uint32, error) {
	if i, ok := g.globs[p]; ok {
		return i, nil
	}
	chunks, err := parseGlob(p)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	typ := g.funcType(enc.FuncType{Params: []enc.ValType{enc.I32, enc.I32}, Results: []enc.ValType{enc.I32}})
	fns := make([]uint32, len(chunks))
	for k, ch := range chunks {
		if len(ch.elems) > 0 {
			fns[k] = g.helper(typ, []enc.ValType{enc.I64, enc.I32}, g.globChunk(ch.elems))
		}
	}
	const ptr, n, t, i = 0, 1, 2, 3 // t: the length a chunk left; i: the bytes a star skips, less one
	var c enc.Code
	// take moves past a chunk that matched, leaving t bytes.
	take := func(depth uint32) {
		c.LocalGet(ptr).LocalGet(n).Op(enc.OpI32Add).LocalGet(t).Op(enc.OpI32Sub).LocalSet(ptr)
		c.LocalGet(t).LocalSet(n).Index(enc.OpBr, depth)
	}
	for k, ch := range chunks {
		last := k == len(chunks)-1
		if len(ch.elems) == 0 { // a trailing star: the rest matches unless it has a '/'
			c.I32Const(0).LocalSet(i).Block(enc.OpLoop, enc.BlockEmpty)
			c.LocalGet(i).LocalGet(n).Op(enc.OpI32GeU).Block(enc.OpIf, enc.BlockEmpty).I32Const(1).Op(enc.OpReturn).Op(enc.OpEnd)
			c.LocalGet(ptr).LocalGet(i).Op(enc.OpI32Add).Mem(enc.OpI32Load8U, 0, 0).I32Const('/').Op(enc.OpI32Eq).
				Block(enc.OpIf, enc.BlockEmpty).I32Const(0).Op(enc.OpReturn).Op(enc.OpEnd)
			c.LocalGet(i).I32Const(1).Op(enc.OpI32Add).LocalSet(i).Index(enc.OpBr, 0).Op(enc.OpEnd)
			break
		}
		// matched: whether the chunk matched in t (to the end, for the last).
		matched := func() {
			c.LocalGet(t)
			if last {
				c.Op(enc.OpI32Eqz)
			} else {
				c.I32Const(0).Op(enc.OpI32GeS)
			}
		}
		c.Block(enc.OpBlock, enc.BlockEmpty) // the next chunk
		c.LocalGet(ptr).LocalGet(n).Index(enc.OpCall, fns[k]).LocalSet(t)
		matched()
		c.Block(enc.OpIf, enc.BlockEmpty)
		take(1)
		c.Op(enc.OpEnd)
		if ch.star {
			c.I32Const(0).LocalSet(i)
			c.Block(enc.OpBlock, enc.BlockEmpty).Block(enc.OpLoop, enc.BlockEmpty)
			c.LocalGet(i).LocalGet(n).Op(enc.OpI32GeU).Index(enc.OpBrIf, 1)
			c.LocalGet(ptr).LocalGet(i).Op(enc.OpI32Add).Mem(enc.OpI32Load8U, 0, 0).I32Const('/').Op(enc.OpI32Eq).Index(enc.OpBrIf, 1)
			c.LocalGet(ptr).LocalGet(i).Op(enc.OpI32Add).I32Const(1).Op(enc.OpI32Add)
			c.LocalGet(n).LocalGet(i).Op(enc.OpI32Sub).I32Const(1).Op(enc.OpI32Sub)
			c.Index(enc.OpCall, fns[k]).LocalSet(t)
			matched()
			c.Block(enc.OpIf, enc.BlockEmpty)
			take(3)
			c.Op(enc.OpEnd)
			c.LocalGet(i).I32Const(1).Op(enc.OpI32Add).LocalSet(i).Index(enc.OpBr, 0)
			c.Op(enc.OpEnd).Op(enc.OpEnd)
		}
		c.I32Const(0).Op(enc.OpReturn)
		c.Op(enc.OpEnd)
	}
	c.LocalGet(n).Op(enc.OpI32Eqz)
	fn := g.helper(typ, []enc.ValType{enc.I32, enc.I32}, c)
	if g.globs == nil {
		g.globs = map[string]uint32{}
	}
	g.globs[p] = fn
	return fn, nil
}

// globChunk returns the body of a chunk's function (ptr, len) -> i32: the
// length left after the elements matched at ptr, or -1.
func (g *gen) globChunk(elems []globElem) enc.Code {
	const ptr, n, dec, r = 0, 1, 2, 3 // dec: width<<32 | rune; r: the rune
	var c enc.Code
	fail := func() { c.Block(enc.OpIf, enc.BlockEmpty).I32Const(-1).Op(enc.OpReturn).Op(enc.OpEnd) }
	advance := func(width func()) {
		width()
		c.LocalGet(ptr).Op(enc.OpI32Add).LocalSet(ptr)
		c.LocalGet(n)
		width()
		c.Op(enc.OpI32Sub).LocalSet(n)
	}
	decoded := func() { c.LocalGet(dec).I64Const(32).Op(enc.OpI64ShrU).Op(enc.OpI32WrapI64) }
	for _, e := range elems {
		c.LocalGet(n).Op(enc.OpI32Eqz)
		fail()
		switch {
		case e.class:
			c.LocalGet(ptr).LocalGet(n).Index(enc.OpCall, g.decodeRune()).LocalSet(dec)
			c.LocalGet(dec).Op(enc.OpI32WrapI64).LocalSet(r)
			advance(decoded)
			for k, rg := range e.ranges {
				c.LocalGet(r).I32Const(rg[0]).Op(enc.OpI32GeS).LocalGet(r).I32Const(rg[1]).Op(enc.OpI32LeS).Op(enc.OpI32And)
				if k > 0 {
					c.Op(enc.OpI32Or)
				}
			}
			if !e.neg {
				c.Op(enc.OpI32Eqz)
			}
			fail()
		case e.any:
			c.LocalGet(ptr).Mem(enc.OpI32Load8U, 0, 0).I32Const('/').Op(enc.OpI32Eq)
			fail()
			c.LocalGet(ptr).LocalGet(n).Index(enc.OpCall, g.decodeRune()).LocalSet(dec)
			advance(decoded)
		default:
			c.LocalGet(ptr).Mem(enc.OpI32Load8U, 0, 0).I32Const(int32(e.b)).Op(enc.OpI32Ne)
			fail()
			advance(func() { c.I32Const(1) })
		}
	}
	c.LocalGet(n)
	return c
}

// decodeRune returns the index of the function (ptr, len > 0) -> i64
// width<<32 | rune that decodes the first rune at ptr as
// utf8.DecodeRuneInString does (an invalid or short sequence is
// U+FFFD of width 1), adding it at its first use.
func (g *gen) decodeRune() uint32 {
	if g.decodeFn != 0 {
		return g.decodeFn
	}
	const ptr, n, b0, size, lo, hi, r, k = 0, 1, 2, 3, 4, 5, 6, 7
	var c enc.Code
	load := func(off uint32) { c.LocalGet(ptr).Mem(enc.OpI32Load8U, 0, off) }
	ret := func(width int64) { // returns width<<32 | r
		c.LocalGet(r).Op(enc.OpI64ExtendU).I64Const(width << 32).Op(enc.OpI64Or).Op(enc.OpReturn)
	}
	invalid := func() { c.I64Const(1<<32 | utf8.RuneError).Op(enc.OpReturn) }
	load(0)
	c.LocalSet(b0)
	c.LocalGet(b0).I32Const(utf8.RuneSelf).Op(enc.OpI32LtU).Block(enc.OpIf, enc.BlockEmpty)
	c.LocalGet(b0).LocalSet(r)
	ret(1)
	c.Op(enc.OpEnd)
	// The size of the sequence and the range of its second byte, by the
	// first byte (utf8's first and acceptRanges tables).
	c.I32Const(0x80).LocalSet(lo).I32Const(0xbf).LocalSet(hi)
	for _, row := range []struct {
		from, to    int32
		size        int32
		lo, hi      int32
		invalidLead bool
	}{
		{0x80, 0xc1, 0, 0, 0, true},
		{0xc2, 0xdf, 2, 0x80, 0xbf, false},
		{0xe0, 0xe0, 3, 0xa0, 0xbf, false},
		{0xe1, 0xec, 3, 0x80, 0xbf, false},
		{0xed, 0xed, 3, 0x80, 0x9f, false},
		{0xee, 0xef, 3, 0x80, 0xbf, false},
		{0xf0, 0xf0, 4, 0x90, 0xbf, false},
		{0xf1, 0xf3, 4, 0x80, 0xbf, false},
		{0xf4, 0xf4, 4, 0x80, 0x8f, false},
		{0xf5, 0xff, 0, 0, 0, true},
	} {
		c.LocalGet(b0).I32Const(row.from).Op(enc.OpI32GeU).LocalGet(b0).I32Const(row.to).Op(enc.OpI32LeU).Op(enc.OpI32And)
		c.Block(enc.OpIf, enc.BlockEmpty)
		if row.invalidLead {
			invalid()
		} else {
			c.I32Const(row.size).LocalSet(size).I32Const(row.lo).LocalSet(lo).I32Const(row.hi).LocalSet(hi)
		}
		c.Op(enc.OpEnd)
	}
	c.LocalGet(n).LocalGet(size).Op(enc.OpI32LtU).Block(enc.OpIf, enc.BlockEmpty)
	invalid()
	c.Op(enc.OpEnd)
	// The continuation bytes: the second in [lo, hi], the others in
	// [0x80, 0xbf]; r gathers their six bits each.
	c.LocalGet(b0).I32Const(0x7f).LocalGet(size).Op(enc.OpI32ShrU).Op(enc.OpI32And).LocalSet(r) // the lead's payload
	for j := uint32(1); j < 4; j++ {
		if j > 1 {
			c.I32Const(0x80).LocalSet(lo).I32Const(0xbf).LocalSet(hi)
		}
		c.LocalGet(size).I32Const(int32(j)).Op(enc.OpI32GtU).Block(enc.OpIf, enc.BlockEmpty)
		load(j)
		c.LocalSet(k)
		c.LocalGet(k).LocalGet(lo).Op(enc.OpI32LtU).LocalGet(k).LocalGet(hi).Op(enc.OpI32GtU).Op(enc.OpI32Or).Block(enc.OpIf, enc.BlockEmpty)
		invalid()
		c.Op(enc.OpEnd)
		c.LocalGet(r).I32Const(6).Op(enc.OpI32Shl).LocalGet(k).I32Const(0x3f).Op(enc.OpI32And).Op(enc.OpI32Or).LocalSet(r)
		c.Op(enc.OpEnd)
	}
	c.LocalGet(r).Op(enc.OpI64ExtendU).LocalGet(size).Op(enc.OpI64ExtendU).I64Const(32).Op(enc.OpI64Shl).Op(enc.OpI64Or)
	typ := g.funcType(enc.FuncType{Params: []enc.ValType{enc.I32, enc.I32}, Results: []enc.ValType{enc.I64}})
	g.decodeFn = g.helper(typ, []enc.ValType{enc.I32, enc.I32, enc.I32, enc.I32, enc.I32, enc.I32}, c)
	return g.decodeFn
}

// funcType returns the index of the type t, adding it at its first use.
func (g *gen) funcType(t enc.FuncType) uint32 {
	for i, u := range g.m.Types {
		if slices.Equal(u.Params, t.Params) && slices.Equal(u.Results, t.Results) {
			return uint32(i)
		}
	}
	g.m.Types = append(g.m.Types, t)
	return uint32(len(g.m.Types) - 1)
}

// helper adds a helper function and returns its index.
func (g *gen) helper(typ uint32, locals []enc.ValType, body enc.Code) uint32 {
	g.later = append(g.later, enc.Func{Type: typ, Locals: locals, Body: body})
	g.nextFunc++
	return g.nextFunc - 1
}
