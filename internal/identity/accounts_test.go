package identity

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func postToken(t *testing.T, s *Service, contentType, body string, basic ...string) (*httptest.ResponseRecorder, Token) {
	t.Helper()
	r := httptest.NewRequest("POST", PathToken, strings.NewReader(body))
	r.Header.Set("Content-Type", contentType)
	if len(basic) == 2 {
		r.SetBasicAuth(basic[0], basic[1])
	}
	w := httptest.NewRecorder()
	s.TokenHandler().ServeHTTP(w, r)
	var tok Token
	if w.Code == http.StatusOK {
		if err := json.Unmarshal(w.Body.Bytes(), &tok); err != nil {
			t.Fatal(err)
		}
	}
	return w, tok
}

func TestServiceAccountLifecycle(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	rec := &receipts{}
	dir := t.TempDir()
	s := newTestService(t, clock, func(c *Config) { c.StateDir = dir; c.Receipts = rec })

	sa, secret, err := s.CreateServiceAccount(ctx, NewServiceAccount{Tenant: "acme", Role: RoleApp, Name: "billing", CreatedBy: "u_admin"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, "llsa_") || len(secret) != 5+43 {
		t.Errorf("secret %q has the wrong shape", secret)
	}
	if rec.last["id"] != sa.ID || rec.Ops()[len(rec.Ops())-1] != receiptSACreate {
		t.Errorf("receipt = %v", rec.last)
	}
	for _, v := range rec.last {
		if s, _ := v.(string); s == secret {
			t.Error("the secret is in the receipt")
		}
	}
	// Stored hashed, never in clear.
	data, err := os.ReadFile(filepath.Join(dir, "accounts", sa.ID+".json"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, []byte(secret)) || bytes.Contains(data, []byte(secret[5:])) || !bytes.Contains(data, []byte("secret_sha256")) {
		t.Errorf("stored record: %s", data)
	}
	if st, _ := os.Stat(filepath.Join(dir, "accounts", sa.ID+".json")); st.Mode().Perm() != 0o600 {
		t.Errorf("record mode %v", st.Mode().Perm())
	}

	// Exchanged in each of the accepted shapes.
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {sa.ID}, "client_secret": {secret}}.Encode()
	js, _ := json.Marshal(map[string]string{"grant_type": "client_credentials", "client_id": sa.ID, "client_secret": secret})
	var toks []string
	for name, do := range map[string]func() (*httptest.ResponseRecorder, Token){
		"form": func() (*httptest.ResponseRecorder, Token) {
			return postToken(t, s, "application/x-www-form-urlencoded", form)
		},
		"json": func() (*httptest.ResponseRecorder, Token) {
			return postToken(t, s, "application/json; charset=utf-8", string(js))
		},
		"basic": func() (*httptest.ResponseRecorder, Token) {
			return postToken(t, s, "application/x-www-form-urlencoded", "grant_type=client_credentials", sa.ID, secret)
		},
	} {
		w, tok := do()
		if w.Code != 200 {
			t.Fatalf("%s: %d %s", name, w.Code, w.Body)
		}
		if w.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("%s: Cache-Control %q", name, w.Header().Get("Cache-Control"))
		}
		toks = append(toks, tok.AccessToken)
	}
	p, err := s.Authenticate(bearer(toks[0]))
	if err != nil {
		t.Fatal(err)
	}
	now := clock.Now()
	want := &Principal{Subject: "sa:" + sa.ID, Tenant: "acme", Roles: []string{RoleApp},
		Caps: []Capability{CapIngest, CapReceiptsRead}, IssuedAt: now, Expires: now.Add(DefaultTokenTTL)}
	if diff := cmp.Diff(want, p, cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".TokenID" }, cmp.Ignore())); diff != "" {
		t.Errorf("principal (-want +got):\n%s", diff)
	}

	// Wrong secrets and unknown ids look the same.
	for _, body := range []string{
		url.Values{"grant_type": {"client_credentials"}, "client_id": {sa.ID}, "client_secret": {secret + "x"}}.Encode(),
		url.Values{"grant_type": {"client_credentials"}, "client_id": {sa.ID}, "client_secret": {strings.TrimPrefix(secret, "llsa_")}}.Encode(),
		url.Values{"grant_type": {"client_credentials"}, "client_id": {"01HNOSUCHACCOUNT000000000"}, "client_secret": {secret}}.Encode(),
		url.Values{"grant_type": {"client_credentials"}, "client_id": {sa.ID}}.Encode(),
	} {
		w, _ := postToken(t, s, "application/x-www-form-urlencoded", body)
		if code, reason := problem(t, w.Result()); code != 401 || reason != ReasonBadClient {
			t.Errorf("%s: %d %s", body, code, reason)
		}
	}

	// A restart keeps the account.
	before := s.ServiceAccounts("acme")
	s.Close()
	s = newTestService(t, clock, func(c *Config) { c.StateDir = dir; c.Receipts = rec })
	if diff := cmp.Diff(before, s.ServiceAccounts("")); diff != "" {
		t.Errorf("accounts after restart (-want +got):\n%s", diff)
	}
	toks = nil
	for range 2 {
		tok, err := s.ExchangeClientCredentials(sa.ID, secret)
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, tok.AccessToken)
	}

	// Revocation: no new token, and the tokens already issued die too.
	if err := s.RevokeServiceAccount(ctx, sa.ID, "u_admin"); err != nil {
		t.Fatal(err)
	}
	if rec.Ops()[len(rec.Ops())-1] != receiptSARevoke {
		t.Errorf("receipts = %v", rec.Ops())
	}
	w, _ := postToken(t, s, "application/x-www-form-urlencoded", form)
	if code, reason := problem(t, w.Result()); code != 401 || reason != ReasonBadClient {
		t.Errorf("exchange after revocation: %d %s", code, reason)
	}
	for _, tok := range toks {
		if _, err := s.Authenticate(bearer(tok)); ReasonOf(err) != ReasonRevoked {
			t.Errorf("token of a revoked account: %v", err)
		}
	}
	s.Close()
	s3 := newTestService(t, clock, func(c *Config) { c.StateDir = dir })
	if _, err := s3.ExchangeClientCredentials(sa.ID, secret); ReasonOf(err) != ReasonBadClient {
		t.Errorf("revocation lost on restart: %v", err)
	}
	if err := s.RevokeServiceAccount(ctx, "nope", "u_admin"); !errors.Is(err, ErrNotFound) {
		t.Errorf("revoking an unknown account: %v", err)
	}
}

func TestServiceAccountRefusals(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	rec := &receipts{}
	s := newTestService(t, clock, func(c *Config) {
		c.Receipts = rec
		c.Tenants["acme"] = TenantConfig{Roles: map[string][]Capability{"ingestor": {CapIngest}}}
	})
	tests := []struct {
		name string
		req  NewServiceAccount
		want Reason
	}{
		{"ok", NewServiceAccount{Tenant: "acme", Role: RoleApp}, ""},
		{"tenant-defined role", NewServiceAccount{Tenant: "acme", Role: "ingestor"}, ""},
		{"role of another tenant", NewServiceAccount{Tenant: "globex", Role: "ingestor"}, ReasonUnknownRole},
		{"unknown role", NewServiceAccount{Tenant: "acme", Role: "root"}, ReasonUnknownRole},
		{"no tenant", NewServiceAccount{Role: RoleApp}, ReasonBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := s.CreateServiceAccount(ctx, tt.req)
			if got := ReasonOf(err); got != tt.want {
				t.Fatalf("reason %q, want %q", got, tt.want)
			}
		})
	}
	rec.fail = errors.New("ledger down")
	sa, secret, err := s.CreateServiceAccount(ctx, NewServiceAccount{Tenant: "acme", Role: RoleApp})
	if err == nil || secret != "" || sa.ID != "" {
		t.Fatalf("created without a receipt: %v", err)
	}
	all := s.ServiceAccounts("acme")
	if len(all) != 3 {
		t.Fatalf("%d accounts, want 3", len(all))
	}
	usable := 0
	for _, a := range all {
		if a.Revoked.IsZero() {
			usable++
		} else if a.RevokedBy != "receipt-failure" {
			t.Errorf("revoked by %q", a.RevokedBy)
		}
	}
	if usable != 2 {
		t.Errorf("%d usable accounts, want 2: the unrecorded one must not be", usable)
	}
}

func TestTokenEndpointRefusals(t *testing.T) {
	clock := newFakeClock()
	s := newTestService(t, clock)
	tests := []struct {
		name, ct, body string
		status         int
		reason         Reason
	}{
		{"no grant", "application/x-www-form-urlencoded", "", 400, ReasonBadRequest},
		{"password grant", "application/x-www-form-urlencoded", "grant_type=password&username=a&password=b", 400, ReasonUnsupported},
		{"text body", "text/plain", "grant_type=client_credentials", 400, ReasonBadRequest},
		{"repeated parameter", "application/x-www-form-urlencoded", "grant_type=client_credentials&client_id=a&client_id=b&client_secret=c", 400, ReasonBadRequest},
		{"JSON with unknown field", "application/json", `{"grant_type":"client_credentials","scope":"all"}`, 400, ReasonBadRequest},
		{"JSON not an object", "application/json", `[1]`, 400, ReasonBadRequest},
		{"huge body", "application/x-www-form-urlencoded", "grant_type=client_credentials&client_secret=" + strings.Repeat("a", 1<<20), 400, ReasonBadRequest},
		{"code grant without verifier", "application/x-www-form-urlencoded", "grant_type=authorization_code&code=x&redirect_uri=http://127.0.0.1/", 400, ReasonBadRequest},
		{"unknown code", "application/x-www-form-urlencoded", "grant_type=authorization_code&code=x&code_verifier=y&redirect_uri=http://127.0.0.1/", 401, ReasonBadGrant},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, _ := postToken(t, s, tt.ct, tt.body)
			if code, reason := problem(t, w.Result()); code != tt.status || reason != tt.reason {
				t.Fatalf("got %d %s, want %d %s", code, reason, tt.status, tt.reason)
			}
		})
	}
}

func TestRevokeSubject(t *testing.T) {
	clock := newFakeClock()
	s := newTestService(t, clock)
	tok := mustIssue(t, s)
	other, _ := s.Issue("u_other", "acme", []string{RoleReader})
	clock.Add(2e9) // 2 s
	s.RevokeSubject("u_test")
	if _, err := s.Authenticate(bearer(tok)); ReasonOf(err) != ReasonRevoked {
		t.Errorf("revoked subject: %v", err)
	}
	if _, err := s.Authenticate(bearer(other.AccessToken)); err != nil {
		t.Errorf("another subject: %v", err)
	}
	clock.Add(2e9)
	if _, err := s.Authenticate(bearer(mustIssue(t, s))); err != nil {
		t.Errorf("a token issued after the revocation: %v", err)
	}
	clock.Add(DefaultTokenTTL + DefaultSkew)
	if err := s.Maintain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(*s.revoked.m.Load()); n != 0 {
		t.Errorf("%d revocations kept after every token they cover expired", n)
	}
}
