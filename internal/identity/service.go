package identity

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/loglineos/loglineos/internal/datadir"
)

// Service is the identity subsystem of a server: it logs people in, issues
// and verifies LLSTs, keeps the key ring, the service accounts and the
// quotas. Create it with New; it is safe for concurrent use.
type Service struct {
	cfg      Config
	now      func() time.Time
	rand     io.Reader
	ring     *keyRing
	verifier *verifier
	records  records
	tenants  atomic.Pointer[tenantState]
	tenantMu sync.Mutex // serialises UpdateTenants and SetTenant
	accounts *accounts
	revoked  revocations
	limiter  *Limiter
	login    *loginFlow
	rejects  rejectCounters
	locks    []*datadir.Lock
	closed   sync.Once
}

// tenantState is an immutable snapshot of the tenants' configuration.
type tenantState struct {
	config  map[string]TenantConfig
	policy  *policy
	members map[string][]Member
}

// New opens (or creates) the key ring and the stores named by cfg and
// returns a Service. The context is passed to the receipt recorder when a
// first key is created.
func New(ctx context.Context, cfg Config) (*Service, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	c.Rand = &lockedReader{r: c.Rand}
	s := &Service{cfg: c, now: c.Now, rand: c.Rand}
	for _, dir := range []string{c.KeyDir, c.StateDir} {
		if dir == "" {
			continue
		}
		f, err := lockDir(dir)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.locks = append(s.locks, f)
	}
	// The first process to get here makes the ring; the others find it.
	err = s.change(ctx, func(ctx context.Context) (err error) {
		s.ring, err = openKeyRing(ctx, c)
		return err
	})
	if err != nil {
		s.Close()
		return nil, err
	}
	s.verifier = &verifier{ring: s.ring, issuer: c.Issuer, audience: c.Audience, ttl: c.TokenTTL, skew: c.Skew, maxBytes: c.MaxTokenBytes}
	if c.VerifyCacheSize > 0 {
		s.verifier.cache = newVerifiedCache(c.VerifyCacheSize, c.Now)
	}
	if c.StateDir != "" {
		s.records = dirRecords{dir: c.StateDir}
	} else {
		s.records = newMemRecords()
	}
	s.accounts, err = loadAccounts(s.records)
	if err != nil {
		s.Close()
		return nil, err
	}
	s.revoked.init()
	s.limiter = NewLimiter(LimiterConfig{Max: c.MaxLimiters, Default: c.DefaultQuota, Now: c.Now})
	if err := s.UpdateTenants(c.Tenants); err != nil {
		s.Close()
		return nil, err
	}
	s.login = newLoginFlow(s)
	return s, nil
}

// change runs fn as one turn of Config.Shared (at once without it). A turn
// that cannot be had (another process holds it too long, the cluster does
// not answer) is KindUnavailable and fn did not run. Once fn ran, its own
// result is the change's: a change made and recorded here that the other
// processes do not have yet is Shared's to hand them later, not a failure
// to retry (a retry would make a second one).
func (s *Service) change(ctx context.Context, fn func(ctx context.Context) error) error {
	if s.cfg.Shared == nil {
		return fn(ctx)
	}
	ran := false
	var inner error
	err := s.cfg.Shared.Change(ctx, func(ctx context.Context) error {
		ran = true
		inner = fn(ctx)
		return inner
	})
	switch {
	case ran:
		return inner
	case err != nil:
		return &Error{Kind: KindUnavailable, Reason: ReasonBusy, Detail: "the identity cannot be changed now; try again", Err: err}
	}
	return nil
}

// Reload reads the key ring and the service accounts again from KeyDir and
// StateDir: another process sharing them (Config.Shared) changed them.
// The subjects of accounts the change revoked are passed to OnRevoke, as
// on the process that revoked them. A ring that does not load (a change
// seen half-way) leaves the one in force, and the error says why.
func (s *Service) Reload() error {
	var errs []error
	if s.ring.dir != "" {
		s.ring.mu.Lock()
		keys, err := s.ring.load()
		if err == nil && keys != nil {
			s.ring.publish(keys)
		}
		s.ring.mu.Unlock()
		errs = append(errs, err)
	}
	if s.cfg.StateDir == "" {
		return errors.Join(errs...)
	}
	// Under the accounts' lock: a change of this process's between the
	// read and the store would be undone.
	s.accounts.mu.Lock()
	fresh, err := loadAccounts(s.records)
	if err != nil {
		s.accounts.mu.Unlock()
		return errors.Join(append(errs, err)...)
	}
	old := s.accounts.m.Load()
	s.accounts.m.Store(fresh.m.Load())
	s.accounts.mu.Unlock()
	for id, rec := range *fresh.m.Load() {
		if prev, ok := (*old)[id]; ok && prev.Revoked.IsZero() && !rec.Revoked.IsZero() {
			s.notifyRevoked(rec.Subject())
		}
	}
	return errors.Join(errs...)
}

// Close releases the locks on KeyDir and StateDir. The Service must not be
// used afterwards. It is safe to call more than once.
func (s *Service) Close() error {
	s.closed.Do(func() {
		for _, l := range s.locks {
			l.Release()
		}
	})
	return nil
}

// UpdateTenants replaces the tenants' memberships, role overrides and
// quotas at once (hot reload). Tokens already issued keep their roles;
// the capabilities of those roles follow the new table at the next request.
func (s *Service) UpdateTenants(tenants map[string]TenantConfig) error {
	s.tenantMu.Lock()
	defer s.tenantMu.Unlock()
	return s.updateTenantsLocked(tenants)
}

// SetTenant replaces the configuration of one tenant, keeping the others:
// the admin route that edits a membership table calls it. (The tenant
// configuration owner persists it; this package only applies it.)
func (s *Service) SetTenant(name string, t TenantConfig) error {
	s.tenantMu.Lock()
	defer s.tenantMu.Unlock()
	m := s.tenantsCopy()
	m[name] = t
	return s.updateTenantsLocked(m)
}

// Tenants returns a copy of the tenants' configuration in force.
func (s *Service) Tenants() map[string]TenantConfig { return s.tenantsCopy() }

// QuotaOf returns the ingest bucket a tenant's requests take from: its
// tenant file's, or the default.
func (s *Service) QuotaOf(tenant string) Quota {
	if st := s.tenants.Load(); st != nil {
		if t, ok := st.config[tenant]; ok && t.Quota != (Quota{}) {
			return t.Quota
		}
	}
	return s.cfg.DefaultQuota
}

// OperatorTenant returns the tenant whose administrators run the server.
func (s *Service) OperatorTenant() string { return s.cfg.OperatorTenant }

func (s *Service) tenantsCopy() map[string]TenantConfig {
	m := map[string]TenantConfig{}
	if st := s.tenants.Load(); st != nil {
		for name, t := range st.config {
			m[name] = cloneTenant(t)
		}
	}
	return m
}

func cloneTenant(t TenantConfig) TenantConfig {
	c := TenantConfig{Quota: t.Quota, Members: make([]Member, len(t.Members))}
	for i, m := range t.Members {
		c.Members[i] = Member{LLID: m.LLID, Email: m.Email, Roles: slices.Clone(m.Roles)}
	}
	if t.Roles != nil {
		c.Roles = map[string][]Capability{}
		for r, caps := range t.Roles {
			c.Roles[r] = slices.Clone(caps)
		}
	}
	if t.RoleQuotas != nil {
		c.RoleQuotas = maps.Clone(t.RoleQuotas)
	}
	return c
}

func (s *Service) updateTenantsLocked(tenants map[string]TenantConfig) error {
	c := s.cfg
	c.Tenants = tenants
	if _, err := c.withDefaults(); err != nil {
		return err
	}
	st := &tenantState{config: map[string]TenantConfig{}, policy: newPolicy(s.cfg.OperatorTenant, tenants), members: map[string][]Member{}}
	for name, t := range tenants {
		t = cloneTenant(t)
		st.config[name] = t
		st.members[name] = t.Members
	}
	s.tenants.Store(st)
	s.limiter.setTenants(tenants)
	return nil
}

// Limiter returns the quota limiter configured from the tenants.
func (s *Service) Limiter() *Limiter { return s.limiter }

// Token is an issued LLST, shaped as an OAuth 2 token response (RFC 6749
// §5.1) with the identity it carries.
type Token struct {
	AccessToken string    `json:"access_token"`
	TokenType   string    `json:"token_type"`
	ExpiresIn   int       `json:"expires_in"`
	ExpiresAt   time.Time `json:"expires_at"`
	Subject     string    `json:"sub"`
	Tenant      string    `json:"tenant"`
	Roles       []string  `json:"roles"`
	ID          string    `json:"jti"`
}

// Issue signs an LLST for subject in tenant with roles. It checks nothing
// about the subject: the login and token endpoints call it after their
// checks; a caller that uses it directly (a CLI minting a token for an
// operator on the server itself) is responsible for the authorisation.
func (s *Service) Issue(subject, tenant string, roles []string) (Token, error) {
	if subject == "" || tenant == "" || len(roles) == 0 {
		return Token{}, badRequest(ReasonBadRequest, "subject, tenant and roles are required")
	}
	now := s.now()
	id, err := ulid.New(ulid.Timestamp(now), s.rand)
	if err != nil {
		return Token{}, internal(fmt.Errorf("identity: token id: %w", err))
	}
	iat := now.Unix()
	exp := now.Add(s.cfg.TokenTTL).Unix()
	c := &Claims{
		Issuer: s.cfg.Issuer, Audience: audience{s.cfg.Audience},
		Subject: subject, Tenant: tenant, Roles: slices.Clone(roles),
		IssuedAt: iat, NotBefore: iat, Expiry: exp, ID: id.String(),
	}
	key := s.ring.snapshot().active
	tok, err := signLLST(key, c)
	if err != nil {
		return Token{}, internal(err)
	}
	// This process just signed it: its first use need not pay for the
	// signature check either (the time, key and revocation checks remain).
	s.verifier.remember(tok, verified{claims: c, kid: key.kid})
	return Token{
		AccessToken: tok, TokenType: "Bearer", ExpiresIn: int(exp - iat), ExpiresAt: time.Unix(exp, 0).UTC(),
		Subject: subject, Tenant: tenant, Roles: slices.Clone(roles), ID: c.ID,
	}, nil
}

// Rotate rotates the signing key now (logline keys rotate): the next key
// becomes active, the active one verifies for the overlap, and a new next
// key is published. It returns the kid of the new active key. The rotation
// is recorded as a "keys.rotate" receipt; if recording fails, the rotation
// does not happen and the error says why.
func (s *Service) Rotate(ctx context.Context) (kid string, err error) {
	err = s.change(ctx, func(ctx context.Context) (err error) {
		kid, err = s.ring.rotate(ctx, rotateManual)
		return err
	})
	return kid, err
}

// RotateCompromised replaces the active and the next signing keys at once
// for a leak: the keys that may have leaked (the active, the next, and
// those still verifying) stop verifying now, so every token issued before
// is refused, and callers exchange their credentials again. It returns the
// new active key's id.
func (s *Service) RotateCompromised(ctx context.Context) (kid string, err error) {
	err = s.change(ctx, func(ctx context.Context) (err error) {
		kid, err = s.ring.rotate(ctx, rotateCompromised)
		return err
	})
	return kid, err
}

// KeyInfo describes a key of the ring (never the private part).
type KeyInfo struct {
	KID         string    `json:"kid"`
	State       string    `json:"state"` // next, active, verify_only
	Created     time.Time `json:"created"`
	Activated   time.Time `json:"activated,omitzero"`
	VerifyUntil time.Time `json:"verify_until,omitzero"`
	Published   bool      `json:"published"`
}

// Keys lists the key ring, for logline keys list.
func (s *Service) Keys() []KeyInfo {
	now := s.now()
	var out []KeyInfo
	for _, k := range s.ring.snapshot().keys {
		out = append(out, KeyInfo{KID: k.kid, State: string(k.state), Created: k.created,
			Activated: k.activated, VerifyUntil: k.verifyUntil, Published: k.published(now)})
	}
	return out
}

// Maintain does the periodic work: retires keys whose overlap is over,
// rotates the signing key when it is older than RotateEvery, and drops
// expired login states. Run calls it; tests call it with a fake clock.
func (s *Service) Maintain(ctx context.Context) error {
	s.login.sweep()
	// Past TTL + skew, every token a revocation could refuse has expired.
	s.revoked.sweep(s.now().Add(-s.cfg.TokenTTL - s.cfg.Skew))
	if !s.ring.due() {
		return nil // nothing to do: no turn of Shared taken
	}
	// Due here, maybe done by another process already: maintain looks
	// again at the ring its turn starts from.
	return s.change(ctx, s.ring.maintain)
}

// Run calls Maintain every interval (a minute if interval <= 0) until ctx
// is done. Errors go to report (which may be nil) and do not stop the loop.
func (s *Service) Run(ctx context.Context, interval time.Duration, report func(error)) {
	if interval <= 0 {
		interval = time.Minute
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.Maintain(ctx); err != nil && report != nil {
				report(err)
			}
		}
	}
}

// RevokeSubject refuses every LLST of subject issued up to now: the
// "log out everywhere" of a person, or the removal of a member before
// their current token expires.
func (s *Service) RevokeSubject(subject string) {
	s.revoked.add(subject, s.now())
	s.notifyRevoked(subject)
}

// notifyRevoked tells Config.OnRevoke that subject's credentials were
// revoked.
func (s *Service) notifyRevoked(subject string) {
	if s.cfg.OnRevoke != nil {
		s.cfg.OnRevoke(subject)
	}
}

// revocations maps subjects to a time; tokens issued at or before it are
// refused. Reads are lock-free (a copy-on-write map); writes are rare.
type revocations struct {
	mu sync.Mutex
	m  atomic.Pointer[map[string]time.Time]
}

func (r *revocations) init() { r.m.Store(&map[string]time.Time{}) }

func (r *revocations) add(subject string, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := maps.Clone(*r.m.Load())
	m[subject] = at
	r.m.Store(&m)
}

func (r *revocations) sweep(before time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := maps.Clone(*r.m.Load())
	maps.DeleteFunc(m, func(_ string, at time.Time) bool { return at.Before(before) })
	r.m.Store(&m)
}

func (r *revocations) revoked(subject string, iat int64) bool {
	at, ok := (*r.m.Load())[subject]
	return ok && iat <= at.Unix()
}

// lockedReader makes an injected random source safe for concurrent use.
type lockedReader struct {
	mu sync.Mutex
	r  io.Reader
}

func (l *lockedReader) Read(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return io.ReadFull(l.r, p)
}

// random returns n random bytes from the configured source.
func (s *Service) random(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := s.rand.Read(b); err != nil {
		return nil, internal(fmt.Errorf("identity: random: %w", err))
	}
	return b, nil
}
