package runtime

import (
	"fmt"
	"testing"
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
