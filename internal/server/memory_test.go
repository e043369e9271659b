package server

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"
	"time"
)

// heapSlope ingests n2 spans of one tenant through the gateway of a running
// development server, this(i) being the "this" of span i, and returns the
// growth of the heap, after GC, per span between the n1th and the n2th: the
// slope, so that the server's fixed costs (ledger buffers and filters,
// caches) cancel out. open(n) is how many trajectories must be open after
// n spans (checked).
func heapSlope(tb testing.TB, n1, n2 int, this func(i int) string, open func(n int) uint64) float64 {
	s, ts := testServer(tb, tb.TempDir(), nil)
	// One event-time instant: nothing closes by timeout.
	when := time.Now().UTC().Add(-time.Minute).Format(time.RFC3339)
	sent := 0
	var b bytes.Buffer
	ingest := func(upto int) {
		for sent < upto {
			b.Reset()
			for ; sent < upto && b.Len() < 4<<20; sent++ {
				fmt.Fprintf(&b, `{"id":"s_%d","tenant":"t_mem","who":"pos:register-7","did":"sale.post","this":%q,"when":%q,"status":"confirmed","confirmed_by":["pos://register-7"],"data":{"gross":19.9,"items":3,"sku":"SKU-%08d"}}`+"\n",
					sent, this(sent), when, sent)
			}
			post(tb, ts.URL, b.Bytes())
		}
		waitDerived(tb, s)
	}
	heap := func(n int) uint64 {
		if got, want := s.runner.Stats("t_mem").Open, open(n); got != want {
			tb.Fatalf("%d open trajectories after %d spans, want %d", got, n, want)
		}
		var m runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	ingest(n1)
	h1 := heap(n1)
	ingest(n2)
	h2 := heap(n2)
	ts.Close()
	if err := s.Close(); err != nil {
		tb.Fatal(err)
	}
	return float64(int64(h2)-int64(h1)) / float64(n2-n1)
}

// BenchmarkServerOpenTrajectoryMemory reports the heap of a running server
// per open trajectory: the slope between 400,000 and 1,000,000 spans that
// each open one (of about 250 bytes each, a data member included), where the
// ledger's in-memory index (bounded) no longer grows. It also reports the
// slope of as many spans of the same size that open none (heartbeats,
// never linked), which is what the rest of the server keeps per record. It
// measures a footprint, not a speed: the work is done once whatever b.N is.
func BenchmarkServerOpenTrajectoryMemory(b *testing.B) {
	const n1, n2 = 400_000, 1_000_000
	per := heapSlope(b, n1, n2, func(i int) string { return fmt.Sprintf("order:%010d", i) }, func(n int) uint64 { return uint64(n) })
	none := heapSlope(b, n1, n2, func(i int) string { return fmt.Sprintf("heartbeat-%06d", i) }, func(int) uint64 { return 0 })
	b.ReportMetric(per, "bytes/open-trajectory")
	b.ReportMetric(none, "bytes/unlinked-span")
}
