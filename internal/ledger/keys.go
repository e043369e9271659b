package ledger

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/cockroachdb/pebble/v2/vfs"
	"golang.org/x/mod/sumdb/note"
)

// The ledger's signing key lives in ledger/key (mode 0600) in the signed-note
// private key form, PRIVATE+KEY+<name>+<hash>+<base64(0x01 || seed)>, and its
// verifier key in ledger/key.pub, <name>+<hash>+<base64(0x01 || public)>.
// The name is the ledger's origin: the first line of its checkpoints. The
// hash, eight hex digits, is the key id (kid) carried by every receipt.

// Signer signs checkpoints and receipts with the ledger's ed25519 key.
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

// NewSigner makes a Signer from a signed-note private key string.
func NewSigner(skey string) (*Signer, error) {
	ns, err := note.NewSigner(skey)
	if err != nil {
		return nil, fmt.Errorf("ledger: signing key: %w", err)
	}
	// PRIVATE+KEY+name+hash+key
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 {
		return nil, errors.New("ledger: signing key: malformed")
	}
	raw, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return nil, errors.New("ledger: signing key: not an ed25519 key")
	}
	priv := ed25519.NewKeyFromSeed(raw[1:])
	vkey, err := note.NewEd25519VerifierKey(ns.Name(), priv.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, fmt.Errorf("ledger: signing key: %w", err)
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
		return nil, fmt.Errorf("ledger: verifier key: %w", err)
	}
	parts := strings.SplitN(strings.TrimSpace(vkey), "+", 3)
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(raw) != 1+ed25519.PublicKeySize || raw[0] != 1 {
		return nil, errors.New("ledger: verifier key: not an ed25519 key")
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

// Note returns the key as a signed-note verifier, for note.Open.
func (v *Verifier) Note() note.Verifier { return v.note }

// GenerateKey creates a signing key for a ledger with the given origin and
// returns it in signed-note private and public forms.
func GenerateKey(rnd io.Reader, origin string) (skey, vkey string, err error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	return note.GenerateKey(rnd, origin)
}

// loadOrCreateKey reads ledger/key, creating it on first open.
func loadOrCreateKey(fs vfs.FS, dir, origin string, rnd io.Reader, create bool) (*Signer, error) {
	name := fs.PathJoin(dir, "key")
	b, err := readFile(fs, name)
	switch {
	case err == nil:
		return NewSigner(strings.TrimSpace(string(b)))
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("ledger: read signing key: %w", err)
	case !create:
		return nil, fmt.Errorf("ledger: no signing key in %s: %w", dir, err)
	}
	if origin == "" {
		origin = DefaultOrigin
	}
	skey, vkey, err := GenerateKey(rnd, origin)
	if err != nil {
		return nil, fmt.Errorf("ledger: generate signing key: %w", err)
	}
	if err := writeFileAtomic(fs, name, []byte(skey+"\n"), 0o600); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(fs, fs.PathJoin(dir, "key.pub"), []byte(vkey+"\n"), 0o644); err != nil {
		return nil, err
	}
	return NewSigner(skey)
}

// DefaultOrigin is the origin given to a new ledger unless Options say
// otherwise.
const DefaultOrigin = "logline.local/ledger"
