package ledger

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite the committed fuzz seed corpus")

// sampleSegment returns the bytes of a small valid segment.
func sampleSegment(t testing.TB, n int) []byte {
	var enc encoder
	var buf []byte
	ts := time.Date(2025, 10, 5, 22, 18, 7, 214000, time.UTC)
	for i := range n {
		if i%3 == 0 {
			ts = ts.Add(time.Millisecond)
		}
		e := spanEntry("t_a", fmt.Sprintf("s_%d", i), "order:1")
		buf, _ = enc.appendRecord(buf, uint64(i), ts.AppendFormat(nil, tsLayout), ledgerfmt.KindSpan, e.Body)
	}
	return buf
}

func FuzzDecodeRecord(f *testing.F) {
	seg := sampleSegment(f, 3)
	for _, line := range bytes.Split(seg, []byte("\n")) {
		if len(line) > 0 {
			f.Add(line)
		}
	}
	f.Add([]byte(`{"seq":0,"ts":"x"}`))
	f.Add([]byte(`{"seq":18446744073709551616,"ts":"2025-10-05T22:18:07.214000Z","leaf":"","crc":"","span":{}}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		var scratch []byte
		r, err := decodeRecord(line, &scratch)
		if err != nil {
			var fe *FrameError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a *FrameError", err)
			}
			return
		}
		// A record that decodes is exactly its own framing.
		var enc encoder
		tsb := r.TS.AppendFormat(nil, tsLayout)
		out, leaf := enc.appendRecord(nil, r.Seq, tsb, r.Kind, r.Body)
		if !bytes.Equal(out[:len(out)-1], line) || leaf != r.Leaf {
			t.Fatalf("re-encoding differs:\n in %q\nout %q", line, out)
		}
	})
}

// FuzzRecover opens a ledger whose only segment holds the fuzzed bytes. Open
// must not panic or hang; when it succeeds, the ledger must verify and every
// record must read back.
func FuzzRecover(f *testing.F) {
	seg := sampleSegment(f, 7)
	f.Add(seg)
	f.Add(seg[:len(seg)-5])
	f.Add(seg[:len(seg)/2])
	f.Add(append(append([]byte(nil), seg...), make([]byte, 100)...))
	flipped := append([]byte(nil), seg...)
	flipped[40] ^= 1
	f.Add(flipped)
	f.Add([]byte{})
	f.Fuzz(runRecover)
}

func runRecover(t *testing.T, data []byte) {
	{
		fs := vfs.NewMem()
		if err := fs.MkdirAll("data/ledger/segments", 0o755); err != nil {
			t.Fatal(err)
		}
		w, _ := fs.Create("data/ledger/segments/000001.ndjson", vfs.WriteCategoryUnspecified)
		w.Write(data)
		w.Close()
		l, err := Open("data", Config{FS: fs, IndexMemTableBytes: 256 << 10, DedupFilterBytes: 64 << 10})
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open failed without ErrCorrupt: %v", err)
			}
			return
		}
		n := l.Next()
		r, err := l.NewReader(0)
		if err != nil {
			t.Fatal(err)
		}
		for i := uint64(0); ; i++ {
			rec, err := r.Next()
			if errors.Is(err, io.EOF) {
				if i != n {
					t.Fatalf("read %d records, ledger has %d", i, n)
				}
				break
			}
			if err != nil || rec.Seq != i {
				t.Fatalf("record %d: %v", i, err)
			}
		}
		r.Close()
		// It still takes appends after recovery.
		if _, err := l.Append(context.Background(), []Entry{spanEntry("t_z", "after", "x")}); err != nil {
			t.Fatalf("append after recovery: %v", err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		rep, err := Verify("data", VerifyConfig{FS: fs})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Problem != nil {
			t.Fatalf("recovered ledger does not verify: %v", rep.Problem)
		}
	}
}

// TestFuzzCorpus keeps the committed seed corpus in step with the samples;
// run with -update-corpus to rewrite it.
func TestFuzzCorpus(t *testing.T) {
	seg := sampleSegment(t, 7)
	lines := bytes.Split(bytes.TrimSuffix(seg, []byte("\n")), []byte("\n"))
	corpus := map[string][]byte{
		"FuzzDecodeRecord/valid-0": lines[0],
		"FuzzDecodeRecord/valid-6": lines[6],
		"FuzzDecodeRecord/crc":     bytes.Replace(lines[1], []byte(`"crc":"`), []byte(`"crc":"f`), 1),
		"FuzzRecover/valid":        seg,
		"FuzzRecover/torn":         seg[:len(seg)-17],
		"FuzzRecover/zeros-tail":   append(append([]byte(nil), seg...), make([]byte, 4096)...),
		"FuzzRecover/mid-flip":     append(append(append([]byte(nil), seg[:300]...), 'X'), seg[301:]...),
	}
	for name, data := range corpus {
		path := filepath.Join("testdata", "fuzz", name)
		want := fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", data)
		if *updateCorpus {
			os.MkdirAll(filepath.Dir(path), 0o755)
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("seed corpus: %v (run go test -run TestFuzzCorpus -update-corpus)", err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("seed corpus %s is stale (run go test -run TestFuzzCorpus -update-corpus)", name)
		}
	}
}
