//go:build unix

package server

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loglineos/loglineos/internal/identity"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/sys/unix"
)

// BenchmarkQuotaIsolation measures tenant B's single-span ingest latency
// alone and while tenant A sends far beyond its quota of 50 spans/s (A is
// held at 429), and reports both p99s and their ratio. The two conditions
// alternate in QUOTA_ROUNDS short rounds (default 64: alone, flooded,
// alone, ...) so that drift in the machine's load falls on both alike.
// Before each round B keeps sending for 50 ms uncounted while the flood
// starts or pauses, so that both conditions begin the same way: B never
// idles, which on a VM lets the cores go cold and would bias whichever
// condition follows the pause.
//
// It reports the p99s of all rounds pooled, their ratio, and the median over
// rounds of each round's ratio (flooded p99 over the alone p99 just before
// it).
//
// The flood is paced at QUOTA_FLOOD_RATE requests per second (default 2000:
// 40 times A's quota) from 8 keep-alive connections. It comes from one
// separate process (this test binary started again, paused between
// rounds) whose threads all run at nice 19 (QUOTA_FLOOD_SCHED=idle: the
// SCHED_IDLE policy), standing in for A's clients on their own machines:
// the server's work for every refused request is counted in full, the
// clients' work is not put on the same two cores at the same priority. The
// benchmark fails if the flood falls below 90% of its rate or is not held
// at 429.
//
// It also reports the server's own time for B's requests (handler start to
// return), whose p99 ratio says whether the flood slows B inside the server
// or on the way to it. QUOTA_A sets A's quota (default 50 spans/s, burst
// the same); QUOTA_FLOOD_PROCS the flood process's GOMAXPROCS (default 1);
// QUOTA_FLOOD_CLIENT=stdlib floods through net/http's client instead of
// prepared bytes.
//
// Comparison points, measured the same way: QUOTA_FLOOD_NONE=1 runs the
// flooded rounds with no flood at all (a placebo: the spread of the
// measurement itself); QUOTA_FLOOD_HEALTHZ=1 makes the flood GET /healthz,
// the cheapest request the server answers (what any 2,000 requests a
// second cost B on these cores); QUOTA_FLOOD_INPROC=1 runs the flooding
// clients inside this process, at the server's priority.
//
//	go test -run '^$' -bench QuotaIsolation -benchtime 16000x ./internal/server/
func BenchmarkQuotaIsolation(b *testing.B) {
	quotaA := "50"
	if v := os.Getenv("QUOTA_A"); v != "" {
		quotaA = v
	}
	s := openBenchServer(b, map[string]string{
		"t_flood": "quotas: {ingest_per_second: " + quotaA + ", burst: " + quotaA + "}",
		"t_calm":  "quotas: {ingest_per_second: 100000, burst: 100000}",
	})
	// The server's own time for each of B's requests (from the handler's
	// start to its return), beside the time B's client sees.
	var calmAuth atomic.Value
	calmAuth.Store("")
	var lastServer atomic.Int64
	h := s.Handler()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != calmAuth.Load().(string) {
			h.ServeHTTP(w, r)
			return
		}
		t0 := time.Now()
		h.ServeHTTP(w, r)
		lastServer.Store(int64(time.Since(t0)))
	}))
	defer ts.Close() // before the server closes (b.Cleanup)
	token := func(tenant string) string {
		_, tok := serviceToken(b, s, ts.URL, tenant, identity.RoleApp)
		return tok
	}
	flood, calm := token("t_flood"), token("t_calm")
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var next atomic.Int64
	calmAuth.Store("Bearer " + calm)
	var serverLat []time.Duration // of the measure call running
	measure := func(n int) []time.Duration {
		lat := make([]time.Duration, 0, n)
		serverLat = make([]time.Duration, 0, n)
		for range n {
			t0 := time.Now()
			if code := sendSpan(client, ts.URL, calm, "t_calm", next.Add(1)); code != 200 {
				b.Fatalf("calm tenant: HTTP %d", code)
			}
			lat = append(lat, time.Since(t0))
			serverLat = append(serverLat, time.Duration(lastServer.Load()))
		}
		return lat
	}
	p99 := func(l []time.Duration) float64 {
		slices.Sort(l)
		return float64(l[len(l)*99/100].Microseconds())
	}
	floodRate := 2000.0
	if v := os.Getenv("QUOTA_FLOOD_RATE"); v != "" {
		floodRate, _ = strconv.ParseFloat(v, 64)
	}
	rounds := 64
	if v := os.Getenv("QUOTA_ROUNDS"); v != "" {
		rounds, _ = strconv.Atoi(v)
		rounds = max(rounds, 2)
	}
	placebo := os.Getenv("QUOTA_FLOOD_NONE") == "1"
	var f flooder
	switch {
	case placebo:
		f = noFlood{}
	case os.Getenv("QUOTA_FLOOD_INPROC") == "1":
		f = &inprocFlood{senders: floodSenders(ts.URL, flood), rate: floodRate}
	default:
		f = startFloodProcess(b, ts.URL, flood, floodRate)
	}
	defer f.close()

	n := max(b.N, 50*rounds) / rounds
	measure(100) // warm up
	f.start()
	time.Sleep(200 * time.Millisecond) // the flood's connections open
	f.pause()
	b.ResetTimer()
	var alone, flooded, srvAlone, srvFlood []time.Duration
	var ratios []float64
	var st floodStats
	var cpuAlone, cpuFlood, wallAlone, wallFlood time.Duration
	var gcAlone, gcFlood uint32
	// settle keeps B sending, its latencies not counted, for a while after
	// the flood starts or pauses: both conditions begin the same way (B
	// never idles, which would let the cores go cold before one of them).
	settle := func() {
		for t0 := time.Now(); time.Since(t0) < 50*time.Millisecond; {
			measure(1)
		}
	}
	// The ledger's own figures for each condition: the mean time of a
	// commit (write and fdatasync) and of an append (spans handed over to
	// durable receipts), from the server's histograms.
	var commitAlone, commitFlood, appendAlone, appendFlood histDelta
	for range rounds {
		settle()
		ca, aa := readHist(s.metrics.CommitDuration), readHist(s.metrics.AppendDuration)
		g0 := numGC()
		c0, w0 := processCPU(), time.Now()
		a := measure(n)
		srvAlone = append(srvAlone, serverLat...)
		c1, w1 := processCPU(), time.Now()
		g1 := numGC()
		commitAlone.add(ca, readHist(s.metrics.CommitDuration))
		appendAlone.add(aa, readHist(s.metrics.AppendDuration))
		f.start()
		settle()
		g2 := numGC()
		cf, af := readHist(s.metrics.CommitDuration), readHist(s.metrics.AppendDuration)
		c2, w2 := processCPU(), time.Now()
		fl := measure(n)
		srvFlood = append(srvFlood, serverLat...)
		commitFlood.add(cf, readHist(s.metrics.CommitDuration))
		appendFlood.add(af, readHist(s.metrics.AppendDuration))
		c3, w3 := processCPU(), time.Now()
		gcAlone, gcFlood = gcAlone+g1-g0, gcFlood+numGC()-g2
		st = st.add(f.pause())
		cpuAlone, wallAlone = cpuAlone+c1-c0, wallAlone+w1.Sub(w0)
		cpuFlood, wallFlood = cpuFlood+c3-c2, wallFlood+w3.Sub(w2)
		alone, flooded = append(alone, a...), append(flooded, fl...)
		ratios = append(ratios, p99(fl)/p99(a))
	}
	b.StopTimer()
	if !placebo {
		if st.Refused < st.Sent/2 {
			b.Fatalf("the flooding tenant was not held at 429 (or, with QUOTA_FLOOD_HEALTHZ, not answered): %d of %d", st.Refused, st.Sent)
		}
		rate := float64(st.Sent) / st.Elapsed.Seconds()
		if floodRate > 0 && rate < 0.9*floodRate {
			b.Fatalf("the flood reached %.0f req/s of the %.0f asked", rate, floodRate)
		}
		b.ReportMetric(float64(st.Sent), "flood-sent")
		b.ReportMetric(float64(st.Refused), "flood-429s")
		b.ReportMetric(rate, "flood-req/s")
		if st.CPU > 0 {
			b.ReportMetric(st.CPU.Seconds()/st.Elapsed.Seconds(), "flood-client-cores")
		}
	}
	b.ReportMetric(p99(alone), "p99-alone-µs")
	b.ReportMetric(p99(flooded), "p99-flood-µs")
	b.ReportMetric(p99(flooded)/p99(alone), "p99-ratio")
	b.ReportMetric(p99(srvFlood)/p99(srvAlone), "server-p99-ratio")
	b.ReportMetric(p99(srvAlone), "server-p99-alone-µs")
	slices.Sort(ratios)
	b.ReportMetric(ratios[len(ratios)/2], "round-p99-ratio-median")
	// This process's CPU (server and tenant B's client) per second, alone
	// and flooded: the difference is the server's work for the flood.
	b.ReportMetric(cpuAlone.Seconds()/wallAlone.Seconds(), "cpu-alone-cores")
	b.ReportMetric(cpuFlood.Seconds()/wallFlood.Seconds(), "cpu-flood-cores")
	b.ReportMetric(float64(gcAlone)/wallAlone.Seconds(), "gc-alone/s")
	b.ReportMetric(float64(gcFlood)/wallFlood.Seconds(), "gc-flood/s")
	b.ReportMetric(commitAlone.meanMicros(), "commit-mean-alone-µs")
	b.ReportMetric(commitFlood.meanMicros(), "commit-mean-flood-µs")
	b.ReportMetric(appendAlone.meanMicros(), "append-mean-alone-µs")
	b.ReportMetric(appendFlood.meanMicros(), "append-mean-flood-µs")
	b.ReportMetric(0, "ns/op")
}

// sendSpan posts one span as tenant and returns the HTTP status.
func sendSpan(client *http.Client, base, tok, tenant string, i int64) int {
	req, _ := http.NewRequest("POST", base+"/ingest", bytes.NewReader(appendSpanLine(nil, tenant, i)))
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := client.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// appendSpanLine appends the i-th test span of tenant, as one NDJSON line
// without its newline.
func appendSpanLine(dst []byte, tenant string, i int64) []byte {
	dst = append(dst, `{"id":"s_`...)
	dst = strconv.AppendInt(dst, i, 10)
	dst = append(dst, `","tenant":`...)
	dst = strconv.AppendQuote(dst, tenant)
	dst = append(dst, `,"who":"dan","did":"sale.post","this":"order:`...)
	dst = strconv.AppendInt(dst, i%1000, 10)
	return append(dst, `","when":"2025-10-05T22:18:07Z","status":"confirmed"}`...)
}

// getHealthz asks base for /healthz and returns the HTTP status.
func getHealthz(client *http.Client, base string) int {
	resp, err := client.Get(base + "/healthz")
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// floodStats is what a flood did: requests sent, refused with 429 (or,
// with QUOTA_FLOOD_HEALTHZ, answered), for how long, and the flooding
// process's own CPU time (0 in process).
type floodStats struct {
	Sent, Refused int64
	Elapsed       time.Duration
	CPU           time.Duration
}

func (s floodStats) add(t floodStats) floodStats {
	return floodStats{s.Sent + t.Sent, s.Refused + t.Refused, s.Elapsed + t.Elapsed, s.CPU + t.CPU}
}

// A flooder floods tenant A on demand: start begins (or resumes) the
// flood, pause stops it and returns what it did since start. Its
// connections stay open in between.
type flooder interface {
	start()
	pause() floodStats
	close()
}

// noFlood is the placebo: the flooded rounds run with no flood, so the
// ratios measure the benchmark's own spread.
type noFlood struct{}

func (noFlood) start()            {}
func (noFlood) pause() floodStats { return floodStats{} }
func (noFlood) close()            {}

// runFlood sends single spans as tenant A (or, with QUOTA_FLOOD_HEALTHZ,
// GET /healthz) through the senders, one goroutine each, paced together at
// rate requests per second (0: as fast as answered), until stop is closed.
func runFlood(senders []sender, rate float64, stop <-chan struct{}) floodStats {
	var wg sync.WaitGroup
	var sent, refused atomic.Int64
	idBase := time.Now().UnixNano()
	start := time.Now()
	for _, send := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				i := sent.Add(1)
				if rate > 0 {
					due := start.Add(time.Duration(float64(i-1) / rate * float64(time.Second)))
					if wait := time.Until(due); wait > 0 {
						time.Sleep(wait)
					}
				}
				if send(idBase+i) == floodWant {
					refused.Add(1)
				}
			}
		}()
	}
	<-stop
	wg.Wait()
	return floodStats{Sent: sent.Load(), Refused: refused.Load(), Elapsed: time.Since(start)}
}

// A sender sends the flood's i-th request and returns the HTTP status.
type sender func(i int64) int

// floodWant is the status the flood expects: 429, or 200 from /healthz.
var floodWant = func() int {
	if os.Getenv("QUOTA_FLOOD_HEALTHZ") == "1" {
		return http.StatusOK
	}
	return http.StatusTooManyRequests
}()

// floodSenders returns the flood's 8 senders, each with its own keep-alive
// connection. By default each writes prepared HTTP/1.1 bytes and reads
// the response with http.ReadResponse: the lightest client there is, so
// that the load generator, which in deployment runs on other machines,
// takes as little of these two cores as it can. QUOTA_FLOOD_CLIENT=stdlib
// sends through net/http's Client instead.
func floodSenders(base, token string) []sender {
	senders := make([]sender, 8)
	if os.Getenv("QUOTA_FLOOD_CLIENT") == "stdlib" {
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
		for k := range senders {
			senders[k] = func(i int64) int {
				if floodWant == http.StatusOK {
					return getHealthz(client, base)
				}
				return sendSpan(client, base, token, "t_flood", i)
			}
		}
		return senders
	}
	addr := strings.TrimPrefix(base, "http://")
	for k := range senders {
		rc := &rawConn{addr: addr}
		var buf []byte
		senders[k] = func(i int64) int {
			if floodWant == http.StatusOK {
				buf = append(buf[:0], "GET /healthz HTTP/1.1\r\nHost: "...)
				buf = append(buf, addr...)
				buf = append(buf, "\r\n\r\n"...)
				return rc.do(buf)
			}
			var body [160]byte
			line := appendSpanLine(body[:0], "t_flood", i)
			buf = append(buf[:0], "POST /ingest HTTP/1.1\r\nHost: "...)
			buf = append(buf, addr...)
			buf = append(buf, "\r\nAuthorization: Bearer "...)
			buf = append(buf, token...)
			buf = append(buf, "\r\nContent-Type: application/x-ndjson\r\nContent-Length: "...)
			buf = strconv.AppendInt(buf, int64(len(line)), 10)
			buf = append(buf, "\r\n\r\n"...)
			buf = append(buf, line...)
			return rc.do(buf)
		}
	}
	return senders
}

// rawConn is one keep-alive HTTP/1.1 connection, dialled on first use and
// again after an error.
type rawConn struct {
	addr string
	c    net.Conn
	r    *bufio.Reader
}

// do writes the request req and returns the response's status (0 on a
// network error).
func (rc *rawConn) do(req []byte) int {
	if rc.c == nil {
		c, err := net.Dial("tcp", rc.addr)
		if err != nil {
			return 0
		}
		rc.c, rc.r = c, bufio.NewReader(c)
	}
	if _, err := rc.c.Write(req); err != nil {
		rc.close()
		return 0
	}
	resp, err := http.ReadResponse(rc.r, nil)
	if err != nil {
		rc.close()
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.Close {
		rc.close()
	}
	return resp.StatusCode
}

func (rc *rawConn) close() {
	if rc.c != nil {
		rc.c.Close()
		rc.c = nil
	}
}

// inprocFlood floods from this process, at the server's priority.
type inprocFlood struct {
	senders []sender
	rate    float64
	stop    chan struct{}
	res     chan floodStats
}

func (f *inprocFlood) start() {
	f.stop, f.res = make(chan struct{}), make(chan floodStats, 1)
	go func() { f.res <- runFlood(f.senders, f.rate, f.stop) }()
}

func (f *inprocFlood) pause() floodStats { close(f.stop); return <-f.res }
func (f *inprocFlood) close()            {}

// procFlood floods from a child process (this test binary started again)
// whose every thread runs at the lowest CPU priority. It takes "start" and
// "pause" lines on its standard input and answers each pause with a line
// of floodStats JSON; it exits when its input closes.
type procFlood struct {
	b     *testing.B
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *bufio.Scanner
	debug *strings.Builder
}

func startFloodProcess(b *testing.B, base, token string, rate float64) *procFlood {
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	procs := os.Getenv("QUOTA_FLOOD_PROCS")
	if procs == "" {
		procs = "1" // one thread runs Go code: no idle threads spinning for work on the server's cores
	}
	cmd.Env = append(os.Environ(), "GOMAXPROCS="+procs, floodEnv+"=1", "FLOOD_URL="+base, "FLOOD_TOKEN="+token, "FLOOD_RATE="+strconv.FormatFloat(rate, 'f', -1, 64))
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	f := &procFlood{b: b, cmd: cmd, in: in, out: bufio.NewScanner(out), debug: new(strings.Builder)}
	cmd.Stderr = f.debug
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	return f
}

func (f *procFlood) start() {
	if _, err := io.WriteString(f.in, "start\n"); err != nil {
		f.b.Fatalf("flood process: %v: %s", err, f.debug)
	}
}

func (f *procFlood) pause() floodStats {
	if _, err := io.WriteString(f.in, "pause\n"); err != nil {
		f.b.Fatalf("flood process: %v: %s", err, f.debug)
	}
	if !f.out.Scan() {
		f.b.Fatalf("flood process ended: %v: %s", f.out.Err(), f.debug)
	}
	var st floodStats
	if err := json.Unmarshal(f.out.Bytes(), &st); err != nil {
		f.b.Fatalf("flood process said %q: %v", f.out.Text(), err)
	}
	return st
}

func (f *procFlood) close() {
	f.in.Close()
	if err := f.cmd.Wait(); err != nil {
		f.b.Errorf("flood process: %v: %s", err, f.debug)
	}
}

// floodEnv makes the test binary a flood client (see TestMain).
const floodEnv = "LOGLINE_QUOTA_FLOOD"

// floodMain is the flood process (see procFlood).
func floodMain() {
	if err := lowestPriority(os.Getenv("QUOTA_FLOOD_SCHED")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	rate, _ := strconv.ParseFloat(os.Getenv("FLOOD_RATE"), 64)
	senders := floodSenders(os.Getenv("FLOOD_URL"), os.Getenv("FLOOD_TOKEN"))
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if in.Text() != "start" {
			continue
		}
		stop, res := make(chan struct{}), make(chan floodStats, 1)
		cpu0 := processCPU()
		go func() { res <- runFlood(senders, rate, stop) }()
		for in.Scan() && in.Text() != "pause" {
		}
		close(stop)
		st := <-res
		st.CPU = processCPU() - cpu0
		json.NewEncoder(os.Stdout).Encode(st)
	}
}

// processCPU is this process's user and system CPU time so far.
func processCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// lowestPriority puts every thread of this process at the lowest CPU
// priority: nice 19, or with sched "idle" the SCHED_IDLE policy (run only
// when a core has nothing else to run). Linux keeps both per thread and a
// new thread inherits them from the one that creates it, so every thread
// that exists now is set.
func lowestPriority(sched string) error {
	tids, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, t := range tids {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if sched == "idle" {
			err = unix.SchedSetAttr(tid, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_IDLE}, 0)
		} else {
			err = unix.Setpriority(unix.PRIO_PROCESS, tid, 19)
		}
		if err != nil && err != unix.ESRCH {
			return fmt.Errorf("thread %d: %w", tid, err)
		}
	}
	return nil
}

// numGC is the number of garbage collections so far.
func numGC() uint32 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.NumGC
}

// histSnap is a histogram's sum and count at one moment.
type histSnap struct {
	sum   float64
	count uint64
}

func readHist(h prometheus.Histogram) histSnap {
	var m dto.Metric
	if err := h.(prometheus.Metric).Write(&m); err != nil {
		return histSnap{}
	}
	return histSnap{m.GetHistogram().GetSampleSum(), m.GetHistogram().GetSampleCount()}
}

// histDelta adds up a histogram's growth over several intervals.
type histDelta histSnap

func (d *histDelta) add(from, to histSnap) {
	d.sum += to.sum - from.sum
	d.count += to.count - from.count
}

// meanMicros is the mean observation in microseconds (seconds observed).
func (d histDelta) meanMicros() float64 {
	if d.count == 0 {
		return 0
	}
	return d.sum / float64(d.count) * 1e6
}
