package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/loglineos/loglineos/internal/gateway/reply"
	"github.com/loglineos/loglineos/internal/identity"
)

// A stream lives no longer than the credential it was opened with: it ends
// at its token's exp, and within moments of a revocation of its service
// account or person (Revoked, which the identity service calls). An NDJSON
// stream then ends with a final problem line, a problem+json object of type
// /problems/token-expired or /problems/token-revoked whose cursor member
// says where to resume:
//
//	{"type":"/problems/token-revoked","title":"token revoked","status":401,
//	 "detail":"...; reconnect with a new token and cursor=42","cursor":42,...}
//
// A WebSocket is closed with code 4401 and a reason that says the same
// ("token revoked: reconnect with a new token and cursor=42"). The client
// gets a new token and reconnects with that cursor; nothing is lost or
// sent twice.
//
// Streams are bounded on the server (Overload.MaxStreams, 503 overloaded),
// per tenant (MaxTenantStreams) and per principal (MaxClientStreams), both
// 429 too-many-in-flight, so that one tenant cannot take every slot.

// WSCloseCredential is the WebSocket close code of a stream whose token
// expired or was revoked: reconnect with a new token.
const WSCloseCredential websocket.StatusCode = 4401

var (
	errTokenExpired = errors.New("gateway: the stream's token expired")
	errTokenRevoked = errors.New("gateway: the stream's credential was revoked")
)

// openStream is one open stream, as Revoked finds it.
type openStream struct {
	p      *identity.Principal
	cancel context.CancelCauseFunc
}

// openStreams is the registry of open streams and their count per tenant.
type openStreams struct {
	mu       sync.Mutex
	all      map[*openStream]struct{}
	byTenant map[string]int
}

func (o *openStreams) init() {
	o.all = map[*openStream]struct{}{}
	o.byTenant = map[string]int{}
}

// add registers s unless its tenant holds its share of the streams.
func (o *openStreams) add(s *openStream, max int) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.byTenant[s.p.Tenant] >= max {
		return false
	}
	o.byTenant[s.p.Tenant]++
	o.all[s] = struct{}{}
	return true
}

func (o *openStreams) remove(s *openStream) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.all, s)
	if o.byTenant[s.p.Tenant]--; o.byTenant[s.p.Tenant] <= 0 {
		delete(o.byTenant, s.p.Tenant)
	}
}

// Revoked ends the open streams of subject whose credential no longer
// holds (Config.Revalidator says so). The identity service calls it after
// each revocation (identity.Config.OnRevoke).
func (g *Gateway) Revoked(subject string) {
	if g.cfg.Revalidator == nil {
		return
	}
	g.open.mu.Lock()
	defer g.open.mu.Unlock()
	for s := range g.open.all {
		if s.p.Subject != subject {
			continue
		}
		if err := g.cfg.Revalidator.Revalidate(s.p); err != nil {
			s.cancel(credentialCause(err))
		}
	}
}

// credentialCause maps a revalidation error to the cause a stream ends with.
func credentialCause(err error) error {
	if identity.ReasonOf(err) == identity.ReasonExpired {
		return errTokenExpired
	}
	return errTokenRevoked
}

// limitStreams bounds the streams open at once, in all, per tenant and per
// principal, and ends the stream's context when its credential ends.
func (g *Gateway) limitStreams(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		o := g.cfg.Overload
		if n := g.streams.Add(1); n > int64(o.MaxStreams) {
			g.streams.Add(-1)
			return g.overloaded("%d streams are open; the server keeps at most %d (overload.max_streams)", n-1, o.MaxStreams)
		}
		defer g.streams.Add(-1)
		p := principal(r)
		k := clientOf(r, p)
		u := g.clients.acquire(k, func(u *clientUse) bool {
			if u.streams >= o.MaxClientStreams {
				return false
			}
			u.streams++
			return true
		})
		if u == nil {
			return g.shareExceeded("%s has %d streams open, its share of the server (overload.max_client_streams)", p.Subject, o.MaxClientStreams)
		}
		defer g.clients.release(k, u, func(u *clientUse) { u.streams-- })
		ctx, cancel := context.WithCancelCause(r.Context())
		defer cancel(nil)
		s := &openStream{p: p, cancel: cancel}
		if !g.open.add(s, o.MaxTenantStreams) {
			return g.shareExceeded("tenant %q has %d streams open, its share of the server (overload.max_tenant_streams)", p.Tenant, o.MaxTenantStreams)
		}
		defer g.open.remove(s)
		if !p.Expires.IsZero() {
			t := time.AfterFunc(time.Until(p.Expires), func() { cancel(errTokenExpired) })
			defer t.Stop()
		}
		// A revocation between authentication and registration.
		if g.cfg.Revalidator != nil {
			if err := g.cfg.Revalidator.Revalidate(p); err != nil {
				cancel(credentialCause(err))
			}
		}
		return h(w, r.WithContext(ctx))
	}
}

// credentialEnd returns the problem a stream ends with when its context
// ended for its credential, or nil.
func credentialEnd(ctx context.Context, cursor uint64) *reply.Problem {
	var p *reply.Problem
	switch context.Cause(ctx) {
	case errTokenExpired:
		p = reply.NewProblem("token-expired", "the stream's token expired; reconnect with a new token and cursor=%d", cursor)
	case errTokenRevoked:
		p = reply.NewProblem("token-revoked", "the stream's credential was revoked; reconnect with a new token and cursor=%d", cursor)
	default:
		return nil
	}
	p.Cursor = &cursor
	return p
}

// closeCredential closes a WebSocket whose credential ended, if it did,
// and reports whether it did.
func closeCredential(ctx context.Context, c *websocket.Conn, cursor uint64) bool {
	var what string
	switch context.Cause(ctx) {
	case errTokenExpired:
		what = "token expired"
	case errTokenRevoked:
		what = "token revoked"
	default:
		return false
	}
	c.Close(WSCloseCredential, fmt.Sprintf("%s: reconnect with a new token and cursor=%d", what, cursor))
	return true
}

// dryRuns bounds the dry runs running at once, in all and per tenant.
type dryRuns struct {
	mu       sync.Mutex
	n        int
	byTenant map[string]int
}

func (d *dryRuns) init() { d.byTenant = map[string]int{} }

// admitDryRun takes a dry run slot for tenant, or says why not.
func (g *Gateway) admitDryRun(tenant string) (release func(), p *reply.Problem) {
	o := g.cfg.Overload
	d := &g.dryRuns
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.byTenant[tenant] >= o.MaxTenantDryRuns:
		return nil, g.shareExceeded("tenant %q has %d dry runs running, its share (overload.max_tenant_dry_runs)", tenant, o.MaxTenantDryRuns)
	case d.n >= o.MaxDryRuns:
		return nil, g.overloaded("%d dry runs are running; the server runs at most %d at once (overload.max_dry_runs)", d.n, o.MaxDryRuns)
	}
	d.n++
	d.byTenant[tenant]++
	return func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		d.n--
		if d.byTenant[tenant]--; d.byTenant[tenant] <= 0 {
			delete(d.byTenant, tenant)
		}
	}, nil
}
