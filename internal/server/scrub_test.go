package server

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A record damaged on disk while the server was stopped, in a ledger too
// large to check at open: the server starts, the scrubber finds the damage,
// appends stop and /readyz says where; the next start refuses.
func TestScrubberStopsAppendsOnDamage(t *testing.T) {
	data := t.TempDir()
	s, ts := testServer(t, data, nil)
	post(t, ts.URL, workload(200, 1))
	ts.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	seg := filepath.Join(data, "ledger", "segments", "000001.ndjson")
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b[len(b)/2:], []byte(`"who":"`)) + len(b)/2 + len(`"who":"`)
	b[i] ^= 0x01
	if err := os.WriteFile(seg, b, 0o644); err != nil {
		t.Fatal(err)
	}

	s, ts = testServer(t, data, func(c *Config) {
		c.Ledger.CheckAtOpen = 0 // as if the ledger were larger than it is
		c.Ledger.ScrubRate = 1 << 30
	})
	deadline := time.Now().Add(10 * time.Second)
	var body []byte
	for {
		resp, err := http.Get(ts.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 503 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d after 10 s: %s", resp.StatusCode, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var p struct{ Detail string }
	json.Unmarshal(body, &p)
	if !strings.Contains(p.Detail, "ledger: corrupt: segment 000001.ndjson offset ") {
		t.Fatalf("/readyz detail %q does not say where the damage is", p.Detail)
	}
	resp, err := http.Post(ts.URL+"/ingest", "application/x-ndjson", bytes.NewReader(workload(1, 99)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Fatalf("ingest after damage: HTTP %d, want 503", resp.StatusCode)
	}
	ts.Close()
	s.Close()

	cfg := DefaultConfig()
	cfg.Data, cfg.Dev = data, true
	cfg.Ledger.CheckAtOpen = 0
	if s, err := Open(t.Context(), cfg, slog.New(slog.DiscardHandler)); err == nil {
		s.Close()
		t.Fatal("the server started again on a ledger found damaged")
	} else if !strings.Contains(err.Error(), "ledger: corrupt: segment 000001.ndjson") {
		t.Fatalf("restart: %v", err)
	}
}
