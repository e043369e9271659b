package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/loglineos/loglineos/internal/cluster"
	"github.com/loglineos/loglineos/internal/cluster/natstest"
)

func connect(t *testing.T, urls string) jetstream.JetStream {
	t.Helper()
	js, _ := connectNC(t, urls)
	return js
}

func connectNC(t testing.TB, urls string) (jetstream.JetStream, *nats.Conn) {
	t.Helper()
	nc, err := nats.Connect(urls, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js, nc
}

// clock is a settable clock for leases.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// TestFencing: integrator A holds the lease and appends; its lease runs
// out while it is paused, B takes the lease over and fences the log; A's
// next append is refused, and so is its renewal, while B appends. The log
// holds A's marker and batch, then B's marker and batch, nothing of A's
// after B's marker.
func TestFencing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := natstest.Start(t, 3)
	js := connect(t, c.URLs())
	if err := cluster.Setup(ctx, js, 3); err != nil {
		t.Fatal(err)
	}
	log, err := cluster.OpenLog(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)}
	opts := cluster.LeaseOptions{TTL: 5 * time.Second, Now: clk.now}
	a, err := cluster.Acquire(ctx, js, "a", opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cluster.Acquire(ctx, js, "b", opts); !errors.Is(err, cluster.ErrLeaseHeld) {
		t.Fatalf("b while a holds it: err = %v, want ErrLeaseHeld", err)
	}
	last, err := log.Fence(ctx, a, 0)
	if err != nil {
		t.Fatal(err)
	}
	if last, err = log.Append(ctx, a, last, []byte("a1")); err != nil {
		t.Fatal(err)
	}
	aLast := last

	clk.t = clk.t.Add(6 * time.Second) // a is paused past its lease
	b, err := cluster.Acquire(ctx, js, "b", opts)
	if err != nil {
		t.Fatal(err)
	}
	if b.Epoch() <= a.Epoch() {
		t.Errorf("epochs a %d, b %d: want growing", a.Epoch(), b.Epoch())
	}
	bLast, err := log.Last(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if bLast, err = log.Fence(ctx, b, bLast); err != nil {
		t.Fatal(err)
	}

	if _, err := log.Append(ctx, a, aLast, []byte("a2")); !errors.Is(err, cluster.ErrFenced) {
		t.Fatalf("deposed a appends: err = %v, want ErrFenced", err)
	}
	if err := a.Renew(ctx); !errors.Is(err, cluster.ErrLeaseLost) {
		t.Fatalf("deposed a renews: err = %v, want ErrLeaseLost", err)
	}
	if _, err := log.Append(ctx, b, bLast, []byte("b1")); err != nil {
		t.Fatal(err)
	}
	if err := b.Renew(ctx); err != nil {
		t.Fatal(err)
	}

	got := readLog(ctx, t, js)
	want := []string{
		fmt.Sprintf("epoch %d a", a.Epoch()), fmt.Sprintf("batch %d a1", a.Epoch()),
		fmt.Sprintf("epoch %d b", b.Epoch()), fmt.Sprintf("batch %d b1", b.Epoch()),
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("log %q, want %q", got, want)
	}
}

func tail(s []string, n int) []string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// readLog returns the integrated log's messages as "kind epoch payload".
func readLog(ctx context.Context, t *testing.T, js jetstream.JetStream) []string {
	t.Helper()
	var s jetstream.Stream
	var info *jetstream.StreamInfo
	waitFor(t, "the log's stream info", func() bool {
		var err error
		if s, err = js.Stream(ctx, cluster.StreamIntegrated); err != nil {
			return false
		}
		info, err = s.Info(ctx)
		return err == nil
	})
	var out []string
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && seq > 0; seq++ {
		var m *jetstream.RawStreamMsg
		waitFor(t, fmt.Sprintf("message %d of the log", seq), func() bool {
			var err error
			m, err = s.GetMsg(ctx, seq)
			return err == nil
		})
		out = append(out, fmt.Sprintf("%s %s %s", m.Header.Get(cluster.HeaderKind), m.Header.Get(cluster.HeaderEpoch), m.Data))
	}
	return out
}

// TestQuorum: with one node of three killed, and then with one cut off by
// a partition, fenced appends go on through the two that remain; the
// node comes back and the log is whole on it.
func TestQuorum(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c := natstest.Start(t, 3)
	js, nc := connectNC(t, c.URLs())
	if err := cluster.Setup(ctx, js, 3); err != nil {
		t.Fatal(err)
	}
	log, err := cluster.OpenLog(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	l, err := cluster.Acquire(ctx, js, "i", cluster.LeaseOptions{TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	last, err := log.Fence(ctx, l, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	appendSome := func(what string) {
		t.Helper()
		for range 20 {
			deadline := time.Now().Add(30 * time.Second)
			for try := 0; ; try++ {
				actx, cancel := context.WithTimeout(ctx, 2*time.Second)
				seq, err := log.Append(actx, l, last, []byte(fmt.Sprint(n)))
				cancel()
				if err == nil {
					last = seq
					break
				}
				if errors.Is(err, cluster.ErrFenced) || time.Now().After(deadline) {
					t.Fatalf("%s: append %d (try %d): %v; the log ends %q", what, n, try, err, tail(readLog(ctx, t, js), 4))
				}
				// A new stream leader is being elected, or the client's
				// node is cut off from the quorum: try another node.
				if try%5 == 4 {
					_ = nc.ForceReconnect()
				}
				time.Sleep(100 * time.Millisecond)
			}
			n++
		}
	}
	appendSome("all up")
	c.Kill(2)
	appendSome("node 2 killed")
	c.Restart(2)
	c.WaitReady(30 * time.Second)
	c.Partition(1)
	waitFor(t, "node 1 to lose its routes", func() bool { return c.Server(1).NumRoutes() == 0 })
	appendSome("node 1 cut off")
	c.Heal()
	c.WaitReady(30 * time.Second)
	appendSome("healed")
	waitFor(t, "every replica of the log to be current", func() bool {
		s, err := js.Stream(ctx, cluster.StreamIntegrated)
		if err != nil {
			return false
		}
		info, err := s.Info(ctx)
		if err != nil || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
			return false
		}
		for _, r := range info.Cluster.Replicas {
			if !r.Current || r.Lag != 0 {
				return false
			}
		}
		return true
	})
	got := readLog(ctx, t, js)
	if len(got) != n+1 {
		t.Fatalf("%d messages, want %d", len(got), n+1)
	}
	for i, m := range got[1:] {
		if want := fmt.Sprintf("batch %d %d", l.Epoch(), i); m != want {
			t.Fatalf("message %d: %q, want %q", i+1, m, want)
		}
	}
}

// TestCheckSync: a cluster whose servers sync every write passes; one
// with JetStream's default (a sync every two minutes, acknowledging
// before) is refused, every server named.
func TestCheckSync(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct {
		cfg  natstest.Config
		want string
	}{
		{natstest.Config{}, ""},
		{natstest.Config{SyncInterval: 2 * time.Minute}, "(servers n0, n1, n2)"},
	} {
		c := natstest.StartConfig(t, 3, tc.cfg)
		sys, err := nats.Connect(c.URLs(), nats.UserInfo(natstest.SystemUser, natstest.SystemPassword))
		if err != nil {
			t.Fatal(err)
		}
		err = cluster.CheckSync(ctx, sys, 3)
		sys.Close()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("sync always: %v", err)
		case tc.want != "" && (!errors.Is(err, cluster.ErrNotDurable) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("sync every %s: err = %v, want ErrNotDurable naming %s", tc.cfg.SyncInterval, err, tc.want)
		}
		c.Shutdown()
	}
}
