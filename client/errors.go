package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/loglineos/loglineos/internal/gateway/reply"
)

// Sentinel errors. An *Error answers errors.Is for the one that matches its
// status, so callers can write errors.Is(err, client.ErrNotFound) without
// looking at the problem.
var (
	ErrNotFound        = errors.New("loglineos: not found")       // 404
	ErrUnauthenticated = errors.New("loglineos: unauthenticated") // 401
	ErrForbidden       = errors.New("loglineos: forbidden")       // 403
	ErrRateLimited     = errors.New("loglineos: rate limited")    // 429

	// ErrClosed is returned by a Batcher after Close.
	ErrClosed = errors.New("loglineos: batcher closed")

	// ErrBadReceipt is returned (wrapped, with the reason) by VerifyReceipt
	// when a receipt does not prove that the ledger stored the span.
	ErrBadReceipt = errors.New("loglineos: receipt does not verify")
	// ErrSpanMismatch is returned (wrapped, with the leaf hashes) by
	// VerifyReceipt when the receipt itself verifies and names the span's
	// tenant and id, but the span has other content than the one stored.
	// It is an ErrBadReceipt too. A tenant that redacts fields stores the
	// span with those values replaced by keyed hashes, and the receipt is
	// for the span as stored: verify it against the span read back
	// (Client.Span, Record.Body).
	ErrSpanMismatch = fmt.Errorf("%w: the span differs from the one stored (the receipt is for the span as stored; if the tenant redacts fields, verify against the span read back with Client.Span)", ErrBadReceipt)
	// ErrBadProof is returned (wrapped, with the reason) by VerifyProof,
	// VerifyInclusion and OpenCheckpoint when a proof or checkpoint does not
	// verify.
	ErrBadProof = errors.New("loglineos: proof does not verify")
	// ErrBadKey is returned (wrapped, with the reason) by the verification
	// functions for a verifier key that is not one: it is a signed-note
	// ed25519 key, name+hash+base64 key, as `logline ledger key` prints it.
	ErrBadKey = errors.New("loglineos: bad verifier key")
)

// Problem is an RFC 9457 problem detail as the server sends it, for a whole
// request (in an *Error) or for one rejected span of an ingest request (in
// a LineResult): the server's own type. Type is a relative URI such as
// "/problems/invalid-span"; the server serves a short page describing each
// type at that path, and the names never change. Cursor, on the last line
// of a stream that ended (a token revoked or expired), is where to resume.
type Problem = reply.Problem

// Error is a request the server answered with an error status. Problem is
// the server's problem+json body: its Type ("/problems/not-found", stable,
// documented at that path on the server), Title, Detail, Instance (the
// path asked for) and RequestID (the id the server logged the request
// under, from the problem or else the X-Request-Id header: quote it to the
// operator). For an answer that carried no problem (a proxy's HTML page,
// say) Problem is filled in from the status, the path and the start of the
// body. Error() says each once:
//
//	loglineos: 404 not found: no span "s_9" in tenant "t_bakery" (/problems/not-found at /spans/t_bakery/s_9, request req_01JD…)
type Error struct {
	Status  int
	Problem Problem
	// RetryAfter is the server's Retry-After, zero when it sent none.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	p := &e.Problem
	var b strings.Builder
	fmt.Fprintf(&b, "loglineos: %d %s", e.Status, p.Title)
	if p.Detail != "" {
		b.WriteString(": ")
		b.WriteString(p.Detail)
	}
	if p.Field != "" && !strings.Contains(p.Detail, strconv.Quote(p.Field)) {
		fmt.Fprintf(&b, " (field %q)", p.Field)
	}
	var where []string
	switch {
	case p.Type != "" && p.Instance != "":
		where = append(where, p.Type+" at "+p.Instance)
	case p.Type != "":
		where = append(where, p.Type)
	case p.Instance != "":
		where = append(where, "at "+p.Instance)
	}
	if p.RequestID != "" {
		where = append(where, "request "+p.RequestID)
	}
	if len(where) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(where, ", "))
	}
	return b.String()
}

// Is reports whether target is the sentinel for e's status.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrUnauthenticated:
		return e.Status == http.StatusUnauthorized
	case ErrForbidden:
		return e.Status == http.StatusForbidden
	case ErrRateLimited:
		return e.Status == http.StatusTooManyRequests
	}
	return false
}

// errorFrom builds the *Error for a non-2xx response.
func errorFrom(r *response) *Error {
	e := &Error{Status: r.status, RetryAfter: r.retryAfter}
	if !isProblem(r.header.Get("Content-Type")) || json.Unmarshal(r.body, &e.Problem) != nil {
		e.Problem = Problem{Title: strings.ToLower(http.StatusText(r.status)), Instance: r.path}
		if e.Problem.Title == "" {
			e.Problem.Title = "unexpected status"
		}
		if d := strings.TrimSpace(string(r.body)); d != "" {
			if len(d) > 200 {
				d = d[:200] + "…"
			}
			e.Problem.Detail = d
		}
	}
	if e.Problem.Status == 0 {
		e.Problem.Status = r.status
	}
	if e.Problem.RequestID == "" {
		e.Problem.RequestID = r.header.Get("X-Request-Id")
	}
	return e
}

// prefix starts every message of the SDK's errors.
const prefix = "loglineos: "

// after is err said after what (which starts with prefix),
// with err's own prefix left out so that it is said once; errors.Is and
// errors.As see err.
func after(what string, err error) error {
	return &afterError{what: what, err: err}
}

type afterError struct {
	what string
	err  error
}

func (e *afterError) Error() string {
	return e.what + ": " + strings.TrimPrefix(e.err.Error(), prefix)
}

func (e *afterError) Unwrap() error { return e.err }

func isProblem(ct string) bool {
	ct, _, _ = strings.Cut(ct, ";")
	ct = strings.TrimSpace(strings.ToLower(ct))
	return ct == "application/problem+json" || ct == "application/json"
}
