package server

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/loglineos/loglineos/internal/atomicfile"
	"github.com/loglineos/loglineos/internal/identity"
	"github.com/loglineos/loglineos/internal/span"
)

// PII redaction: a tenant file's redact list names fields (top-level
// members, or paths into data such as data.customer_email) whose values are
// replaced, before anything is written, by "hmac-sha256:" and the base64 of
// HMAC-SHA-256 under this server's redaction key over the value's canonical
// JSON. Equal values give equal hashes within one server, so spans can still
// be linked by them, and the value cannot be read back without the key
// (data/identity/redact.key, mode 0600). Identity members (id, tenant) and
// when cannot be redacted: the ledger and derivation need them, and
// tenant.Parse refuses a list that names them.

const redactPrefix = "hmac-sha256:"

// redactKeyFile is the redaction key's file in <data>/identity.
const redactKeyFile = "redact.key"

type redactor struct {
	key []byte
	mu  sync.RWMutex
	by  map[string][][]string // tenant -> paths
}

// auditRedactKey is the audit op recording the creation of the redaction
// key: {"fingerprint": redactKeyFingerprint(key)}. The key itself is never
// recorded; the fingerprint lets logline ledger verify check the key file.
const auditRedactKey = "redact.key.create"

// redactKeyFingerprint is the hex SHA-256 of "logline redaction key v1\n"
// and the key: a key of 256 random bits cannot be found from it.
func redactKeyFingerprint(key []byte) string {
	sum := sha256.Sum256(append([]byte("logline redaction key v1\n"), key...))
	return hex.EncodeToString(sum[:])
}

// loadRedactKey reads dir/redact.key, or creates it. A new key is recorded
// with rec (nil: not recorded, as under --dev) before it is written, so
// that a key on disk always has its record, or is the older kind without.
func loadRedactKey(ctx context.Context, dir string, rec identity.ReceiptRecorder) ([]byte, error) {
	path := filepath.Join(dir, redactKeyFile)
	if b, err := os.ReadFile(path); err == nil {
		if len(b) != 32 {
			return nil, fmt.Errorf("%s: want 32 bytes", path)
		}
		return b, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if rec != nil {
		if err := rec.Record(ctx, auditRedactKey, map[string]any{"fingerprint": redactKeyFingerprint(key)}); err != nil {
			return nil, fmt.Errorf("record the new key: %w", err)
		}
	}
	return key, atomicfile.Write(path, key, 0o600)
}

// set puts a tenant's redaction list in force (tenant.File.Redact: each
// field as its path of member names); none redacts nothing.
func (r *redactor) set(tenant string, paths [][]string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(paths) == 0 {
		delete(r.by, tenant)
		return
	}
	r.by[tenant] = paths
}

// Redact returns the span with the tenant's redacted fields replaced, or the
// span itself when the tenant redacts nothing.
func (r *redactor) Redact(s *span.Span) (*span.Span, error) {
	r.mu.RLock()
	paths := r.by[s.Tenant]
	r.mu.RUnlock()
	if len(paths) == 0 {
		return s, nil
	}
	dec := json.NewDecoder(bytes.NewReader(s.Canonical()))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	changed := false
	for _, p := range paths {
		changed = r.redactPath(m, p) || changed
	}
	if !changed {
		return s, nil
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return span.Parse(raw, span.Limits{MaxBytes: len(raw) + 1024, MaxMembers: 1 << 20, MaxDepth: 64})
}

func (r *redactor) redactPath(m map[string]any, path []string) bool {
	cur := m
	for i, k := range path {
		v, ok := cur[k]
		if !ok {
			return false
		}
		if i == len(path)-1 {
			if s, ok := v.(string); ok && strings.HasPrefix(s, redactPrefix) {
				return false // already a hash
			}
			raw, _ := json.Marshal(v)
			canon, err := span.Canonicalize(raw)
			if err != nil {
				canon = raw
			}
			mac := hmac.New(sha256.New, r.key)
			mac.Write(canon)
			cur[k] = redactPrefix + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
			return true
		}
		next, ok := v.(map[string]any)
		if !ok {
			return false
		}
		cur = next
	}
	return false
}
