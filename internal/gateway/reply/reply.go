// Package reply writes the answers of LogLineOS's HTTP API: JSON bodies
// (JSON) and RFC 9457 problem details (Problem, WriteProblem), with the one
// set of problem types the API documents (ProblemTypes), each named by a
// relative URI /problems/NAME that the gateway serves a page for.
//
// It is a leaf: the gateway, identity's handlers and the server's admin
// routes all answer through it, so that an error reads the same whichever
// part of the server refused the request. A problem body looks like this:
//
//	HTTP/1.1 429 Too Many Requests
//	Content-Type: application/problem+json
//	Cache-Control: no-store
//	Retry-After: 2
//
//	{"type":"/problems/quota-exceeded","title":"quota exceeded","status":429,
//	 "detail":"…","instance":"/ingest","request_id":"req_01K…","rule":"quota"}
package reply

import (
	"context"
	"encoding/json"
	"net/http"
)

// JSON writes v as an application/json body with status, ending in a
// newline. It sets no caching header: a route that must not be cached
// (tokens, secrets) sets Cache-Control itself.
func JSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header()["Content-Type"] = hdrJSON
	w.WriteHeader(status)
	_, err = w.Write(append(b, '\n'))
	return err
}

type ctxKey struct{}

// WithRequestID returns ctx carrying the id of the request it serves
// ("req_" and a ULID), which WriteProblem puts in request_id.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// RequestID returns the request id r's context carries, or "".
func RequestID(r *http.Request) string {
	id, _ := r.Context().Value(ctxKey{}).(string)
	return id
}

// Header values shared by every answer (one allocation fewer per header
// and request). Nothing writes into a header value in place; Add appends,
// which copies a full slice.
var (
	hdrJSON        = []string{"application/json"}
	hdrProblemJSON = []string{"application/problem+json"}
	hdrNoStore     = []string{"no-store"}
)
