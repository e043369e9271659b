package ledger

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

func TestDataEnd(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
	}{
		{"", 0},
		{"\x00\x00", 0},
		{"a\n", 2},
		{"a\n\x00", 2},
		{"a\n" + strings.Repeat("\x00", 200_000), 2},
		{"a\n\x00b\x00\x00", 4},
		{strings.Repeat("x", 70_000) + "\n" + strings.Repeat("\x00", 70_000), 70_001},
	} {
		got, err := dataEnd(strings.NewReader(c.in), int64(len(c.in)))
		if err != nil || got != c.want {
			t.Errorf("dataEnd(%d bytes) = %d, %v; want %d", len(c.in), got, err, c.want)
		}
	}
}

// segmentSizes returns each segment's file size and where its records end.
func segmentSizes(t *testing.T, dir string) (files, data []int64) {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, "ledger", "segments", "*.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(segs)
	for _, p := range segs {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		end, err := SegmentDataEnd(p)
		if err != nil {
			t.Fatal(err)
		}
		files, data = append(files, st.Size()), append(data, end)
	}
	return files, data
}

// TestPreallocate: with Config.Preallocate the segment being written
// carries zeros ahead of its records, and nothing else sees them: a
// reader following the appends, a sealed segment (cut to its records), a
// clean Close (which cuts the last one), and an open of what a crash left
// (a copy taken while the ledger ran: padding, perhaps a torn record
// written over it), which moves aside the torn record and no zeros, and
// reports no repair for the padding alone.
func TestPreallocate(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := Config{SegmentBytes: 48 << 10, Preallocate: 64 << 10}
	l, err := Open(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	r, err := l.NewReader(0)
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg   sync.WaitGroup
		read int
		rerr error
	)
	const n = 1200 // ~230 KiB of records: several sealed segments
	wg.Add(1)
	go func() { // a reader following the appends over the padding
		defer wg.Done()
		defer r.Close()
		for read < n {
			if _, err := r.Next(); err == nil {
				read++
				continue
			} else if err.Error() != "EOF" {
				rerr = err
				return
			}
			if err := r.Wait(ctx); err != nil {
				rerr = err
				return
			}
		}
	}()
	for i := range n / 10 {
		var es []Entry
		for k := range 10 {
			es = append(es, spanEntry("t_p", fmt.Sprintf("s_%d_%d", i, k), "order:1"))
		}
		if _, err := l.Append(ctx, es); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if rerr != nil || read != n {
		t.Fatalf("the following reader read %d of %d: %v", read, n, rerr)
	}
	files, data := segmentSizes(t, dir)
	if len(files) < 3 {
		t.Fatalf("%d segments: want several sealed ones", len(files))
	}
	for i := range len(files) - 1 {
		if files[i] != data[i] {
			t.Errorf("sealed segment %d: %d bytes for %d of records", i+1, files[i], data[i])
		}
	}
	last := len(files) - 1
	if files[last] <= data[last] {
		t.Fatalf("the segment being written has no padding: %d bytes, records end at %d", files[last], data[last])
	}

	// What a crash would leave: a copy taken while the ledger runs.
	crash := t.TempDir()
	if err := os.CopyFS(crash, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	torn := t.TempDir()
	if err := os.CopyFS(torn, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if files, data = segmentSizes(t, dir); files[last] != data[last] {
		t.Errorf("after Close the last segment is %d bytes for %d of records", files[last], data[last])
	}

	// The crash copy opens with nothing repaired, and takes appends over
	// its padding.
	var repairs []string
	cfg.OnRepair = func(what, reason string) { repairs = append(repairs, what+": "+reason) }
	l2, err := Open(crash, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if l2.Next() != n || len(repairs) > 0 {
		t.Fatalf("crash copy: %d records (want %d), repairs %q", l2.Next(), n, repairs)
	}
	if _, err := l2.Append(ctx, []Entry{spanEntry("t_p", "after", "order:2")}); err != nil {
		t.Fatal(err)
	}
	if err := l2.Close(); err != nil {
		t.Fatal(err)
	}
	if rep, err := Verify(crash, VerifyConfig{}); err != nil || rep.Problem != nil || rep.TornTail != nil || rep.Records != n+1 {
		t.Fatalf("crash copy after an append: %+v, %v", rep, err)
	}

	// A record torn over the padding: it alone is moved aside.
	seg := filepath.Join(torn, "ledger", "segments", segmentName(uint32(last+1)))
	f, err := os.OpenFile(seg, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	part := []byte(`{"seq":1200,"ts":"2026-`)
	if _, err := f.WriteAt(part, data[last]); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if rep, err := Verify(torn, VerifyConfig{}); err != nil || rep.Problem != nil || rep.TornTail == nil {
		t.Fatalf("verify of a torn record over padding: %+v, %v; want a torn tail and no problem", rep, err)
	}
	l3, err := Open(torn, Config{SegmentBytes: cfg.SegmentBytes}) // preallocation off: padding read all the same
	if err != nil {
		t.Fatal(err)
	}
	if l3.Next() != n {
		t.Errorf("torn copy: %d records, want %d", l3.Next(), n)
	}
	if err := l3.Close(); err != nil {
		t.Fatal(err)
	}
	aside, _ := filepath.Glob(seg + ".*")
	if len(aside) != 1 {
		t.Fatalf("moved aside: %v", aside)
	}
	if b, _ := os.ReadFile(aside[0]); !bytes.Equal(b, part) {
		t.Errorf("moved aside %q, want the torn record's %q alone", b, part)
	}
}

// TestPadSmallCommits: padding is written after small commits only; a
// large one (past an eighth of the padding) grows the file with its own
// data, so that zeros are not written where records are about to go.
func TestPadSmallCommits(t *testing.T) {
	a, err := createSegment(vfs.Default, t.TempDir(), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer a.f.Close()
	if !a.prealloc {
		t.Skip("no file descriptors here")
	}
	const ahead = 64 << 10
	write := func(n int) int64 {
		t.Helper()
		b := bytes.Repeat([]byte("x"), n-1)
		b = append(b, '\n')
		if _, err := a.f.WriteAt(b, a.size); err != nil {
			t.Fatal(err)
		}
		a.size += int64(n)
		if err := a.pad(int64(n), ahead); err != nil {
			t.Fatal(err)
		}
		st, err := a.f.Stat()
		if err != nil {
			t.Fatal(err)
		}
		return st.Size()
	}
	if got := write(20 << 10); got != 20<<10 {
		t.Errorf("after a large commit the file is %d bytes, want %d (no padding)", got, 20<<10)
	}
	if got := write(300); got != 20<<10+300+ahead {
		t.Errorf("after a small commit the file is %d bytes, want %d of records and %d of padding", got, 20<<10+300, ahead)
	}
	if got := write(300); got != 20<<10+300+ahead {
		t.Errorf("a small commit inside the padding changed the file's size to %d", got)
	}
	if err := a.cut(); err != nil {
		t.Fatal(err)
	}
	if st, _ := a.f.Stat(); st.Size() != a.size {
		t.Errorf("cut: %d bytes, want %d", st.Size(), a.size)
	}
}
