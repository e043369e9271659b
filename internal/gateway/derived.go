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
	"time"

	"github.com/coder/websocket"

	"github.com/loglineos/loglineos/internal/bytesize"
	"github.com/loglineos/loglineos/internal/derive"
	"github.com/loglineos/loglineos/internal/gateway/reply"
	"github.com/loglineos/loglineos/internal/identity"
	"github.com/loglineos/loglineos/internal/span"
)

// Derived is the store of derived events as the gateway reads it. Each
// tenant has one stream of events numbered from 0; a cursor is an event
// number.
type Derived interface {
	Len(tenant string) uint64
	Events(tenant string, from uint64, fn func(n uint64, ev []byte) bool) (uint64, error)
	Changed() <-chan struct{}
	Trajectory(tenant, id string) ([]json.RawMessage, error)
}

// Backpressure says whether ingest may go on while derivation is behind:
// nil, or a problem (429 or 503 with Retry-After), possibly after waiting.
type Backpressure interface {
	Admit(ctx context.Context, tenant string) error
}

// DryRunFunc runs the cycle over spans with a tenant's policy overrides and
// writes nothing.
type DryRunFunc func(tenant string, spans []*span.Span, overrides map[string]any, opts derive.SimConfig) (derive.Summary, DryRunPolicy, error)

// DryRunPolicy says which policy a dry run used: the tenant's in force
// (its tenant file over the bundle's) or the bundle's when the tenant has
// no file, with the body's overrides over it. Hash is "sha256:" and the
// hex SHA-256 of that configuration's canonical JSON, the same for
// logline quality simulate given the same tenant file.
type DryRunPolicy struct {
	Tenant    string `json:"tenant"`
	Source    string `json:"source"` // "tenant file" or "bundle"
	Overrides bool   `json:"overrides"`
	Hash      string `json:"hash"`
}

// GET /derived/stream?tenant=&cursor=&follow= sends a tenant's derived
// events, one canonical JSON object per line, from event number cursor. To
// resume, add the number of events received to the cursor.
func (g *Gateway) derivedStream(w http.ResponseWriter, r *http.Request) error {
	tenant, cursor, follow, err := g.derivedParams(r)
	if err != nil {
		return err
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	out := newLineBuffer(w, rc)
	ctx := r.Context()
	if g.cfg.StreamContext != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(g.cfg.StreamContext, cancel)()
	}
	write := out.write
	for {
		ch := g.cfg.Derived.Changed()
		var werr error
		stopped := false
		next, err := g.cfg.Derived.Events(tenant, cursor, func(n uint64, ev []byte) bool {
			if ctx.Err() != nil { // the credential ended: not one event more
				stopped = true
				return false
			}
			out.buf = append(append(out.buf, ev...), '\n')
			cursor = n + 1
			if len(out.buf) >= 48<<10 {
				werr = write()
			}
			return werr == nil
		})
		if err != nil {
			g.log.Warn("derived stream ended", "request_id", reply.RequestID(r), "err", err)
			return nil
		}
		if werr != nil {
			return nil
		}
		if !stopped {
			cursor = next
		}
		if p := credentialEnd(ctx, cursor); p != nil {
			return g.endStream(w, r, write, p)
		}
		if write() != nil {
			return nil
		}
		rc.Flush()
		if !follow {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			if p := credentialEnd(ctx, cursor); p != nil {
				return g.endStream(w, r, write, p)
			}
			return nil
		}
	}
}

// GET /derived/ws: the same, one event per WebSocket message, always
// following.
func (g *Gateway) derivedWS(w http.ResponseWriter, r *http.Request) error {
	tenant, cursor, _, err := g.derivedParams(r)
	if err != nil {
		return err
	}
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: g.cfg.CORSOrigins})
	if err != nil {
		return nil
	}
	defer c.CloseNow()
	defer g.wsOpen(tenant)()
	ctx, stop := wsContext(r, c)
	defer stop()
	if g.cfg.StreamContext != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(g.cfg.StreamContext, cancel)()
	}
	wt := g.cfg.Stream.WSWriteTimeout
	for ctx.Err() == nil {
		ch := g.cfg.Derived.Changed()
		var werr error
		stopped := false
		next, err := g.cfg.Derived.Events(tenant, cursor, func(n uint64, ev []byte) bool {
			if ctx.Err() != nil { // the credential ended: not one event more
				stopped = true
				return false
			}
			wctx, cancel := context.WithTimeout(ctx, wt)
			defer cancel()
			if werr = c.Write(wctx, websocket.MessageText, ev); werr != nil {
				if wctx.Err() != nil && ctx.Err() == nil {
					werr = closeSlow(c, fmt.Sprintf("slow consumer: a message waited over %s; reconnect with cursor=%d", wt, n))
				}
				return false
			}
			cursor = n + 1
			return true
		})
		if err != nil || werr != nil {
			return nil
		}
		if !stopped {
			cursor = next
		}
		select {
		case <-ch:
		case <-ctx.Done():
		}
	}
	if !closeCredential(ctx, c, cursor) {
		c.Close(websocket.StatusGoingAway, fmt.Sprintf("stream ended; reconnect with cursor=%d", cursor))
	}
	return nil
}

func (g *Gateway) derivedParams(r *http.Request) (string, uint64, bool, error) {
	if g.cfg.Derived == nil {
		return "", 0, false, reply.NewProblem("unavailable", "derivation is not running on this server")
	}
	tenant := r.URL.Query().Get("tenant")
	if tenant == "" {
		return "", 0, false, reply.NewProblem("bad-request", "tenant= is required: derived streams are per tenant")
	}
	if err := g.can(r, tenant, identity.CapStreamRead); err != nil {
		return "", 0, false, err
	}
	cursor, err := uintParam(r, "cursor", 0)
	if err != nil {
		return "", 0, false, err
	}
	if n := g.cfg.Derived.Len(tenant); cursor > n {
		return "", 0, false, reply.NewProblem("bad-cursor", "cursor %d is past the end of tenant %q's derived stream (%d events)", cursor, tenant, n)
	}
	follow := false
	if f := r.URL.Query().Get("follow"); f != "" {
		if follow, err = strconv.ParseBool(f); err != nil {
			return "", 0, false, reply.NewProblem("bad-request", "follow=%q is not a boolean", f)
		}
	}
	return tenant, cursor, follow, nil
}

// GET /trajectories/{tenant}/{id}: one trajectory's spans, edges, status,
// quality and candidate flag, assembled from its derived events.
func (g *Gateway) trajectory(w http.ResponseWriter, r *http.Request) error {
	tenant, id := r.PathValue("tenant"), r.PathValue("id")
	if g.cfg.Derived == nil {
		return reply.NewProblem("unavailable", "derivation is not running on this server")
	}
	if err := g.can(r, tenant, identity.CapStreamRead); err != nil {
		return err
	}
	events, err := g.cfg.Derived.Trajectory(tenant, id)
	if err != nil {
		return err
	}
	if len(events) == 0 {
		return reply.NewProblem("not-found", "no trajectory %q in tenant %q (or it is not derived yet)", id, tenant)
	}
	out := struct {
		TrajectoryID string            `json:"trajectory_id"`
		Tenant       string            `json:"tenant"`
		Status       string            `json:"status"`
		This         string            `json:"this,omitempty"`
		Edges        []json.RawMessage `json:"edges"`
		Spans        []json.RawMessage `json:"spans"`
		Closed       json.RawMessage   `json:"closed,omitempty"`
		Quality      json.RawMessage   `json:"quality,omitempty"`
		Candidate    json.RawMessage   `json:"candidate,omitempty"`
	}{TrajectoryID: id, Tenant: tenant, Status: "open", Edges: []json.RawMessage{}, Spans: []json.RawMessage{}}
	for _, ev := range events {
		var head struct {
			Type      string `json:"type"`
			SrcSpanID string `json:"src_span_id"`
			This      string `json:"this"`
		}
		if err := json.Unmarshal(ev, &head); err != nil {
			return err
		}
		switch head.Type {
		case "trajectory_edge":
			out.Edges = append(out.Edges, ev)
			if out.This == "" {
				out.This = head.This
			}
			if len(out.Spans) < 1000 {
				if rec, err := g.cfg.Ledger.Get(r.Context(), tenant, head.SrcSpanID); err == nil {
					b, _ := json.Marshal(toRecordJSON(rec))
					out.Spans = append(out.Spans, b)
				}
			}
		case "trajectory_closed":
			out.Closed, out.Status = ev, "closed"
		case "trajectory_quality":
			out.Quality = ev
		case "diamond_candidate":
			out.Candidate = ev
		}
	}
	return reply.JSON(w, http.StatusOK, out)
}

// SummaryJSON is a dry run's answer.
type SummaryJSON struct {
	Spans        uint64 `json:"spans"`
	Trajectories uint64 `json:"trajectories"`
	Open         uint64 `json:"open"`
	Closed       struct {
		Timeout uint64 `json:"timeout"`
		Rule    uint64 `json:"rule"`
		Evicted uint64 `json:"evicted"`
	} `json:"closed"`
	Excepted uint64 `json:"excepted"`
	Scored   uint64 `json:"scored"`
	Score    struct {
		P50       int      `json:"p50"`
		P95       int      `json:"p95"`
		P99       int      `json:"p99"`
		Histogram []uint64 `json:"histogram"`
	} `json:"score"`
	Candidates    uint64            `json:"candidates"`
	CandidateRate float64           `json:"candidate_rate"`
	Threshold     int               `json:"threshold"`
	Shed          uint64            `json:"shed"`
	EventCount    uint64            `json:"event_count"`
	Events        []json.RawMessage `json:"events,omitempty"`
}

// SummaryToJSON turns a simulation summary into its wire form.
func SummaryToJSON(s derive.Summary, events bool) SummaryJSON {
	var out SummaryJSON
	out.Spans, out.Trajectories, out.Open = s.Spans, s.Trajectories, s.Open
	out.Closed.Timeout, out.Closed.Rule, out.Closed.Evicted = s.Timeout, s.Rule, s.Evicted
	out.Excepted, out.Scored = s.Excepted, s.Scored
	out.Score.P50, out.Score.P95, out.Score.P99 = s.P50, s.P95, s.P99
	out.Score.Histogram = append([]uint64(nil), s.Histogram[:]...)
	out.Candidates, out.Threshold, out.Shed, out.EventCount = s.Candidates, s.Threshold, s.Shed, s.EventCount
	out.CandidateRate = float64(s.CandidatePPM) / 1e6
	if events {
		out.Events = make([]json.RawMessage, len(s.Events))
		for i := range s.Events {
			out.Events[i] = s.Events[i].AppendJSON(nil)
		}
	}
	return out
}

// POST /quality/dryrun runs the cycle over the spans of the body, through
// the same code as live derivation, and stores nothing. The body is NDJSON
// spans, run under the caller's tenant's policy in force (?tenant= names
// another tenant the caller may dry-run in), or JSON {"policies":{...},
// "features":{...},"spans":[...]} to try other policies over it.
// ?close_at_end=true closes every trajectory at the end; ?events=true adds
// the derived events. The answer's policy says which policy was used.
func (g *Gateway) dryRun(w http.ResponseWriter, r *http.Request) error {
	if g.cfg.DryRun == nil {
		return reply.NewProblem("unavailable", "dry runs are not available on this server")
	}
	// The route's capability (quality.dryrun) was checked before the body,
	// in the caller's tenant; another tenant needs it there.
	p := principal(r)
	tenant := p.Tenant
	if t := r.URL.Query().Get("tenant"); t != "" && t != tenant {
		if err := identity.Authorize(p, t, identity.CapQualityDryrun); err != nil {
			return err
		}
		tenant = t
	}
	release, prob := g.admitDryRun(p.Tenant)
	if prob != nil {
		return prob
	}
	defer release()
	// A dry run counts against the tenant's quota as ingest does: one span
	// before the body is read, the rest once they are counted.
	if g.cfg.Quota != nil {
		if err := g.cfg.Quota.AllowPrincipal(p, 1); err != nil {
			return g.authProblem(err)
		}
	}
	lim := int64(g.cfg.Limits.BodyBytes)
	if r.ContentLength > lim {
		return reply.NewProblem("body-too-large", "body of %s exceeds %s (limits.body_bytes)", bytesize.Format(r.ContentLength), bytesize.Format(lim))
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, lim))
	if err != nil {
		return bodyError(err, lim)
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var overrides map[string]any
	var lines []rawLine
	switch mt {
	case "application/x-ndjson", "application/ndjson", "application/jsonl":
		if lines, err = splitNDJSON(body, g.cfg.Limits.LinesPerRequest); err != nil {
			return err
		}
	case "application/json":
		var req struct {
			Policies map[string]any    `json:"policies"`
			Features map[string]any    `json:"features"`
			Spans    []json.RawMessage `json:"spans"`
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return reply.NewProblem("invalid-json", "%v", err)
		}
		overrides = map[string]any{}
		if req.Policies != nil {
			overrides["policies"] = req.Policies
		}
		if req.Features != nil {
			overrides["features"] = req.Features
		}
		for i, s := range req.Spans {
			lines = append(lines, rawLine{n: i + 1, b: s, newline: true})
		}
		if len(lines) == 0 {
			return reply.NewProblem("empty-body", "spans is empty")
		}
	default:
		return reply.NewProblem("unsupported-media-type", "send application/x-ndjson spans, or application/json {\"policies\":...,\"spans\":[...]}")
	}
	if g.cfg.Quota != nil && len(lines) > 1 {
		if err := g.cfg.Quota.AllowPrincipal(p, len(lines)-1); err != nil {
			return g.authProblem(err)
		}
	}
	plim := span.Limits{MaxBytes: int(g.cfg.Limits.LineBytes), MaxMembers: g.cfg.Limits.Members, MaxDepth: g.cfg.Limits.JSONDepth}
	spans := make([]*span.Span, 0, len(lines))
	var rejected []lineResult
	farFuture := time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, ln := range lines {
		s, prob := g.checkLine(ln, plim, &identity.Principal{Dev: true}, farFuture)
		if prob != nil {
			rejected = append(rejected, lineResult{Line: ln.n, Status: "rejected", Problem: prob})
			continue
		}
		spans = append(spans, s)
	}
	q := r.URL.Query()
	opts := derive.SimConfig{CloseAtEnd: q.Get("close_at_end") == "true", KeepEvents: q.Get("events") == "true"}
	sum, pol, err := g.cfg.DryRun(tenant, spans, overrides, opts)
	if err != nil {
		var ce *derive.ConfigError
		if errors.As(err, &ce) || errors.Is(err, derive.ErrInvalidConfig) {
			return reply.NewProblem("bad-request", "policy: %v", err)
		}
		return err
	}
	return reply.JSON(w, http.StatusOK, struct {
		SummaryJSON
		Policy   DryRunPolicy `json:"policy"`
		Rejected []lineResult `json:"rejected,omitempty"`
	}{SummaryToJSON(sum, opts.KeepEvents), pol, rejected})
}
