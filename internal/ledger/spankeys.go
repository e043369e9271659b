package ledger

import "unicode/utf8"

// scanKeys reads the members tenant, id and this of the JSON object body
// in one pass that checks the rest of it without decoding it: what
// json.Unmarshal(body, &k) gives a spanKeys k (a fourth of its cost on a
// span), for the bodies it can read so; false otherwise, and the caller
// decodes with encoding/json. It answers only for a valid JSON object
// whose three members, if present, are strings without escapes holding
// valid UTF-8, and whose other member names are ASCII without escapes and
// none of the three in another case (encoding/json matches names
// regardless of case, and folds some non-ASCII letters to ASCII ones). A
// span's canonical body always is. FuzzScanKeys holds it to encoding/json.
func scanKeys(body []byte) (k spanKeys, ok bool) {
	b := body
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return k, false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		i++
	} else {
		for {
			name, next, plain := scanString(b, i)
			if !plain {
				return k, false
			}
			i = skipSpace(b, next)
			if i >= len(b) || b[i] != ':' {
				return k, false
			}
			i = skipSpace(b, i+1)
			var field *string
			switch string(name) {
			case "tenant":
				field = &k.Tenant
			case "id":
				field = &k.ID
			case "this":
				field = &k.This
			default:
				if !asciiOther(name) {
					return k, false
				}
			}
			if field != nil {
				v, next, plain := scanString(b, i)
				if !plain || !utf8.Valid(v) {
					return k, false // null, another kind, escapes: encoding/json decides
				}
				*field, i = string(v), next
			} else if i, ok = skipValue(b, i, 1); !ok {
				return k, false
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return k, false
			}
			if b[i] == '}' {
				i++
				break
			}
			if b[i] != ',' {
				return k, false
			}
			i = skipSpace(b, i+1)
		}
	}
	if skipSpace(b, i) != len(b) {
		return k, false
	}
	return k, true
}

// asciiOther reports whether the member name is ASCII and none of
// tenant, id and this in any case.
func asciiOther(name []byte) bool {
	for _, c := range name {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	for _, want := range [...]string{"tenant", "id", "this"} {
		if len(name) == len(want) && equalFoldASCII(name, want) {
			return false
		}
	}
	return true
}

func equalFoldASCII(b []byte, s string) bool {
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON white space.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// scanString returns the contents of the JSON string at b[i] and the index
// after its closing quote; plain is false when there is no valid string
// at i, or it holds an escape (its contents are then not its value).
func scanString(b []byte, i int) (s []byte, next int, plain bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, i, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return b[i+1 : j], j + 1, true
		case c == '\\' || c < 0x20:
			return nil, j, false
		}
	}
	return nil, len(b), false
}

// maxDepth is encoding/json's bound on nesting: deeper is not valid JSON
// to it.
const maxDepth = 10000

// skipValue checks the JSON value at b[i], nested depth deep, and returns
// the index after it; false when it is not valid JSON.
func skipValue(b []byte, i, depth int) (int, bool) {
	if i >= len(b) {
		return i, false
	}
	switch c := b[i]; {
	case c == '"':
		return skipString(b, i)
	case c == '{' || c == '[':
		if depth >= maxDepth {
			return i, false
		}
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == end {
			return i + 1, true
		}
		for {
			var ok bool
			if c == '{' {
				if i, ok = skipString(b, i); !ok {
					return i, false
				}
				if i = skipSpace(b, i); i >= len(b) || b[i] != ':' {
					return i, false
				}
				i = skipSpace(b, i+1)
			}
			if i, ok = skipValue(b, i, depth+1); !ok {
				return i, false
			}
			if i = skipSpace(b, i); i >= len(b) {
				return i, false
			}
			switch b[i] {
			case end:
				return i + 1, true
			case ',':
				i = skipSpace(b, i+1)
			default:
				return i, false
			}
		}
	case c == 't':
		return skipLiteral(b, i, "true")
	case c == 'f':
		return skipLiteral(b, i, "false")
	case c == 'n':
		return skipLiteral(b, i, "null")
	default:
		return skipNumber(b, i)
	}
}

// skipString checks the JSON string at b[i], escapes and all.
func skipString(b []byte, i int) (int, bool) {
	if i >= len(b) || b[i] != '"' {
		return i, false
	}
	for i++; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1, true
		case c < 0x20:
			return i, false
		case c == '\\':
			if i++; i >= len(b) {
				return i, false
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) {
					return i, false
				}
				for _, h := range b[i+1 : i+5] {
					if !isHex(h) {
						return i, false
					}
				}
				i += 4
			default:
				return i, false
			}
		}
	}
	return i, false
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func skipLiteral(b []byte, i int, lit string) (int, bool) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return i, false
	}
	return i + len(lit), true
}

// skipNumber checks the JSON number at b[i]:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func skipNumber(b []byte, i int) (int, bool) {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	default:
		return i, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			return i, false
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return i, false
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	return i, true
}
