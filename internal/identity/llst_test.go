package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
)

// rawJWS signs any header and payload with priv, so tests can build every
// shape of token with a key the ring trusts.
func rawJWS(t testing.TB, priv ed25519.PrivateKey, header, payload any) string {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	p, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	in := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p)
	return in + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(priv, []byte(in)))
}

func claimsAt(now time.Time) map[string]any {
	return map[string]any{
		"iss": "https://logline.test", "aud": "loglineos", "sub": "u_test", "tenant": "acme",
		"roles": []string{"writer"}, "iat": now.Unix(), "nbf": now.Unix(),
		"exp": now.Add(15 * time.Minute).Unix(), "jti": "01HTEST",
	}
}

func with(m map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
			continue
		}
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

// TestVerifyRefusals is the RFC 8725 gauntlet: every token here must be
// refused with exactly the reason given, and the valid ones accepted.
func TestVerifyRefusals(t *testing.T) {
	clock := newFakeClock()
	s := newTestService(t, clock)
	now := clock.Now()
	active := s.ring.snapshot().active
	kid, priv, pub := active.kid, active.priv, active.pub
	hdr := map[string]any{"alg": "EdDSA", "kid": kid, "typ": "llst+jwt"}
	good := claimsAt(now)
	sign := func(h, p map[string]any) string { return rawJWS(t, priv, h, p) }

	_, foreign, _ := ed25519.GenerateKey(rand.Reader)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwtClaims := jwt.MapClaims(good)
	none := jwt.NewWithClaims(jwt.SigningMethodNone, jwtClaims)
	none.Header["kid"] = kid
	noneTok, err := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	// The classic confusion: HS256 keyed with the public key, in the forms
	// an attacker would try (raw bytes, the JWK x value, the JWKS JSON).
	hsToks := map[string]string{}
	jwks, _ := s.JWKS()
	for name, secret := range map[string][]byte{
		"raw":  pub,
		"x":    []byte(base64.RawURLEncoding.EncodeToString(pub)),
		"jwks": jwks,
	} {
		tk := jwt.NewWithClaims(jwt.SigningMethodHS256, jwtClaims)
		tk.Header["kid"] = kid
		tk.Header["typ"] = "llst+jwt"
		hsToks[name], err = tk.SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
	}
	rs := jwt.NewWithClaims(jwt.SigningMethodRS256, jwtClaims)
	rs.Header["kid"] = kid
	rsTok, err := rs.SignedString(rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	validTok := sign(hdr, good)
	parts := strings.Split(validTok, ".")

	tests := []struct {
		name string
		tok  string
		want Reason // "" means accepted
	}{
		{"valid", validTok, ""},
		{"issued by the service", mustIssue(t, s), ""},
		{"alg none (golang-jwt)", noneTok, ReasonBadAlg},
		{"alg none, our header otherwise", sign(with(hdr, "alg", "none"), good), ReasonBadAlg},
		{"alg None", sign(with(hdr, "alg", "None"), good), ReasonBadAlg},
		{"alg missing", sign(with(hdr, "alg", nil), good), ReasonBadAlg},
		{"alg eddsa lower case", sign(with(hdr, "alg", "eddsa"), good), ReasonBadAlg},
		{"alg Ed25519", sign(with(hdr, "alg", "Ed25519"), good), ReasonBadAlg},
		{"alg as array", sign(with(hdr, "alg", []string{"EdDSA"}), good), ReasonMalformed},
		{"HS256 keyed with the raw public key", hsToks["raw"], ReasonBadAlg},
		{"HS256 keyed with the JWK x", hsToks["x"], ReasonBadAlg},
		{"HS256 keyed with the JWKS", hsToks["jwks"], ReasonBadAlg},
		{"RS256 with our kid", rsTok, ReasonBadAlg},
		{"foreign Ed25519 key, our kid", rawJWS(t, foreign, hdr, good), ReasonBadSignature},
		{"unknown kid", sign(with(hdr, "kid", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), good), ReasonUnknownKID},
		{"no kid", sign(with(hdr, "kid", nil), good), ReasonUnknownKID},
		{"kid path", sign(with(hdr, "kid", "../../../../etc/passwd"), good), ReasonUnknownKID},
		{"kid absolute path", sign(with(hdr, "kid", "/dev/zero"), good), ReasonUnknownKID},
		{"kid key file path", sign(with(hdr, "kid", "../jwks/"+kid+".key"), good), ReasonUnknownKID},
		{"kid windows path", sign(with(hdr, "kid", `..\..\keys\`+kid), good), ReasonUnknownKID},
		{"kid NUL", sign(with(hdr, "kid", kid+"\x00.key"), good), ReasonUnknownKID},
		{"kid SQL", sign(with(hdr, "kid", "' OR '1'='1' --"), good), ReasonUnknownKID},
		{"kid SQL drop", sign(with(hdr, "kid", "x'; DROP TABLE keys; --"), good), ReasonUnknownKID},
		{"kid URL", sign(with(hdr, "kid", "https://evil.example/jwks.json"), good), ReasonUnknownKID},
		{"kid file URL", sign(with(hdr, "kid", "file:///etc/shadow"), good), ReasonUnknownKID},
		{"kid huge", sign(with(hdr, "kid", strings.Repeat("k", 700)), good), ReasonUnknownKID},
		{"kid number", sign(with(hdr, "kid", 7), good), ReasonMalformed},
		{"typ JWT", sign(with(hdr, "typ", "JWT"), good), ReasonBadType},
		{"typ missing", sign(with(hdr, "typ", nil), good), ReasonBadType},
		{"typ upper case", sign(with(hdr, "typ", "LLST+JWT"), good), ""},
		{"crit header", sign(with(hdr, "crit", []string{"exp"}), good), ReasonMalformed},
		{"jku header", sign(with(hdr, "jku", "https://evil.example/jwks"), good), ReasonMalformed},
		{"jwk header", sign(with(hdr, "jwk", map[string]string{"kty": "OKP"}), good), ReasonMalformed},
		{"x5u header", sign(with(hdr, "x5u", "https://evil.example/cert"), good), ReasonMalformed},
		{"b64 false", sign(with(hdr, "b64", false), good), ReasonMalformed},
		{"wrong iss", sign(hdr, with(good, "iss", "https://evil.example")), ReasonWrongIssuer},
		{"no iss", sign(hdr, with(good, "iss", nil)), ReasonWrongIssuer},
		{"wrong aud", sign(hdr, with(good, "aud", "someone-else")), ReasonWrongAud},
		{"no aud", sign(hdr, with(good, "aud", nil)), ReasonWrongAud},
		{"aud array with ours", sign(hdr, with(good, "aud", []string{"x", "loglineos"})), ""},
		{"aud array without ours", sign(hdr, with(good, "aud", []string{"x", "y"})), ReasonWrongAud},
		{"expired by 61 s", sign(hdr, with(good, "iat", now.Add(-961*time.Second).Unix(), "nbf", nil, "exp", now.Add(-61*time.Second).Unix())), ReasonExpired},
		{"expired by 59 s (skew)", sign(hdr, with(good, "iat", now.Add(-959*time.Second).Unix(), "nbf", nil, "exp", now.Add(-59*time.Second).Unix())), ""},
		{"expired long ago", sign(hdr, with(good, "iat", now.Add(-48*time.Hour).Unix(), "nbf", nil, "exp", now.Add(-47*time.Hour-45*time.Minute).Unix())), ReasonExpired},
		{"nbf in 61 s", sign(hdr, with(good, "nbf", now.Add(61*time.Second).Unix())), ReasonNotYetValid},
		{"nbf in 59 s (skew)", sign(hdr, with(good, "nbf", now.Add(59*time.Second).Unix())), ""},
		{"nbf in a day", sign(hdr, with(good, "nbf", now.Add(24*time.Hour).Unix())), ReasonNotYetValid},
		{"iat in 61 s", sign(hdr, with(good, "nbf", nil, "iat", now.Add(61*time.Second).Unix(), "exp", now.Add(961*time.Second).Unix())), ReasonNotYetValid},
		{"iat in 59 s (skew)", sign(hdr, with(good, "nbf", nil, "iat", now.Add(59*time.Second).Unix(), "exp", now.Add(959*time.Second).Unix())), ""},
		{"lifetime of a day", sign(hdr, with(good, "exp", now.Add(24*time.Hour).Unix())), ReasonBadLifetime},
		{"exp before iat", sign(hdr, with(good, "exp", now.Add(-time.Hour).Unix())), ReasonBadLifetime},
		{"exp missing", sign(hdr, with(good, "exp", nil)), ReasonMalformed},
		{"exp as string", sign(hdr, with(good, "exp", "2030")), ReasonMalformed},
		{"exp as float", sign(hdr, with(good, "exp", float64(now.Unix())+0.5)), ReasonMalformed},
		{"iat missing", sign(hdr, with(good, "iat", nil)), ReasonMalformed},
		{"sub missing", sign(hdr, with(good, "sub", nil)), ReasonMalformed},
		{"tenant missing", sign(hdr, with(good, "tenant", nil)), ReasonMalformed},
		{"jti missing", sign(hdr, with(good, "jti", nil)), ReasonMalformed},
		{"payload not an object", rawJWS(t, priv, hdr, []int{1, 2}), ReasonMalformed},
		{"signature of the other part", parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(priv, []byte(parts[1]))), ReasonBadSignature},
		{"payload swapped", parts[0] + "." + strings.Split(sign(hdr, with(good, "tenant", "globex")), ".")[1] + "." + parts[2], ReasonBadSignature},
		{"signature truncated", parts[0] + "." + parts[1] + "." + parts[2][:40], ReasonBadSignature},
		{"signature empty", parts[0] + "." + parts[1] + ".", ReasonBadSignature},
		{"signature not base64url", parts[0] + "." + parts[1] + "." + strings.Repeat("*", 86), ReasonMalformed},
		{"signature padded", validTok + "==", ReasonMalformed},
		{"signature non-canonical", parts[0] + "." + parts[1] + "." + nonCanonical(parts[2]), ReasonMalformed},
		{"two parts", parts[0] + "." + parts[1], ReasonMalformed},
		{"four parts", validTok + "." + parts[2], ReasonMalformed},
		{"five parts (JWE shape)", "a.b.c.d.e", ReasonMalformed},
		{"no dots", "garbage", ReasonMalformed},
		{"empty header", "." + parts[1] + "." + parts[2], ReasonMalformed},
		{"header not base64url", "!!!." + parts[1] + "." + parts[2], ReasonMalformed},
		{"header std base64", stdB64Token(priv, kid, parts[1]), ReasonMalformed},
		{"header not JSON", base64.RawURLEncoding.EncodeToString([]byte("alg=EdDSA")) + "." + parts[1] + "." + parts[2], ReasonMalformed},
		{"JWS JSON serialisation", `{"payload":"` + parts[1] + `","signatures":[]}`, ReasonMalformed},
		{"one megabyte", strings.Repeat("A", 1<<20), ReasonTooLarge},
		{"one byte over the limit", strings.Repeat("A", DefaultMaxTokenBytes+1), ReasonTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := s.Authenticate(bearer(tt.tok))
			if got := ReasonOf(err); got != tt.want {
				t.Fatalf("reason = %q, want %q (err %v)", got, tt.want, err)
			}
			if tt.want == "" {
				if p == nil || p.Tenant != "acme" {
					t.Fatalf("principal = %+v", p)
				}
				return
			}
			if p != nil {
				t.Fatalf("a principal (%+v) with an error", p)
			}
			if !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("error %v is not unauthenticated", err)
			}
		})
	}
	counts := s.RejectCounts()
	if counts[ReasonBadAlg] < 8 || counts[ReasonTooLarge] != 2 {
		t.Errorf("reject counts = %v", counts)
	}
}

// nonCanonical flips the unused low bits of the last base64url character
// of a 64-byte signature: same bytes to a lenient decoder, another string.
func nonCanonical(sig string) string {
	last := sig[len(sig)-1]
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, last)
	return sig[:len(sig)-1] + string(alphabet[i|1])
}

// stdB64Token encodes the header with the standard base64 alphabet ('/'
// appears) and signs it properly: the decoder must still refuse it.
func stdB64Token(priv ed25519.PrivateKey, kid, payload string) string {
	h := strings.TrimRight(base64.StdEncoding.EncodeToString([]byte(`{"alg":"EdDSA","kid":"`+kid+`","typ":"llst+jwt","x":"???"}`)), "=")
	in := h + "." + payload
	return in + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(priv, []byte(in)))
}

func mustIssue(t testing.TB, s *Service) string {
	t.Helper()
	tok, err := s.Issue("u_test", "acme", []string{"writer"})
	if err != nil {
		t.Fatal(err)
	}
	return tok.AccessToken
}

func TestAuthorizationHeader(t *testing.T) {
	clock := newFakeClock()
	s := newTestService(t, clock)
	tok := mustIssue(t, s)
	tests := []struct {
		name   string
		header []string
		want   Reason
	}{
		{"none", nil, ReasonMissing},
		{"empty", []string{""}, ReasonMissing},
		{"Bearer only", []string{"Bearer "}, ReasonMissing},
		{"lower-case scheme", []string{"bearer " + tok}, ""},
		{"two spaces", []string{"Bearer  " + tok}, ""},
		{"Basic", []string{"Basic dXNlcjpwYXNz"}, ReasonMalformed},
		{"no scheme", []string{tok}, ReasonMalformed},
		{"two headers", []string{"Bearer " + tok, "Bearer " + tok}, ReasonMalformed},
		{"huge header", []string{"Bearer " + strings.Repeat("x", 1<<20)}, ReasonTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			for _, h := range tt.header {
				r.Header.Add("Authorization", h)
			}
			r.AddCookie(&http.Cookie{Name: "llst", Value: tok}) // cookies are never read
			_, err := s.Authenticate(r)
			if got := ReasonOf(err); got != tt.want {
				t.Fatalf("reason = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestSkewOverTime moves the clock rather than forging claims.
func TestSkewOverTime(t *testing.T) {
	clock := newFakeClock()
	s := newTestService(t, clock)
	tok := mustIssue(t, s)
	steps := []struct {
		advance time.Duration
		want    Reason
	}{
		{0, ""},
		{15*time.Minute + 59*time.Second, ""},
		{2 * time.Second, ReasonExpired}, // 15 min + 61 s
	}
	for _, st := range steps {
		clock.Add(st.advance)
		_, err := s.Authenticate(bearer(tok))
		if got := ReasonOf(err); got != st.want {
			t.Fatalf("after +%v: reason %q, want %q", st.advance, got, st.want)
		}
	}

	// A token from a server whose clock runs ahead: iat in the future.
	ahead := newFakeClock()
	ahead.Add(61 * time.Second)
	s2 := newTestService(t, ahead)
	tok2 := mustIssue(t, s2)
	s2.now = func() time.Time { return ahead.Now().Add(-61 * time.Second) }
	if _, err := s2.Authenticate(bearer(tok2)); ReasonOf(err) != ReasonNotYetValid {
		t.Fatalf("61 s ahead: %v", err)
	}
	s2.now = func() time.Time { return ahead.Now().Add(-59 * time.Second) }
	if _, err := s2.Authenticate(bearer(tok2)); err != nil {
		t.Fatalf("59 s ahead: %v", err)
	}
}

// TestHugeTokenIsCheap shows a 1 MB token is refused without being read:
// constant allocations, bytes independent of its size, and fast.
func TestHugeTokenIsCheap(t *testing.T) {
	clock := newFakeClock()
	s := newTestService(t, clock)
	r := bearer(strings.Repeat("A", 1<<20))
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := s.Authenticate(r); ReasonOf(err) != ReasonTooLarge {
			t.Fatal(err)
		}
	})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const n = 1000
	start := time.Now()
	for range n {
		_, _ = s.Authenticate(r)
	}
	elapsed := time.Since(start) / n
	runtime.ReadMemStats(&after)
	perCall := (after.TotalAlloc - before.TotalAlloc) / n
	t.Logf("1 MB token: %.0f allocs, %d bytes, %v per refusal", allocs, perCall, elapsed)
	if allocs > 3 || perCall > 512 {
		t.Errorf("1 MB token cost %.0f allocs and %d bytes per call; want <= 3 and <= 512", allocs, perCall)
	}
	if elapsed > 100*time.Microsecond {
		t.Errorf("1 MB token took %v per refusal", elapsed)
	}
}

// TestJWKSWithGoJose verifies an LLST against the published JWKS with
// go-jose (and golang-jwt), neither of which the server uses to sign or
// verify.
func TestJWKSWithGoJose(t *testing.T) {
	clock := newFakeClock()
	s := newTestService(t, clock)
	mux := http.NewServeMux()
	s.Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	tok, err := s.Issue("u_abc", "acme", []string{"reader"})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(srv.URL + PathJWKS)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if cc := resp.Header.Get("Cache-Control"); cc != "public, max-age=300" {
		t.Errorf("Cache-Control = %q", cc)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 2 { // active and next
		t.Errorf("JWKS has %d keys, want 2", len(set.Keys))
	}
	jws, err := jose.ParseSignedCompact(tok.AccessToken, []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil {
		t.Fatal(err)
	}
	hdr := jws.Signatures[0].Header
	keys := set.Key(hdr.KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %q: %d keys in the JWKS", hdr.KeyID, len(keys))
	}
	if hdr.ExtraHeaders["typ"] != "llst+jwt" {
		t.Errorf("typ = %v", hdr.ExtraHeaders["typ"])
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		t.Fatalf("go-jose: %v", err)
	}
	var got Claims
	if err := json.Unmarshal(payload, &got); err != nil {
		t.Fatal(err)
	}
	now := clock.Now().Unix()
	want := Claims{Issuer: "https://logline.test", Audience: audience{"loglineos"}, Subject: "u_abc", Tenant: "acme",
		Roles: []string{"reader"}, IssuedAt: now, NotBefore: now, Expiry: now + 900, ID: tok.ID}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("claims (-want +got):\n%s", diff)
	}
	tp, err := keys[0].Thumbprint(cryptoSHA256)
	if err != nil || base64.RawURLEncoding.EncodeToString(tp) != hdr.KeyID {
		t.Errorf("kid is not the RFC 7638 thumbprint (%v)", err)
	}

	// golang-jwt, with the key go-jose parsed from the JWKS.
	parsed, err := jwt.Parse(tok.AccessToken, func(*jwt.Token) (any, error) { return keys[0].Key, nil },
		jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithTimeFunc(clock.Now),
		jwt.WithIssuer("https://logline.test"), jwt.WithAudience("loglineos"))
	if err != nil || !parsed.Valid {
		t.Fatalf("golang-jwt: %v", err)
	}
}

// TestIssuedTokensTakeTheFastPaths checks that the tokens this service
// issues are the shape the verifier's fast paths know (the header matched
// byte for byte, the claims without encoding/json), and that a header
// spelled otherwise still verifies through the general path.
func TestIssuedTokensTakeTheFastPaths(t *testing.T) {
	clock := newFakeClock()
	s := newTestService(t, clock)
	tok, err := s.Issue("u_1", "acme", []string{RoleWriter, RoleReader})
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok.AccessToken, ".")
	k := s.ring.byHeader(parts[0])
	if k == nil || k != s.ring.snapshot().active {
		t.Fatalf("the issued token's header %q is not the active key's", parts[0])
	}
	payload, err := b64.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c Claims
	if !parseClaims(string(payload), &c) {
		t.Fatalf("parseClaims refused the issued payload %s", payload)
	}
	if c.Subject != "u_1" || c.Tenant != "acme" || len(c.Roles) != 2 || c.Expiry != clock.Now().Add(15*time.Minute).Unix() {
		t.Fatalf("claims %+v", c)
	}

	// The same header with its members in another order: no fast path,
	// same verdict.
	h := `{"typ":"llst+jwt","kid":"` + k.kid + `","alg":"EdDSA"}`
	input := b64.EncodeToString([]byte(h)) + "." + parts[1]
	other := input + "." + b64.EncodeToString(ed25519.Sign(k.priv, []byte(input)))
	if s.ring.byHeader(b64.EncodeToString([]byte(h))) != nil {
		t.Fatal("a reordered header matched the fast path")
	}
	p, err := s.AuthenticateToken(other)
	if err != nil || p.Subject != "u_1" {
		t.Fatalf("reordered header: %v, %v", p, err)
	}
}
