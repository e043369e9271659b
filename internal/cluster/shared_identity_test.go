package cluster_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/loglineos/loglineos/internal/cluster"
	"github.com/loglineos/loglineos/internal/cluster/natstest"
	"github.com/loglineos/loglineos/internal/identity"
)

// opsRecorder keeps the identity's receipts of every node, in one list
// (the cluster's ledger).
type opsRecorder struct {
	mu  sync.Mutex
	ops []string
}

func (r *opsRecorder) Record(_ context.Context, op string, _ map[string]any) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ops = append(r.ops, op)
	return nil
}

func (r *opsRecorder) count(op string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, o := range r.ops {
		if o == op {
			n++
		}
	}
	return n
}

// syncClock is a settable clock safe for concurrent use.
type syncClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *syncClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *syncClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// TestSharedIdentity: two identity services on two nodes' directories,
// sharing their files. Started at once, they make one key ring (one
// keys.create); an account made on one is exchanged on the other; the
// scheduled rotation, due on both at once, is made once and both sign
// with its key.
func TestSharedIdentity(t *testing.T) {
	c := natstest.Start(t, 3)
	clock := &syncClock{t: time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)}
	rec := &opsRecorder{}
	var svc [2]*identity.Service
	var wg sync.WaitGroup
	for i := range svc {
		dir := t.TempDir()
		js, _ := connectNC(t, c.URL(i))
		s, err := cluster.OpenShared(context.Background(), js, cluster.SharedConfig{
			Dir: dir, Node: string(rune('a' + i)), Roots: []string{"jwks", "identity"}, Last: []string{"jwks/ring.json"},
			Match: func(rel string) bool {
				return strings.HasPrefix(rel, "jwks/") || strings.HasPrefix(rel, "identity/accounts/")
			},
			Log: slog.New(slog.NewTextHandler(testWriter{t}, nil)),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		wg.Go(func() {
			id, err := identity.New(context.Background(), identity.Config{
				KeyDir: filepath.Join(dir, "jwks"), StateDir: filepath.Join(dir, "identity"),
				RotateEvery: time.Hour, Now: clock.Now, Receipts: rec, Shared: s,
				Tenants: map[string]identity.TenantConfig{"acme": {}},
			})
			if err != nil {
				t.Error(err)
				return
			}
			t.Cleanup(func() { id.Close() })
			if err := s.SetReload(id.Reload); err != nil {
				t.Error(err)
			}
			svc[i] = id
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if n := rec.count("keys.create"); n != 1 {
		t.Fatalf("keys.create recorded %d times, want 1", n)
	}
	sameKeys := func() {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			d := cmp.Diff(svc[0].Keys(), svc[1].Keys())
			if d == "" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the nodes' rings differ (-a +b):\n%s", d)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	sameKeys()

	acct, secret, err := svc[0].CreateServiceAccount(context.Background(), identity.NewServiceAccount{Tenant: "acme", Role: "app"})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := svc[1].ExchangeClientCredentials(acct.ID, secret)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the account made on a is not exchanged on b: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}

	clock.Add(61 * time.Minute)
	for _, s := range svc {
		wg.Go(func() {
			if err := s.Maintain(context.Background()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := rec.count("keys.rotate"); n != 1 {
		t.Fatalf("the scheduled rotation, due on both nodes, recorded %d times, want 1", n)
	}
	sameKeys()
	active := 0
	for _, k := range svc[1].Keys() {
		if k.State == "active" && k.Activated.Equal(clock.Now()) {
			active++
		}
	}
	if active != 1 {
		t.Fatalf("b's ring has no key activated by the rotation: %+v", svc[1].Keys())
	}
}
