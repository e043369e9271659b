package scanner

import (
	"math"
	"time"
)

// ParseDuration parses a duration in the syntax of the language: one or
// more of (decimal number, unit) with units ms, s, m and h, as in "6h",
// "1h30m", "250ms", "168h". It is also how a string value such as "24h" in
// a policy is read. Every duration it accepts, Go's time.ParseDuration
// (which tenant configurations go through) reads the same. It reports
// false on anything else, on a negative or an overflowing value.
func ParseDuration(s string) (time.Duration, bool) {
	if s == "" {
		return 0, false
	}
	var total float64
	i := 0
	for i < len(s) {
		j := i
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		if j < len(s) && s[j] == '.' {
			j++
			k := j
			for j < len(s) && isDigit(s[j]) {
				j++
			}
			if k == j {
				return 0, false
			}
		}
		if j == i {
			return 0, false
		}
		num := s[i:j]
		var unit time.Duration
		switch {
		case len(s) >= j+2 && s[j:j+2] == "ms":
			unit, j = time.Millisecond, j+2
		case j < len(s) && s[j] == 's':
			unit, j = time.Second, j+1
		case j < len(s) && s[j] == 'm':
			unit, j = time.Minute, j+1
		case j < len(s) && s[j] == 'h':
			unit, j = time.Hour, j+1
		default:
			return 0, false
		}
		v, ok := parseDecimal(num)
		if !ok {
			return 0, false
		}
		total += v * float64(unit)
		i = j
	}
	if total >= math.MaxInt64 || total < 0 {
		return 0, false
	}
	return time.Duration(math.Round(total)), true
}

func parseDecimal(s string) (float64, bool) {
	var v, scale float64 = 0, 0
	for _, c := range []byte(s) {
		if c == '.' {
			scale = 1
			continue
		}
		v = v*10 + float64(c-'0')
		if scale > 0 {
			scale *= 10
		}
		if v > 1e18 {
			return 0, false
		}
	}
	if scale > 0 {
		v /= scale
	}
	return v, true
}
