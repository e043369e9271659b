package cycle

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/loglineos/loglineos/internal/derive"
	"github.com/loglineos/loglineos/internal/ledger"
	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
)

// deriveAll runs a runner over the ledger until it has derived everything
// and returns the hash line of its streams.
func deriveAll(t *testing.T, l *ledger.Ledger, store string, snapEvery uint64) string {
	t.Helper()
	return deriveWith(t, l, Config{Dir: store, Default: derive.DefaultTenantConfig(), Fingerprint: "test", SnapshotEvery: snapEvery})
}

// deriveWith is deriveAll with any options.
func deriveWith(t *testing.T, l *ledger.Ledger, cfg Config) string {
	t.Helper()
	r, err := Open(l, cfg)
	if err != nil {
		t.Fatal(err)
	}
	catchUp(t, r, l)
	h := streamsHash(t, r)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	return h
}

// openBuilt builds a ledger of n spans in dir (buildLedger) and opens it
// read-only until the test ends.
func openBuilt(t *testing.T, dir string, n int) *ledger.Ledger {
	t.Helper()
	buildLedger(t, dir, n)
	l, err := ledger.Open(dir, ledger.Config{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// catchUp runs r until it has derived every record of l, then stops it.
func catchUp(t *testing.T, r *Runner, l *ledger.Ledger) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	for r.Cursor() < l.Next() {
		if err := r.Err(); err != nil {
			cancel()
			t.Fatal(err)
		}
		select {
		case <-r.Changed():
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func streamsHash(t *testing.T, r *Runner) string {
	t.Helper()
	var b strings.Builder
	for _, tenant := range r.Tenants() {
		b.WriteString("tenant " + tenant + "\n")
		r.Events(tenant, 0, func(n uint64, ev []byte) bool {
			b.Write(ev)
			b.WriteByte('\n')
			return true
		})
	}
	return b.String()
}

func TestStoreRestart(t *testing.T) {
	dir := t.TempDir()
	l := openBuilt(t, dir, 30_000)
	store := filepath.Join(dir, "derived")
	want := deriveAll(t, l, store, 1000)

	// Bytes written after the last snapshot (a crash before it synced):
	// cut back at open and derived again.
	files, _ := filepath.Glob(filepath.Join(store, "t", "*"))
	files = append(files, filepath.Join(store, "j", "00.idx"), filepath.Join(store, "j", "ab.idx"))
	for _, f := range files {
		fh, err := os.OpenFile(f, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		fh.Write([]byte("garbage written after the snapshot\n"))
		fh.Close()
	}
	if got := deriveAll(t, l, store, 1000); got != want {
		t.Fatal("derived streams differ after cutting back to the snapshot")
	}
	// A lost snapshot: everything is derived again, the same.
	os.Remove(filepath.Join(store, "snapshot"))
	if got := deriveAll(t, l, store, 1000); got != want {
		t.Fatal("derived streams differ after deriving again from the start")
	}
	// A damaged snapshot: the same.
	b, _ := os.ReadFile(filepath.Join(store, "snapshot"))
	b[len(b)/2] ^= 0xff
	os.WriteFile(filepath.Join(store, "snapshot"), b, 0o644)
	if got := deriveAll(t, l, store, 1000); got != want {
		t.Fatal("derived streams differ after a damaged snapshot")
	}
	// Another policy fingerprint rebuilds.
	r, err := Open(l, Config{Dir: store, Default: derive.DefaultTenantConfig(), Fingerprint: "other"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Cursor() != 0 || r.Len("t_0") != 0 {
		t.Fatalf("a store of other policies was kept: cursor %d", r.Cursor())
	}
	r.Close()
}

func TestTrajectoryLookup(t *testing.T) {
	dir := t.TempDir()
	l := openBuilt(t, dir, 5000)
	store := filepath.Join(dir, "derived")
	deriveAll(t, l, store, 1000)
	r, err := Open(l, Config{Dir: store, Default: derive.DefaultTenantConfig(), Fingerprint: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// Every event of the stream is found through its trajectory.
	byTraj := map[string][]string{}
	r.Events("t_2", 0, func(n uint64, ev []byte) bool {
		s := string(ev)
		if i := strings.Index(s, `"trajectory_id":"`); i >= 0 {
			id := s[i+len(`"trajectory_id":"`):]
			id = id[:strings.IndexByte(id, '"')]
			byTraj[id] = append(byTraj[id], s)
		}
		return true
	})
	if len(byTraj) < 100 {
		t.Fatalf("only %d trajectories", len(byTraj))
	}
	for id, want := range byTraj {
		got, err := r.Trajectory("t_2", id)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d events, want %d", id, len(got), len(want))
		}
		for i := range got {
			if string(got[i]) != want[i] {
				t.Fatalf("%s event %d: %s, want %s", id, i, got[i], want[i])
			}
		}
		// Another tenant does not see it.
		if other, _ := r.Trajectory("t_3", id); len(other) != 0 {
			t.Fatalf("%s visible in another tenant", id)
		}
	}
	for _, bad := range []string{"", "t_", "x_0123456789abcdefghijklmn", "t_WWWWWWWWWWWWWWWWWWWWWWWW", "t_../../etc/passwd"} {
		if got, err := r.Trajectory("t_2", bad); err != nil || len(got) != 0 {
			t.Fatalf("%q: %v %v", bad, got, err)
		}
	}
}

// TestFileCache: a handle evicted while in use stays usable until released,
// then is closed; the cache never keeps more than its bound.
func TestFileCache(t *testing.T) {
	dir := t.TempDir()
	st, err := openStoreFiles(dir, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	a, b := st.tenant("a"), st.tenant("b")
	ha, err := st.files.acquire(a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ha.ev.WriteAt([]byte("x\n"), 0); err != nil {
		t.Fatal(err)
	}
	hb, err := st.files.acquire(b) // evicts a's files, which ha still holds
	if err != nil {
		t.Fatal(err)
	}
	if got := st.files.open(); got != 1 {
		t.Fatalf("%d pairs cached, want 1", got)
	}
	if a.h != nil {
		t.Fatal("a's files are still cached")
	}
	var buf [2]byte
	if _, err := ha.ev.ReadAt(buf[:], 0); err != nil || string(buf[:]) != "x\n" {
		t.Fatalf("evicted handle in use: %q %v", buf, err)
	}
	st.files.release(ha)
	if _, err := ha.ev.ReadAt(buf[:], 0); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("evicted handle released: read gives %v, want a closed file", err)
	}
	st.files.release(hb)
	if b.h == nil {
		t.Fatal("b's files left the cache on release")
	}
	// a reopens.
	ha, err = st.files.acquire(a)
	if err != nil {
		t.Fatal(err)
	}
	defer st.files.release(ha)
	if _, err := ha.ev.ReadAt(buf[:], 0); err != nil || string(buf[:]) != "x\n" {
		t.Fatalf("reopened: %q %v", buf, err)
	}
}

// TestFewOpenFiles: a store that may keep only one tenant's files open
// derives and serves the same as one with the default bound, while readers
// read every tenant concurrently (run it with -race).
func TestFewOpenFiles(t *testing.T) {
	dir := t.TempDir()
	l := openBuilt(t, dir, 5000)
	want := deriveAll(t, l, filepath.Join(dir, "wide"), 1000)

	r, err := Open(l, Config{Dir: filepath.Join(dir, "narrow"), Default: derive.DefaultTenantConfig(), Fingerprint: "test", MaxOpenFiles: 2, BatchRecords: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tenant := fmt.Sprintf("t_%d", i)
			for {
				select {
				case <-stop:
					return
				default:
				}
				var last uint64
				if _, err := r.Events(tenant, 0, func(n uint64, ev []byte) bool {
					if n != last || !bytes.Contains(ev, []byte(`"tenant":"`+tenant+`"`)) {
						t.Errorf("%s: event %d (want %d): %s", tenant, n, last, ev)
						return false
					}
					last++
					return true
				}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	catchUp(t, r, l)
	close(stop)
	wg.Wait()
	if got := streamsHash(t, r); got != want {
		t.Fatal("the streams differ with one tenant's files open at a time")
	}
	if n := r.OpenFiles(); n > 2 {
		t.Fatalf("%d tenant files open, want at most 2", n)
	}
}

// TestVerify: Verify finds an undamaged store equal, counts what it
// compared, says why it does not compare a missing store or one of other
// policies, changes no file, and works beside a runner that is deriving.
func TestVerify(t *testing.T) {
	dir := t.TempDir()
	buildLedger(t, dir, 3000)
	l, err := ledger.Open(dir, ledger.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	store := filepath.Join(dir, "derived")
	def := derive.DefaultTenantConfig()

	rep, err := Verify(l, store, def, nil, "test", false, nil)
	if err != nil || rep.Stale == "" || rep.Problem != nil {
		t.Fatalf("no store: %+v %v", rep, err)
	}
	deriveAll(t, l, store, 1000)
	before := treeSums(t, store)
	var calls [][2]int64
	rep, err = Verify(l, store, def, nil, "test", false, func(done, total int64) { calls = append(calls, [2]int64{done, total}) })
	if err != nil || rep.Stale != "" || rep.Problem != nil {
		t.Fatalf("undamaged: %+v %v", rep, err)
	}
	// Progress every 1024 records derived again, and after the last.
	n := int64(l.Next())
	if diff := cmp.Diff([][2]int64{{1024, n}, {2048, n}, {n, n}}, calls); diff != "" {
		t.Errorf("progress (-want +got):\n%s", diff)
	}
	if rep.Cursor != l.Next() || rep.Tenants != 5 || rep.Events == 0 || rep.Files < 5*2+1+100 || rep.Bytes == 0 {
		t.Fatalf("counts: %+v", rep)
	}
	t.Logf("compared %d events of %d tenants, %d files, %d bytes", rep.Events, rep.Tenants, rep.Files, rep.Bytes)
	if diff := cmp.Diff(before, treeSums(t, store)); diff != "" {
		t.Fatalf("Verify changed files:\n%s", diff)
	}
	rep, err = Verify(l, store, def, nil, "other", false, nil)
	if err != nil || !strings.Contains(rep.Stale, "other policies") || rep.Problem != nil {
		t.Fatalf("other policies: %+v %v", rep, err)
	}
	// Other default policies under the same fingerprint derive otherwise:
	// that is a difference.
	other := def
	other.Linker.CloseTimeout = time.Minute
	rep, err = Verify(l, store, other, nil, "test", false, nil)
	if err != nil || rep.Problem == nil {
		t.Fatalf("policies differing under one fingerprint: %+v %v", rep, err)
	}
	t.Logf("policies differing under one fingerprint: %v", rep.Problem)

	// Beside a runner deriving records appended meanwhile.
	r, err := Open(l, Config{Dir: store, Default: def, Fingerprint: "test", SnapshotEvery: 500})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	for i := range 5 {
		var es []ledger.Entry
		for j := range 400 {
			id := fmt.Sprintf("late_%d_%d", i, j)
			body := fmt.Sprintf(`{"did":"sale.post","id":%q,"status":"confirmed","tenant":"t_%d","this":"order:%d","when":"2025-10-06T00:00:00Z","who":"u"}`, id, j%7, j)
			es = append(es, ledger.Entry{Tenant: fmt.Sprintf("t_%d", j%7), ID: id, This: fmt.Sprintf("order:%d", j), Body: []byte(body)})
		}
		if _, err := l.Append(context.Background(), es); err != nil {
			t.Fatal(err)
		}
		rep, err := Verify(l, store, def, nil, "test", false, nil)
		if err != nil || rep.Problem != nil || rep.Stale != "" {
			t.Fatalf("beside a runner: %+v %v", rep, err)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// treeSums returns the SHA-256 and modification time of every file under dir.
func treeSums(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		st, _ := d.Info()
		out[p] = fmt.Sprintf("%x %s", sha256.Sum256(b), st.ModTime())
		return nil
	})
	return out
}

// TestStepPanic: a panic inside derivation (here: a nil engine) is an error
// naming the record, not a crash of the process.
func TestStepPanic(t *testing.T) {
	rec := ledger.Record{Seq: 7, Kind: ledgerfmt.KindSpan, Body: []byte(`{"did":"d","id":"s","status":"ok","tenant":"t","this":"x","when":"2025-10-05T00:00:00Z","who":"w"}`)}
	_, err := step(nil, nil, rec, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "seq 7: derivation panicked") {
		t.Fatalf("got %v", err)
	}
}

// TestOldSnapshotFormat: a store written by an earlier version is rebuilt
// (reason format), and Verify says so rather than calling it damage.
func TestOldSnapshotFormat(t *testing.T) {
	dir := t.TempDir()
	l := openBuilt(t, dir, 1000)
	store := filepath.Join(dir, "derived")
	want := deriveAll(t, l, store, 100)
	old := append([]byte("logline derived snapshot v1\n"), make([]byte, 300)...)
	if err := os.WriteFile(filepath.Join(store, "snapshot"), old, 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(l, store, derive.DefaultTenantConfig(), nil, "test", false, nil)
	if err != nil || rep.Problem != nil || !strings.Contains(rep.Stale, "earlier version") {
		t.Fatalf("Verify: %+v %v", rep, err)
	}
	r, err := Open(l, Config{Dir: store, Default: derive.DefaultTenantConfig(), Fingerprint: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Rebuilt() != RebuildFormat || r.Cursor() != 0 {
		t.Fatalf("rebuilt %q, cursor %d", r.Rebuilt(), r.Cursor())
	}
	catchUp(t, r, l)
	if got := streamsHash(t, r); got != want {
		t.Fatal("the rebuilt streams differ")
	}
}

// TestMissingFile: a derived file that is gone is reported by Verify and
// rebuilds the store at open.
func TestMissingFile(t *testing.T) {
	dir := t.TempDir()
	l := openBuilt(t, dir, 1000)
	store := filepath.Join(dir, "derived")
	want := deriveAll(t, l, store, 100)
	idx, _ := filepath.Glob(filepath.Join(store, "t", "*.idx"))
	if err := os.Remove(idx[0]); err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(l, store, derive.DefaultTenantConfig(), nil, "test", false, nil)
	if err != nil || rep.Problem == nil || rep.Problem.File != "t/"+filepath.Base(idx[0]) || rep.Problem.Found != "no such file" {
		t.Fatalf("Verify: %+v %v", rep, err)
	}
	r, err := Open(l, Config{Dir: store, Default: derive.DefaultTenantConfig(), Fingerprint: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Rebuilt() != RebuildFiles {
		t.Fatalf("rebuilt %q", r.Rebuilt())
	}
	catchUp(t, r, l)
	if got := streamsHash(t, r); got != want {
		t.Fatal("the rebuilt streams differ")
	}
}
