package identity

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/loglineos/loglineos/internal/gateway/reply"
)

// The login flow (OpenID Connect authorization code + PKCE S256):
//
//	client               this server                        provider
//	GET /auth/login ───► state, nonce, PKCE verifier, binding
//	   [?redirect_uri=http://127.0.0.1:PORT/…&state=S&code_challenge=C]
//	◄── 302 to provider, Set-Cookie ll_login=<binding> (HttpOnly, SameSite=Lax,
//	    Path=<path of RedirectURL>, Secure if https, 10 min)
//	──────────────────────────────────────────────────────► user logs in
//	GET /auth/callback?code&state ◄─────────────────────── 302
//	                     take state (once), check the cookie binding,
//	                     exchange code + code_verifier ───► id_token
//	                     verify id_token (sig, iss, aud, exp), azp, nonce (once),
//	                     email_verified, hd; LLID = f(iss, sub); membership
//	◄── JSON token            (no redirect_uri: a browser or curl)
//	◄── 302 redirect_uri?code=<one-time>&state=S   (a CLI on loopback)
//	POST /auth/token grant_type=authorization_code&code&code_verifier&redirect_uri
//	◄── JSON token
//
// A CLI never sees the provider's tokens, and the LLST never appears in a
// URL: the loopback redirect carries a one-time code (single use, valid
// for LoginTTL) that only the holder of the CLI's own PKCE verifier can
// exchange. redirect_uri must be http on 127.0.0.1 or [::1] (RFC 8252
// §7.3), so the code cannot be sent to another host. The login cookie
// binds the state to the browser that started the login (login CSRF); it
// carries no API authority.
const (
	loginCookie  = "ll_login"
	callbackPath = "/auth/callback"
	maxParamLen  = 512
)

type pendingLogin struct {
	binding     [sha256.Size]byte // SHA-256 of the cookie value
	nonce       string
	verifier    string // PKCE code_verifier sent to the provider
	redirect    string // a CLI's loopback redirect_uri, or ""
	clientState string
	challenge   string // the CLI's S256 code_challenge
	tenant      string
}

// loginGrant is what a one-time code stands for.
type loginGrant struct {
	subject   string
	tenant    string
	roles     []string
	redirect  string
	challenge string
}

type loginFlow struct {
	s   *Service
	cfg OIDCConfig
	// cookiePath is the path of RedirectURL, where the login cookie goes;
	// httpsRedirect says the callback is served over TLS.
	cookiePath    string
	httpsRedirect bool
	pending       *onceStore[pendingLogin] // by state
	codes         *onceStore[loginGrant]   // by SHA-256 of the code, hex
	nonces        *onceStore[struct{}]     // nonces of completed logins

	mu       sync.Mutex
	oauth    *oauth2.Config
	verifier *oidc.IDTokenVerifier
}

func newLoginFlow(s *Service) *loginFlow {
	c := s.cfg.OIDC
	path, https := callbackPath, false
	if u, err := url.Parse(c.RedirectURL); err == nil && c.RedirectURL != "" {
		path, https = u.EscapedPath(), u.Scheme == "https"
	}
	return &loginFlow{
		s: s, cfg: c, cookiePath: path, httpsRedirect: https,
		pending: newOnceStore[pendingLogin](c.LoginTTL, c.MaxPending),
		codes:   newOnceStore[loginGrant](c.LoginTTL, c.MaxPending),
		// An id_token's nonce matters as long as the id_token lives; an
		// hour covers the providers we know, LoginTTL the flow itself.
		nonces: newOnceStore[struct{}](max(c.LoginTTL, time.Hour), c.MaxPending),
	}
}

// secure says whether the login cookie gets the Secure attribute: when the
// callback URL is https, the request came over TLS, or the config says so.
func (l *loginFlow) secure(r *http.Request) bool {
	return l.cfg.SecureCookie || l.httpsRedirect || r.TLS != nil
}

func (l *loginFlow) enabled() bool { return l.cfg.ClientID != "" }

func (l *loginFlow) sweep() {
	now := l.s.now()
	l.pending.sweep(now)
	l.codes.sweep(now)
	l.nonces.sweep(now)
}

// provider discovers the OpenID provider on first use and keeps the result.
func (l *loginFlow) provider(ctx context.Context) (*oauth2.Config, *oidc.IDTokenVerifier, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.oauth != nil {
		return l.oauth, l.verifier, nil
	}
	ctx = oidc.ClientContext(ctx, l.cfg.HTTPClient)
	p, err := oidc.NewProvider(ctx, l.cfg.Issuer)
	if err != nil {
		return nil, nil, &Error{Kind: KindUnavailable, Reason: ReasonProviderDown, Detail: "OpenID provider discovery failed", Err: err}
	}
	ep := p.Endpoint()
	ep.AuthStyle = l.cfg.AuthStyle
	l.oauth = &oauth2.Config{
		ClientID: l.cfg.ClientID, ClientSecret: l.cfg.ClientSecret,
		Endpoint: ep, RedirectURL: l.cfg.RedirectURL,
		Scopes: append([]string{oidc.ScopeOpenID}, l.cfg.Scopes...),
	}
	keyCtx := oidc.ClientContext(context.Background(), l.cfg.HTTPClient)
	l.verifier = p.VerifierContext(keyCtx, &oidc.Config{ClientID: l.cfg.ClientID, Now: l.s.now})
	return l.oauth, l.verifier, nil
}

// LoginHandler serves GET /auth/login: it starts a login and redirects to
// the provider. Query parameters, all optional:
//
//	tenant          the tenant to log in to (needed if the user is a member of several)
//	redirect_uri    a CLI's loopback URL (http://127.0.0.1:PORT/path or http://[::1]:PORT/path)
//	state           echoed to redirect_uri, for the CLI's own CSRF check
//	code_challenge  the CLI's PKCE S256 challenge; required with redirect_uri
//	code_challenge_method  S256 (the only method accepted)
func (s *Service) LoginHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.login.start(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// CallbackHandler serves GET /auth/callback, where the provider sends the
// browser back. It answers with the token as JSON, or redirects to the
// CLI's loopback redirect_uri with a one-time code.
func (s *Service) CallbackHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.login.callback(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

func (l *loginFlow) start(w http.ResponseWriter, r *http.Request) error {
	if !l.enabled() {
		return &Error{Kind: KindUnavailable, Reason: ReasonLoginDisabled, Detail: "no OpenID provider is configured"}
	}
	q := r.URL.Query()
	for k, v := range q {
		if len(v) != 1 || len(v[0]) > maxParamLen {
			return badRequest(ReasonBadRequest, "parameter %q must appear once, at most %d bytes", k, maxParamLen)
		}
	}
	p := pendingLogin{tenant: q.Get("tenant"), clientState: q.Get("state")}
	if ru := q.Get("redirect_uri"); ru != "" {
		if err := l.checkRedirect(ru, r); err != nil {
			return err
		}
		p.redirect = ru
		p.challenge = q.Get("code_challenge")
		if !validChallenge(p.challenge) || q.Get("code_challenge_method") != "S256" {
			return badRequest(ReasonBadRequest, "a loopback redirect_uri needs code_challenge (S256, 43 base64url characters) and code_challenge_method=S256")
		}
	}
	oc, _, err := l.provider(r.Context())
	if err != nil {
		return err
	}
	vals, err := l.s.randomStrings(4)
	if err != nil {
		return err
	}
	state, binding := vals[0], vals[1]
	p.nonce, p.verifier = vals[2], vals[3]
	p.binding = sha256.Sum256([]byte(binding))
	l.pending.put(l.s.now(), state, p)
	http.SetCookie(w, &http.Cookie{
		Name: loginCookie, Value: binding, Path: l.cookiePath,
		MaxAge: int(l.cfg.LoginTTL / time.Second), HttpOnly: true,
		Secure: l.secure(r), SameSite: http.SameSiteLaxMode,
	})
	opts := []oauth2.AuthCodeOption{oidc.Nonce(p.nonce), oauth2.S256ChallengeOption(p.verifier)}
	if l.cfg.HostedDomain != "" {
		opts = append(opts, oauth2.SetAuthURLParam("hd", l.cfg.HostedDomain))
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, oc.AuthCodeURL(state, opts...), http.StatusFound)
	return nil
}

// ConsolePath is the web console's page, the one redirect_uri besides
// loopback ones that a login may return to: on this server's own origin,
// so the one-time code reaches the page that started the login (and its
// PKCE verifier), never another site.
const ConsolePath = "/console/"

// checkRedirect accepts a CLI's loopback redirect_uri, or the console's
// page on the origin the login was started at (https when the server's
// cookies are secure).
func (l *loginFlow) checkRedirect(raw string, r *http.Request) error {
	lerr := checkLoopback(raw)
	if lerr == nil {
		return nil
	}
	u, err := url.Parse(raw)
	scheme := "http"
	if l.secure(r) {
		scheme = "https"
	}
	if err == nil && u.Scheme == scheme && u.Host == r.Host && u.Path == ConsolePath && u.RawQuery == "" &&
		u.User == nil && u.Fragment == "" && u.Opaque == "" && r.Host != "" {
		return nil
	}
	return badRequest(ReasonBadRedirect, "redirect_uri must be http://127.0.0.1:PORT/… or http://[::1]:PORT/… (a CLI), or %s://%s%s (the console)", scheme, r.Host, ConsolePath)
}

// checkLoopback accepts http URLs on the IPv4 or IPv6 loopback address,
// any port, no user info or fragment (RFC 8252 §7.3, §8.3).
func checkLoopback(raw string) error {
	u, err := url.Parse(raw)
	bad := err != nil || u.Scheme != "http" || u.User != nil || u.Fragment != "" || u.Opaque != ""
	if !bad {
		ip := net.ParseIP(u.Hostname())
		bad = ip == nil || !(ip.Equal(net.IPv4(127, 0, 0, 1)) || ip.Equal(net.IPv6loopback))
	}
	if bad {
		return badRequest(ReasonBadRedirect, "redirect_uri must be http://127.0.0.1:PORT/… or http://[::1]:PORT/…")
	}
	return nil
}

func validChallenge(c string) bool {
	if len(c) != 43 {
		return false
	}
	_, err := b64.DecodeString(c)
	return err == nil
}

func (l *loginFlow) callback(w http.ResponseWriter, r *http.Request) error {
	if !l.enabled() {
		return &Error{Kind: KindUnavailable, Reason: ReasonLoginDisabled, Detail: "no OpenID provider is configured"}
	}
	now := l.s.now()
	q := r.URL.Query()
	// The state is single-use whatever happens next.
	p, ok := l.pending.take(now, q.Get("state"))
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: "", Path: l.cookiePath, MaxAge: -1,
		HttpOnly: true, Secure: l.secure(r), SameSite: http.SameSiteLaxMode})
	if !ok {
		return unauth(ReasonStateMismatch, "unknown, expired or already used state")
	}
	ck, err := r.Cookie(loginCookie)
	if err != nil {
		return unauth(ReasonStateMismatch, "the login cookie is missing: the login did not start in this browser")
	}
	if got := sha256.Sum256([]byte(ck.Value)); subtle.ConstantTimeCompare(got[:], p.binding[:]) != 1 {
		return unauth(ReasonStateMismatch, "the state does not belong to this browser")
	}
	if e := q.Get("error"); e != "" {
		return unauth(ReasonProviderError, "the provider answered "+sanitize(e))
	}
	code := q.Get("code")
	if code == "" || len(code) > 4096 {
		return badRequest(ReasonBadRequest, "no code")
	}
	oc, verifier, err := l.provider(r.Context())
	if err != nil {
		return err
	}
	ctx := context.WithValue(r.Context(), oauth2.HTTPClient, l.cfg.HTTPClient)
	tok, err := oc.Exchange(ctx, code, oauth2.VerifierOption(p.verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode < 500 {
			return &Error{Kind: KindUnauthenticated, Reason: ReasonCodeExchange, Detail: "the provider refused the code", Err: err}
		}
		return &Error{Kind: KindUnavailable, Reason: ReasonProviderDown, Detail: "the provider's token endpoint failed", Err: err}
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return unauth(ReasonIDToken, "the provider returned no id_token")
	}
	id, err := verifier.Verify(ctx, raw)
	if err != nil {
		return &Error{Kind: KindUnauthenticated, Reason: ReasonIDToken, Detail: "the id_token does not verify", Err: err}
	}
	u, err := l.checkIDToken(id, p)
	if err != nil {
		return err
	}
	l.nonces.put(now, id.Nonce, struct{}{})
	if err := l.s.change(r.Context(), func(context.Context) error { return l.s.saveUser(u) }); err != nil {
		return err
	}
	tenant, roles, err := l.s.membership(u, p.tenant)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	if p.redirect == "" {
		t, err := l.s.Issue(u.LLID, tenant, roles)
		if err != nil {
			return err
		}
		return reply.JSON(w, http.StatusOK, t)
	}
	vals, err := l.s.randomStrings(1)
	if err != nil {
		return err
	}
	l.codes.put(now, codeKey(vals[0]), loginGrant{subject: u.LLID, tenant: tenant, roles: roles, redirect: p.redirect, challenge: p.challenge})
	dest, _ := url.Parse(p.redirect) // checked at login
	v := dest.Query()
	v.Set("code", vals[0])
	if p.clientState != "" {
		v.Set("state", p.clientState)
	}
	dest.RawQuery = v.Encode()
	http.Redirect(w, r, dest.String(), http.StatusFound)
	return nil
}

// idClaims are the id_token claims read beyond go-oidc's.
type idClaims struct {
	Email         string   `json:"email"`
	EmailVerified flexBool `json:"email_verified"`
	HD            string   `json:"hd"`
	AZP           string   `json:"azp"`
	Name          string   `json:"name"`
}

// flexBool accepts true and "true" (some providers send strings).
type flexBool bool

func (b *flexBool) UnmarshalJSON(d []byte) error {
	switch string(d) {
	case "true", `"true"`:
		*b = true
	default:
		*b = false
	}
	return nil
}

// checkIDToken makes the checks go-oidc leaves to the caller: nonce, azp,
// email_verified, hd. Signature, iss, aud and exp were checked by Verify.
func (l *loginFlow) checkIDToken(id *oidc.IDToken, p pendingLogin) (User, error) {
	now := l.s.now()
	if l.nonces.has(now, id.Nonce) {
		return User{}, unauth(ReasonNonceReused, "the id_token's nonce was already used")
	}
	if subtle.ConstantTimeCompare([]byte(id.Nonce), []byte(p.nonce)) != 1 {
		return User{}, unauth(ReasonNonceMismatch, "the id_token's nonce is not this login's")
	}
	var c idClaims
	if err := id.Claims(&c); err != nil {
		return User{}, &Error{Kind: KindUnauthenticated, Reason: ReasonIDToken, Detail: "unreadable claims", Err: err}
	}
	if (len(id.Audience) > 1 && c.AZP == "") || (c.AZP != "" && c.AZP != l.cfg.ClientID) {
		return User{}, unauth(ReasonWrongAZP, "the id_token was issued to another client")
	}
	if c.Email == "" || !bool(c.EmailVerified) {
		return User{}, unauth(ReasonEmailUnverified, "the provider has not verified the email address")
	}
	if l.cfg.HostedDomain != "" && !strings.EqualFold(c.HD, l.cfg.HostedDomain) {
		return User{}, unauth(ReasonWrongHD, "the account is not in the domain "+l.cfg.HostedDomain)
	}
	if id.Subject == "" {
		return User{}, unauth(ReasonIDToken, "no sub")
	}
	// The LLID is keyed on the configured issuer, which Verify checked the
	// token against (go-oidc also lets Google's scheme-less iss through).
	iss := l.cfg.Issuer
	return User{
		LLID: LLID(iss, id.Subject), Issuer: iss, Subject: id.Subject,
		Email: c.Email, EmailVerified: true, HostedDomain: c.HD, Name: c.Name,
		FirstLogin: now.UTC(), LastLogin: now.UTC(),
	}, nil
}

// saveUser records the user, keeping the first login time of a known one.
func (s *Service) saveUser(u User) error {
	if !validLLID(u.LLID) {
		return internal(fmt.Errorf("identity: bad LLID %q", u.LLID))
	}
	if old, err := s.records.get("users", u.LLID); err == nil {
		var prev User
		if json.Unmarshal(old, &prev) == nil && !prev.FirstLogin.IsZero() {
			u.FirstLogin = prev.FirstLogin
		}
	}
	data, err := json.Marshal(u)
	if err != nil {
		return internal(err)
	}
	if err := s.records.put("users", u.LLID, data); err != nil {
		return internal(fmt.Errorf("identity: save user: %w", err))
	}
	return nil
}

// LookupUser returns the record of a person who has logged in.
func (s *Service) LookupUser(llid string) (User, error) {
	data, err := s.records.get("users", llid)
	if err != nil {
		return User{}, &Error{Kind: KindNotFound, Reason: ReasonNotFound, Detail: "no user " + llid}
	}
	var u User
	if err := json.Unmarshal(data, &u); err != nil {
		return User{}, internal(err)
	}
	return u, nil
}

// membership resolves the tenant and roles of u. want is the tenant asked
// for at login, or "".
func (s *Service) membership(u User, want string) (string, []string, error) {
	st := s.tenants.Load()
	found := map[string][]string{}
	for tenant, members := range st.members {
		for _, m := range members {
			if m.LLID == u.LLID || (m.Email != "" && u.EmailVerified && strings.EqualFold(m.Email, u.Email)) {
				for _, r := range m.Roles {
					if !slices.Contains(found[tenant], r) {
						found[tenant] = append(found[tenant], r)
					}
				}
			}
		}
	}
	if want != "" {
		roles, ok := found[want]
		if !ok {
			return "", nil, &Error{Kind: KindForbidden, Reason: ReasonNotMember,
				Detail: fmt.Sprintf("%s (%s) is not a member of tenant %q; an administrator must add them", u.Email, u.LLID, want)}
		}
		sort.Strings(roles)
		return want, roles, nil
	}
	switch len(found) {
	case 0:
		return "", nil, &Error{Kind: KindForbidden, Reason: ReasonNotMember,
			Detail: fmt.Sprintf("%s (%s) is not a member of any tenant; an administrator must add them", u.Email, u.LLID)}
	case 1:
		for t, roles := range found {
			sort.Strings(roles)
			return t, roles, nil
		}
	}
	names := make([]string, 0, len(found))
	for t := range found {
		names = append(names, t)
	}
	sort.Strings(names)
	return "", nil, badRequest(ReasonTenantRequired, "member of several tenants (%s): log in with ?tenant=", strings.Join(names, ", "))
}

// ExchangeLoginCode trades the one-time code a CLI received on its loopback
// redirect for an LLST. verifier is the CLI's PKCE code_verifier and
// redirect the redirect_uri it gave at login.
func (s *Service) ExchangeLoginCode(code, verifier, redirect string) (Token, error) {
	g, ok := s.login.codes.take(s.now(), codeKey(code))
	if !ok {
		return Token{}, unauth(ReasonBadGrant, "unknown, expired or already used code")
	}
	sum := sha256.Sum256([]byte(verifier))
	challenge := base64.RawURLEncoding.EncodeToString(sum[:])
	if subtle.ConstantTimeCompare([]byte(challenge), []byte(g.challenge)) != 1 || redirect != g.redirect {
		return Token{}, unauth(ReasonBadGrant, "code_verifier or redirect_uri does not match the login")
	}
	return s.Issue(g.subject, g.tenant, g.roles)
}

func codeKey(code string) string {
	sum := sha256.Sum256([]byte(code))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// randomStrings returns n base64url strings of 32 random bytes each.
func (s *Service) randomStrings(n int) ([]string, error) {
	b, err := s.random(32 * n)
	if err != nil {
		return nil, err
	}
	out := make([]string, n)
	for i := range out {
		out[i] = base64.RawURLEncoding.EncodeToString(b[32*i : 32*(i+1)])
	}
	return out, nil
}

// sanitize keeps a provider's error code printable and short.
func sanitize(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' {
			return r
		}
		return -1
	}, s)
}
