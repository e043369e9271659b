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
// reload; a file removed is removed; a node's own files that no change
// wrote stay its own; changes from both nodes at once are made one at a
// time, each from the last one's result as the node holds it in memory
// (reloaded), even when a node's copy lags.
func TestSharedFiles(t *testing.T) {
	c := natstest.Start(t, 3)
	dirA, dirB := t.TempDir(), t.TempDir()
	write(t, filepath.Join(dirB, "keys", "stale.json"), "B's own, before it joined")
	a := openShared(t, c.URL(0), "a", dirA, 0)
	b := openShared(t, c.URL(1), "b", dirB, 0)
	// Each node's in-memory copy of a counter, read by its reload.
	var mem [2]atomic.Int64
	reloader := func(i int, dir string) func() error {
		return func() error {
			data, err := os.ReadFile(filepath.Join(dir, "keys", "counter"))
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			if err != nil {
				return err
			}
			v, err := strconv.Atoi(string(data))
			mem[i].Store(int64(v))
			return err
		}
	}
	var reloads atomic.Int64
	if err := a.SetReload(reloader(0, dirA)); err != nil {
		t.Fatal(err)
	}
	rb := reloader(1, dirB)
	if err := b.SetReload(func() error { reloads.Add(1); return rb() }); err != nil {
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

	// Removed on B: removed on A. B's file that no change wrote is not
	// published.
	err = b.Change(ctx, func(context.Context) error {
		return os.Remove(filepath.Join(dirB, "keys", "k1.key"))
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFile(t, filepath.Join(dirA, "keys", "k1.key"), "")
	if _, err := os.Stat(filepath.Join(dirA, "keys", "stale.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("B's own file, which no change wrote, was published: %v", err)
	}

	// A counter incremented by both nodes at once from their memory, B's
	// copy lagging: every change starts from the last one's result, so
	// none is lost.
	cluster.SetWatchDelay(b, 15*time.Millisecond)
	const per = 15
	var wg sync.WaitGroup
	for _, n := range []struct {
		i   int
		s   *cluster.SharedFiles
		dir string
	}{{0, a, dirA}, {1, b, dirB}, {0, a, dirA}, {1, b, dirB}} {
		wg.Go(func() {
			for range per {
				err := n.s.Change(ctx, func(ctx context.Context) error {
					v := mem[n.i].Load() + 1
					// A Change inside a change runs in the same turn.
					return n.s.Change(ctx, func(context.Context) error {
						mem[n.i].Store(v)
						return os.WriteFile(filepath.Join(n.dir, "keys", "counter"), []byte(strconv.FormatInt(v, 10)), 0o600)
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
// once it has not moved for its TTL on the waiter's clock (whatever time
// it claims); one renewed by a live holder makes Change wait, and give up
// with ErrSharedBusy when its context ends; a change whose lock was taken
// over mid-way is not published (ErrNotPublished) and is published once
// the lock is this node's again.
func TestSharedLock(t *testing.T) {
	c := natstest.Start(t, 3)
	dir, dirB := t.TempDir(), t.TempDir()
	const ttl = time.Second
	s := openShared(t, c.URL(0), "a", dir, ttl)
	openShared(t, c.URL(2), "b", dirB, ttl)
	js, _ := connectNC(t, c.URL(1))
	ctx := context.Background()
	kv, err := js.KeyValue(ctx, cluster.IdentityBucket)
	if err != nil {
		t.Fatal(err)
	}
	lockValue := func(holder string) []byte {
		// A claim far in the future: the takeover must not trust it.
		v, _ := json.Marshal(map[string]any{"holder": holder, "until": time.Now().Add(time.Hour)})
		return v
	}

	// A dead holder's lock.
	if _, err := kv.Create(ctx, "lock", lockValue("dead")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := s.Change(ctx, func(context.Context) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < ttl {
		t.Fatalf("took over a lock after %v, before its TTL", d)
	}

	// A live holder, renewing: Change waits until its context ends.
	rev, err := kv.Create(ctx, "lock", lockValue("live"))
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	renewed := make(chan uint64)
	go func() {
		for {
			select {
			case <-stop:
				renewed <- rev
				return
			case <-time.After(ttl / 10):
			}
			if r, err := kv.Update(ctx, "lock", lockValue("live"), rev); err == nil {
				rev = r
			}
		}
	}()
	wctx, cancel := context.WithTimeout(ctx, 3*ttl)
	defer cancel()
	err = s.Change(wctx, func(context.Context) error { t.Error("ran under another's lock"); return nil })
	if !errors.Is(err, cluster.ErrSharedBusy) || !strings.Contains(err.Error(), "live") {
		t.Fatalf("Change under a held lock: %v", err)
	}
	close(stop)
	if err := kv.Delete(ctx, "lock", jetstream.LastRevision(<-renewed)); err != nil {
		t.Fatal(err)
	}

	// The lock taken over in the middle of a change (its holder paused
	// past the TTL, by hand here): fn's context ends, the change is not
	// published, and later it is.
	err = s.Change(ctx, func(ctx context.Context) error {
		write(t, filepath.Join(dir, "keys", "x"), "a's change")
		e, err := kv.Get(ctx, "lock")
		if err != nil {
			return err
		}
		if _, err := kv.Update(ctx, "lock", lockValue("thief"), e.Revision()); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
		case <-time.After(5 * ttl):
			t.Error("fn's context did not end when the lock was lost")
		}
		return nil
	})
	if !errors.Is(err, cluster.ErrNotPublished) {
		t.Fatalf("a change whose lock was lost: %v", err)
	}
	if _, err := kv.Get(ctx, "keys/x"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("published without the lock: %v", err)
	}
	// The thief's lock stops moving; the change is published in the
	// background once it is taken over.
	waitFile(t, filepath.Join(dirB, "keys", "x"), "a's change")
}

// TestSharedPending: a node that died between a change and its
// publication publishes it when it starts again, over the bucket's values
// it started from; a file another node changed meanwhile keeps the other
// node's value; the files it did not change take the bucket's values.
func TestSharedPending(t *testing.T) {
	c := natstest.Start(t, 3)
	dirA, dirB := t.TempDir(), t.TempDir()
	a := openShared(t, c.URL(0), "a", dirA, 0)
	ctx := context.Background()
	err := a.Change(ctx, func(context.Context) error {
		write(t, filepath.Join(dirA, "keys", "x"), "x1")
		write(t, filepath.Join(dirA, "keys", "y"), "y1")
		write(t, filepath.Join(dirA, "keys", "z"), "z1")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	// A's crash mid-change, made by hand: the marker with the digests
	// before the change, then the change on disk (x and z), never
	// published; meanwhile B changes y and z.
	b := openShared(t, c.URL(1), "b", dirB, 0)
	err = b.Change(ctx, func(context.Context) error {
		write(t, filepath.Join(dirB, "keys", "y"), "y2 from b")
		write(t, filepath.Join(dirB, "keys", "z"), "z3 from b")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	marker := `{"keys/x":"` + sha("x1") + `","keys/y":"` + sha("y1") + `","keys/z":"` + sha("z1") + `"}`
	write(t, filepath.Join(dirA, ".shared-change"), marker)
	write(t, filepath.Join(dirA, "keys", "x"), "x2 from a's lost change")
	write(t, filepath.Join(dirA, "keys", "z"), "z2 from a's lost change")

	openShared(t, c.URL(2), "a", dirA, 0)
	waitFile(t, filepath.Join(dirB, "keys", "x"), "x2 from a's lost change")
	waitFile(t, filepath.Join(dirA, "keys", "y"), "y2 from b")
	waitFile(t, filepath.Join(dirA, "keys", "z"), "z3 from b")
	if got, _ := os.ReadFile(filepath.Join(dirB, "keys", "z")); string(got) != "z3 from b" {
		t.Fatalf("b's later change undone: %q", got)
	}
	if _, err := os.Stat(filepath.Join(dirA, ".shared-change")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("marker left after publishing: %v", err)
	}
}

// TestSharedApplyFailure: a file the watcher cannot write (a directory in
// its way) stops this node's changes, which would start from a copy
// behind the cluster's, until it can be written; nothing of it reaches
// the bucket meanwhile.
func TestSharedApplyFailure(t *testing.T) {
	c := natstest.Start(t, 3)
	dirA, dirB := t.TempDir(), t.TempDir()
	a := openShared(t, c.URL(0), "a", dirA, 0)
	b := openShared(t, c.URL(1), "b", dirB, 0)
	ctx := context.Background()
	blocker := filepath.Join(dirB, "keys", "k1.key")
	if err := os.MkdirAll(filepath.Join(blocker, "in-the-way"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := a.Change(ctx, func(context.Context) error { write(t, filepath.Join(dirA, "keys", "k1.key"), "key 1"); return nil }); err != nil {
		t.Fatal(err)
	}
	err := b.Change(ctx, func(context.Context) error { t.Error("changed from a copy behind the cluster's"); return nil })
	if err == nil || !strings.Contains(err.Error(), "keys/k1.key") {
		t.Fatalf("a change on a node that could not write a file: %v", err)
	}
	if err := os.RemoveAll(blocker); err != nil {
		t.Fatal(err)
	}
	if err := b.Change(ctx, func(context.Context) error { write(t, filepath.Join(dirB, "keys", "k2.key"), "key 2"); return nil }); err != nil {
		t.Fatal(err)
	}
	waitFile(t, filepath.Join(dirB, "keys", "k1.key"), "key 1")
	waitFile(t, filepath.Join(dirA, "keys", "k2.key"), "key 2")
	waitFile(t, filepath.Join(dirA, "keys", "k1.key"), "key 1")
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// BenchmarkSharedChange: one change of one shared file on the three-node
// test cluster (the lock taken, the copy caught up, the file written and
// put in the bucket, the lock released), the cost of every identity change
// in a cluster (an account created, a key rotated) besides its receipt.
//
//	go test -run '^$' -bench SharedChange -benchtime 200x ./internal/cluster/
func BenchmarkSharedChange(b *testing.B) {
	c := natstest.Start(b, 3)
	dir := b.TempDir()
	js, _ := connectNC(b, c.URL(0))
	s, err := cluster.OpenShared(context.Background(), js, cluster.SharedConfig{
		Dir: dir, Node: "a", Roots: []string{"keys"},
		Match: func(rel string) bool { return strings.HasPrefix(rel, "keys/") },
	})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	name := filepath.Join(dir, "keys", "n")
	if err := os.MkdirAll(filepath.Dir(name), 0o700); err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		i++
		err := s.Change(context.Background(), func(context.Context) error {
			return os.WriteFile(name, []byte(strconv.Itoa(i)), 0o600)
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}
