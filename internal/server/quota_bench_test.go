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
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loglineos/loglineos/internal/identity"
)

// BenchmarkQuotaIsolation measures tenant B's single-span ingest latency
// alone, then while tenant A sends far beyond its quota of 50 spans/s (A is
// held at 429), and reports both p99s and their ratio. The flood is paced at
// QUOTA_FLOOD_RATE requests per second (default 2000: 40 times A's quota),
// from 8 clients in this same process; 0 sends as fast as it can, which on
// a 2-core machine measures CPU contention with the flooding clients
// themselves rather than the quota.
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
	send := func(tok, tenant string, i int64) int {
		line := fmt.Sprintf(`{"id":"s_%d","tenant":%q,"who":"dan","did":"sale.post","this":"order:%d","when":"2025-10-05T22:18:07Z","status":"confirmed"}`, i, tenant, i%1000)
		req, _ := http.NewRequest("POST", ts.URL+"/ingest", strings.NewReader(line))
		req.Header.Set("Content-Type", "application/x-ndjson")
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	var next atomic.Int64
	measure := func(n int) []time.Duration {
		lat := make([]time.Duration, 0, n)
		for range n {
			t0 := time.Now()
			if code := send(calm, "t_calm", next.Add(1)); code != 200 {
				b.Fatalf("calm tenant: HTTP %d", code)
			}
			lat = append(lat, time.Since(t0))
		}
		slices.Sort(lat)
		return lat
	}
	p99 := func(l []time.Duration) float64 { return float64(l[len(l)*99/100].Microseconds()) }
	n := max(b.N, 200)
	measure(100) // warm up
	b.ResetTimer()
	alone := measure(n)

	floodRate := 2000.0
	if v := os.Getenv("QUOTA_FLOOD_RATE"); v != "" {
		floodRate, _ = strconv.ParseFloat(v, 64)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var refused, sent atomic.Int64
	floodStart := time.Now()
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
				if floodRate > 0 {
					due := floodStart.Add(time.Duration(float64(sent.Load()) / floodRate * float64(time.Second)))
					if wait := time.Until(due); wait > 0 {
						time.Sleep(wait)
					}
				}
				if send(flood, "t_flood", next.Add(1)) == 429 {
					refused.Add(1)
				}
				sent.Add(1)
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	flooded := measure(n)
	close(stop)
	wg.Wait()
	b.StopTimer()
	if refused.Load() < sent.Load()/2 {
		b.Fatalf("the flooding tenant was not held at 429: %d of %d refused", refused.Load(), sent.Load())
	}
	b.ReportMetric(p99(alone), "p99-alone-µs")
	b.ReportMetric(p99(flooded), "p99-flood-µs")
	b.ReportMetric(p99(flooded)/p99(alone), "p99-ratio")
	b.ReportMetric(float64(refused.Load()), "flood-429s")
	b.ReportMetric(float64(sent.Load())/time.Since(floodStart).Seconds(), "flood-req/s")
	b.ReportMetric(0, "ns/op")
}
