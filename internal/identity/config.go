package identity

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// Defaults. A zero Config gets these.
const (
	DefaultIssuer        = "loglineos"
	DefaultAudience      = "loglineos"
	DefaultTokenTTL      = 15 * time.Minute
	DefaultSkew          = 60 * time.Second
	DefaultRotateEvery   = 24 * time.Hour
	DefaultJWKSMaxAge    = 5 * time.Minute
	DefaultMaxTokenBytes = 8 << 10
	DefaultLoginTTL      = 10 * time.Minute
	DefaultMaxPending    = 10000
	DefaultOIDCIssuer    = "https://accounts.google.com"
	DefaultOperator      = "system"
	DefaultLimiters      = 10000
	DefaultVerifyCache   = 10000
)

// ReceiptRecorder receives the security events worth a receipt in the
// ledger: key creation, rotation and retirement, service account creation
// and revocation. Fields never carry secrets or private keys. The ledger
// owner implements it; an error aborts the operation when it can still be
// aborted (see Service.Rotate).
type ReceiptRecorder interface {
	Record(ctx context.Context, op string, fields map[string]any) error
}

// Shared makes the identity's changes one at a time across the processes
// that keep copies of the same KeyDir and StateDir (a cluster's nodes,
// each with its own data directory).
type Shared interface {
	// Change runs fn while no other process changes the files, once this
	// process's files hold every change made before, and then hands what
	// fn wrote to the others (which call Service.Reload). A Change with
	// the ctx fn was given runs its fn at once, in the same turn.
	Change(ctx context.Context, fn func(ctx context.Context) error) error
}

// Config configures a Service. The zero Config works: tokens signed by an
// in-memory key, no login, no tenants (so no one gets a token until
// memberships or service accounts exist). The fields with a YAML key are
// what an operator configures, the server configuration's section auth
// (auth.issuer, auth.oidc.client_id ...); the program sets the others.
type Config struct {
	// Issuer is the iss of every LLST, normally the public base URL of the
	// server. Audience is its aud.
	Issuer   string `yaml:"issuer"`
	Audience string `yaml:"audience"`
	// TokenTTL is the lifetime of an LLST (15 min).
	TokenTTL time.Duration `yaml:"-"`
	// Skew is the clock skew tolerated on exp, nbf and iat (60 s).
	Skew time.Duration `yaml:"-"`
	// MaxTokenBytes bounds a bearer token before it is parsed (8 KiB).
	MaxTokenBytes int `yaml:"-"`

	// KeyDir is where signing keys persist (the server passes <data>/jwks/).
	// Empty: keys live in memory and die with the process.
	KeyDir string `yaml:"-"`
	// StateDir is where user records and service accounts persist.
	// Empty: in memory.
	StateDir string `yaml:"-"`
	// RotateEvery is the scheduled rotation period of the signing key (24 h).
	RotateEvery time.Duration `yaml:"rotate_every"`
	// Overlap is how long a replaced key still verifies. It is raised to at
	// least TokenTTL + Skew, so no token outlives its key.
	Overlap time.Duration `yaml:"-"`
	// JWKSMaxAge is the Cache-Control max-age of the JWKS (5 min). It must
	// be shorter than the overlap and than RotateEvery.
	JWKSMaxAge time.Duration `yaml:"-"`

	// OIDC configures human login. Login is disabled while ClientID is empty.
	OIDC OIDCConfig `yaml:"oidc"`

	// Tenants holds per-tenant memberships, role overrides and quotas.
	Tenants map[string]TenantConfig `yaml:"-"`
	// OperatorTenant is the tenant whose admins run the server (keys.rotate,
	// cross_tenant). Those capabilities are never granted in other tenants,
	// whatever their overrides say. Default "system".
	OperatorTenant string `yaml:"-"`
	// DefaultQuota applies to tenants that set none.
	DefaultQuota Quota `yaml:"-"`
	// MaxLimiters bounds the limiter registry (10000 buckets).
	MaxLimiters int `yaml:"-"`
	// VerifyCacheSize bounds the cache of verified tokens (10000). Negative
	// disables it.
	VerifyCacheSize int `yaml:"-"`

	// Shared, when not nil, makes every change of the key ring (its
	// creation at the first start, rotations, retirements), of the service
	// accounts and of the users a turn of Shared.Change, so that processes
	// sharing these files never change them from different starting points
	// nor record a change twice; nil: this process alone owns them.
	Shared Shared `yaml:"-"`
	// Receipts gets the key and account events. Nil: not recorded.
	Receipts ReceiptRecorder `yaml:"-"`
	// OnReject is called with the reason of every refused bearer token, for
	// metrics. It must be fast and must not block. Counters are also kept,
	// see Service.RejectCounts.
	OnReject func(Reason) `yaml:"-"`
	// OnRevoke is called with the subject ("sa:<id>" or a person's LLID)
	// after its credentials are revoked (RevokeServiceAccount,
	// RevokeSubject), so that what holds a principal of it (an open
	// stream) can end: see Service.Revalidate. It must not block long.
	OnRevoke func(subject string) `yaml:"-"`
	// WriteError writes a refusal from the handlers of this package. The
	// gateway passes its own, which also counts and logs refusals. Nil:
	// WriteProblem; either way the problem is ProblemOf's.
	WriteError func(w http.ResponseWriter, r *http.Request, err error) `yaml:"-"`

	// Now is the clock (time.Now). Rand is the source of keys, secrets,
	// state and nonces (crypto/rand.Reader).
	Now  func() time.Time `yaml:"-"`
	Rand io.Reader        `yaml:"-"`
}

// OIDCConfig configures login with an OpenID Connect provider.
type OIDCConfig struct {
	// Issuer of the provider; https://accounts.google.com by default.
	Issuer       string `yaml:"issuer"`
	ClientID     string `yaml:"client_id"`
	ClientSecret string `yaml:"client_secret"`
	// RedirectURL is this server's callback, as registered with the
	// provider: https://<host>/auth/callback.
	RedirectURL string `yaml:"redirect_url"`
	// Scopes beyond openid (default: email, profile).
	Scopes []string `yaml:"-"`
	// HostedDomain, when set, is required in the id_token's hd claim (Google
	// Workspace domain) and sent as a hint.
	HostedDomain string `yaml:"hosted_domain"`
	// AuthStyle says how the client authenticates to the token endpoint
	// (auto-detected by default).
	AuthStyle oauth2.AuthStyle `yaml:"-"`
	// HTTPClient talks to the provider (a client with a 10 s timeout).
	HTTPClient *http.Client `yaml:"-"`
	// LoginTTL bounds the time between /auth/login and /auth/callback, and
	// the life of the one-time code handed to a CLI (10 min).
	LoginTTL time.Duration `yaml:"-"`
	// MaxPending bounds the pending logins and one-time codes kept (10000
	// each); the oldest are dropped first.
	MaxPending int `yaml:"-"`
	// SecureCookie forces the Secure attribute on the login-state cookie.
	// It is also set when RedirectURL is https or the request came over TLS.
	SecureCookie bool `yaml:"-"`
}

// TenantConfig is what an administrator configures for a tenant.
type TenantConfig struct {
	// Members maps people to roles. No membership, no token.
	Members []Member
	// Roles overrides the capabilities of roles in this tenant: a listed
	// role gets exactly the capabilities listed (replacing the default
	// table); a new role name defines a new role.
	Roles map[string][]Capability
	// Quota is the tenant's token bucket; zero: Config.DefaultQuota.
	Quota Quota
	// RoleQuotas adds a bucket per role, checked as well as the tenant's.
	RoleQuotas map[string]Quota
}

// TenantFromFile returns a tenant's configuration from the sections of its
// tenant file that identity reads (package tenant): the quota; members,
// each named by LLID ("u_…") or else by email, with their roles; and role
// overrides, role name -> capability names. Members are in name order. It
// checks nothing; Service.SetTenant does.
func TenantFromFile(quota Quota, members, roles map[string][]string) TenantConfig {
	tc := TenantConfig{Quota: quota}
	for _, who := range slices.Sorted(maps.Keys(members)) {
		m := Member{Roles: members[who]}
		if strings.HasPrefix(who, "u_") && len(who) > 2 {
			m.LLID = who
		} else {
			m.Email = who
		}
		tc.Members = append(tc.Members, m)
	}
	if len(roles) > 0 {
		tc.Roles = map[string][]Capability{}
		for role, caps := range roles {
			for _, c := range caps {
				tc.Roles[role] = append(tc.Roles[role], Capability(c))
			}
		}
	}
	return tc
}

// Member grants roles in a tenant to a person, named by LLID or by an
// email address the provider has verified. Prefer LLIDs: an address can
// change hands, an (iss, sub) pair cannot.
type Member struct {
	LLID  string   `json:"llid,omitempty"`
	Email string   `json:"email,omitempty"`
	Roles []string `json:"roles"`
}

// Quota is a token bucket: IngestPerSecond sustained, Burst at once.
type Quota struct {
	IngestPerSecond float64 `json:"ingest_per_second"`
	Burst           int     `json:"burst"`
}

// DefaultTenantQuota is used when neither the tenant nor Config.DefaultQuota
// sets one.
func DefaultTenantQuota() Quota { return Quota{IngestPerSecond: 1000, Burst: 2000} }

// withDefaults returns a copy of c with the zero fields filled in, or an
// error naming the first inconsistent field.
func (c Config) withDefaults() (Config, error) {
	if c.Issuer == "" {
		c.Issuer = DefaultIssuer
	}
	if c.Audience == "" {
		c.Audience = DefaultAudience
	}
	if c.TokenTTL <= 0 {
		c.TokenTTL = DefaultTokenTTL
	}
	if c.Skew <= 0 {
		c.Skew = DefaultSkew
	}
	if c.MaxTokenBytes <= 0 {
		c.MaxTokenBytes = DefaultMaxTokenBytes
	}
	if c.RotateEvery <= 0 {
		c.RotateEvery = DefaultRotateEvery
	}
	if floor := c.TokenTTL + c.Skew; c.Overlap < floor {
		c.Overlap = floor
	}
	if c.JWKSMaxAge <= 0 {
		c.JWKSMaxAge = DefaultJWKSMaxAge
	}
	if c.JWKSMaxAge >= c.Overlap || c.JWKSMaxAge >= c.RotateEvery {
		return c, fmt.Errorf("identity: JWKSMaxAge %v must be shorter than the overlap %v and RotateEvery %v", c.JWKSMaxAge, c.Overlap, c.RotateEvery)
	}
	if c.OperatorTenant == "" {
		c.OperatorTenant = DefaultOperator
	}
	if c.DefaultQuota == (Quota{}) {
		c.DefaultQuota = DefaultTenantQuota()
	}
	if c.MaxLimiters <= 0 {
		c.MaxLimiters = DefaultLimiters
	}
	if c.VerifyCacheSize == 0 {
		c.VerifyCacheSize = DefaultVerifyCache
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Rand == nil {
		c.Rand = rand.Reader
	}
	o := &c.OIDC
	if o.Issuer == "" {
		o.Issuer = DefaultOIDCIssuer
	}
	if o.Scopes == nil {
		o.Scopes = []string{"email", "profile"}
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if o.LoginTTL <= 0 {
		o.LoginTTL = DefaultLoginTTL
	}
	if o.MaxPending <= 0 {
		o.MaxPending = DefaultMaxPending
	}
	if o.ClientID != "" {
		u, err := url.Parse(o.RedirectURL)
		if err != nil || !u.IsAbs() || u.Host == "" {
			return c, fmt.Errorf("identity: OIDC.RedirectURL %q must be an absolute URL", o.RedirectURL)
		}
	}
	for name, t := range c.Tenants {
		if name == "" {
			return c, fmt.Errorf("identity: a tenant has an empty name")
		}
		for role, caps := range t.Roles {
			for _, cp := range caps {
				if !knownCapability(cp) {
					return c, fmt.Errorf("identity: tenant %q role %q: unknown capability %q", name, role, cp)
				}
			}
		}
		for i, m := range t.Members {
			if (m.LLID == "") == (m.Email == "") {
				return c, fmt.Errorf("identity: tenant %q member %d: exactly one of llid and email must be set", name, i)
			}
			if len(m.Roles) == 0 {
				return c, fmt.Errorf("identity: tenant %q member %d: no roles", name, i)
			}
		}
		if err := t.Quota.check(); err != nil {
			return c, fmt.Errorf("identity: tenant %q: %w", name, err)
		}
		for role, q := range t.RoleQuotas {
			if err := q.check(); err != nil {
				return c, fmt.Errorf("identity: tenant %q role %q: %w", name, role, err)
			}
		}
	}
	return c, nil
}

func (q Quota) check() error {
	if q.IngestPerSecond < 0 || q.Burst < 0 {
		return fmt.Errorf("negative quota %+v", q)
	}
	if q.IngestPerSecond > 0 && q.Burst == 0 {
		return fmt.Errorf("quota %+v: a rate needs a burst of at least 1", q)
	}
	return nil
}
