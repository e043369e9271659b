package span

import "time"

// ValidRFC3339 reports whether s is a date-time of RFC 3339 §5.6 and, if so,
// returns its instant in UTC:
//
//	date-time = full-date ("T" / "t") partial-time time-offset
//	full-date = YYYY "-" MM "-" DD        ; a real calendar date, leap years counted
//	partial-time = hh ":" mm ":" ss ["." 1*DIGIT]
//	time-offset  = "Z" / "z" / ("+" / "-") hh ":" mm
//
// Decisions where RFC 3339 leaves room:
//   - lower-case "t" and "z" are accepted, as RFC 3339 §5.6 allows; a space
//     instead of "T" is not;
//   - hours 00-23, minutes 00-59, seconds 00-59: a leap second (60) is
//     rejected, because time.Time cannot hold it and the derivation clock
//     must not be ambiguous;
//   - offsets up to ±23:59; "-00:00" is UTC;
//   - any number of fraction digits, truncated to nanoseconds.
func ValidRFC3339(s string) (time.Time, bool) {
	// YYYY-MM-DDThh:mm:ssZ is the shortest form.
	if len(s) < 20 || s[4] != '-' || s[7] != '-' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	if s[10] != 'T' && s[10] != 't' {
		return time.Time{}, false
	}
	year, ok1 := digits(s[0:4])
	month, ok2 := digits(s[5:7])
	day, ok3 := digits(s[8:10])
	hour, ok4 := digits(s[11:13])
	minute, ok5 := digits(s[14:16])
	sec, ok6 := digits(s[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) ||
		month < 1 || month > 12 || day < 1 || day > daysIn(month, year) ||
		hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	i := 19
	nsec := 0
	if s[i] == '.' {
		i++
		n := 0
		for i < len(s) && isDigit(s[i]) {
			if n < 9 {
				nsec = nsec*10 + int(s[i]-'0')
				n++
			}
			i++
		}
		if n == 0 {
			return time.Time{}, false
		}
		for ; n < 9; n++ {
			nsec *= 10
		}
	}
	if i >= len(s) {
		return time.Time{}, false
	}
	offset := 0
	switch s[i] {
	case 'Z', 'z':
		i++
	case '+', '-':
		if len(s)-i != 6 || s[i+3] != ':' {
			return time.Time{}, false
		}
		oh, ok1 := digits(s[i+1 : i+3])
		om, ok2 := digits(s[i+4 : i+6])
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return time.Time{}, false
		}
		offset = (oh*60 + om) * 60
		if s[i] == '-' {
			offset = -offset
		}
		i += 6
	default:
		return time.Time{}, false
	}
	if i != len(s) {
		return time.Time{}, false
	}
	unix := daysSinceEpoch(year, month, day)*86400 + int64(hour*3600+minute*60+sec-offset)
	return time.Unix(unix, int64(nsec)).UTC(), true
}

// daysSinceEpoch returns the number of days from 1970-01-01 to the given
// date of the proleptic Gregorian calendar (year >= 0).
func daysSinceEpoch(year, month, day int) int64 {
	// Count years from March, so that the leap day ends the year.
	y := int64(year)
	if month <= 2 {
		y--
	}
	era := y / 400
	if y < 0 {
		era = (y - 399) / 400
	}
	yoe := y - era*400 // [0, 399]
	m := int64(month)
	if m > 2 {
		m -= 3
	} else {
		m += 9
	}
	doy := (153*m+2)/5 + int64(day) - 1 // [0, 365]
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

// digits decodes a run of ASCII digits.
func digits(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}
