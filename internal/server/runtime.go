package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/loglineos/loglineos/internal/gateway"
	"github.com/loglineos/loglineos/internal/gateway/reply"
	"github.com/loglineos/loglineos/internal/identity"
	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
	"github.com/loglineos/loglineos/internal/runtime"
	"github.com/loglineos/loglineos/internal/tenant"
)

// tenantRuntimes holds the runtime section of every tenant file, as the
// watcher applies them.
type tenantRuntimes struct {
	mu sync.RWMutex
	m  map[string]*tenant.Runtime
}

func (t *tenantRuntimes) Runtime(name string) *tenant.Runtime {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.m[name]
}

func (t *tenantRuntimes) set(name string, rt *tenant.Runtime) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[string]*tenant.Runtime{}
	}
	if rt == nil {
		delete(t.m, name)
		return
	}
	t.m[name] = rt
}

// openRuntime opens the runtime: the host of the bundle's routers. It
// needs the gateway only when it appends (after Open), so it is opened
// before the cycle, which it is the sink of.
func (s *Server) openRuntime() error {
	if s.cfg.Ledger.ReadOnly || s.cluster != nil {
		// Routers do not run on a read-only server or a cluster's gateway.
		return nil
	}
	rc := s.cfg.Runtime
	var trace io.Writer
	if rc.Trace {
		dir := filepath.Join(s.cfg.Data, "runtime")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		f, err := os.OpenFile(filepath.Join(dir, "trace.ndjson"), os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("runtime trace: %w", err)
		}
		s.traceFile, trace = f, f
		// A crash may have torn the last line: end it, so that this
		// start's header begins a line of its own.
		if fi, err := f.Stat(); err == nil && fi.Size() > 0 {
			last := make([]byte, 1)
			if _, err := f.ReadAt(last, fi.Size()-1); err == nil && last[0] != '\n' {
				f.Write([]byte("\n"))
			}
		}
	}
	rt, err := runtime.Open(runtime.Config{
		Trace:          trace,
		BundleHash:     s.bundle.Hash(),
		Dir:            filepath.Join(s.cfg.Data, "runtime"),
		Routers:        s.bundle.Routers(),
		Route:          s.spans.Route,
		BundleCaps:     s.bundle.Manifest.CapsAllow,
		ServerCaps:     rc.Caps,
		Tenants:        &s.tenantRuntimes,
		Appender:       routerAppender{s},
		Metrics:        s.metrics,
		Logger:         s.log.With("component", "runtime"),
		Workers:        rc.Workers,
		Timeout:        rc.Timeout,
		MaxAttempts:    rc.MaxAttempts,
		Backoff:        rc.Backoff,
		MaxBackoff:     rc.MaxBackoff,
		QueuePerTenant: rc.QueuePerTenant,
		Ledger:         s.ledger,
		KVQuota:        int(rc.KVQuota),
		EvalTimeout:    rc.EvalTimeout,
	})
	if err != nil {
		return err
	}
	s.runtime = rt
	return nil
}

// runRuntime delivers queued actions until ctx ends.
func (s *Server) runRuntime(ctx context.Context) {
	if s.runtime == nil {
		return
	}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		s.runtime.Run(ctx)
	}()
}

// routerAppender appends the spans of routers through the gateway's ingest
// path, as a principal that may only ingest into the router's tenant.
type routerAppender struct{ s *Server }

func (a routerAppender) AppendSpan(ctx context.Context, tenant string, body []byte) (ledgerfmt.Receipt, bool, error) {
	p := &identity.Principal{Subject: "router", Tenant: tenant, Caps: []identity.Capability{identity.CapIngest}}
	return a.s.gateway.Submit(ctx, p, body)
}

// mountRuntime adds the runtime's routes:
//
//	POST /webhooks/in/{tenant}/{source}                 webhooks in (the signature authenticates)
//	GET  /webhooks/key                                   the key of deliveries' "v1a," signatures
//	GET  /webhooks/{tenant}/deliveries                   the delivery log (stream.read)
//	POST /webhooks/{tenant}/deliveries/{id}/redeliver    deliver again (policy.write)
//	GET  /channels/{tenant}/{channel}                    ws.send's payloads, NDJSON or WebSocket (stream.read)
func (s *Server) mountRuntime(mux *http.ServeMux, wrap gateway.Wrap) {
	if s.runtime == nil {
		return
	}
	route := func(pattern string, auth bool, h http.HandlerFunc) {
		mux.Handle(pattern, wrap(pattern, h, auth))
	}
	// A webhook's signature authenticates it once its body is read: it
	// may be larger than a form (runtime.webhook_in_bytes).
	mux.Handle("POST /webhooks/in/{tenant}/{source}", wrap("POST /webhooks/in/{tenant}/{source}", http.HandlerFunc(s.webhookIn), false,
		gateway.UnauthBody(min(s.cfg.Runtime.WebhookInBytes, s.cfg.Limits.BodyBytes), "runtime.webhook_in_bytes")))
	route("GET /webhooks/key", false, func(w http.ResponseWriter, r *http.Request) {
		reply.JSON(w, http.StatusOK, map[string]string{"public_key": s.runtime.PublicKey()})
	})
	route("GET /webhooks/{tenant}/deliveries", true, func(w http.ResponseWriter, r *http.Request) {
		t := r.PathValue("tenant")
		if !s.authorize(w, r, t, identity.CapStreamRead) {
			return
		}
		reply.JSON(w, http.StatusOK, map[string]any{"tenant": t, "deliveries": s.runtime.Deliveries(t)})
	})
	route("POST /webhooks/{tenant}/deliveries/{id}/redeliver", true, func(w http.ResponseWriter, r *http.Request) {
		t := r.PathValue("tenant")
		if !s.authorize(w, r, t, identity.CapPolicyWrite) {
			return
		}
		if err := s.runtime.Redeliver(t, r.PathValue("id")); err != nil {
			if errors.Is(err, runtime.ErrNoDelivery) {
				reply.WriteProblem(w, r, reply.NewProblem("not-found", "no delivery %q in the log of tenant %q", r.PathValue("id"), t))
				return
			}
			s.gateway.WriteProblem(w, r, err)
			return
		}
		reply.JSON(w, http.StatusAccepted, map[string]any{"id": r.PathValue("id"), "state": "pending"})
	})
	route("GET /channels/{tenant}/{channel}", true, s.channel)
}

func (s *Server) authorize(w http.ResponseWriter, r *http.Request, tenant string, c identity.Capability) bool {
	if err := identity.Authorize(gateway.PrincipalOf(r), tenant, c); err != nil {
		s.gateway.WriteProblem(w, r, err)
		return false
	}
	return true
}

// webhookIn serves POST /webhooks/in/{tenant}/{source}.
func (s *Server) webhookIn(w http.ResponseWriter, r *http.Request) {
	t, src := r.PathValue("tenant"), r.PathValue("source")
	// The gateway read the body, within runtime.webhook_in_bytes.
	body, err := io.ReadAll(r.Body)
	if err != nil {
		s.gateway.WriteProblem(w, r, err)
		return
	}
	spans, err := s.runtime.Receive(r.Context(), t, src, r.Header, body)
	var p *reply.Problem
	switch {
	case err == nil:
		reply.JSON(w, http.StatusOK, map[string]any{"tenant": t, "source": src, "spans": spans})
		return
	case errors.Is(err, runtime.ErrUnknownSource):
		p = reply.NewProblem("not-found", "%v", err)
	case errors.Is(err, runtime.ErrStale):
		p = reply.NewProblem("stale-webhook", "%v", err)
	case errors.Is(err, runtime.ErrBadSignature):
		p = reply.NewProblem("bad-signature", "%v", err)
	case errors.Is(err, runtime.ErrReplay):
		p = reply.NewProblem("webhook-replay", "%v", err)
		p.Results = spans
	case errors.Is(err, runtime.ErrBadPayload):
		p = reply.NewProblem("invalid-json", "%v", err)
	default:
		s.gateway.WriteProblem(w, r, err)
		return
	}
	reply.WriteProblem(w, r, p)
}

// channel serves GET /channels/{tenant}/{channel}: the payloads ws.send
// publishes from now on, one JSON value a line (NDJSON), or one a message
// over a WebSocket.
func (s *Server) channel(w http.ResponseWriter, r *http.Request) {
	t := r.PathValue("tenant")
	if !s.authorize(w, r, t, identity.CapStreamRead) {
		return
	}
	sub := s.runtime.Subscribe(t, r.PathValue("channel"))
	defer s.runtime.Unsubscribe(sub)
	ctx := r.Context()
	if r.Header.Get("Upgrade") != "" {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: s.cfg.CORS.Origins})
		if err != nil {
			return
		}
		defer c.CloseNow()
		opened := time.Now()
		defer func() { s.billing.addWS(t, time.Since(opened)) }()
		ctx = c.CloseRead(ctx)
		for {
			select {
			case <-ctx.Done():
				return
			case <-s.streamsCtx.Done():
				c.Close(websocket.StatusGoingAway, "server shutting down")
				return
			case b, ok := <-sub.C:
				if !ok {
					c.Close(websocket.StatusPolicyViolation, "too slow: payloads were dropped")
					return
				}
				wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				err := c.Write(wctx, websocket.MessageText, b)
				cancel()
				if err != nil {
					return
				}
			}
		}
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	rc.Flush()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.streamsCtx.Done():
			return
		case b, ok := <-sub.C:
			if !ok {
				return
			}
			if _, err := w.Write(append(b, '\n')); err != nil {
				return
			}
			rc.Flush()
		}
	}
}
