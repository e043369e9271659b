//go:build smoke

package cli

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/loglineos/loglineos/internal/server"
	"github.com/loglineos/loglineos/internal/server/servertest"
)

// Gates of the end-to-end smoke benchmark (.ci/run runs it without -race).
const (
	// smokeMaxErrorRate: requests that failed or spans refused, over those
	// sent.
	smokeMaxErrorRate = 0.005
	// smokeMaxP95 bounds a 1,000-span request's p95. docs/BENCHMARKS.md
	// measures about 180,000 spans/s in 1,000-span batches on a quiet
	// machine, so four clients wait some 25 ms a request; with a CI run
	// compiling and testing beside it the p95 was 339 ms. The bound is 80
	// times the quiet figure, six times the loaded one, because the 2-core
	// CI machine is shared: it catches a server that stalls, not a slow day.
	smokeMaxP95 = 2 * time.Second
)

// TestSmoke drives the whole path once on a real server: ingest (a bench
// run of 50,000 spans in 1,000-span batches from four clients), the ledger,
// trajectories closed by rule, quality scores and the meter, and the
// metrics that report them; it fails on an error rate of 0.5% or more or a
// p95 beyond smokeMaxP95.
func TestSmoke(t *testing.T) {
	const spans = 50_000
	cfg := server.DefaultConfig()
	cfg.Data = t.TempDir()
	cfg.Dev = true
	dir := filepath.Join(cfg.Data, "cfg", "tenants")
	os.MkdirAll(dir, 0o755)
	// Every bench span closes its own trajectory, so each is scored.
	if err := os.WriteFile(filepath.Join(dir, "t_smoke.yaml"), []byte("policies:\n  trajectory_linker: {close_on_did: [bench.post]}\n  quality_meter: {warmup: 10}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	url := servertest.Start(t, cfg).URL

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := benchIngest(ctx, benchOpts{urls: []string{url}, tenant: "t_smoke", spans: spans, batch: 1000, conc: 4, size: 300, duration: 2 * time.Minute}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ingest: %d spans in %.2fs, %.0f spans/s; p50 %.1f ms, p95 %.1f ms, p99 %.1f ms; %d failed requests, %d rejected spans",
		rep.Spans, rep.Seconds, rep.SpansPerSec, rep.LatencyMS.P50, rep.LatencyMS.P95, rep.LatencyMS.P99, rep.Failed, rep.Rejected)
	if sent := rep.Spans + (rep.tried-rep.Requests)*int64(rep.Batch); sent > 0 {
		bad := float64(rep.Rejected+rep.Failed*int64(rep.Batch)) / float64(sent)
		if bad >= smokeMaxErrorRate {
			t.Errorf("error rate %.2f%% (%d failed requests, %d rejected spans): the gate is %.1f%%", 100*bad, rep.Failed, rep.Rejected, 100*smokeMaxErrorRate)
		}
	}
	if rep.Accepted < spans*995/1000 {
		t.Errorf("%d of %d spans accepted", rep.Accepted, spans)
	}
	if p95 := time.Duration(rep.LatencyMS.P95 * float64(time.Millisecond)); p95 > smokeMaxP95 {
		t.Errorf("p95 %v of a 1,000-span request: the gate is %v", p95, smokeMaxP95)
	}

	// Derivation catches up: every span linked, every trajectory closed by
	// rule and scored; the metrics say so.
	want := strconv.FormatInt(rep.Accepted, 10)
	closed := regexp.MustCompile(`logline_trajectory_closed_total\{reason="rule",tenant="t_smoke"\} ` + want + `\n`)
	scored := regexp.MustCompile(`logline_quality_scores_total\{tenant="t_smoke"\} ` + want + `\n`)
	// The backlog reaches 0 too (a clock tick may be appended meanwhile:
	// it is waited for, not failed on).
	caughtUp := regexp.MustCompile(`logline_derive_backlog_records 0\n`)
	var body []byte
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get(url + "/v1/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if closed.Match(body) && scored.Match(body) && caughtUp.Match(body) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("derivation did not close and score %s trajectories within 2 minutes:\n%s", want, grepLines(body, `logline_(trajectory|quality|derive)_`))
		}
	}
	for _, re := range []string{`logline_quality_score_percentile\{percentile="p95",tenant="t_smoke"\} [1-9]`} {
		if !regexp.MustCompile(re).Match(body) {
			t.Errorf("metrics lack %s", re)
		}
	}
}

// grepLines returns the lines of b that match re.
func grepLines(b []byte, re string) string {
	var out []byte
	for _, l := range regexp.MustCompile(`(?m)^.*$`).FindAll(b, -1) {
		if regexp.MustCompile(re).Match(l) {
			out = append(append(out, l...), '\n')
		}
	}
	return string(out)
}
