//go:build unix

// Command flood sends requests to a LogLineOS server on a fixed schedule
// (an open loop: request k is due at k/rate seconds after the start,
// whatever the answers before it), for the isolation mode of
// bench/single-span/run. wrk has no fixed rate of its own (wrk2, which has,
// is not packaged by Debian).
//
//	flood -url http://127.0.0.1:PORT [-rate 2000] [-conns 8]
//
// Its standard input says what to send, one command a line; its
// connections stay open from one command to the next:
//
//	ingest TENANT TOKEN   POST /v1/ingest, one span of TENANT a request, with TOKEN
//	healthz               GET /healthz
//	pause                 stop, and print what was sent since the command before
//
// Each pause prints one line on standard output:
//
//	FLOOD kind=ingest sent=N s200=N s429=N other=N errors=N seconds=S rate=R cpu=C
//
// where s200 and s429 count those answers, other any other status, errors
// requests without an answer, rate is sent/seconds and cpu this process's
// CPU seconds (user and system) over the same time. It exits when its input
// ends.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	url := flag.String("url", "", "server base URL, e.g. http://127.0.0.1:8080")
	rate := flag.Float64("rate", 2000, "requests a second")
	conns := flag.Int("conns", 8, "connections (and requests in flight at most)")
	flag.Parse()
	if *url == "" || *rate <= 0 || *conns <= 0 {
		fmt.Fprintln(os.Stderr, "flood: -url is required, -rate and -conns must be positive")
		os.Exit(2)
	}
	if err := run(os.Stdin, os.Stdout, strings.TrimRight(*url, "/"), *rate, *conns); err != nil {
		fmt.Fprintln(os.Stderr, "flood:", err)
		os.Exit(1)
	}
}

// stats is what one flood did.
type stats struct {
	kind                             string
	sent, s200, s429, other, errored atomic.Int64
	seconds, cpu                     float64
}

func (s *stats) String() string {
	rate := 0.0
	if s.seconds > 0 {
		rate = float64(s.sent.Load()) / s.seconds
	}
	return fmt.Sprintf("FLOOD kind=%s sent=%d s200=%d s429=%d other=%d errors=%d seconds=%.3f rate=%.1f cpu=%.3f",
		s.kind, s.sent.Load(), s.s200.Load(), s.s429.Load(), s.other.Load(), s.errored.Load(),
		s.seconds, rate, s.cpu)
}

// run reads commands from in and prints a stats line to out at each pause.
func run(in io.Reader, out io.Writer, url string, rate float64, conns int) error {
	client := &http.Client{
		Transport: &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, DisableCompression: true},
		Timeout:   30 * time.Second,
	}
	var (
		cancel context.CancelFunc
		done   chan *stats
	)
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch {
		case f[0] == "pause":
			if cancel == nil {
				return fmt.Errorf("pause while not flooding")
			}
			cancel()
			st := <-done
			cancel = nil
			if _, err := fmt.Fprintln(out, st); err != nil {
				return err
			}
		case cancel != nil:
			return fmt.Errorf("%q while flooding: pause first", f[0])
		case f[0] == "healthz" && len(f) == 1, f[0] == "ingest" && len(f) == 3:
			var ctx context.Context
			ctx, cancel = context.WithCancel(context.Background())
			done = make(chan *stats, 1)
			send := newSender(client, url, f)
			go func() { done <- flood(ctx, send, f[0], rate, conns) }()
		default:
			return fmt.Errorf("unknown command %q (ingest TENANT TOKEN, healthz or pause)", sc.Text())
		}
	}
	if cancel != nil {
		cancel()
		<-done
	}
	return sc.Err()
}

// newSender returns a function that sends the i-th request of the command
// f and returns the answer's status.
func newSender(client *http.Client, url string, f []string) func(ctx context.Context, i int64) (int, error) {
	var runID [6]byte
	rand.Read(runID[:])
	run := hex.EncodeToString(runID[:])
	return func(ctx context.Context, i int64) (int, error) {
		var req *http.Request
		if f[0] == "healthz" {
			req, _ = http.NewRequestWithContext(ctx, "GET", url+"/healthz", nil)
		} else {
			var b []byte
			b = append(b, `{"id":"f_`...)
			b = append(b, run...)
			b = append(b, '_')
			b = strconv.AppendInt(b, i, 10)
			b = append(b, `","tenant":`...)
			b = strconv.AppendQuote(b, f[1])
			b = append(b, `,"who":"flood","did":"bench.post","this":"order:`...)
			b = strconv.AppendInt(b, i%1000, 10)
			b = append(b, `","when":"2026-01-01T00:00:00Z","status":"confirmed"}`+"\n"...)
			req, _ = http.NewRequestWithContext(ctx, "POST", url+"/v1/ingest", bytes.NewReader(b))
			req.Header.Set("Content-Type", "application/x-ndjson")
			req.Header.Set("Authorization", "Bearer "+f[2])
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
}

// flood sends requests with send from conns goroutines, request k due at
// k/rate seconds after the start, until ctx ends.
func flood(ctx context.Context, send func(context.Context, int64) (int, error), kind string, rate float64, conns int) *stats {
	st := &stats{kind: kind}
	cpu0 := cpuSeconds()
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTimer(0)
			defer t.Stop()
			<-t.C
			for {
				i := next.Add(1) - 1
				if wait := time.Until(start.Add(time.Duration(float64(i) / rate * float64(time.Second)))); wait > 0 {
					t.Reset(wait)
					select {
					case <-t.C:
					case <-ctx.Done():
						return
					}
				}
				if ctx.Err() != nil {
					return
				}
				code, err := send(ctx, i)
				if ctx.Err() != nil {
					return // the pause, not the server
				}
				st.sent.Add(1)
				switch {
				case err != nil:
					st.errored.Add(1)
				case code == http.StatusOK:
					st.s200.Add(1)
				case code == http.StatusTooManyRequests:
					st.s429.Add(1)
				default:
					st.other.Add(1)
				}
			}
		}()
	}
	<-ctx.Done()
	wg.Wait()
	st.seconds = time.Since(start).Seconds()
	st.cpu = cpuSeconds() - cpu0
	return st
}

// cpuSeconds is this process's user and system CPU time so far.
func cpuSeconds() float64 {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
