package span

import (
	"fmt"
	"strconv"
	"unicode/utf8"
)

// A SyntaxError reports malformed JSON: text that is not RFC 8259 JSON, or
// that is JSON outside what RFC 8785 can canonicalize (duplicate member
// names, lone surrogates, numbers beyond float64). Offset is the 0-based
// index of the offending byte in the input (the length of the input when the
// input ended too early). Msg says what is wrong, without the offset; the
// messages are listed in the package documentation and are stable.
type SyntaxError struct {
	Offset int64
	Msg    string
}

func (e *SyntaxError) Error() string {
	return e.Msg + " at byte " + strconv.FormatInt(e.Offset, 10)
}

// Names of the limits a LimitError reports.
const (
	LimitBytes   = "bytes"   // Limits.MaxBytes
	LimitMembers = "members" // Limits.MaxMembers
	LimitDepth   = "depth"   // Limits.MaxDepth
)

// A LimitError reports a span over one of its Limits. Limit is LimitBytes,
// LimitMembers or LimitDepth; Max is the limit in force. Got is the length of
// the input for LimitBytes; for LimitMembers and LimitDepth decoding stops at
// the first member or level over the limit, so Got is Max+1.
type LimitError struct {
	Limit string
	Max   int
	Got   int
}

func (e *LimitError) Error() string {
	switch e.Limit {
	case LimitBytes:
		return fmt.Sprintf("span is %d bytes, over the limit of %d", e.Got, e.Max)
	case LimitMembers:
		return fmt.Sprintf("span has more than %d members", e.Max)
	case LimitDepth:
		return fmt.Sprintf("span nests deeper than %d levels", e.Max)
	}
	return fmt.Sprintf("span over the %s limit: %d > %d", e.Limit, e.Got, e.Max)
}

// RuleType is the FieldError rule of a member whose value has the wrong JSON
// type.
const RuleType = "type"

// A FieldError reports a top-level member of a span whose value breaks a wire
// rule: Field is the member name, Rule the rule broken (RuleType), Msg the
// whole message, e.g. `field "id" must be a string, not a number`.
type FieldError struct {
	Field string
	Rule  string
	Msg   string
}

func (e *FieldError) Error() string { return e.Msg }

// Messages of SyntaxError. Keep them stable: apps see them.
const (
	msgEOF           = "unexpected end of input (truncated?)"
	msgEmpty         = "empty input"
	msgInvalidUTF8   = "invalid UTF-8"
	msgLeadingZero   = "leading zero in number"
	msgTrailingComma = "trailing comma"
)

func syntaxErr(off int, msg string) error {
	return &SyntaxError{Offset: int64(off), Msg: msg}
}

// quoteChar renders a character for a message: 'x' when printable, U+XXXX
// otherwise.
func quoteChar(r rune) string {
	switch {
	case r == '\'':
		return `'\''`
	case r < utf8.RuneSelf && r >= 0x20 && r < 0x7f, r >= utf8.RuneSelf && strconv.IsPrint(r):
		return "'" + string(r) + "'"
	}
	return fmt.Sprintf("U+%04X", r)
}

// invalidChar reports the character at off in b, or invalid UTF-8 there, in
// the given context ("looking for beginning of value").
func invalidChar(b []byte, off int, context string) error {
	if off >= len(b) {
		return syntaxErr(len(b), msgEOF)
	}
	r := rune(b[off])
	if r >= utf8.RuneSelf {
		var size int
		r, size = utf8.DecodeRune(b[off:])
		if r == utf8.RuneError && size <= 1 {
			return syntaxErr(off, msgInvalidUTF8)
		}
	}
	return syntaxErr(off, "invalid character "+quoteChar(r)+" "+context)
}

// shortName renders a member name (canonical JSON string, quotes included)
// for a message, cut to a readable length.
func shortName(q []byte) string {
	const max = 64
	if len(q) <= max {
		return string(q)
	}
	n := max - 4
	for n > 0 && !utf8.RuneStart(q[n]) {
		n--
	}
	return string(q[:n]) + `..."`
}
