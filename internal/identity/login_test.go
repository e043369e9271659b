package identity

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
	"github.com/oauth2-proxy/mockoidc"
	"golang.org/x/oauth2"
)

// oidcEnv is a real OpenID provider (mockoidc, speaking HTTP on
// 127.0.0.1) and this package's server in front of a tiny guarded API.
type oidcEnv struct {
	provider *mockoidc.MockOIDC
	s        *Service
	srv      *httptest.Server
	stateDir string
	// tamperVerifier makes the provider see a wrong code_verifier.
	tamperVerifier atomic.Bool
	// tokenRequests counts calls to the provider's token endpoint, and
	// lastVerifier keeps the code_verifier it saw.
	tokenRequests atomic.Int32
	lastVerifier  atomic.Value
}

func newOIDCEnv(t testing.TB, mods ...func(*Config)) *oidcEnv {
	t.Helper()
	e := &oidcEnv{}
	m, err := mockoidc.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	m.CodeChallengeMethodsSupported = []string{"S256"}
	err = m.AddMiddleware(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == mockoidc.TokenEndpoint {
				e.tokenRequests.Add(1)
				if err := r.ParseForm(); err == nil {
					e.lastVerifier.Store(r.PostForm.Get("code_verifier"))
					if e.tamperVerifier.Load() {
						r.PostForm.Set("code_verifier", strings.Repeat("x", 43))
						r.Form.Set("code_verifier", strings.Repeat("x", 43))
					}
				}
			}
			next.ServeHTTP(w, r)
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ln, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	e.provider = m

	mux := http.NewServeMux()
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	e.stateDir = t.TempDir()
	cfg := Config{
		Issuer:   e.srv.URL,
		StateDir: e.stateDir,
		OIDC: OIDCConfig{
			Issuer: m.Issuer(), ClientID: m.ClientID, ClientSecret: m.ClientSecret,
			RedirectURL: e.srv.URL + PathCallback, AuthStyle: oauth2.AuthStyleInParams,
		},
		Tenants: map[string]TenantConfig{
			"acme":   {Members: []Member{{Email: "jane.doe@example.com", Roles: []string{RoleWriter}}}},
			"globex": {Members: []Member{{Email: "multi@example.com", Roles: []string{RoleReader}}}},
			"initech": {Members: []Member{
				{Email: "multi@example.com", Roles: []string{RoleAuditor}},
				{Email: "hd@example.com", Roles: []string{RoleReader}},
				{Email: "azp@example.com", Roles: []string{RoleReader}},
			}},
		},
	}
	for _, mod := range mods {
		mod(&cfg)
	}
	e.s, err = New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.s.Register(mux)
	mux.Handle("GET /t/{tenant}/ingest", guarded(e.s, CapIngest))
	mux.Handle("GET /t/{tenant}/stream", guarded(e.s, CapStreamRead))
	return e
}

// browser is an HTTP client with cookies that follows redirects, except
// when stop says so.
func browser(stop func(*http.Request) bool) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if stop != nil && stop(req) {
			return http.ErrUseLastResponse
		}
		return nil
	}}
}

func (e *oidcEnv) isProvider(r *http.Request) bool {
	return strings.HasPrefix(r.URL.String(), e.provider.Addr())
}

// problem reads a problem+json response.
func problem(t testing.TB, resp *http.Response) (int, Reason) {
	t.Helper()
	defer resp.Body.Close()
	var p struct {
		Reason Reason `json:"rule"`
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
			t.Fatalf("status %d, Content-Type %q: %s", resp.StatusCode, ct, body)
		}
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatalf("problem body %q: %v", body, err)
		}
	}
	return resp.StatusCode, p.Reason
}

// login runs a whole browser login and decodes the token.
func (e *oidcEnv) login(t testing.TB, query string) (Token, *http.Response) {
	t.Helper()
	resp, err := browser(nil).Get(e.srv.URL + PathLogin + query)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		return Token{}, resp
	}
	defer resp.Body.Close()
	var tok Token
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil {
		t.Fatal(err)
	}
	return tok, resp
}

func (e *oidcEnv) call(t testing.TB, path, tok string) (int, Reason) {
	t.Helper()
	req, _ := http.NewRequest("GET", e.srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return problem(t, resp)
}

// TestLoginEndToEnd: code + PKCE against a real provider, an LLST, and an
// authenticated request as the user's tenant.
func TestLoginEndToEnd(t *testing.T) {
	e := newOIDCEnv(t)
	var authorize *url.URL
	c := browser(func(r *http.Request) bool {
		if e.isProvider(r) {
			authorize = r.URL
		}
		return false
	})
	resp, err := c.Get(e.srv.URL + PathLogin)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login: %d %s", resp.StatusCode, body)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("token response Cache-Control = %q", cc)
	}
	for _, ck := range resp.Cookies() {
		if ck.Value != "" {
			t.Errorf("the callback sets a cookie %s: API auth must not travel in cookies", ck.Name)
		}
	}
	var tok Token
	if err := json.Unmarshal(body, &tok); err != nil {
		t.Fatal(err)
	}

	q := authorize.Query()
	if q.Get("code_challenge_method") != "S256" || len(q.Get("code_challenge")) != 43 ||
		len(q.Get("nonce")) < 43 || len(q.Get("state")) < 43 || q.Get("response_type") != "code" {
		t.Errorf("authorize request lacks PKCE S256, nonce or state: %v", q)
	}
	if v, _ := e.lastVerifier.Load().(string); oauth2.S256ChallengeFromVerifier(v) != q.Get("code_challenge") {
		t.Errorf("the code_verifier sent to the provider does not match the challenge")
	}

	llid := LLID(e.provider.Issuer(), mockoidc.DefaultUser().Subject)
	want := Token{TokenType: "Bearer", ExpiresIn: 900, Subject: llid, Tenant: "acme", Roles: []string{RoleWriter}}
	if diff := cmp.Diff(want, tok, cmp.FilterPath(func(p cmp.Path) bool {
		f := p.Last().String()
		return f == ".AccessToken" || f == ".ExpiresAt" || f == ".ID"
	}, cmp.Ignore())); diff != "" {
		t.Errorf("token (-want +got):\n%s", diff)
	}

	if code, reason := e.call(t, "/t/acme/ingest", tok.AccessToken); code != http.StatusOK {
		t.Fatalf("authenticated request: %d %s", code, reason)
	}
	if code, reason := e.call(t, "/t/globex/ingest", tok.AccessToken); code != http.StatusForbidden || reason != ReasonCrossTenant {
		t.Errorf("other tenant: %d %s, want 403 cross_tenant", code, reason)
	}
	if code, reason := e.call(t, "/t/acme/ingest", ""); code != http.StatusUnauthorized || reason != ReasonMissing {
		t.Errorf("no token: %d %s, want 401 missing", code, reason)
	}

	// The user record is kept under the LLID, not the email.
	data, err := os.ReadFile(filepath.Join(e.stateDir, "users", llid+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var u User
	if err := json.Unmarshal(data, &u); err != nil {
		t.Fatal(err)
	}
	if u.Email != "jane.doe@example.com" || u.Subject != "1234567890" || u.Issuer != e.provider.Issuer() {
		t.Errorf("user record = %+v", u)
	}

	// Same (iss, sub), new address: same LLID.
	e.provider.QueueUser(&mockoidc.MockUser{Subject: "1234567890", Email: "multi@example.com", EmailVerified: true})
	tok2, resp2 := e.login(t, "?tenant=globex")
	if resp2.StatusCode != http.StatusOK || tok2.Subject != llid {
		t.Errorf("second login: %d, subject %s, want %s", resp2.StatusCode, tok2.Subject, llid)
	}
}

// TestLoginCLI: a CLI with a loopback redirect_uri gets a one-time code
// (never the token in a URL) and trades it with its own PKCE verifier.
func TestLoginCLI(t *testing.T) {
	e := newOIDCEnv(t)
	got := make(chan url.Values, 1)
	cli := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.URL.Query()
		_, _ = io.WriteString(w, "you may close this window")
	}))
	defer cli.Close()
	redirect := cli.URL + "/callback"
	verifier := strings.Repeat("v", 50)
	q := url.Values{"redirect_uri": {redirect}, "state": {"cli-state"}, "tenant": {"acme"},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"}}
	resp, err := browser(nil).Get(e.srv.URL + PathLogin + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cb := <-got
	if cb.Get("state") != "cli-state" || cb.Get("code") == "" || cb.Get("access_token") != "" {
		t.Fatalf("loopback got %v", cb)
	}
	if strings.Count(cb.Get("code"), ".") == 2 {
		t.Fatal("the loopback redirect carries a JWT")
	}
	exchange := func(code, ver, ru string) *http.Response {
		form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {ver}, "redirect_uri": {ru}}
		resp, err := http.PostForm(e.srv.URL+PathToken, form)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	// A wrong verifier burns the code: single use whatever the outcome.
	if code, reason := problem(t, exchange(cb.Get("code"), strings.Repeat("w", 50), redirect)); code != 401 || reason != ReasonBadGrant {
		t.Errorf("wrong verifier: %d %s", code, reason)
	}
	// Again, with a fresh login.
	resp, err = browser(nil).Get(e.srv.URL + PathLogin + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cb = <-got
	if code, reason := problem(t, exchange(cb.Get("code"), verifier, "http://127.0.0.1:1/other")); code != 401 || reason != ReasonBadGrant {
		t.Errorf("wrong redirect_uri: %d %s", code, reason)
	}
	resp, err = browser(nil).Get(e.srv.URL + PathLogin + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cb = <-got
	resp = exchange(cb.Get("code"), verifier, redirect)
	var tok Token
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != 200 {
		t.Fatalf("exchange: %d %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	if code, _ := e.call(t, "/t/acme/ingest", tok.AccessToken); code != 200 {
		t.Errorf("CLI token refused: %d", code)
	}
	if code, reason := problem(t, exchange(cb.Get("code"), verifier, redirect)); code != 401 || reason != ReasonBadGrant {
		t.Errorf("code reuse: %d %s", code, reason)
	}
}

// customUser lets a test put any claim in the id_token.
type customUser struct {
	sub   string
	extra map[string]any
}

func (u *customUser) ID() string { return u.sub }

func (u *customUser) Userinfo([]string) ([]byte, error) {
	return json.Marshal(map[string]any{"sub": u.sub})
}

func (u *customUser) Claims(_ []string, base *mockoidc.IDTokenClaims) (jwt.Claims, error) {
	data, err := json.Marshal(base)
	if err != nil {
		return nil, err
	}
	m := jwt.MapClaims{}
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	for k, v := range u.extra {
		m[k] = v
	}
	return m, nil
}

// TestLoginRefusals: each check of the callback, with its reason.
func TestLoginRefusals(t *testing.T) {
	e := newOIDCEnv(t)
	hdEnv := newOIDCEnv(t, func(c *Config) { c.OIDC.HostedDomain = "example.com" })
	user := func(email string, extra map[string]any) mockoidc.User {
		m := map[string]any{"email": email, "email_verified": true}
		for k, v := range extra {
			m[k] = v
		}
		return &customUser{sub: "sub-" + email, extra: m}
	}
	pkce := "&code_challenge_method=S256&code_challenge=" + strings.Repeat("a", 43)
	tests := []struct {
		name   string
		env    *oidcEnv
		user   mockoidc.User
		query  string
		status int
		reason Reason
	}{
		{"default user", e, nil, "", 200, ""},
		{"email_verified false", e, &mockoidc.MockUser{Subject: "u1", Email: "jane.doe@example.com", EmailVerified: false}, "", 401, ReasonEmailUnverified},
		{"email_verified string false", e, user("jane.doe@example.com", map[string]any{"email_verified": "false"}), "", 401, ReasonEmailUnverified},
		{"email_verified string true", e, user("jane.doe@example.com", map[string]any{"email_verified": "true"}), "", 200, ""},
		{"no email", e, user("", nil), "", 401, ReasonEmailUnverified},
		{"id_token for another client", e, user("jane.doe@example.com", map[string]any{"aud": "another-client"}), "", 401, ReasonIDToken},
		{"id_token from another issuer", e, user("jane.doe@example.com", map[string]any{"iss": "https://evil.example"}), "", 401, ReasonIDToken},
		{"id_token expired", e, user("jane.doe@example.com", map[string]any{"exp": time.Now().Add(-time.Minute).Unix()}), "", 401, ReasonIDToken},
		{"two audiences, no azp", e, user("azp@example.com", map[string]any{"aud": []string{e.provider.ClientID, "other"}}), "", 401, ReasonWrongAZP},
		{"two audiences, our azp", e, user("azp@example.com", map[string]any{"aud": []string{e.provider.ClientID, "other"}, "azp": e.provider.ClientID}), "", 200, ""},
		{"azp of another client", e, user("azp@example.com", map[string]any{"azp": "another-client"}), "", 401, ReasonWrongAZP},
		{"not a member", e, user("stranger@example.com", nil), "", 403, ReasonNotMember},
		{"member of another tenant", e, nil, "?tenant=globex", 403, ReasonNotMember},
		{"member of several tenants", e, user("multi@example.com", nil), "", 400, ReasonTenantRequired},
		{"member of several tenants, chosen", e, user("multi@example.com", nil), "?tenant=initech", 200, ""},
		{"hd matches", hdEnv, user("hd@example.com", map[string]any{"hd": "example.com"}), "", 200, ""},
		{"hd wrong", hdEnv, user("hd@example.com", map[string]any{"hd": "evil.com"}), "", 401, ReasonWrongHD},
		{"hd missing", hdEnv, user("hd@example.com", nil), "", 401, ReasonWrongHD},
		{"redirect_uri elsewhere", e, nil, "?redirect_uri=https://evil.example/cb", 400, ReasonBadRedirect},
		{"redirect_uri localhost", e, nil, "?redirect_uri=http://localhost:8080/cb", 400, ReasonBadRedirect},
		{"redirect_uri lookalike", e, nil, "?redirect_uri=http://127.0.0.1.evil.example/cb", 400, ReasonBadRedirect},
		{"redirect_uri with user", e, nil, "?redirect_uri=http://evil.example@127.0.0.1:9/cb", 400, ReasonBadRedirect},
		{"redirect_uri without PKCE", e, nil, "?redirect_uri=http://127.0.0.1:9/cb", 400, ReasonBadRequest},
		{"redirect_uri with plain PKCE", e, nil, "?redirect_uri=http://127.0.0.1:9/cb&code_challenge_method=plain&code_challenge=" + strings.Repeat("a", 43), 400, ReasonBadRequest},
		{"repeated parameter", e, nil, "?tenant=acme&tenant=globex", 400, ReasonBadRequest},
		// The console's page is accepted on this server's own origin only
		// (TestConsoleLogin in internal/console signs in through it; this
		// test server is on a loopback address, which CLIs may use anyway).
		{"console of another origin", e, nil, "?redirect_uri=http://evil.example" + ConsolePath + pkce, 400, ReasonBadRedirect},
		{"console over https on an http server", e, nil, "?redirect_uri=" + url.QueryEscape(strings.Replace(e.srv.URL, "http:", "https:", 1)+ConsolePath) + pkce, 400, ReasonBadRedirect},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.user != nil {
				tt.env.provider.QueueUser(tt.user)
			}
			tok, resp := tt.env.login(t, tt.query)
			if resp.StatusCode == 200 {
				if tt.status != 200 {
					t.Fatalf("logged in (%+v), want %d %s", tok, tt.status, tt.reason)
				}
				return
			}
			status, reason := problem(t, resp)
			if status != tt.status || reason != tt.reason {
				t.Fatalf("got %d %s, want %d %s", status, reason, tt.status, tt.reason)
			}
		})
	}
	if u, _ := url.Parse(hdEnv.srv.URL); u != nil {
		c := browser(func(r *http.Request) bool { return hdEnv.isProvider(r) })
		resp, err := c.Get(hdEnv.srv.URL + PathLogin)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if loc.Query().Get("hd") != "example.com" {
			t.Errorf("hd hint missing from %s", loc)
		}
	}
}

// interrupted starts a login, stops at the provider, and returns the
// authorize URL and the browser (holding the login cookie).
func (e *oidcEnv) interrupted(t *testing.T) (*url.URL, *http.Client) {
	t.Helper()
	c := browser(func(r *http.Request) bool { return e.isProvider(r) })
	resp, err := c.Get(e.srv.URL + PathLogin)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return loc, c
}

// resume takes the browser through the provider with the authorize URL
// (perhaps altered) and returns the callback URL it is sent to.
func (e *oidcEnv) resume(t *testing.T, c *http.Client, authorize *url.URL) *url.URL {
	t.Helper()
	nc := *c
	nc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := nc.Get(authorize.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cb, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusFound {
		t.Fatalf("provider: %d %v", resp.StatusCode, err)
	}
	return cb
}

func get(t *testing.T, c *http.Client, u string) (int, Reason) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	return problem(t, resp)
}

// TestLoginReplayAndForgery: state, nonce and code_verifier.
func TestLoginReplayAndForgery(t *testing.T) {
	e := newOIDCEnv(t)

	t.Run("state mismatch", func(t *testing.T) {
		authz, c := e.interrupted(t)
		cb := e.resume(t, c, authz)
		q := cb.Query()
		q.Set("state", strings.Repeat("A", 43))
		cb.RawQuery = q.Encode()
		if code, reason := get(t, c, cb.String()); code != 401 || reason != ReasonStateMismatch {
			t.Errorf("forged state: %d %s", code, reason)
		}
	})
	t.Run("state from another browser", func(t *testing.T) {
		authz, c := e.interrupted(t)
		cb := e.resume(t, c, authz)
		if code, reason := get(t, browser(nil), cb.String()); code != 401 || reason != ReasonStateMismatch {
			t.Errorf("callback without the login cookie: %d %s", code, reason)
		}
		// The state is gone now, even for the right browser.
		if code, reason := get(t, c, cb.String()); code != 401 || reason != ReasonStateMismatch {
			t.Errorf("state after a failed use: %d %s", code, reason)
		}
	})
	t.Run("callback replay", func(t *testing.T) {
		authz, c := e.interrupted(t)
		cb := e.resume(t, c, authz)
		if code, reason := get(t, c, cb.String()); code != 200 {
			t.Fatalf("first callback: %d %s", code, reason)
		}
		if code, reason := get(t, c, cb.String()); code != 401 || reason != ReasonStateMismatch {
			t.Errorf("replayed callback: %d %s", code, reason)
		}
	})
	t.Run("nonce reuse", func(t *testing.T) {
		authz1, c1 := e.interrupted(t)
		if code, reason := get(t, c1, e.resume(t, c1, authz1).String()); code != 200 {
			t.Fatalf("first login: %d %s", code, reason)
		}
		authz2, c2 := e.interrupted(t)
		q := authz2.Query()
		q.Set("nonce", authz1.Query().Get("nonce")) // the provider is made to mint an id_token with a spent nonce
		authz2.RawQuery = q.Encode()
		if code, reason := get(t, c2, e.resume(t, c2, authz2).String()); code != 401 || reason != ReasonNonceReused {
			t.Errorf("spent nonce: %d %s", code, reason)
		}
	})
	t.Run("nonce mismatch", func(t *testing.T) {
		authz, c := e.interrupted(t)
		q := authz.Query()
		q.Set("nonce", "chosen-by-the-attacker")
		authz.RawQuery = q.Encode()
		if code, reason := get(t, c, e.resume(t, c, authz).String()); code != 401 || reason != ReasonNonceMismatch {
			t.Errorf("foreign nonce: %d %s", code, reason)
		}
	})
	t.Run("nonce removed", func(t *testing.T) {
		authz, c := e.interrupted(t)
		q := authz.Query()
		q.Del("nonce")
		authz.RawQuery = q.Encode()
		if code, reason := get(t, c, e.resume(t, c, authz).String()); code != 401 || reason != ReasonNonceMismatch {
			t.Errorf("no nonce: %d %s", code, reason)
		}
	})
	t.Run("wrong code_verifier", func(t *testing.T) {
		e.tamperVerifier.Store(true)
		defer e.tamperVerifier.Store(false)
		authz, c := e.interrupted(t)
		if code, reason := get(t, c, e.resume(t, c, authz).String()); code != 401 || reason != ReasonCodeExchange {
			t.Errorf("wrong verifier: %d %s", code, reason)
		}
	})
	t.Run("challenge swapped", func(t *testing.T) {
		// An attacker who injects their own code_challenge cannot use the
		// code: the server sends its own verifier.
		authz, c := e.interrupted(t)
		q := authz.Query()
		q.Set("code_challenge", oauth2.S256ChallengeFromVerifier(strings.Repeat("z", 43)))
		authz.RawQuery = q.Encode()
		if code, reason := get(t, c, e.resume(t, c, authz).String()); code != 401 || reason != ReasonCodeExchange {
			t.Errorf("swapped challenge: %d %s", code, reason)
		}
	})
	t.Run("provider error", func(t *testing.T) {
		authz, c := e.interrupted(t)
		u := e.srv.URL + PathCallback + "?error=access_denied&state=" + authz.Query().Get("state")
		if code, reason := get(t, c, u); code != 401 || reason != ReasonProviderError {
			t.Errorf("provider error: %d %s", code, reason)
		}
	})
}

func TestLoginProviderDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s, err := New(context.Background(), Config{OIDC: OIDCConfig{
		Issuer: "http://" + addr, ClientID: "c", RedirectURL: "http://127.0.0.1/auth/callback",
		HTTPClient: &http.Client{Timeout: time.Second},
	}})
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	s.LoginHandler().ServeHTTP(w, httptest.NewRequest("GET", PathLogin, nil))
	if code, reason := problem(t, w.Result()); code != 503 || reason != ReasonProviderDown {
		t.Errorf("provider down: %d %s", code, reason)
	}
	// Without a client id, login is off.
	s2, _ := New(context.Background(), Config{})
	w = httptest.NewRecorder()
	s2.LoginHandler().ServeHTTP(w, httptest.NewRequest("GET", PathLogin, nil))
	if code, reason := problem(t, w.Result()); code != 503 || reason != ReasonLoginDisabled {
		t.Errorf("no provider: %d %s", code, reason)
	}
}

func TestLoginStateStoreBounded(t *testing.T) {
	clock := newFakeClock()
	st := newOnceStore[int](time.Minute, 3)
	for i := range 5 {
		st.put(clock.Now(), string(rune('a'+i)), i)
	}
	if st.len() != 3 {
		t.Fatalf("len %d, want 3", st.len())
	}
	if _, ok := st.take(clock.Now(), "a"); ok {
		t.Error("the oldest entry survived")
	}
	if v, ok := st.take(clock.Now(), "e"); !ok || v != 4 {
		t.Error("the newest entry is gone")
	}
	if _, ok := st.take(clock.Now(), "e"); ok {
		t.Error("taken twice")
	}
	clock.Add(time.Minute)
	if _, ok := st.take(clock.Now(), "d"); ok {
		t.Error("expired entry taken")
	}
	st.sweep(clock.Now())
	if st.len() != 0 {
		t.Errorf("len %d after sweep", st.len())
	}
}

func TestLLID(t *testing.T) {
	a := LLID("https://accounts.google.com", "1234")
	tests := []struct {
		iss, sub string
		same     bool
	}{
		{"https://accounts.google.com", "1234", true},
		{"https://accounts.google.com", "12345", false},
		{"https://accounts.google.co", "m1234", false}, // no ambiguity at the boundary
		{"https://login.example.com", "1234", false},
	}
	for _, tt := range tests {
		if got := LLID(tt.iss, tt.sub); (got == a) != tt.same {
			t.Errorf("LLID(%q, %q) = %s; same as %s: %v, want %v", tt.iss, tt.sub, got, a, got == a, tt.same)
		}
	}
	if !validLLID(a) || len(a) != 34 {
		t.Errorf("LLID %q has the wrong shape", a)
	}
}

// checkRedirect: besides loopback URLs, only the console's page on the
// origin the login started at, in the scheme the server is reached by.
func TestCheckRedirectConsole(t *testing.T) {
	plain := &loginFlow{}
	tls := &loginFlow{httpsRedirect: true}
	tests := []struct {
		name string
		l    *loginFlow
		host string
		uri  string
		ok   bool
	}{
		{"console, same origin", plain, "logline.example", "http://logline.example/console/", true},
		{"console over https behind TLS", tls, "logline.example", "https://logline.example/console/", true},
		{"console over http behind TLS", tls, "logline.example", "http://logline.example/console/", false},
		{"console of another host", plain, "logline.example", "http://evil.example/console/", false},
		{"console with a port that differs", plain, "logline.example:8080", "http://logline.example:9090/console/", false},
		{"another path", plain, "logline.example", "http://logline.example/console/x", false},
		{"console with a query", plain, "logline.example", "http://logline.example/console/?next=evil", false},
		{"console with a fragment", plain, "logline.example", "http://logline.example/console/#x", false},
		{"console with user info", plain, "logline.example", "http://a@logline.example/console/", false},
		{"a relative path", plain, "logline.example", "/console/", false},
		{"loopback CLI", plain, "logline.example", "http://127.0.0.1:7777/cb", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "http://"+tt.host+"/auth/login", nil)
			err := tt.l.checkRedirect(tt.uri, r)
			if (err == nil) != tt.ok {
				t.Fatalf("checkRedirect(%q) from host %s = %v, want ok=%v", tt.uri, tt.host, err, tt.ok)
			}
		})
	}
}
