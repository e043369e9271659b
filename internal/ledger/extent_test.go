package ledger

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestExtent reads back, for several sizes, the bytes Extent names and
// finds exactly the first size records, whole.
func TestExtent(t *testing.T) {
	fs := vfs.NewMem()
	l := mustOpen(t, fs, testConfig(fs))
	defer l.Close()
	for i := range 12 {
		var es []Entry
		for j := range 50 {
			es = append(es, spanEntry("t", fmt.Sprintf("s_%d_%d", i, j), "x"))
		}
		mustAppend(t, l, es...)
	}
	n := l.Next()
	segs, err := listSegments(fs, l.segDir)
	if err != nil || len(segs) < 3 {
		t.Fatalf("want records in at least 3 segments, have %v (%v)", segs, err)
	}
	inFirst := countLines(t, fs, l.segs.path(segs[0]), -1)
	for _, size := range []uint64{0, 1, 77, uint64(inFirst), uint64(inFirst) + 1, n - 1, n} {
		ext, err := l.Extent(size)
		if err != nil {
			t.Fatalf("Extent(%d): %v", size, err)
		}
		var got uint64
		for i, e := range ext {
			if e.Name != segmentName(uint32(i+1)) || e.Path != l.segs.path(uint32(i+1)) {
				t.Errorf("Extent(%d)[%d] = %s at %s, want segment %d", size, i, e.Name, e.Path, i+1)
			}
			st, _ := fs.Stat(e.Path)
			if e.Whole != (e.Bytes == st.Size() && i < len(ext)-1) {
				t.Errorf("Extent(%d)[%d]: Whole %v with %d of %d bytes", size, i, e.Whole, e.Bytes, st.Size())
			}
			got += uint64(countLines(t, fs, e.Path, e.Bytes))
		}
		if got != size {
			t.Errorf("Extent(%d) holds %d records", size, got)
		}
	}
	if _, err := l.Extent(n + 1); err == nil {
		t.Errorf("Extent(%d) past the %d records: no error", n+1, n)
	}
}

// countLines counts the complete lines in the first n bytes of a file (all
// of it when n < 0) and fails unless those bytes end with one.
func countLines(t *testing.T, fs vfs.FS, path string, n int64) int {
	t.Helper()
	f, err := fs.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	if n >= 0 {
		b = b[:n]
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		t.Fatalf("%s: %d bytes end within a record", path, len(b))
	}
	return bytes.Count(b, []byte("\n"))
}
