// Package identity decides who a caller is and what it may do: OpenID
// Connect login with PKCE, the LLID of a person, the LLST bearer token, its
// key ring and JWKS, service accounts for apps, roles to capabilities per
// tenant, and the quota buckets.
//
// # The pieces
//
// A person logs in with the identity they already have (Google by default,
// any OpenID provider by configuration): GET /auth/login redirects to the
// provider with state, nonce and a PKCE S256 challenge; GET /auth/callback
// takes the state once, checks it belongs to the browser that started the
// login (a short-lived HttpOnly SameSite=Lax cookie that carries no API
// authority), exchanges the code with the PKCE verifier, and checks the
// id_token: signature, iss, aud, exp (go-oidc), then azp, the nonce (once),
// email_verified and, when a domain is configured, hd. The person's LLID is
// derived from (iss, sub) alone (see LLID), never from the email, and their
// record is kept. Their tenant and roles come from the membership table an
// administrator configures (TenantConfig.Members): no membership, no token.
//
// Apps use service accounts: an id and a 256-bit secret, created for one
// tenant and one role, stored as SHA-256 (see accounts.go for why that is
// enough), exchanged at POST /auth/token (client_credentials) for an LLST.
//
// An LLST is a JWS signed with Ed25519 ("EdDSA"), typ "llst+jwt", with a
// kid, living 15 minutes (see Claims for the format). It carries the
// subject, tenant and roles; capabilities are computed from the roles at
// each request (DefaultRoles and TenantConfig.Roles), so nothing is allowed
// unless the table says so.
//
// # Verification
//
// Service.Authenticate is on every request's path. It refuses, in this
// order and each with its own Reason: a missing or doubled header, a token
// longer than MaxTokenBytes (before any decoding, so a megabyte costs
// nothing), a bad JWS shape, any alg but exactly EdDSA (so "none" and the
// HS256-with-the-public-key confusion die before a key is touched), any
// typ but llst+jwt, header parameters it does not implement (crit, jku,
// jwk, x5u, x5c, b64, zip, enc), a kid that is not a key of the ring that
// may verify now (the kid is only ever a map key: never a path, URL or
// query), a bad signature; then, having verified the signature and only
// then decoded the payload, a wrong iss or aud, a lifetime longer than the
// configured one, and exp/nbf/iat outside the ±60 s skew; finally a revoked
// subject. The verifier is a few dozen lines over crypto/ed25519 rather
// than a general JWT library, so that no option of such a library can be
// left in a dangerous position (RFC 8725); the tests forge tokens with
// golang-jwt and check the published JWKS with go-jose.
//
// A token that verified once, or that this process signed, is cached by its
// SHA-256 (bounded), so an app reusing its token pays at most one signature
// check per token, not one per request (Ed25519 verification is ~50 µs of
// CPU; a cache hit makes the whole path ~1 µs); time, key and revocation
// checks still run every time.
//
// # Keys
//
// The key ring lives in Config.KeyDir (the server passes <data>/jwks/),
// private keys mode 0600 (see keyring.go for the format). A key is born
// "next" (published in the JWKS but not signing, so caching verifiers learn
// it early), becomes "active" at a rotation, then "verify_only" for the
// overlap (at least TokenTTL + Skew, so no token outlives its key), then is
// retired: gone from memory, disk and JWKS. The JWKS max-age is shorter
// than the overlap. Service.Rotate (logline keys rotate) and the scheduled
// rotation in Service.Maintain report to the ReceiptRecorder; a rotation
// that cannot be recorded does not happen.
//
// The receipts describe the files: VerifyState rebuilds ring.json and every
// service account file from them, byte for byte, and checks each key file
// against its kid (logline ledger verify calls it). account.create carries
// SecretFingerprint of the stored secret hash, so that the hash is checked
// too without the secret ever being recorded.
//
// # Quotas
//
// Limiter keeps a token bucket per tenant and per (tenant, role) with a
// quota, in a bounded, sharded LRU: no global lock on the hot path, and one
// tenant's flood only contends on its own bucket. Over quota is an *Error
// of KindQuota carrying RetryAfter.
//
// # Errors and state
//
// Every refusal is an *Error with a Kind (401 unauthenticated, 403
// forbidden, 400, 429, 503 ...) and a stable Reason. ProblemOf turns it
// into the API's problem+json (the kind's /problems/ type, the reason as
// the rule), which the gateway and WriteProblem both write. Counts of refused
// tokens by reason are in Service.RejectCounts and Config.OnReject. There
// is no package state: a Service holds everything, its clock (Config.Now)
// and randomness (Config.Rand) are injected, and a zero Config works.
//
// DevAuthenticator stands in for Service.Authenticate under --dev.
//
// # Shared by a cluster
//
// The nodes of a cluster keep copies of the same KeyDir and StateDir (the
// server mirrors them through the cluster: see the cluster package's
// SharedFiles). Config.Shared makes each change (the ring's creation at the
// first start, a rotation, a retirement, an account created or revoked, a
// user saved) one turn across the nodes, made from the latest files and
// recorded once; a node whose files another changed calls Service.Reload.
// Maintain takes a turn only when its own ring says work is due, and looks
// again inside it: the rotation due everywhere at once is made once.
//
// # Not here
//
// Membership changes do not revoke tokens already issued (they live at
// most 15 minutes; RevokeSubject cuts that short). One Service owns a
// KeyDir and StateDir at a time (an advisory lock; New fails with
// ErrDirLocked otherwise): while the server runs, `logline keys rotate`
// and the account commands go through its admin routes.
package identity
