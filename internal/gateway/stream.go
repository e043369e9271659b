package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/coder/websocket"

	"github.com/loglineos/loglineos/internal/gateway/reply"
	"github.com/loglineos/loglineos/internal/identity"
	"github.com/loglineos/loglineos/internal/span"
)

// The record streams send stored records, one per line (NDJSON) or per
// message (WebSocket), exactly as the segments hold them:
//
//	{"seq":41,"ts":"...","leaf":"...","crc":"...","span":{...}}
//
// cursor is the sequence number to start from; to resume, send the last seq
// received plus one. tenant= keeps that tenant's spans only; without it the
// caller needs the cross_tenant capability (an operator). follow=true (always
// on for WebSocket) keeps the stream open and sends records as they become
// durable. Readers pull from the segments at their own pace, so a slow reader
// never slows the ledger; a WebSocket follower that falls too far behind, or
// does not take a message in time, is closed with a reason that says where to
// resume. A stream ends when its token expires or is revoked: see
// lifetime.go.

type streamParams struct {
	cursor uint64
	tenant string
	follow bool
}

func (g *Gateway) streamParams(r *http.Request) (streamParams, error) {
	var sp streamParams
	var err error
	if sp.cursor, err = uintParam(r, "cursor", 0); err != nil {
		return sp, err
	}
	sp.tenant = r.URL.Query().Get("tenant")
	if f := r.URL.Query().Get("follow"); f != "" {
		if sp.follow, err = strconv.ParseBool(f); err != nil {
			return sp, reply.NewProblem("bad-request", "follow=%q is not a boolean", f)
		}
	}
	p := principal(r)
	if sp.tenant == "" {
		if !p.Dev && !p.Can(p.Tenant, identity.CapCrossTenant) {
			return sp, reply.NewProblem("forbidden", "streaming every tenant needs the cross_tenant capability; add tenant=%s", p.Tenant)
		}
		return sp, nil
	}
	return sp, g.can(r, sp.tenant, identity.CapStreamRead)
}

// recordTenant returns the tenant of a stored span line, "" for records that
// are not spans or cannot be read.
func recordTenant(line []byte) string {
	i := bytes.Index(line, []byte(`","span":`))
	if i < 0 || line[len(line)-1] != '}' {
		return ""
	}
	body := line[i+len(`","span":`) : len(line)-1]
	s, err := span.Parse(body, span.Limits{MaxBytes: len(body) + 1, MaxMembers: 1 << 20, MaxDepth: 64})
	if err != nil {
		return ""
	}
	return s.Tenant
}

// pump reads records from the cursor and hands each (filtered) line to emit;
// at the durable end it calls idle and, when following, waits. It returns
// the cursor to resume from: the sequence number of the next record.
func (g *Gateway) pump(ctx context.Context, sp streamParams, emit func(line []byte, cursor uint64) error, idle func() error) (uint64, error) {
	if g.cfg.StreamContext != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		stop := context.AfterFunc(g.cfg.StreamContext, cancel)
		defer stop()
	}
	rd, err := g.cfg.Ledger.OpenReader(sp.cursor)
	if err != nil {
		return sp.cursor, err
	}
	defer rd.Close()
	for {
		// The stream's context ends when its credential does: not one
		// record more after that.
		if err := ctx.Err(); err != nil {
			return rd.Cursor(), err
		}
		at := rd.Cursor()
		line, err := rd.NextLine()
		if errors.Is(err, io.EOF) {
			if err := idle(); err != nil {
				return at, err
			}
			if !sp.follow {
				return at, nil
			}
			if err := rd.Wait(ctx); err != nil {
				return at, err
			}
			continue
		}
		if err != nil {
			return at, err
		}
		if sp.tenant != "" && recordTenant(line) != sp.tenant {
			continue
		}
		if err := emit(line, rd.Cursor()); err != nil {
			return at, err
		}
	}
}

// GET /ledger/stream
func (g *Gateway) stream(w http.ResponseWriter, r *http.Request) error {
	sp, err := g.streamParams(r)
	if err != nil {
		return err
	}
	if head := g.cfg.Ledger.Next(); sp.cursor > head {
		return reply.NewProblem("bad-cursor", "cursor %d is past the end of the ledger (%d records)", sp.cursor, head)
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	rc.Flush() // the client knows the stream is open before any record
	cfg := g.cfg.Stream
	pending := 0
	var first time.Time
	flush := func() error {
		if pending == 0 {
			return nil
		}
		pending = 0
		rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
		return rc.Flush()
	}
	out := newLineBuffer(w, rc)
	write := out.write
	next, err := g.pump(r.Context(), sp, func(line []byte, _ uint64) error {
		if pending == 0 {
			first = time.Now()
		}
		out.buf = append(append(out.buf, line...), '\n')
		pending++
		if len(out.buf) >= 48<<10 {
			if err := write(); err != nil {
				return err
			}
		}
		if pending >= cfg.FlushObjects || time.Since(first) >= cfg.FlushInterval {
			if err := write(); err != nil {
				return err
			}
			return flush()
		}
		return nil
	}, func() error {
		if err := write(); err != nil {
			return err
		}
		return flush()
	})
	if p := credentialEnd(r.Context(), next); p != nil {
		return g.endStream(w, r, write, p)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	if err != nil {
		// The status line is gone; end the stream and log.
		g.log.Warn("stream ended", "request_id", reply.RequestID(r), "err", err)
	}
	return nil
}

// lineBuffer gathers the lines of an NDJSON stream and writes them at
// once, each write with its deadline.
type lineBuffer struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	buf []byte
}

func newLineBuffer(w http.ResponseWriter, rc *http.ResponseController) *lineBuffer {
	return &lineBuffer{w: w, rc: rc, buf: make([]byte, 0, 64<<10)}
}

// write writes the lines gathered.
func (b *lineBuffer) write() error {
	if len(b.buf) == 0 {
		return nil
	}
	b.rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
	_, err := b.w.Write(b.buf)
	b.buf = b.buf[:0]
	return err
}

// endStream writes what is buffered (write), then p as the final line of
// an NDJSON stream.
func (g *Gateway) endStream(w http.ResponseWriter, r *http.Request, write func() error, p *reply.Problem) error {
	if err := write(); err != nil {
		return nil
	}
	p.Instance, p.RequestID = r.URL.Path, reply.RequestID(r)
	b, err := json.Marshal(p)
	if err != nil {
		return nil
	}
	rc := http.NewResponseController(w)
	rc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := w.Write(append(b, '\n')); err == nil {
		rc.Flush()
	}
	return nil
}

// GET /ledger/ws
func (g *Gateway) websocket(w http.ResponseWriter, r *http.Request) error {
	sp, err := g.streamParams(r)
	if err != nil {
		return err
	}
	sp.follow = true
	if head := g.cfg.Ledger.Next(); sp.cursor > head {
		return reply.NewProblem("bad-cursor", "cursor %d is past the end of the ledger (%d records)", sp.cursor, head)
	}
	opts := &websocket.AcceptOptions{OriginPatterns: g.cfg.CORSOrigins}
	c, err := websocket.Accept(w, r, opts)
	if err != nil {
		return nil // Accept wrote the response
	}
	defer c.CloseNow()
	tenant := sp.tenant
	if tenant == "" {
		tenant = principal(r).Tenant // an operator's stream of every tenant
	}
	defer g.wsOpen(tenant)()
	ctx, cancel := wsContext(r, c)
	defer cancel()
	cfg := g.cfg.Stream
	next, err := g.pump(ctx, sp, func(line []byte, cursor uint64) error {
		if lag := g.cfg.Ledger.Next() - cursor; cfg.WSMaxLag > 0 && lag > cfg.WSMaxLag {
			return closeSlow(c, fmt.Sprintf("slow consumer: %d records behind; reconnect with cursor=%d", lag, cursor-1))
		}
		wctx, cancel := context.WithTimeout(ctx, cfg.WSWriteTimeout)
		defer cancel()
		if err := c.Write(wctx, websocket.MessageText, line); err != nil {
			if wctx.Err() != nil && ctx.Err() == nil {
				return closeSlow(c, fmt.Sprintf("slow consumer: a message waited over %s; reconnect with cursor=%d", cfg.WSWriteTimeout, cursor-1))
			}
			return err
		}
		return nil
	}, func() error { return nil })
	switch {
	case err == nil, errors.Is(err, errClosedSlow):
	case closeCredential(ctx, c, next):
	case g.cfg.StreamContext != nil && g.cfg.StreamContext.Err() != nil:
		c.Close(websocket.StatusGoingAway, "server shutting down; reconnect with your last cursor")
	case ctx.Err() != nil:
		c.Close(websocket.StatusGoingAway, "")
	default:
		g.log.Warn("websocket ended", "request_id", reply.RequestID(r), "err", err)
		c.Close(websocket.StatusInternalError, "stream failed; reconnect with the last cursor")
	}
	return nil
}

var errClosedSlow = errors.New("gateway: closed a slow consumer")

// wsContext is the context of a WebSocket stream: it ends with the
// request's (the stream's credential, see limitStreams) or when the peer
// closes. (CloseRead's context alone would drop the connection the moment
// the request's context ends, before a close frame could say why.)
// wsOpen notes a WebSocket stream of tenant opening; the function it
// returns, deferred, reports how long it was open.
func (g *Gateway) wsOpen(tenant string) func() {
	if g.cfg.OnWebSocket == nil {
		return func() {}
	}
	start := time.Now()
	return func() { g.cfg.OnWebSocket(tenant, time.Since(start)) }
}

func wsContext(r *http.Request, c *websocket.Conn) (context.Context, context.CancelFunc) {
	peer := c.CloseRead(context.WithoutCancel(r.Context()))
	ctx, cancel := context.WithCancel(r.Context())
	stop := context.AfterFunc(peer, cancel)
	return ctx, func() { stop(); cancel() }
}

func closeSlow(c *websocket.Conn, reason string) error {
	if len(reason) > 120 {
		reason = reason[:120]
	}
	c.Close(websocket.StatusPolicyViolation, reason)
	return errClosedSlow
}
