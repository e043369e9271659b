package cluster_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/loglineos/loglineos/internal/cluster"
	"github.com/loglineos/loglineos/internal/cluster/natstest"
)

// openShared opens the shared files of dir (everything under keys/) for a
// test, closed at its end.
func openShared(t *testing.T, url, node, dir string, ttl time.Duration) *cluster.SharedFiles {
	t.Helper()
	js, _ := connectNC(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := cluster.OpenShared(ctx, js, cluster.SharedConfig{
		Dir: dir, Node: node, Roots: []string{"keys"}, LockTTL: ttl,
		Match: func(rel string) bool { return strings.HasPrefix(rel, "keys/") },
		Log:   slog.New(slog.NewTextHandler(testWriter{t}, nil)).With("node", node),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// waitFile waits until name holds want ("" : until it is gone).
func waitFile(t *testing.T, name, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, err := os.ReadFile(name)
		if want == "" && errors.Is(err, os.ErrNotExist) || err == nil && string(got) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %q (err %v), want %q", name, got, err, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func write(t *testing.T, name, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestSharedFiles: a change on one node reaches the other's files and
// reload; a file removed is removed; changes from both nodes at once are
// made one at a time, each from the last one's result.
func TestSharedFiles(t *testing.T) {
	c := natstest.Start(t, 3)
	dirA, dirB := t.TempDir(), t.TempDir()
	write(t, filepath.Join(dirB, "keys", "stale.json"), "B's own, before it joined")
	a := openShared(t, c.URL(0), "a", dirA, 0)
	b := openShared(t, c.URL(1), "b", dirB, 0)
	var reloads atomic.Int64
	if err := b.SetReload(func() error { reloads.Add(1); return nil }); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	err := a.Change(ctx, func(context.Context) error {
		write(t, filepath.Join(dirA, "keys", "ring.json"), "ring 1")
		write(t, filepath.Join(dirA, "keys", "k1.key"), "key 1")
		write(t, filepath.Join(dirA, "other.json"), "not shared")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFile(t, filepath.Join(dirB, "keys", "ring.json"), "ring 1")
	waitFile(t, filepath.Join(dirB, "keys", "k1.key"), "key 1")
	if _, err := os.Stat(filepath.Join(dirB, "other.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a file outside the shared set was copied: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for reloads.Load() < 2 { // SetReload's own call, then the change
		if time.Now().After(deadline) {
			t.Fatalf("reloads %d, want at least 2", reloads.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st, err := os.Stat(filepath.Join(dirB, "keys", "k1.key")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("copied key file: %v, %v", st.Mode(), err)
	}

	// Removed on B: removed on A. B's file that the bucket never held is
	// published by B's change (it is B's disk's state after the change).
	err = b.Change(ctx, func(context.Context) error {
		return os.Remove(filepath.Join(dirB, "keys", "k1.key"))
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFile(t, filepath.Join(dirA, "keys", "k1.key"), "")
	waitFile(t, filepath.Join(dirA, "keys", "stale.json"), "B's own, before it joined")

	// A counter incremented by both nodes at once, B's copy lagging: every
	// change reads the last one's result, so none is lost.
	cluster.SetWatchDelay(b, 15*time.Millisecond)
	const per = 15
	var wg sync.WaitGroup
	for _, n := range []struct {
		s   *cluster.SharedFiles
		dir string
	}{{a, dirA}, {b, dirB}, {a, dirA}, {b, dirB}} {
		wg.Go(func() {
			for range per {
				err := n.s.Change(ctx, func(ctx context.Context) error {
					name := filepath.Join(n.dir, "keys", "counter")
					v := 0
					if b, err := os.ReadFile(name); err == nil {
						v, _ = strconv.Atoi(string(b))
					}
					// A Change inside a change runs in the same lock.
					return n.s.Change(ctx, func(context.Context) error {
						return os.WriteFile(name, []byte(strconv.Itoa(v+1)), 0o600)
					})
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	want := strconv.Itoa(4 * per)
	waitFile(t, filepath.Join(dirA, "keys", "counter"), want)
	waitFile(t, filepath.Join(dirB, "keys", "counter"), want)
}

// TestSharedLock: a lock whose holder stopped renewing it is taken over
// once it runs out; one renewed by a live holder makes Change wait, and
// give up with ErrSharedBusy when its context ends.
func TestSharedLock(t *testing.T) {
	c := natstest.Start(t, 3)
	dir := t.TempDir()
	s := openShared(t, c.URL(0), "a", dir, time.Second)
	js, _ := connectNC(t, c.URL(1))
	ctx := context.Background()
	kv, err := js.KeyValue(ctx, cluster.IdentityBucket)
	if err != nil {
		t.Fatal(err)
	}
	lock := func(holder string, until time.Time) uint64 {
		b, _ := json.Marshal(map[string]any{"holder": holder, "until": until})
		rev, err := kv.Create(ctx, "lock", b)
		if err != nil {
			t.Fatal(err)
		}
		return rev
	}

	// A dead holder's lock, running out in 300 ms.
	lock("dead", time.Now().Add(300*time.Millisecond))
	start := time.Now()
	if err := s.Change(ctx, func(context.Context) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("took over a lock still running after %v", d)
	}

	// A live holder: Change waits until its context ends.
	rev := lock("live", time.Now().Add(time.Hour))
	wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	err = s.Change(wctx, func(context.Context) error { t.Error("ran under another's lock"); return nil })
	if !errors.Is(err, cluster.ErrSharedBusy) || !strings.Contains(err.Error(), "live") {
		t.Fatalf("Change under a held lock: %v", err)
	}
	// Released: Change runs.
	if err := kv.Delete(ctx, "lock", jetstream.LastRevision(rev)); err != nil {
		t.Fatal(err)
	}
	if err := s.Change(ctx, func(context.Context) error { return nil }); err != nil {
		t.Fatal(err)
	}
}

// TestSharedPending: a node that died between a change and its
// publication publishes it when it starts again, over the bucket's older
// values, and takes the bucket's values for the files it did not change.
func TestSharedPending(t *testing.T) {
	c := natstest.Start(t, 3)
	dirA, dirB := t.TempDir(), t.TempDir()
	a := openShared(t, c.URL(0), "a", dirA, 0)
	ctx := context.Background()
	err := a.Change(ctx, func(context.Context) error {
		write(t, filepath.Join(dirA, "keys", "x"), "x1")
		write(t, filepath.Join(dirA, "keys", "y"), "y1")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	// A's crash mid-change, made by hand: the marker with the digests
	// before the change, then the change on disk, never published.
	b := openShared(t, c.URL(1), "b", dirB, 0)
	if err := b.Change(ctx, func(context.Context) error { write(t, filepath.Join(dirB, "keys", "y"), "y2 from b"); return nil }); err != nil {
		t.Fatal(err)
	}
	marker := `{"keys/x":"` + sha("x1") + `","keys/y":"` + sha("y1") + `"}`
	write(t, filepath.Join(dirA, ".shared-change"), marker)
	write(t, filepath.Join(dirA, "keys", "x"), "x2 from a's lost change")

	openShared(t, c.URL(2), "a", dirA, 0)
	waitFile(t, filepath.Join(dirB, "keys", "x"), "x2 from a's lost change")
	waitFile(t, filepath.Join(dirA, "keys", "y"), "y2 from b")
	if _, err := os.Stat(filepath.Join(dirA, ".shared-change")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("marker left after publishing: %v", err)
	}
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
