package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/loglineos/loglineos/internal/ledger"
)

// TestDerivationStoppedNotReady: when derivation stops (here: the derived
// store's tenant directory is replaced by a file, so a new tenant's files
// cannot be created), /readyz answers 503 problem+json naming the reason,
// the metric says so, ingest goes on, and what was derived is still served.
func TestDerivationStoppedNotReady(t *testing.T) {
	data := t.TempDir()
	s, ts := testServer(t, data, nil)
	span := func(id, tenant string) []byte {
		return []byte(`{"id":"` + id + `","tenant":"` + tenant + `","who":"dan","did":"sale.post","this":"order:1","when":"2025-10-05T10:00:00Z","status":"confirmed"}` + "\n")
	}
	post(t, ts.URL, span("s_1", "t_a"))
	waitDerived(t, s)
	if code, body := get(t, ts.URL+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz before: HTTP %d: %s", code, body)
	}

	tdir := filepath.Join(data, "derived", "t")
	if err := os.Rename(tdir, tdir+".moved"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tdir, []byte("not a directory\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	post(t, ts.URL, span("s_2", "t_b"))
	deadline := time.Now().Add(10 * time.Second)
	for s.runner.Err() == nil {
		if time.Now().After(deadline) {
			t.Fatal("derivation did not stop")
		}
		select {
		case <-s.runner.Changed():
		case <-time.After(20 * time.Millisecond):
		}
	}

	resp, err := http.Get(ts.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		Type   string `json:"type"`
		Status int    `json:"status"`
		Detail string `json:"detail"`
	}
	json.NewDecoder(resp.Body).Decode(&p)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Content-Type") != "application/problem+json" ||
		p.Type != "/problems/unavailable" || !strings.Contains(p.Detail, "derivation stopped") || !strings.Contains(p.Detail, "not a directory") {
		t.Fatalf("/readyz with derivation stopped: HTTP %d %s %+v", resp.StatusCode, resp.Header.Get("Content-Type"), p)
	}
	t.Logf("/readyz: %d %s", resp.StatusCode, p.Detail)

	// Ingest goes on: the ledger is fine.
	post(t, ts.URL, span("s_3", "t_c"))
	// What was derived is still served.
	if code, body := get(t, ts.URL+"/derived/stream?tenant=t_a"); code != http.StatusOK || !strings.Contains(body, `"src_span_id":"s_1"`) {
		t.Fatalf("derived stream of t_a: HTTP %d: %s", code, body)
	}
	if _, body := get(t, ts.URL+"/metrics"); !strings.Contains(body, "\nlogline_derive_stopped 1\n") {
		t.Fatalf("metrics do not say derivation stopped:\n%s", grepLines(body, "logline_derive"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, ln := range strings.Split(s, "\n") {
		if strings.Contains(ln, sub) {
			out = append(out, ln)
		}
	}
	return strings.Join(out, "\n")
}

// TestVerifyDerived: the derived store of a running server verifies against
// the ledger opened read-only beside it, and a flipped byte is reported.
func TestVerifyDerived(t *testing.T) {
	data := t.TempDir()
	cfg := DefaultConfig()
	cfg.Data = data
	if rep, err := VerifyDerived(cfg, nil, false, nil); err != nil || rep.Stale == "" {
		t.Fatalf("empty data directory: %+v %v", rep, err)
	}
	if _, err := os.Stat(filepath.Join(data, "bundle")); err == nil {
		t.Fatal("VerifyDerived wrote into the data directory")
	}
	s, ts := testServer(t, data, nil)
	post(t, ts.URL, workload(3000, 7))
	waitDerived(t, s)
	// A snapshot is written at least every 5 s; Close writes one.
	ts.Close()
	s.Close()
	s, ts = testServer(t, data, nil)
	// Derived after the snapshot: not compared, harmless. (Other ids: the
	// workload's own would be id conflicts.)
	post(t, ts.URL, bytes.ReplaceAll(workload(500, 8), []byte(`"id":"s_`), []byte(`"id":"u_`)))
	waitDerived(t, s)

	l, err := ledger.Open(data, ledger.Config{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	rep, err := VerifyDerived(cfg, l, false, nil)
	if err != nil || rep.Problem != nil || rep.Stale != "" || rep.Events == 0 {
		t.Fatalf("beside the running server: %+v %v", rep, err)
	}
	t.Logf("%d events of %d tenants, %d files, %d bytes compared up to record %d", rep.Events, rep.Tenants, rep.Files, rep.Bytes, rep.Cursor)

	want := streams(t, s.runner)
	files, _ := filepath.Glob(filepath.Join(data, "derived", "t", "*.ndjson"))
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/3] ^= 0x20
	os.WriteFile(files[0], b, 0o644)
	rep, err = VerifyDerived(cfg, l, false, nil)
	if err != nil || rep.Problem == nil || !strings.HasPrefix(rep.Problem.File, "t/") {
		t.Fatalf("a flipped byte: %+v %v", rep, err)
	}
	t.Logf("flipped: %v", rep.Problem)

	// At the next start the damage is found, counted, and the store rebuilt:
	// it serves what it served before.
	ts.Close()
	s.Close()
	s, ts = testServer(t, data, nil)
	waitDerived(t, s)
	if diff := cmp.Diff(want, streams(t, s.runner)); diff != "" {
		t.Fatalf("after the rebuild (-before +after):\n%s", diff)
	}
	if _, body := get(t, ts.URL+"/metrics"); !strings.Contains(body, "\n"+`logline_derive_rebuilds_total{reason="files"} 1`+"\n") {
		t.Fatalf("the rebuild is not counted:\n%s", grepLines(body, "logline_derive_rebuilds"))
	}
}
