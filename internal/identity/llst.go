package identity

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Claims is the payload of an LLST. The token, part of the API:
//
//	header  {"alg":"EdDSA","kid":"<RFC 7638 thumbprint>","typ":"llst+jwt"}
//	payload {"iss":…,"aud":…,"sub":"<LLID or sa:<id>>","tenant":…,"roles":[…],
//	         "iat":…,"nbf":…,"exp":…,"jti":"<26 chars>"}
//
// in JWS compact serialisation (RFC 7515), signed with Ed25519 (RFC 8037).
// Capabilities are not in the token: they are computed from the roles at
// each request, so a change of a tenant's role table applies at once.
type Claims struct {
	Issuer    string   `json:"iss"`
	Audience  audience `json:"aud"`
	Subject   string   `json:"sub"`
	Tenant    string   `json:"tenant"`
	Roles     []string `json:"roles"`
	IssuedAt  int64    `json:"iat"`
	NotBefore int64    `json:"nbf,omitempty"`
	Expiry    int64    `json:"exp"`
	ID        string   `json:"jti"`
}

// audience is "aud": one string, or an array of strings on input (RFC 7519
// allows both); always one string on output.
type audience []string

func (a audience) MarshalJSON() ([]byte, error) {
	if len(a) == 1 {
		return json.Marshal(a[0])
	}
	return json.Marshal([]string(a))
}

func (a *audience) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*a = audience{s}
		return nil
	}
	var ss []string
	if err := json.Unmarshal(b, &ss); err != nil {
		return err
	}
	*a = ss
	return nil
}

type jwsHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid,omitempty"`
	Typ string `json:"typ,omitempty"`
	// Fields this verifier does not implement. Present means refused,
	// rather than silently ignored (RFC 8725 §3.1, §3.10; RFC 7797 b64).
	Crit json.RawMessage `json:"crit,omitempty"`
	Jku  json.RawMessage `json:"jku,omitempty"`
	Jwk  json.RawMessage `json:"jwk,omitempty"`
	X5u  json.RawMessage `json:"x5u,omitempty"`
	X5c  json.RawMessage `json:"x5c,omitempty"`
	B64  json.RawMessage `json:"b64,omitempty"`
	Zip  json.RawMessage `json:"zip,omitempty"`
	Enc  json.RawMessage `json:"enc,omitempty"`
}

func (h *jwsHeader) extensions() bool {
	return h.Crit != nil || h.Jku != nil || h.Jwk != nil || h.X5u != nil || h.X5c != nil ||
		h.B64 != nil || h.Zip != nil || h.Enc != nil
}

const maxHeaderB64 = 1024

// b64 decodes base64url without padding and refuses non-canonical
// encodings (stray bits in the last character), so one token has one form.
var b64 = base64.RawURLEncoding.Strict()

// signLLST serialises and signs c with k.
func signLLST(k *ringKey, c *Claims) (string, error) {
	p, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	var sb strings.Builder
	sb.Grow(len(k.header) + b64.EncodedLen(len(p)) + 90)
	sb.WriteString(k.header)
	sb.WriteByte('.')
	sb.WriteString(b64.EncodeToString(p))
	sig := ed25519.Sign(k.priv, []byte(sb.String()))
	sb.WriteByte('.')
	sb.WriteString(b64.EncodeToString(sig))
	return sb.String(), nil
}

// verifier checks LLSTs against the key ring. The order of the checks is
// deliberate: size before any parsing; alg and typ from the header before
// the key is looked up; the signature before the payload is even decoded;
// the claims last.
type verifier struct {
	ring     *keyRing
	issuer   string
	audience string
	ttl      time.Duration
	skew     time.Duration
	maxBytes int
	cache    *verifiedCache // nil: no cache
}

// verified is what the signature check establishes about a token, and
// what the cache keeps: the claims and the key that signed them.
type verified struct {
	claims *Claims
	kid    string
}

// verify returns the claims of tok if it is a valid LLST at now.
func (v *verifier) verify(tok string, now time.Time) (*Claims, *Error) {
	if len(tok) > v.maxBytes {
		return nil, unauth(ReasonTooLarge, fmt.Sprintf("token longer than %d bytes", v.maxBytes))
	}
	var vd verified
	var key [sha256.Size]byte
	hit := false
	if v.cache != nil {
		key = sha256.Sum256([]byte(tok))
		vd, hit = v.cache.get(key)
	}
	if !hit {
		var err *Error
		vd, err = v.verifySignature(tok, now)
		if err != nil {
			return nil, err
		}
		if err := v.checkStatic(vd.claims); err != nil {
			return nil, err
		}
	} else if v.ring.lookup(vd.kid, now) == nil {
		// The key left the ring since the token was cached.
		return nil, unauth(ReasonUnknownKID, "")
	}
	if err := v.checkTime(vd.claims, now); err != nil {
		return nil, err
	}
	if v.cache != nil && !hit {
		v.cache.put(key, vd, time.Unix(vd.claims.Expiry, 0).Add(v.skew))
	}
	return vd.claims, nil
}

// remember puts a token this process issued in the cache.
func (v *verifier) remember(tok string, vd verified) {
	if v.cache != nil && len(tok) <= v.maxBytes {
		v.cache.put(sha256.Sum256([]byte(tok)), vd, time.Unix(vd.claims.Expiry, 0).Add(v.skew))
	}
}

// verifySignature parses the header, finds the key and checks the
// signature, then decodes the payload.
func (v *verifier) verifySignature(tok string, now time.Time) (verified, *Error) {
	dot1 := strings.IndexByte(tok, '.')
	if dot1 < 0 {
		return verified{}, unauth(ReasonMalformed, "not a JWS compact serialisation")
	}
	dot2 := dot1 + 1 + strings.IndexByte(tok[dot1+1:], '.')
	if dot2 <= dot1 || strings.IndexByte(tok[dot2+1:], '.') >= 0 {
		return verified{}, unauth(ReasonMalformed, "not a JWS compact serialisation")
	}
	hb64, pb64, sb64 := tok[:dot1], tok[dot1+1:dot2], tok[dot2+1:]
	if len(hb64) == 0 || len(hb64) > maxHeaderB64 || len(pb64) == 0 {
		return verified{}, unauth(ReasonMalformed, "bad header or payload length")
	}
	k, herr := v.headerKey(hb64, now)
	if herr != nil {
		return verified{}, herr
	}
	var sbuf [ed25519.SignatureSize]byte
	if b64.DecodedLen(len(sb64)) != len(sbuf) {
		if _, err := b64.DecodeString(sb64); err != nil {
			return verified{}, unauth(ReasonMalformed, "signature is not base64url")
		}
		return verified{}, unauth(ReasonBadSignature, "")
	}
	n, err := b64.Decode(sbuf[:], []byte(sb64))
	if err != nil {
		return verified{}, unauth(ReasonMalformed, "signature is not base64url")
	}
	sig := sbuf[:n]
	if !k.verifySig([]byte(tok[:dot2]), sig) {
		return verified{}, unauth(ReasonBadSignature, "")
	}
	pb, err := b64.DecodeString(pb64)
	if err != nil {
		return verified{}, unauth(ReasonMalformed, "payload is not base64url")
	}
	c := new(Claims)
	if !parseClaims(string(pb), c) {
		if err := json.Unmarshal(pb, c); err != nil {
			return verified{}, unauth(ReasonMalformed, "payload is not a claims object")
		}
	}
	return verified{claims: c, kid: k.kid}, nil
}

// headerKey checks the header and returns the key it names. A header
// byte for byte the one signLLST writes for a key of the ring (alg EdDSA,
// that kid, typ llst+jwt, nothing else) is known without decoding it.
func (v *verifier) headerKey(hb64 string, now time.Time) (*ringKey, *Error) {
	if k := v.ring.byHeader(hb64); k != nil {
		if !k.canVerify(now) {
			return nil, unauth(ReasonUnknownKID, "")
		}
		return k, nil
	}
	hb, err := b64.DecodeString(hb64)
	if err != nil {
		return nil, unauth(ReasonMalformed, "header is not base64url")
	}
	var h jwsHeader
	if err := json.Unmarshal(hb, &h); err != nil {
		return nil, unauth(ReasonMalformed, "header is not a JSON object")
	}
	if h.Alg != llstAlg {
		return nil, unauth(ReasonBadAlg, "only EdDSA is accepted")
	}
	if !strings.EqualFold(h.Typ, llstTyp) {
		return nil, unauth(ReasonBadType, "typ must be "+llstTyp)
	}
	if h.extensions() {
		return nil, unauth(ReasonMalformed, "unsupported header parameter")
	}
	k := v.ring.lookup(h.Kid, now)
	if k == nil {
		return nil, unauth(ReasonUnknownKID, "")
	}
	return k, nil
}

// llstHeader is the encoded header signLLST writes for kid.
func llstHeader(kid string) (string, error) {
	h, err := json.Marshal(jwsHeader{Alg: llstAlg, Kid: kid, Typ: llstTyp})
	if err != nil {
		return "", err
	}
	return b64.EncodeToString(h), nil
}

// checkStatic checks the claims that do not depend on the time.
func (v *verifier) checkStatic(c *Claims) *Error {
	if c.Issuer != v.issuer {
		return unauth(ReasonWrongIssuer, "")
	}
	if len(c.Audience) == 0 || !containsStr(c.Audience, v.audience) {
		return unauth(ReasonWrongAud, "")
	}
	if c.Subject == "" || c.Tenant == "" || c.ID == "" || c.IssuedAt == 0 || c.Expiry == 0 {
		return unauth(ReasonMalformed, "missing sub, tenant, jti, iat or exp")
	}
	if c.Expiry < c.IssuedAt || time.Duration(c.Expiry-c.IssuedAt)*time.Second > v.ttl {
		return unauth(ReasonBadLifetime, "")
	}
	return nil
}

// checkTime checks exp, nbf and iat against now, each with the skew.
func (v *verifier) checkTime(c *Claims, now time.Time) *Error {
	if now.After(time.Unix(c.Expiry, 0).Add(v.skew)) {
		return unauth(ReasonExpired, "")
	}
	late := now.Add(v.skew)
	if c.NotBefore != 0 && late.Before(time.Unix(c.NotBefore, 0)) {
		return unauth(ReasonNotYetValid, "nbf is in the future")
	}
	if late.Before(time.Unix(c.IssuedAt, 0)) {
		return unauth(ReasonNotYetValid, "iat is in the future")
	}
	return nil
}

func containsStr(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// verifiedCache remembers tokens whose signature and static claims were
// checked, or which this process signed, keyed by the SHA-256 of the whole
// token, so a client reusing its token for 15 minutes pays for at most one
// Ed25519 verification, not one per request. Time, key and revocation checks are still made on every use.
// Only valid tokens enter, so garbage cannot fill it; it is bounded and
// sharded, and a full shard drops an arbitrary entry.
type verifiedCache struct {
	shards [16]cacheShard
	max    int // per shard
	now    func() time.Time
}

type cacheShard struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]cacheEntry
}

type cacheEntry struct {
	v    verified
	dead time.Time // past this the token is expired anyway
}

func newVerifiedCache(size int, now func() time.Time) *verifiedCache {
	c := &verifiedCache{max: max(size/16, 1), now: now}
	for i := range c.shards {
		c.shards[i].m = make(map[[sha256.Size]byte]cacheEntry)
	}
	return c
}

func (c *verifiedCache) get(k [sha256.Size]byte) (verified, bool) {
	s := &c.shards[k[0]&15]
	s.mu.Lock()
	e, ok := s.m[k]
	s.mu.Unlock()
	return e.v, ok
}

func (c *verifiedCache) put(k [sha256.Size]byte, v verified, dead time.Time) {
	s := &c.shards[k[0]&15]
	now := c.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= c.max {
		for kk, e := range s.m {
			if now.After(e.dead) {
				delete(s.m, kk)
			}
		}
		for kk := range s.m {
			if len(s.m) < c.max {
				break
			}
			delete(s.m, kk)
		}
	}
	s.m[k] = cacheEntry{v: v, dead: dead}
}
