package identity

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"
)

// Service accounts are the credentials of apps: an id and a secret,
// created by an administrator for one tenant and one role, exchanged at
// POST /auth/token for an LLST whose subject is "sa:<id>".
//
// The secret is 32 random bytes (256 bits), shown once at creation and
// stored only as its SHA-256. A slow password hash (bcrypt, argon2) exists
// to make guessing a low-entropy password from its hash expensive; a
// 256-bit random secret cannot be guessed at any speed, so a fast hash
// loses nothing, and it keeps the token endpoint cheap instead of handing
// an attacker a CPU amplifier. Hashes are compared in constant time.
//
// Record on disk, <StateDir>/accounts/<id>.json, mode 0600:
//
//	{"id":"<ULID>","tenant":…,"role":…,"name":…,"secret_sha256":"<hex>",
//	 "created":…,"created_by":…,"revoked":…,"revoked_by":…}
const (
	saSubjectPrefix = "sa:"
	saSecretPrefix  = "llsa_"
	saSecretBytes   = 32
	accountsKind    = "accounts"
	receiptSACreate = "account.create"
	receiptSARevoke = "account.revoke"
)

// secretFingerprintPrefix starts what SecretFingerprint hashes.
const secretFingerprintPrefix = "logline account secret v1\n"

// SecretFingerprint is the account.create receipt's secret_fingerprint:
// the hex SHA-256 of "logline account secret v1\n" and the stored
// secret_sha256 (hex). It lets the account file's secret hash be checked
// against the ledger; since the secret is 256 random bits, a hash of its
// hash tells nothing usable about it.
func SecretFingerprint(secretSHA256 string) string {
	sum := sha256.Sum256([]byte(secretFingerprintPrefix + secretSHA256))
	return hex.EncodeToString(sum[:])
}

// ServiceAccount describes an account; the secret is never part of it.
type ServiceAccount struct {
	ID        string    `json:"id"`
	Tenant    string    `json:"tenant"`
	Role      string    `json:"role"`
	Name      string    `json:"name,omitempty"`
	Created   time.Time `json:"created"`
	CreatedBy string    `json:"created_by,omitempty"`
	Revoked   time.Time `json:"revoked,omitzero"`
	RevokedBy string    `json:"revoked_by,omitempty"`
}

// Subject is the sub of the account's tokens.
func (a ServiceAccount) Subject() string { return saSubjectPrefix + a.ID }

type accountRecord struct {
	ServiceAccount
	SecretSHA256 string `json:"secret_sha256"`
}

// accounts is the registry. Writes are serialised by mu and publish a new
// map; the authenticator reads the map without a lock.
type accounts struct {
	mu    sync.Mutex
	m     atomic.Pointer[map[string]accountRecord]
	store records
}

func loadAccounts(store records) (*accounts, error) {
	a := &accounts{store: store}
	raw, err := store.list(accountsKind)
	if err != nil {
		return nil, fmt.Errorf("identity: load service accounts: %w", err)
	}
	m := make(map[string]accountRecord, len(raw))
	for name, data := range raw {
		var rec accountRecord
		if err := json.Unmarshal(data, &rec); err != nil || rec.ID != name {
			return nil, fmt.Errorf("identity: service account %s: bad record", name)
		}
		m[rec.ID] = rec
	}
	a.m.Store(&m)
	return a, nil
}

func (a *accounts) get(id string) (accountRecord, bool) {
	rec, ok := (*a.m.Load())[id]
	return rec, ok
}

// usable reports whether the account exists, is not revoked and belongs to
// tenant.
func (a *accounts) usable(id, tenant string) bool {
	rec, ok := a.get(id)
	return ok && rec.Revoked.IsZero() && rec.Tenant == tenant
}

func (a *accounts) save(rec accountRecord) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := a.store.put(accountsKind, rec.ID, data); err != nil {
		return err
	}
	m := maps.Clone(*a.m.Load())
	m[rec.ID] = rec
	a.m.Store(&m)
	return nil
}

// NewServiceAccount is the request to create an account.
type NewServiceAccount struct {
	Tenant string `json:"tenant"`
	Role   string `json:"role"`
	Name   string `json:"name,omitempty"`
	// CreatedBy is the subject of the administrator, for the receipt.
	CreatedBy string `json:"created_by,omitempty"`
}

// CreateServiceAccount creates an account for a tenant and a role and
// returns it with its secret, which is not kept and cannot be shown again.
// The role must mean something in the tenant. The creation is recorded as
// an "account.create" receipt (with the secret's SecretFingerprint); if
// that fails the account is revoked and the error returned.
func (s *Service) CreateServiceAccount(ctx context.Context, req NewServiceAccount) (acct ServiceAccount, secret string, err error) {
	err = s.change(ctx, func(ctx context.Context) (err error) {
		acct, secret, err = s.createServiceAccount(ctx, req)
		return err
	})
	return acct, secret, err
}

func (s *Service) createServiceAccount(ctx context.Context, req NewServiceAccount) (ServiceAccount, string, error) {
	if req.Tenant == "" || req.Role == "" || len(req.Tenant) > 128 || len(req.Name) > 256 {
		return ServiceAccount{}, "", badRequest(ReasonBadRequest, "tenant and role are required")
	}
	if !s.tenants.Load().policy.knownRole(req.Tenant, req.Role) {
		return ServiceAccount{}, "", badRequest(ReasonUnknownRole, "no role %q in tenant %q", req.Role, req.Tenant)
	}
	now := s.now()
	id, err := ulid.New(ulid.Timestamp(now), s.rand)
	if err != nil {
		return ServiceAccount{}, "", internal(err)
	}
	raw, err := s.random(saSecretBytes)
	if err != nil {
		return ServiceAccount{}, "", err
	}
	secret := saSecretPrefix + base64.RawURLEncoding.EncodeToString(raw)
	sum := sha256.Sum256([]byte(secret))
	rec := accountRecord{
		ServiceAccount: ServiceAccount{ID: id.String(), Tenant: req.Tenant, Role: req.Role, Name: req.Name,
			Created: now.UTC(), CreatedBy: req.CreatedBy},
		SecretSHA256: hex.EncodeToString(sum[:]),
	}
	s.accounts.mu.Lock()
	defer s.accounts.mu.Unlock()
	if err := s.accounts.save(rec); err != nil {
		return ServiceAccount{}, "", internal(fmt.Errorf("identity: save service account: %w", err))
	}
	err = s.record(ctx, receiptSACreate, map[string]any{"id": rec.ID, "tenant": rec.Tenant, "role": rec.Role,
		"name": rec.Name, "by": rec.CreatedBy, "at": now, "secret_fingerprint": SecretFingerprint(rec.SecretSHA256)})
	if err != nil {
		rec.Revoked, rec.RevokedBy = now.UTC(), "receipt-failure"
		_ = s.accounts.save(rec)
		return ServiceAccount{}, "", internal(err)
	}
	return rec.ServiceAccount, secret, nil
}

// RevokeServiceAccount revokes an account: it can no longer get tokens,
// and the tokens it already has are refused at the next request. The
// revocation is effective even if recording its receipt fails (the error
// is then returned): a credential is never left alive for want of a log
// line.
func (s *Service) RevokeServiceAccount(ctx context.Context, id, by string) error {
	return s.change(ctx, func(ctx context.Context) error { return s.revokeServiceAccount(ctx, id, by) })
}

func (s *Service) revokeServiceAccount(ctx context.Context, id, by string) error {
	revoked := false
	defer func() { // after the lock is released
		if revoked {
			s.notifyRevoked(saSubjectPrefix + id)
		}
	}()
	s.accounts.mu.Lock()
	defer s.accounts.mu.Unlock()
	rec, ok := s.accounts.get(id)
	if !ok {
		return &Error{Kind: KindNotFound, Reason: ReasonNotFound, Detail: "no service account " + id}
	}
	if !rec.Revoked.IsZero() {
		return nil
	}
	now := s.now()
	rec.Revoked, rec.RevokedBy = now.UTC(), by
	if err := s.accounts.save(rec); err != nil {
		return internal(fmt.Errorf("identity: save service account: %w", err))
	}
	revoked = true
	if err := s.record(ctx, receiptSARevoke, map[string]any{"id": id, "tenant": rec.Tenant, "by": by, "at": now}); err != nil {
		return internal(err)
	}
	return nil
}

// ServiceAccounts lists the accounts of tenant ("" for all), by id.
func (s *Service) ServiceAccounts(tenant string) []ServiceAccount {
	var out []ServiceAccount
	for _, rec := range *s.accounts.m.Load() {
		if tenant == "" || rec.Tenant == tenant {
			out = append(out, rec.ServiceAccount)
		}
	}
	slices.SortFunc(out, func(a, b ServiceAccount) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// ExchangeClientCredentials checks a service account's id and secret and
// issues an LLST for its tenant and role. Unknown ids, wrong secrets and
// revoked accounts are all ReasonBadClient, so the answer does not tell
// which ids exist.
func (s *Service) ExchangeClientCredentials(id, secret string) (Token, error) {
	rec, ok := s.accounts.get(id)
	want := make([]byte, sha256.Size)
	if ok {
		if b, err := hex.DecodeString(rec.SecretSHA256); err == nil && len(b) == sha256.Size {
			want = b
		}
	}
	got := sha256.Sum256([]byte(secret))
	match := subtle.ConstantTimeCompare(got[:], want) == 1
	if !ok || !match || !rec.Revoked.IsZero() || !strings.HasPrefix(secret, saSecretPrefix) {
		return Token{}, unauth(ReasonBadClient, "unknown client or wrong secret")
	}
	return s.Issue(rec.Subject(), rec.Tenant, []string{rec.Role})
}

func (s *Service) record(ctx context.Context, op string, fields map[string]any) error {
	if s.cfg.Receipts == nil {
		return nil
	}
	if err := s.cfg.Receipts.Record(ctx, op, fields); err != nil {
		return fmt.Errorf("identity: record %s receipt: %w", op, err)
	}
	return nil
}
