//go:build unix

package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loglineos/loglineos/internal/identity"
)

// BenchmarkRefusal is the server's own work (the handler chain, no
// network) for a request refused for quota, next to GET /healthz, the
// cheapest request it answers: what a flooding tenant costs per request
// once net/http has parsed it.
//
//	go test -run '^$' -bench Refusal -benchmem ./internal/server/
func BenchmarkRefusal(b *testing.B) {
	s := openBenchServer(b, map[string]string{"t_flood": "quotas: {ingest_per_second: 0.001, burst: 1}"})
	h := s.Handler()
	tok, err := s.identity.Issue("u_flood", "t_flood", []string{identity.RoleWriter})
	if err != nil {
		b.Fatal(err)
	}
	line := `{"id":"s_1","tenant":"t_flood","who":"dan","did":"sale.post","this":"order:1","when":"2025-10-05T22:18:07Z","status":"confirmed"}`
	run := func(b *testing.B, mk func() *http.Request, want int) {
		b.ReportAllocs()
		for b.Loop() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, mk())
			if w.Code != want {
				b.Fatalf("HTTP %d, want %d: %s", w.Code, want, w.Body)
			}
		}
	}
	// Use up the quota, so that every request below is refused.
	for i := 0; ; i++ {
		if i == 100 {
			b.Fatal("a quota of 1 span every 1000 s never refused a request")
		}
		warm := httptest.NewRequest("POST", "/ingest", strings.NewReader(strings.Replace(line, "s_1", fmt.Sprintf("s_warm%d", i), 1)))
		warm.Header.Set("Content-Type", "application/x-ndjson")
		warm.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, warm)
		if w.Code == http.StatusTooManyRequests {
			break
		}
	}
	b.Run("quota-429", func(b *testing.B) {
		run(b, func() *http.Request {
			r := httptest.NewRequest("POST", "/ingest", strings.NewReader(line))
			r.Header.Set("Content-Type", "application/x-ndjson")
			r.Header.Set("Authorization", "Bearer "+tok.AccessToken)
			return r
		}, http.StatusTooManyRequests)
	})
	b.Run("healthz", func(b *testing.B) {
		run(b, func() *http.Request { return httptest.NewRequest("GET", "/healthz", nil) }, http.StatusOK)
	})
}

// openBenchServer opens a server in a temporary directory, with the
// given tenant files (tenant: YAML) and no clock ticks, closed when b ends.
func openBenchServer(b *testing.B, tenants map[string]string) *Server {
	data := b.TempDir()
	dir := filepath.Join(data, "cfg", "tenants")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	for tenant, yaml := range tenants {
		if err := os.WriteFile(filepath.Join(dir, tenant+".yaml"), []byte(yaml+"\n"), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	cfg := DefaultConfig()
	cfg.Data = data
	cfg.Derive.TickInterval = 0
	s, err := Open(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}
