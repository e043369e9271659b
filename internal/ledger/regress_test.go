package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/loglineos/loglineos/internal/datadir"
)

// Defects found by a review of the trust hardening, each a test.

// The server's salvage mode holds the lock itself and opens the ledger
// ReadOnly+DirLocked: the ledger then Probes, meets its own process's lock,
// and limits the view to the last signed checkpoint.
func TestReadOnlyWithTheLockHeldSeesEverything(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{DirLocked: true, CheckpointEvery: 1 << 40, CheckpointInterval: time.Hour, IndexMemTableBytes: 1 << 20, DedupFilterBytes: 1 << 20}
	w, err := Open(dir, cfg) // stands for a writer that crashed after these appends
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i := range 20 {
		mustAppend(t, w, spanEntry("t_a", fmt.Sprintf("s_%d", i), "x"))
	}
	if _, err := w.WriteCheckpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := range 15 {
		mustAppend(t, w, spanEntry("t_a", fmt.Sprintf("u_%d", i), "y"))
	}
	ro := Config{ReadOnly: true}
	l, err := Open(dir, ro)
	if err != nil {
		t.Fatal(err)
	}
	free := l.Next()
	l.Close()

	lk, err := datadir.Acquire(dir, "logline serve") // server.Open, salvage
	if err != nil {
		t.Fatal(err)
	}
	defer lk.Release()
	ro.DirLocked = true
	l, err = Open(dir, ro)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Next() != free {
		t.Fatalf("salvage view (lock held by this process) has %d records, a plain read-only open %d; live=%+v", l.Next(), free, l.live)
	}
}

// A damaged positions entry whose segment number no longer names a segment
// makes the duplicate check fail with a non-corrupt error: lookupFailed
// then turns the whole ledger read-only, instead of failing the request.
func TestDamagedPositionFailsOnlyTheRequest(t *testing.T) {
	fs, cfg := damageBase(t)
	cfg.CheckAtOpen = -1
	l := mustOpen(t, fs, cfg)
	defer l.Close()
	flipFile(t, fs, "data/ledger/index/positions", 16*1+0) // seq 1, top byte of seg
	_, err := l.Append(context.Background(), []Entry{spanEntry("t_1", "s_0_0_1", "o:1")})
	t.Logf("append of a stored span: %v", err)
	if l.Err() != nil {
		t.Fatalf("one damaged index entry made the ledger read-only: %v (IndexDamaged=%v)", l.Err(), l.IndexDamaged())
	}
}

// Get over the same damage: a plain error, no ErrIndexDamaged, no mark.
func TestDamagedPositionIsIndexDamage(t *testing.T) {
	fs, cfg := damageBase(t)
	cfg.CheckAtOpen = -1
	l := mustOpen(t, fs, cfg)
	defer l.Close()
	flipFile(t, fs, "data/ledger/index/positions", 16*1+0)
	_, err := l.Get(context.Background(), "t_1", "s_0_0_1")
	if !errors.Is(err, ErrIndexDamaged) {
		t.Fatalf("Get over a damaged position: %v, want ErrIndexDamaged (IndexDamaged=%v)", err, l.IndexDamaged())
	}
}

// The length field of a positions entry sizes the read buffer unchecked.
func TestDamagedPositionLengthIsChecked(t *testing.T) {
	fs, cfg := damageBase(t)
	cfg.CheckAtOpen = -1
	l := mustOpen(t, fs, cfg)
	defer l.Close()
	flipFile(t, fs, "data/ledger/index/positions", 16*1+13) // n ^= 0x5a<<16
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	_, err := l.Get(context.Background(), "t_1", "s_0_0_1")
	runtime.ReadMemStats(&b)
	t.Logf("Get: %v", err)
	if d := b.TotalAlloc - a.TotalAlloc; d > 1<<20 {
		t.Fatalf("one Get allocated %d bytes: the damaged length sizes the buffer (a flip of its top byte asks for up to 4 GiB)", d)
	}
}

// A read-only open of a ledger whose segments run past the tree state (the
// writer crashed after its last checkpoint): trustedRootAt needs stored
// nodes up to the records' end, which a read-only open never writes.
func TestReadOnlyProofsAfterACrash(t *testing.T) {
	base, cfg := damageBase(t)
	l := mustOpen(t, base, cfg)
	for i := range 5 {
		mustAppend(t, l, spanEntry("t_c", fmt.Sprintf("c_%d", i), "x"))
	}
	crashed := base.CrashClone(vfs.CrashCloneCfg{})
	l.Close()
	ro := cfg
	ro.FS = crashed
	ro.ReadOnly = true
	var repairs []string
	ro.OnRepair = func(what, reason string) { repairs = append(repairs, what+": "+reason) }
	r, err := Open("data", ro)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	t.Logf("next %d, checkpoint %d", r.Next(), r.Checkpoint().Size)
	if _, err := r.RootAt(ctx, r.Checkpoint().Size); err != nil {
		t.Errorf("RootAt(checkpoint size): %v", err)
	}
	if _, err := r.Prove(ctx, 3, 0); err != nil {
		t.Errorf("Prove(3, checkpoint): %v", err)
	}
	if len(repairs) > 0 || r.IndexDamaged() {
		t.Errorf("intact read-only ledger reports damage: %q", repairs)
	}
}

// Scrub finds a damaged record that is durable and acknowledged but after
// the last checkpoint, near the end of the last segment. The next open
// takes it for a torn tail: it cuts it and every record after it, then
// removes the DAMAGED mark, and the ledger reuses their sequence numbers.
func TestDamageFoundIsNeverATornTail(t *testing.T) {
	fs, cfg := damageBase(t)
	cfg.CheckAtOpen = -1
	l := mustOpen(t, fs, cfg)
	for i := range 5 {
		mustAppend(t, l, spanEntry("t_d", fmt.Sprintf("d_%d", i), "x"))
	}
	acked := l.Next()
	segs, _ := listSegments(fs, "data/ledger/segments")
	seg := "data/ledger/segments/" + segmentName(segs[len(segs)-1])
	b := readAll(t, fs, seg)
	// A byte inside the body of the third-to-last record.
	end := len(b) - 1
	for k := 0; k < 3; k++ {
		end = bytes.LastIndexByte(b[:end], '\n')
	}
	flipFile(t, fs, seg, int64(end-10))
	var ce *CorruptError
	if err := l.Scrub(context.Background(), 0); !errors.As(err, &ce) {
		t.Fatalf("Scrub = %v", err)
	}
	t.Logf("scrub: %v", ce)
	l.Close()
	o := cfg
	o.FS = fs
	l2, err := Open("data", o)
	if err == nil {
		defer l2.Close()
		_, _, marked := l2.damageMark()
		t.Fatalf("open after Scrub found damage in acknowledged records succeeded: %d of %d acknowledged records left, damage mark still there: %v", l2.Next(), acked, marked)
	}
}

// A damaged lookup-run block met by the compactor's merge (not by a
// request) makes the ledger read-only for good, logged as damaged records,
// with no rebuild mark.
func TestDamagedRunMetByAMerge(t *testing.T) {
	fs, cfg := damageBase(t)
	names, _ := fs.List("data/ledger/index")
	t.Logf("index files: %v", names)
	cfg.CheckAtOpen = -1
	cfg.IndexMemTableBytes = 96 * 64
	l := mustOpen(t, fs, cfg)
	defer l.Close()
	flipFile(t, fs, firstRun(t, fs, "thing"), 20)
	for i := 0; i < 40 && l.Err() == nil; i++ {
		var es []Entry
		for k := range 64 {
			es = append(es, spanEntry("t_m", fmt.Sprintf("m_%d_%d", i, k), "x"))
		}
		l.Append(context.Background(), es)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !l.IndexDamaged() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	_, err := fs.Stat("data/ledger/index/" + rebuildMarkName)
	if l.Err() != nil || err != nil {
		t.Fatalf("after the compactor met a damaged run: ledger error %v, rebuild mark %v; want appends going on and the mark set", l.Err(), err)
	}
	mustAppend(t, l, spanEntry("t_m", "after", "x"))
}

func TestScrubBesideAppends(t *testing.T) {
	fs, cfg := damageBase(t)
	cfg.SegmentBytes = 4 << 10
	l := mustOpen(t, fs, cfg)
	defer l.Close()
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; !stop.Load(); i++ {
			mustAppend(t, l, spanEntry("t_s", fmt.Sprintf("s_%d", i), "x"), spanEntry("t_s", fmt.Sprintf("s_%d", i), "x"))
		}
	}()
	for i := 0; i < 50; i++ {
		if err := l.Scrub(context.Background(), 0); err != nil {
			t.Fatalf("scrub %d: %v", i, err)
		}
	}
	stop.Store(true)
	wg.Wait()
}

// compactingWriter opens the damage base with small index parts and
// appends to it in the background (at most 400 batches), so that its
// compactor writes and merges runs all the time; it stops at the test's end.
func compactingWriter(t *testing.T) (*vfs.MemFS, Config) {
	fs, cfg := damageBase(t)
	cfg.IndexMemTableBytes = 96 * 64
	cfg.CheckAtOpen = -1
	l := mustOpen(t, fs, cfg)
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; !stop.Load() && i < 400; i++ {
			var es []Entry
			for k := range 32 {
				es = append(es, spanEntry("t_v", fmt.Sprintf("v_%d_%d", i, k), "x"))
			}
			if _, err := l.Append(context.Background(), es); err != nil {
				t.Errorf("append: %v", err)
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	t.Cleanup(func() {
		stop.Store(true)
		wg.Wait()
		l.Close()
	})
	return fs, cfg
}

// Verify beside a writer whose compactor replaces run files.
func TestVerifyBesideCompaction(t *testing.T) {
	fs, _ := compactingWriter(t)
	n := 25
	if raceEnabled {
		n = 8 // .ci/run runs the 25 without the race detector
	}
	for i := 0; i < n; i++ {
		rep, err := Verify("data", VerifyConfig{FS: fs, Live: true})
		if err != nil {
			t.Fatalf("verify %d: %v", i, err)
		}
		if rep.Problem != nil {
			t.Fatalf("verify %d beside a healthy writer: %v", i, rep.Problem)
		}
	}
}

// A read-only open beside a compacting writer: a run deleted between the
// state read and its open leaves the view without an index, and Get of a
// stored span answers ErrNotFound.
func TestReadOnlyOpenBesideCompaction(t *testing.T) {
	fs, cfg := compactingWriter(t)
	ro := cfg
	ro.ReadOnly = true
	ro.FS = fs
	for i := 0; i < 100; i++ {
		r, err := Open("data", ro)
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		_, err = r.Get(context.Background(), "t_1", "s_0_0_1")
		r.Close()
		if errors.Is(err, ErrNotFound) {
			t.Fatalf("read-only open %d: Get of a stored span: %v", i, err)
		}
	}
}
