package span

import (
	"math"
	"strconv"
)

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// number parses the number at in[start:] and appends it to out, written as ECMAScript's
// Number.prototype.toString would write the float64 nearest to it
// (RFC 8785 §3.2.2.3).
//
// Most numbers need no float arithmetic at all: a decimal of at most 15
// significant digits inside the normal range of float64 is the shortest
// decimal that round-trips through its float64 (15 digits is DBL_DIG: two
// such decimals never round to the same float64), so its canonical digits
// are its own significant digits and only the layout changes. Other numbers
// go through strconv: ParseFloat, then the shortest round-trip digits of
// FormatFloat(f, 'e', -1, 64), which are ECMAScript's too.
func number(out, in []byte, start int) ([]byte, int, error) {
	i := start
	neg := in[i] == '-'
	if neg {
		i++
	}
	if i >= len(in) {
		return out, start, syntaxErr(len(in), msgEOF)
	}
	intStart := i
	switch c := in[i]; {
	case c == '0':
		i++
		if i < len(in) && isDigit(in[i]) {
			return out, start, syntaxErr(i-1, msgLeadingZero)
		}
	case c >= '1' && c <= '9':
		i++
		for i < len(in) && isDigit(in[i]) {
			i++
		}
	default:
		return out, start, invalidChar(in, i, "in numeric literal")
	}
	intEnd := i
	fracStart, fracEnd := i, i
	if i < len(in) && in[i] == '.' {
		i++
		if i >= len(in) {
			return out, start, syntaxErr(len(in), msgEOF)
		}
		if !isDigit(in[i]) {
			return out, start, invalidChar(in, i, "after decimal point in numeric literal")
		}
		fracStart = i
		for i < len(in) && isDigit(in[i]) {
			i++
		}
		fracEnd = i
	}
	exp, hasExp := 0, false
	if i < len(in) && (in[i] == 'e' || in[i] == 'E') {
		hasExp = true
		i++
		expNeg := false
		if i < len(in) && (in[i] == '+' || in[i] == '-') {
			expNeg = in[i] == '-'
			i++
		}
		if i >= len(in) {
			return out, start, syntaxErr(len(in), msgEOF)
		}
		if !isDigit(in[i]) {
			return out, start, invalidChar(in, i, "in exponent of numeric literal")
		}
		for i < len(in) && isDigit(in[i]) {
			if exp < 1e15 { // saturate: far beyond any float64, and no overflow
				exp = exp*10 + int(in[i]-'0')
			}
			i++
		}
		if expNeg {
			exp = -exp
		}
	}

	nInt := intEnd - intStart
	if !hasExp && fracStart == fracEnd && nInt <= 15 {
		// A small integer is its own canonical form, but for -0.
		if neg && in[intStart] == '0' {
			out = append(out, '0')
			return out, i, nil
		}
		out = append(out, in[start:i]...)
		return out, i, nil
	}

	// The significant digits d[lz:tz] of intDigits ++ fracDigits; the
	// value is 0.d × 10^n.
	total := nInt + fracEnd - fracStart
	digit := func(k int) byte {
		if k < nInt {
			return in[intStart+k]
		}
		return in[fracStart+k-nInt]
	}
	lz := 0
	for lz < total && digit(lz) == '0' {
		lz++
	}
	if lz == total {
		out = append(out, '0')
		return out, i, nil
	}
	tz := total
	for digit(tz-1) == '0' {
		tz--
	}
	k := tz - lz
	n := nInt - lz + exp
	if k <= 15 && n >= -306 && n <= 308 {
		var d [15]byte
		for j := range k {
			d[j] = digit(lz + j)
		}
		out = appendES(out, neg, d[:k], n)
		return out, i, nil
	}

	f, _ := strconv.ParseFloat(string(in[start:i]), 64) // the syntax is checked; overflow is ±Inf
	if math.IsInf(f, 0) {
		return out, start, syntaxErr(start, "number "+shortNumber(in[start:i])+" overflows float64")
	}
	out = appendFloat(out, f)
	return out, i, nil
}

// appendFloat appends f, finite, in ECMAScript's Number.prototype.toString
// form.
func appendFloat(dst []byte, f float64) []byte {
	if f == 0 {
		return append(dst, '0')
	}
	var buf [32]byte
	s := strconv.AppendFloat(buf[:0], f, 'e', -1, 64) // -d.ddde±dd
	neg := s[0] == '-'
	if neg {
		s = s[1:]
	}
	var d [17]byte
	k := 0
	j := 0
	for ; s[j] != 'e'; j++ {
		if s[j] != '.' {
			d[k] = s[j]
			k++
		}
	}
	e, _ := strconv.Atoi(string(s[j+1:]))
	return appendES(dst, neg, d[:k], e+1)
}

// appendES lays out the value 0.d × 10^n, d being the significant digits
// (no leading or trailing zeros), as ECMAScript's Number::toString does.
func appendES(dst []byte, neg bool, d []byte, n int) []byte {
	if neg {
		dst = append(dst, '-')
	}
	k := len(d)
	switch {
	case k <= n && n <= 21:
		dst = append(dst, d...)
		for j := k; j < n; j++ {
			dst = append(dst, '0')
		}
	case 0 < n && n <= 21:
		dst = append(dst, d[:n]...)
		dst = append(dst, '.')
		dst = append(dst, d[n:]...)
	case -6 < n && n <= 0:
		dst = append(dst, '0', '.')
		for j := n; j < 0; j++ {
			dst = append(dst, '0')
		}
		dst = append(dst, d...)
	default:
		dst = append(dst, d[0])
		if k > 1 {
			dst = append(dst, '.')
			dst = append(dst, d[1:]...)
		}
		e := n - 1
		if e >= 0 {
			dst = append(dst, 'e', '+')
		} else {
			dst = append(dst, 'e', '-')
			e = -e
		}
		dst = strconv.AppendInt(dst, int64(e), 10)
	}
	return dst
}

// shortNumber renders a number's text for a message.
func shortNumber(b []byte) string {
	if len(b) <= 32 {
		return string(b)
	}
	return string(b[:29]) + "..."
}
