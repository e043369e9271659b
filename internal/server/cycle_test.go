package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/loglineos/loglineos/internal/cycle"
	"github.com/loglineos/loglineos/internal/derive"
	"github.com/loglineos/loglineos/internal/span"
)

// testServer starts a development server on a temporary data directory.
func testServer(t testing.TB, data string, mutate func(*Config)) (*Server, *httptest.Server) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Data = data
	cfg.Dev = true
	cfg.Derive.TickInterval = 0
	cfg.Ledger.CheckpointInterval = 100 * time.Millisecond
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := Open(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		ts.Close()
		s.Close()
	})
	return s, ts
}

func post(t testing.TB, url string, body []byte) {
	t.Helper()
	resp, err := http.Post(url+"/ingest", "application/x-ndjson", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("ingest: HTTP %d: %s", resp.StatusCode, b)
	}
}

// waitDerived waits until the runner has derived every durable record.
func waitDerived(t testing.TB, s *Server) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for s.runner.Cursor() < s.ledger.Next() {
		if time.Now().After(deadline) {
			t.Fatalf("derivation stuck at %d of %d", s.runner.Cursor(), s.ledger.Next())
		}
		select {
		case <-s.runner.Changed():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// streams returns every tenant's derived stream, as stored.
func streams(t *testing.T, r *cycle.Runner) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, tenant := range r.Tenants() {
		if _, err := r.Events(tenant, 0, func(n uint64, ev []byte) bool {
			out[tenant] = append(out[tenant], string(ev))
			return true
		}); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// workload writes n spans of a few tenants whose trajectories close by rule,
// by timeout (as later spans move the clock), and heartbeats that must
// never link.
func workload(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	var b bytes.Buffer
	base := time.Date(2025, 10, 5, 0, 0, 0, 0, time.UTC)
	dids := []string{"sale.post", "sale.paid", "sale.ship", "sale.close"}
	for i := range n {
		tenant := fmt.Sprintf("t_%d", i%3)
		when := base.Add(time.Duration(i) * 30 * time.Second)
		if rng.IntN(20) == 0 {
			when = when.Add(-time.Duration(rng.IntN(3600)) * time.Second) // late
		}
		this := fmt.Sprintf("order:%d", rng.IntN(n/8+1))
		if rng.IntN(25) == 0 {
			this = fmt.Sprintf("heartbeat-%d", rng.IntN(5))
		}
		status := "confirmed"
		var conf string
		switch rng.IntN(3) {
		case 0:
			status = "pending"
		case 1:
			conf = fmt.Sprintf(`,"confirmed_by":["pos://%d","bank://%d"]`, rng.IntN(4), rng.IntN(2))
		default:
			conf = fmt.Sprintf(`,"confirmed_by":["pos://%d"]`, rng.IntN(4))
		}
		fmt.Fprintf(&b, `{"id":"s_%d","tenant":%q,"who":"u%d","did":%q,"this":%q,"when":%q,"status":%q%s}`+"\n",
			i, tenant, rng.IntN(9), dids[rng.IntN(len(dids))], this, when.Format(time.RFC3339), status, conf)
		if i%997 == 0 && i > 0 { // a resent span: a duplicate
			fmt.Fprintf(&b, `{"id":"s_%d","tenant":%q,"who":"x","did":"x","this":"x","when":%q,"status":"pending"}`+"\n", i-1, fmt.Sprintf("t_%d", (i-1)%3), when.Format(time.RFC3339))
		}
	}
	return b.Bytes()
}

// TestSimulateEqualsLive: the dry run over a file equals what the server
// derives after ingesting the same file into an empty ledger (no ticks).
func TestSimulateEqualsLive(t *testing.T) {
	n := 20_000
	if testing.Short() {
		n = 3000
	}
	data := workload(n, 1)
	s, ts := testServer(t, t.TempDir(), nil)
	lines := bytes.SplitAfter(data, []byte("\n"))
	for i := 0; i < len(lines); i += 500 {
		post(t, ts.URL, bytes.Join(lines[i:min(i+500, len(lines))], nil))
	}
	waitDerived(t, s)
	live := streams(t, s.runner)

	var spans []*span.Span
	for _, ln := range lines {
		if len(bytes.TrimSpace(ln)) == 0 {
			continue
		}
		sp, err := span.Parse(bytes.TrimSpace(ln), span.DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		spans = append(spans, sp)
	}
	sim := map[string][]string{}
	sum, _, err := s.dryRun("t_0", spans, nil, derive.SimConfig{OnEvent: func(ev *derive.Event) error {
		sim[ev.Tenant] = append(sim[ev.Tenant], string(ev.AppendJSON(nil)))
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sim, live); diff != "" {
		t.Fatalf("simulation differs from live derivation (-sim +live):\n%s", diff)
	}
	if sum.Trajectories == 0 || sum.Timeout == 0 || sum.Excepted == 0 || sum.Scored == 0 {
		t.Fatalf("the workload does not exercise the cycle: %+v", sum)
	}
	// Heartbeats never made trajectories.
	for tenant, evs := range live {
		for _, ev := range evs {
			if strings.Contains(ev, `"this":"heartbeat-`) {
				t.Fatalf("%s: a heartbeat was linked: %s", tenant, ev)
			}
		}
	}
	t.Logf("%d spans: %d trajectories, %d rule / %d timeout closes, %d excepted, %d events", sum.Spans, sum.Trajectories, sum.Rule, sum.Timeout, sum.Excepted, sum.EventCount)
}

// TestTicksCloseIdleTrajectories: with only clock ticks and no new spans,
// open trajectories close by timeout in a running server.
func TestTicksCloseIdleTrajectories(t *testing.T) {
	data := t.TempDir()
	os.MkdirAll(filepath.Join(data, "cfg", "tenants"), 0o755)
	os.WriteFile(filepath.Join(data, "cfg", "tenants", "t_idle.yaml"), []byte("policies:\n  trajectory_linker: {close_timeout: \"1s\"}\n"), 0o644)
	s, ts := testServer(t, data, func(c *Config) { c.Derive.TickInterval = 100 * time.Millisecond })
	now := time.Now().UTC().Format(time.RFC3339Nano)
	post(t, ts.URL, []byte(fmt.Sprintf(`{"id":"s_1","tenant":"t_idle","who":"dan","did":"sale.post","this":"order:1","when":%q,"status":"confirmed"}`+"\n", now)))
	deadline := time.Now().Add(15 * time.Second)
	for {
		evs := streams(t, s.runner)["t_idle"]
		if len(evs) >= 3 && strings.Contains(evs[1], `"type":"trajectory_closed"`) {
			if !strings.Contains(evs[1], `"reason":"timeout"`) {
				t.Fatalf("closed, but not by timeout: %s", evs[1])
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the idle trajectory did not close: %v", evs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestHotReloadAndReplay: a tenant file written while the server runs
// changes behaviour from its config record on; a reindex reproduces the
// same derived streams.
func TestHotReloadAndReplay(t *testing.T) {
	data := t.TempDir()
	tenants := filepath.Join(data, "cfg", "tenants")
	os.MkdirAll(tenants, 0o755)
	s, ts := testServer(t, data, func(c *Config) { c.Derive.TenantScanInterval = 50 * time.Millisecond })
	span := func(id, this, did, when string) string {
		return fmt.Sprintf(`{"id":%q,"tenant":"t_hot","who":"dan","did":%q,"this":%q,"when":%q,"status":"confirmed"}`+"\n", id, did, this, when)
	}
	// Before: sale.close is just another span.
	post(t, ts.URL, []byte(span("a1", "order:1", "sale.post", "2025-10-05T10:00:00Z")+span("a2", "order:1", "sale.close", "2025-10-05T10:01:00Z")))
	waitDerived(t, s)
	before := s.ledger.Next()
	os.WriteFile(filepath.Join(tenants, "t_hot.yaml"), []byte("policies:\n  trajectory_linker: {close_on_did: [\"sale.close\"]}\n"), 0o644)
	deadline := time.Now().Add(10 * time.Second)
	for s.ledger.Next() == before {
		if time.Now().After(deadline) {
			t.Fatal("the tenant file was not picked up")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// After: sale.close closes by rule.
	post(t, ts.URL, []byte(span("b1", "order:2", "sale.post", "2025-10-05T10:02:00Z")+span("b2", "order:2", "sale.close", "2025-10-05T10:03:00Z")))
	waitDerived(t, s)
	got := streams(t, s.runner)["t_hot"]
	var rules, edges int
	for _, ev := range got {
		if strings.Contains(ev, `"reason":"rule"`) {
			rules++
			if !strings.Contains(ev, `"seq":4`) {
				t.Fatalf("rule close at the wrong record: %s", ev)
			}
		}
		if strings.Contains(ev, `"trajectory_edge"`) {
			edges++
		}
	}
	if rules != 1 || edges != 4 {
		t.Fatalf("want one rule close (order:2, after the config record) and 4 edges:\n%s", strings.Join(got, "\n"))
	}
	// A bad file is refused and changes nothing.
	os.WriteFile(filepath.Join(tenants, "t_hot.yaml"), []byte("policies:\n  trajectory_linker: {close_timeout: \"soon\"}\n"), 0o644)
	time.Sleep(300 * time.Millisecond)
	if n := s.ledger.Next(); n != 5 {
		t.Fatalf("a refused tenant file reached the ledger: %d records", n)
	}

	// Replay: stop, reindex, compare.
	want := streams(t, s.runner)
	s.Close()
	cfg := DefaultConfig()
	cfg.Data = data
	if _, _, err := Reindex(context.Background(), cfg, slog.New(slog.DiscardHandler), false, nil); err != nil {
		t.Fatal(err)
	}
	s2, _ := testServer(t, data, nil)
	waitDerived(t, s2)
	if diff := cmp.Diff(want, streams(t, s2.runner)); diff != "" {
		t.Fatalf("replay differs (-before +after):\n%s", diff)
	}
}
