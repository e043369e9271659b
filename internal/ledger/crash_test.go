package ledger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/google/go-cmp/cmp"

	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
)

// acked is what appenders were told: entries and their receipts.
type acked struct {
	mu sync.Mutex
	m  map[string]ackedSpan // by id
}

type ackedSpan struct {
	body     []byte
	receipt  ledgerfmt.Receipt
	verified bool // the receipt was checked against body once
}

// sameReceipt is cmp.Equal for receipts, fast enough to run on every
// acknowledged span after every crash.
func sameReceipt(a, b ledgerfmt.Receipt) bool {
	return a.Op == b.Op && a.SpanID == b.SpanID && a.Tenant == b.Tenant && a.Seq == b.Seq && a.Leaf == b.Leaf &&
		a.Batch.First == b.Batch.First && a.Batch.Size == b.Batch.Size && a.Batch.Root == b.Batch.Root &&
		slices.Equal(a.Batch.Path, b.Batch.Path) && (a.Batch.Path == nil) == (b.Batch.Path == nil) &&
		a.JTI == b.JTI && a.KID == b.KID && bytes.Equal(a.Sig, b.Sig) && (a.Sig == nil) == (b.Sig == nil) &&
		a.TS.Equal(b.TS.Time)
}

func (a *acked) snapshot() map[string]ackedSpan {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]ackedSpan, len(a.m))
	for k, v := range a.m {
		out[k] = v
	}
	return out
}

// checkRecovered opens a crashed copy and checks that every acknowledged span
// is there byte for byte with its receipt, that no id is stored twice, and
// that Verify passes.
func checkRecovered(t *testing.T, fs vfs.FS, cfg Config, want map[string]ackedSpan) {
	t.Helper()
	checkRecoveredAt(t, fs, "data", cfg, want)
}

func checkRecoveredAt(t *testing.T, fs vfs.FS, dir string, cfg Config, want map[string]ackedSpan) {
	t.Helper()
	cfg.FS = fs
	l, err := Open(dir, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	v := verifier(t, l)
	ctx := context.Background()
	for id, a := range want {
		rec, err := l.Get(ctx, "t_a", id)
		if err != nil {
			t.Fatalf("acknowledged %s lost: %v", id, err)
		}
		if !bytes.Equal(rec.Body, a.body) {
			t.Fatalf("acknowledged %s changed: %s", id, rec.Body)
		}
		rc, err := l.Receipt(ctx, "t_a", id)
		if err != nil {
			t.Fatalf("receipt of %s: %v", id, err)
		}
		if !sameReceipt(a.receipt, rc) {
			t.Fatalf("receipt of %s changed:\n%s", id, cmp.Diff(a.receipt, rc))
		}
		// Unchanged receipt and body: checking the signature again would
		// check the same bytes.
		if !a.verified {
			if err := v.VerifyReceipt(&rc, ledgerfmt.KindSpan, rec.Body); err != nil {
				t.Fatalf("receipt of %s: %v", id, err)
			}
			a.verified = true
			want[id] = a
		}
	}
	// No id twice.
	r, err := l.NewReader(0)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var ids struct{ ID string }
		_ = json.Unmarshal(rec.Body, &ids)
		if seen[ids.ID] {
			t.Fatalf("span %s stored twice", ids.ID)
		}
		seen[ids.ID] = true
	}
	r.Close()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(dir, VerifyConfig{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Problem != nil {
		t.Fatalf("verify after recovery: %v", rep.Problem)
	}
}

// TestCrashAnyMoment crashes a ledger under concurrent appenders at random
// moments, keeping a random share of the unsynced data, and recovers.
func TestCrashAnyMoment(t *testing.T) {
	rounds := 25
	if testing.Short() {
		rounds = 5
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range rounds {
		fs := vfs.NewCrashableMem()
		cfg := testConfig(fs)
		cfg.SegmentBytes = 32 << 10
		cfg.CheckpointEvery = uint64(50 + rng.IntN(200))
		l := mustOpen(t, fs, cfg)
		ack := &acked{m: map[string]ackedSpan{}}
		var stop atomic.Bool
		var wg sync.WaitGroup
		var n atomic.Int64
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; !stop.Load(); i++ {
					var es []Entry
					for k := range 1 + (i+w)%5 {
						es = append(es, spanEntry("t_a", fmt.Sprintf("s_%d_%d_%d", w, i, k), "x"))
					}
					if i > 0 && i%4 == 0 { // resend an earlier one
						es = append(es, spanEntry("t_a", fmt.Sprintf("s_%d_%d_0", w, i-3), "x"))
					}
					res, err := l.Append(context.Background(), es)
					if err != nil {
						return
					}
					ack.mu.Lock()
					for j, r := range res {
						ack.m[es[j].ID] = ackedSpan{body: es[j].Body, receipt: r.Receipt}
					}
					ack.mu.Unlock()
					n.Add(int64(len(es)))
				}
			}()
		}
		for n.Load() < int64(100+rng.IntN(1500)) {
			time.Sleep(100 * time.Microsecond)
		}
		want := ack.snapshot()
		crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: rng.IntN(101), RNG: rng})
		stop.Store(true)
		wg.Wait()
		l.Close()
		t.Logf("round %d: %d acknowledged", round, len(want))
		checkRecovered(t, crashed, cfg, want)
	}
}

// TestTornTail cuts the last commit of three records at every byte offset,
// as a crash before its sync completed could, and recovers.
func TestTornTail(t *testing.T) {
	fs := vfs.NewCrashableMem()
	cfg := testConfig(fs)
	cfg.CheckpointEvery = 1 << 30
	cfg.CheckpointInterval = time.Hour
	l := mustOpen(t, fs, cfg)
	ack := &acked{m: map[string]ackedSpan{}}
	for i := range 10 {
		es := []Entry{spanEntry("t_a", fmt.Sprintf("s_%d", i), "x")}
		res := mustAppend(t, l, es...)
		ack.m[es[0].ID] = ackedSpan{body: es[0].Body, receipt: res[0].Receipt}
	}
	before := ack.snapshot()
	seg := "data/ledger/segments/000001.ndjson"
	start := int64(len(readAll(t, fs, seg)))
	mustAppend(t, l, spanEntry("t_a", "last_0", "x"), spanEntry("t_a", "last_1", "x"), spanEntry("t_a", "last_2", "x"))
	base := fs.CrashClone(vfs.CrashCloneCfg{})
	l.Close()
	full := readAll(t, base, seg)
	lineEnds := []int64{}
	for i := start; i < int64(len(full)); i++ {
		if full[i] == '\n' {
			lineEnds = append(lineEnds, i+1)
		}
	}
	if len(lineEnds) != 3 {
		t.Fatalf("want 3 lines in the last commit, have %d", len(lineEnds))
	}
	for cut := start; cut < int64(len(full)); cut++ {
		if raceEnabled && !nearLineEnd(cut, start, lineEnds) && cut%7 != 0 {
			// Under the race detector every cut costs ~40 ms: keep the cuts
			// near each line's start and end and every seventh byte between;
			// .ci/run runs every cut without it.
			continue
		}
		c := base.CrashClone(vfs.CrashCloneCfg{})
		if err := rewritePrefix(c, seg, cut); err != nil {
			t.Fatal(err)
		}
		checkRecovered(t, c, cfg, before)
		// The complete lines before the cut survive; the rest is in .broken.
		kept := 0
		lastEnd := start
		for _, e := range lineEnds {
			if e <= cut {
				kept++
				lastEnd = e
			}
		}
		l := mustOpen(t, c, cfg)
		if got, want := l.Next(), uint64(10+kept); got != want {
			t.Fatalf("cut at %d: %d records, want %d", cut, got, want)
		}
		l.Close()
		names, _ := c.List("data/ledger/segments")
		var broken []string
		for _, n := range names {
			if strings.HasSuffix(n, ".broken") {
				broken = append(broken, n)
			}
		}
		if cut == lastEnd {
			if len(broken) != 0 {
				t.Fatalf("cut at a line end %d: unexpected %v", cut, broken)
			}
			continue
		}
		if len(broken) != 1 || broken[0] != fmt.Sprintf("000001.ndjson.%d.broken", lastEnd) {
			t.Fatalf("cut at %d: broken files %v", cut, broken)
		}
		if got := readAll(t, c, "data/ledger/segments/"+broken[0]); !bytes.Equal(got, full[lastEnd:cut]) {
			t.Fatalf("cut at %d: .broken holds %q, want %q", cut, got, full[lastEnd:cut])
		}
	}
}

// nearLineEnd reports whether cut is within 3 bytes of start or of a line's
// end.
func nearLineEnd(cut, start int64, ends []int64) bool {
	if cut-start < 3 {
		return true
	}
	for _, e := range ends {
		if d := cut - e; d > -3 && d < 3 {
			return true
		}
	}
	return false
}

// TestTruncatedCheckpointedRecords: losing records that a signed checkpoint
// covers is corruption, not a torn tail.
func TestTruncatedCheckpointedRecords(t *testing.T) {
	fs := vfs.NewMem()
	cfg := testConfig(fs)
	l := mustOpen(t, fs, cfg)
	for i := range 5 {
		mustAppend(t, l, spanEntry("t_a", fmt.Sprintf("s_%d", i), "x"))
	}
	l.Close() // writes a checkpoint of size 5
	seg := "data/ledger/segments/000001.ndjson"
	b := readAll(t, fs, seg)
	if err := rewritePrefix(fs, seg, int64(len(b)-10)); err != nil {
		t.Fatal(err)
	}
	// A large ledger (not read whole at open) finds the records missing
	// that its index covers; a small one finds the record cut inside the
	// signed checkpoint as it reads every record.
	_, err := Open("data", Config{FS: fs, CheckAtOpen: -1})
	var ce *CorruptError
	if !errors.As(err, &ce) || !strings.Contains(ce.Reason, "acknowledged records are missing") {
		t.Fatalf("Open = %v, want a CorruptError about missing records", err)
	}
	_, err = Open("data", Config{FS: fs})
	if !errors.As(err, &ce) || !strings.Contains(ce.Reason, "inside the signed checkpoint of size 5") {
		t.Fatalf("Open = %v, want a CorruptError about a record cut inside the checkpoint", err)
	}
	// Without the index, the signed checkpoint still tells.
	if err := fs.RemoveAll("data/ledger/index"); err != nil {
		t.Fatal(err)
	}
	_, err = Open("data", Config{FS: fs})
	if !errors.As(err, &ce) || !strings.Contains(ce.Reason, "checkpoint") {
		t.Fatalf("Open without index = %v, want a CorruptError about the checkpoint", err)
	}
	// Read-only inspection still opens.
	ro, err := Open("data", Config{FS: fs, ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only open: %v", err)
	}
	ro.Close()
}

// TestByteFlips changes single bytes of a sealed segment: Verify reports each,
// and an open that has to read the segment refuses.
func TestByteFlips(t *testing.T) {
	fs := vfs.NewCrashableMem()
	cfg := testConfig(fs)
	cfg.SegmentBytes = 8 << 10
	l := mustOpen(t, fs, cfg)
	for i := range 60 {
		mustAppend(t, l, spanEntry("t_a", fmt.Sprintf("s_%d", i), "x"), spanEntry("t_a", fmt.Sprintf("u_%d", i), "y"))
	}
	l.Close()
	base := fs.CrashClone(vfs.CrashCloneCfg{})
	seg := "data/ledger/segments/000002.ndjson"
	orig := readAll(t, base, seg)
	if names, _ := base.List("data/ledger/segments"); len(names) < 3 {
		t.Fatalf("segment 2 is not sealed: %v", names)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	offsets := map[int]bool{0: true, len(orig) - 1: true}
	// Every byte of the first record, its newline included, and random ones.
	for i := 0; i < len(orig) && orig[i] != '\n'; i++ {
		offsets[i] = true
		offsets[i+1] = true
	}
	for len(offsets) < 600 {
		offsets[rng.IntN(len(orig))] = true
	}
	for off := range offsets {
		c := base.CrashClone(vfs.CrashCloneCfg{})
		b := append([]byte(nil), orig...)
		b[off] ^= byte(1 + rng.IntN(255))
		f, _ := c.Create(seg, vfs.WriteCategoryUnspecified)
		f.Write(b)
		f.Sync()
		f.Close()
		rep, err := Verify("data", VerifyConfig{FS: c})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Problem == nil {
			t.Fatalf("flip at %d (%q -> %q) not reported", off, orig[off], b[off])
		}
		if rep.Problem.Segment != "000002.ndjson" {
			t.Fatalf("flip at %d reported in %s: %v", off, rep.Problem.Segment, rep.Problem)
		}
	}
	// Opening with the index gone reads every segment and refuses.
	c := base.CrashClone(vfs.CrashCloneCfg{})
	b := append([]byte(nil), orig...)
	b[len(b)/2] ^= 0x20
	f, _ := c.Create(seg, vfs.WriteCategoryUnspecified)
	f.Write(b)
	f.Close()
	c.RemoveAll("data/ledger/index")
	_, err := Open("data", Config{FS: c})
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.Segment != "000002.ndjson" || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open = %v, want ErrCorrupt in 000002.ndjson", err)
	}
	t.Logf("open refuses: %v", err)
}

// TestStorageErrors injects ENOSPC and EIO into segment writes and syncs.
func TestStorageErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		op   errorfs.OpKind
		err  error
	}{
		{"write ENOSPC", errorfs.OpFileWriteAt, syscall.ENOSPC},
		{"write EIO", errorfs.OpFileWriteAt, syscall.EIO},
		{"sync ENOSPC", errorfs.OpFileSyncData, syscall.ENOSPC},
		{"sync EIO", errorfs.OpFileSyncData, syscall.EIO},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := vfs.NewCrashableMem()
			var armed atomic.Bool
			var injected atomic.Int32
			fs := errorfs.Wrap(mem, errorfs.InjectorFunc(func(op errorfs.Op) error {
				if armed.Load() && op.Kind == tc.op && strings.Contains(op.Path, "/segments/") {
					injected.Add(1)
					return tc.err
				}
				return nil
			}))
			cfg := testConfig(fs)
			l := mustOpen(t, fs, cfg)
			ack := &acked{m: map[string]ackedSpan{}}
			for i := range 20 {
				e := spanEntry("t_a", fmt.Sprintf("s_%d", i), "x")
				res := mustAppend(t, l, e)
				ack.m[e.ID] = ackedSpan{body: e.Body, receipt: res[0].Receipt}
			}
			armed.Store(true)
			res, err := l.Append(context.Background(), []Entry{spanEntry("t_a", "doomed", "x")})
			if err == nil || res != nil {
				t.Fatalf("Append with %s: results %v, err %v", tc.name, res, err)
			}
			if !errors.Is(err, ErrReadOnly) || !errors.Is(err, tc.err) {
				t.Fatalf("Append error %v: want ErrReadOnly wrapping %v", err, tc.err)
			}
			if injected.Load() != 1 {
				t.Fatalf("injected %d times: a failed sync must not be retried", injected.Load())
			}
			armed.Store(false)
			// Read-only from now on, even though the disk is fine again.
			if _, err := l.Append(context.Background(), []Entry{spanEntry("t_a", "later", "x")}); !errors.Is(err, ErrReadOnly) {
				t.Fatalf("Append after failure: %v, want ErrReadOnly", err)
			}
			if !errors.Is(l.Err(), tc.err) {
				t.Fatalf("Err() = %v", l.Err())
			}
			// Reads still work.
			if _, err := l.Get(context.Background(), "t_a", "s_3"); err != nil {
				t.Fatalf("Get after failure: %v", err)
			}
			l.Close()
			// What was acknowledged survives a crash now.
			checkRecovered(t, mem.CrashClone(vfs.CrashCloneCfg{}), cfg, ack.snapshot())
		})
	}
}
