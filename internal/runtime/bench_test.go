package runtime

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/loglineos/loglineos/internal/ledger"
)

// BenchmarkRecord routes spans through one router with an http.request on
// every span: the guard, the payload, the outbox line (buffered; synced
// every 4,096 records, as the cycle's snapshots would). Deliveries are not
// run: this is the cost routing adds to the derivation's pass.
func BenchmarkRecord(b *testing.B) {
	url := "http://127.0.0.1:1/hook"
	rs, caps := compile(b, fmt.Sprintf(hookRouter, url))
	rt, err := Open(Config{Dir: b.TempDir(), Routers: rs, BundleCaps: caps, ServerCaps: caps,
		Tenants: tenants{"acme": endpointTenant(url, "http.request")}, KeepDone: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close()
	bodies := make([]string, 1024)
	for i := range bodies {
		bodies[i] = sale(fmt.Sprintf("s_%d", i))
	}
	routeSpans(b, rt, bodies)
}

// BenchmarkRecordKV routes spans through a router that reads and writes
// the key-value store on every span (1,024 keys): the kv.get, the staged
// write, the outbox "k" line and, every 4,096 records (a cycle snapshot),
// the ledger append of the writes (fsync) and kv.json.
func BenchmarkRecordKV(b *testing.B) {
	rs, caps := compile(b, `router seen {
  uses "kv.get"
  uses "kv.set"
  route when len(kv.get(this)) >= 0 to kv.set(this, id)
}`)
	l, err := ledger.Open(b.TempDir(), ledger.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	rt, err := Open(Config{Dir: b.TempDir(), Routers: rs, BundleCaps: caps, ServerCaps: caps,
		Tenants: tenants{"acme": endpointTenant("http://127.0.0.1:1/", "kv.get", "kv.set")}, Ledger: l})
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close()
	bodies := make([]string, 1024)
	for i := range bodies {
		bodies[i] = fmt.Sprintf(`{"id":"s_%d","tenant":"acme","who":"till","did":"sale.post","this":"order:%d","when":"2025-10-05T09:00:00Z","status":"confirmed"}`, i, i)
	}
	routeSpans(b, rt, bodies)
}

// routeSpans routes b.N spans of bodies through rt, syncing every 4,096
// records as the cycle's snapshots would, and reports spans/s.
func routeSpans(b *testing.B, rt *Runtime, bodies []string) {
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		seq := uint64(i + 1)
		if err := rt.Record(spanRecord(seq, bodies[i%len(bodies)]), nil); err != nil {
			b.Fatal(err)
		}
		if seq%4096 == 0 {
			if err := rt.Sync(seq + 1); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "spans/s")
}

// BenchmarkDeliver delivers queued webhooks to a local endpoint that
// answers 204 at once: the delivery path alone (signing, the POST over
// loopback with keep-alive, the outcome in the outbox).
func BenchmarkDeliver(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	rs, caps := compile(b, fmt.Sprintf(hookRouter, srv.URL))
	rt, err := Open(Config{Dir: b.TempDir(), Routers: rs, BundleCaps: caps, ServerCaps: caps,
		Tenants: tenants{"acme": endpointTenant(srv.URL, "http.request")}, KeepDone: 1, QueuePerTenant: b.N + 1,
		Client: func(bool) *http.Client { return srv.Client() }})
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close()
	body := sale("s_1")
	for i := range b.N {
		rt.Record(spanRecord(uint64(i+1), body), nil)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.ResetTimer()
	go rt.Run(ctx)
	for rt.Pending() > 0 {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
}
