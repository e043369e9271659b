package span

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"unicode/utf8"
)

// MaxCanonicalDepth is how deeply Canonicalize and AppendCanonical let arrays
// and objects nest; the outermost array or object is level 1. Deeper input is
// a *SyntaxError "nesting deeper than 32". (Parse has its own, configurable,
// Limits.MaxDepth.)
const MaxCanonicalDepth = 32

// Canonicalize returns the RFC 8785 canonical form of the JSON text b, or a
// *SyntaxError when b is not strict RFC 8259 JSON, holds duplicate member
// names, lone surrogates or numbers beyond float64, or nests deeper than
// MaxCanonicalDepth. Any JSON value may be at the top level.
func Canonicalize(b []byte) ([]byte, error) {
	var scratch [1024]byte
	p := parser{in: b, maxDepth: MaxCanonicalDepth, maxMembers: math.MaxInt, deferTop: true}
	scanned, err := p.document(scratch[:0])
	if err != nil {
		return nil, err
	}
	return p.finish(make([]byte, 0, len(scanned)), scanned), nil
}

// AppendCanonical appends the RFC 8785 canonical form of the JSON text b to
// dst and returns the extended slice; on error it returns dst unchanged and a
// *SyntaxError, as Canonicalize does. dst must not overlap b. Given a dst
// with room for the output it allocates nothing for typical input (objects
// of up to 16 members and 1 KiB); reusing one buffer across calls gets
// there.
func AppendCanonical(dst, b []byte) ([]byte, error) {
	p := parser{in: b, maxDepth: MaxCanonicalDepth, maxMembers: math.MaxInt}
	out, err := p.document(dst)
	if err != nil {
		return dst, err
	}
	return out, nil
}

// A member is one member of an object being canonicalized, by its place in
// the output: out[start:colon] is its canonical name followed by ':',
// out[colon:end] its canonical value.
type member struct {
	start, colon, end int
	in                int // input offset of the name, for messages
	// A plain name is ASCII without escapes, so its bytes order it; prefix
	// holds its first eight bytes, big-endian, zero-padded, which decide
	// most comparisons.
	plain  bool
	prefix uint64
	// rawValue marks a string value without escapes: its canonical bytes,
	// quotes aside, are its value.
	rawValue bool
}

func prefix(name []byte) uint64 {
	var x uint64
	for i := 0; i < 8; i++ {
		x <<= 8
		if i < len(name) {
			x |= uint64(name[i])
		}
	}
	return x
}

// compareMembers orders members by name, as RFC 8785 wants.
func compareMembers(out []byte, a, b *member) int {
	if a.plain && b.plain {
		switch {
		case a.prefix < b.prefix:
			return -1
		case a.prefix > b.prefix:
			return 1
		}
		return bytes.Compare(key(out, *a), key(out, *b))
	}
	return compareKeys(key(out, *a), key(out, *b))
}

// parser is a single-pass parser of one JSON text that appends the
// canonical form to a slice threaded through its functions (out, not kept
// in the parser, so that a caller's stack buffer stays on the stack). It is
// iterative, with an explicit stack of open arrays and objects, for the same
// reason: Go's escape analysis gives up on slices passed through recursion.
// An object is written in input order and its members sorted in place when
// it closes (see sortMembers), but for the top-level object under deferTop.
type parser struct {
	in []byte

	depth, maxDepth int
	count           int // members seen, all objects
	maxMembers      int
	limitErrs       bool // breaches are *LimitError (Parse) rather than *SyntaxError

	// With deferTop, the members of a top-level object are not put in
	// order in the output of document: top[:ntop] (or topMore, when they
	// do not fit) lists them in canonical order, and finish writes them
	// out so, saving a copy.
	deferTop bool
	topObj   bool
	top      [16]member
	ntop     int
	topMore  []member
}

// finish appends to dst the canonical form of the input given the output
// of document, and updates the places of the top-level members to the
// ones in dst.
func (p *parser) finish(dst, out []byte) []byte {
	if !p.topObj {
		return append(dst, out...)
	}
	dst = append(dst, '{')
	top := p.topMembers()
	for i := range top {
		m := &top[i]
		if i > 0 {
			dst = append(dst, ',')
		}
		shift := len(dst) - m.start
		dst = append(dst, out[m.start:m.end]...)
		m.start += shift
		m.colon += shift
		m.end += shift
	}
	return append(dst, '}')
}

// A frame is an open array or object.
type frame struct {
	object bool
	body   int // output offset of the first member
	base   int // index of the object's first member in the member stack
}

// topMembers returns the members of the top-level object.
func (p *parser) topMembers() []member {
	if p.topMore != nil {
		return p.topMore
	}
	return p.top[:p.ntop]
}

// skipWS returns the position of the first byte at or after pos that is
// not JSON whitespace.
func skipWS(in []byte, pos int) int {
	for pos < len(in) && (in[pos] <= ' ' && (in[pos] == ' ' || in[pos] == '\t' || in[pos] == '\n' || in[pos] == '\r')) {
		pos++
	}
	return pos
}

// document parses the whole input, one value between optional whitespace,
// appending its canonical form to out.
func (p *parser) document(out []byte) ([]byte, error) {
	in := p.in
	pos := skipWS(in, 0)
	if pos >= len(in) {
		return out, syntaxErr(pos, msgEmpty)
	}
	var frameBuf [8]frame
	frames := frameBuf[:0]
	var memberBuf [16]member
	ms := memberBuf[:0] // members of the open objects, outermost first
	var err error

	const (
		value      = iota // a value is expected at pos (no whitespace)
		afterValue        // a value has been written
		key               // a member name is expected at pos (no whitespace)
	)
	state := value
	for {
		switch state {
		case value:
			if pos >= len(in) {
				return out, syntaxErr(pos, msgEOF)
			}
			state = afterValue
			switch c := in[pos]; c {
			case '"':
				var kind int
				out, pos, kind, err = str(out, in, pos)
				if kind&strEscaped == 0 && len(frames) > 0 && frames[len(frames)-1].object {
					ms[len(ms)-1].rawValue = true
				}
			case '{', '[':
				if err := p.enter(pos); err != nil {
					return out, err
				}
				out = append(out, c)
				pos = skipWS(in, pos+1)
				if pos < len(in) && in[pos] == c+2 { // '}' or ']'
					pos++
					p.depth--
					out = append(out, c+2)
					break
				}
				frames = append(frames, frame{object: c == '{', body: len(out), base: len(ms)})
				if c == '{' {
					state = key
				} else {
					state = value
				}
			case 't':
				pos, err = literal(in, pos, "true")
				out = append(out, "true"...)
			case 'f':
				pos, err = literal(in, pos, "false")
				out = append(out, "false"...)
			case 'n':
				pos, err = literal(in, pos, "null")
				out = append(out, "null"...)
			default:
				if c == '-' || c >= '0' && c <= '9' {
					out, pos, err = number(out, in, pos)
				} else {
					err = invalidChar(in, pos, "looking for beginning of value")
				}
			}
			if err != nil {
				return out, err
			}

		case key:
			if pos >= len(in) {
				return out, syntaxErr(pos, msgEOF)
			}
			if in[pos] != '"' {
				return out, invalidChar(in, pos, "looking for beginning of object key string")
			}
			p.count++
			if p.count > p.maxMembers {
				return out, &LimitError{Limit: LimitMembers, Max: p.maxMembers, Got: p.count}
			}
			// Fill the member in place: building it aside and copying it
			// costs store-forwarding stalls.
			ms = append(ms, member{start: len(out), in: pos})
			m := &ms[len(ms)-1]
			var kind int
			if out, pos, kind, err = str(out, in, pos); err != nil {
				return out, err
			}
			if kind == 0 {
				m.plain = true
				// The input holds the name as it is, and more bytes after it.
				n := pos - m.in - 2
				if at := m.in + 1; at+8 <= len(in) {
					m.prefix = binary.BigEndian.Uint64(in[at:])
					if n < 8 {
						m.prefix = m.prefix >> (64 - 8*n) << (64 - 8*n)
					}
				} else {
					m.prefix = prefix(in[at : at+n])
				}
			}
			pos = skipWS(in, pos)
			if pos >= len(in) {
				return out, syntaxErr(pos, msgEOF)
			}
			if in[pos] != ':' {
				return out, invalidChar(in, pos, "after object key")
			}
			out = append(out, ':')
			m.colon = len(out)
			pos = skipWS(in, pos+1)
			state = value

		case afterValue:
			if len(frames) == 0 {
				pos = skipWS(in, pos)
				if pos < len(in) {
					return out, invalidChar(in, pos, "after top-level value")
				}
				return out, nil
			}
			f := &frames[len(frames)-1]
			if f.object {
				ms[len(ms)-1].end = len(out)
			}
			pos = skipWS(in, pos)
			if pos >= len(in) {
				return out, syntaxErr(pos, msgEOF)
			}
			switch c := in[pos]; {
			case c == ',':
				comma := pos
				pos = skipWS(in, pos+1)
				if pos < len(in) && (in[pos] == '}' && f.object || in[pos] == ']' && !f.object) {
					if f.object {
						return out, syntaxErr(comma, msgTrailingComma+" in object")
					}
					return out, syntaxErr(comma, msgTrailingComma+" in array")
				}
				out = append(out, ',')
				if f.object {
					state = key
				} else {
					state = value
				}
			case c == '}' && f.object:
				pos++
				if len(frames) == 1 && p.deferTop {
					var sorted []member
					if n := len(ms); n <= len(p.top) {
						p.ntop = n
						sorted = p.top[:n]
					} else {
						p.topMore = make([]member, n)
						sorted = p.topMore
					}
					if err := sortMembers(out, f.body, ms, sorted); err != nil {
						return out, err
					}
					p.topObj = true
				} else if err := sortMembers(out, f.body, ms[f.base:], nil); err != nil {
					return out, err
				}
				ms = ms[:f.base]
				out = append(out, '}')
				frames = frames[:len(frames)-1]
				p.depth--
			case c == ']' && !f.object:
				pos++
				out = append(out, ']')
				frames = frames[:len(frames)-1]
				p.depth--
			case f.object:
				return out, invalidChar(in, pos, "after object key:value pair")
			default:
				return out, invalidChar(in, pos, "after array element")
			}
		}
	}
}

// literal checks the literal lit (true, false, null) at in[pos:] and
// returns the position after it.
func literal(in []byte, pos int, lit string) (int, error) {
	for i := 0; i < len(lit); i++ {
		if pos+i >= len(in) {
			return pos, syntaxErr(len(in), msgEOF)
		}
		if in[pos+i] != lit[i] {
			return pos, invalidChar(in, pos+i, "in literal "+lit+" (expecting "+quoteChar(rune(lit[i]))+")")
		}
	}
	return pos + len(lit), nil
}

// enter counts one more level of nesting, opened at pos.
func (p *parser) enter(pos int) error {
	p.depth++
	if p.depth <= p.maxDepth {
		return nil
	}
	if p.limitErrs {
		return &LimitError{Limit: LimitDepth, Max: p.maxDepth, Got: p.depth}
	}
	return syntaxErr(pos, "nesting deeper than "+strconv.Itoa(p.maxDepth))
}

// key returns the canonical name of m in out, quotes excluded.
func key(out []byte, m member) []byte { return out[m.start+1 : m.colon-2] }

// sortMembers puts the members ms of the object whose members start at
// out[body:] in RFC 8785 order, rejecting duplicate names. When sorted is
// not nil (len(ms) long), it receives the members in order instead, and
// out is left as it is.
func sortMembers(out []byte, body int, ms, sorted []member) error {
	inOrder := true
	for i := 1; i < len(ms); i++ {
		a, b := &ms[i-1], &ms[i]
		if a.plain && b.plain && a.prefix < b.prefix {
			continue
		}
		c := compareMembers(out, a, b)
		if c == 0 {
			return duplicate(out, ms[i])
		}
		if c > 0 {
			inOrder = false
			break
		}
	}
	if inOrder {
		copy(sorted, ms)
		return nil
	}

	// Sort indexes, stably: equal names stay in input order.
	var ordBuf [16]int
	ord := ordBuf[:0]
	if len(ms) > len(ordBuf) {
		ord = make([]int, 0, len(ms))
	}
	for i := range ms {
		ord = append(ord, i)
	}
	if len(ord) <= len(ordBuf) {
		// Insertion sort, deciding on the name prefixes when it can.
		for i := 1; i < len(ord); i++ {
			k := ord[i]
			mk := &ms[k]
			j := i
			for ; j > 0; j-- {
				mj := &ms[ord[j-1]]
				if mj.plain && mk.plain && mj.prefix != mk.prefix {
					if mj.prefix < mk.prefix {
						break
					}
				} else if compareMembers(out, mj, mk) <= 0 {
					break
				}
				ord[j] = ord[j-1]
			}
			ord[j] = k
		}
	} else {
		slices.SortStableFunc(ord, func(a, b int) int { return compareMembers(out, &ms[a], &ms[b]) })
	}
	// The second of each equal pair is a duplicate; report the first one
	// in the input.
	dup := -1
	for i := 1; i < len(ord); i++ {
		a, b := &ms[ord[i-1]], &ms[ord[i]]
		if a.plain && b.plain && a.prefix != b.prefix {
			continue
		}
		if compareMembers(out, a, b) == 0 && (dup < 0 || b.in < ms[dup].in) {
			dup = ord[i]
		}
	}
	if dup >= 0 {
		return duplicate(out, ms[dup])
	}

	if sorted != nil {
		for i, k := range ord {
			sorted[i] = ms[k]
		}
		return nil
	}
	var src []byte
	region := out[body:]
	if len(region) <= 1024 {
		var tmp [1024]byte
		src = tmp[:copy(tmp[:], region)]
	} else {
		src = bytes.Clone(region)
	}
	w := body
	for i, k := range ord {
		m := ms[k]
		if i > 0 {
			out[w] = ','
			w++
		}
		w += copy(out[w:], src[m.start-body:m.end-body])
	}
	return nil
}

func duplicate(out []byte, m member) error {
	return syntaxErr(m.in, "duplicate member "+shortName(out[m.start:m.colon-1]))
}

// compareKeys orders two canonical member names (JSON string contents)
// by the UTF-16 code units of their values, as RFC 8785 §3.2.3 requires.
func compareKeys(a, b []byte) int {
	i, j := 0, 0
	for {
		if i == len(a) {
			if j == len(b) {
				return 0
			}
			return -1
		}
		if j == len(b) {
			return 1
		}
		ca, cb := a[i], b[j]
		if ca == cb && ca < utf8.RuneSelf && ca != '\\' {
			i++
			j++
			continue
		}
		ra, na := decodeCanonical(a[i:])
		rb, nb := decodeCanonical(b[j:])
		if ra != rb {
			return utf16Order(ra) - utf16Order(rb)
		}
		i += na
		j += nb
	}
}

// utf16Order maps a code point to an int whose order is that of the
// code point's first UTF-16 code unit, ties broken by the second: code
// points U+E000..U+FFFF sort after the supplementary planes, whose first
// unit is a surrogate (U+D800..U+DBFF).
func utf16Order(r rune) int {
	if r >= 0xE000 && r <= 0xFFFF {
		return int(r) + 0x200000
	}
	return int(r)
}

// decodeCanonical decodes the first character of the contents of a
// canonical JSON string.
func decodeCanonical(s []byte) (rune, int) {
	c := s[0]
	if c != '\\' {
		if c < utf8.RuneSelf {
			return rune(c), 1
		}
		return utf8.DecodeRune(s)
	}
	return decodeEscape(s)
}

// decodeEscape decodes the escape that starts s, in a canonical JSON
// string: \" \\ \b \f \n \r \t or \u00xx.
func decodeEscape[T ~string | ~[]byte](s T) (rune, int) {
	switch s[1] {
	case 'b':
		return '\b', 2
	case 'f':
		return '\f', 2
	case 'n':
		return '\n', 2
	case 'r':
		return '\r', 2
	case 't':
		return '\t', 2
	case 'u': // \u00xx
		return rune(unhex(s[4])<<4 | unhex(s[5])), 6
	}
	return rune(s[1]), 2 // \" or \\
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10
	}
	return 0xff
}

// Kinds of string, as str reports them.
const (
	strEscaped  = 1 << iota // escapes in the input, and maybe in the canonical form
	strNonASCII             // non-ASCII characters
)

// str parses the string at in[pos:] and appends its canonical form to out;
// it returns the position after the string and its kind. A string without
// escapes (kind&strEscaped == 0) is already canonical (control characters
// are not allowed raw) and is copied as it is: its bytes are its value. A
// string of kind 0 also sorts by its bytes.
func str(out, in []byte, pos int) (_ []byte, _ int, kind int, _ error) {
	i := pos + 1
	for {
		// Skip 8 plain bytes at a time.
		for i+8 <= len(in) {
			m := special(binary.LittleEndian.Uint64(in[i:]))
			if m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				break
			}
			i += 8
		}
		for i < len(in) && plain(in[i]) {
			i++
		}
		if i >= len(in) {
			return out, pos, kind, syntaxErr(len(in), msgEOF)
		}
		switch c := in[i]; {
		case c == '"':
			return append(out, in[pos:i+1]...), i + 1, kind, nil
		case c == '\\':
			out, i, err := strEscapes(append(out, in[pos:i]...), in, i)
			return out, i, kind | strEscaped, err
		case c < 0x20:
			return out, pos, kind, invalidChar(in, i, "in string literal")
		default:
			r, size := utf8.DecodeRune(in[i:])
			if r == utf8.RuneError && size == 1 {
				return out, pos, kind, syntaxErr(i, msgInvalidUTF8)
			}
			i += size
			kind |= strNonASCII
		}
	}
}

// plain reports a byte that stands for itself in a JSON string and in its
// canonical form: printable ASCII but '"' and '\\'.
func plain(c byte) bool { return c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf }

// special returns x, eight bytes of a string, with the high bit set in the
// byte of every '"', '\\', control character and non-ASCII byte. Bytes
// above such a byte may be marked too (borrows), but the lowest mark is
// exact: bits.TrailingZeros64(special(x))/8 is the index of the first byte
// that is not plain.
func special(x uint64) uint64 {
	const (
		ones = 0x0101010101010101
		high = 0x8080808080808080
	)
	q := x ^ (ones * '"')
	s := x ^ (ones * '\\')
	// b-1 has its high bit set when b is 0 (or >= 0x81: non-ASCII, marked
	// anyway); b-0x20 when b < 0x20 (or >= 0xA0).
	return ((q - ones) | (s - ones) | (x - ones*0x20) | x) & high
}

// strEscapes continues str from the first backslash, at i, once the string
// up to there has been written.
func strEscapes(out, in []byte, i int) ([]byte, int, error) {
	for i < len(in) {
		c := in[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			out = append(out, c)
			i++
			continue
		}
		switch {
		case c == '"':
			return append(out, '"'), i + 1, nil
		case c == '\\':
			if i+1 >= len(in) {
				return out, i, syntaxErr(len(in), msgEOF)
			}
			switch e := in[i+1]; e {
			case '"', '\\':
				out = append(out, '\\', e)
			case '/':
				out = append(out, '/')
			case 'b', 'f', 'n', 'r', 't':
				out = append(out, '\\', e)
			case 'u':
				r, n, err := unicodeEscape(in, i)
				if err != nil {
					return out, i, err
				}
				out = appendCanonicalRune(out, r)
				i += n
				continue
			default:
				return out, i, invalidChar(in, i+1, "in string escape code")
			}
			i += 2
		case c < 0x20:
			return out, i, invalidChar(in, i, "in string literal")
		default:
			r, size := utf8.DecodeRune(in[i:])
			if r == utf8.RuneError && size == 1 {
				return out, i, syntaxErr(i, msgInvalidUTF8)
			}
			out = append(out, in[i:i+size]...)
			i += size
		}
	}
	return out, i, syntaxErr(len(in), msgEOF)
}

// unicodeEscape decodes the \uXXXX escape at i, with its low surrogate if it
// is a high one, and returns the code point and the bytes read.
func unicodeEscape(in []byte, i int) (rune, int, error) {
	r, err := hex4(in, i+2)
	if err != nil {
		return 0, 0, err
	}
	switch {
	case r < 0xD800 || r > 0xDFFF:
		return r, 6, nil
	case r >= 0xDC00:
		return 0, 0, syntaxErr(i, "lone surrogate "+string(in[i:i+6])+" in string literal")
	}
	// A high surrogate: a low one must follow.
	if i+6 >= len(in) || i+7 >= len(in) && in[i+6] == '\\' {
		return 0, 0, syntaxErr(len(in), msgEOF)
	}
	if in[i+6] != '\\' || in[i+7] != 'u' {
		return 0, 0, syntaxErr(i, "lone surrogate "+string(in[i:i+6])+" in string literal")
	}
	r2, err := hex4(in, i+8)
	if err != nil {
		return 0, 0, err
	}
	if r2 < 0xDC00 || r2 > 0xDFFF {
		return 0, 0, syntaxErr(i, "lone surrogate "+string(in[i:i+6])+" in string literal")
	}
	return 0x10000 + (r-0xD800)<<10 + (r2 - 0xDC00), 12, nil
}

// hex4 decodes the four hex digits at i.
func hex4(in []byte, i int) (rune, error) {
	var r rune
	for k := i; k < i+4; k++ {
		if k >= len(in) {
			return 0, syntaxErr(len(in), msgEOF)
		}
		d := unhex(in[k])
		if d == 0xff {
			return 0, invalidChar(in, k, "in \\u hexadecimal character escape")
		}
		r = r<<4 | rune(d)
	}
	return r, nil
}

// appendCanonicalRune appends r as RFC 8785 writes it inside a string.
func appendCanonicalRune(dst []byte, r rune) []byte {
	switch {
	case r >= 0x20 && r < utf8.RuneSelf && r != '"' && r != '\\':
		return append(dst, byte(r))
	case r >= utf8.RuneSelf:
		return utf8.AppendRune(dst, r)
	}
	switch r {
	case '"', '\\':
		return append(dst, '\\', byte(r))
	case '\b':
		return append(dst, '\\', 'b')
	case '\f':
		return append(dst, '\\', 'f')
	case '\n':
		return append(dst, '\\', 'n')
	case '\r':
		return append(dst, '\\', 'r')
	case '\t':
		return append(dst, '\\', 't')
	}
	const hex = "0123456789abcdef"
	return append(dst, '\\', 'u', '0', '0', hex[r>>4], hex[r&0xf])
}
