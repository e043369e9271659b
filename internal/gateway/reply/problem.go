package reply

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// Problem is an RFC 9457 problem detail. Type is a relative URI,
// /problems/NAME, for one of ProblemTypes; the gateway serves a short page
// for each type at that path.
type Problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail,omitempty"`
	Instance  string `json:"instance,omitempty"`
	RequestID string `json:"request_id,omitempty"`
	// For a rejected span: the field, the rule and where the rule is
	// written (file:line:col of the contract). For a refusal by identity:
	// Rule is its reason (expired, invalid_client, quota ...).
	Field     string `json:"field,omitempty"`
	Rule      string `json:"rule,omitempty"`
	Validator string `json:"validator,omitempty"`
	At        string `json:"at,omitempty"`
	// Results carries the per-line results when every line of an ingest
	// request was rejected.
	Results any `json:"results,omitempty"`
	// Cursor, on the final line of a stream, is where to resume.
	Cursor *uint64 `json:"cursor,omitempty"`
	// RetryAfter, when set, is sent as the Retry-After header.
	RetryAfter time.Duration `json:"-"`
}

func (p *Problem) Error() string {
	if p.Detail != "" {
		return p.Title + ": " + p.Detail
	}
	return p.Title
}

// ProblemType documents one problem type of the API.
type ProblemType struct {
	Name   string // the last element of its type URI, /problems/NAME
	Status int
	Title  string
	Doc    string
}

// The problem types. Their names are part of the API: never rename one.
var problemTypes = []ProblemType{
	{"bad-request", 400, "bad request", "A query parameter or path element is missing or malformed; the detail names it."},
	{"invalid-json", 400, "not valid JSON", "The body (or, for NDJSON, the line) is not a valid JSON text: a syntax error, invalid UTF-8, a duplicate member name. The detail gives the byte offset."},
	{"truncated-line", 400, "truncated last line", "The last NDJSON line has no newline and is not a complete JSON object: the body was cut short. Nothing of it was stored."},
	{"empty-body", 400, "empty body", "The request has no body, or only whitespace."},
	{"bad-cursor", 400, "bad cursor", "The cursor is not a sequence number (a non-negative integer)."},
	{"bad-range", 400, "bad range", "An export's from or to is not a sequence number, from is past to, or to is past the ledger's latest signed checkpoint (an export holds only what the ledger has signed)."},
	{"unauthenticated", 401, "authentication required", "The request carries no valid credential. Send Authorization: Bearer <LLST>; the reason says what was wrong with the one sent."},
	{"token-expired", 401, "token expired", "The final line of an NDJSON stream (a WebSocket closes with code 4401 instead): the token the stream was opened with has expired. Get a new token and reconnect with the cursor member (cursor=N); nothing is lost or sent twice."},
	{"token-revoked", 401, "token revoked", "The final line of an NDJSON stream (a WebSocket closes with code 4401 instead): the service account or person the stream was opened as was revoked. Reconnect with a new, valid token and the cursor member (cursor=N)."},
	{"forbidden", 403, "not allowed", "The credential is valid but its roles do not grant the capability this route needs on this tenant; the detail names the capability. A route that takes a body checks it before reading the body."},
	{"tenant-mismatch", 403, "span for another tenant", "The span names a tenant other than the caller's and the caller may not write there."},
	{"not-found", 404, "not found", "Nothing is stored under that name, or the route does not exist."},
	{"method-not-allowed", 405, "method not allowed", "The route exists but not with this method; the Allow header lists the ones it takes."},
	{"request-timeout", 408, "body too slow", "The request body arrived slower than limits.body_min_rate after limits.body_grace. Nothing of it was stored; send it again at a steady pace."},
	{"unsupported-media-type", 415, "unsupported media type", "POST /ingest takes application/json (one span or an array) or application/x-ndjson (one span per line)."},
	{"unsupported-encoding", 415, "unsupported content encoding", "The body's Content-Encoding is not one the route takes: POST /ingest and POST /quality/dryrun take gzip (decoded up to limits.body_bytes) or none; every other route takes none."},
	{"body-too-large", 413, "request body too large", "The body exceeds limits.body_bytes (decoded, for gzip), or limits.unauth_body_bytes for a request that needs no token. Split it into several requests."},
	{"too-many-lines", 413, "too many lines", "The request holds more spans than limits.lines_per_request. Split it into several requests."},
	{"line-too-large", 413, "line too large", "One line (one span) exceeds limits.line_bytes. That line was not stored; the others were handled on their own."},
	{"id-conflict", 409, "id already stored with other content", "A span with this id is already stored for the tenant, with other content. Nothing was appended; seq and the detail name the stored record and its leaf hash. The id is the span's idempotency key: resending the same content is answered duplicate, new content needs a new id."},
	{"invalid-span", 422, "span rejected by contract", "The span breaks a rule of the span contract: a required field is missing, a value has the wrong type or format. field, rule and at say which rule, written where."},
	{"limit-exceeded", 422, "span exceeds a limit", "The span is nested too deeply or has too many members (limits.json_depth, limits.members)."},
	{"future-when", 422, "when is in the future", "The span's when is further ahead of the server's clock than limits.future_skew allows, so it could close other trajectories early. Check the client's clock."},
	{"rejected", 422, "every line was rejected", "No span of the request was stored; results gives each line's problem."},
	{"quota-exceeded", 429, "quota exceeded", "The tenant or one of the caller's roles is over its quota: spans ingested and dry-run count one each, reads one, opening a stream ten, starting an export a hundred. Retry after the number of seconds in Retry-After."},
	{"too-many-in-flight", 429, "over this client's share", "The caller (its principal, or its address before authentication) or its tenant holds its share of the server's requests, body bytes, streams or dry runs in flight (overload.max_client_*, max_tenant_*). Others are still served. Retry after the number of seconds in Retry-After."},
	{"header-too-large", 431, "request header fields too large", "The request line and header fields exceed limits.header_bytes."},
	{"derivation-behind", 429, "derivation is behind", "Derivation is more records behind the ledger than derive.max_backlog and the tenant's derived_events_perf.on_overload is reject_429 or slow_ingest. Nothing was stored; retry after the number of seconds in Retry-After."},
	{"bad-signature", 401, "webhook signature does not verify", "A webhook received at POST /webhooks/in/{tenant}/{source} has no webhook-signature that verifies with the source's secret or public key (runtime.sources in the tenant's file), or lacks a Standard Webhooks header. Nothing was stored."},
	{"stale-webhook", 401, "webhook timestamp out of tolerance", "The webhook-timestamp of a received webhook is more than five minutes from the server's clock: it may be a replay. Nothing was stored; the sender should sign a fresh attempt."},
	{"webhook-replay", 409, "webhook already received", "A webhook with this webhook-id was already received from this source. Nothing new was stored; results name the spans the first one made."},
	{"webhook-queue-full", 429, "webhook deliveries backlogged", "The tenant has runtime.queue_per_tenant deliveries pending (its endpoints are slow or down), so its ingest is refused until they drain. Nothing was stored; retry after the number of seconds in Retry-After, and see GET /webhooks/{tenant}/deliveries."},
	{"misdirected", 421, "not a server for this request", "This server is a worker of a cluster (cluster.role worker): it serves reads and derived data, and takes no spans. Send them to a gateway of the cluster. Nothing was stored."},
	{"overloaded", 503, "server overloaded", "The server has too many requests or bytes in flight. Retry after the number of seconds in Retry-After."},
	{"unavailable", 503, "service unavailable", "The server is starting or shutting down, its ledger took no appends (a storage error, records found damaged, or a read-only start), derivation does not run on it (a cluster gateway that leaves it to the workers), or, for /readyz, derivation stopped; the detail says which. Nothing was stored."},
	{"no-answer", 503, "no answer from the cluster", "A gateway of a cluster (cluster.nats) published the spans but the cluster's integrator did not answer in time (it is failing over). The spans may or may not be stored: send the same request again, with the same span ids; stored spans are answered duplicate with the receipts they were stored under."},
	{"index-damaged", 503, "index damaged", "The ledger's index or Merkle tree files are damaged, so this lookup, proof or duplicate check cannot be answered truthfully; the records themselves are intact. Nothing was stored. The server rebuilds those files from the records at its next start: operators, restart it (see the runbook)."},
	{"internal", 500, "internal error", "Something failed inside the server. Nothing half-done was stored; quote the request_id when reporting it."},
}

// ProblemTypes lists every problem type the API answers with.
func ProblemTypes() []ProblemType { return slices.Clone(problemTypes) }

// LookupProblemType returns the problem type called name.
func LookupProblemType(name string) (ProblemType, bool) {
	i := slices.IndexFunc(problemTypes, func(t ProblemType) bool { return t.Name == name })
	if i < 0 {
		return ProblemType{}, false
	}
	return problemTypes[i], true
}

// NewProblem returns a problem of the type called name, its detail
// formatted from detail and args as fmt.Sprintf does (detail is taken as
// it is when there are no args). An unknown name is a programming error:
// NewProblem panics.
func NewProblem(name string, detail string, args ...any) *Problem {
	t, ok := LookupProblemType(name)
	if !ok {
		panic("reply: unknown problem type " + name)
	}
	if len(args) > 0 {
		detail = fmt.Sprintf(detail, args...)
	}
	return &Problem{Type: "/problems/" + t.Name, Title: t.Title, Status: t.Status, Detail: detail}
}

// WriteProblem writes p as application/problem+json, never cached, with
// Retry-After when p.RetryAfter is set (in whole seconds, rounded up). An
// empty Instance becomes r's path, an empty RequestID r's request id.
func WriteProblem(w http.ResponseWriter, r *http.Request, p *Problem) {
	if p.Instance == "" {
		p.Instance = r.URL.Path
	}
	if p.RequestID == "" {
		p.RequestID = RequestID(r)
	}
	h := w.Header()
	h["Content-Type"] = hdrProblemJSON
	h["Cache-Control"] = hdrNoStore
	if p.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int((p.RetryAfter+time.Second-1)/time.Second)))
	}
	w.WriteHeader(p.Status)
	b, err := json.Marshal(p)
	if err != nil {
		b = []byte(`{"type":"/problems/internal","title":"internal error","status":500}`)
	}
	w.Write(append(b, '\n'))
}
