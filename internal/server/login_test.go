package server

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oauth2-proxy/mockoidc"
)

// TestLoginToIngest: a person logs in through a real OpenID provider
// (mockoidc on 127.0.0.1) with code + PKCE, gets an LLST, and ingests into
// the tenant a tenant file makes them a writer of — and only there.
func TestLoginToIngest(t *testing.T) {
	provider, err := mockoidc.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	provider.CodeChallengeMethodsSupported = []string{"S256"}
	pln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := provider.Start(pln, nil); err != nil {
		t.Fatal(err)
	}
	defer provider.Shutdown()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	data := t.TempDir()
	os.MkdirAll(filepath.Join(data, "cfg", "tenants"), 0o755)
	email := mockoidc.DefaultUser().Email
	os.WriteFile(filepath.Join(data, "cfg", "tenants", "t_acme.yaml"),
		[]byte("members:\n  "+email+": [writer]\n"), 0o644)

	cfg := DefaultConfig()
	cfg.Data = data
	cfg.Derive.TickInterval = 0
	cfg.Auth.Issuer = base
	cfg.Auth.OIDC.Issuer = provider.Issuer()
	cfg.Auth.OIDC.ClientID = provider.ClientID
	cfg.Auth.OIDC.ClientSecret = provider.ClientSecret
	cfg.Auth.OIDC.RedirectURL = base + "/auth/callback"
	s, err := Open(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer func() {
		srv.Close()
		s.Close()
	}()

	// The browser: cookies, redirects through the provider and back.
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	start := time.Now()
	resp, err := browser.Get(base + "/auth/login")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("login round trip: HTTP %d: %s", resp.StatusCode, body)
	}
	var tok struct {
		AccessToken string   `json:"access_token"`
		Tenant      string   `json:"tenant"`
		Roles       []string `json:"roles"`
		Subject     string   `json:"sub"`
	}
	if err := json.Unmarshal(body, &tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("callback answer: %v %s", err, body)
	}
	t.Logf("login round trip took %s; sub %s, tenant %s, roles %v", time.Since(start).Round(time.Millisecond), tok.Subject, tok.Tenant, tok.Roles)
	if tok.Tenant != "t_acme" || !strings.HasPrefix(tok.Subject, "u_") {
		t.Fatalf("token for %q as %q", tok.Tenant, tok.Subject)
	}

	ingest := func(tenant string) (int, string) {
		line := `{"id":"s_1","tenant":"` + tenant + `","who":"jane","did":"sale.post","this":"order:1","when":"2025-10-05T22:18:07Z","status":"confirmed"}`
		req, _ := http.NewRequest("POST", base+"/ingest", strings.NewReader(line))
		req.Header.Set("Content-Type", "application/x-ndjson")
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	if code, b := ingest("t_acme"); code != 200 || !strings.Contains(b, `"accepted":1`) {
		t.Fatalf("ingest into own tenant: %d %s", code, b)
	}
	if code, b := ingest("t_other"); code != 403 || !strings.Contains(b, "/problems/tenant-mismatch") {
		t.Fatalf("ingest into another tenant: %d %s", code, b)
	}
	// No cookie carries API authority: the same request without the bearer
	// token, from the browser that logged in, is refused.
	req, _ := http.NewRequest("GET", base+"/spans/t_acme/s_1", nil)
	resp, err = browser.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("a cookie acted as a credential: HTTP %d", resp.StatusCode)
	}
}
