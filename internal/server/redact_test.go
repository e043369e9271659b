package server

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRedaction(t *testing.T) {
	data := t.TempDir()
	tenants := filepath.Join(data, "cfg", "tenants")
	os.MkdirAll(tenants, 0o755)
	os.WriteFile(filepath.Join(tenants, "t_pii.yaml"), []byte("redact: [who, data.customer_email, data.card.last4]\n"), 0o644)
	s, ts := testServer(t, data, nil)
	line := func(id, email string) string {
		return fmt.Sprintf(`{"id":%q,"tenant":"t_pii","who":"Alice Private","did":"sale.post","this":"order:1","when":"2025-10-05T22:18:07Z","status":"confirmed","data":{"customer_email":%q,"card":{"last4":"4242"},"gross":19.9}}`+"\n", id, email)
	}
	post(t, ts.URL, []byte(line("s_1", "alice@example.com")+line("s_2", "alice@example.com")+line("s_3", "bob@example.com")))
	// Another tenant is not redacted.
	post(t, ts.URL, []byte(`{"id":"s_4","tenant":"t_open","who":"Carol","did":"sale.post","this":"order:9","when":"2025-10-05T22:18:07Z","status":"confirmed","data":{"customer_email":"carol@example.com"}}`+"\n"))
	waitDerived(t, s)

	var raw bytes.Buffer
	segs, _ := filepath.Glob(filepath.Join(data, "ledger", "segments", "*.ndjson"))
	for _, f := range segs {
		b, _ := os.ReadFile(f)
		raw.Write(b)
	}
	// Each secret is looked for as a JSON string: its bytes alone may occur
	// in a hex digest (the HMAC of "4242", equal in the three spans,
	// contains "4242" about once in a thousand keys).
	for _, secret := range []string{"Alice Private", "alice@example.com", "bob@example.com", "4242"} {
		if n := strings.Count(raw.String(), `"`+secret+`"`); n != 0 {
			t.Errorf("%q reached the ledger %d times", secret, n)
		}
	}
	if !strings.Contains(raw.String(), "carol@example.com") {
		t.Error("the other tenant's span was redacted")
	}
	rec := func(id string) string {
		r, err := s.ledger.Get(t.Context(), "t_pii", id)
		if err != nil {
			t.Fatal(err)
		}
		return string(r.Body)
	}
	hashOf := func(body, field string) string {
		i := strings.Index(body, `"`+field+`":"hmac-sha256:`)
		if i < 0 {
			t.Fatalf("%s not redacted in %s", field, body)
		}
		rest := body[i+len(field)+4:]
		return rest[:strings.IndexByte(rest, '"')]
	}
	a1, a2, b := rec("s_1"), rec("s_2"), rec("s_3")
	if hashOf(a1, "customer_email") != hashOf(a2, "customer_email") || hashOf(a1, "customer_email") == hashOf(b, "customer_email") {
		t.Error("equal values must hash equally and different ones differently")
	}
	if !strings.Contains(a1, `"gross":19.9`) {
		t.Errorf("an unnamed field changed: %s", a1)
	}

	// A redact list naming a field the ledger needs is refused whole.
	os.WriteFile(filepath.Join(tenants, "t_bad.yaml"), []byte("redact: [tenant]\n"), 0o644)
	n := s.ledger.Next()
	s.watcher.Scan(t.Context())
	time.Sleep(10 * time.Millisecond)
	if s.ledger.Next() != n {
		t.Fatal("a tenant file redacting the tenant was applied")
	}
}
