package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/loglineos/loglineos/internal/bytesize"
	"github.com/loglineos/loglineos/internal/gateway/reply"
	"github.com/loglineos/loglineos/internal/identity"
	"github.com/loglineos/loglineos/internal/jsonstr"
	"github.com/loglineos/loglineos/internal/ledger"
	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
	"github.com/loglineos/loglineos/internal/span"
)

// POST /ingest takes application/json (one span, or an array of spans) or
// application/x-ndjson (one span per line). Each span ("line"; for an array,
// each element, numbered from 1) is handled on its own: decoded strictly,
// checked against the contract, the clock skew and the caller's tenant, and
// then all the good ones are appended to the ledger in one call. The answer
// lists every line in request order, accepted (with its receipt), duplicate
// (the same content under an id already stored: the original receipt) or
// rejected (with a problem naming the field and the rule; a span whose id
// is stored with other content is rejected with 409 id-conflict naming the
// stored record's seq and leaf), and is written only once every accepted
// span is durable.
//
// HTTP 200 when at least one line was accepted or was a duplicate; otherwise
// a 4xx problem+json whose results member carries the same list.

// lineResult is one line's outcome on the wire.
type lineResult struct {
	Line    int                `json:"line"`
	ID      string             `json:"id,omitempty"`
	Status  string             `json:"status"`
	Seq     *uint64            `json:"seq,omitempty"`
	Receipt *ledgerfmt.Receipt `json:"receipt,omitempty"`
	Problem *reply.Problem     `json:"problem,omitempty"`
}

type ingestResponse struct {
	Accepted   int          `json:"accepted"`
	Duplicates int          `json:"duplicates"`
	Rejected   int          `json:"rejected"`
	Results    []lineResult `json:"results"`
}

// bodyKind is how the body is framed.
type bodyKind int

const (
	bodyJSON bodyKind = iota
	bodyNDJSON
)

func mediaKind(ct string) (bodyKind, error) {
	if ct == "" {
		return 0, reply.NewProblem("unsupported-media-type", "no Content-Type: send application/json or application/x-ndjson")
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return 0, reply.NewProblem("unsupported-media-type", "malformed Content-Type %q", ct)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return 0, reply.NewProblem("unsupported-media-type", "charset %q: spans are UTF-8", cs)
	}
	switch mt {
	case "application/json":
		return bodyJSON, nil
	case "application/x-ndjson", "application/ndjson", "application/jsonl":
		return bodyNDJSON, nil
	}
	return 0, reply.NewProblem("unsupported-media-type", "Content-Type %s: send application/json or application/x-ndjson", mt)
}

func (g *Gateway) ingest(w http.ResponseWriter, r *http.Request) error {
	kind, err := mediaKind(r.Header.Get("Content-Type"))
	if err != nil {
		return err
	}
	lim := g.cfg.Limits
	// A tenant already over its quota is refused before its body is read:
	// one token now, the rest once the spans are counted.
	if g.cfg.Quota != nil {
		if err := g.cfg.Quota.AllowPrincipal(principal(r), 1); err != nil {
			return g.authProblem(err)
		}
	}
	if r.ContentLength > int64(lim.BodyBytes) {
		return reply.NewProblem("body-too-large", "body of %s exceeds %s (limits.body_bytes)", bytesize.Format(r.ContentLength), bytesize.Format(lim.BodyBytes))
	}
	body, err := readBody(w, r, int64(lim.BodyBytes))
	if err != nil {
		return bodyError(err, int64(lim.BodyBytes))
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return reply.NewProblem("empty-body", "send at least one span")
	}
	var lines []rawLine
	switch kind {
	case bodyNDJSON:
		lines, err = splitNDJSON(body, lim.LinesPerRequest)
	default:
		lines, err = splitJSON(body, lim.LinesPerRequest)
	}
	if err != nil {
		return err
	}

	p := principal(r)
	// The quota counts the spans sent, before any is decoded, so that a
	// tenant over its quota costs the server little.
	if g.cfg.Quota != nil && len(lines) > 1 {
		if err := g.cfg.Quota.AllowPrincipal(p, len(lines)-1); err != nil {
			return g.authProblem(err)
		}
	}
	now := g.cfg.Now()
	results := make([]lineResult, len(lines))
	entries := make([]ledger.Entry, 0, len(lines))
	at := make([]int, 0, len(lines)) // entries[i] is line at[i]
	plim := span.Limits{MaxBytes: int(lim.LineBytes), MaxMembers: lim.Members, MaxDepth: lim.JSONDepth}
	var rejected int
	for i, ln := range lines {
		res := &results[i]
		res.Line = ln.n
		e, id, prob, err := g.entryOf(ln, plim, p, now)
		if err != nil {
			return err
		}
		res.ID = id
		if prob != nil {
			res.Status = "rejected"
			res.Problem = prob
			rejected++
			g.countRejected(e.Tenant, p)
			continue
		}
		entries = append(entries, e)
		at = append(at, i)
	}
	g.metrics.IngestSpans.WithLabelValues("rejected").Add(float64(rejected))

	var accepted, dups, conflicts int
	if len(entries) > 0 {
		if g.cfg.Backpressure != nil {
			if err := g.cfg.Backpressure.Admit(r.Context(), entries[0].Tenant); err != nil {
				g.metrics.Throttled.WithLabelValues("derivation_backlog").Inc()
				return err
			}
		}
		start := time.Now()
		out, err := g.cfg.Ledger.Append(r.Context(), entries)
		g.metrics.AppendDuration.Observe(time.Since(start).Seconds())
		if err != nil {
			if errors.Is(err, ledger.ErrReadOnly) || errors.Is(err, ledger.ErrClosed) {
				return reply.NewProblem("unavailable", "the ledger takes no appends: %v", err)
			}
			return fmt.Errorf("append: %w", err)
		}
		for k, o := range out {
			res := &results[at[k]]
			rc := o.Receipt
			seq := rc.Seq
			res.Seq, res.Receipt = &seq, &rc
			switch o.Status {
			case ledger.Duplicate:
				res.Status = "duplicate"
				dups++
				continue
			case ledger.Conflict:
				// The id is taken by other content: say so, never drop
				// the new data silently.
				res.Status, res.Receipt = "rejected", nil
				res.Problem = reply.NewProblem("id-conflict", "span %q of tenant %q is stored at seq %d (leaf %s) with other content; nothing was appended: send new content under a new id",
					entries[k].ID, entries[k].Tenant, rc.Seq, rc.Leaf)
				rejected++
				conflicts++
				g.countRejected(entries[k].Tenant, p)
				continue
			}
			res.Status = "accepted"
			accepted++
			g.metrics.IngestByTenant.WithLabelValues(g.metrics.Tenant(entries[k].Tenant)).Inc()
		}
		g.metrics.IngestSpans.WithLabelValues("accepted").Add(float64(accepted))
		g.metrics.IngestSpans.WithLabelValues("duplicate").Add(float64(dups))
		g.metrics.IngestSpans.WithLabelValues("conflict").Add(float64(conflicts))
		g.metrics.Receipts.Add(float64(accepted))
	}
	resp := ingestResponse{Accepted: accepted, Duplicates: dups, Rejected: rejected, Results: results}
	if accepted+dups == 0 {
		var pr *reply.Problem
		if len(results) == 1 {
			// One span: its own problem is the answer.
			c := *results[0].Problem
			pr = &c
		} else {
			pr = reply.NewProblem("rejected", "%d of %d lines rejected", rejected, len(lines))
			pr.Status = commonStatus(results)
		}
		pr.Results = results
		return pr
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(appendIngestResponse(make([]byte, 0, 64+len(results)*700), &resp))
	return err
}

// entryOf checks a line and returns the ledger entry of its span
// (redacted), the span's id when known, or the line's problem.
func (g *Gateway) entryOf(ln rawLine, plim span.Limits, p *identity.Principal, now time.Time) (ledger.Entry, string, *reply.Problem, error) {
	s, prob := g.checkLine(ln, plim, p, now)
	if prob != nil {
		if s != nil {
			return ledger.Entry{Tenant: s.Tenant}, s.ID, prob, nil
		}
		return ledger.Entry{}, "", prob, nil
	}
	if g.cfg.Redactor != nil {
		rs, err := g.cfg.Redactor.Redact(s)
		if err != nil {
			return ledger.Entry{}, s.ID, nil, fmt.Errorf("redact line %d: %w", ln.n, err)
		}
		s = rs
	}
	return ledger.Entry{Kind: ledgerfmt.KindSpan, Tenant: s.Tenant, ID: s.ID, This: s.This, Body: s.Canonical()}, s.ID, nil, nil
}

// countRejected counts a rejected line against the caller's tenant; in
// development, where the caller has none, against the tenant the line
// names. A line cannot charge a tenant that is not its caller's.
func (g *Gateway) countRejected(tenant string, p *identity.Principal) {
	if !p.Dev || tenant == "" {
		tenant = p.Tenant
	}
	if tenant != "" {
		g.metrics.RejectByTenant.WithLabelValues(g.metrics.Tenant(tenant)).Inc()
	}
}

// Submit validates one span as POST /ingest does for a line sent by p, and
// appends it: the path of spans that routers append and that webhooks in
// turn into spans. It returns the receipt and whether the span was a
// duplicate of one stored; a refused span is a *reply.Problem.
func (g *Gateway) Submit(ctx context.Context, p *identity.Principal, body []byte) (ledgerfmt.Receipt, bool, error) {
	lim := g.cfg.Limits
	plim := span.Limits{MaxBytes: int(lim.LineBytes), MaxMembers: lim.Members, MaxDepth: lim.JSONDepth}
	e, _, prob, err := g.entryOf(rawLine{n: 1, b: body}, plim, p, g.cfg.Now())
	if err != nil {
		return ledgerfmt.Receipt{}, false, err
	}
	if prob != nil {
		return ledgerfmt.Receipt{}, false, prob
	}
	out, err := g.cfg.Ledger.Append(ctx, []ledger.Entry{e})
	if err != nil {
		return ledgerfmt.Receipt{}, false, err
	}
	switch o := out[0]; o.Status {
	case ledger.Conflict:
		return ledgerfmt.Receipt{}, false, reply.NewProblem("id-conflict", "span %q of tenant %q is stored at seq %d with other content", e.ID, e.Tenant, o.Receipt.Seq)
	case ledger.Duplicate:
		return o.Receipt, true, nil
	default:
		g.metrics.IngestSpans.WithLabelValues("accepted").Inc()
		g.metrics.Receipts.Inc()
		return o.Receipt, false, nil
	}
}

// bodyError is the problem of a failed body read: the meter's own (over a
// bound, too slow, bad gzip), 413 past limit, or the read error.
func bodyError(err error, limit int64) error {
	var p *reply.Problem
	if errors.As(err, &p) {
		return p
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return reply.NewProblem("body-too-large", "body exceeds %s (limits.body_bytes)", bytesize.Format(limit))
	}
	return fmt.Errorf("read body: %w", err)
}

// preallocBytes bounds the buffer allocated from a declared Content-Length
// before the bytes arrive; a longer body grows its buffer as it is read.
const preallocBytes = 64 << 10

// readBody reads a request body of at most limit bytes into a buffer sized
// from Content-Length when there is a small one.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	body := http.MaxBytesReader(w, r.Body, limit)
	if n := r.ContentLength; n > 0 && n <= min(limit, preallocBytes) {
		buf := make([]byte, n)
		k, err := io.ReadFull(body, buf)
		if err != nil {
			return nil, err
		}
		// Nothing may follow the declared length.
		var one [1]byte
		if m, _ := body.Read(one[:]); m > 0 {
			return nil, errors.New("body longer than its Content-Length")
		}
		return buf[:k], nil
	}
	return io.ReadAll(body)
}

// appendIngestResponse writes the ingest answer as encoding/json would,
// without reflection: one receipt a span makes it the hot path of ingest.
func appendIngestResponse(dst []byte, resp *ingestResponse) []byte {
	dst = append(dst, `{"accepted":`...)
	dst = strconv.AppendInt(dst, int64(resp.Accepted), 10)
	dst = append(dst, `,"duplicates":`...)
	dst = strconv.AppendInt(dst, int64(resp.Duplicates), 10)
	dst = append(dst, `,"rejected":`...)
	dst = strconv.AppendInt(dst, int64(resp.Rejected), 10)
	dst = append(dst, `,"results":`...)
	if resp.Results == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, '[')
		for i := range resp.Results {
			if i > 0 {
				dst = append(dst, ',')
			}
			res := &resp.Results[i]
			dst = append(dst, `{"line":`...)
			dst = strconv.AppendInt(dst, int64(res.Line), 10)
			if res.ID != "" {
				dst = append(dst, `,"id":`...)
				dst = jsonstr.Append(dst, res.ID)
			}
			dst = append(dst, `,"status":`...)
			dst = jsonstr.Append(dst, res.Status)
			if res.Seq != nil {
				dst = append(dst, `,"seq":`...)
				dst = strconv.AppendUint(dst, *res.Seq, 10)
			}
			if res.Receipt != nil {
				dst = append(dst, `,"receipt":`...)
				dst = res.Receipt.AppendJSON(dst)
			}
			if res.Problem != nil {
				dst = append(dst, `,"problem":`...)
				b, _ := json.Marshal(res.Problem)
				dst = append(dst, b...)
			}
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	return append(dst, "}\n"...)
}

// commonStatus is the status of every rejected line when they agree, else 422.
func commonStatus(results []lineResult) int {
	st := 0
	for _, r := range results {
		if r.Problem == nil {
			continue
		}
		if st == 0 {
			st = r.Problem.Status
		} else if st != r.Problem.Status {
			return http.StatusUnprocessableEntity
		}
	}
	if st == 0 {
		return http.StatusUnprocessableEntity
	}
	return st
}

// checkLine decodes and checks one line. It returns the span, when it could
// be decoded, and the problem that rejects it, if any.
func (g *Gateway) checkLine(ln rawLine, plim span.Limits, p *identity.Principal, now time.Time) (*span.Span, *reply.Problem) {
	lim := g.cfg.Limits
	if len(ln.b) > int(lim.LineBytes) {
		return nil, reply.NewProblem("line-too-large", "line of %s exceeds %s (limits.line_bytes)", bytesize.Format(len(ln.b)), bytesize.Format(lim.LineBytes))
	}
	if ln.err != nil {
		return nil, ln.err
	}
	s, err := span.Parse(ln.b, plim)
	if err != nil {
		return nil, g.decodeProblem(err, ln)
	}
	if g.cfg.Validator != nil {
		if rj := g.cfg.Validator.Validate(s); rj != nil {
			pr := reply.NewProblem("invalid-span", "%s", rj.Detail)
			pr.Field, pr.Validator, pr.At = rj.Field, rj.Validator, rj.At
			pr.Rule = rj.Rule
			if rj.Validator != "" {
				pr.Rule = rj.Validator + ": " + rj.Rule
			}
			return s, pr
		}
	} else if prob := builtinContract(s); prob != nil {
		return s, prob
	}
	if s.WhenOK && lim.FutureSkew > 0 && s.When.After(now.Add(lim.FutureSkew)) {
		pr := reply.NewProblem("future-when", "when %s is %s ahead of the server's clock; at most %s is allowed",
			s.WhenRaw, s.When.Sub(now).Round(time.Second), lim.FutureSkew)
		pr.Field, pr.Rule = "when", "limits.future_skew"
		return s, pr
	}
	if !p.Can(s.Tenant, identity.CapIngest) {
		pr := reply.NewProblem("tenant-mismatch", "span for tenant %q; the caller's tenant is %q", s.Tenant, p.Tenant)
		pr.Field, pr.Rule = "tenant", "tenant of the span must be the caller's"
		return s, pr
	}
	return s, nil
}

// decodeProblem turns a span.Parse error into a line's problem.
func (g *Gateway) decodeProblem(err error, ln rawLine) *reply.Problem {
	var se *span.SyntaxError
	var le *span.LimitError
	var fe *span.FieldError
	switch {
	case errors.As(err, &se):
		if ln.last && !ln.newline && se.Offset >= int64(len(ln.b))-1 {
			return reply.NewProblem("truncated-line", "the last line ends without a newline in the middle of a JSON value (%s)", se.Msg)
		}
		return reply.NewProblem("invalid-json", "%s at byte %d", se.Msg, se.Offset)
	case errors.As(err, &le):
		if le.Limit == "bytes" {
			return reply.NewProblem("line-too-large", "line of %d bytes exceeds %d (limits.line_bytes)", le.Got, le.Max)
		}
		pr := reply.NewProblem("limit-exceeded", "%v", err)
		pr.Rule = "limits." + map[string]string{"depth": "json_depth", "members": "members"}[le.Limit]
		return pr
	case errors.As(err, &fe):
		pr := reply.NewProblem("invalid-span", "%s", fe.Msg)
		pr.Field, pr.Rule = fe.Field, fe.Rule
		return pr
	}
	return reply.NewProblem("invalid-json", "%v", err)
}

// builtinContract is the span contract used when no bundle is loaded: the
// rules of canonical_contract_v1.
func builtinContract(s *span.Span) *reply.Problem {
	req := []struct {
		name string
		v    string
	}{{"id", s.ID}, {"tenant", s.Tenant}, {"who", s.Who}, {"did", s.Did}, {"this", s.This}, {"when", s.WhenRaw}, {"status", s.Status}}
	present := map[string]bool{}
	for _, m := range s.Members {
		present[m] = true
	}
	for _, f := range req {
		if !present[f.name] || f.v == "" {
			pr := reply.NewProblem("invalid-span", "field %q is required", f.name)
			pr.Field, pr.Rule = f.name, fmt.Sprintf("require field %q", f.name)
			return pr
		}
	}
	if !s.WhenOK {
		pr := reply.NewProblem("invalid-span", "field \"when\" is not RFC 3339: %s", strconv.Quote(s.WhenRaw))
		pr.Field, pr.Rule = "when", `require field "when" as "rfc3339"`
		return pr
	}
	for _, m := range s.Members {
		switch m {
		case "id", "tenant", "who", "did", "this", "when", "status", "confirmed_by", "data":
		default:
			pr := reply.NewProblem("invalid-span", "unknown field %q: put application fields under data", m)
			pr.Field, pr.Rule = m, "unknown fields are rejected"
			return pr
		}
	}
	return nil
}

// rawLine is one span's bytes as framed in the body.
type rawLine struct {
	n       int // line number (NDJSON) or element number (array), from 1
	b       []byte
	last    bool
	newline bool           // the line ended with a newline
	err     *reply.Problem // a framing problem found while splitting
}

// splitNDJSON cuts a body into lines; blank lines are skipped but counted.
func splitNDJSON(body []byte, maxLines int) ([]rawLine, error) {
	var lines []rawLine
	n := 0
	for len(body) > 0 {
		n++
		i := bytes.IndexByte(body, '\n')
		var line []byte
		nl := i >= 0
		if nl {
			line, body = body[:i], body[i+1:]
		} else {
			line, body = body, nil
		}
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if len(lines) == maxLines {
			return nil, reply.NewProblem("too-many-lines", "more than %d spans in one request (limits.lines_per_request)", maxLines)
		}
		lines = append(lines, rawLine{n: n, b: line, newline: nl})
	}
	if len(lines) > 0 {
		lines[len(lines)-1].last = true
	}
	if len(lines) == 0 {
		return nil, reply.NewProblem("empty-body", "the body holds only blank lines")
	}
	return lines, nil
}

// splitJSON takes one object, or an array whose elements are each a span.
// The array is split at its top-level commas without decoding the elements,
// so a bad element is that element's problem alone.
func splitJSON(body []byte, maxLines int) ([]rawLine, error) {
	b := bytes.TrimSpace(body)
	if len(b) == 0 {
		return nil, reply.NewProblem("empty-body", "send at least one span")
	}
	if b[0] == '{' {
		return []rawLine{{n: 1, b: b, last: true, newline: true}}, nil
	}
	if b[0] != '[' {
		return nil, reply.NewProblem("invalid-json", "the body must be a span (a JSON object) or an array of spans; it starts with %q", b[0])
	}
	if b[len(b)-1] != ']' {
		return nil, reply.NewProblem("invalid-json", "the array is not closed: the body ends with %q (truncated?)", b[len(b)-1])
	}
	inner := b[1 : len(b)-1]
	var lines []rawLine
	depth, start := 0, 0
	inStr, esc := false, false
	emit := func(end int, final bool) error {
		el := bytes.TrimSpace(inner[start:end])
		if len(el) == 0 {
			if final && len(lines) == 0 {
				return nil // []
			}
			return reply.NewProblem("invalid-json", "empty element in the array after element %d", len(lines))
		}
		if len(lines) == maxLines {
			return reply.NewProblem("too-many-lines", "more than %d spans in one request (limits.lines_per_request)", maxLines)
		}
		lines = append(lines, rawLine{n: len(lines) + 1, b: el, newline: true})
		return nil
	}
	for i := 0; i < len(inner); i++ {
		c := inner[i]
		switch {
		case inStr:
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
		case c == '"':
			inStr = true
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			depth--
		case c == ',' && depth == 0:
			if err := emit(i, false); err != nil {
				return nil, err
			}
			start = i + 1
		}
	}
	if err := emit(len(inner), true); err != nil {
		return nil, err
	}
	if len(lines) == 0 {
		return nil, reply.NewProblem("empty-body", "the array holds no spans")
	}
	lines[len(lines)-1].last = true
	return lines, nil
}
