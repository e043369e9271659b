package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/loglineos/loglineos/internal/identity"
	"github.com/loglineos/loglineos/internal/ledger"
	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
)

// exportAuth authenticates as a principal of tenant with caps.
type exportAuth struct {
	tenant string
	caps   []identity.Capability
}

func (a exportAuth) Authenticate(r *http.Request) (*identity.Principal, error) {
	return &identity.Principal{Subject: "sa:auditor", Tenant: a.tenant, Caps: a.caps}, nil
}

func TestExportRoute(t *testing.T) {
	auditor := exportAuth{"t_a", []identity.Capability{identity.CapStreamRead, identity.CapExport}}
	for _, tc := range []struct {
		name    string
		auth    Authenticator
		path    string
		status  int
		problem string
		detail  string
	}{
		{"without the capability", tenantAuth{"t_a"}, "/exports/t_a", 403, "forbidden", "may not use export on tenant \"t_a\""},
		{"another tenant", auditor, "/exports/t_b", 403, "forbidden", "may not use export on tenant \"t_b\""},
		{"from not a number", auditor, "/exports/t_a?from=x", 400, "bad-range", "from=\"x\" is not a sequence number"},
		{"to past the checkpoint", auditor, "/exports/t_a?to=99", 400, "bad-range", "to=99 is past the latest signed checkpoint (6 records)"},
		{"from past to", auditor, "/exports/t_a?from=4&to=2", 400, "bad-range", "from=4 is past to=2"},
		{"bad tenant", exportAuth{"t a", auditor.caps}, "/exports/t%20a", 400, "bad-request", "cannot be exported"},
		{"ok", auditor, "/exports/t_a", 200, "", ""},
		{"ok, a range", auditor, "/exports/t_a?from=1&to=3", 200, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, l := newTestGateway(t, func(c *Config) { c.Auth = tc.auth })
			var es []ledger.Entry
			for i := range 3 {
				for _, ten := range []string{"t_a", "t_b"} {
					id := fmt.Sprintf("%s-%d", ten, i)
					es = append(es, ledger.Entry{Tenant: ten, ID: id, Body: []byte(fmt.Sprintf(`{"id":%q,"tenant":%q}`, id, ten))})
				}
			}
			if _, err := l.Append(context.Background(), es); err != nil {
				t.Fatal(err)
			}
			if _, err := l.WriteCheckpoint(context.Background()); err != nil {
				t.Fatal(err)
			}
			w := httptest.NewRecorder()
			g.ServeHTTP(w, httptest.NewRequest("GET", tc.path, nil))
			if w.Code != tc.status {
				t.Fatalf("HTTP %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if tc.status != 200 {
				var p struct{ Type, Detail string }
				if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
					t.Fatal(err)
				}
				if p.Type != "/problems/"+tc.problem || !strings.Contains(p.Detail, tc.detail) {
					t.Errorf("got %s %q, want %s %q", p.Type, p.Detail, tc.problem, tc.detail)
				}
				return
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/x-ndjson" {
				t.Errorf("Content-Type %q", ct)
			}
			v, err := ledgerfmt.NewVerifier(l.Signer().VerifierKey())
			if err != nil {
				t.Fatal(err)
			}
			m, err := v.VerifyExport(bytes.NewReader(w.Body.Bytes()))
			if err != nil {
				t.Fatalf("%v\n%s", err, w.Body)
			}
			if m.Tenant != "t_a" || bytes.Contains(w.Body.Bytes(), []byte("t_b")) {
				t.Errorf("manifest %+v of\n%s", m, w.Body)
			}
		})
	}
}
