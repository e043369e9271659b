package ledger

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/google/go-cmp/cmp"
	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"

	"github.com/loglineos/loglineos/internal/datadir"
)

// damageBase builds a closed ledger with sealed segments, several lookup
// runs per kind, a tree of a few levels and a receipts journal, and returns
// its file system and the options it was written with.
func damageBase(t *testing.T) (*vfs.MemFS, Config) {
	t.Helper()
	fs := vfs.NewCrashableMem()
	cfg := testConfig(fs)
	cfg.SegmentBytes = 16 << 10
	for round := range 3 {
		l := mustOpen(t, fs, cfg)
		for i := range 10 {
			var es []Entry
			for k := range 7 {
				es = append(es, spanEntry(fmt.Sprintf("t_%d", k%3), fmt.Sprintf("s_%d_%d_%d", round, i, k), fmt.Sprintf("o:%d", (i+k)%5)))
			}
			mustAppend(t, l, es...)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return fs, cfg
}

// served is what a ledger answers: every span by id, every thing's and
// tenant's spans, every receipt, proofs, roots and the checkpoint.
func served(t *testing.T, l *Ledger) (map[string]string, error) {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	for round := range 3 {
		for i := range 10 {
			for k := range 7 {
				tenant, id := fmt.Sprintf("t_%d", k%3), fmt.Sprintf("s_%d_%d_%d", round, i, k)
				r, err := l.Get(ctx, tenant, id)
				if err != nil {
					return nil, fmt.Errorf("get %s/%s: %w", tenant, id, err)
				}
				out["get "+id] = string(r.Body)
				rc, err := l.Receipt(ctx, tenant, id)
				if err != nil {
					return nil, fmt.Errorf("receipt %s/%s: %w", tenant, id, err)
				}
				out["receipt "+id] = fmt.Sprintf("%+v", rc)
			}
		}
	}
	for tn := range 3 {
		tenant := fmt.Sprintf("t_%d", tn)
		rs, err := l.Tenant(ctx, tenant, 0, 0)
		if err != nil {
			return nil, err
		}
		out["tenant "+tenant] = fmt.Sprint(len(rs), seqs(rs))
		for o := range 5 {
			rs, err := l.Thing(ctx, tenant, fmt.Sprintf("o:%d", o), 0, 0)
			if err != nil {
				return nil, err
			}
			out[fmt.Sprintf("thing %s o:%d", tenant, o)] = fmt.Sprint(seqs(rs))
		}
	}
	n := l.Next()
	for _, size := range []uint64{1, n / 3, n - 1, n} {
		for _, seq := range []uint64{0, size / 2, size - 1} {
			p, err := l.Prove(ctx, seq, size)
			if err != nil {
				return nil, fmt.Errorf("prove %d in %d: %w", seq, size, err)
			}
			out[fmt.Sprintf("proof %d %d", seq, size)] = fmt.Sprint(p)
		}
		root, err := l.RootAt(ctx, size)
		if err != nil {
			return nil, err
		}
		out[fmt.Sprintf("root %d", size)] = root.String()
	}
	rd, err := l.NewReader(n / 2)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	var lines []string
	for {
		line, err := rd.NextLine()
		if err != nil {
			break
		}
		lines = append(lines, string(line))
	}
	out["stream"] = strings.Join(lines, "\n")
	out["checkpoint"] = string(l.Checkpoint().Note)
	return out, nil
}

func seqs(rs []Record) []uint64 {
	out := make([]uint64, len(rs))
	for i := range rs {
		out[i] = rs[i].Seq
	}
	return out
}

// TestFlipCampaign flips single bytes at 64 offsets of every kind of file a
// ledger keeps. Each flip must be reported by Verify, or be harmless: the
// ledger opens and serves exactly what the undamaged copy serves (the file
// is rebuilt, or the bytes are past what it trusts). The table of results
// is logged.
func TestFlipCampaign(t *testing.T) {
	base, cfg := damageBase(t)
	l := mustOpen(t, base.CrashClone(vfs.CrashCloneCfg{}), cfg)
	want, err := served(t, l)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()

	files := map[string]string{} // kind -> one file of that kind
	for name := range dirFiles(t, base, "data") {
		kind := name
		switch {
		case strings.HasPrefix(name, "ledger/segments/"):
			kind = "segment (sealed)"
			if segs, _ := listSegments(base, "data/ledger/segments"); name == "ledger/segments/"+segmentName(segs[len(segs)-1]) {
				kind = "segment (last)"
			}
		case strings.HasPrefix(name, "receipts/"):
			kind = "receipts journal"
		case strings.HasSuffix(name, ".run"):
			kind = "index " + name[len("ledger/index/"):strings.Index(name, "-")] + " run"
		case strings.HasPrefix(name, "ledger/index/tree/L"):
			kind = "tree level " + name[len("ledger/index/tree/"):]
		}
		if _, ok := files[kind]; !ok || name < files[kind] {
			files[kind] = name
		}
	}
	for _, k := range []string{"segment (sealed)", "segment (last)", "ledger/key", "ledger/key.pub", "ledger/checkpoint",
		"ledger/index/state", "ledger/index/positions", "ledger/index/batches", "index id run", "index thing run",
		"index tenant run", "ledger/index/tree/state", "tree level L00", "tree level L03", "receipts journal"} {
		if files[k] == "" {
			t.Fatalf("the base ledger has no %s: %v", k, files)
		}
	}

	kinds := slices.Sorted(func(yield func(string) bool) {
		for k := range files {
			if !yield(k) {
				return
			}
		}
	})
	type tally struct{ verify, harmless int }
	results := make([]tally, len(kinds))
	var wg sync.WaitGroup
	for ki, kind := range kinds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := "data/" + files[kind]
			orig := readAll(t, base, name)
			rng := rand.New(rand.NewPCG(uint64(ki), 11))
			offs := map[int]bool{0: true, len(orig) - 1: true}
			for len(offs) < min(64, len(orig)) {
				offs[rng.IntN(len(orig))] = true
			}
			for _, off := range slices.Sorted(func(yield func(int) bool) {
				for o := range offs {
					if !yield(o) {
						return
					}
				}
			}) {
				c := base.CrashClone(vfs.CrashCloneCfg{})
				b := slices.Clone(orig)
				b[off] ^= byte(1 + rng.IntN(255))
				f, _ := c.Create(name, vfs.WriteCategoryUnspecified)
				f.Write(b)
				f.Close()
				rep, err := Verify("data", VerifyConfig{FS: c})
				if err != nil {
					t.Errorf("%s offset %d: Verify: %v", kind, off, err)
					continue
				}
				if rep.Problem != nil {
					results[ki].verify++
					continue
				}
				o := cfg
				o.FS = c
				l, err := Open("data", o)
				if err != nil {
					t.Errorf("%s offset %d: Verify finds nothing but Open fails: %v", kind, off, err)
					continue
				}
				got, err := served(t, l)
				l.Close()
				if err != nil {
					t.Errorf("%s offset %d: Verify finds nothing but the ledger serves an error: %v", kind, off, err)
					continue
				}
				if d := cmp.Diff(want, got); d != "" {
					t.Errorf("%s offset %d: Verify finds nothing but the ledger serves other data (-want +got):\n%s", kind, off, d)
					continue
				}
				results[ki].harmless++
			}
		}()
	}
	wg.Wait()
	var tbl strings.Builder
	fmt.Fprintf(&tbl, "\n| file kind | flips | found by verify | harmless (rebuilt or untrusted bytes; same data served) |\n|---|---|---|---|\n")
	for ki, kind := range kinds {
		r := results[ki]
		fmt.Fprintf(&tbl, "| %s | %d | %d | %d |\n", kind, r.verify+r.harmless, r.verify, r.harmless)
	}
	t.Log(tbl.String())
}

// flipFile changes one byte of a file in place, under a running ledger too.
func flipFile(t *testing.T, fs vfs.FS, name string, off int64) {
	t.Helper()
	f, err := fs.OpenReadWrite(name, vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [1]byte
	if _, err := f.ReadAt(b[:], off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x5a
	if _, err := f.WriteAt(b[:], off); err != nil {
		t.Fatal(err)
	}
}

func firstRun(t *testing.T, fs vfs.FS, kind string) string {
	t.Helper()
	names, err := fs.List("data/ledger/index")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	for _, n := range names {
		if strings.HasPrefix(n, kind+"-") && strings.HasSuffix(n, ".run") {
			return "data/ledger/index/" + n
		}
	}
	t.Fatalf("no %s run", kind)
	return ""
}

// A damaged id run must never let a stored id pass for a new one: the
// index is rebuilt at open, and the id stays a duplicate.
func TestDamagedIDRunIsRebuiltAtOpen(t *testing.T) {
	fs, cfg := damageBase(t)
	flipFile(t, fs, firstRun(t, fs, "id"), 40)
	var repairs []string
	cfg.OnRepair = func(what, reason string) { repairs = append(repairs, what+": "+reason) }
	l := mustOpen(t, fs, cfg)
	defer l.Close()
	if len(repairs) == 0 || !strings.HasPrefix(repairs[0], "index: ") {
		t.Errorf("repairs = %q, want the index rebuilt", repairs)
	}
	res := mustAppend(t, l, spanEntry("t_1", "s_0_0_1", "o:1"))
	if res[0].Status != Duplicate || res[0].Receipt.Seq != 1 {
		t.Fatalf("re-sent stored span: %v seq %d, want duplicate of seq 1", res[0].Status, res[0].Receipt.Seq)
	}
	if _, err := l.Get(context.Background(), "t_1", "s_0_0_1"); err != nil {
		t.Fatal(err)
	}
}

// Damage met while the ledger runs fails the read (never a shorter
// answer), marks the index, and the next open rebuilds it.
func TestDamageFoundWhileRunning(t *testing.T) {
	fs, cfg := damageBase(t)
	var mu sync.Mutex
	var repairs []string
	cfg.OnRepair = func(what, reason string) {
		mu.Lock()
		repairs = append(repairs, what)
		mu.Unlock()
	}
	l := mustOpen(t, fs, cfg)
	ctx := context.Background()
	want, err := l.Thing(ctx, "t_0", "o:0", 0, 0)
	if err != nil || len(want) == 0 {
		t.Fatalf("Thing = %d records, %v", len(want), err)
	}
	for _, kind := range []string{"thing", "tenant"} {
		name := firstRun(t, fs, kind)
		st, _ := fs.Stat(name)
		for off := int64(0); off < st.Size()-runFooterSize; off += runEntrySize * runBlock / 4 {
			flipFile(t, fs, name, off)
		}
	}
	if _, err := l.Thing(ctx, "t_0", "o:0", 0, 0); !errors.Is(err, ErrIndexDamaged) {
		t.Fatalf("Thing over a damaged run: %v, want ErrIndexDamaged", err)
	}
	if _, err := l.Tenant(ctx, "t_0", 0, 0); !errors.Is(err, ErrIndexDamaged) {
		t.Fatalf("Tenant over a damaged run: %v, want ErrIndexDamaged", err)
	}
	if !l.IndexDamaged() {
		t.Error("IndexDamaged() = false")
	}
	// A damaged tree never gives a wrong proof.
	flipFile(t, fs, "data/ledger/index/tree/L00", 32*5+3)
	if p, err := l.Prove(ctx, 5, l.Next()); !errors.Is(err, ErrIndexDamaged) {
		t.Fatalf("Prove over a damaged tree = %v, %v; want ErrIndexDamaged", p, err)
	}
	// So does a damaged position.
	flipFile(t, fs, "data/ledger/index/positions", 16*7+10)
	if _, err := l.NewReader(7); !errors.Is(err, ErrIndexDamaged) {
		if rd, err2 := l.NewReader(7); err2 == nil {
			_, err = rd.NextLine()
			rd.Close()
		}
		if !errors.Is(err, ErrIndexDamaged) {
			t.Fatalf("reading from a damaged position: %v, want ErrIndexDamaged", err)
		}
	}
	l.Close()
	if _, err := fs.Stat("data/ledger/index/" + rebuildMarkName); err != nil {
		t.Fatalf("no rebuild mark: %v", err)
	}
	repairs = nil
	l = mustOpen(t, fs, cfg)
	defer l.Close()
	got, err := l.Thing(ctx, "t_0", "o:0", 0, 0)
	if err != nil || !slices.Equal(seqs(got), seqs(want)) {
		t.Fatalf("after reopen Thing = %v, %v; want %v", seqs(got), err, seqs(want))
	}
	p, err := l.Prove(ctx, 5, l.Next())
	if err != nil {
		t.Fatal(err)
	}
	if err := ledgerfmt.VerifyInclusion(p.Index, p.TreeSize, p.Leaf, p.Path, l.Checkpoint().Root); err != nil {
		t.Fatalf("proof after rebuild: %v", err)
	}
	if len(repairs) == 0 {
		t.Error("the reopen reported no rebuild")
	}
	if _, err := fs.Stat("data/ledger/index/" + rebuildMarkName); err == nil {
		t.Error("the rebuild mark is still there after the rebuild")
	}
}

// A stored tree that disagrees with the signed checkpoint is recomputed
// from the records; the ledger opens.
func TestTreeMismatchIsRebuiltNotRefused(t *testing.T) {
	fs, cfg := damageBase(t)
	// The top stored node of the compact range: its level file's first node.
	names, _ := fs.List("data/ledger/index/tree")
	slices.Sort(names)
	top := names[len(names)-2] // the last Lnn before "state"
	flipFile(t, fs, "data/ledger/index/tree/"+top, 0)
	base := fs.CrashClone(vfs.CrashCloneCfg{})
	var repairs []string
	cfg.OnRepair = func(what, reason string) { repairs = append(repairs, what) }
	cfg.CheckAtOpen = -1 // a large ledger: the tree is loaded, not recomputed
	l := mustOpen(t, fs, cfg)
	l.Close()
	if !slices.Contains(repairs, "tree") {
		t.Errorf("repairs = %v, want the tree rebuilt", repairs)
	}
	// A small ledger recomputes its tree at every open.
	cfg.CheckAtOpen = 0
	l = mustOpen(t, base, cfg)
	l.Close()
	for _, fs := range []vfs.FS{fs, base} {
		rep, err := Verify("data", VerifyConfig{FS: fs})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Problem != nil {
			t.Fatalf("after the rebuild, Verify: %v", rep.Problem)
		}
	}
}

// flipRecordByte flips a byte inside the body of a record in the middle of
// the first (sealed) segment and returns the segment's name.
func flipRecordByte(t *testing.T, fs vfs.FS) string {
	t.Helper()
	seg := "data/ledger/segments/000001.ndjson"
	b := readAll(t, fs, seg)
	mid := len(b) / 2
	for b[mid] != '"' { // inside a record, away from its framing
		mid++
	}
	flipFile(t, fs, seg, int64(mid-3))
	return seg
}

// A record damaged in the middle of a sealed segment stops the start.
func TestMidSegmentCorruptionStopsTheStart(t *testing.T) {
	fs, cfg := damageBase(t)
	flipRecordByte(t, fs)
	cfg.FS = fs
	_, err := Open("data", cfg)
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.Segment != "000001.ndjson" {
		t.Fatalf("Open = %v, want a *CorruptError in 000001.ndjson", err)
	}
	// A read-only open (salvage) serves what is readable; the damaged
	// record is an error, never wrong data.
	ro := cfg
	ro.ReadOnly = true
	l, err := Open("data", ro)
	if err != nil {
		t.Fatalf("read-only open: %v", err)
	}
	defer l.Close()
	rd, err := l.NewReader(0)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	for {
		r, err := rd.Next()
		if err != nil {
			if r.Seq != 0 || rd.Cursor() != ce.Seq+1 || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("reading stopped at %d with %v, want the damaged record %d reported", rd.Cursor(), err, ce.Seq)
			}
			break
		}
	}
}

// On a ledger too large to check at open, the scrubber finds the damage:
// appends stop, and later opens refuse until the record is restored.
func TestScrubFindsDamage(t *testing.T) {
	fs, cfg := damageBase(t)
	seg := "data/ledger/segments/000001.ndjson"
	orig := readAll(t, fs, seg)
	cfg.CheckAtOpen = -1
	l := mustOpen(t, fs, cfg)
	if l.CheckedAtOpen() {
		t.Fatal("CheckAtOpen -1 checked every record")
	}
	if err := l.Scrub(context.Background(), 0); err != nil {
		t.Fatalf("Scrub of an intact ledger: %v", err)
	}
	flipRecordByte(t, fs)
	err := l.Scrub(context.Background(), 0)
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.Segment != "000001.ndjson" {
		t.Fatalf("Scrub = %v, want a *CorruptError in 000001.ndjson", err)
	}
	if _, err := l.Append(context.Background(), []Entry{spanEntry("t_0", "new", "o:0")}); !errors.Is(err, ErrReadOnly) || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Append after damage: %v, want read-only and corrupt", err)
	}
	if l.Err() == nil {
		t.Fatal("Err() = nil after damage")
	}
	l.Close()
	cfg.FS = fs
	if _, err := Open("data", cfg); !errors.As(err, &ce) {
		t.Fatalf("reopen = %v, want the damage reported", err)
	}
	// The record restored from a copy: the ledger opens, the mark goes.
	f, _ := fs.Create(seg, vfs.WriteCategoryUnspecified)
	f.Write(orig)
	f.Close()
	l = mustOpen(t, fs, cfg)
	defer l.Close()
	if !l.CheckedAtOpen() {
		t.Error("the open after damage did not check every record")
	}
	if _, err := fs.Stat("data/ledger/" + damageMarkName); err == nil {
		t.Error("the damage mark is still there")
	}
	mustAppend(t, l, spanEntry("t_0", "new", "o:0"))
}

// Scrub keeps to its rate.
func TestScrubRate(t *testing.T) {
	fs, cfg := damageBase(t)
	l := mustOpen(t, fs, cfg)
	defer l.Close()
	var size int64
	names, _ := fs.List("data/ledger/segments")
	for _, n := range names {
		st, _ := fs.Stat("data/ledger/segments/" + n)
		size += st.Size()
	}
	start := time.Now()
	if err := l.Scrub(context.Background(), size*4); err != nil { // a quarter of a second's worth
		t.Fatal(err)
	}
	if el := time.Since(start); el < 150*time.Millisecond {
		t.Errorf("scrubbed %d bytes at %d B/s in %v", size, size*4, el)
	}
}

// Read-only opens and Verify change nothing, not even beside a writer.
func TestReadOnlyChangesNothing(t *testing.T) {
	fs, cfg := damageBase(t)
	// A torn tail and a stale index: what a writable open would repair.
	f, _ := fs.OpenReadWrite("data/ledger/segments/000002.ndjson", vfs.WriteCategoryUnspecified)
	st, _ := f.Stat()
	f.WriteAt([]byte(`{"seq":210,"ts":"2025-`), st.Size())
	f.Close()
	fs.Remove("data/ledger/index/state")
	before := dirFiles(t, fs, "data")
	ro := cfg
	ro.ReadOnly = true
	l := mustOpen(t, fs, ro)
	rd, err := l.NewReader(0)
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := rd.Next(); err != nil {
			break
		}
	}
	rd.Close()
	if _, err := l.Prove(context.Background(), 3, 100); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if _, err := Verify("data", VerifyConfig{FS: fs}); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(before, dirFiles(t, fs, "data")); d != "" {
		t.Fatalf("read-only use changed the files:\n%s", d)
	}
}

// Beside a running writer (another holder of the data directory), a
// read-only ledger and Verify see what the writer's signed checkpoint
// covers, however far the writer has gone since.
func TestReadOnlyViewBesideAWriter(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{CheckpointEvery: 1 << 40, CheckpointInterval: time.Hour, IndexMemTableBytes: 1 << 20, DedupFilterBytes: 1 << 20}
	w, err := Open(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i := range 20 {
		mustAppend(t, w, spanEntry("t_a", fmt.Sprintf("s_%d", i), "x"))
	}
	c, err := w.WriteCheckpoint(context.Background())
	if err != nil || c.Size != 20 {
		t.Fatalf("checkpoint %v, %v", c, err)
	}
	for i := range 15 {
		mustAppend(t, w, spanEntry("t_a", fmt.Sprintf("u_%d", i), "y"))
	}
	if _, err := Open(dir, cfg); !errors.Is(err, datadir.ErrLocked) {
		t.Fatalf("a second writer: %v, want datadir.ErrLocked", err)
	}
	ro := cfg
	ro.ReadOnly = true
	l, err := Open(dir, ro)
	if err != nil {
		t.Fatal(err)
	}
	if l.Next() != 20 {
		t.Errorf("read-only view beside the writer has %d records, want the checkpoint's 20", l.Next())
	}
	l.Close()
	rep, err := Verify(dir, VerifyConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Live == nil || rep.Records != 20 || rep.Problem != nil {
		t.Errorf("Verify beside the writer: live %v, %d records, problem %v; want the checkpoint's 20", rep.Live, rep.Records, rep.Problem)
	}
}

// A crash in a whole-file write leaves its temporary file; the next open
// removes it.
func TestOpenRemovesTemporaryFiles(t *testing.T) {
	fs, opts := damageBase(t)
	for _, name := range []string{"data/ledger/.checkpoint.0123456789abcdef.tmp", "data/ledger/index/tree/.state.0123456789abcdef.tmp"} {
		f, err := fs.Create(name, vfs.WriteCategoryUnspecified)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	l := mustOpen(t, fs, opts)
	l.Close()
	for _, name := range []string{"data/ledger/.checkpoint.0123456789abcdef.tmp", "data/ledger/index/tree/.state.0123456789abcdef.tmp"} {
		if _, err := fs.Stat(name); err == nil {
			t.Errorf("%s is still there", name)
		}
	}
}
