package identity

import (
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// Authenticate returns the principal of the LLST in the request's
// "Authorization: Bearer" header, or an *Error of KindUnauthenticated
// whose Reason says why not. It never returns a principal together with an
// error. Cookies and query parameters are never read: API auth travels in
// the header only.
func (s *Service) Authenticate(r *http.Request) (*Principal, error) {
	vals := r.Header.Values("Authorization")
	if len(vals) == 0 || vals[0] == "" {
		return nil, s.reject(unauth(ReasonMissing, "no Authorization header"))
	}
	if len(vals) > 1 {
		return nil, s.reject(unauth(ReasonMalformed, "more than one Authorization header"))
	}
	h := vals[0]
	if len(h) > s.cfg.MaxTokenBytes+len("Bearer ") {
		return nil, s.reject(unauth(ReasonTooLarge, "Authorization header too long"))
	}
	scheme, tok, _ := strings.Cut(strings.TrimSpace(h), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return nil, s.reject(unauth(ReasonMalformed, "Authorization is not a Bearer credential"))
	}
	tok = strings.TrimLeft(tok, " ")
	if tok == "" {
		return nil, s.reject(unauth(ReasonMissing, "empty bearer token"))
	}
	return s.AuthenticateToken(tok)
}

// AuthenticateToken is Authenticate for a token obtained otherwise (the
// WebSocket upgrade, where browsers cannot set headers, passes it in the
// Sec-WebSocket-Protocol header).
func (s *Service) AuthenticateToken(tok string) (*Principal, error) {
	now := s.now()
	c, err := s.verifier.verify(tok, now)
	if err != nil {
		return nil, s.reject(err)
	}
	if s.subjectRevoked(c) {
		return nil, s.reject(unauth(ReasonRevoked, ""))
	}
	st := s.tenants.Load()
	return &Principal{
		Subject:  c.Subject,
		Tenant:   c.Tenant,
		Roles:    slices.Clone(c.Roles),
		Caps:     st.policy.caps(c.Tenant, c.Roles),
		TokenID:  c.ID,
		IssuedAt: time.Unix(c.IssuedAt, 0),
		Expires:  time.Unix(c.Expiry, 0),
	}, nil
}

// Revalidate says whether the credential a principal was authenticated
// with still holds now: nil, or an *Error of KindUnauthenticated whose
// Reason is ReasonRevoked (its service account or person was revoked since)
// or ReasonExpired (its token's exp has passed). It reads two lock-free
// maps and the clock, so that the gateway can recheck every open stream at
// each revocation (Config.OnRevoke). Development principals always hold.
func (s *Service) Revalidate(p *Principal) error {
	if p == nil || p.Dev {
		return nil
	}
	if id, ok := strings.CutPrefix(p.Subject, saSubjectPrefix); ok {
		if !s.accounts.usable(id, p.Tenant) {
			return unauth(ReasonRevoked, "the service account was revoked")
		}
	} else if s.revoked.revoked(p.Subject, p.IssuedAt.Unix()) {
		return unauth(ReasonRevoked, "the subject's credentials were revoked")
	}
	if !p.Expires.IsZero() && !s.now().Before(p.Expires) {
		return unauth(ReasonExpired, "the token expired at "+p.Expires.UTC().Format(time.RFC3339))
	}
	return nil
}

// subjectRevoked applies the revocations: a service account must exist and
// not be revoked; a person must not have been revoked since the token was
// issued.
func (s *Service) subjectRevoked(c *Claims) bool {
	if id, ok := strings.CutPrefix(c.Subject, saSubjectPrefix); ok {
		return !s.accounts.usable(id, c.Tenant)
	}
	return s.revoked.revoked(c.Subject, c.IssuedAt)
}

// Authorize returns nil if p may use capability c on tenant, and otherwise
// an *Error: KindUnauthenticated without a principal, KindForbidden (403)
// with one. Principal.Can answers the same question as a bool.
func (s *Service) Authorize(p *Principal, tenant string, c Capability) error {
	return Authorize(p, tenant, c)
}

// Authorize is Service.Authorize without a service, for DevAuthenticator
// principals and tests.
func Authorize(p *Principal, tenant string, c Capability) error {
	switch {
	case p == nil:
		return unauth(ReasonMissing, "not authenticated")
	case p.Can(tenant, c):
		return nil
	case tenant != p.Tenant && !slices.Contains(p.Caps, CapCrossTenant):
		return &Error{Kind: KindForbidden, Reason: ReasonCrossTenant, Detail: "the credential belongs to tenant " + p.Tenant}
	default:
		return &Error{Kind: KindForbidden, Reason: ReasonForbidden, Detail: "the roles " + strings.Join(p.Roles, ",") + " do not grant " + string(c)}
	}
}

// DevAuthenticator is the authenticator of `logline serve --dev`: every
// request acts as an administrator of the tenant TenantOf names (the
// gateway reads it from the path or a header), with every capability. It
// must never be used outside development mode.
type DevAuthenticator struct {
	// TenantOf names the tenant of a request; nil or "" means "dev".
	TenantOf func(*http.Request) string
}

// Authenticate returns the development principal. It never fails.
func (d DevAuthenticator) Authenticate(r *http.Request) (*Principal, error) {
	t := ""
	if d.TenantOf != nil {
		t = d.TenantOf(r)
	}
	if t == "" {
		t = "dev"
	}
	return &Principal{Subject: "dev", Tenant: t, Roles: []string{RoleAdmin}, Caps: AllCapabilities(), Dev: true}, nil
}

// tokenReasons are the reasons a bearer token is refused, in the order
// RejectCounts reports them.
func tokenReasons() []Reason {
	return []Reason{ReasonMissing, ReasonMalformed, ReasonTooLarge, ReasonBadType, ReasonBadAlg,
		ReasonUnknownKID, ReasonBadSignature, ReasonExpired, ReasonNotYetValid, ReasonBadLifetime,
		ReasonWrongIssuer, ReasonWrongAud, ReasonRevoked}
}

const numTokenReasons = 13

type rejectCounters [numTokenReasons + 1]atomic.Uint64 // the last counts anything else

func reasonIndex(r Reason) int {
	switch r {
	case ReasonMissing:
		return 0
	case ReasonMalformed:
		return 1
	case ReasonTooLarge:
		return 2
	case ReasonBadType:
		return 3
	case ReasonBadAlg:
		return 4
	case ReasonUnknownKID:
		return 5
	case ReasonBadSignature:
		return 6
	case ReasonExpired:
		return 7
	case ReasonNotYetValid:
		return 8
	case ReasonBadLifetime:
		return 9
	case ReasonWrongIssuer:
		return 10
	case ReasonWrongAud:
		return 11
	case ReasonRevoked:
		return 12
	}
	return numTokenReasons
}

// reject counts a refused token and hands the error back.
func (s *Service) reject(e *Error) error {
	s.rejects[reasonIndex(e.Reason)].Add(1)
	if s.cfg.OnReject != nil {
		s.cfg.OnReject(e.Reason)
	}
	return e
}

// RejectCounts returns how many bearer tokens were refused, by reason,
// since the service started; every reason is present, zero or not. The
// gateway exports them as a counter family (logline_auth_rejected_total).
func (s *Service) RejectCounts() map[Reason]uint64 {
	out := make(map[Reason]uint64, numTokenReasons)
	for i, r := range tokenReasons() {
		out[r] = s.rejects[i].Load()
	}
	return out
}
