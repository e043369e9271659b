package span

import "strconv"

// Limits bound what Parse accepts. A zero field means its default
// (DefaultLimits); so does a negative one.
type Limits struct {
	// MaxBytes bounds the length of the input, whitespace included.
	MaxBytes int
	// MaxMembers bounds the number of members of all objects together,
	// the span's own members included.
	MaxMembers int
	// MaxDepth bounds the nesting of objects and arrays; the span object
	// is level 1, so "data":{"a":[1]} is level 3.
	MaxDepth int
}

// Defaults of Limits.
const (
	DefaultMaxBytes   = 64 << 10
	DefaultMaxMembers = 1024
	DefaultMaxDepth   = 16
)

// DefaultLimits returns the limits Parse applies when given a zero Limits:
// 64 KiB, 1024 members, 16 levels.
func DefaultLimits() Limits {
	return Limits{MaxBytes: DefaultMaxBytes, MaxMembers: DefaultMaxMembers, MaxDepth: DefaultMaxDepth}
}

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.MaxMembers <= 0 {
		l.MaxMembers = DefaultMaxMembers
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	return l
}

// Parse decodes one span, a JSON object, from b, in one pass that also
// produces its canonical form (Span.Canonical). Leading and trailing
// whitespace is allowed, so is a trailing newline.
//
// The error, when not nil, is one of:
//   - *LimitError: b is over one of lim's limits (zero fields meaning
//     their defaults);
//   - *SyntaxError: b is not one JSON object that Canonicalize accepts
//     (the message "span must be a JSON object, not ..." when it is
//     another JSON value);
//   - *FieldError{Rule: RuleType}: a known top-level member has the wrong
//     type: id, tenant, who, did, this, status and when must be strings,
//     confirmed_by an array of strings, data an object.
//
// Parse checks neither which members are present nor what the strings say:
// a "when" that is not RFC 3339 is kept with WhenOK false, for the contract
// to report.
func Parse(b []byte, lim Limits) (*Span, error) {
	lim = lim.withDefaults()
	if len(b) > lim.MaxBytes {
		return nil, &LimitError{Limit: LimitBytes, Max: lim.MaxBytes, Got: len(b)}
	}

	var scratch [1024]byte
	p := parser{in: b, maxDepth: lim.MaxDepth, maxMembers: lim.MaxMembers, limitErrs: true, deferTop: true}
	if pos := skipWS(b, 0); pos < len(b) {
		switch c := b[pos]; c {
		case '{':
		case '[', '"', 't', 'f', 'n', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			return nil, syntaxErr(pos, "span must be a JSON object, not "+kindOf(c))
		}
	}
	scanned, err := p.document(scratch[:0])
	if err != nil {
		return nil, err
	}

	out := p.finish(make([]byte, 0, len(scanned)), scanned)
	s := &Span{canonical: out}
	// One string holds the text of every field: the canonical form of a
	// string without escapes is its value, so most fields are substrings.
	text := string(out)
	top := p.topMembers()
	if len(top) <= len(s.membersBuf) {
		s.Members = s.membersBuf[:len(top)]
	} else {
		s.Members = make([]string, len(top))
	}
	for i, m := range top {
		if m.plain {
			s.Members[i] = text[m.start+1 : m.colon-2]
		} else {
			s.Members[i] = canonicalString(text, m.start, m.colon-1)
		}
		v, end := m.colon, m.end
		switch name := s.Members[i]; name {
		case "id", "tenant", "who", "did", "this", "status", "when":
			if out[v] != '"' {
				return nil, &FieldError{Field: name, Rule: RuleType,
					Msg: `field "` + name + `" must be a string, not ` + kindOf(out[v])}
			}
			str := text[v+1 : end-1]
			if !m.rawValue {
				str = canonicalString(text, v, end)
			}
			switch name {
			case "id":
				s.ID = str
			case "tenant":
				s.Tenant = str
			case "who":
				s.Who = str
			case "did":
				s.Did = str
			case "this":
				s.This = str
			case "status":
				s.Status = str
			case "when":
				s.WhenRaw = str
				s.When, s.WhenOK = ValidRFC3339(str)
			}
		case "confirmed_by":
			cb, err := s.confirmedBy(text, v, end)
			if err != nil {
				return nil, err
			}
			s.ConfirmedBy = cb
		case "data":
			if out[v] != '{' {
				return nil, &FieldError{Field: name, Rule: RuleType,
					Msg: `field "data" must be an object, not ` + kindOf(out[v])}
			}
			s.Data = out[v:end:end]
		}
	}
	return s, nil
}

// confirmedBy decodes the canonical array text[v:end] as a list of strings.
func (s *Span) confirmedBy(text string, v, end int) ([]string, error) {
	fail := func(msg string) error {
		return &FieldError{Field: "confirmed_by", Rule: RuleType,
			Msg: `field "confirmed_by" must be an array of strings` + msg}
	}
	if text[v] != '[' {
		return nil, fail(", not " + kindOf(text[v]))
	}
	// Count the elements first, to size the slice.
	var list []string
	for pass := 0; pass < 2; pass++ {
		n := 0
		for i := v + 1; text[i] != ']'; n++ {
			if text[i] != '"' {
				return nil, fail("; element " + strconv.Itoa(n) + " is " + kindOf(text[i]))
			}
			j := i + 1
			for text[j] != '"' {
				if text[j] == '\\' {
					j++
				}
				j++
			}
			if pass == 1 {
				list[n] = canonicalString(text, i, j+1)
			}
			i = j + 1
			if text[i] == ',' {
				i++
			}
		}
		if pass == 0 {
			switch {
			case n == 0:
				return []string{}, nil
			case n <= len(s.confirmedBuf):
				list = s.confirmedBuf[:n]
			default:
				list = make([]string, n)
			}
		}
	}
	return list, nil
}

// canonicalString returns the value of the canonical JSON string
// text[start:end] (quotes included): a substring of text when it has no
// escapes, else a new string.
func canonicalString(text string, start, end int) string {
	q := text[start+1 : end-1]
	k := 0
	for k < len(q) && q[k] != '\\' {
		k++
	}
	if k == len(q) {
		return q
	}
	b := make([]byte, 0, len(q))
	for i := 0; i < len(q); {
		if q[i] != '\\' {
			b = append(b, q[i])
			i++
			continue
		}
		r, n := decodeEscape(q[i:])
		b = append(b, byte(r)) // canonical escapes only stand for ASCII
		i += n
	}
	return string(b)
}

// kindOf names the JSON type of the value starting with c.
func kindOf(c byte) string {
	switch c {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}
