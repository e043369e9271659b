package identity

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// FuzzAuthenticateToken feeds arbitrary bearer tokens to the verifier. It
// must never panic, and whatever it accepts must also verify with go-jose
// against the published JWKS and carry this server's iss and aud: the
// verifier may be stricter than go-jose, never looser.
func FuzzAuthenticateToken(f *testing.F) {
	clock := newFakeClock()
	s := newTestService(f, clock)
	active := s.ring.snapshot().active
	good := mustIssue(f, s)
	f.Add(good)
	f.Add(strings.ToUpper(good))
	f.Add(good[:len(good)-3])
	f.Add(rawJWS(f, active.priv, map[string]any{"alg": "EdDSA", "kid": active.kid, "typ": "llst+jwt"}, claimsAt(clock.Now())))
	f.Add(rawJWS(f, active.priv, map[string]any{"alg": "EdDSA", "kid": active.kid, "typ": "llst+jwt", "crit": []string{"x"}}, claimsAt(clock.Now())))
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.")
	f.Add("a.b.c")
	f.Add("..")
	jwks, _ := s.JWKS()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(jwks, &set); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		p, err := s.AuthenticateToken(tok)
		if err != nil {
			if p != nil {
				t.Fatal("a principal with an error")
			}
			if ReasonOf(err) == "" {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		jws, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.EdDSA})
		if err != nil {
			t.Fatalf("accepted a token go-jose cannot parse: %v", err)
		}
		keys := set.Key(jws.Signatures[0].Header.KeyID)
		if len(keys) != 1 {
			t.Fatalf("accepted a kid not in the JWKS")
		}
		payload, err := jws.Verify(keys[0])
		if err != nil {
			t.Fatalf("accepted a token go-jose refuses: %v", err)
		}
		var c Claims
		if err := json.Unmarshal(payload, &c); err != nil || c.Issuer != "https://logline.test" || !containsStr(c.Audience, "loglineos") {
			t.Fatalf("accepted claims %+v (%v)", c, err)
		}
		if time.Unix(c.Expiry, 0).Add(DefaultSkew).Before(clock.Now()) {
			t.Fatal("accepted an expired token")
		}
	})
}

// FuzzTokenEndpoint feeds arbitrary bodies to POST /auth/token: never a
// panic, never a token, always a typed refusal.
func FuzzTokenEndpoint(f *testing.F) {
	s := newTestService(f, newFakeClock())
	f.Add("application/x-www-form-urlencoded", "grant_type=client_credentials&client_id=a&client_secret=b")
	f.Add("application/json", `{"grant_type":"authorization_code","code":"x","code_verifier":"y","redirect_uri":"http://127.0.0.1/"}`)
	f.Add("application/json", `{"grant_type":"client_credentials","client_id":"a","client_secret":"b"}`)
	f.Add("multipart/form-data; boundary=x", "--x--")
	f.Fuzz(func(t *testing.T, ct, body string) {
		r := httptest.NewRequest("POST", PathToken, strings.NewReader(body))
		r.Header.Set("Content-Type", ct)
		w := httptest.NewRecorder()
		s.TokenHandler().ServeHTTP(w, r)
		if w.Code == http.StatusOK {
			t.Fatalf("a token for %q %q", ct, body)
		}
		if w.Header().Get("Content-Type") != "application/problem+json" {
			t.Fatalf("status %d without a problem", w.Code)
		}
	})
}
