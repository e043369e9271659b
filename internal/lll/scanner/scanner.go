// Package scanner turns .lll source text into tokens.
//
// Scan returns every token of a file, comments dropped, each with its
// position, its end, its literal text and whether a newline precedes it
// (the parser uses that to end statements: one statement a line, as in the
// examples of the language). Errors do not stop the scan: each is recorded
// in the returned diag.List and scanning resumes after the bad character.
//
// The lexical grammar is in docs/lll.md. In short: comments run from # to
// the end of the line; identifiers are letters, digits and _ not starting
// with a digit; strings are double-quoted with the escapes \" \\ \n \t \r
// and \uXXXX; numbers are decimal (60, 0.4); durations are numbers with a
// unit, chained (250ms, 6h, 1h30m, 168h).
package scanner

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/loglineos/loglineos/internal/lll/diag"
	"github.com/loglineos/loglineos/internal/lll/token"
)

// Token is one scanned token.
type Token struct {
	Kind token.Kind
	Pos  token.Pos
	End  token.Pos
	// Lit is the source text of the token.
	Lit string
	// Value is the decoded value of a STRING (without quotes, escapes
	// resolved); for other kinds it equals Lit.
	Value string
	// NewlineBefore reports whether a newline separates this token from
	// the previous one (always true for the first token).
	NewlineBefore bool
}

type scanner struct {
	file string
	src  []byte
	off  int
	line int
	col  int
	errs diag.List
}

// MaxSource is the largest source file Scan takes (256 KiB); a .lll file is
// a page of policy, and the bound keeps the cost of any input small.
const MaxSource = 256 << 10

// Scan scans src, the text of file, and returns its tokens, ending with an
// EOF token, and the diagnostics found.
func Scan(file string, src []byte) ([]Token, diag.List) {
	if len(src) > MaxSource {
		var errs diag.List
		p := token.Pos{File: file, Line: 1, Col: 1}
		errs.Add(p, p, diag.TooLarge, "source file is %d bytes; a .lll file may have at most %d", len(src), MaxSource)
		return []Token{{Kind: token.EOF, Pos: p, End: p, NewlineBefore: true}}, errs
	}
	s := &scanner{file: file, src: src, line: 1, col: 1}
	toks := make([]Token, 0, len(src)/3+8)
	nl := true
	for {
		n := s.skipSpace()
		nl = nl || n
		t := s.next()
		if t.Kind == token.COMMENT {
			continue
		}
		if t.Kind == token.ILLEGAL {
			continue
		}
		t.NewlineBefore = nl
		nl = false
		toks = append(toks, t)
		if t.Kind == token.EOF {
			break
		}
	}
	s.errs.Sort()
	return toks, s.errs
}

func (s *scanner) pos() token.Pos {
	return token.Pos{File: s.file, Offset: s.off, Line: s.line, Col: s.col}
}

func (s *scanner) peek(k int) byte {
	if s.off+k < len(s.src) {
		return s.src[s.off+k]
	}
	return 0
}

func (s *scanner) advance(n int) {
	for i := 0; i < n && s.off < len(s.src); i++ {
		if s.src[s.off] == '\n' {
			s.line++
			s.col = 1
		} else {
			s.col++
		}
		s.off++
	}
}

// skipSpace skips blanks and comments and reports whether a newline was seen.
func (s *scanner) skipSpace() bool {
	nl := false
	for s.off < len(s.src) {
		switch c := s.src[s.off]; c {
		case '\n':
			nl = true
			s.advance(1)
		case ' ', '\t', '\r':
			s.advance(1)
		case '#':
			for s.off < len(s.src) && s.src[s.off] != '\n' {
				s.advance(1)
			}
		default:
			return nl
		}
	}
	return nl
}

func isLetter(c byte) bool { return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool  { return '0' <= c && c <= '9' }

func (s *scanner) errorf(pos, end token.Pos, code diag.Code, format string, args ...any) {
	s.errs.Add(pos, end, code, format, args...)
}

func (s *scanner) tok(k token.Kind, start token.Pos) Token {
	lit := string(s.src[start.Offset:s.off])
	return Token{Kind: k, Pos: start, End: s.pos(), Lit: lit, Value: lit}
}

func (s *scanner) next() Token {
	start := s.pos()
	if s.off >= len(s.src) {
		return Token{Kind: token.EOF, Pos: start, End: start}
	}
	c := s.src[s.off]
	switch {
	case isLetter(c):
		for s.off < len(s.src) && (isLetter(s.src[s.off]) || isDigit(s.src[s.off])) {
			s.advance(1)
		}
		t := s.tok(token.IDENT, start)
		t.Kind = token.Lookup(t.Lit)
		return t
	case isDigit(c):
		return s.number(start)
	case c == '"':
		return s.str(start)
	}
	two := func(k token.Kind) Token { s.advance(2); return s.tok(k, start) }
	one := func(k token.Kind) Token { s.advance(1); return s.tok(k, start) }
	switch c {
	case '{':
		return one(token.LBRACE)
	case '}':
		return one(token.RBRACE)
	case '[':
		return one(token.LBRACK)
	case ']':
		return one(token.RBRACK)
	case '(':
		return one(token.LPAREN)
	case ')':
		return one(token.RPAREN)
	case ':':
		return one(token.COLON)
	case ',':
		return one(token.COMMA)
	case ';':
		return one(token.SEMI)
	case '?':
		return one(token.QUESTION)
	case '+':
		return one(token.ADD)
	case '-':
		return one(token.SUB)
	case '*':
		return one(token.MUL)
	case '.':
		if s.peek(1) == '.' && s.peek(2) == '.' {
			s.advance(3)
			return s.tok(token.ELLIPSIS, start)
		}
		if s.peek(1) == '.' {
			return two(token.RANGE)
		}
		return one(token.PERIOD)
	case '=':
		if s.peek(1) == '=' {
			return two(token.EQL)
		}
		t := one(token.COLON)
		s.errorf(start, t.End, diag.ForeignOperator, "unexpected '='; give a value with ':' (key: value) and compare with '=='")
		return t
	case '!':
		if s.peek(1) == '=' {
			return two(token.NEQ)
		}
		t := one(token.NOT)
		s.errorf(start, t.End, diag.ForeignOperator, "unexpected '!'; negation is written 'not'")
		return t
	case '<':
		if s.peek(1) == '=' {
			return two(token.LEQ)
		}
		return one(token.LSS)
	case '>':
		if s.peek(1) == '=' {
			return two(token.GEQ)
		}
		return one(token.GTR)
	case '&':
		if s.peek(1) == '&' {
			t := two(token.AND)
			s.errorf(start, t.End, diag.ForeignOperator, "unexpected '&&'; conjunction is written 'and'")
			return t
		}
	case '|':
		if s.peek(1) == '|' {
			t := two(token.OR)
			s.errorf(start, t.End, diag.ForeignOperator, "unexpected '||'; disjunction is written 'or'")
			return t
		}
		return one(token.PIPE)
	case '/':
		if s.peek(1) == '/' {
			s.advance(2)
			for s.off < len(s.src) && s.src[s.off] != '\n' {
				s.advance(1)
			}
			s.errorf(start, s.pos(), diag.ForeignOperator, "comments start with '#', not '//'")
			return Token{Kind: token.COMMENT}
		}
		return one(token.QUO)
	case '\'':
		s.advance(1)
		s.errorf(start, s.pos(), diag.IllegalChar, "strings are written in double quotes (\"...\"), not single quotes")
		return Token{Kind: token.ILLEGAL}
	}
	r, size := utf8.DecodeRune(s.src[s.off:])
	s.advance(size)
	if r == utf8.RuneError && size <= 1 {
		s.errorf(start, s.pos(), diag.IllegalChar, "invalid UTF-8 byte 0x%02x", c)
	} else {
		s.errorf(start, s.pos(), diag.IllegalChar, "illegal character %q", r)
	}
	return Token{Kind: token.ILLEGAL}
}

func (s *scanner) digits() {
	for s.off < len(s.src) && isDigit(s.src[s.off]) {
		s.advance(1)
	}
}

func (s *scanner) number(start token.Pos) Token {
	s.digits()
	if s.peek(0) == '.' && isDigit(s.peek(1)) {
		s.advance(1)
		s.digits()
	}
	if !isLetter(s.peek(0)) {
		return s.tok(token.NUMBER, start)
	}
	// A duration: number unit { number unit }; units longest first.
	durationUnits := [...]string{"ms", "s", "m", "h"}
	for {
		unit := ""
		for _, u := range durationUnits {
			if strings.HasPrefix(string(s.src[s.off:min(s.off+2, len(s.src))]), u) {
				unit = u
				break
			}
		}
		if unit == "" {
			break
		}
		s.advance(len(unit))
		if !isDigit(s.peek(0)) {
			break
		}
		s.digits()
		if s.peek(0) == '.' && isDigit(s.peek(1)) {
			s.advance(1)
			s.digits()
		}
	}
	if isLetter(s.peek(0)) || isDigit(s.peek(0)) {
		for s.off < len(s.src) && (isLetter(s.src[s.off]) || isDigit(s.src[s.off]) || s.src[s.off] == '.') {
			s.advance(1)
		}
		t := s.tok(token.NUMBER, start)
		s.errorf(start, t.End, diag.BadNumber, "malformed number or duration %q (duration units are ms, s, m, h)", t.Lit)
		t.Value = "0"
		return t
	}
	t := s.tok(token.DURATION, start)
	if _, ok := ParseDuration(t.Lit); !ok {
		s.errorf(start, t.End, diag.BadNumber, "malformed duration %q", t.Lit)
	}
	return t
}

func (s *scanner) str(start token.Pos) Token {
	s.advance(1)
	var b strings.Builder
	for {
		if s.off >= len(s.src) || s.src[s.off] == '\n' {
			t := s.tok(token.STRING, start)
			s.errorf(start, t.End, diag.UnterminatedStr, "string literal not terminated")
			t.Value = b.String()
			return t
		}
		c := s.src[s.off]
		if c == '"' {
			s.advance(1)
			break
		}
		if c != '\\' {
			r, size := utf8.DecodeRune(s.src[s.off:])
			if r == utf8.RuneError && size <= 1 {
				p := s.pos()
				s.advance(1)
				s.errorf(p, s.pos(), diag.IllegalChar, "invalid UTF-8 byte 0x%02x in string", c)
				continue
			}
			b.WriteRune(r)
			s.advance(size)
			continue
		}
		p := s.pos()
		switch e := s.peek(1); e {
		case '"', '\\', '/':
			b.WriteByte(e)
			s.advance(2)
		case 'n':
			b.WriteByte('\n')
			s.advance(2)
		case 't':
			b.WriteByte('\t')
			s.advance(2)
		case 'r':
			b.WriteByte('\r')
			s.advance(2)
		case 'u':
			hex := ""
			if s.off+6 <= len(s.src) {
				hex = string(s.src[s.off+2 : s.off+6])
			}
			v, err := strconv.ParseUint(hex, 16, 32)
			if err != nil {
				s.advance(2)
				s.errorf(p, s.pos(), diag.BadEscape, "\\u must be followed by four hexadecimal digits")
				continue
			}
			b.WriteRune(rune(v))
			s.advance(6)
		default:
			s.advance(2)
			s.errorf(p, s.pos(), diag.BadEscape, "unknown escape sequence \\%c (escapes are \\\" \\\\ \\/ \\n \\t \\r \\uXXXX)", rune(e))
		}
	}
	t := s.tok(token.STRING, start)
	t.Value = b.String()
	return t
}
