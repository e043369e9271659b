// Package webhook signs and verifies webhooks as the Standard Webhooks
// specification (https://www.standardwebhooks.com) describes them. The
// server signs its deliveries with it and verifies webhooks it receives; an
// application that receives LogLineOS webhooks can verify them with it (or
// with any other implementation of the specification).
//
// A webhook is a POST whose body is signed together with two headers:
//
//	webhook-id:        msg_01JD...        (unique per event; the same on every retry)
//	webhook-timestamp: 1733400000         (Unix seconds of this attempt)
//	webhook-signature: v1,K5oZ... v1a,hnO3...
//
// The signed content is "<webhook-id>.<webhook-timestamp>.<body>". A "v1,"
// signature is base64(HMAC-SHA256(secret, content)) with the endpoint's
// symmetric secret, written "whsec_" + base64(key). A "v1a," signature is
// base64(Ed25519(private key, content)); its keys are written "whsk_" +
// base64(64-byte private key) and "whpk_" + base64(32-byte public key).
// The signature header may carry several signatures, separated by spaces
// (during a secret's rotation); one that verifies is enough.
package webhook

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The header names of the specification.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// DefaultTolerance is how far a webhook's timestamp may be from the
// receiver's clock, either way, before Verify refuses it as a replay.
const DefaultTolerance = 5 * time.Minute

// Errors of Verify and of parsing keys, matched with errors.Is.
var (
	ErrMissingHeader = errors.New("webhook: missing header")
	ErrBadTimestamp  = errors.New("webhook: timestamp outside the tolerance")
	ErrNoSignature   = errors.New("webhook: no signature verifies")
	ErrBadKey        = errors.New("webhook: malformed key")
)

const (
	secretPrefix  = "whsec_"
	privatePrefix = "whsk_"
	publicPrefix  = "whpk_"
)

// Secret is an endpoint's symmetric key.
type Secret []byte

// NewSecret returns a random 24-byte secret.
func NewSecret() Secret {
	b := make([]byte, 24)
	rand.Read(b)
	return b
}

// ParseSecret parses "whsec_<base64>". A secret without the prefix is
// accepted too, as other implementations do.
func ParseSecret(s string) (Secret, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, secretPrefix))
	if err != nil || len(b) < 16 || len(b) > 64 {
		return nil, fmt.Errorf("%w: a secret is whsec_ followed by 16 to 64 bytes in base64", ErrBadKey)
	}
	return b, nil
}

// String returns the secret as "whsec_<base64>".
func (s Secret) String() string { return secretPrefix + base64.StdEncoding.EncodeToString(s) }

// ParsePrivateKey parses "whsk_<base64 of the 64-byte ed25519 private key>".
func ParsePrivateKey(s string) (ed25519.PrivateKey, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, privatePrefix))
	if err != nil || len(b) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%w: a signing key is whsk_ followed by a 64-byte ed25519 private key in base64", ErrBadKey)
	}
	return ed25519.PrivateKey(b), nil
}

// ParsePublicKey parses "whpk_<base64 of the 32-byte ed25519 public key>".
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, publicPrefix))
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: a public key is whpk_ followed by a 32-byte ed25519 public key in base64", ErrBadKey)
	}
	return ed25519.PublicKey(b), nil
}

// FormatPrivateKey writes k as "whsk_<base64>".
func FormatPrivateKey(k ed25519.PrivateKey) string {
	return privatePrefix + base64.StdEncoding.EncodeToString(k)
}

// FormatPublicKey writes k as "whpk_<base64>".
func FormatPublicKey(k ed25519.PublicKey) string {
	return publicPrefix + base64.StdEncoding.EncodeToString(k)
}

func content(id string, ts int64, body []byte) []byte {
	c := make([]byte, 0, len(id)+len(body)+24)
	c = append(c, id...)
	c = append(c, '.')
	c = strconv.AppendInt(c, ts, 10)
	c = append(c, '.')
	return append(c, body...)
}

// Sign returns the "v1," signature of a webhook with the symmetric secret.
func Sign(secret Secret, id string, ts time.Time, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(content(id, ts.Unix(), body))
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// SignEd25519 returns the "v1a," signature of a webhook with a private key.
func SignEd25519(key ed25519.PrivateKey, id string, ts time.Time, body []byte) string {
	return "v1a," + base64.StdEncoding.EncodeToString(ed25519.Sign(key, content(id, ts.Unix(), body)))
}

// SetHeaders sets the three headers of a webhook on h; signatures are
// joined with spaces.
func SetHeaders(h http.Header, id string, ts time.Time, signatures ...string) {
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(HeaderSignature, strings.Join(signatures, " "))
}

// Verifier checks webhooks received from one sender.
type Verifier struct {
	// Secrets are the symmetric secrets "v1," signatures may be made with
	// (several during a rotation).
	Secrets []Secret
	// PublicKeys are the keys "v1a," signatures may be made with.
	PublicKeys []ed25519.PublicKey
	// Tolerance bounds |now - webhook-timestamp| (DefaultTolerance).
	Tolerance time.Duration
}

// Verify checks the headers and body of a webhook received at now, and
// returns its webhook-id. It refuses a missing header (ErrMissingHeader), a
// timestamp outside the tolerance (ErrBadTimestamp) and a body no signature
// verifies (ErrNoSignature). Replays within the tolerance are the caller's
// business: remember the ids seen.
func (v *Verifier) Verify(h http.Header, body []byte, now time.Time) (string, error) {
	id, tsRaw, sigs := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	for name, val := range map[string]string{HeaderID: id, HeaderTimestamp: tsRaw, HeaderSignature: sigs} {
		if val == "" {
			return "", fmt.Errorf("%w %s", ErrMissingHeader, name)
		}
	}
	ts, err := strconv.ParseInt(tsRaw, 10, 64)
	if err != nil {
		return id, fmt.Errorf("%w: %s is not Unix seconds", ErrBadTimestamp, HeaderTimestamp)
	}
	tol := v.Tolerance
	if tol <= 0 {
		tol = DefaultTolerance
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tol || d < -tol {
		return id, fmt.Errorf("%w: %s is %s from this server's clock (at most %s)", ErrBadTimestamp, HeaderTimestamp, d.Round(time.Second), tol)
	}
	c := content(id, ts, body)
	for _, sig := range strings.Fields(sigs) {
		version, b64, ok := strings.Cut(sig, ",")
		if !ok {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			continue
		}
		switch version {
		case "v1":
			for _, s := range v.Secrets {
				m := hmac.New(sha256.New, s)
				m.Write(c)
				if hmac.Equal(m.Sum(nil), raw) {
					return id, nil
				}
			}
		case "v1a":
			for _, k := range v.PublicKeys {
				if ed25519.Verify(k, c, raw) {
					return id, nil
				}
			}
		}
	}
	return id, ErrNoSignature
}
