package cluster_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
// machine's cores and disk. Run both in one invocation:
//
//	go test -run '^$' -bench Ingest -benchtime 20000x ./internal/cluster/
func BenchmarkIngest(b *testing.B) {
	for _, size := range []int{1, 100} {
		clients := 32
		if size > 1 {
			clients = 8
		}
		b.Run(fmt.Sprintf("single/batch=%d", size), func(b *testing.B) {
			l, err := ledger.Open(b.TempDir(), ledger.Config{})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			runIngest(b, l, clients, size)
		})
		b.Run(fmt.Sprintf("cluster/batch=%d", size), func(b *testing.B) {
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
			defer func() { cancel(); wg.Wait() }()
			sub, err := cluster.NewSubmitter(nc, 0)
			if err != nil {
				b.Fatal(err)
			}
			defer sub.Close()
			runIngest(b, sub, clients, size)
			b.StopTimer()
			for _, name := range []string{cluster.StreamIn, cluster.StreamIntegrated} {
				if st, err := js.Stream(ctx, name); err == nil {
					if info, err := st.Info(ctx); err == nil {
						b.Logf("%s: %d messages, %d bytes", name, info.State.Msgs, info.State.Bytes)
					}
				}
			}
		})
	}
}
