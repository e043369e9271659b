package cluster_test

import (
	"context"
	"errors"
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
	"github.com/loglineos/loglineos/internal/history"
	"github.com/loglineos/loglineos/internal/ledger"
)

// testNode is a cluster.Node run by a test, stoppable and restartable on
// the same data directory.
type testNode struct {
	name, dir, url string
	cancel         context.CancelFunc
	done           chan error
	node           *cluster.Node
}

func (n *testNode) start(t *testing.T) {
	t.Helper()
	_, nc := connectNC(t, n.url)
	node, err := cluster.NewNode(context.Background(), nc, cluster.NodeConfig{
		Name: n.name, Dir: n.dir, LeaseTTL: time.Second,
		Log: slog.New(slog.NewTextHandler(testWriter{t}, nil)).With("test", t.Name()),
	})
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
func sharedKey(t *testing.T, dirs ...string) {
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

// load runs clients that each submit batches of spans one after another
// until stop is closed or n batches are done, recording every outcome.
func load(ctx context.Context, sub *cluster.Submitter, hist *history.History, clients, batches, size int, stop <-chan struct{}) (acked *atomic.Int64, wait func()) {
	acked = &atomic.Int64{}
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tenant := fmt.Sprintf("t_%d", c%2)
			for b := range batches {
				select {
				case <-stop:
					return
				default:
				}
				var es []ledger.Entry
				var ops []*history.Op
				for i := range size {
					id := fmt.Sprintf("s_%d_%d_%d", c, b, i)
					body := fmt.Appendf(nil, `{"did":"sale.post","id":%q,"status":"confirmed","tenant":%q,"this":"order:%d","when":"2025-10-05T22:18:07Z","who":"dan"}`, id, tenant, b)
					es = append(es, ledger.Entry{Tenant: tenant, ID: id, This: fmt.Sprintf("order:%d", b), Body: body})
					ops = append(ops, hist.Invoke(fmt.Sprint(c), tenant, id, body))
				}
				res, err := sub.Append(ctx, es)
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
			}
		}()
	}
	return acked, wg.Wait
}

// TestNodesFailover: three ledger nodes on a three-node JetStream cluster;
// clients submit spans while the integrating node is stopped (twice) and
// later restarted. Afterwards every node's ledger holds the same records
// (same size, same root), every acknowledged span is there once with the
// receipt the client got, and nothing failed is there.
func TestNodesFailover(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
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
	_, nc := connectNC(t, c.URLs())
	sub, err := cluster.NewSubmitter(nc, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	hist := &history.History{}
	stop := make(chan struct{})
	acked, clientsDone := load(ctx, sub, hist, 4, 1<<30, 5, stop)
	defer clientsDone()
	leader := func() int {
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			kv, err := js.KeyValue(ctx, cluster.LeaseBucket)
			if err == nil {
				if e, err := kv.Get(ctx, "integrator"); err == nil {
					for i, n := range nodes {
						if n.cancel != nil && containsHolder(e.Value(), n.name) {
							return i
						}
					}
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatal("no leader")
		return -1
	}
	waitAcked := func(n int64) {
		deadline := time.Now().Add(30 * time.Second)
		for acked.Load() < n {
			if time.Now().After(deadline) {
				t.Fatalf("only %d spans acknowledged, want %d", acked.Load(), n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitAcked(500)
	stopped := []int{}
	for range 2 {
		l := leader()
		t.Logf("stopping the integrator %s at %d acknowledged", nodes[l].name, acked.Load())
		if err := nodes[l].stop(); err != nil {
			t.Errorf("node %s: %v", nodes[l].name, err)
		}
		nodes[l].cancel = nil
		stopped = append(stopped, l)
		waitAcked(acked.Load() + 500)
		// Bring the stopped node back before the next round, so two stay.
		nodes[l].start(t)
	}
	close(stop)
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
			// Settled if nothing moves for a moment.
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
		rep := history.Check(hist, recs)
		if !rep.Clean() {
			t.Errorf("node %s: %s", n.name, rep)
		}
		if rep, err := ledger.Verify(n.dir, ledger.VerifyConfig{}); err != nil {
			t.Errorf("node %s: verify: %v", n.name, err)
		} else if rep.Problem != nil {
			t.Errorf("node %s: verify: %v", n.name, rep.Problem)
		}
		if i == 0 {
			want = recs
			t.Logf("%d acknowledged spans; %d records; stopped %v", acked.Load(), len(recs), stopped)
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
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatal("the test ran out of time")
	}
}

func containsHolder(v []byte, name string) bool {
	return strings.Contains(string(v), `"holder":"`+name+`"`)
}
