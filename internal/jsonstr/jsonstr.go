// Package jsonstr appends Go strings as JSON strings without reflection,
// in the two escapings LogLineOS writes: encoding/json's (Append: what the
// gateway's answers and receipts use, HTML-sensitive characters and U+2028,
// U+2029 escaped) and RFC 8785's canonical one (AppendCanonical: what
// derived events use, so that they are the same bytes everywhere). Invalid
// UTF-8 becomes U+FFFD in both, escaped by Append, written as is by
// AppendCanonical.
package jsonstr

import "unicode/utf8"

// Append appends s as a JSON string exactly as encoding/json writes it.
func Append(dst []byte, s string) []byte { return appendString(dst, s, true) }

// AppendCanonical appends s as a JSON string escaped as RFC 8785 requires:
// only '"', '\\' and control characters are escaped.
func AppendCanonical(dst []byte, s string) []byte { return appendString(dst, s, false) }

func appendString(dst []byte, s string, html bool) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && (!html || (b != '<' && b != '>' && b != '&')) {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case c == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			if html {
				dst = append(dst, `\ufffd`...)
			} else {
				dst = append(dst, "\ufffd"...)
			}
		case html && (c == '\u2028' || c == '\u2029'):
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[c&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	return append(append(dst, s[start:]...), '"')
}
