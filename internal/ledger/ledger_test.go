package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/google/go-cmp/cmp"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
)

// spanEntry builds a span entry whose body is already canonical (members in
// order, no escapes needed).
func spanEntry(tenant, id, this string) Entry {
	body := fmt.Sprintf(`{"did":"sale.post","id":%q,"status":"confirmed","tenant":%q,"this":%q,"when":"2025-10-05T22:18:07Z","who":"dan"}`, id, tenant, this)
	return Entry{Tenant: tenant, ID: id, This: this, Body: []byte(body)}
}

// fakeClock advances a millisecond at every reading.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Millisecond)
	return c.t
}

func testConfig(fs vfs.FS) Config {
	clk := &fakeClock{t: time.Date(2025, 10, 5, 22, 0, 0, 0, time.UTC)}
	return Config{FS: fs, Now: clk.Now, SegmentBytes: 64 << 10, CheckpointEvery: 100,
		IndexMemTableBytes: 1 << 20, DedupFilterBytes: 1 << 20}
}

func mustOpen(t testing.TB, fs vfs.FS, cfg Config) *Ledger {
	t.Helper()
	cfg.FS = fs
	l, err := Open("data", cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l
}

func mustAppend(t testing.TB, l *Ledger, entries ...Entry) []Result {
	t.Helper()
	res, err := l.Append(context.Background(), entries)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return res
}

func verifier(t testing.TB, l *Ledger) *ledgerfmt.Verifier {
	t.Helper()
	v, err := ledgerfmt.NewVerifier(l.Signer().VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestAppendReadBack(t *testing.T) {
	fs := vfs.NewMem()
	l := mustOpen(t, fs, testConfig(fs))
	defer l.Close()
	v := verifier(t, l)

	var want []Entry
	for i := range 500 {
		want = append(want, spanEntry("t_a", fmt.Sprintf("s_%d", i), fmt.Sprintf("order:%d", i%7)))
	}
	var got []Result
	for i := 0; i < len(want); i += 50 {
		got = append(got, mustAppend(t, l, want[i:i+50]...)...)
	}
	for i, r := range got {
		if r.Status != Accepted {
			t.Fatalf("entry %d: status %v, want accepted", i, r.Status)
		}
		if r.Receipt.Seq != uint64(i) {
			t.Fatalf("entry %d: seq %d", i, r.Receipt.Seq)
		}
		if err := v.VerifyReceipt(&r.Receipt, ledgerfmt.KindSpan, want[i].Body); err != nil {
			t.Fatalf("entry %d: receipt: %v", i, err)
		}
	}
	ctx := context.Background()
	for i, e := range want {
		rec, err := l.Get(ctx, e.Tenant, e.ID)
		if err != nil {
			t.Fatalf("Get %s: %v", e.ID, err)
		}
		if !bytes.Equal(rec.Body, e.Body) || rec.Seq != uint64(i) {
			t.Fatalf("Get %s: seq %d body %s", e.ID, rec.Seq, rec.Body)
		}
		rc, err := l.Receipt(ctx, e.Tenant, e.ID)
		if err != nil {
			t.Fatalf("Receipt %s: %v", e.ID, err)
		}
		if diff := cmp.Diff(got[i].Receipt, rc); diff != "" {
			t.Fatalf("stored receipt of %s differs (-at append +later):\n%s", e.ID, diff)
		}
	}
	if _, err := l.Get(ctx, "t_a", "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get missing: %v, want ErrNotFound", err)
	}
	if _, err := l.Get(ctx, "t_b", "s_1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get other tenant: %v, want ErrNotFound", err)
	}
	thing, err := l.Thing(ctx, "t_a", "order:3", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var ids []uint64
	for _, r := range thing {
		ids = append(ids, r.Seq)
	}
	var wantIDs []uint64
	for i := 3; i < 500; i += 7 {
		wantIDs = append(wantIDs, uint64(i))
	}
	if diff := cmp.Diff(wantIDs, ids); diff != "" {
		t.Fatalf("Thing order:3 (-want +got):\n%s", diff)
	}
	page, err := l.Thing(ctx, "t_a", "order:3", 100, 2)
	if err != nil || len(page) != 2 || page[0].Seq != 101 || page[1].Seq != 108 {
		t.Fatalf("Thing page from 100: %v %+v", err, page)
	}
	ten, err := l.Tenant(ctx, "t_a", 490, 0)
	if err != nil || len(ten) != 10 {
		t.Fatalf("Tenant from 490: %v, %d records", err, len(ten))
	}

	// A reader from any cursor sees exactly the records from there.
	for _, from := range []uint64{0, 1, 255, 256, 257, 499, 500} {
		r, err := l.NewReader(from)
		if err != nil {
			t.Fatal(err)
		}
		n := from
		for {
			rec, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("reader from %d: %v", from, err)
			}
			if rec.Seq != n || !bytes.Equal(rec.Body, want[n].Body) {
				t.Fatalf("reader from %d: got seq %d, want %d", from, rec.Seq, n)
			}
			n++
		}
		r.Close()
		if n != 500 {
			t.Fatalf("reader from %d stopped at %d", from, n)
		}
	}
}

func TestIdempotency(t *testing.T) {
	fs := vfs.NewMem()
	l := mustOpen(t, fs, testConfig(fs))
	v := verifier(t, l)
	a, b, c := spanEntry("t_a", "s_1", "x"), spanEntry("t_a", "s_2", "x"), spanEntry("t_b", "s_1", "x")
	first := mustAppend(t, l, a, b, a, c) // a twice in one request
	if first[0].Status != Accepted || first[1].Status != Accepted || first[2].Status != Duplicate || first[3].Status != Accepted {
		t.Fatalf("statuses %v %v %v %v", first[0].Status, first[1].Status, first[2].Status, first[3].Status)
	}
	if diff := cmp.Diff(first[0].Receipt, first[2].Receipt); diff != "" {
		t.Fatalf("in-request duplicate got another receipt:\n%s", diff)
	}
	// Again, in a later request: the same receipts, nothing appended.
	again := mustAppend(t, l, c, b, a)
	for i, want := range []Result{first[3], first[1], first[0]} {
		if again[i].Status != Duplicate {
			t.Fatalf("resend %d: status %v", i, again[i].Status)
		}
		if diff := cmp.Diff(want.Receipt, again[i].Receipt); diff != "" {
			t.Fatalf("resend %d: receipt differs:\n%s", i, diff)
		}
		if err := v.VerifyReceipt(&again[i].Receipt, ledgerfmt.KindSpan, []Entry{c, b, a}[i].Body); err != nil {
			t.Fatal(err)
		}
	}
	if n := l.Next(); n != 3 {
		t.Fatalf("next seq %d, want 3", n)
	}
	// After reopening, still duplicates.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, fs, testConfig(fs))
	defer l.Close()
	again = mustAppend(t, l, a)
	if again[0].Status != Duplicate || again[0].Receipt.Seq != 0 {
		t.Fatalf("after reopen: %v seq %d", again[0].Status, again[0].Receipt.Seq)
	}
	if diff := cmp.Diff(first[0].Receipt, again[0].Receipt); diff != "" {
		t.Fatalf("receipt changed across reopen:\n%s", diff)
	}
}

// The same id with other content is a conflict, answered with the stored
// record's receipt, whether the original is stored, pending in the same
// request, or found after a reopen; nothing is appended.
func TestIdempotencyConflict(t *testing.T) {
	fs := vfs.NewMem()
	l := mustOpen(t, fs, testConfig(fs))
	a := spanEntry("t_a", "s_1", "x")
	a2 := spanEntry("t_a", "s_1", "y") // same id, other content
	b, b2 := spanEntry("t_a", "s_2", "x"), spanEntry("t_a", "s_2", "z")
	first := mustAppend(t, l, a, b, b2, b) // b2 conflicts with b, pending in this request
	want := []Status{Accepted, Accepted, Conflict, Duplicate}
	for i, r := range first {
		if r.Status != want[i] {
			t.Fatalf("line %d: %v, want %v", i, r.Status, want[i])
		}
	}
	if diff := cmp.Diff(first[1].Receipt, first[2].Receipt); diff != "" {
		t.Fatalf("in-request conflict names another record:\n%s", diff)
	}
	check := func(l *Ledger) {
		t.Helper()
		res := mustAppend(t, l, a2, a, b2)
		if res[0].Status != Conflict || res[1].Status != Duplicate || res[2].Status != Conflict {
			t.Fatalf("statuses %v %v %v, want conflict duplicate conflict", res[0].Status, res[1].Status, res[2].Status)
		}
		if res[0].Receipt.Seq != 0 || res[0].Receipt.Leaf != first[0].Receipt.Leaf {
			t.Fatalf("conflict names seq %d leaf %s, want the stored record's (0, %s)", res[0].Receipt.Seq, res[0].Receipt.Leaf, first[0].Receipt.Leaf)
		}
		if n := l.Next(); n != 2 {
			t.Fatalf("next seq %d, want 2: a conflict appended something", n)
		}
	}
	check(l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, fs, testConfig(fs))
	defer l.Close()
	check(l)
}

func TestConcurrentDuplicates(t *testing.T) {
	fs := vfs.NewMem()
	l := mustOpen(t, fs, testConfig(fs))
	defer l.Close()
	// 16 writers send overlapping ids at once: each id is stored once and
	// everybody gets the same receipt for it.
	var mu sync.Mutex
	seen := map[string]ledgerfmt.Receipt{}
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := range 20 {
				var es []Entry
				for k := range 10 {
					es = append(es, spanEntry("t_a", fmt.Sprintf("s_%d", (w+k+round)%40), "x"))
				}
				res, err := l.Append(context.Background(), es)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for i, r := range res {
					if old, ok := seen[es[i].ID]; ok && !cmp.Equal(old, r.Receipt) {
						t.Errorf("%s: two receipts: seq %d and %d", es[i].ID, old.Seq, r.Receipt.Seq)
					}
					seen[es[i].ID] = r.Receipt
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if n := l.Next(); n != 40 {
		t.Fatalf("stored %d records, want 40 distinct ids", n)
	}
}

func TestMerkleCompatibility(t *testing.T) {
	fs := vfs.NewMem()
	cfg := testConfig(fs)
	cfg.CheckpointEvery = 1 << 30
	l := mustOpen(t, fs, cfg)
	defer l.Close()
	ctx := context.Background()

	rf := compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	ref := rf.NewEmptyRange(0)
	var leaves [][]byte
	for i := range 300 {
		res := mustAppend(t, l, spanEntry("t_a", fmt.Sprintf("s_%d", i), "x"))
		leaf := res[0].Receipt.Leaf
		leaves = append(leaves, append([]byte(nil), leaf[:]...))
		if err := ref.Append(leaf[:], nil); err != nil {
			t.Fatal(err)
		}
		want, err := ref.GetRootHash(nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := l.RootAt(ctx, uint64(i+1))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got[:], want) {
			t.Fatalf("root at size %d differs from transparency-dev/merkle's", i+1)
		}
	}
	// The record's leaf is SHA-256(0x00 || leaf input), RFC 6962's leaf hash.
	rec, err := l.Get(ctx, "t_a", "s_7")
	if err != nil {
		t.Fatal(err)
	}
	var tsb [tsLen]byte
	var in []byte
	in = ledgerfmt.AppendLeafInput(in, rec.Seq, rec.TS.AppendFormat(tsb[:0], tsLayout), rec.Kind, rec.Body)
	if got := rfc6962.DefaultHasher.HashLeaf(in); !bytes.Equal(got, leaves[7]) {
		t.Fatal("leaf is not the RFC 6962 leaf hash of the leaf input")
	}

	c, err := l.WriteCheckpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c == nil || c.Size != 300 {
		t.Fatalf("checkpoint %+v", c)
	}
	// The signed note verifies with x/mod/sumdb/note directly.
	nv, err := note.NewVerifier(l.Signer().VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(c.Note, note.VerifierList(nv))
	if err != nil {
		t.Fatalf("note.Open: %v\n%q", err, c.Note)
	}
	root, _ := ref.GetRootHash(nil)
	if want := fmt.Sprintf("%s\n300\n%s\n", l.Signer().Origin(), ledgerfmt.Hash(root)); n.Text != want {
		t.Fatalf("checkpoint text %q, want %q", n.Text, want)
	}

	for _, size := range []uint64{1, 2, 3, 7, 8, 9, 100, 255, 256, 257, 300} {
		r, _ := l.RootAt(ctx, size)
		for _, seq := range []uint64{0, 1, size / 2, size - 1} {
			if seq >= size {
				continue
			}
			p, err := l.Prove(ctx, seq, size)
			if err != nil {
				t.Fatal(err)
			}
			path := make([][]byte, len(p.Path))
			for i := range p.Path {
				path[i] = p.Path[i][:]
			}
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, seq, size, leaves[seq], path, r[:]); err != nil {
				t.Fatalf("inclusion of %d in %d: %v", seq, size, err)
			}
		}
		for _, size1 := range []uint64{1, size / 3, size - 1} {
			if size1 == 0 || size1 > size {
				continue
			}
			r1, _ := l.RootAt(ctx, size1)
			cp, err := l.ProveConsistency(ctx, size1, size)
			if err != nil {
				t.Fatal(err)
			}
			path := make([][]byte, len(cp))
			for i := range cp {
				path[i] = cp[i][:]
			}
			if err := proof.VerifyConsistency(rfc6962.DefaultHasher, size1, size, path, r1[:], r[:]); err != nil {
				t.Fatalf("consistency %d..%d: %v", size1, size, err)
			}
		}
	}
}

func TestBatchTreeIsRFC6962(t *testing.T) {
	rf := compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	for n := 1; n <= 70; n++ {
		ref := rf.NewEmptyRange(0)
		leaves := make([]ledgerfmt.Hash, n)
		raw := make([][]byte, n)
		for i := range leaves {
			leaves[i] = ledgerfmt.Hash(rfc6962.DefaultHasher.HashLeaf([]byte{byte(i), byte(n)}))
			raw[i] = leaves[i][:]
			_ = ref.Append(raw[i], nil)
		}
		bt := newBatchTree(leaves)
		want, _ := ref.GetRootHash(nil)
		root := bt.root()
		if !bytes.Equal(root[:], want) {
			t.Fatalf("n=%d: batch root differs", n)
		}
		for i := range n {
			p := bt.path(i)
			path := make([][]byte, len(p))
			for k := range p {
				path[k] = p[k][:]
			}
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(i), uint64(n), raw[i], path, want); err != nil {
				t.Fatalf("n=%d i=%d: %v", n, i, err)
			}
		}
	}
}

func TestReceiptTampering(t *testing.T) {
	fs := vfs.NewMem()
	l := mustOpen(t, fs, testConfig(fs))
	defer l.Close()
	v := verifier(t, l)
	e := spanEntry("t_a", "s_1", "x")
	res := mustAppend(t, l, e, spanEntry("t_a", "s_2", "x"), spanEntry("t_a", "s_3", "x"))
	good := res[0].Receipt
	if err := v.VerifyReceipt(&good, ledgerfmt.KindSpan, e.Body); err != nil {
		t.Fatal(err)
	}
	other := spanEntry("t_a", "s_2", "x")
	cases := map[string]func(r *ledgerfmt.Receipt) []byte{
		"another span's body": func(r *ledgerfmt.Receipt) []byte { return other.Body },
		"changed body": func(r *ledgerfmt.Receipt) []byte {
			return bytes.Replace(e.Body, []byte("dan"), []byte("eve"), 1)
		},
		"seq":       func(r *ledgerfmt.Receipt) []byte { r.Seq++; return e.Body },
		"ts":        func(r *ledgerfmt.Receipt) []byte { r.TS.Time = r.TS.Add(time.Second); return e.Body },
		"batch":     func(r *ledgerfmt.Receipt) []byte { r.Batch.Size = 2; return e.Body },
		"root":      func(r *ledgerfmt.Receipt) []byte { r.Batch.Root[0] ^= 1; return e.Body },
		"path":      func(r *ledgerfmt.Receipt) []byte { r.Batch.Path[0][3] ^= 1; return e.Body },
		"signature": func(r *ledgerfmt.Receipt) []byte { r.Sig[5] ^= 1; return e.Body },
		"kid":       func(r *ledgerfmt.Receipt) []byte { r.KID = "00000000"; return e.Body },
		"jti":       func(r *ledgerfmt.Receipt) []byte { r.JTI = "r_x"; return e.Body },
		"span id":   func(r *ledgerfmt.Receipt) []byte { r.SpanID = "s_9"; return e.Body },
	}
	for name, mutate := range cases {
		r := good
		r.Sig = append([]byte(nil), good.Sig...)
		r.Batch.Path = append([]ledgerfmt.Hash(nil), good.Batch.Path...)
		body := mutate(&r)
		if err := v.VerifyReceipt(&r, ledgerfmt.KindSpan, body); !errors.Is(err, ledgerfmt.ErrBadReceipt) {
			t.Errorf("%s: VerifyReceipt = %v, want ErrBadReceipt", name, err)
		}
	}
	// Another ledger's key refuses it.
	fs2 := vfs.NewMem()
	l2 := mustOpen(t, fs2, testConfig(fs2))
	defer l2.Close()
	if err := verifier(t, l2).VerifyReceipt(&good, ledgerfmt.KindSpan, e.Body); !errors.Is(err, ledgerfmt.ErrBadReceipt) {
		t.Errorf("other key: %v", err)
	}
}

// indexContents returns what the open index holds, whatever its layout:
// the positions and batch entries written, and each lookup kind's entries
// (from runs and memory) in order.
func indexContents(t *testing.T, l *Ledger) map[string]string {
	t.Helper()
	x := l.idx
	out := map[string]string{}
	pb := make([]byte, x.posN.Load()*posEntrySize)
	if _, err := x.posF.ReadAt(pb, 0); err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	out["positions"] = string(pb)
	bb := make([]byte, x.batN.Load()*batchEntrySize)
	if _, err := x.batF.ReadAt(bb, 0); err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	out["batches"] = string(bb)
	x.mu.RLock()
	defer x.mu.RUnlock()
	for k := range numKinds {
		var ents []entry
		for _, r := range x.runs[k] {
			if err := r.each(func(e entry) { ents = append(ents, e) }); err != nil {
				t.Fatal(err)
			}
		}
		for _, d := range []*deltaSet{x.frozen, x.active} {
			if d != nil {
				ents = append(ents, d.k[k].ents...)
			}
		}
		slices.SortFunc(ents, cmpEntry)
		out[kindName(k)] = fmt.Sprint(ents)
	}
	return out
}

// dirFiles returns the bytes of every file under dir.
func dirFiles(t *testing.T, fs vfs.FS, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	names, err := fs.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		p := fs.PathJoin(dir, n)
		st, err := fs.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.IsDir() {
			for k, v := range dirFiles(t, fs, p) {
				out[n+"/"+k] = v
			}
			continue
		}
		out[n] = string(readAll(t, fs, p))
	}
	return out
}

func readAll(t *testing.T, fs vfs.FS, name string) []byte {
	t.Helper()
	b, err := readFile(fs, name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestReindexIsIdentical(t *testing.T) {
	fs := vfs.NewMem()
	cfg := testConfig(fs)
	cfg.SegmentBytes = 16 << 10
	l := mustOpen(t, fs, cfg)
	for i := range 40 {
		var es []Entry
		for k := range 25 {
			es = append(es, spanEntry(fmt.Sprintf("t_%d", k%3), fmt.Sprintf("s_%d_%d", i, k), fmt.Sprintf("o:%d", k%5)))
		}
		mustAppend(t, l, es...)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, fs, cfg)
	before := indexContents(t, l)
	treeBefore := readAll(t, fs, "data/ledger/index/tree/L00")
	names, _ := fs.List("data/receipts")
	jBefore := readAll(t, fs, "data/receipts/"+names[0])
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	filesBefore := dirFiles(t, fs, "data/ledger/index")
	segs, _ := fs.List("data/ledger/segments")
	if len(segs) < 3 {
		t.Fatalf("want several segments, have %v", segs)
	}

	if err := fs.RemoveAll("data/ledger/index"); err != nil {
		t.Fatal(err)
	}
	if err := fs.RemoveAll("data/receipts"); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, fs, cfg)
	if diff := cmp.Diff(before, indexContents(t, l)); diff != "" {
		t.Fatalf("rebuilt index differs:\n%s", diff)
	}
	if !bytes.Equal(treeBefore, readAll(t, fs, "data/ledger/index/tree/L00")) {
		t.Fatal("rebuilt tree differs")
	}
	if !bytes.Equal(jBefore, readAll(t, fs, "data/receipts/"+names[0])) {
		t.Fatal("rebuilt receipts journal differs")
	}
	res := mustAppend(t, l, spanEntry("t_0", "s_0_0", "o:0"))
	if res[0].Status != Duplicate {
		t.Fatal("rebuilt index lost idempotency")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// Written out at close, the rebuilt files are the same bytes.
	if diff := cmp.Diff(filesBefore, dirFiles(t, fs, "data/ledger/index")); diff != "" {
		t.Fatalf("rebuilt index files differ:\n%s", diff)
	}
}

func TestVerifyIntact(t *testing.T) {
	fs := vfs.NewMem()
	cfg := testConfig(fs)
	cfg.SegmentBytes = 8 << 10
	l := mustOpen(t, fs, cfg)
	for i := range 30 {
		mustAppend(t, l, spanEntry("t_a", fmt.Sprintf("s_%d", i), "x"), spanEntry("t_a", fmt.Sprintf("u_%d", i), "y"))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := Verify("data", VerifyConfig{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Problem != nil {
		t.Fatalf("intact ledger: %v", rep.Problem)
	}
	if rep.Records != 60 || rep.Commits != 30 || rep.Journal != 30 || rep.Checkpoint == nil || rep.Checkpoint.Size != 60 {
		t.Fatalf("report %+v", rep)
	}
}

// TestVerifyProgress: Verify reports the segment bytes done every
// progressEvery records, across segments, never backwards, and all of them
// at the end.
func TestVerifyProgress(t *testing.T) {
	fs := vfs.NewMem()
	const n = progressEvery + 100
	appendSpans(t, fs, n)
	var calls [][2]int64
	rep, err := Verify("data", VerifyConfig{FS: fs, Progress: func(done, total int64) { calls = append(calls, [2]int64{done, total}) }})
	if err != nil || rep.Problem != nil {
		t.Fatalf("verify: %v %+v", err, rep)
	}
	// The records span many segments: they count all the same.
	if len(calls) != 2 {
		t.Fatalf("progress called %d times, want 2 (at record %d of %d, and the end): %v", len(calls), progressEvery, n, calls)
	}
	for i, c := range calls {
		if c[1] != rep.Bytes || c[0] > c[1] || (i > 0 && c[0] < calls[i-1][0]) {
			t.Errorf("call %d: %d of %d bytes (the segments hold %d)", i, c[0], c[1], rep.Bytes)
		}
	}
	if last := calls[len(calls)-1]; last[0] != last[1] {
		t.Errorf("last call: %d of %d bytes, want all", last[0], last[1])
	}
}

// TestOpenProgress: rebuilding the index at open (as reindex does)
// reports the bytes scanned every progressEvery records, across segments.
func TestOpenProgress(t *testing.T) {
	fs := vfs.NewMem()
	const n = progressEvery + 100
	appendSpans(t, fs, n)
	if err := fs.RemoveAll("data/ledger/index"); err != nil {
		t.Fatal(err)
	}
	var calls [][2]int64
	cfg := testConfig(fs)
	cfg.Progress = func(done, total int64) { calls = append(calls, [2]int64{done, total}) }
	l := mustOpen(t, fs, cfg)
	defer l.Close()
	if len(calls) != 1 || calls[0][0] <= 0 || calls[0][0] >= calls[0][1] {
		t.Fatalf("progress calls %v, want one, at record %d of %d", calls, progressEvery, n)
	}
}

// appendSpans writes a ledger of n spans in fs, in batches of 1000.
func appendSpans(t *testing.T, fs vfs.FS, n int) {
	t.Helper()
	l := mustOpen(t, fs, testConfig(fs))
	for i := 0; i < n; i += 1000 {
		var es []Entry
		for j := i; j < min(n, i+1000); j++ {
			es = append(es, spanEntry("t_a", fmt.Sprintf("s_%d", j), "x"))
		}
		mustAppend(t, l, es...)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestReopenAndAppend(t *testing.T) {
	fs := vfs.NewMem()
	cfg := testConfig(fs)
	cfg.SegmentBytes = 4 << 10
	var all []Entry
	for life := range 5 {
		l := mustOpen(t, fs, cfg)
		for i := range 7 {
			e := spanEntry("t_a", fmt.Sprintf("s_%d_%d", life, i), "x")
			all = append(all, e)
			if res := mustAppend(t, l, e); res[0].Receipt.Seq != uint64(len(all)-1) {
				t.Fatalf("life %d: seq %d, want %d", life, res[0].Receipt.Seq, len(all)-1)
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := Verify("data", VerifyConfig{FS: fs})
	if err != nil || rep.Problem != nil || rep.Records != uint64(len(all)) {
		t.Fatalf("verify: %v %+v", err, rep)
	}
	l := mustOpen(t, fs, cfg)
	defer l.Close()
	for _, e := range all {
		rec, err := l.Get(context.Background(), e.Tenant, e.ID)
		if err != nil || !bytes.Equal(rec.Body, e.Body) {
			t.Fatalf("%s: %v", e.ID, err)
		}
	}
}

// TestIndexRuns uses a tiny in-memory index part, so that lookups go
// through many flushed and merged runs, across reopening and rebuilding.
func TestIndexRuns(t *testing.T) {
	fs := vfs.NewMem()
	cfg := testConfig(fs)
	cfg.IndexMemTableBytes = 1 // the smallest part: 64 spans
	cfg.SegmentBytes = 256 << 10
	l := mustOpen(t, fs, cfg)
	var all []Entry
	for i := 0; len(all) < 3000; i++ {
		var es []Entry
		for k := range 1 + i%40 {
			n := len(all) + k
			es = append(es, spanEntry(fmt.Sprintf("t_%d", n%3), fmt.Sprintf("s_%d", n), fmt.Sprintf("o:%d", n%17)))
		}
		mustAppend(t, l, es...)
		all = append(all, es...)
		if i%10 == 0 {
			// Duplicates of spans now in runs, in memory or pending.
			for _, j := range []int{0, len(all) / 2, len(all) - 1} {
				if res := mustAppend(t, l, all[j]); res[0].Status != Duplicate || res[0].Receipt.Seq != uint64(j) {
					t.Fatalf("resend of %d: %v seq %d", j, res[0].Status, res[0].Receipt.Seq)
				}
			}
		}
	}
	ctx := context.Background()
	check := func(l *Ledger, stage string) {
		t.Helper()
		for i, e := range all {
			rec, err := l.Get(ctx, e.Tenant, e.ID)
			if err != nil || rec.Seq != uint64(i) {
				t.Fatalf("%s: Get %s: seq %d, %v", stage, e.ID, rec.Seq, err)
			}
		}
		for _, q := range []struct {
			from  uint64
			limit int
		}{{0, 0}, {0, 5}, {1000, 7}, {2990, 0}, {1500, 100}} {
			var want []uint64
			for i, e := range all {
				if e.Tenant == "t_1" && e.This == "o:5" && uint64(i) >= q.from && (q.limit == 0 || len(want) < q.limit) {
					want = append(want, uint64(i))
				}
			}
			recs, err := l.Thing(ctx, "t_1", "o:5", q.from, q.limit)
			if err != nil {
				t.Fatal(err)
			}
			var got []uint64
			for _, r := range recs {
				got = append(got, r.Seq)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("%s: Thing from %d limit %d (-want +got):\n%s", stage, q.from, q.limit, diff)
			}
			recs, err = l.Tenant(ctx, "t_2", q.from, q.limit)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for i := int(q.from); i < len(all) && (q.limit == 0 || n < q.limit); i++ {
				if all[i].Tenant == "t_2" {
					if n >= len(recs) || recs[n].Seq != uint64(i) {
						t.Fatalf("%s: Tenant from %d limit %d: record %d is not seq %d", stage, q.from, q.limit, n, i)
					}
					n++
				}
			}
			if n != len(recs) {
				t.Fatalf("%s: Tenant from %d: %d records, want %d", stage, q.from, len(recs), n)
			}
		}
		if _, err := l.Get(ctx, "t_0", "s_1"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s: Get of another tenant's id: %v", stage, err)
		}
	}
	check(l, "live")
	l.idx.mu.RLock()
	runs := len(l.idx.runs[kindID])
	l.idx.mu.RUnlock()
	// 3000 spans in parts of 64: about 47 flushes, merged four by four.
	if runs < 2 || runs > 12 {
		t.Errorf("%d id runs; want a few: flushed, and merged to keep their number down", runs)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, fs, cfg)
	check(l, "reopened")
	before := indexContents(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := fs.RemoveAll("data/ledger/index"); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, fs, cfg)
	defer l.Close()
	check(l, "rebuilt")
	if diff := cmp.Diff(before, indexContents(t, l)); diff != "" {
		t.Fatalf("rebuilt index differs:\n%s", diff)
	}
}

// TestBatchBytesBound: a group commit exceeds MaxBatchBytes by at most one
// record, even within one request's entries (a commit that is published
// as one message must fit it).
func TestBatchBytesBound(t *testing.T) {
	cfg := testConfig(vfs.NewMem())
	cfg.MaxBatchBytes = 8 << 10
	var mu sync.Mutex
	var sizes []int
	cfg.OnCommit = func(records, bytes int, _ time.Duration) {
		mu.Lock()
		sizes = append(sizes, bytes)
		mu.Unlock()
	}
	l := mustOpen(t, vfs.NewMem(), cfg)
	defer l.Close()
	pad := strings.Repeat("x", 1000)
	es := make([]Entry, 100)
	for i := range es {
		id := fmt.Sprintf("s_%d", i)
		es[i] = Entry{Tenant: "t", ID: id, Body: fmt.Appendf(nil, `{"id":%q,"pad":%q,"tenant":"t"}`, id, pad)}
	}
	mustAppend(t, l, es...)
	mu.Lock()
	defer mu.Unlock()
	total := 0
	for _, n := range sizes {
		total += n
		if n > int(cfg.MaxBatchBytes)+1200 {
			t.Errorf("a commit of %d bytes, bound %d and one record of ~1,100", n, cfg.MaxBatchBytes)
		}
	}
	if total < 100*1000 {
		t.Errorf("commits of %d bytes in all for 100 records of over 1,000", total)
	}
}

// TestWaitNext: WaitNext returns once the ledger holds the records asked
// for, and with the context's error when they do not come.
func TestWaitNext(t *testing.T) {
	l := mustOpen(t, vfs.NewMem(), testConfig(vfs.NewMem()))
	defer l.Close()
	done := make(chan error, 1)
	go func() { done <- l.WaitNext(context.Background(), 2) }()
	mustAppend(t, l, spanEntry("t", "a", "x:1"))
	select {
	case err := <-done:
		t.Fatalf("WaitNext(2) returned %v with one record", err)
	case <-time.After(50 * time.Millisecond):
	}
	mustAppend(t, l, spanEntry("t", "b", "x:1"))
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WaitNext(2) still waiting with two records")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := l.WaitNext(ctx, 3); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitNext(3) with two records: %v, want the deadline", err)
	}
}
