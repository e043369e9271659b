package identity

// parseClaims decodes into c the payload as signLLST writes it: compact
// JSON, an object of the known members each at most once, strings of
// printable ASCII without escapes, integers without fraction or exponent,
// aud a string or an array of strings. It reports whether the payload had
// that shape; if not, c is left zero and the caller hands the payload to
// encoding/json, which decodes every payload parseClaims accepts to the
// same Claims (FuzzParseClaims holds the two together). It spares the
// first sight of a token most of the cost of reflection.
func parseClaims(s string, c *Claims) bool {
	p := claimsParser{s: s}
	if !p.parse(c) {
		*c = Claims{}
		return false
	}
	return true
}

type claimsParser struct {
	s string
	i int
}

func (p *claimsParser) parse(c *Claims) bool {
	if !p.eat('{') {
		return false
	}
	if p.eat('}') {
		return p.i == len(p.s)
	}
	var seen uint16
	for {
		key, ok := p.str()
		if !ok || !p.eat(':') {
			return false
		}
		var bit uint16
		switch key {
		case "iss":
			bit = 1 << 0
			c.Issuer, ok = p.str()
		case "aud":
			bit = 1 << 1
			if p.peek('[') {
				var l []string
				l, ok = p.list()
				c.Audience = l
			} else {
				var a string
				a, ok = p.str()
				c.Audience = audience{a}
			}
		case "sub":
			bit = 1 << 2
			c.Subject, ok = p.str()
		case "tenant":
			bit = 1 << 3
			c.Tenant, ok = p.str()
		case "roles":
			bit = 1 << 4
			c.Roles, ok = p.list()
		case "iat":
			bit = 1 << 5
			c.IssuedAt, ok = p.int()
		case "nbf":
			bit = 1 << 6
			c.NotBefore, ok = p.int()
		case "exp":
			bit = 1 << 7
			c.Expiry, ok = p.int()
		case "jti":
			bit = 1 << 8
			c.ID, ok = p.str()
		default:
			return false
		}
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		if p.eat('}') {
			return p.i == len(p.s)
		}
		if !p.eat(',') {
			return false
		}
	}
}

func (p *claimsParser) peek(b byte) bool { return p.i < len(p.s) && p.s[p.i] == b }

func (p *claimsParser) eat(b byte) bool {
	if p.peek(b) {
		p.i++
		return true
	}
	return false
}

// str reads a string of printable ASCII without escapes, sharing the
// payload's memory.
func (p *claimsParser) str() (string, bool) {
	if !p.eat('"') {
		return "", false
	}
	start := p.i
	for ; p.i < len(p.s); p.i++ {
		switch b := p.s[p.i]; {
		case b == '"':
			p.i++
			return p.s[start : p.i-1], true
		case b < 0x20 || b >= 0x7f || b == '\\':
			return "", false
		}
	}
	return "", false
}

// list reads an array of strings; an empty array is an empty, non-nil
// slice, as encoding/json makes it.
func (p *claimsParser) list() ([]string, bool) {
	if !p.eat('[') {
		return nil, false
	}
	l := []string{}
	if p.eat(']') {
		return l, true
	}
	for {
		v, ok := p.str()
		if !ok {
			return nil, false
		}
		l = append(l, v)
		if p.eat(']') {
			return l, true
		}
		if !p.eat(',') {
			return nil, false
		}
	}
}

// int reads an integer of at most 18 digits (so it cannot overflow),
// without a leading zero.
func (p *claimsParser) int() (int64, bool) {
	neg := p.eat('-')
	start := p.i
	var n int64
	for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
		n = n*10 + int64(p.s[p.i]-'0')
		p.i++
	}
	digits := p.i - start
	if digits == 0 || digits > 18 || (digits > 1 && p.s[start] == '0') {
		return 0, false
	}
	if neg {
		n = -n
	}
	return n, true
}
