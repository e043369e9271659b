package span

import (
	"testing"
	"time"
)

func TestValidRFC3339(t *testing.T) {
	utc := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatalf("bad test time %q: %v", s, err)
		}
		return tm.UTC()
	}
	valid := []struct {
		in   string
		want time.Time
	}{
		{"2025-10-05T22:18:07Z", utc("2025-10-05T22:18:07Z")},
		{"2025-10-05t22:18:07z", utc("2025-10-05T22:18:07Z")},
		{"2025-10-05T22:18:07.214Z", utc("2025-10-05T22:18:07.214Z")},
		{"2025-10-05T22:18:07.000000001Z", utc("2025-10-05T22:18:07.000000001Z")},
		{"2025-10-05T22:18:07.1234567891Z", utc("2025-10-05T22:18:07.123456789Z")},
		{"2025-10-06T00:18:07+02:00", utc("2025-10-05T22:18:07Z")},
		{"2025-10-05T18:48:07.5-03:30", utc("2025-10-05T22:18:07.5Z")},
		{"2025-10-05T22:18:07-00:00", utc("2025-10-05T22:18:07Z")},
		{"2025-10-05T22:18:07+23:59", utc("2025-10-04T22:19:07Z")},
		{"2024-02-29T00:00:00Z", utc("2024-02-29T00:00:00Z")},
		{"2000-02-29T12:00:00Z", utc("2000-02-29T12:00:00Z")},
		{"1970-01-01T00:00:00Z", time.Unix(0, 0).UTC()},
		{"1969-12-31T23:59:59Z", time.Unix(-1, 0).UTC()},
		{"0000-01-01T00:00:00Z", time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"0000-03-01T00:00:00Z", time.Date(0, 3, 1, 0, 0, 0, 0, time.UTC)},
		{"1600-02-29T00:00:00Z", time.Date(1600, 2, 29, 0, 0, 0, 0, time.UTC)},
		{"9999-12-31T23:59:59.999999999Z", utc("9999-12-31T23:59:59.999999999Z")},
		{"2025-12-31T23:59:59Z", utc("2025-12-31T23:59:59Z")},
	}
	for _, tc := range valid {
		got, ok := ValidRFC3339(tc.in)
		if !ok || !got.Equal(tc.want) || got.Location() != time.UTC {
			t.Errorf("ValidRFC3339(%q) = %v, %v; want %v, true", tc.in, got, ok, tc.want)
		}
	}
	invalid := []string{
		"",
		"2025-10-05",
		"2025-13-45T00:00:00Z",
		"2025-00-10T00:00:00Z",
		"2025-10-00T00:00:00Z",
		"2025-02-29T00:00:00Z",
		"1900-02-29T00:00:00Z",
		"2025-04-31T00:00:00Z",
		"2025-10-05 22:18:07Z",
		"2025-10-05_22:18:07Z",
		"2025-10-05T24:00:00Z",
		"2025-10-05T23:60:00Z",
		"2025-12-31T23:59:60Z", // leap seconds are refused, see the doc
		"2025-10-05T22:18:07",
		"2025-10-05T22:18:07.Z",
		"2025-10-05T22:18:07,5Z",
		"2025-10-05T22:18:07+0200",
		"2025-10-05T22:18:07+02",
		"2025-10-05T22:18:07+24:00",
		"2025-10-05T22:18:07+02:60",
		"2025-10-05T22:18:07+02:00:00",
		"2025-10-05T22:18:07ZZ",
		"2025-10-05T22:18:07Z ",
		" 2025-10-05T22:18:07Z",
		"+2025-10-05T22:18:07Z",
		"20251-10-05T22:18:07Z",
		"2025-1-05T22:18:07Z",
		"2025-10-5T22:18:07Z",
		"2025-10-05T2:18:07Z",
		"2025-10-05T22:18:7Z",
		"2025-1a-05T22:18:07Z",
		"２０２５-10-05T22:18:07Z",
		"2025-10-05T22:18:07UTC",
		"2025-10-05T22:18:07.123",
	}
	for _, in := range invalid {
		if got, ok := ValidRFC3339(in); ok {
			t.Errorf("ValidRFC3339(%q) = %v, true; want false", in, got)
		}
	}
}

// TestValidRFC3339Days compares the calendar arithmetic with package time
// over every day of four centuries.
func TestValidRFC3339Days(t *testing.T) {
	for d := time.Date(1800, 1, 1, 0, 0, 0, 0, time.UTC); d.Year() < 2200; d = d.AddDate(0, 0, 1) {
		s := d.Format("2006-01-02") + "T13:14:15Z"
		got, ok := ValidRFC3339(s)
		if want := d.Add(13*time.Hour + 14*time.Minute + 15*time.Second); !ok || !got.Equal(want) {
			t.Fatalf("ValidRFC3339(%q) = %v, %v; want %v", s, got, ok, want)
		}
	}
}
