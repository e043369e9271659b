package identity

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
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

// FuzzVerifySig holds the token verifier's signature check to the standard
// library's: for any message and signature, verifySig and
// crypto/ed25519.Verify give the same answer. Seeds include a valid
// signature, the same with s+L (non-canonical s, which both must refuse),
// every single-bit flip's neighbourhood and the identity point as R.
func FuzzVerifySig(f *testing.F) {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(i * 7)
	}
	k, err := newRingKey("k", ed25519.NewKeyFromSeed(seed))
	if err != nil {
		f.Fatal(err)
	}
	msg := []byte("eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0")
	sig := ed25519.Sign(k.priv, msg)
	f.Add(msg, sig)
	f.Add(msg, sigPlusL(sig))
	flipped := bytes.Clone(sig)
	flipped[40] ^= 1
	f.Add(msg, flipped)
	identityR := make([]byte, ed25519.SignatureSize)
	identityR[0] = 1
	f.Add(msg, identityR)
	f.Add([]byte{}, make([]byte, ed25519.SignatureSize))
	f.Add(msg, sig[:63])
	f.Fuzz(func(t *testing.T, msg, sig []byte) {
		want := len(sig) == ed25519.SignatureSize && ed25519.Verify(k.pub, msg, sig)
		if got := k.verifySig(msg, sig); got != want {
			t.Fatalf("verifySig = %v, crypto/ed25519 = %v for sig %x", got, want, sig)
		}
	})
}

// sigPlusL returns sig with L, the group order, added to its scalar s: the
// same signature in a non-canonical encoding.
func sigPlusL(sig []byte) []byte {
	l := []byte{0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10}
	out := bytes.Clone(sig)
	var carry uint16
	for i := 0; i < 32; i++ {
		v := uint16(out[32+i]) + uint16(l[i]) + carry
		out[32+i], carry = byte(v), v>>8
	}
	return out
}

func TestVerifySigMatchesStdlib(t *testing.T) {
	for i := range 200 {
		seed := make([]byte, ed25519.SeedSize)
		seed[0], seed[1] = byte(i), byte(i>>8)
		k, err := newRingKey("k", ed25519.NewKeyFromSeed(seed))
		if err != nil {
			t.Fatal(err)
		}
		msg := []byte(fmt.Sprintf("header.payload-%d", i))
		sig := ed25519.Sign(k.priv, msg)
		if !k.verifySig(msg, sig) {
			t.Fatalf("key %d: a valid signature refused", i)
		}
		if k.verifySig(msg, sigPlusL(sig)) {
			t.Fatalf("key %d: a non-canonical s accepted", i)
		}
		for b := 0; b < ed25519.SignatureSize*8; b += 37 {
			bad := bytes.Clone(sig)
			bad[b/8] ^= 1 << (b % 8)
			if got, want := k.verifySig(msg, bad), ed25519.Verify(k.pub, msg, bad); got != want || got {
				t.Fatalf("key %d, bit %d flipped: verifySig %v, crypto/ed25519 %v", i, b, got, want)
			}
		}
		if k.verifySig(append(msg, '.'), sig) {
			t.Fatalf("key %d: a signature over another message accepted", i)
		}
	}
}

// FuzzParseClaims holds the claims fast path to encoding/json: whatever
// parseClaims accepts, encoding/json decodes without error to the same
// Claims (nil and empty slices told apart); whatever it refuses, it leaves
// zero.
func FuzzParseClaims(f *testing.F) {
	p, _ := json.Marshal(&Claims{Issuer: "https://logline.example", Audience: audience{"logline"}, Subject: "sa:01J",
		Tenant: "acme", Roles: []string{"writer", "app"}, IssuedAt: 1764000000, Expiry: 1764000900, ID: "01JABCDEFGHJKMNPQRSTVWXYZ0"})
	f.Add(string(p))
	f.Add(`{"iss":"a","aud":["x","y"],"roles":[],"nbf":-5,"iat":0,"exp":123456789012345678}`)
	f.Add(`{"aud":[],"roles":null}`)
	f.Add(`{"iss":"a","iss":"b"}`)
	f.Add(`{"ISS":"a"}`)
	f.Add(`{"iat":01}`)
	f.Add(`{"iat":1e3}`)
	f.Add(`{"iat":1234567890123456789}`)
	f.Add(`{"sub":"\u0041"}`)
	f.Add(`{"sub":"é"}`)
	f.Add(`{} `)
	f.Add(`{"iss":"a",}`)
	f.Add(`{}`)
	f.Fuzz(func(t *testing.T, s string) {
		var fast Claims
		if !parseClaims(s, &fast) {
			if !reflect.DeepEqual(fast, Claims{}) {
				t.Fatalf("refused %q but left %+v", s, fast)
			}
			return
		}
		var slow Claims
		if err := json.Unmarshal([]byte(s), &slow); err != nil {
			t.Fatalf("parseClaims accepted %q, encoding/json refuses it: %v", s, err)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("%q:\nparseClaims  %#v\nencoding/json %#v", s, fast, slow)
		}
	})
}
