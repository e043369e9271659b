package server

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/loglineos/loglineos/internal/bundle"
	"github.com/loglineos/loglineos/internal/lll/backend"
	"github.com/loglineos/loglineos/stdlib"
)

// ingestResults posts NDJSON and returns each line's status.
func ingestResults(t *testing.T, url string, body string) []string {
	t.Helper()
	resp, err := http.Post(url+"/ingest", "application/x-ndjson", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Results []struct {
			Status  string `json:"status"`
			Problem struct {
				Detail string `json:"detail"`
			} `json:"problem"`
		} `json:"results"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range out.Results {
		got = append(got, r.Status+" "+r.Problem.Detail)
	}
	return got
}

func metricsText(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestBackends runs the standard bundle's span contract on each backend:
// the same answers; wasm and shadow run the module (compiled at start
// from the standard bundle's IR) on every span, and shadow counts no
// divergence, with a series at 0 from the start.
func TestBackends(t *testing.T) {
	lines := `{"id":"s_1","tenant":"t_a","who":"dan","did":"sale.post","this":"o:1","when":"2025-10-05T22:18:07Z","status":"confirmed"}
{"id":"s_2","tenant":"t_a","who":"dan","did":"sale.post","this":"o:1","when":"2025-13-45","status":"confirmed"}
{"id":"s_3","tenant":"t_a","who":"","did":"sale.post","this":"o:1","when":"2025-10-05T22:18:07Z","status":"confirmed"}
{"id":"s_4","tenant":"t_a","who":"dan","did":"sale.post","this":"o:1","when":"2025-10-05T22:18:07Z","status":"shipped","colour":1}
`
	var want []string
	for _, k := range backend.Kinds() {
		t.Run(string(k), func(t *testing.T) {
			_, ts := testServer(t, t.TempDir(), func(c *Config) { c.Bundle.Backend = string(k) })
			got := ingestResults(t, ts.URL+"/v1", lines)
			if want == nil {
				want = got
			} else if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("results\n%s\nwant (eval's)\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			m := metricsText(t, ts.URL)
			runs := "logline_runtime_wasm_runs_total 4"
			if k == backend.Eval {
				runs = "logline_runtime_wasm_runs_total 0"
			}
			for _, w := range []string{runs, "logline_runtime_wasm_fallbacks_total 0", `logline_runtime_divergence_total{validator="canonical_contract_v1"} 0`} {
				if !strings.Contains(m, w+"\n") {
					t.Errorf("metrics lack %q", w)
				}
			}
		})
	}
	if len(want) != 4 || !strings.HasPrefix(want[0], "accepted") || !strings.HasPrefix(want[1], "rejected") {
		t.Errorf("eval's results %q", want)
	}
}

// TestBackendNeedsModule: an operator's bundle without a module cannot run
// on wasm or shadow; the start fails saying how to build one. With one,
// it starts.
func TestBackendNeedsModule(t *testing.T) {
	dir := t.TempDir()
	priv, pub, err := bundle.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := bundle.ParsePrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	pubPath := filepath.Join(dir, "k.pub")
	if err := os.WriteFile(pubPath, pub, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, wasm := range []bool{false, true} {
		data, errs, err := bundle.Compile(stdlib.Sources(), key, bundle.BuildOptions{Wasm: wasm})
		if err != nil || errs != nil {
			t.Fatal(err, errs)
		}
		path := filepath.Join(dir, "b.lllb")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		cfg := DefaultConfig()
		cfg.Data, cfg.Dev = t.TempDir(), true
		cfg.Bundle.Path, cfg.Bundle.Trust, cfg.Bundle.Backend = path, []string{pubPath}, "shadow"
		s, err := Open(context.Background(), cfg, slog.New(slog.DiscardHandler))
		if !wasm {
			if err == nil || !strings.Contains(err.Error(), "bundle.backend shadow: backend: the bundle carries no WebAssembly module for its span validators (build it with loglinec --backend wasm)") {
				t.Errorf("without a module: err = %v", err)
			}
			if s != nil {
				s.Close()
			}
			continue
		}
		if err != nil {
			t.Fatalf("with a module: %v", err)
		}
		s.Close()
	}
}

// TestCycleBackends: the server's derivation runs its event validators
// (the score, the quality meter) on bundle.backend: wasm and shadow run
// them on the module, derive what eval derives, and shadow counts no
// divergence.
func TestCycleBackends(t *testing.T) {
	data := workload(2000, 3) // trajectories scored, some of them diamonds
	var want map[string][]string
	for _, k := range backend.Kinds() {
		t.Run(string(k), func(t *testing.T) {
			s, ts := testServer(t, t.TempDir(), func(c *Config) { c.Bundle.Backend = string(k) })
			post(t, ts.URL, data)
			waitDerived(t, s)
			got := streams(t, s.runner)
			if want == nil {
				want = got
			} else if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("derived streams differ from eval's (-eval +%s):\n%s", k, diff)
			}
			st := s.events.Stats()
			if k != backend.Eval && st.Runs == 0 {
				t.Errorf("%s: the module ran no event validator (stats %+v)", k, st)
			}
			if st.Divergences != 0 {
				t.Errorf("%s: stats %+v", k, st)
			}
			m := metricsText(t, ts.URL)
			if w := fmt.Sprintf("logline_runtime_wasm_event_runs_total %d\n", st.Runs); !strings.Contains(m, w) {
				t.Errorf("metrics lack %q", w)
			}
		})
	}
	n := 0
	for _, evs := range want {
		for _, ev := range evs {
			if strings.Contains(ev, `"type":"diamond_candidate"`) {
				n++
			}
		}
	}
	if n == 0 {
		t.Fatal("the workload derives no diamond_candidate (the meter emits nothing)")
	}
}
