package cycle

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loglineos/loglineos/internal/derive"
	"github.com/loglineos/loglineos/internal/ledger"
)

// deriveAll runs a runner over the ledger until it has derived everything
// and returns the hash line of its streams.
func deriveAll(t *testing.T, l *ledger.Ledger, store string, snapEvery uint64) string {
	t.Helper()
	r, err := Open(l, Options{Dir: store, Default: derive.DefaultTenantConfig(), Fingerprint: "test", SnapshotEvery: snapEvery})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	for r.Cursor() < l.Next() {
		if err := r.Err(); err != nil {
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
	h := streamsHash(t, r)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	return h
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
	buildLedger(t, dir, 30_000)
	l, err := ledger.Open(dir, ledger.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
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
	r, err := Open(l, Options{Dir: store, Default: derive.DefaultTenantConfig(), Fingerprint: "other"})
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
	buildLedger(t, dir, 5000)
	l, err := ledger.Open(dir, ledger.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	store := filepath.Join(dir, "derived")
	deriveAll(t, l, store, 1000)
	r, err := Open(l, Options{Dir: store, Default: derive.DefaultTenantConfig(), Fingerprint: "test"})
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
