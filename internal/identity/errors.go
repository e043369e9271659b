package identity

import (
	"errors"
	"fmt"
	"time"

	"github.com/loglineos/loglineos/internal/gateway/reply"
)

// Kind sorts refusals into the few answers an HTTP gateway gives. Each kind
// maps to one status code and, in the gateway, to one problem+json type.
type Kind int

// The kinds of refusal.
const (
	// KindUnauthenticated: no valid credential was presented (401).
	KindUnauthenticated Kind = iota + 1
	// KindForbidden: the caller is known but not allowed (403).
	KindForbidden
	// KindBadRequest: the request itself is malformed (400).
	KindBadRequest
	// KindQuota: the caller is over its quota; retry later (429).
	KindQuota
	// KindUnavailable: a dependency (the OpenID provider) failed (503).
	KindUnavailable
	// KindInternal: a fault on this side, such as a failed disk write (500).
	KindInternal
	// KindNotFound: the named object (a service account) does not exist (404).
	KindNotFound
)

// Status is the HTTP status code of the kind: its problem type's.
func (k Kind) Status() int {
	t, _ := reply.LookupProblemType(k.problemType())
	return t.Status
}

// problemType names the problem type of the kind (see
// reply.ProblemTypes).
func (k Kind) problemType() string {
	switch k {
	case KindUnauthenticated:
		return "unauthenticated"
	case KindForbidden:
		return "forbidden"
	case KindBadRequest:
		return "bad-request"
	case KindQuota:
		return "quota-exceeded"
	case KindUnavailable:
		return "unavailable"
	case KindNotFound:
		return "not-found"
	default:
		return "internal"
	}
}

func (k Kind) String() string {
	switch k {
	case KindUnauthenticated:
		return "unauthenticated"
	case KindForbidden:
		return "forbidden"
	case KindBadRequest:
		return "bad_request"
	case KindQuota:
		return "quota"
	case KindUnavailable:
		return "unavailable"
	case KindNotFound:
		return "not_found"
	default:
		return "internal"
	}
}

// Reason is a stable, machine-readable cause of a refusal. Reasons are part
// of the API: metrics are labelled with them and clients may branch on them.
// Never rename one; add new ones instead.
type Reason string

// Reasons for refusing a bearer token (all KindUnauthenticated).
const (
	ReasonMissing      Reason = "missing"       // no Authorization header
	ReasonMalformed    Reason = "malformed"     // not "Bearer <JWS compact>", bad base64 or JSON, missing claims
	ReasonTooLarge     Reason = "too_large"     // longer than MaxTokenBytes; not parsed at all
	ReasonBadType      Reason = "bad_typ"       // typ header is not llst+jwt
	ReasonBadAlg       Reason = "bad_alg"       // alg header is not exactly EdDSA (none, HS256, RS256 ...)
	ReasonUnknownKID   Reason = "unknown_kid"   // kid names no key that may verify now
	ReasonBadSignature Reason = "bad_signature" // the ed25519 signature does not verify
	ReasonExpired      Reason = "expired"       // exp + skew is in the past
	ReasonNotYetValid  Reason = "not_yet_valid" // nbf or iat - skew is in the future
	ReasonBadLifetime  Reason = "bad_lifetime"  // exp - iat exceeds the token lifetime
	ReasonWrongIssuer  Reason = "wrong_iss"
	ReasonWrongAud     Reason = "wrong_aud"
	ReasonRevoked      Reason = "revoked" // the subject's credentials were revoked
)

// Reasons for refusing a login or a token exchange.
const (
	ReasonLoginDisabled   Reason = "login_disabled"   // no OpenID provider configured (503)
	ReasonBadRedirect     Reason = "bad_redirect_uri" // redirect_uri is not a loopback http URL (400)
	ReasonBadRequest      Reason = "bad_request"      // missing or malformed parameter (400)
	ReasonStateMismatch   Reason = "state_mismatch"   // unknown, expired, reused or unbound state (401)
	ReasonProviderError   Reason = "provider_error"   // the provider answered the callback with an error (401)
	ReasonCodeExchange    Reason = "code_exchange"    // the provider refused the code (wrong code_verifier, reused code) (401)
	ReasonProviderDown    Reason = "provider_unavailable"
	ReasonIDToken         Reason = "id_token_invalid" // signature, iss, aud, exp of the id_token (401)
	ReasonWrongAZP        Reason = "wrong_azp"        // azp is not our client id (401)
	ReasonNonceMismatch   Reason = "nonce_mismatch"   // nonce is not the one sent with this login (401)
	ReasonNonceReused     Reason = "nonce_reused"     // nonce was already used by a completed login (401)
	ReasonEmailUnverified Reason = "email_unverified" // email_verified is not true (401)
	ReasonWrongHD         Reason = "wrong_hd"         // hd is not the configured domain (401)
	ReasonBadClient       Reason = "invalid_client"   // unknown service account or wrong secret (401)
	ReasonBadGrant        Reason = "invalid_grant"    // unknown, expired or reused login code, wrong verifier (401)
	ReasonUnsupported     Reason = "unsupported_grant_type"
	ReasonNotMember       Reason = "not_member"      // no membership in the tenant: no token (403)
	ReasonTenantRequired  Reason = "tenant_required" // member of several tenants: say which (400)
)

// Reasons for refusing an authenticated caller.
const (
	ReasonForbidden   Reason = "forbidden"    // the roles do not grant the capability (403)
	ReasonCrossTenant Reason = "cross_tenant" // acting on another tenant without cross_tenant (403)
	ReasonQuota       Reason = "quota"        // over quota (429), see Error.RetryAfter
	ReasonInternal    Reason = "internal"
	ReasonUnknownRole Reason = "unknown_role"  // no such role in the tenant (400)
	ReasonNotFound    Reason = "not_found"     // no such service account (404)
	ReasonBatchTooBig Reason = "quota_batch"   // n exceeds the burst: never allowed, split the batch (400)
	ReasonBusy        Reason = "identity_busy" // the cluster's identity cannot be changed now (503)
)

// Error is every refusal this package returns. Detail is safe to show to
// the client; Err (the cause, possibly from a library) is for logs only.
type Error struct {
	Kind   Kind
	Reason Reason
	Detail string
	// RetryAfter is set on KindQuota: when the request would be allowed.
	RetryAfter time.Duration
	Err        error
}

func (e *Error) Error() string {
	switch {
	case e.Err != nil && e.Detail != "":
		return "identity: " + string(e.Reason) + ": " + e.Detail + ": " + e.Err.Error()
	case e.Err != nil:
		return "identity: " + string(e.Reason) + ": " + e.Err.Error()
	case e.Detail != "":
		return "identity: " + string(e.Reason) + ": " + e.Detail
	}
	return "identity: " + string(e.Reason)
}

func (e *Error) Unwrap() error { return e.Err }

// Status is the HTTP status code for the refusal.
func (e *Error) Status() int { return e.Kind.Status() }

// Is makes errors.Is(err, ErrUnauthenticated) and the other kind sentinels
// work on any *Error of that kind.
func (e *Error) Is(target error) bool {
	k, ok := target.(kindError)
	return ok && Kind(k) == e.Kind
}

type kindError Kind

func (k kindError) Error() string { return "identity: " + Kind(k).String() }

// Sentinels for errors.Is, one a kind.
const (
	ErrUnauthenticated = kindError(KindUnauthenticated)
	ErrForbidden       = kindError(KindForbidden)
	ErrBadRequest      = kindError(KindBadRequest)
	ErrQuota           = kindError(KindQuota)
	ErrUnavailable     = kindError(KindUnavailable)
	ErrInternal        = kindError(KindInternal)
	ErrNotFound        = kindError(KindNotFound)
)

// ErrDirLocked is returned by New when KeyDir or StateDir is held by
// another Service (another process, or one not yet closed). While a server
// runs, change keys and accounts through it (its admin routes), not by
// opening its directories from a second process.
const ErrDirLocked = constError("identity: directory locked by another process")

type constError string

func (e constError) Error() string { return string(e) }

// ProblemOf returns the problem+json answer to err, a refusal of this
// package: the problem type of its kind, err's message as the detail, its
// reason as the rule and, over quota, its RetryAfter. An internal error, or
// an error that is not an *Error, is an internal problem without details
// (the cause is for the log).
func ProblemOf(err error) *reply.Problem {
	var e *Error
	if !errors.As(err, &e) || e.Kind.problemType() == "internal" {
		return reply.NewProblem("internal", "")
	}
	p := reply.NewProblem(e.Kind.problemType(), err.Error())
	p.Rule = string(e.Reason)
	if e.Kind == KindQuota {
		p.RetryAfter = e.RetryAfter
	}
	return p
}

// ReasonOf returns the reason of err if it is (or wraps) an *Error, and ""
// otherwise.
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

func unauth(r Reason, detail string) *Error {
	return &Error{Kind: KindUnauthenticated, Reason: r, Detail: detail}
}

func badRequest(r Reason, format string, args ...any) *Error {
	return &Error{Kind: KindBadRequest, Reason: r, Detail: fmt.Sprintf(format, args...)}
}

func internal(err error) *Error {
	return &Error{Kind: KindInternal, Reason: ReasonInternal, Err: err}
}
