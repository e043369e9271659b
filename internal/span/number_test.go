package span

import (
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

// TestNumberFastPath checks the claim the number fast path rests on: a
// decimal of at most 15 significant digits in the normal range is written
// as its own digits, which must be what ParseFloat followed by the shortest
// round-trip formatting gives.
func TestNumberFastPath(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		k := 1 + rng.IntN(15)
		var d strings.Builder
		d.WriteByte(byte('1' + rng.IntN(9)))
		for j := 1; j < k; j++ {
			d.WriteByte(byte('0' + rng.IntN(10)))
		}
		digits := d.String()
		var in string
		switch rng.IntN(3) {
		case 0: // d.ddd e±x
			in = digits[:1] + "." + digits[1:] + "0e" + strconv.Itoa(rng.IntN(600)-300)
		case 1: // integer and fraction parts
			p := rng.IntN(k + 1)
			in = "0" + digits[:p] + "." + digits[p:] + "0"
			if p > 0 {
				in = digits[:p] + "." + digits[p:] + "0"
			}
		default: // tiny or huge exponents near the edges of the fast path
			in = "0." + digits + "e" + strconv.Itoa([]int{-306, -305, -300, 300, 307, 308}[rng.IntN(6)])
		}
		if rng.IntN(2) == 0 {
			in = "-" + in
		}
		got, err := Canonicalize([]byte(in))
		if err != nil {
			t.Fatalf("Canonicalize(%s): %v", in, err)
		}
		f, err := strconv.ParseFloat(in, 64)
		if err != nil {
			t.Fatalf("ParseFloat(%s): %v", in, err)
		}
		if want := appendFloat(nil, f); string(got) != string(want) {
			t.Fatalf("Canonicalize(%s) = %s, want %s", in, got, want)
		}
	}
}

// TestNumberRoundTrip checks random float64 values, spelt in several ways:
// the output reads back to the same value and is the shortest spelling.
func TestNumberRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 30000 {
		f := math.Float64frombits(rng.Uint64())
		if math.IsNaN(f) || math.IsInf(f, 0) {
			continue
		}
		want := strconv.FormatFloat(f, 'e', -1, 64)
		for _, in := range []string{
			strconv.FormatFloat(f, 'g', -1, 64),
			strconv.FormatFloat(f, 'e', 25, 64),
			strconv.FormatFloat(f, 'E', -1, 64),
		} {
			got, err := Canonicalize([]byte(in))
			if err != nil {
				t.Fatalf("Canonicalize(%s): %v", in, err)
			}
			g, err := strconv.ParseFloat(string(got), 64)
			if err != nil || g != f && !(f == 0 && g == 0) {
				t.Fatalf("Canonicalize(%s) = %s, which reads as %v, want %v", in, got, g, f)
			}
			if n, m := sigDigits(string(got)), sigDigits(want); n != m {
				t.Fatalf("Canonicalize(%s) = %s: %d significant digits, want %d (%s)", in, got, n, m, want)
			}
		}
	}
}

// sigDigits counts the significant digits of a number's text.
func sigDigits(s string) int {
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		s = s[:i]
	}
	s = strings.TrimLeft(strings.NewReplacer("-", "", ".", "").Replace(s), "0")
	s = strings.TrimRight(s, "0")
	return max(len(s), 1)
}

func TestAppendES(t *testing.T) {
	cases := []struct {
		d    string
		n    int
		want string
	}{
		{"1", 1, "1"},
		{"1", 21, "100000000000000000000"},
		{"1", 22, "1e+21"},
		{"123", 2, "12.3"},
		{"123", 21, "123000000000000000000"},
		{"123", 0, "0.123"},
		{"1", -5, "0.000001"},
		{"1", -6, "1e-7"},
		{"123", -6, "1.23e-7"},
		{"17976931348623157", 309, "1.7976931348623157e+308"},
		{"5", -323, "5e-324"},
	}
	for _, tc := range cases {
		if got := string(appendES(nil, false, []byte(tc.d), tc.n)); got != tc.want {
			t.Errorf("appendES(0.%s × 10^%d) = %s, want %s", tc.d, tc.n, got, tc.want)
		}
	}
}
