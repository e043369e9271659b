package openapi

// The problem types of the gateway (internal/gateway/problem.go): name,
// status, title and description. This is a copy, because the gateway keeps
// its table unexported; TestProblemTypesMatchGateway fails when the two
// differ, and asks every /problems/NAME page of a live gateway. The
// names are part of the API: never rename one.
type problemType struct {
	name   string
	status int
	title  string
	doc    string
}

func problemTypes() []problemType {
	return []problemType{
		{"bad-request", 400, "bad request", "A query parameter or path element is missing or malformed; the detail names it."},
		{"invalid-json", 400, "not valid JSON", "The body (or, for NDJSON, the line) is not a valid JSON text: a syntax error, invalid UTF-8, a duplicate member name. The detail gives the byte offset."},
		{"truncated-line", 400, "truncated last line", "The last NDJSON line has no newline and is not a complete JSON object: the body was cut short. Nothing of it was stored."},
		{"empty-body", 400, "empty body", "The request has no body, or only whitespace."},
		{"bad-cursor", 400, "bad cursor", "The cursor is not a sequence number (a non-negative integer)."},
		{"unauthenticated", 401, "authentication required", "The request carries no valid credential. Send Authorization: Bearer <LLST>; the reason says what was wrong with the one sent."},
		{"forbidden", 403, "not allowed", "The credential is valid but its roles do not grant the capability this route needs on this tenant."},
		{"tenant-mismatch", 403, "span for another tenant", "The span names a tenant other than the caller's and the caller may not write there."},
		{"not-found", 404, "not found", "Nothing is stored under that name, or the route does not exist."},
		{"method-not-allowed", 405, "method not allowed", "The route exists but not with this method; the Allow header lists the ones it takes."},
		{"unsupported-media-type", 415, "unsupported media type", "POST /ingest takes application/json (one span or an array) or application/x-ndjson (one span per line)."},
		{"body-too-large", 413, "request body too large", "The body exceeds limits.body_bytes. Split it into several requests."},
		{"too-many-lines", 413, "too many lines", "The request holds more spans than limits.lines_per_request. Split it into several requests."},
		{"line-too-large", 413, "line too large", "One line (one span) exceeds limits.line_bytes. That line was not stored; the others were handled on their own."},
		{"invalid-span", 422, "span rejected by contract", "The span breaks a rule of the span contract: a required field is missing, a value has the wrong type or format. field, rule and at say which rule, written where."},
		{"limit-exceeded", 422, "span exceeds a limit", "The span is nested too deeply or has too many members (limits.json_depth, limits.members)."},
		{"future-when", 422, "when is in the future", "The span's when is further ahead of the server's clock than limits.future_skew allows, so it could close other trajectories early. Check the client's clock."},
		{"rejected", 422, "every line was rejected", "No span of the request was stored; results gives each line's problem."},
		{"quota-exceeded", 429, "quota exceeded", "The tenant or role is over its ingest quota. Retry after the number of seconds in Retry-After."},
		{"derivation-behind", 429, "derivation is behind", "Derivation is more records behind the ledger than derive.max_backlog and the tenant's derived_events_perf.on_overload is reject_429 or slow_ingest. Nothing was stored; retry after the number of seconds in Retry-After."},
		{"overloaded", 503, "server overloaded", "The server has too many requests or bytes in flight. Retry after the number of seconds in Retry-After."},
		{"unavailable", 503, "service unavailable", "The server is starting, shutting down, or its ledger turned read-only after a storage error; nothing was stored."},
		{"internal", 500, "internal error", "Something failed inside the server. Nothing half-done was stored; quote the request_id when reporting it."},
	}
}
