//go:build unix

package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loglineos/loglineos/internal/identity"
	"golang.org/x/sys/unix"
)

// BenchmarkQuotaIsolation measures tenant B's single-span ingest latency
// alone and while tenant A sends far beyond its quota of 50 spans/s (A is
// held at 429), and reports both p99s and their ratio. The two conditions
// alternate in rounds (alone, flooded, alone, ...) so that drift in the
// machine's load falls on both alike.
//
// It reports the p99s of all rounds pooled, their ratio, and the median over
// rounds of each round's ratio (flooded p99 over the alone p99 just before
// it), which a burst of the machine's own noise moves less.
//
// The flood is paced at QUOTA_FLOOD_RATE requests per second (default 2000:
// 40 times A's quota) from 8 connections. It comes from a separate process
// (this test binary started again) at the lowest CPU priority, standing in
// for A's clients on their own machines: the server's work for every refused
// request is counted in full, the clients' work is not put on the same two
// cores at the same priority. The benchmark fails if the flood falls below
// 90% of its rate or is not held at 429. QUOTA_FLOOD_INPROC=1 runs the
// flooding clients inside this process instead, at the server's priority.
// QUOTA_FLOOD_HEALTHZ=1 makes the flood GET /healthz instead, the cheapest
// request the server answers: the comparison point for what any 2,000
// requests a second cost tenant B on these cores.
//
//	go test -run '^$' -bench QuotaIsolation -benchtime 3000x ./internal/server/
func BenchmarkQuotaIsolation(b *testing.B) {
	data := b.TempDir()
	os.MkdirAll(filepath.Join(data, "cfg", "tenants"), 0o755)
	os.WriteFile(filepath.Join(data, "cfg", "tenants", "t_flood.yaml"), []byte("quotas: {ingest_per_second: 50, burst: 50}\n"), 0o644)
	os.WriteFile(filepath.Join(data, "cfg", "tenants", "t_calm.yaml"), []byte("quotas: {ingest_per_second: 100000, burst: 100000}\n"), 0o644)
	cfg := DefaultConfig()
	cfg.Data = data
	cfg.Derive.TickInterval = 0
	s, err := Open(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	defer func() {
		ts.Close()
		s.Close()
	}()
	token := func(tenant string) string {
		_, secret, err := s.identity.CreateServiceAccount(context.Background(), identity.NewServiceAccount{Tenant: tenant, Role: "app"})
		if err != nil {
			b.Fatal(err)
		}
		accts := s.identity.ServiceAccounts(tenant)
		form := url.Values{"grant_type": {"client_credentials"}, "client_id": {accts[len(accts)-1].ID}, "client_secret": {secret}}
		resp, err := http.PostForm(ts.URL+"/auth/token", form)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		json.NewDecoder(resp.Body).Decode(&tok)
		if tok.AccessToken == "" {
			b.Fatalf("no token for %s (HTTP %d)", tenant, resp.StatusCode)
		}
		return tok.AccessToken
	}
	flood, calm := token("t_flood"), token("t_calm")
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var next atomic.Int64
	measure := func(n int) []time.Duration {
		lat := make([]time.Duration, 0, n)
		for range n {
			t0 := time.Now()
			if code := sendSpan(client, ts.URL, calm, "t_calm", next.Add(1)); code != 200 {
				b.Fatalf("calm tenant: HTTP %d", code)
			}
			lat = append(lat, time.Since(t0))
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
	inproc := os.Getenv("QUOTA_FLOOD_INPROC") == "1"

	const rounds = 16
	n := max(b.N, 200*rounds) / rounds
	measure(100) // warm up
	b.ResetTimer()
	var alone, flooded []time.Duration
	var ratios []float64
	var sent, refused int64
	var floodTime time.Duration
	var cpuAlone, cpuFlood, wallAlone, wallFlood time.Duration
	for range rounds {
		c0, w0 := processCPU(), time.Now()
		a := measure(n)
		c1, w1 := processCPU(), time.Now()
		f := startFlood(b, inproc, ts.URL, flood, floodRate)
		time.Sleep(200 * time.Millisecond)
		c2, w2 := processCPU(), time.Now()
		fl := measure(n)
		c3, w3 := processCPU(), time.Now()
		st := f.stop()
		cpuAlone, wallAlone = cpuAlone+c1-c0, wallAlone+w1.Sub(w0)
		cpuFlood, wallFlood = cpuFlood+c3-c2, wallFlood+w3.Sub(w2)
		sent, refused, floodTime = sent+st.Sent, refused+st.Refused, floodTime+st.Elapsed
		alone, flooded = append(alone, a...), append(flooded, fl...)
		ratios = append(ratios, p99(fl)/p99(a))
	}
	b.StopTimer()
	if refused < sent/2 {
		b.Fatalf("the flooding tenant was not held at 429 (or, with QUOTA_FLOOD_HEALTHZ, not answered): %d of %d", refused, sent)
	}
	rate := float64(sent) / floodTime.Seconds()
	if floodRate > 0 && rate < 0.9*floodRate {
		b.Fatalf("the flood reached %.0f req/s of the %.0f asked", rate, floodRate)
	}
	b.ReportMetric(p99(alone), "p99-alone-µs")
	b.ReportMetric(p99(flooded), "p99-flood-µs")
	b.ReportMetric(p99(flooded)/p99(alone), "p99-ratio")
	slices.Sort(ratios)
	b.ReportMetric(ratios[len(ratios)/2], "round-p99-ratio-median")
	b.ReportMetric(float64(refused), "flood-429s")
	// This process's CPU (server and tenant B's client) per second, alone
	// and flooded: the difference is the server's work for the flood.
	b.ReportMetric(cpuAlone.Seconds()/wallAlone.Seconds(), "cpu-alone-cores")
	b.ReportMetric(cpuFlood.Seconds()/wallFlood.Seconds(), "cpu-flood-cores")
	b.ReportMetric(rate, "flood-req/s")
	b.ReportMetric(0, "ns/op")
}

// sendSpan posts one span as tenant and returns the HTTP status.
func sendSpan(client *http.Client, base, tok, tenant string, i int64) int {
	line := fmt.Sprintf(`{"id":"s_%d","tenant":%q,"who":"dan","did":"sale.post","this":"order:%d","when":"2025-10-05T22:18:07Z","status":"confirmed"}`, i, tenant, i%1000)
	req, _ := http.NewRequest("POST", base+"/ingest", strings.NewReader(line))
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

// floodStats is what a flood did: requests sent, refused with 429, and
// how long it ran.
type floodStats struct {
	Sent, Refused int64
	Elapsed       time.Duration
}

// runFlood sends single spans as tenant with token to base, paced at rate
// requests per second (0: as fast as answered) from 8 connections, until
// stop is closed. Span ids start at a random offset so that two floods do
// not collide.
func runFlood(base, token, tenant string, rate float64, stop <-chan struct{}) floodStats {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	healthz := os.Getenv("QUOTA_FLOOD_HEALTHZ") == "1"
	var wg sync.WaitGroup
	var sent, refused atomic.Int64
	idBase := time.Now().UnixNano()
	start := time.Now()
	for range 8 {
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
				if healthz {
					if getHealthz(client, base) == 200 {
						refused.Add(1) // answered
					}
				} else if sendSpan(client, base, token, tenant, idBase+i) == 429 {
					refused.Add(1)
				}
			}
		}()
	}
	<-stop
	wg.Wait()
	return floodStats{Sent: sent.Load(), Refused: refused.Load(), Elapsed: time.Since(start)}
}

type floodProc struct {
	stop func() floodStats
}

// startFlood starts a flood, in this process (inproc) or in a child at the
// lowest CPU priority.
func startFlood(b *testing.B, inproc bool, base, token string, rate float64) floodProc {
	if inproc {
		stop := make(chan struct{})
		res := make(chan floodStats, 1)
		go func() { res <- runFlood(base, token, "t_flood", rate, stop) }()
		return floodProc{stop: func() floodStats { close(stop); return <-res }}
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), floodEnv+"=1", "FLOOD_URL="+base, "FLOOD_TOKEN="+token, "FLOOD_RATE="+strconv.FormatFloat(rate, 'f', -1, 64))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	if err := unix.Setpriority(unix.PRIO_PROCESS, cmd.Process.Pid, 19); err != nil {
		b.Fatal(err)
	}
	return floodProc{stop: func() floodStats {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			b.Fatalf("flood process: %v: %s", err, out.String())
		}
		var st floodStats
		if err := json.Unmarshal([]byte(out.String()), &st); err != nil {
			b.Fatalf("flood process said %q: %v", out.String(), err)
		}
		return st
	}}
}

// floodEnv makes the test binary a flood client (see TestMain).
const floodEnv = "LOGLINE_QUOTA_FLOOD"

// floodMain is the flood process: it floods until its standard input
// closes, then prints its floodStats as JSON.
func floodMain() {
	rate, _ := strconv.ParseFloat(os.Getenv("FLOOD_RATE"), 64)
	stop := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(stop)
	}()
	st := runFlood(os.Getenv("FLOOD_URL"), os.Getenv("FLOOD_TOKEN"), "t_flood", rate, stop)
	json.NewEncoder(os.Stdout).Encode(st)
}

// processCPU is this process's user and system CPU time so far.
func processCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
