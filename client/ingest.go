package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// IngestResult is the server's answer to an ingest request: one result per
// span, in the order sent, and the counts.
type IngestResult struct {
	Accepted   int          `json:"accepted"`
	Duplicates int          `json:"duplicates"`
	Rejected   int          `json:"rejected"`
	Results    []LineResult `json:"results"`
}

// LineStatus is what became of one span of an ingest request.
type LineStatus string

// The line statuses.
const (
	// Accepted: the span is durable in the ledger; Receipt proves it.
	Accepted LineStatus = "accepted"
	// Duplicate: a span with this tenant and id was stored before (perhaps
	// by an earlier try of the same request); Receipt is the original one
	// and the span sent was not stored again.
	Duplicate LineStatus = "duplicate"
	// Rejected: the span was not stored; Problem says why.
	Rejected LineStatus = "rejected"
)

// LineResult is the outcome of one span of an ingest request.
type LineResult struct {
	// Line is the span's line in the request that carried it, from 1: for
	// Ingest, its position among the spans passed, plus one.
	Line   int        `json:"line"`
	ID     string     `json:"id,omitempty"`
	Status LineStatus `json:"status"`
	// Seq and Receipt are set for accepted and duplicate spans.
	Seq     uint64   `json:"seq"`
	Receipt *Receipt `json:"receipt,omitempty"`
	// Problem is set for rejected spans: type, title, status, detail, and
	// for contract violations the field, rule and where the rule is written;
	// its RequestID is the ingest request's.
	Problem *Problem `json:"problem,omitempty"`
}

// Stored reports whether the span is in the ledger, accepted now or before.
func (r LineResult) Stored() bool { return r.Status == Accepted || r.Status == Duplicate }

// Err returns nil for a stored span and, for a rejected one, an *Error
// carrying its problem.
func (r LineResult) Err() error {
	if r.Stored() {
		return nil
	}
	if r.Problem == nil {
		return &Error{Status: http.StatusUnprocessableEntity, Problem: Problem{Title: "span rejected", Status: http.StatusUnprocessableEntity, Detail: fmt.Sprintf("line %d: status %q and no problem", r.Line, r.Status)}}
	}
	return &Error{Status: r.Problem.Status, Problem: *r.Problem}
}

// Ingest sends spans to the ledger in one request (NDJSON, one span per
// line) and returns each span's result, in order, once every accepted span
// is durable. Lines are independent: a rejected span does not sink the
// others, and the error is nil as long as the request as a whole was
// answered, even when every span was rejected. A request refused as a whole
// (unauthenticated, too large, rate limited after the retries) is an *Error.
//
// A request that fails in transport or is answered 429/503 is retried as
// the client's RetryPolicy says, which is safe because the server stores a
// span once per (tenant, id); see RetryPolicy. For a steady flow of spans,
// use a Batcher.
func (c *Client) Ingest(ctx context.Context, spans ...Span) (*IngestResult, error) {
	if len(spans) == 0 {
		return nil, errors.New("loglineos: ingest: no spans")
	}
	var body []byte
	withIDs := true
	for i := range spans {
		var err error
		if body, err = appendSpan(body, &spans[i]); err != nil {
			return nil, fmt.Errorf("loglineos: ingest: span %d: %w", i, err)
		}
		withIDs = withIDs && spans[i].ID != ""
	}
	return c.ingest(ctx, body, len(spans), func() bool { return withIDs })
}

// appendSpan appends a span's JSON and a newline to dst.
func appendSpan(dst []byte, s *Span) ([]byte, error) {
	b := bytes.NewBuffer(dst)
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil { // Encode ends it with "\n"
		return dst, err
	}
	return b.Bytes(), nil
}

// IngestRaw is Ingest for spans the caller has as JSON already, one object
// each. A span spread over several lines is compacted to one; a line that
// holds a newline and is not valid JSON is an error, as is an empty one.
// Other invalid JSON is sent as it is, for the server to reject that line
// alone.
func (c *Client) IngestRaw(ctx context.Context, spans ...[]byte) (*IngestResult, error) {
	body, err := ndjson(spans)
	if err != nil {
		return nil, err
	}
	return c.ingest(ctx, body, len(spans), func() bool { return allHaveIDs(spans) })
}

// ndjson frames JSON texts as NDJSON lines.
func ndjson(spans [][]byte) ([]byte, error) {
	if len(spans) == 0 {
		return nil, errors.New("loglineos: ingest: no spans")
	}
	n := 0
	for _, s := range spans {
		n += len(s) + 1
	}
	body := make([]byte, 0, n)
	for i, s := range spans {
		line, err := rawLine(s)
		if err != nil {
			return nil, fmt.Errorf("loglineos: ingest: span %d: %w", i, err)
		}
		body = append(append(body, line...), '\n')
	}
	return body, nil
}

// rawLine returns one span's JSON as one line.
func rawLine(s []byte) ([]byte, error) {
	if len(bytes.TrimSpace(s)) == 0 {
		return nil, errors.New("empty")
	}
	if !bytes.ContainsAny(s, "\r\n") {
		return s, nil
	}
	var b bytes.Buffer
	if err := json.Compact(&b, s); err != nil {
		return nil, fmt.Errorf("spans several lines and is not valid JSON: %w", err)
	}
	return b.Bytes(), nil
}

// allHaveIDs reports whether every span names its id.
func allHaveIDs(spans [][]byte) bool {
	for _, s := range spans {
		var v struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(s, &v) != nil || v.ID == "" {
			return false
		}
	}
	return true
}

// ingest posts an NDJSON body of n lines and reads the per-line results.
func (c *Client) ingest(ctx context.Context, body []byte, n int, mayRetry func() bool) (*IngestResult, error) {
	r, err := c.do(ctx, call{method: http.MethodPost, path: "/ingest", body: body, ctype: "application/x-ndjson", mayRetry: mayRetry})
	if err != nil {
		return nil, err
	}
	var res IngestResult
	switch {
	case r.ok():
		if err := json.Unmarshal(r.body, &res); err != nil {
			return nil, fmt.Errorf("loglineos: ingest: reading the answer: %w", err)
		}
	case r.status >= 400 && r.status < 500:
		// Every line rejected: a problem carrying the per-line results. A
		// problem without them refused the request as a whole.
		var p struct {
			Results []LineResult `json:"results"`
		}
		if !isProblem(r.header.Get("Content-Type")) || json.Unmarshal(r.body, &p) != nil || len(p.Results) == 0 {
			return nil, errorFrom(r)
		}
		res = IngestResult{Rejected: len(p.Results), Results: p.Results}
	default:
		return nil, errorFrom(r)
	}
	if len(res.Results) != n {
		return nil, fmt.Errorf("loglineos: ingest: the server answered %d results for %d spans", len(res.Results), n)
	}
	id := r.header.Get("X-Request-Id")
	for i, lr := range res.Results {
		if lr.Line != i+1 {
			return nil, fmt.Errorf("loglineos: ingest: result %d is for line %d", i+1, lr.Line)
		}
		if lr.Problem != nil && lr.Problem.RequestID == "" {
			lr.Problem.RequestID = id
		}
	}
	return &res, nil
}
