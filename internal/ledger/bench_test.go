package ledger

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
)

// The benchmarks write to a real directory (BENCH_DIR, or the test's temp
// dir) with real fdatasync. Each reports durable spans per second; the raw
// baselines write the same bytes with one write and one fdatasync per group
// of waiting writers and nothing else.

// benchSpan returns a ~300-byte canonical span body.
func benchSpan(w, i int) Entry {
	id := fmt.Sprintf("s_%02d_%09d", w, i)
	this := fmt.Sprintf("order:%d", i%100000)
	body := fmt.Sprintf(`{"confirmed_by":["pos://register-7"],"data":{"gross":19.9,"items":3,"sku":"SKU-%06d","store":"lisbon-chiado"},"did":"sale.post","id":%q,"status":"confirmed","tenant":"t_voulezvous","this":%q,"when":"2025-10-05T22:18:07Z","who":"dan"}`, i%1000000, id, this)
	return Entry{Tenant: "t_voulezvous", ID: id, This: this, Body: []byte(body)}
}

func benchDir(b *testing.B) string {
	if d := os.Getenv("BENCH_DIR"); d != "" {
		dir, err := os.MkdirTemp(d, "ledger-bench-")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(dir) })
		return dir
	}
	return b.TempDir()
}

func benchOpen(b *testing.B, dir string) *Ledger {
	l, err := Open(dir, Config{})
	if err != nil {
		b.Fatal(err)
	}
	return l
}

// runWriters runs writers goroutines that each call fn(w, round) rounds times.
func runWriters(writers, rounds int, fn func(w, round int) error) error {
	var wg sync.WaitGroup
	var first atomic.Pointer[error]
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				if err := fn(w, r); err != nil {
					first.CompareAndSwap(nil, &err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if p := first.Load(); p != nil {
		return *p
	}
	return nil
}

func benchAppend(b *testing.B, writers, batch int) {
	dir := benchDir(b)
	l := benchOpen(b, dir)
	defer l.Close()
	rounds := max(1, b.N/(writers*batch))
	// Build the entries before the clock starts. As in the gateway, where a
	// request's spans are slices of its body, each writer's spans share one
	// buffer, so that the benchmark's own input (a million spans) does not
	// add millions of objects for the garbage collector to mark.
	entries := make([][][]Entry, writers)
	for w := range writers {
		entries[w] = make([][]Entry, rounds)
		flat := make([]Entry, rounds*batch)
		size := 0
		for i := range flat {
			flat[i] = benchSpan(w, i)
			size += len(flat[i].Body) + len(flat[i].ID) + len(flat[i].This)
		}
		arena := make([]byte, 0, size) // never grows, so slices of it stay valid
		for i, e := range flat {
			off := len(arena)
			arena = append(arena, e.Body...)
			body := arena[off:len(arena):len(arena)]
			arena = append(arena, e.ID...)
			id := unsafe.String(&arena[off+len(body)], len(e.ID))
			arena = append(arena, e.This...)
			this := unsafe.String(&arena[off+len(body)+len(id)], len(e.This))
			flat[i] = Entry{Tenant: e.Tenant, ID: id, This: this, Body: body}
		}
		for r := range rounds {
			entries[w][r] = flat[r*batch : (r+1)*batch : (r+1)*batch]
		}
	}
	ctx := context.Background()
	runtime.GC() // not the timed part's garbage
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	b.ResetTimer()
	start, cpu0 := time.Now(), processCPU()
	err := runWriters(writers, rounds, func(w, r int) error {
		_, err := l.Append(ctx, entries[w][r])
		return err
	})
	el, cpu := time.Since(start), processCPU()-cpu0
	b.StopTimer()
	runtime.ReadMemStats(&ms1)
	if err != nil {
		b.Fatal(err)
	}
	st := l.Stats()
	n := writers * rounds * batch
	b.ReportMetric(float64(n)/el.Seconds(), "spans/s")
	b.ReportMetric(float64(st.Appended)/float64(st.Commits), "spans/commit")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(n)/1e3, "cpu-µs/span")
	b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/float64(n), "alloc-B/span")
	b.ReportMetric(0, "ns/op")
}

// processCPU returns the CPU time (user and system) the process has used.
// Divided by the spans appended, it is what a span costs on all cores:
// with 2 cores, 300,000 spans/s leaves 6.6 µs.
func processCPU() time.Duration {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rawWriter is the baseline: writers hand it byte slices; one goroutine
// writes all that is waiting with one write and one fdatasync and wakes them.
type rawWriter struct {
	f       *os.File
	mu      sync.Mutex
	cond    *sync.Cond
	pending []byte
	waiters []chan struct{}
	syncs   int
	closed  bool
}

func newRawWriter(path string) (*rawWriter, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	w := &rawWriter{f: f}
	w.cond = sync.NewCond(&w.mu)
	go w.loop()
	return w, nil
}

func (w *rawWriter) loop() {
	var buf []byte
	for {
		w.mu.Lock()
		for len(w.waiters) == 0 && !w.closed {
			w.cond.Wait()
		}
		if w.closed && len(w.waiters) == 0 {
			w.mu.Unlock()
			return
		}
		buf, w.pending = w.pending, buf[:0]
		waiters := w.waiters
		w.waiters = nil
		w.mu.Unlock()
		w.f.Write(buf)
		unix.Fdatasync(int(w.f.Fd()))
		w.syncs++
		for _, c := range waiters {
			close(c)
		}
	}
}

func (w *rawWriter) write(b []byte) {
	c := make(chan struct{})
	w.mu.Lock()
	w.pending = append(w.pending, b...)
	w.waiters = append(w.waiters, c)
	w.mu.Unlock()
	w.cond.Signal()
	<-c
}

func (w *rawWriter) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.cond.Signal()
	w.f.Close()
}

func benchRaw(b *testing.B, writers, batch int) {
	dir := benchDir(b)
	rw, err := newRawWriter(filepath.Join(dir, "raw.ndjson"))
	if err != nil {
		b.Fatal(err)
	}
	rounds := max(1, b.N/(writers*batch))
	// The same bytes the ledger writes for these spans.
	var enc encoder
	ts := time.Now().UTC().AppendFormat(nil, tsLayout)
	blobs := make([][][]byte, writers)
	for w := range writers {
		blobs[w] = make([][]byte, rounds)
		for r := range rounds {
			var buf []byte
			for k := range batch {
				e := benchSpan(w, r*batch+k)
				buf, _ = enc.appendRecord(buf, uint64(r*batch+k), ts, ledgerfmt.KindSpan, e.Body)
			}
			blobs[w][r] = buf
		}
	}
	b.ResetTimer()
	start, cpu0 := time.Now(), processCPU()
	runWriters(writers, rounds, func(w, r int) error { rw.write(blobs[w][r]); return nil })
	el, cpu := time.Since(start), processCPU()-cpu0
	b.StopTimer()
	rw.close()
	n := writers * rounds * batch
	b.ReportMetric(float64(n)/el.Seconds(), "spans/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(n)/1e3, "cpu-µs/span")
	b.ReportMetric(float64(writers*rounds)/float64(rw.syncs)*float64(batch), "spans/commit")
	b.ReportMetric(0, "ns/op")
}

// 64 appenders of 32-span batches, as the gateway appends NDJSON bodies.
func BenchmarkAppend64x32(b *testing.B)      { benchAppend(b, 64, 32) }
func BenchmarkRawBaseline64x32(b *testing.B) { benchRaw(b, 64, 32) }

// 256 appenders of one span each: group commit at work.
func BenchmarkAppend256x1(b *testing.B)      { benchAppend(b, 256, 1) }
func BenchmarkRawBaseline256x1(b *testing.B) { benchRaw(b, 256, 1) }

// BenchmarkAppendLatency1 is one appender of one span at a time: the
// latency of a durable append on an idle ledger, next to the bare
// write+fdatasync of the same bytes.
func BenchmarkAppendLatency1(b *testing.B) {
	dir := benchDir(b)
	l := benchOpen(b, dir)
	defer l.Close()
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	es := make([]Entry, b.N)
	for i := range es {
		es[i] = benchSpan(0, i)
	}
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		if _, err := l.Append(ctx, es[i:i+1]); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	reportLatency(b, lat)
}

func BenchmarkRawLatency1(b *testing.B) { rawLatency1(b, false) }

// BenchmarkRawLatency1Prealloc is BenchmarkRawLatency1 over a file filled
// with zeros beforehand and overwritten in place: fdatasync then has data
// to flush but no file size to commit to the file system's journal. It is
// the floor a ledger that preallocated its segments could reach (the
// ledger does not: its tail would need telling zeros from a torn record).
func BenchmarkRawLatency1Prealloc(b *testing.B) { rawLatency1(b, true) }

// rawLatency1 writes one record and fdatasyncs, b.N times, and reports
// the latency percentiles and the process's CPU time per operation.
func rawLatency1(b *testing.B, prealloc bool) {
	f, err := os.OpenFile(filepath.Join(benchDir(b), "raw.ndjson"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var enc encoder
	ts := time.Now().UTC().AppendFormat(nil, tsLayout)
	lines := make([][]byte, b.N)
	total := 0
	for i := range lines {
		lines[i], _ = enc.appendRecord(nil, uint64(i), ts, ledgerfmt.KindSpan, benchSpan(0, i).Body)
		total += len(lines[i])
	}
	if prealloc {
		zeros := make([]byte, 1<<20)
		for n := 0; n < total; n += len(zeros) {
			if _, err := f.Write(zeros); err != nil {
				b.Fatal(err)
			}
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
	}
	lat := make([]time.Duration, 0, b.N)
	var off int64
	cpu0 := processCPU()
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		if _, err := f.WriteAt(lines[i], off); err != nil {
			b.Fatal(err)
		}
		off += int64(len(lines[i]))
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
	reportLatency(b, lat)
}

// Open loop: single spans arrive on a fixed schedule (BENCH_RATE a second,
// default 2,000), each from its own goroutine, as single-span HTTP requests
// reach the gateway; each latency counts from the span's due time. The raw
// baselines are the storage floor under the same arrivals: a group-commit
// loop that writes whatever is waiting with one write and one fdatasync, and
// acknowledges in order; Overlap2 lets two fdatasyncs (on two descriptors of
// the file) be in flight at once.

func openLoopRate() float64 {
	if v, err := strconv.ParseFloat(os.Getenv("BENCH_RATE"), 64); err == nil && v > 0 {
		return v
	}
	return 2000
}

// openLoop calls op(i) for i < n at rate a second, each in its own
// goroutine, and reports the latencies from each call's due time.
func openLoop(b *testing.B, n int, op func(i int)) {
	rate := openLoopRate()
	lat := make([]time.Duration, n)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for i := range n {
		due := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
		time.Sleep(time.Until(due))
		wg.Add(1)
		go func() {
			defer wg.Done()
			op(i)
			lat[i] = time.Since(due)
		}()
	}
	wg.Wait()
	b.StopTimer()
	reportLatency(b, lat)
}

func BenchmarkAppendOpenLoop(b *testing.B) {
	l := benchOpen(b, benchDir(b))
	defer l.Close()
	ctx := context.Background()
	es := make([]Entry, b.N)
	for i := range es {
		es[i] = benchSpan(0, i)
	}
	openLoop(b, b.N, func(i int) {
		if _, err := l.Append(ctx, es[i:i+1]); err != nil {
			b.Error(err)
		}
	})
	st := l.Stats()
	b.ReportMetric(float64(st.Appended)/float64(st.Commits), "spans/commit")
}

func BenchmarkRawOpenLoop(b *testing.B)         { benchRawOpenLoop(b, 1) }
func BenchmarkRawOpenLoopOverlap2(b *testing.B) { benchRawOpenLoop(b, 2) }

func benchRawOpenLoop(b *testing.B, inFlight int) {
	path := filepath.Join(benchDir(b), "raw.ndjson")
	fds := make([]*os.File, inFlight)
	for i := range fds {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		fds[i] = f
	}
	var enc encoder
	ts := time.Now().UTC().AppendFormat(nil, tsLayout)
	lines := make([][]byte, b.N)
	for i := range lines {
		lines[i], _ = enc.appendRecord(nil, uint64(i), ts, ledgerfmt.KindSpan, benchSpan(0, i).Body)
	}
	type waiter struct {
		line []byte
		done chan struct{}
	}
	type commit struct {
		ws     []waiter
		synced chan struct{}
	}
	var mu sync.Mutex
	cond := sync.NewCond(&mu)
	var queue []waiter
	stop := false
	free := make(chan *os.File, inFlight)
	for _, f := range fds {
		free <- f
	}
	commits := make(chan commit, inFlight)
	var loops sync.WaitGroup
	loops.Add(2)
	go func() { // acknowledges in commit order
		defer loops.Done()
		for c := range commits {
			<-c.synced
			for _, w := range c.ws {
				close(w.done)
			}
		}
	}()
	go func() { // takes what waits, writes it, starts its sync
		defer loops.Done()
		defer close(commits)
		var buf []byte
		for {
			f := <-free
			mu.Lock()
			for len(queue) == 0 && !stop {
				cond.Wait()
			}
			if len(queue) == 0 {
				mu.Unlock()
				return
			}
			ws := queue
			queue = nil
			mu.Unlock()
			buf = buf[:0]
			for _, w := range ws {
				buf = append(buf, w.line...)
			}
			f.Write(buf)
			c := commit{ws: ws, synced: make(chan struct{})}
			commits <- c
			go func() {
				unix.Fdatasync(int(f.Fd()))
				close(c.synced)
				free <- f
			}()
		}
	}()
	openLoop(b, b.N, func(i int) {
		w := waiter{line: lines[i], done: make(chan struct{})}
		mu.Lock()
		queue = append(queue, w)
		mu.Unlock()
		cond.Signal()
		<-w.done
	})
	mu.Lock()
	stop = true
	mu.Unlock()
	cond.Broadcast()
	loops.Wait()
}

func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) }
	b.ReportMetric(q(0.50), "p50-µs")
	b.ReportMetric(q(0.95), "p95-µs")
	b.ReportMetric(q(0.99), "p99-µs")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "max-µs")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkReopen builds a ledger of BENCH_REOPEN_SPANS spans (default
// 1,000,000) once, closes it, and times Open+Close with current indexes. It
// also reports the heap in use while the ledger grew, at each fifth of it:
// it stays flat because indexes and tree live on disk.
func BenchmarkReopen(b *testing.B) {
	n := 1_000_000
	if s := os.Getenv("BENCH_REOPEN_SPANS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	dir := benchDir(b)
	l := benchOpen(b, dir)
	const writers, batch = 64, 32
	ctx := context.Background()
	var next atomic.Int64
	var heaps []uint64
	for step := range 5 {
		target := int64(n * (step + 1) / 5)
		err := runWriters(writers, 1<<30, func(w, r int) error {
			first := next.Add(batch) - batch
			if first >= target {
				return errDone
			}
			es := make([]Entry, 0, batch)
			for k := range batch {
				es = append(es, benchSpan(w, int(first)+k))
			}
			_, err := l.Append(ctx, es)
			return err
		})
		if err != nil && err != errDone {
			b.Fatal(err)
		}
		next.Store(target)
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		heaps = append(heaps, ms.HeapInuse)
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var total time.Duration
	for range b.N {
		t0 := time.Now()
		l, err := Open(dir, Config{})
		if err != nil {
			b.Fatal(err)
		}
		total += time.Since(t0)
		b.StopTimer()
		if l.Next() != uint64(n/batch*batch) && l.Next() < uint64(n) {
			b.Fatalf("reopened with %d records, want %d", l.Next(), n)
		}
		l.Close()
		b.StartTimer()
	}
	// Reported after ResetTimer, which drops metrics reported before it.
	for i, h := range heaps {
		b.ReportMetric(float64(h)/(1<<20), fmt.Sprintf("heap-MiB@%d%%", (i+1)*20))
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "open-ms")
	b.ReportMetric(float64(n), "spans")
	b.ReportMetric(0, "ns/op")
}

var errDone = fmt.Errorf("done")
