package bytesize

import (
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Size
		wantErr bool
	}{
		{"1024", 1024, false},
		{"64KiB", 64 << 10, false},
		{" 16 MiB ", 16 << 20, false},
		{"1GiB", 1 << 30, false},
		{"2GB", 2 << 30, false},
		{"3MB", 3 << 20, false},
		{"5KB", 5 << 10, false},
		{"7B", 7, false},
		{"0", 0, false},
		{"8589934591GiB", 8589934591 << 30, false}, // the largest whole GiB
		{"lots", 0, true},
		{"-1KiB", 0, true},
		{"1.5MiB", 0, true},
		{"", 0, true},
		{"8589934592GiB", 0, true}, // 8 EiB: past int64
		{"9223372036854775807KiB", 0, true},
		{"9223372036854775808", 0, true},
	} {
		got, err := Parse(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("Parse(%q) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "bytesize: bad size") {
			t.Errorf("Parse(%q): error %q, want one starting bytesize: bad size", tc.in, err)
		}
	}
}

func TestString(t *testing.T) {
	for _, tc := range []struct {
		in   Size
		want string
	}{{0, "0"}, {1000, "1000"}, {1024, "1KiB"}, {1536, "1536"}, {64 << 20, "64MiB"}, {3 << 30, "3GiB"}, {(1 << 30) + (1 << 20), "1025MiB"}} {
		if got := tc.in.String(); got != tc.want {
			t.Errorf("Size(%d).String() = %q, want %q", int64(tc.in), got, tc.want)
		}
		if back, err := Parse(tc.in.String()); err != nil || back != tc.in {
			t.Errorf("Parse(%q) = %d, %v; want %d", tc.in.String(), back, err, int64(tc.in))
		}
	}
}

func TestFormat(t *testing.T) {
	for _, tc := range []struct {
		in   int64
		want string
	}{
		{0, "0 bytes"},
		{512, "512 bytes"},
		{1024, "1 KiB"},
		{64 << 20, "64 MiB"},
		{2 << 30, "2 GiB"},
		{1536, "1536 bytes (1.5 KiB)"},
		{16<<20 + 1, "16777217 bytes (16.0 MiB)"},
		{3<<30 + 1<<29, "3584 MiB"},
		{3<<30 + 1<<29 + 1, "3758096385 bytes (3.5 GiB)"},
	} {
		if got := Format(tc.in); got != tc.want {
			t.Errorf("Format(%d) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestShort(t *testing.T) {
	for _, tc := range []struct {
		in   int64
		want string
	}{
		{0, "0 B"},
		{1023, "1023 B"},
		{1024, "1.0 KiB"},
		{1536, "1.5 KiB"},
		{16<<20 + 1, "16.0 MiB"},
		{3<<30 + 1<<29, "3.5 GiB"},
		{5 << 40, "5120.0 GiB"},
	} {
		if got := Short(tc.in); got != tc.want {
			t.Errorf("Short(%d) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestUnmarshalYAML(t *testing.T) {
	var v struct {
		A Size `yaml:"a"`
	}
	if err := yaml.Unmarshal([]byte("a: 32MiB\n"), &v); err != nil || v.A != 32<<20 {
		t.Errorf("a: 32MiB = %d, %v", v.A, err)
	}
	err := yaml.Unmarshal([]byte("\n\na: lots\n"), &v)
	if err == nil || !strings.Contains(err.Error(), "line 3: bytesize: bad size") {
		t.Errorf("a: lots: %v, want an error naming line 3", err)
	}
}
