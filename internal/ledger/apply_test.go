package ledger

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/google/go-cmp/cmp"

	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
)

// openAt opens the ledger in dir on fs.
func openAt(t testing.TB, fs vfs.FS, dir string, cfg Config) *Ledger {
	t.Helper()
	cfg.FS = fs
	l, err := Open(dir, cfg)
	if err != nil {
		t.Fatalf("Open %s: %v", dir, err)
	}
	return l
}

// shareKey gives the data directory to the signing key of the one in from.
func shareKey(t *testing.T, fs vfs.FS, from, to string) {
	t.Helper()
	if err := fs.MkdirAll(to+"/ledger", 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"key", "key.pub"} {
		if err := writeFileAtomic(fs, to+"/ledger/"+name, readAll(t, fs, from+"/ledger/"+name), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// laterClock is a test clock starting d after testConfig's.
func laterClock(d time.Duration) func() time.Time {
	clk := &fakeClock{t: time.Date(2025, 10, 5, 22, 0, 0, 0, time.UTC).Add(d)}
	return clk.Now
}

// recordCommits returns a Publish that keeps every commit, and the commits.
func recordCommits() (func(context.Context, Commit) error, func() []Commit) {
	var mu sync.Mutex
	var cs []Commit
	return func(_ context.Context, c Commit) error {
			mu.Lock()
			defer mu.Unlock()
			cs = append(cs, c)
			return nil
		}, func() []Commit {
			mu.Lock()
			defer mu.Unlock()
			return append([]Commit(nil), cs...)
		}
}

// sameLedgers checks that two closed ledgers hold the same bytes (segments,
// receipts journal, checkpoint) and that both verify with the same root.
func sameLedgers(t *testing.T, fs vfs.FS, a, b string) {
	t.Helper()
	// The segments and the receipts journal, not what was moved aside.
	files := func(dir string) map[string]string {
		m := dirFiles(t, fs, dir)
		maps.DeleteFunc(m, func(name, _ string) bool { return !strings.HasSuffix(name, ".ndjson") })
		return m
	}
	for _, sub := range []string{"ledger/segments", "receipts"} {
		if diff := cmp.Diff(files(a+"/"+sub), files(b+"/"+sub)); diff != "" {
			t.Errorf("%s differs between %s and %s:\n%.2000s", sub, a, b, diff)
		}
	}
	if x, y := readAll(t, fs, a+"/ledger/checkpoint"), readAll(t, fs, b+"/ledger/checkpoint"); string(x) != string(y) {
		t.Errorf("checkpoints differ:\n%s\n%s", x, y)
	}
	var roots []ledgerfmt.Hash
	for _, dir := range []string{a, b} {
		rep, err := Verify(dir, VerifyConfig{FS: fs})
		if err != nil {
			t.Fatalf("verify %s: %v", dir, err)
		}
		if rep.Problem != nil || rep.TornTail != nil {
			t.Fatalf("verify %s: problem %v, torn tail %v", dir, rep.Problem, rep.TornTail)
		}
		roots = append(roots, rep.Root)
	}
	if roots[0] != roots[1] {
		t.Errorf("roots differ: %s %s", roots[0], roots[1])
	}
}

// TestApplyFollowsPublish: a writer publishes every commit through a
// channel (in its wire form) to a follower that applies it, under
// concurrent appends with retried ids; both end with the same bytes, roots,
// indexes and receipts, and every receipt verifies on the follower.
func TestApplyFollowsPublish(t *testing.T) {
	fs := vfs.NewMem()
	ctx := context.Background()
	wire := make(chan []byte, 16)
	var order []uint64 // each commit's First, in the order Publish saw them
	wcfg := testConfig(fs)
	wcfg.Publish = func(_ context.Context, c Commit) error {
		order = append(order, c.First)
		b, err := c.MarshalBinary()
		if err != nil {
			return err
		}
		wire <- b
		return nil
	}
	w := openAt(t, fs, "w", wcfg)
	shareKey(t, fs, "w", "f")
	f := openAt(t, fs, "f", testConfig(fs))
	applied := make(chan error, 1)
	go func() {
		defer close(applied)
		for b := range wire {
			var c Commit
			if err := c.UnmarshalBinary(b); err != nil {
				applied <- err
				return
			}
			if err := f.Apply(ctx, c); err != nil {
				applied <- err
				return
			}
		}
	}()

	const writers, rounds = 8, 40
	var mu sync.Mutex
	var receipts []Result
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range rounds {
				var es []Entry
				for k := range 1 + (g+i)%3 {
					es = append(es, spanEntry(fmt.Sprintf("t_%d", g%3), fmt.Sprintf("s_%d_%d_%d", g, i, k), fmt.Sprintf("o:%d", i%7)))
				}
				if i%5 == 4 { // a retry of the previous request
					es = append(es, spanEntry(fmt.Sprintf("t_%d", g%3), fmt.Sprintf("s_%d_%d_%d", g, i-1, 0), fmt.Sprintf("o:%d", (i-1)%7)))
				}
				res, err := w.Append(ctx, es)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				receipts = append(receipts, res...)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if _, err := w.WriteCheckpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	close(wire)
	if err := <-applied; err != nil {
		t.Fatalf("apply: %v", err)
	}
	for i := 1; i < len(order); i++ {
		if order[i] <= order[i-1] {
			t.Fatalf("published out of order: %v", order)
		}
	}
	if len(order) < 20 {
		t.Fatalf("only %d commits: want many", len(order))
	}

	w = openAt(t, fs, "w", testConfig(fs))
	size := w.Next()
	if got := f.Next(); got != size || size < 400 {
		t.Fatalf("follower has %d records, writer %d (want several hundred)", got, size)
	}
	for _, l := range []*Ledger{w, f} {
		if err := l.waitIndexed(ctx); err != nil {
			t.Fatal(err)
		}
	}
	wroot, err := w.RootAt(ctx, size)
	if err != nil {
		t.Fatal(err)
	}
	froot, err := f.RootAt(ctx, size)
	if err != nil || froot != wroot {
		t.Fatalf("follower root %s (%v), writer root %s", froot, err, wroot)
	}
	if diff := cmp.Diff(indexContents(t, w), indexContents(t, f)); diff != "" {
		t.Fatalf("indexes differ:\n%.2000s", diff)
	}
	v := verifier(t, f)
	for _, r := range receipts {
		rc := r.Receipt
		rec, err := f.Get(ctx, rc.Tenant, rc.SpanID)
		if err != nil {
			t.Fatalf("follower lacks %s/%s: %v", rc.Tenant, rc.SpanID, err)
		}
		if err := v.VerifyReceipt(&rc, rec.Kind, rec.Body); err != nil {
			t.Fatalf("receipt of seq %d on the follower: %v", rc.Seq, err)
		}
		p, err := f.Prove(ctx, rc.Seq, size)
		if err != nil {
			t.Fatal(err)
		}
		if err := ledgerfmt.VerifyInclusion(p.Index, p.TreeSize, rc.Leaf, p.Path, froot); err != nil {
			t.Fatalf("inclusion of seq %d on the follower: %v", rc.Seq, err)
		}
		frc, err := f.Receipt(ctx, rc.Tenant, rc.SpanID)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(rc, frc); diff != "" {
			t.Fatalf("the follower's receipt of seq %d differs:\n%s", rc.Seq, diff)
		}
	}
	for _, l := range []*Ledger{w, f} {
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	sameLedgers(t, fs, "w", "f")
}

// writeCommits appends one single-span request per id to a fresh
// publishing ledger in dir and returns its commits, one per request.
func writeCommits(t *testing.T, fs vfs.FS, dir string, cfg Config, ids ...string) []Commit {
	t.Helper()
	publish, commits := recordCommits()
	cfg.Publish = publish
	l := openAt(t, fs, dir, cfg)
	for _, id := range ids {
		mustAppend(t, l, spanEntry("t_a", id, "x"))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if cs := commits(); len(cs) != len(ids) {
		t.Fatalf("%d commits for %d requests", len(cs), len(ids))
	}
	return commits()
}

// TestApplyRefuses: each commit Apply must refuse, with a clear error; the
// follower is left as it was and goes on with the right commit.
func TestApplyRefuses(t *testing.T) {
	fs := vfs.NewMem()
	ctx := context.Background()
	good := writeCommits(t, fs, "w", testConfig(fs), "s_0", "s_1", "s_2")
	// Another writer with the same key that stored s_0 at seq 1.
	later := testConfig(fs)
	later.Now = laterClock(time.Hour)
	shareKey(t, fs, "w", "w2")
	twin := writeCommits(t, fs, "w2", later, "s_9", "s_0")
	// Another with the same key and an earlier clock.
	earlier := testConfig(fs)
	earlier.Now = laterClock(-time.Hour)
	shareKey(t, fs, "w", "w4")
	early := writeCommits(t, fs, "w4", earlier, "s_8", "s_1")
	// A ledger of its own key.
	foreign := writeCommits(t, fs, "w3", testConfig(fs), "s_1")

	flip := func(c Commit, i int) Commit {
		c.Lines = append([]byte(nil), c.Lines...)
		c.Lines[i] ^= 0x01
		return c
	}
	badSig := good[1]
	badSig.Receipt.Sig = append([]byte(nil), badSig.Receipt.Sig...)
	badSig.Receipt.Sig[5] ^= 0x80
	badFirst := good[1]
	badFirst.First = 2
	short := good[1]
	short.Lines = short.Lines[:len(short.Lines)-1]
	tsb := good[1].Receipt.TS.UTC().AppendFormat(nil, tsLayout)
	// A body changed and its line sealed again with its old leaf: the CRC
	// holds, the leaf does not.
	forged := good[1]
	forged.Lines = []byte(strings.Replace(string(good[1].Lines), `"who":"dan"`, `"who":"eve"`, 1))
	rec, err := decodeRecord(good[1].Lines[:len(good[1].Lines)-1], new([]byte))
	if err != nil {
		t.Fatal(err)
	}
	fillLine(forged.Lines[:len(forged.Lines)-1], &rec.Leaf)
	// Another record, well sealed, in the commit's place.
	var enc encoder
	other := good[1]
	other.Lines, _ = enc.appendRecord(nil, 1, tsb, ledgerfmt.KindSpan, spanEntry("t_a", "s_other", "x").Body)
	for _, tc := range []struct {
		name   string
		c      Commit
		reopen bool // the follower is reopened before: its spans are in the index
		want   string
	}{
		{"gap", good[2], false, "leaves a gap: the ledger's next record is 1"},
		{"repeated", good[0], false, "starts before the ledger's next record, 1: it was applied already"},
		{"flipped byte in a body", flip(good[1], len(good[1].Lines)-20), false, "checksum mismatch"},
		{"flipped byte in a leaf", flip(good[1], 60), false, "checksum mismatch"},
		{"wrong signature", badSig, false, "bad signature"},
		{"foreign key", foreign[0], false, "signed by key"},
		{"first not the receipt's", badFirst, false, "its receipt is for the commit at seq 1"},
		{"line cut short", short, false, "hold 0 whole records, its receipt says 1"},
		{"leaf forged", forged, false, "record 0 (seq 1): leaf hash mismatch"},
		{"another record", other, false, "its records do not match its receipt's batch root"},
		{"ts not after the last commit's", early[1], false, "not after the last commit's"},
		{"span stored already", twin[1], false, "span t_a/s_0 (seq 1) is stored already as seq 0"},
		{"span stored already, indexed", twin[1], true, "span t_a/s_0 (seq 1) is stored already as seq 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := "f_" + strings.NewReplacer(" ", "_", ",", "").Replace(tc.name)
			shareKey(t, fs, "w", dir)
			f := openAt(t, fs, dir, testConfig(fs))
			defer f.Close()
			if err := f.Apply(ctx, good[0]); err != nil {
				t.Fatal(err)
			}
			if tc.reopen {
				if err := f.Close(); err != nil {
					t.Fatal(err)
				}
				f = openAt(t, fs, dir, testConfig(fs))
				defer f.Close()
			}
			err := f.Apply(ctx, tc.c)
			if !errors.Is(err, ErrBadCommit) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Apply: %v; want ErrBadCommit with %q", err, tc.want)
			}
			if f.Next() != 1 || f.Err() != nil {
				t.Fatalf("after a refusal: next %d, err %v", f.Next(), f.Err())
			}
			for _, c := range good[1:] {
				if err := f.Apply(ctx, c); err != nil {
					t.Fatalf("the right commit after a refusal: %v", err)
				}
			}
		})
	}
}

// TestApplyRoles: a ledger takes records from Append or Apply, not both;
// one that publishes takes no Apply.
func TestApplyRoles(t *testing.T) {
	fs := vfs.NewMem()
	ctx := context.Background()
	cs := writeCommits(t, fs, "w", testConfig(fs), "s_0")
	shareKey(t, fs, "w", "f")
	f := openAt(t, fs, "f", testConfig(fs))
	if err := f.Apply(ctx, cs[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Append(ctx, []Entry{spanEntry("t_a", "s_1", "x")}); !errors.Is(err, ErrRole) {
		t.Fatalf("Append after Apply: %v, want ErrRole", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	// Reopened, it may switch.
	f = openAt(t, fs, "f", testConfig(fs))
	mustAppend(t, f, spanEntry("t_a", "s_1", "x"))
	if err := f.Apply(ctx, cs[0]); !errors.Is(err, ErrRole) {
		t.Fatalf("Apply after Append: %v, want ErrRole", err)
	}
	f.Close()

	cfg := testConfig(fs)
	cfg.Publish = func(context.Context, Commit) error { return nil }
	w := openAt(t, fs, "w", cfg)
	defer w.Close()
	if err := w.Apply(ctx, cs[0]); !errors.Is(err, ErrRole) {
		t.Fatalf("Apply on a publishing ledger: %v, want ErrRole", err)
	}
}
