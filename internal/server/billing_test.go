package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestBillingCountersAfterAWorkload: after a scripted workload (seven spans
// ingested and derived, an export of known size, a WebSocket stream held a
// few seconds) each of the tenant's four counters has its expected value,
// on GET /billing and /metrics, and the same after a restart. ws_minutes
// is in minutes: the seconds held, over 60.
func TestBillingCountersAfterAWorkload(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	cfg := DefaultConfig()
	cfg.Data, cfg.Dev = data, true
	cfg.Derive.TickInterval = 0
	cfg.Ledger.CheckpointInterval = 100 * time.Millisecond
	s, err := Open(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	var body strings.Builder
	for i := range 7 {
		fmt.Fprintf(&body, `{"id":"s_%d","tenant":"t_bill","who":"dan","did":"sale.post","this":"order:%d","when":"2025-10-05T10:00:0%dZ","status":"confirmed"}`+"\n", i, i%3, i)
	}
	post(t, ts.URL, []byte(body.String()))
	waitDerived(t, s)
	derived := s.runner.Len("t_bill")

	// An export, once a checkpoint covers the spans.
	for deadline := time.Now().Add(10 * time.Second); s.ledger.Checkpoint() == nil || s.ledger.Checkpoint().Size < s.ledger.Next(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no checkpoint covers the spans")
		}
	}
	resp, err := http.Get(ts.URL + "/v1/exports/t_bill")
	if err != nil {
		t.Fatal(err)
	}
	export, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(export), `"manifest"`) {
		t.Fatalf("export: HTTP %d %.200s", resp.StatusCode, export)
	}

	// A WebSocket stream of the tenant's derived events, held six seconds.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.URL, "http")+"/v1/derived/ws?tenant=t_bill&cursor=0", nil)
	if err != nil {
		t.Fatal(err)
	}
	opened := time.Now()
	time.Sleep(6 * time.Second)
	held := time.Since(opened) // before the close frame is sent
	c.Close(websocket.StatusNormalClosure, "")

	want := TenantBill{IngestSpans: 7, DerivedSpans: derived, ExportsGB: float64(len(export)) / 1e9, WSMinutes: held.Minutes()}
	check := func(when string) {
		t.Helper()
		var got map[string]map[string]TenantBill
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			resp, err := http.Get(ts.URL + "/v1/billing?tenant=t_bill")
			if err != nil {
				t.Fatal(err)
			}
			json.NewDecoder(resp.Body).Decode(&got)
			resp.Body.Close()
			if got["tenants"]["t_bill"].WSMinutes > 0 || time.Now().After(deadline) {
				break
			}
		}
		b := got["tenants"]["t_bill"]
		if b.IngestSpans != want.IngestSpans || b.DerivedSpans != want.DerivedSpans || b.ExportsGB != want.ExportsGB {
			t.Fatalf("%s: %+v, want %+v", when, b, want)
		}
		// The server's stream begins before the client's dial returns and
		// ends when the server sees the close, a moment after the client
		// sent it: at least what the client held, at most 3 s more.
		if b.WSMinutes < want.WSMinutes || b.WSMinutes > want.WSMinutes+0.05 {
			t.Fatalf("%s: ws_minutes %v, want %v to %v", when, b.WSMinutes, want.WSMinutes, want.WSMinutes+0.05)
		}
	}
	check("live")
	if derived < 7 {
		t.Fatalf("%d derived events for 7 spans", derived)
	}

	s.BeginShutdown()
	ts.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, ts = testServer(t, data, nil)
	check("after a restart")
}
