package lllc_test

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/loglineos/loglineos/internal/lllc"
	"github.com/loglineos/loglineos/stdlib"
)

// TestReproducible builds the standard sources twice, from two directories,
// in two time zones and in two file orders, and compares the bytes.
func TestReproducible(t *testing.T) {
	build := func(tz string, reverse bool) []byte {
		dir := t.TempDir()
		t.Chdir(dir)
		loc, err := time.LoadLocation(tz)
		if err != nil {
			t.Skipf("no time zone data: %v", err)
		}
		old := time.Local
		time.Local = loc
		defer func() { time.Local = old }()
		if code := lllc.Main([]string{"keygen"}, nil, io.Discard, io.Discard); code != 0 {
			t.Fatalf("keygen: exit %d", code)
		}
		// The same key in both directories.
		if err := os.WriteFile("signing.key", key, 0o600); err != nil {
			t.Fatal(err)
		}
		var files []string
		for _, s := range stdlib.Sources() {
			if err := os.MkdirAll(filepath.Dir(s.Name), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(s.Name, s.Text, 0o644); err != nil {
				t.Fatal(err)
			}
			files = append(files, s.Name)
		}
		if reverse {
			for i, j := 0, len(files)-1; i < j; i, j = i+1, j-1 {
				files[i], files[j] = files[j], files[i]
			}
		}
		var stderr bytes.Buffer
		if code := lllc.Main(append([]string{"-o", "x.lllb"}, files...), nil, io.Discard, &stderr); code != 0 {
			t.Fatalf("loglinec: exit %d: %s", code, stderr.String())
		}
		b, err := os.ReadFile("x.lllb")
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a := build("UTC", false)
	b := build("Asia/Tokyo", true)
	if !bytes.Equal(a, b) {
		t.Error("two builds of the same sources differ")
	}
}

// key is a fixed test signing key (PEM, PKCS #8 ed25519).
var key = []byte(`-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g
-----END PRIVATE KEY-----
`)
