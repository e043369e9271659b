package ledgerfmt

import (
	"encoding/base64"
	"strconv"
	"unicode/utf8"
)

// AppendJSON appends the receipt's JSON encoding to dst: the same bytes as
// encoding/json.Marshal, without reflection (the ingest answer carries one
// receipt a span).
func (r *Receipt) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"op":`...)
	dst = AppendJSONString(dst, r.Op)
	if r.SpanID != "" {
		dst = append(dst, `,"span_id":`...)
		dst = AppendJSONString(dst, r.SpanID)
	}
	if r.Tenant != "" {
		dst = append(dst, `,"tenant":`...)
		dst = AppendJSONString(dst, r.Tenant)
	}
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendUint(dst, r.Seq, 10)
	dst = append(dst, `,"leaf":"`...)
	dst = base64.StdEncoding.AppendEncode(dst, r.Leaf[:])
	dst = append(dst, `","batch":{"first":`...)
	dst = strconv.AppendUint(dst, r.Batch.First, 10)
	dst = append(dst, `,"size":`...)
	dst = strconv.AppendUint(dst, r.Batch.Size, 10)
	dst = append(dst, `,"root":"`...)
	dst = base64.StdEncoding.AppendEncode(dst, r.Batch.Root[:])
	dst = append(dst, '"')
	if len(r.Batch.Path) > 0 {
		dst = append(dst, `,"path":[`...)
		for i := range r.Batch.Path {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, '"')
			dst = base64.StdEncoding.AppendEncode(dst, r.Batch.Path[i][:])
			dst = append(dst, '"')
		}
		dst = append(dst, ']')
	}
	dst = append(dst, `},"jti":`...)
	dst = AppendJSONString(dst, r.JTI)
	dst = append(dst, `,"kid":`...)
	dst = AppendJSONString(dst, r.KID)
	dst = append(dst, `,"sig":`...)
	if r.Sig == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, r.Sig)
		dst = append(dst, '"')
	}
	dst = append(dst, `,"ts":"`...)
	dst = r.TS.UTC().AppendFormat(dst, TimeLayout)
	return append(dst, `"}`...)
}

// AppendJSONString appends s as a JSON string exactly as encoding/json
// writes it: HTML-sensitive characters, U+2028 and U+2029 escaped, invalid
// UTF-8 replaced by U+FFFD.
func AppendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' {
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
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
