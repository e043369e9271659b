package cluster_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/loglineos/loglineos/internal/cluster"
	"github.com/loglineos/loglineos/internal/cluster/natstest"
	"github.com/loglineos/loglineos/internal/ledger"
)

// appender is what both sides of BenchmarkIngest append through.
type appender interface {
	Append(ctx context.Context, entries []ledger.Entry) ([]ledger.Result, error)
}

// runIngest appends b.N spans in batches of size from clients goroutines
// and reports spans/s.
func runIngest(b *testing.B, a appender, clients, size int) {
	var next atomic.Int64
	batches := int64((b.N + size - 1) / size)
	run := fmt.Sprintf("%d", time.Now().UnixNano())
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k := next.Add(1) - 1
				if k >= batches {
					return
				}
				es := make([]ledger.Entry, size)
				for i := range es {
					id := fmt.Sprintf("s_%s_%d_%d", run, k, i)
					tenant := fmt.Sprintf("t_%d", c%4)
					es[i] = ledger.Entry{Tenant: tenant, ID: id, This: "order:1", Body: fmt.Appendf(nil,
						`{"did":"sale.post","id":%q,"status":"confirmed","tenant":%q,"this":"order:1","when":"2025-10-05T22:18:07Z","who":"dan","data":{"gross":19.9,"till":"pos://register-7"}}`, id, tenant)}
				}
				res, err := a.Append(context.Background(), es)
				if err != nil {
					b.Error(err)
					return
				}
				for _, r := range res {
					if r.Status != ledger.Accepted {
						b.Errorf("status %s", r.Status)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(batches*int64(size))/time.Since(start).Seconds(), "spans/s")
}

// BenchmarkIngest: spans appended in batches by concurrent clients, to one
// ledger (single-node mode's write path) and through a gateway's Submitter
// to a three-node cluster (LEDGER_IN, the integrator's ledger, the fenced
// LEDGER_INTEGRATED, two followers applying), all in this process on this
// machine's cores and disk: the loads of a few clients and of many (at
// many, the cluster is no longer bound by one request's latency). Run
// both in one invocation:
//
//	go test -run '^$' -bench Ingest -benchtime 20000x ./internal/cluster/
func BenchmarkIngest(b *testing.B) {
	for _, load := range []struct{ size, clients int }{{1, 32}, {100, 8}, {1, 256}, {100, 64}} {
		size, clients := load.size, load.clients
		b.Run(fmt.Sprintf("single/batch=%d/clients=%d", size, clients), func(b *testing.B) {
			l, err := ledger.Open(b.TempDir(), ledger.Config{})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			runIngest(b, l, clients, size)
		})
		b.Run(fmt.Sprintf("cluster/batch=%d/clients=%d", size, clients), func(b *testing.B) {
			sub, js := benchCluster(b)
			runIngest(b, sub, clients, size)
			b.StopTimer()
			for _, name := range []string{cluster.StreamIn, cluster.StreamIntegrated} {
				if st, err := js.Stream(context.Background(), name); err == nil {
					if info, err := st.Info(context.Background()); err == nil {
						b.Logf("%s: %d messages, %d bytes", name, info.State.Msgs, info.State.Bytes)
					}
				}
			}
		})
	}
}

// benchCluster starts a three-node cluster in this process (three
// nats-server nodes, three ledger nodes) and returns a gateway's Submitter
// once the cluster has answered a first span, and the cluster's
// JetStream. Everything stops at the benchmark's end.
func benchCluster(b *testing.B) (*cluster.Submitter, jetstream.JetStream) {
	ctx := context.Background()
	c := natstest.Start(b, 3)
	js, nc := connectNC(b, c.URLs())
	if err := cluster.Setup(ctx, js, 3); err != nil {
		b.Fatal(err)
	}
	root := b.TempDir()
	var dirs []string
	for i := range 3 {
		dirs = append(dirs, filepath.Join(root, fmt.Sprint(i)))
	}
	sharedKey(b, dirs...)
	var wg sync.WaitGroup
	cctx, cancel := context.WithCancel(ctx)
	for i, d := range dirs {
		_, nnc := connectNC(b, c.URL(i))
		n, err := cluster.NewNode(ctx, nnc, cluster.NodeConfig{Name: fmt.Sprint("n", i), Dir: d, Log: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); n.Run(cctx) }()
	}
	b.Cleanup(func() { cancel(); wg.Wait() })
	sub, err := cluster.NewSubmitter(nc, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sub.Close() })
	// Not timed: the nodes' start (each ledger's open touches its dedup
	// filter's pages), the lease, the first message.
	if _, err := sub.Append(ctx, []ledger.Entry{{Tenant: "t", ID: "warm-up", Body: []byte(`{"id":"warm-up","tenant":"t"}`)}}); err != nil {
		b.Fatal(err)
	}
	return sub, js
}

// BenchmarkLatency: one client appends one span at a time, to one ledger
// and through a gateway's Submitter to the three-node cluster (as
// BenchmarkIngest); it reports the latencies' median and 99th percentile.
//
//	go test -run '^$' -bench Latency -benchtime 2000x ./internal/cluster/
func BenchmarkLatency(b *testing.B) {
	run := func(b *testing.B, a appender) {
		ds := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for i := range b.N {
			id := fmt.Sprintf("l_%d", i)
			start := time.Now()
			res, err := a.Append(context.Background(), []ledger.Entry{{Tenant: "t", ID: id, This: "order:1", Body: fmt.Appendf(nil,
				`{"did":"sale.post","id":%q,"status":"confirmed","tenant":"t","this":"order:1","when":"2025-10-05T22:18:07Z","who":"dan","data":{"gross":19.9,"till":"pos://register-7"}}`, id)}})
			ds = append(ds, time.Since(start))
			if err != nil || res[0].Status != ledger.Accepted {
				b.Fatal(res, err)
			}
		}
		b.StopTimer()
		slices.Sort(ds)
		b.ReportMetric(float64(ds[len(ds)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(ds[len(ds)*99/100].Microseconds())/1000, "p99-ms")
	}
	b.Run("single", func(b *testing.B) {
		l, err := ledger.Open(b.TempDir(), ledger.Config{})
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		run(b, l)
	})
	b.Run("cluster", func(b *testing.B) {
		sub, _ := benchCluster(b)
		run(b, sub)
	})
}

// BenchmarkStreamFloor measures what a replicated JetStream stream on file
// storage (sync_interval: always) takes here by itself: 512 KiB messages
// (a LEDGER_IN message's size) published with up to four acknowledgements
// pending (as the Submitter does under load), to a stream of one replica
// and of three, on the three-node test cluster. MB/s is the figure; with
// a LEDGER_IN entry of ~250 bytes (a 200-byte span and its framing), a
// stream's span rate is MB/s × 4,000. The paper estimate of the cluster on
// three machines starts from it (docs/BENCHMARKS.md).
func BenchmarkStreamFloor(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := natstest.Start(b, 3)
	js, _ := connectNC(b, c.URLs())
	msg := make([]byte, 512<<10)
	for _, replicas := range []int{1, 3} {
		b.Run(fmt.Sprintf("replicas=%d", replicas), func(b *testing.B) {
			name := fmt.Sprintf("FLOOR_R%d", replicas)
			if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{name}, Storage: jetstream.FileStorage, Replicas: replicas}); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(msg)))
			b.ResetTimer()
			pending := make(chan jetstream.PubAckFuture, 4)
			done := make(chan error, 1)
			go func() {
				for f := range pending {
					select {
					case <-f.Ok():
					case err := <-f.Err():
						done <- err
						for range pending {
						}
						return
					}
				}
				done <- nil
			}()
			for b.Loop() {
				f, err := js.PublishAsync(name, msg)
				if err != nil {
					b.Fatal(err)
				}
				pending <- f
			}
			close(pending)
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		})
	}
}
