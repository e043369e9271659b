package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loglineos/loglineos/internal/cluster"
	"github.com/loglineos/loglineos/internal/cluster/natstest"
	"github.com/loglineos/loglineos/internal/cycle"
	"github.com/loglineos/loglineos/internal/history"
	"github.com/loglineos/loglineos/internal/ledger"
	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
)

// testNode is a cluster.Node run by a test, stoppable and restartable on
// the same data directory.
type testNode struct {
	name, dir, url string
	set            func(*cluster.NodeConfig) // changes the node's configuration, if not nil
	cancel         context.CancelFunc
	done           chan error
	node           *cluster.Node
}

func (n *testNode) start(t *testing.T) {
	t.Helper()
	_, nc := connectNC(t, n.url)
	cfg := cluster.NodeConfig{
		Name: n.name, Dir: n.dir, LeaseTTL: time.Second,
		Log: slog.New(slog.NewTextHandler(testWriter{t}, nil)).With("test", t.Name()),
	}
	if n.set != nil {
		n.set(&cfg)
	}
	node, err := cluster.NewNode(context.Background(), nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel, n.done, n.node = cancel, make(chan error, 1), node
	go func() {
		err := node.Run(ctx)
		nc.Close()
		n.done <- err
	}()
}

// stop stops the node (its NATS connection closes first: what it had not
// published stays unpublished) and returns Run's error.
func (n *testNode) stop() error {
	n.cancel()
	return <-n.done
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p[:len(p)-1]))
	return len(p), nil
}

// sharedKey makes a ledger key in a first data directory and copies it to
// the others: every node signs with the cluster's key.
func sharedKey(t testing.TB, dirs ...string) {
	t.Helper()
	l, err := ledger.Open(dirs[0], ledger.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs[1:] {
		if err := os.MkdirAll(filepath.Join(d, "ledger"), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"key", "key.pub"} {
			b, err := os.ReadFile(filepath.Join(dirs[0], "ledger", f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(d, "ledger", f), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// gateways are the test's Submitters, replaceable while clients use them.
type gateways struct {
	mu   sync.Mutex
	subs []*cluster.Submitter
}

func (g *gateways) get(i int) *cluster.Submitter {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.subs[i%len(g.subs)]
}

func (g *gateways) set(i int, s *cluster.Submitter) {
	g.mu.Lock()
	g.subs[i] = s
	g.mu.Unlock()
}

// load runs clients that each submit batches of spans one after another
// until stop is closed, recording every outcome; a batch that gets no
// answer is sent again, same ids, through the next gateway, as an app
// would.
func load(ctx context.Context, gws *gateways, hist *history.History, clients, size int, stop <-chan struct{}) (acked *atomic.Int64, wait func()) {
	acked = &atomic.Int64{}
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tenant := fmt.Sprintf("t_%d", c%2)
			for b := 0; ; b++ {
				var es []ledger.Entry
				for i := range size {
					id := fmt.Sprintf("s_%d_%d_%d", c, b, i)
					body := fmt.Appendf(nil, `{"did":"sale.post","id":%q,"status":"confirmed","tenant":%q,"this":"order:%d","when":"2025-10-05T22:18:07Z","who":"dan"}`, id, tenant, b)
					es = append(es, ledger.Entry{Tenant: tenant, ID: id, This: fmt.Sprintf("order:%d", b), Body: body})
				}
				for try := 0; ; try++ {
					select {
					case <-stop:
						return
					default:
					}
					var ops []*history.Op
					for _, e := range es {
						ops = append(ops, hist.Invoke(fmt.Sprint(c), tenant, e.ID, e.Body))
					}
					res, err := gws.get(c+try).Append(ctx, es)
					for i, op := range ops {
						switch {
						case err != nil:
							op.Info(err.Error())
						case res[i].Status == ledger.Conflict:
							op.Fail("conflict")
						default:
							op.Ok(res[i].Receipt)
							acked.Add(1)
						}
					}
					if err == nil {
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}
	return acked, wg.Wait
}

// TestClusterFailures: three ledger nodes on a three-node JetStream
// cluster, two gateways, clients submitting spans all along while, one
// after another, the integrating node stops, a NATS node dies, a NATS
// node is cut off, a gateway dies, and everything restarts. Afterwards
// every node's ledger holds the same records (same leaves in the same
// order) and verifies, every acknowledged span is there once with the
// receipt its client got, and no refused span is there.
func TestClusterFailures(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := natstest.Start(t, 3)
	js := connect(t, c.URLs())
	if err := cluster.Setup(ctx, js, 3); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	nodes := make([]*testNode, 3)
	var dirs []string
	for i := range nodes {
		nodes[i] = &testNode{name: fmt.Sprintf("n%d", i), dir: filepath.Join(root, fmt.Sprint(i)), url: c.URL(i)}
		dirs = append(dirs, nodes[i].dir)
	}
	sharedKey(t, dirs...)
	for _, n := range nodes {
		n.start(t)
	}
	newGateway := func(i int) *cluster.Submitter {
		_, nc := connectNC(t, c.URL(i))
		sub, err := cluster.NewSubmitter(nc, 8*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return sub
	}
	gws := &gateways{subs: []*cluster.Submitter{newGateway(0), newGateway(1)}}

	hist := &history.History{}
	stop := make(chan struct{})
	acked, clientsDone := load(ctx, gws, hist, 4, 5, stop)
	defer clientsDone()
	stopOnce := sync.OnceFunc(func() { close(stop) })
	defer stopOnce()
	leader := func() int {
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			kv, err := js.KeyValue(ctx, cluster.LeaseBucket)
			if err == nil {
				if e, err := kv.Get(ctx, "integrator"); err == nil {
					for i, n := range nodes {
						if containsHolder(e.Value(), n.name) {
							return i
						}
					}
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatal("no integrator")
		return -1
	}
	waitMore := func(n int64) {
		want := acked.Load() + n
		deadline := time.Now().Add(45 * time.Second)
		for acked.Load() < want {
			if time.Now().After(deadline) {
				t.Fatalf("only %d spans acknowledged, want %d", acked.Load(), want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	phases := []struct {
		name string
		do   func()
	}{
		{"the integrator stops", func() {
			l := leader()
			if err := nodes[l].stop(); err != nil {
				t.Errorf("node %s: %v", nodes[l].name, err)
			}
			waitMore(200)
			nodes[l].start(t)
		}},
		{"a NATS node dies", func() {
			c.Kill(2)
			waitMore(200)
			c.Restart(2)
		}},
		{"a NATS node is cut off", func() {
			c.Partition(1)
			waitMore(200)
			c.Heal()
		}},
		{"a gateway dies", func() {
			old := gws.get(0)
			old.Close()
			waitMore(100)
			gws.set(0, newGateway(2))
		}},
		{"everything restarts", func() {
			for _, n := range nodes {
				if err := n.stop(); err != nil {
					t.Errorf("node %s: %v", n.name, err)
				}
			}
			for i := range 3 {
				c.Kill(i)
			}
			for i := range 3 {
				c.Restart(i)
			}
			c.WaitReady(30 * time.Second)
			for _, n := range nodes {
				n.start(t)
			}
		}},
	}
	waitMore(200)
	for _, p := range phases {
		t.Logf("%s, at %d acknowledged", p.name, acked.Load())
		p.do()
		waitMore(200)
	}
	stopOnce()
	clientsDone()

	// Let every node catch up.
	deadline := time.Now().Add(30 * time.Second)
	for {
		sizes := []uint64{}
		for _, n := range nodes {
			if l := n.node.Ledger(); l != nil {
				sizes = append(sizes, l.Next())
			}
		}
		if len(sizes) == 3 && sizes[0] == sizes[1] && sizes[1] == sizes[2] && sizes[0] > 0 {
			time.Sleep(300 * time.Millisecond)
			if l := nodes[0].node.Ledger(); l != nil && l.Next() == sizes[0] {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the nodes did not converge: sizes %v", sizes)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, n := range nodes {
		if err := n.stop(); err != nil {
			t.Errorf("node %s: %v", n.name, err)
		}
	}
	var want []history.Record
	for i, n := range nodes {
		recs, err := history.ReadLedger(n.dir)
		if err != nil {
			t.Fatalf("node %s: %v", n.name, err)
		}
		if rep := history.Check(hist, recs); !rep.Clean() {
			t.Errorf("node %s: %s", n.name, rep)
		}
		if rep, err := ledger.Verify(n.dir, ledger.VerifyConfig{}); err != nil {
			t.Errorf("node %s: verify: %v", n.name, err)
		} else if rep.Problem != nil {
			t.Errorf("node %s: verify: %v", n.name, rep.Problem)
		}
		if i == 0 {
			want = recs
			t.Logf("%d spans acknowledged; %d records on every node", acked.Load(), len(recs))
			continue
		}
		if len(recs) != len(want) {
			t.Errorf("node %s holds %d records, node %s %d", n.name, len(recs), nodes[0].name, len(want))
			continue
		}
		for j := range recs {
			if recs[j].Leaf != want[j].Leaf {
				t.Errorf("node %s: record %d differs from node %s's", n.name, recs[j].Seq, nodes[0].name)
				break
			}
		}
	}
}

func containsHolder(v []byte, name string) bool {
	return strings.Contains(string(v), `"holder":"`+name+`"`)
}

// TestLargeMessages: on NATS servers whose messages carry at most 128 KiB,
// requests whose entries, commits and receipts each outgrow a message are
// answered in full, a receipt per span: sixteen requests of 400 spans at
// once (~200 KB of receipts each; together commits of ~1 MB) and one of
// 3,000 spans (~300 KB of entries).
func TestLargeMessages(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := natstest.StartConfig(t, 3, natstest.Config{MaxPayload: 128 << 10})
	js, nc := connectNC(t, c.URLs())
	if err := cluster.Setup(ctx, js, 3); err != nil {
		t.Fatal(err)
	}
	n := &testNode{name: "n0", dir: t.TempDir(), url: c.URL(0)}
	n.start(t)
	defer func() {
		if err := n.stop(); err != nil {
			t.Error(err)
		}
	}()
	sub, err := cluster.NewSubmitter(nc, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var wg sync.WaitGroup
	for k := range 17 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			es := make([]ledger.Entry, 400)
			if k == 16 {
				es = make([]ledger.Entry, 3000)
			}
			for i := range es {
				id := fmt.Sprintf("s_%d_%d", k, i)
				es[i] = ledger.Entry{Tenant: "t", ID: id, Body: fmt.Appendf(nil, `{"id":%q,"tenant":"t"}`, id)}
			}
			res, err := sub.Append(ctx, es)
			if err != nil {
				t.Error(err)
				return
			}
			if len(res) != len(es) {
				t.Errorf("%d results for %d entries", len(res), len(es))
				return
			}
			for i, r := range res {
				if r.Status != ledger.Accepted || r.Receipt.SpanID != es[i].ID {
					t.Errorf("result %d: %s, receipt of %q", i, r.Status, r.Receipt.SpanID)
					return
				}
			}
		}()
	}
	wg.Wait()
	if l := n.node.Ledger(); l == nil {
		t.Error("the integrator has no ledger open")
	} else if l.Next() != 16*400+3000 {
		t.Errorf("the integrator's ledger holds %d records, want %d", l.Next(), 16*400+3000)
	}

	// Restarted, the node finds every record it holds in the integrated
	// log: nothing is moved aside.
	if err := n.stop(); err != nil {
		t.Fatal(err)
	}
	n.start(t)
	waitFor(t, "the restarted node's ledger", func() bool { l := n.node.Ledger(); return l != nil && l.Next() == 16*400+3000 })
	aside, err := filepath.Glob(filepath.Join(n.dir, "ledger", "*", "*.unpublished"))
	if err != nil || len(aside) > 0 {
		t.Errorf("moved aside at a restart: %v %v", aside, err)
	}
}

// TestTicks: the integrating node appends the cluster's clock ticks; a
// follower receives them through the integrated log and appends none of
// its own, and the ticks stop with the integration.
func TestTicks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := natstest.Start(t, 3)
	js, _ := connectNC(t, c.URLs())
	if err := cluster.Setup(ctx, js, 3); err != nil {
		t.Fatal(err)
	}
	dirs := []string{t.TempDir(), t.TempDir()}
	sharedKey(t, dirs...)
	ticks := func(every time.Duration) func(context.Context, *ledger.Ledger) {
		return func(ctx context.Context, l *ledger.Ledger) {
			cycle.AppendTicks(ctx, l, every, func(err error) bool { t.Log(err); return false })
		}
	}
	integrator := &testNode{name: "n0", dir: dirs[0], url: c.URL(0), set: func(cfg *cluster.NodeConfig) {
		cfg.Ticks = ticks(20 * time.Millisecond)
	}}
	follower := &testNode{name: "n1", dir: dirs[1], url: c.URL(1), set: func(cfg *cluster.NodeConfig) {
		cfg.Follower = true
		cfg.Ticks = ticks(time.Millisecond) // a follower never integrates, so never ticks
	}}
	integrator.start(t)
	follower.start(t)
	defer follower.stop()
	waitFor(t, "the follower's ledger", func() bool { l := follower.node.Ledger(); return l != nil && l.Next() >= 5 })
	if err := integrator.stop(); err != nil {
		t.Fatal(err)
	}
	stopped := integrator.node.Stats().LogSeq
	waitFor(t, "the follower at the log's end", func() bool { return follower.node.Stats().LogSeq == stopped })
	l := follower.node.Ledger()
	n := l.Next()
	time.Sleep(100 * time.Millisecond) // five intervals: nothing more comes
	if got := l.Next(); got != n {
		t.Errorf("the follower's ledger grew from %d to %d records with no integrator", n, got)
	}
	r, err := l.NewReader(0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var last time.Time
	for i := range n {
		rec, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if rec.Kind != ledgerfmt.KindTick {
			t.Fatalf("record %d is a %s, want a tick", i, rec.Kind)
		}
		var b struct{ Clock time.Time }
		if err := json.Unmarshal(rec.Body, &b); err != nil || !b.Clock.After(last) {
			t.Fatalf("record %d: clock %s after %s (%v)", i, b.Clock, last, err)
		}
		last = b.Clock
	}
}
