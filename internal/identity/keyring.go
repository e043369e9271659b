package identity

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	voied25519 "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// Key states. A key is created "next" (published in the JWKS, not yet
// signing, so verifiers that cache the JWKS learn it before it is used),
// becomes "active" (signs and verifies) at a rotation, then "verify_only"
// for the overlap, then is retired: deleted from memory, disk and JWKS.
type keyState string

const (
	keyNext       keyState = "next"
	keyActive     keyState = "active"
	keyVerifyOnly keyState = "verify_only"
)

// The key directory, part of the on-disk format:
//
//	<KeyDir>/ring.json      the manifest: which keys exist and their states
//	<KeyDir>/<kid>.key      one private key, mode 0600, immutable once written
//
// ring.json:
//
//	{"version":1,"keys":[{"kid":"…","state":"active","created":"…",
//	  "activated":"…","deactivated":"…","verify_until":"…"}, …]}
//
// <kid>.key:
//
//	{"kid":"…","alg":"EdDSA","crv":"Ed25519","seed":"<base64url, 32 bytes>","created":"…"}
//
// The kid is the RFC 7638 thumbprint of the public key (base64url SHA-256),
// so a key file cannot be swapped under another key's name unnoticed. Keys
// listed in the manifest are the ring; other files are ignored. Key files
// readable by group or others are refused, as ssh refuses them.
const (
	ringFile       = "ring.json"
	ringVersion    = 1
	keyFileSuffix  = ".key"
	keyFilePerm    = 0o600
	manifestPerm   = 0o600
	keyDirPerm     = 0o700
	llstAlg        = "EdDSA"
	llstTyp        = "llst+jwt"
	receiptCreate  = "keys.create"
	receiptRotate  = "keys.rotate"
	receiptRetire  = "keys.retire"
	rotateManual   = "manual"
	rotateSchedule = "scheduled"
	// rotateCompromised replaces the active and the next key at once, with
	// no overlap: every token signed before stops verifying.
	rotateCompromised = "compromised"
)

type ringKey struct {
	kid         string
	priv        ed25519.PrivateKey
	pub         ed25519.PublicKey
	vk          *voied25519.ExpandedPublicKey // pub, decompressed and precomputed for verification
	header      string                        // the encoded JWS header of the tokens it signs
	state       keyState
	created     time.Time
	activated   time.Time
	deactivated time.Time
	verifyUntil time.Time
}

// ringSnapshot is immutable; readers load it without a lock.
type ringSnapshot struct {
	active *ringKey
	keys   []*ringKey          // every key, next included
	verify map[string]*ringKey // the keys that may verify: active and verify_only
}

// canVerify reports whether k may verify a token at now.
func (k *ringKey) canVerify(now time.Time) bool {
	switch k.state {
	case keyActive:
		return true
	case keyVerifyOnly:
		return now.Before(k.verifyUntil)
	}
	return false
}

// published reports whether k is in the JWKS at now.
func (k *ringKey) published(now time.Time) bool {
	return k.state != keyVerifyOnly || now.Before(k.verifyUntil)
}

// keyRing holds the signing keys. Mutations are serialised by mu and
// publish a new snapshot; verification only loads the snapshot.
type keyRing struct {
	mu       sync.Mutex
	snap     atomic.Pointer[ringSnapshot]
	dir      string // "" in memory
	overlap  time.Duration
	every    time.Duration
	now      func() time.Time
	rand     io.Reader
	receipts ReceiptRecorder
}

type ringManifest struct {
	Version int            `json:"version"`
	Keys    []manifestItem `json:"keys"`
}

type manifestItem struct {
	KID         string    `json:"kid"`
	State       keyState  `json:"state"`
	Created     time.Time `json:"created"`
	Activated   time.Time `json:"activated,omitzero"`
	Deactivated time.Time `json:"deactivated,omitzero"`
	VerifyUntil time.Time `json:"verify_until,omitzero"`
}

type keyFile struct {
	KID     string    `json:"kid"`
	Alg     string    `json:"alg"`
	Crv     string    `json:"crv"`
	Seed    string    `json:"seed"`
	Created time.Time `json:"created"`
}

// thumbprint is the RFC 7638 JWK thumbprint of an Ed25519 public key.
func thumbprint(pub ed25519.PublicKey) string {
	x := base64.RawURLEncoding.EncodeToString(pub)
	sum := sha256.Sum256([]byte(`{"crv":"Ed25519","kty":"OKP","x":"` + x + `"}`))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func openKeyRing(ctx context.Context, c Config) (*keyRing, error) {
	r := &keyRing{dir: c.KeyDir, overlap: c.Overlap, every: c.RotateEvery, now: c.Now, rand: c.Rand, receipts: c.Receipts}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dir != "" {
		keys, err := r.load()
		if err != nil {
			return nil, err
		}
		if keys != nil {
			r.publish(keys)
			return r, nil
		}
	}
	now := r.now()
	active, err := r.generate(now)
	if err != nil {
		return nil, err
	}
	active.state, active.activated = keyActive, now
	next, err := r.generate(now)
	if err != nil {
		return nil, err
	}
	keys := []*ringKey{active, next}
	if err := r.persist(keys, active, next); err != nil {
		return nil, err
	}
	if err := r.record(ctx, receiptCreate, map[string]any{"kid": active.kid, "next_kid": next.kid, "alg": llstAlg, "at": now}); err != nil {
		r.unpersist(nil, active, next)
		return nil, err
	}
	r.publish(keys)
	return r, nil
}

func (r *keyRing) generate(now time.Time) (*ringKey, error) {
	pub, priv, err := ed25519.GenerateKey(r.rand)
	if err != nil {
		return nil, fmt.Errorf("identity: generate key: %w", err)
	}
	k, err := newRingKey(thumbprint(pub), priv)
	if err != nil {
		return nil, err
	}
	k.state, k.created = keyNext, now.UTC()
	return k, nil
}

// newRingKey expands priv's public key for verification.
func newRingKey(kid string, priv ed25519.PrivateKey) (*ringKey, error) {
	pub := priv.Public().(ed25519.PublicKey)
	vk, err := voied25519.NewExpandedPublicKey(voied25519.PublicKey(pub))
	if err != nil {
		return nil, fmt.Errorf("identity: key %s: %w", kid, err)
	}
	header, err := llstHeader(kid)
	if err != nil {
		return nil, err
	}
	return &ringKey{kid: kid, priv: priv, pub: pub, vk: vk, header: header}, nil
}

// verifyOpts gives the signature check exactly crypto/ed25519's rules
// (cofactorless, canonical s); see verifySig.
var verifyOpts = &voied25519.Options{Verify: voied25519.VerifyOptionsStdLib}

// verifySig reports whether sig is k's signature of msg. It accepts exactly
// what crypto/ed25519.Verify accepts (a differential fuzz test holds it to
// that) in about half the time, with the key decompressed once per key and
// the vectorised curve arithmetic of curve25519-voi.
func (k *ringKey) verifySig(msg, sig []byte) bool {
	return len(sig) == ed25519.SignatureSize && voied25519.VerifyExpandedWithOptions(k.vk, msg, sig, verifyOpts)
}

func (r *keyRing) publish(keys []*ringKey) {
	s := &ringSnapshot{keys: keys, verify: map[string]*ringKey{}}
	for _, k := range keys {
		switch k.state {
		case keyActive:
			s.active = k
			s.verify[k.kid] = k
		case keyVerifyOnly:
			s.verify[k.kid] = k
		}
	}
	r.snap.Store(s)
}

func (r *keyRing) snapshot() *ringSnapshot { return r.snap.Load() }

// byHeader returns the key of the ring (in whatever state) whose tokens
// carry exactly the encoded header hb64, or nil.
func (r *keyRing) byHeader(hb64 string) *ringKey {
	for _, k := range r.snap.Load().keys {
		if k.header == hb64 {
			return k
		}
	}
	return nil
}

// lookup returns the key named kid if it may verify at now. The kid is
// only ever a map key: it never reaches a path, a URL or a query.
func (r *keyRing) lookup(kid string, now time.Time) *ringKey {
	k := r.snap.Load().verify[kid]
	if k == nil || !k.canVerify(now) {
		return nil
	}
	return k
}

func (r *keyRing) record(ctx context.Context, op string, fields map[string]any) error {
	if r.receipts == nil {
		return nil
	}
	if err := r.receipts.Record(ctx, op, fields); err != nil {
		return fmt.Errorf("identity: record %s receipt: %w", op, err)
	}
	return nil
}

// rotate makes the next key active, the active key verify-only for the
// overlap, and creates a new next key. The change is written to disk, then
// reported to the receipt recorder, then made visible; if the receipt
// cannot be recorded the disk is put back and nothing changes.
func (r *keyRing) rotate(ctx context.Context, reason string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rotateLocked(ctx, reason)
}

func (r *keyRing) rotateLocked(ctx context.Context, reason string) (string, error) {
	now := r.now()
	old := r.snap.Load()
	var keys []*ringKey
	var next *ringKey
	var created []*ringKey
	overlap := r.overlap
	compromised := reason == rotateCompromised
	if compromised {
		overlap = 0
	}
	for _, k := range old.keys {
		c := *k
		switch {
		case k.state == keyActive:
			c.state, c.deactivated, c.verifyUntil = keyVerifyOnly, now, now.Add(overlap)
		case k.state == keyNext && compromised:
			// Kept beside the active key, so leaked with it: never used.
			c.state, c.deactivated, c.verifyUntil = keyVerifyOnly, now, now
		case k.state == keyNext:
			c.state, c.activated = keyActive, now
			next = &c
		case k.state == keyVerifyOnly && compromised:
			c.verifyUntil = now // leaked too: the overlap ends now
		}
		keys = append(keys, &c)
	}
	if next == nil { // a ring without a next key: promote a fresh one
		k, err := r.generate(now)
		if err != nil {
			return "", err
		}
		k.state, k.activated = keyActive, now
		keys = append(keys, k)
		created = append(created, k)
		next = k
	}
	fresh, err := r.generate(now)
	if err != nil {
		return "", err
	}
	keys = append(keys, fresh)
	created = append(created, fresh)
	if err := r.persist(keys, created...); err != nil {
		return "", err
	}
	err = r.record(ctx, receiptRotate, map[string]any{
		"reason":       reason,
		"kid":          next.kid,
		"previous_kid": old.active.kid,
		"next_kid":     fresh.kid,
		"verify_until": now.Add(overlap),
		"at":           now,
	})
	if err != nil {
		r.unpersist(old.keys, created...)
		return "", err
	}
	r.publish(keys)
	return next.kid, nil
}

// due reports whether maintain has work now: a key to retire or a
// rotation to make.
func (r *keyRing) due() bool {
	now := r.now()
	snap := r.snap.Load()
	for _, k := range snap.keys {
		if k.state == keyVerifyOnly && !now.Before(k.verifyUntil) {
			return true
		}
	}
	return !now.Before(snap.active.activated.Add(r.every))
}

// maintain retires the verify-only keys whose overlap is over and rotates
// when the active key is older than RotateEvery.
func (r *keyRing) maintain(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	old := r.snap.Load()
	var keep, gone []*ringKey
	for _, k := range old.keys {
		if k.state == keyVerifyOnly && !now.Before(k.verifyUntil) {
			gone = append(gone, k)
			continue
		}
		keep = append(keep, k)
	}
	if len(gone) > 0 {
		kids := make([]string, len(gone))
		for i, k := range gone {
			kids[i] = k.kid
		}
		if err := r.record(ctx, receiptRetire, map[string]any{"kids": kids, "at": now}); err != nil {
			return err
		}
		if err := r.persist(keep); err != nil {
			return err
		}
		r.removeKeyFiles(gone)
		r.publish(keep)
	}
	if !now.Before(r.snap.Load().active.activated.Add(r.every)) {
		if _, err := r.rotateLocked(ctx, rotateSchedule); err != nil {
			return err
		}
	}
	return nil
}

// persist writes the key files of created and then the manifest of keys.
func (r *keyRing) persist(keys []*ringKey, created ...*ringKey) error {
	if r.dir == "" {
		return nil
	}
	for _, k := range created {
		kf := keyFile{KID: k.kid, Alg: llstAlg, Crv: "Ed25519", Seed: base64.RawURLEncoding.EncodeToString(k.priv.Seed()), Created: k.created}
		data, err := json.Marshal(kf)
		if err != nil {
			return err
		}
		if err := writeFileAtomic(r.dir, k.kid+keyFileSuffix, data, keyFilePerm); err != nil {
			return fmt.Errorf("identity: write key %s: %w", k.kid, err)
		}
	}
	m := ringManifest{Version: ringVersion}
	for _, k := range keys {
		m.Keys = append(m.Keys, manifestItem{KID: k.kid, State: k.state, Created: k.created,
			Activated: k.activated, Deactivated: k.deactivated, VerifyUntil: k.verifyUntil})
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(r.dir, ringFile, data, manifestPerm); err != nil {
		return fmt.Errorf("identity: write key manifest: %w", err)
	}
	return nil
}

// unpersist undoes persist: the manifest of prev (if any) is rewritten and
// the key files of created removed. Best effort: it runs after a failure.
func (r *keyRing) unpersist(prev []*ringKey, created ...*ringKey) {
	if r.dir == "" {
		return
	}
	if prev != nil {
		_ = r.persist(prev)
	} else {
		_ = os.Remove(filepath.Join(r.dir, ringFile))
	}
	r.removeKeyFiles(created)
}

func (r *keyRing) removeKeyFiles(keys []*ringKey) {
	if r.dir == "" {
		return
	}
	for _, k := range keys {
		if safeName(k.kid) {
			_ = os.Remove(filepath.Join(r.dir, k.kid+keyFileSuffix))
		}
	}
}

// load reads the ring from r.dir; nil, nil when there is none yet.
func (r *keyRing) load() ([]*ringKey, error) {
	if err := os.MkdirAll(r.dir, keyDirPerm); err != nil {
		return nil, fmt.Errorf("identity: key dir: %w", err)
	}
	data, err := os.ReadFile(filepath.Join(r.dir, ringFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("identity: read key manifest: %w", err)
	}
	var m ringManifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("identity: key manifest: %w", err)
	}
	if m.Version != ringVersion {
		return nil, fmt.Errorf("identity: key manifest version %d, want %d", m.Version, ringVersion)
	}
	var keys []*ringKey
	actives := 0
	for _, it := range m.Keys {
		if !safeName(it.KID) {
			return nil, fmt.Errorf("identity: key manifest: bad kid %q", it.KID)
		}
		switch it.State {
		case keyActive:
			actives++
		case keyNext, keyVerifyOnly:
		default:
			return nil, fmt.Errorf("identity: key %s: unknown state %q", it.KID, it.State)
		}
		k, err := r.loadKey(it.KID)
		if err != nil {
			return nil, err
		}
		k.state, k.created, k.activated, k.deactivated, k.verifyUntil = it.State, it.Created, it.Activated, it.Deactivated, it.VerifyUntil
		keys = append(keys, k)
	}
	if actives != 1 {
		return nil, fmt.Errorf("identity: key manifest has %d active keys, want 1", actives)
	}
	return keys, nil
}

func (r *keyRing) loadKey(kid string) (*ringKey, error) {
	name := filepath.Join(r.dir, kid+keyFileSuffix)
	st, err := os.Stat(name)
	if err != nil {
		return nil, fmt.Errorf("identity: key %s: %w", kid, err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("identity: key file %s has mode %v; it must not be readable by group or others (chmod 600)", name, st.Mode().Perm())
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("identity: key %s: %w", kid, err)
	}
	var kf keyFile
	if err := json.Unmarshal(data, &kf); err != nil {
		return nil, fmt.Errorf("identity: key %s: %w", kid, err)
	}
	seed, err := base64.RawURLEncoding.DecodeString(kf.Seed)
	if err != nil || len(seed) != ed25519.SeedSize || kf.Alg != llstAlg {
		return nil, fmt.Errorf("identity: key %s: not an Ed25519 seed", kid)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	if thumbprint(priv.Public().(ed25519.PublicKey)) != kid || kf.KID != kid {
		return nil, fmt.Errorf("identity: key %s: file holds another key", kid)
	}
	return newRingKey(kid, priv)
}
