package openapi

import (
	"fmt"

	"github.com/loglineos/loglineos/internal/gateway/reply"
)

// problemExamples returns an example of each problem type, as the gateway
// writes it for a whole request (with instance and request_id), keyed
// "problem-NAME". invalid is the bundle's problem for a span with a bad
// "when"; rejected is the answer when every line of a request is rejected.
func problemExamples(invalid obj, results arr) (obj, error) {
	type ex struct {
		instance, detail string
		extra            obj
	}
	examples := map[string]ex{
		"bad-request":            {"/things/t_bakery/order:12345", "limit must be between 1 and 10000", nil},
		"invalid-json":           {"/ingest", `invalid character '}' looking for beginning of object key string at byte 12`, nil},
		"truncated-line":         {"/ingest", "the last line ends without a newline in the middle of a JSON value (unexpected end of JSON input)", nil},
		"empty-body":             {"/ingest", "send at least one span", nil},
		"bad-cursor":             {"/ledger/stream", `cursor "next" is not a sequence number`, nil},
		"bad-range":              {"/exports/t_bakery", "export: bad range: to=120 is past the latest signed checkpoint (98 records)", nil},
		"unauthenticated":        {"/ingest", "identity: expired", obj{"rule": "expired"}},
		"token-expired":          {"/ledger/stream", "the stream's token expired; reconnect with a new token and cursor=42", obj{"cursor": 42}},
		"token-revoked":          {"/ledger/stream", "the stream's credential was revoked; reconnect with a new token and cursor=42", obj{"cursor": 42}},
		"request-timeout":        {"/ingest", "the body arrived slower than 64 KiB/s after 10s (limits.body_min_rate, limits.body_grace)", nil},
		"unsupported-encoding":   {"/ingest", "Content-Encoding br: send the body unencoded or as gzip", nil},
		"too-many-in-flight":     {"/ingest", "this client has 64 MiB of request bodies in flight; its share is 64 MiB (overload.max_client_bytes)", nil},
		"header-too-large":       {"/ingest", "the request line and header fields take 70000 bytes; the server takes at most 64 KiB (limits.header_bytes)", nil},
		"forbidden":              {"/ledger/stream", `sa:pos-7 may not use stream.read on tenant "t_cafe" (its tenant is "t_bakery")`, nil},
		"tenant-mismatch":        {"/ingest", `span for tenant "t_cafe"; the caller's tenant is "t_bakery"`, obj{"field": "tenant", "rule": "tenant of the span must be the caller's"}},
		"not-found":              {"/spans/t_bakery/s_404", `no span "s_404" in tenant "t_bakery"`, nil},
		"method-not-allowed":     {"/ingest", "GET /ingest: this path takes POST", nil},
		"unsupported-media-type": {"/ingest", "Content-Type text/plain: send application/json or application/x-ndjson", nil},
		"body-too-large":         {"/ingest", "body exceeds 16 MiB (limits.body_bytes)", nil},
		"too-many-lines":         {"/ingest", "more than 100000 spans in one request (limits.lines_per_request)", nil},
		"line-too-large":         {"/ingest", "line of 70000 bytes exceeds 65536 (limits.line_bytes)", nil},
		"id-conflict":            {"/ingest", `span "s_1" of tenant "t_bakery" is stored at seq 12 (leaf 3q2+7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=) with other content; nothing was appended: send new content under a new id`, nil},
		"limit-exceeded":         {"/ingest", "span: nesting depth 17 exceeds 16", obj{"rule": "limits.json_depth"}},
		"future-when":            {"/ingest", "when 2025-10-06T09:00:00Z is 10h40m30s ahead of the server's clock; at most 5m0s is allowed", obj{"field": "when", "rule": "limits.future_skew"}},
		"quota-exceeded":         {"/ingest", "identity: quota: over 2000 spans/s for tenant t_bakery", nil},
		"derivation-behind":      {"/ingest", "derivation is 1200000 records behind the ledger; this server holds ingest back past 1000000", nil},
		"bad-signature":          {"/webhooks/in/t_bakery/stripe", "runtime: webhook signature does not verify: webhook: no signature verifies", nil},
		"stale-webhook":          {"/webhooks/in/t_bakery/stripe", "runtime: webhook timestamp outside the tolerance: webhook-timestamp is 7m12s from this server's clock (at most 5m0s)", nil},
		"webhook-replay":         {"/webhooks/in/t_bakery/stripe", `runtime: webhook already received: webhook-id "msg_2Lh9" from stripe`, nil},
		"webhook-queue-full":     {"/ingest", `tenant "t_bakery" has 10000 or more deliveries pending (runtime.queue_per_tenant); ingest resumes as they drain`, nil},
		"overloaded":             {"/ingest", "1024 requests and 3 MiB of bodies in flight; the server takes at most 1024 and 256 MiB", nil},
		"misdirected":            {"/ingest", "this server is a cluster worker (cluster.role worker): it derives and serves reads, and takes no spans; send them to a gateway of the cluster", nil},
		"unavailable":            {"/ingest", "the ledger takes no appends: ledger: read-only after a write error", nil},
		"no-answer":              {"/ingest", "cluster: no answer from the integrator in time (15s)", nil},
		"index-damaged":          {"/spans/t_bakery/s_1", "the ledger's index files are damaged (the records are not); the server rebuilds them from the records at its next start", nil},
		"internal":               {"/ingest", "", nil},
	}
	out := obj{}
	for _, t := range reply.ProblemTypes() {
		var p obj
		switch t.Name {
		case "invalid-span":
			p = obj{}
			for k, v := range invalid {
				p[k] = v
			}
			p["instance"] = "/ingest"
		case "rejected":
			p = problem("rejected", fmt.Sprintf("%d of %d lines rejected", len(results), len(results)))
			p["instance"] = "/ingest"
			p["results"] = results
		default:
			e, ok := examples[t.Name]
			if !ok {
				return nil, fmt.Errorf("openapi: no example of problem type %s", t.Name)
			}
			p = problem(t.Name, e.detail)
			p["instance"] = e.instance
			for k, v := range e.extra {
				p[k] = v
			}
		}
		p["request_id"] = exampleRequest
		out["problem-"+t.Name] = obj{
			"summary":     fmt.Sprintf("%d %s", t.Status, t.Name),
			"description": t.Doc,
			"value":       p,
		}
	}
	return out, nil
}

// problemVariant is a second example of a problem type, for the routes
// where the generic one would mislead: the identity endpoints' refusals,
// which the gateway writes as its own types with the identity error as
// detail ("identity: <reason>: <detail>") and, for 401, the reason as rule.
type problemVariant struct {
	name     string // the example is "problem-" + name
	typ      string
	instance string
	detail   string
	rule     string
}

func problemVariants() []problemVariant {
	return []problemVariant{
		{"invalid-client", "unauthenticated", "/auth/token", "identity: invalid_client: unknown service account or wrong secret", "invalid_client"},
		{"unsupported-grant", "bad-request", "/auth/token", "identity: unsupported_grant_type: grant_type must be client_credentials or authorization_code", ""},
		{"bad-redirect", "bad-request", "/auth/login", "identity: bad_redirect_uri: redirect_uri must be http://127.0.0.1:PORT/… or http://[::1]:PORT/…", ""},
		{"login-disabled", "unavailable", "/auth/login", "identity: login_disabled: no OpenID provider is configured", ""},
		{"state-mismatch", "unauthenticated", "/auth/callback", "identity: state_mismatch: unknown, expired or already used state", "state_mismatch"},
		{"not-member", "forbidden", "/auth/callback", `identity: not_member: no membership in tenant "t_bakery"`, ""},
		{"unknown-role", "bad-request", "/admin/tenants/t_bakery/service-accounts", `identity: unknown_role: no role "till" in tenant "t_bakery"`, ""},
		{"no-account", "not-found", "/admin/tenants/t_bakery/service-accounts/sa_01K6TQ4Z8N3D5W7XB2C9E1F0GK", `no service account "sa_01K6TQ4Z8N3D5W7XB2C9E1F0GK" in tenant "t_bakery"`, ""},
	}
}

func variantExamples() obj {
	out := obj{}
	for _, v := range problemVariants() {
		p := problem(v.typ, v.detail)
		p["instance"], p["request_id"] = v.instance, exampleRequest
		if v.rule != "" {
			p["rule"] = v.rule
		}
		out["problem-"+v.name] = obj{"summary": fmt.Sprintf("%v %s (%s)", p["status"], v.typ, v.name), "value": p}
	}
	return out
}
