package ledger

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/google/go-cmp/cmp"

	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
)

// TestPublishWithholds: while Publish runs for a durable commit, its
// request is not answered, its records are not visible and no checkpoint
// covers them, even one asked for or falling due at every commit.
func TestPublishWithholds(t *testing.T) {
	fs := vfs.NewMem()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg := testConfig(fs)
	cfg.CheckpointEvery = 1
	entered := make(chan Commit, 1)
	gate := make(chan struct{})
	cfg.Publish = func(_ context.Context, c Commit) error {
		if c.First == 3 {
			entered <- c
			<-gate
		}
		return nil
	}
	w := openAt(t, fs, "w", cfg)
	defer w.Close()
	var release sync.Once
	defer release.Do(func() { close(gate) }) // before Close, on failure
	for i := range 3 {
		mustAppend(t, w, spanEntry("t_a", fmt.Sprintf("s_%d", i), "x"))
	}
	type outcome struct {
		res []Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := w.Append(ctx, []Entry{spanEntry("t_a", "s_3", "x")})
		done <- outcome{res, err}
	}()
	c := <-entered // durable, being published
	if c.Receipt.Batch.First != 3 || c.Receipt.Batch.Size != 1 || !strings.Contains(string(c.Lines), `"id":"s_3"`) {
		t.Fatalf("Publish was given %+v", c)
	}
	select {
	case o := <-done:
		t.Fatalf("answered before Publish returned: %+v", o)
	default:
	}
	ckctx, ckcancel := context.WithTimeout(ctx, 2*time.Second)
	defer ckcancel()
	ck, err := w.WriteCheckpoint(ckctx)
	if err != nil {
		t.Fatalf("WriteCheckpoint while a commit is being published: %v", err)
	}
	if ck.Size != 3 {
		t.Fatalf("checkpoint of %d records while 3 are published", ck.Size)
	}
	if n := w.Next(); n != 3 {
		t.Fatalf("Next %d while the commit is being published, want 3", n)
	}
	if _, err := w.Get(ctx, "t_a", "s_3"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of an unpublished span: %v, want ErrNotFound", err)
	}
	release.Do(func() { close(gate) })
	o := <-done
	if o.err != nil || o.res[0].Status != Accepted || o.res[0].Receipt.Seq != 3 {
		t.Fatalf("after Publish returned: %+v %v", o.res, o.err)
	}
	if n := w.Next(); n != 4 {
		t.Fatalf("Next %d once published, want 4", n)
	}
}

// TestPublishFailureStops: when Publish fails, the commit's requests and
// every later one fail (none acknowledged), the ledger turns read-only,
// its checkpoint covers only published records; TruncateAfter moves the
// unpublished tail aside and the writer reopens with the follower's bytes.
func TestPublishFailureStops(t *testing.T) {
	fs := vfs.NewMem()
	ctx := context.Background()
	errFenced := errors.New("fenced")
	const okCommits = 12
	var f *Ledger
	var published int
	cfg := testConfig(fs)
	cfg.CheckpointEvery = 1
	cfg.Publish = func(ctx context.Context, c Commit) error {
		if published == okCommits {
			return errFenced
		}
		published++
		return f.Apply(ctx, c)
	}
	w := openAt(t, fs, "w", cfg)
	shareKey(t, fs, "w", "f")
	f = openAt(t, fs, "f", testConfig(fs))

	var mu sync.Mutex
	var acked []ledgerfmt.Receipt
	var errs []error
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Go(func() {
			for i := range 30 {
				res, err := w.Append(ctx, []Entry{spanEntry("t_a", fmt.Sprintf("s_%d_%d", g, i), "x"), spanEntry("t_b", fmt.Sprintf("s_%d_%d", g, i), "y")})
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					for _, r := range res {
						acked = append(acked, r.Receipt)
					}
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	if len(errs) != 6 {
		t.Fatalf("%d appenders failed, want all 6 to end failing: %v", len(errs), errs)
	}
	fenced := 0
	for _, err := range errs {
		if !errors.Is(err, ErrReadOnly) || !errors.Is(err, ErrPublish) {
			t.Fatalf("Append after a failed publish: %v, want ErrReadOnly and ErrPublish", err)
		}
		if errors.Is(err, errFenced) {
			fenced++
		}
	}
	if fenced == 0 || !errors.Is(w.Err(), errFenced) {
		t.Fatalf("no error names the publish failure: %v; Err %v", errs, w.Err())
	}
	if _, err := w.Append(ctx, []Entry{spanEntry("t_a", "late", "x")}); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Append once stopped: %v, want ErrReadOnly", err)
	}
	size := f.Next()
	for _, rc := range acked {
		if rc.Seq >= size {
			t.Fatalf("seq %d acknowledged but not published (%d records published)", rc.Seq, size)
		}
		frc, err := f.Receipt(ctx, rc.Tenant, rc.SpanID)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(rc, frc); diff != "" {
			t.Fatalf("acknowledged receipt differs on the follower:\n%s", diff)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	ck, err := openCheckpointFile(fs, "w/ledger", readAll(t, fs, "w/ledger/checkpoint"))
	if err != nil || ck.Size > size {
		t.Fatalf("the writer's checkpoint covers %d records, %d were published (%v)", ck.Size, size, err)
	}
	if rep, err := Verify("w", VerifyConfig{FS: fs}); err != nil || rep.Records <= size {
		t.Fatalf("before truncation the writer holds %d records, want more than the %d published (%v)", rep.Records, size, err)
	}

	if err := TruncateAfter("w", size, Config{FS: fs}); err != nil {
		t.Fatal(err)
	}
	if !hasAside(t, fs, "w/ledger/segments", ".unpublished") {
		t.Fatal("no unpublished records kept aside")
	}
	w = openAt(t, fs, "w", testConfig(fs))
	if w.Next() != size {
		t.Fatalf("reopened with %d records, want %d", w.Next(), size)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	sameLedgers(t, fs, "w", "f")
}

// hasAside reports whether dir holds a file whose name contains what.
func hasAside(t *testing.T, fs vfs.FS, dir, what string) bool {
	t.Helper()
	names, err := fs.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if strings.Contains(n, what) {
			return true
		}
	}
	return false
}

// copyDir copies the files under src to dst.
func copyDir(t *testing.T, fs vfs.FS, src, dst string) {
	t.Helper()
	for name, data := range dirFiles(t, fs, src) {
		p := dst + "/" + name
		if err := fs.MkdirAll(fs.PathDir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := fs.Create(p, vfs.WriteCategoryUnspecified)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write([]byte(data)); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTruncateAfter: a closed ledger cut after size records opens holding
// exactly those, with the root it had at that size, and verifies; its
// checkpoint and derived files covering more are set aside and rebuilt.
// A size inside a commit, or beyond the records, is refused.
func TestTruncateAfter(t *testing.T) {
	fs := vfs.NewMem()
	ctx := context.Background()
	cfg := testConfig(fs)
	cfg.SegmentBytes = 16 << 10
	src := openAt(t, fs, "src", cfg)
	for i := range 60 {
		mustAppend(t, src, spanEntry("t_a", fmt.Sprintf("a_%d", i), "x"), spanEntry("t_a", fmt.Sprintf("b_%d", i), "y"), spanEntry("t_b", fmt.Sprintf("c_%d", i), "z"))
	}
	if err := src.waitIndexed(ctx); err != nil {
		t.Fatal(err)
	}
	total := src.Next()
	segs, err := listSegments(fs, "src/ledger/segments")
	if err != nil || len(segs) < 3 {
		t.Fatalf("segments %v (%v): want several", segs, err)
	}
	// The first record of the second segment: a commit boundary.
	boundary, ok := lineSeq(readAll(t, fs, "src/ledger/segments/"+segmentName(2)))
	if !ok {
		t.Fatal("no record in segment 2")
	}
	roots := map[uint64]ledgerfmt.Hash{}
	for _, size := range []uint64{0, 99, boundary, boundary - 3, total} {
		if roots[size], err = src.RootAt(ctx, size); err != nil {
			t.Fatal(err)
		}
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		size uint64
		err  string
	}{
		{"everything", total, ""},
		{"none", 0, ""},
		{"inside a segment", 99, ""},
		{"at a segment's start", boundary, ""},
		{"a commit before a segment's start", boundary - 3, ""},
		{"inside a commit", 100, "record 100 is inside a commit"},
		{"beyond the records", total + 3, fmt.Sprintf("the ledger holds %d records", total)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := "d_" + strings.ReplaceAll(tc.name, " ", "_")
			copyDir(t, fs, "src", dir)
			err := TruncateAfter(dir, tc.size, Config{FS: fs})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("TruncateAfter: %v, want %q", err, tc.err)
				}
				if diff := cmp.Diff(dirFiles(t, fs, "src"), dirFiles(t, fs, dir)); diff != "" {
					t.Fatalf("a refused truncation changed files:\n%.2000s", diff)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.size < total && !hasAside(t, fs, dir+"/ledger", "checkpoint.") {
				t.Error("the checkpoint covering more was not set aside")
			}
			l := openAt(t, fs, dir, cfg)
			root, err := l.RootAt(ctx, tc.size)
			if got := l.Next(); got != tc.size || err != nil || root != roots[tc.size] {
				t.Fatalf("reopened with %d records, root %s (%v); want %d, %s", got, root, err, tc.size, roots[tc.size])
			}
			// It takes appends after them.
			mustAppend(t, l, spanEntry("t_a", "after", "x"))
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			rep, err := Verify(dir, VerifyConfig{FS: fs})
			if err != nil || rep.Problem != nil || rep.Records != tc.size+1 {
				t.Fatalf("verify: %v, %+v", err, rep)
			}
		})
	}
}
