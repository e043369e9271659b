package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
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
	// ErrBadProof is returned (wrapped, with the reason) by VerifyProof and
	// VerifyInclusion when a proof or checkpoint does not verify.
	ErrBadProof = errors.New("loglineos: proof does not verify")
)

// Problem is an RFC 9457 problem detail as the server sends it, for a whole
// request (in an *Error) or for one rejected span of an ingest request (in
// a LineResult): the server's own type. Type is a relative URI such as
// "/problems/invalid-span"; the server serves a short page describing each
// type at that path, and the names never change. Cursor, on the last line
// of a stream that ended (a token revoked or expired), is where to resume.
type Problem = reply.Problem

// Error is a request the server answered with an error status. Problem is
// the server's problem+json body; for an answer that carried none (a proxy's
// HTML page, say) it is filled in from the status and the start of the body.
type Error struct {
	Status  int
	Problem Problem
	// RetryAfter is the server's Retry-After, zero when it sent none.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "loglineos: %d %s", e.Status, e.Problem.Title)
	if e.Problem.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Problem.Detail)
	}
	if e.Problem.Field != "" {
		fmt.Fprintf(&b, " (field %q)", e.Problem.Field)
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
	if isProblem(r.header.Get("Content-Type")) && json.Unmarshal(r.body, &e.Problem) == nil {
		if e.Problem.Status == 0 {
			e.Problem.Status = r.status
		}
		return e
	}
	e.Problem = Problem{Title: strings.ToLower(http.StatusText(r.status)), Status: r.status}
	if e.Problem.Title == "" {
		e.Problem.Title = "unexpected status"
	}
	if d := strings.TrimSpace(string(r.body)); d != "" {
		if len(d) > 200 {
			d = d[:200] + "…"
		}
		e.Problem.Detail = d
	}
	return e
}

func isProblem(ct string) bool {
	ct, _, _ = strings.Cut(ct, ";")
	ct = strings.TrimSpace(strings.ToLower(ct))
	return ct == "application/problem+json" || ct == "application/json"
}
