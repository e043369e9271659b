package ledgerfmt

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// A ledger's key is an ed25519 key in signed-note form. The private key is
// PRIVATE+KEY+<name>+<hash>+<base64(0x01 || seed)>, the verifier key
// <name>+<hash>+<base64(0x01 || public)>. The name is the ledger's origin:
// the first line of its checkpoints. The hash, eight hex digits, is the key
// id (kid) carried by every receipt.

// Signer signs checkpoints and receipts with a ledger's ed25519 key.
type Signer struct {
	origin string
	kid    string
	priv   ed25519.PrivateKey
	note   note.Signer
	vkey   string
}

// Origin returns the ledger's origin (the key name).
func (s *Signer) Origin() string { return s.origin }

// KeyID returns the key id: the signed-note key hash in hex.
func (s *Signer) KeyID() string { return s.kid }

// VerifierKey returns the public key in signed-note form (name+hash+key).
func (s *Signer) VerifierKey() string { return s.vkey }

// Sign signs msg with ed25519.
func (s *Signer) Sign(msg []byte) []byte { return ed25519.Sign(s.priv, msg) }

// DeriveSecret returns SHA-256(label || seed), seed being the private key's
// 32-byte seed: a secret only the key's holder can compute, for keyed
// hashes. Each use should have its own label.
func (s *Signer) DeriveSecret(label string) [sha256.Size]byte {
	h := sha256.New()
	h.Write([]byte(label))
	h.Write(s.priv.Seed())
	return [sha256.Size]byte(h.Sum(nil))
}

// NewSigner makes a Signer from a signed-note private key string.
func NewSigner(skey string) (*Signer, error) {
	ns, err := note.NewSigner(skey)
	if err != nil {
		return nil, fmt.Errorf("ledgerfmt: signing key: %w", err)
	}
	// PRIVATE+KEY+name+hash+key
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 {
		return nil, errors.New("ledgerfmt: signing key: malformed")
	}
	raw, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return nil, errors.New("ledgerfmt: signing key: not an ed25519 key")
	}
	priv := ed25519.NewKeyFromSeed(raw[1:])
	vkey, err := note.NewEd25519VerifierKey(ns.Name(), priv.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, fmt.Errorf("ledgerfmt: signing key: %w", err)
	}
	return &Signer{
		origin: ns.Name(),
		kid:    fmt.Sprintf("%08x", ns.KeyHash()),
		priv:   priv,
		note:   ns,
		vkey:   vkey,
	}, nil
}

// Verifier checks receipts and checkpoints against a ledger's public key.
type Verifier struct {
	origin string
	kid    string
	pub    ed25519.PublicKey
	note   note.Verifier
}

// NewVerifier parses a verifier key in signed-note form (name+hash+key), as
// printed by `logline ledger key`.
func NewVerifier(vkey string) (*Verifier, error) {
	nv, err := note.NewVerifier(strings.TrimSpace(vkey))
	if err != nil {
		return nil, &Error{Err: ErrBadVerifierKey, Reason: err.Error()}
	}
	parts := strings.SplitN(strings.TrimSpace(vkey), "+", 3)
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(raw) != 1+ed25519.PublicKeySize || raw[0] != 1 {
		return nil, &Error{Err: ErrBadVerifierKey, Reason: "not an ed25519 key"}
	}
	return &Verifier{
		origin: nv.Name(),
		kid:    fmt.Sprintf("%08x", nv.KeyHash()),
		pub:    ed25519.PublicKey(raw[1:]),
		note:   nv,
	}, nil
}

// Origin returns the ledger origin the key belongs to.
func (v *Verifier) Origin() string { return v.origin }

// KeyID returns the key id.
func (v *Verifier) KeyID() string { return v.kid }

// GenerateKey creates a signing key for a ledger with the given origin and
// returns it in signed-note private and public forms. A nil rnd means
// crypto/rand.
func GenerateKey(rnd io.Reader, origin string) (skey, vkey string, err error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	return note.GenerateKey(rnd, origin)
}
