package jsonstr

import (
	"bytes"
	"encoding/json"
	"testing"
)

var seeds = []string{"", "plain", "<a href=\"x\">&amp;</a>", "\u2028\u2029", "\x00\x01\x1f\x7f", "é😀", "\xff\xfe", "a\\b\"c\n\r\t\b\f", "tail\xc3"}

// Append writes what encoding/json writes.
func FuzzAppend(f *testing.F) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := Append(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("Append(%q) = %s, encoding/json %s", s, got, want)
		}
	})
}

// AppendCanonical escapes only what RFC 8785 requires, and decodes back to
// the string (invalid UTF-8 read as U+FFFD, as encoding/json reads it).
func FuzzAppendCanonical(f *testing.F) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := AppendCanonical(nil, s)
		var back, want string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("AppendCanonical(%q) = %s: not JSON: %v", s, got, err)
		}
		j, _ := json.Marshal(s)
		json.Unmarshal(j, &want)
		if back != want {
			t.Fatalf("AppendCanonical(%q) = %s reads back as %q, want %q", s, got, back, want)
		}
		for _, c := range []string{`\u003c`, `\u003e`, `\u0026`, `\u2028`, `\u2029`, `\ufffd`} {
			if bytes.Contains(got, []byte(c)) && !bytes.Contains([]byte(s), []byte(c)) {
				t.Fatalf("AppendCanonical(%q) = %s escapes %s, which RFC 8785 writes as is", s, got, c)
			}
		}
	})
}

func TestCanonicalExamples(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"<&>", `"<&>"`},
		{"\u2028", "\"\u2028\""},
		{"\x01", `"\u0001"`},
		{"\xff", "\"\ufffd\""},
		{"\"\\", `"\"\\"`},
	} {
		if got := string(AppendCanonical(nil, c.in)); got != c.want {
			t.Errorf("AppendCanonical(%q) = %s, want %s", c.in, got, c.want)
		}
	}
}
