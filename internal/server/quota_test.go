package server

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loglineos/loglineos/internal/identity"
)

// TestQuotasPerRoleAndRouteCosts: every route that costs the server work
// takes its documented cost from the tenant's bucket and from the bucket
// of each of the caller's roles that the tenant file limits; past either,
// 429 with Retry-After.
func TestQuotasPerRoleAndRouteCosts(t *testing.T) {
	ps := startProdServer(t, func(c *Config) {
		dir := filepath.Join(c.Data, "cfg", "tenants")
		os.MkdirAll(dir, 0o755)
		files := map[string]string{
			// Readers get 3 units at once; the tenant has plenty.
			"t_a": "quotas:\n  ingest_per_second: 1000\n  burst: 2000\n  roles:\n    reader: {ingest_per_second: 0.01, burst: 3}\n",
			// The tenant gets 12 units at once: a stream (10) and two reads.
			"t_b": "quotas: {ingest_per_second: 0.01, burst: 12}\n",
		}
		for name, body := range files {
			if err := os.WriteFile(filepath.Join(dir, name+".yaml"), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	})
	client := &http.Client{Timeout: 5 * time.Second}
	_, writer := ps.account(t, "t_a", identity.RoleWriter)
	_, reader := ps.account(t, "t_a", identity.RoleReader)
	code, _, body := ps.do(t, client, "POST", "/ingest", writer, "application/x-ndjson", string(appendSpanLine(nil, "t_a", 1)))
	if code != 200 {
		t.Fatalf("ingest: HTTP %d %s", code, body)
	}
	get := func(token string) (int, http.Header, string) {
		return ps.do(t, client, "GET", "/spans/t_a/s_1", token, "", "")
	}
	for i := range 3 {
		if code, _, body := get(reader); code != 200 {
			t.Fatalf("reader's read %d: HTTP %d %s", i+1, code, body)
		}
	}
	code, h, body := get(reader)
	if code != 429 || h.Get("Retry-After") == "" || !strings.Contains(body, "quota") {
		t.Fatalf("reader's 4th read: HTTP %d, Retry-After %q: %s", code, h.Get("Retry-After"), body)
	}
	// The writer has no role bucket: the tenant's has room.
	if code, _, body := get(writer); code != 200 {
		t.Fatalf("writer's read after the reader's quota: HTTP %d %s", code, body)
	}

	_, b := ps.account(t, "t_b", identity.RoleWriter)
	// A stream costs 10 of t_b's 12; two reads take the rest.
	code, _, body = ps.do(t, client, "GET", "/ledger/stream?tenant=t_b&cursor=0", b, "", "")
	if code != 200 {
		t.Fatalf("stream: HTTP %d %s", code, body)
	}
	for i := range 2 {
		if code, _, body := ps.do(t, client, "GET", "/things/t_b/order:1", b, "", ""); code != 200 {
			t.Fatalf("read %d after the stream: HTTP %d %s", i+1, code, body)
		}
	}
	code, h, body = ps.do(t, client, "GET", "/things/t_b/order:1", b, "", "")
	if code != 429 || h.Get("Retry-After") == "" {
		t.Fatalf("t_b's read past 12 units: HTTP %d, Retry-After %q: %s", code, h.Get("Retry-After"), body)
	}
}
