// Package bytesize reads and writes sizes in bytes the way LogLineOS's
// configuration and messages write them.
//
// In configuration (YAML, environment variables) a Size is written
//
//	1024  64KiB  16MiB  1GiB
//
// (KB, MB and GB are read as the same binary units, B as bytes); String
// writes it back that way. Format writes a size for a reader of a message
// or a report: "16 MiB", "512 bytes", "17825793 bytes (17.0 MiB)"; Short
// writes it where a line has little room (a progress line): "17.0 MiB",
// "512 B".
package bytesize

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Size is a number of bytes.
type Size int64

// The binary units, largest first.
var units = []struct {
	suffix string
	n      int64
}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}}

// String writes s as configuration takes it: in the largest unit that
// divides it, or as a plain number of bytes.
func (s Size) String() string {
	for _, u := range units {
		if int64(s) >= u.n && int64(s)%u.n == 0 {
			return strconv.FormatInt(int64(s)/u.n, 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(s), 10)
}

// Parse reads a Size: a non-negative number of bytes, optionally followed
// by a unit.
func Parse(s string) (Size, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("bytesize: bad size %q: want a number of bytes up to 8 EiB, optionally with KiB, MiB or GiB", s)
	}
	return Size(n * mult), nil
}

// UnmarshalYAML implements yaml.Unmarshaler: a scalar Parse takes, its
// line named in the error.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	v, err := Parse(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*s = v
	return nil
}

// Format writes a size for a reader: exactly, in the largest unit that
// divides it ("16 MiB") or in bytes ("512 bytes"), with the size in the
// largest unit below it to a tenth after a count of bytes past 1 KiB
// ("17825793 bytes (17.0 MiB)").
func Format[T ~int | ~int64](size T) string {
	n := int64(size)
	for _, u := range units {
		if n >= u.n && n%u.n == 0 {
			return fmt.Sprintf("%d %s", n/u.n, u.suffix)
		}
	}
	for _, u := range units {
		if n >= u.n {
			return fmt.Sprintf("%d bytes (%.1f %s)", n, float64(n)/float64(u.n), u.suffix)
		}
	}
	return fmt.Sprintf("%d bytes", n)
}

// Short writes size in the largest unit it reaches, to one decimal, or in
// bytes below 1 KiB: "512 B", "1.5 KiB", "17.0 MiB".
func Short[T ~int | ~int64](size T) string {
	n := int64(size)
	for _, u := range units {
		if n >= u.n {
			return fmt.Sprintf("%.1f %s", float64(n)/float64(u.n), u.suffix)
		}
	}
	return fmt.Sprintf("%d B", n)
}
