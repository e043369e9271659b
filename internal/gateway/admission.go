package gateway

import (
	"compress/gzip"
	"errors"
	"hash/maphash"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/loglineos/loglineos/internal/bytesize"
	"github.com/loglineos/loglineos/internal/gateway/reply"
	"github.com/loglineos/loglineos/internal/identity"
)

// Admission. A request is authenticated (from its headers alone) before it
// is charged anything; then it counts against the server's bounds and
// against its client's share of them:
//
//	requests in flight   Overload.MaxInflightRequests, per client MaxClientRequests
//	body bytes read      Overload.MaxInflightBytes,    per client MaxClientBytes
//
// A client is the principal (tenant and subject), or before authentication
// the remote address (its IP). Body bytes are charged as they are read, a
// chunk at a time (at most readChunk reserved by one Read), not as
// Content-Length declares them, and released when the request ends: a
// declared length costs nothing until its bytes arrive, and a client that
// trickles bodies holds at most its own share. Over a server bound the
// request is refused 503 overloaded, over its client's share 429
// too-many-in-flight, both with Retry-After.
//
// A body must keep arriving: a request's connection gets a read deadline of
// Limits.BodyGrace from its first read, extended as bytes arrive at
// Limits.BodyMinRate; a body slower than that is answered 408
// request-timeout. Requests that need no principal may carry a body of
// Limits.UnauthBodyBytes at most (the token endpoint's form): a larger
// declared length is refused 413 before anything is read.

// readChunk bounds the bytes one Read of a request body reserves.
const readChunk = 32 << 10

// clientKey names a client for its share: a principal, or an address.
type clientKey struct{ tenant, subject, addr string }

// clientUse is what one client holds in flight.
type clientUse struct {
	refs     int // requests and streams holding it; under the shard lock
	requests int // under the shard lock
	streams  int // under the shard lock
	bytes    atomic.Int64
}

const clientShards = 64

// clients is the registry of the clients with something in flight. An
// entry lives while a request or stream holds it; entries are recycled
// through a pool, so a steady stream of requests allocates none.
type clients struct {
	seed   maphash.Seed
	shards [clientShards]clientShard
	pool   sync.Pool
}

type clientShard struct {
	mu sync.Mutex
	m  map[clientKey]*clientUse
}

func newClients() *clients {
	c := &clients{seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].m = map[clientKey]*clientUse{}
	}
	c.pool.New = func() any { return new(clientUse) }
	return c
}

func (c *clients) shard(k clientKey) *clientShard {
	h := maphash.String(c.seed, k.subject) ^ maphash.String(c.seed, k.addr)
	return &c.shards[h%clientShards]
}

// acquire takes a reference on k's entry and, when admit is given, lets
// it decide under the lock whether the client may take one more thing
// (admit changes the entry when it says yes). It returns nil when admit
// refuses.
func (c *clients) acquire(k clientKey, admit func(u *clientUse) bool) *clientUse {
	sh := c.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	u, ok := sh.m[k]
	if !ok {
		u = c.pool.Get().(*clientUse)
		sh.m[k] = u
	}
	if admit != nil && !admit(u) {
		if u.refs == 0 {
			delete(sh.m, k)
			c.pool.Put(u)
		}
		return nil
	}
	u.refs++
	return u
}

// release drops a reference taken by acquire; undo reverses what admit
// did, under the lock.
func (c *clients) release(k clientKey, u *clientUse, undo func(u *clientUse)) {
	sh := c.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if undo != nil {
		undo(u)
	}
	u.refs--
	if u.refs == 0 {
		delete(sh.m, k)
		*u = clientUse{}
		c.pool.Put(u)
	}
}

// clientOf is the client of a request: its principal, or its address.
func clientOf(r *http.Request, p *identity.Principal) clientKey {
	if p != nil {
		return clientKey{tenant: p.Tenant, subject: p.Subject}
	}
	addr := r.RemoteAddr
	if i := strings.LastIndexByte(addr, ':'); i > 0 && !strings.HasSuffix(addr, "]") {
		addr = addr[:i]
	}
	return clientKey{addr: addr}
}

func subRequest(u *clientUse) { u.requests-- }

// admitRequest counts a request against the server's bound and its
// client's share; release ends it (and gives back every body byte it
// read).
func (g *Gateway) admitRequest(x *exchange, k clientKey) *reply.Problem {
	o := g.cfg.Overload
	n := g.inflight.Add(1)
	if n > int64(o.MaxInflightRequests) {
		g.inflight.Add(-1)
		return g.overloaded("%d requests in flight; the server takes at most %d (overload.max_inflight_requests)", n-1, o.MaxInflightRequests)
	}
	u := g.clients.acquire(k, func(u *clientUse) bool {
		if u.requests >= o.MaxClientRequests {
			return false
		}
		u.requests++
		return true
	})
	if u == nil {
		g.inflight.Add(-1)
		return g.shareExceeded("this client has %d requests in flight, its share of the server (overload.max_client_requests)", o.MaxClientRequests)
	}
	g.metrics.Inflight.Inc()
	x.key, x.use = k, u
	return nil
}

// releaseRequest ends what admitRequest began.
func (g *Gateway) releaseRequest(x *exchange) {
	if x.use == nil {
		return
	}
	if b := x.body.charged; b > 0 {
		g.inflightBytes.Add(-b)
		x.use.bytes.Add(-b)
	}
	g.clients.release(x.key, x.use, subRequest)
	g.inflight.Add(-1)
	g.metrics.Inflight.Dec()
	x.use = nil
}

func (g *Gateway) overloaded(detail string, args ...any) *reply.Problem {
	g.metrics.Throttled.WithLabelValues("overload").Inc()
	p := reply.NewProblem("overloaded", detail, args...)
	p.RetryAfter = g.cfg.Overload.RetryAfter
	return p
}

func (g *Gateway) shareExceeded(detail string, args ...any) *reply.Problem {
	g.metrics.Throttled.WithLabelValues("client_share").Inc()
	p := reply.NewProblem("too-many-in-flight", detail, args...)
	p.RetryAfter = g.cfg.Overload.RetryAfter
	return p
}

// reserve charges n body bytes to the server and to the client, or says
// which bound refuses them.
func (g *Gateway) reserve(u *clientUse, n int64) *reply.Problem {
	o := g.cfg.Overload
	if b := g.inflightBytes.Add(n); b > int64(o.MaxInflightBytes) {
		g.inflightBytes.Add(-n)
		return g.overloaded("%s of request bodies in flight; the server takes at most %s (overload.max_inflight_bytes)", bytesize.Format(b-n), bytesize.Format(o.MaxInflightBytes))
	}
	if b := u.bytes.Add(n); b > int64(o.MaxClientBytes) {
		u.bytes.Add(-n)
		g.inflightBytes.Add(-n)
		return g.shareExceeded("this client has %s of request bodies in flight; its share is %s (overload.max_client_bytes)", bytesize.Format(b-n), bytesize.Format(o.MaxClientBytes))
	}
	return nil
}

// deadliner is the part of net/http's ResponseWriter (HTTP/1 and 2) that
// sets the connection's read deadline, as http.ResponseController finds it.
type deadliner interface {
	SetReadDeadline(time.Time) error
}

// meteredBody is a request body that charges its bytes as they are read,
// stops at limit, and keeps its connection's read deadline to the minimum
// rate.
type meteredBody struct {
	g     *Gateway
	src   io.ReadCloser
	use   *clientUse
	limit int64 // past it: 413 body-too-large
	// limitKey names the setting of limit, when a route set its own.
	limitKey string
	read     int64
	charged  int64
	dl       deadliner // nil when the writer cannot set one
	start    time.Time
	until    time.Time // the deadline set, zero before the first read
	err      error
}

// Read implements io.Reader.
func (b *meteredBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	want := min(int64(len(p)), readChunk, b.limit-b.read+1)
	if pr := b.g.reserve(b.use, want); pr != nil {
		b.err = pr
		return 0, pr
	}
	b.charged += want
	b.pace()
	n, err := b.src.Read(p[:want])
	b.read += int64(n)
	if back := want - int64(n); back > 0 {
		b.g.inflightBytes.Add(-back)
		b.use.bytes.Add(-back)
		b.charged -= back
	}
	switch {
	case b.read > b.limit:
		b.err = reply.NewProblem("body-too-large", "body exceeds %s (%s)", bytesize.Format(b.limit), b.limitName())
		return n, b.err
	case err == io.EOF:
		b.done()
	case err != nil && errors.Is(err, os.ErrDeadlineExceeded):
		b.err = reply.NewProblem("request-timeout", "the body arrived slower than %s/s after %s (limits.body_min_rate, limits.body_grace)",
			bytesize.Format(b.g.cfg.Limits.BodyMinRate), b.g.cfg.Limits.BodyGrace)
		return n, b.err
	case err != nil:
		var ge gzipError
		if errors.As(err, &ge) {
			b.err = reply.NewProblem("bad-request", "Content-Encoding gzip: %v", ge.err)
			return n, b.err
		}
	}
	return n, err
}

func (b *meteredBody) limitName() string {
	if b.limitKey != "" {
		return b.limitKey
	}
	if b.limit == int64(b.g.cfg.Limits.UnauthBodyBytes) {
		return "limits.unauth_body_bytes"
	}
	return "limits.body_bytes"
}

// pace sets the read deadline at the first read and moves it on as the
// bytes read allow: BodyGrace plus the time BodyMinRate gives them.
func (b *meteredBody) pace() {
	if b.dl == nil {
		return
	}
	lim := b.g.cfg.Limits
	now := time.Now()
	if b.until.IsZero() {
		b.start = now
		b.until = now.Add(lim.BodyGrace)
		_ = b.dl.SetReadDeadline(b.until)
		return
	}
	if b.until.Sub(now) > lim.BodyGrace/2 {
		return
	}
	allowed := b.start.Add(lim.BodyGrace + time.Duration(float64(b.read)/float64(lim.BodyMinRate)*float64(time.Second)))
	if allowed.After(b.until) {
		b.until = allowed
		_ = b.dl.SetReadDeadline(allowed)
	}
}

// done lifts the deadline once the body is read: net/http's background
// read, which watches the connection while the handler works, must not
// time out.
func (b *meteredBody) done() {
	if b.dl != nil && !b.until.IsZero() {
		_ = b.dl.SetReadDeadline(time.Time{})
		b.dl = nil
	}
}

// Close implements io.Closer.
func (b *meteredBody) Close() error {
	b.done()
	return b.src.Close()
}

// gzipError marks an error of the gzip decoder (a corrupt body).
type gzipError struct{ err error }

func (e gzipError) Error() string { return e.err.Error() }

// gzipBody decodes a gzip body lazily: the decoder is made at the first
// read, so that a request refused before its body is read costs nothing.
type gzipBody struct {
	src io.ReadCloser
	zr  *gzip.Reader
}

func (z *gzipBody) Read(p []byte) (int, error) {
	if z.zr == nil {
		zr, err := gzip.NewReader(z.src)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return 0, err
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, gzipError{err}
		}
		z.zr = zr
	}
	n, err := z.zr.Read(p)
	if err != nil && err != io.EOF && !errors.Is(err, os.ErrDeadlineExceeded) {
		err = gzipError{err}
	}
	return n, err
}

func (z *gzipBody) Close() error { return z.src.Close() }

// acceptEncoding checks the request's Content-Encoding: none (or
// identity) is the body as it is; gzip is decoded where the route takes it;
// anything else is 415 unsupported-encoding.
func acceptEncoding(r *http.Request, gzipOK bool) (gz bool, p *reply.Problem) {
	vals := r.Header["Content-Encoding"]
	if len(vals) == 0 {
		return false, nil
	}
	ce := strings.TrimSpace(strings.Join(vals, ","))
	switch {
	case ce == "" || strings.EqualFold(ce, "identity"):
		return false, nil
	case strings.EqualFold(ce, "gzip") || strings.EqualFold(ce, "x-gzip"):
		if gzipOK {
			return true, nil
		}
		return false, reply.NewProblem("unsupported-encoding", "Content-Encoding %s: %s takes an unencoded body", ce, r.URL.Path)
	}
	if gzipOK {
		return false, reply.NewProblem("unsupported-encoding", "Content-Encoding %s: send the body unencoded or as gzip", ce)
	}
	return false, reply.NewProblem("unsupported-encoding", "Content-Encoding %s: %s takes an unencoded body", ce, r.URL.Path)
}

// meterBody puts the request's body behind the meter (and the gzip
// decoder): limit is the most it may read.
func (g *Gateway) meterBody(x *exchange, w http.ResponseWriter, r *http.Request, limit int64, gz bool) {
	src := r.Body
	if gz {
		src = &gzipBody{src: src}
		r.ContentLength = -1 // the decoded length is not known
		r.Header.Del("Content-Encoding")
	}
	dl, _ := unwrapDeadliner(w)
	x.body = meteredBody{g: g, src: src, use: x.use, limit: limit, dl: dl}
	r.Body = &x.body
}

func unwrapDeadliner(w http.ResponseWriter) (deadliner, bool) {
	for {
		switch t := w.(type) {
		case deadliner:
			return t, true
		case interface{ Unwrap() http.ResponseWriter }:
			w = t.Unwrap()
		default:
			return nil, false
		}
	}
}

// headerBytes is the size of a request's head as the client sent it, near
// enough: request line and header fields.
func headerBytes(r *http.Request) int {
	n := len(r.Method) + len(r.RequestURI) + len(r.Proto) + 4
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}
