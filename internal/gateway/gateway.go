// Package gateway is LogLineOS's HTTP face: ingest over JSON and NDJSON,
// reading the ledger by cursor (NDJSON and WebSocket), lookups, receipts and
// proofs, health, and problem+json for every error.
//
// The gateway owns no storage. It talks to the ledger, the authenticator,
// the span contract and the quota limiter through the small interfaces below,
// which the server assembles (internal/server), so that a different ledger
// (a distributed log, say) or identity provider fits behind them.
//
// Every handler returns an error; serve turns it into an RFC 9457 problem in
// one place, and a panic into a 500 problem with the request id (the stack
// goes to the log, never to the client).
package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/loglineos/loglineos/internal/bytesize"
	"github.com/loglineos/loglineos/internal/gateway/reply"
	"github.com/loglineos/loglineos/internal/identity"
	"github.com/loglineos/loglineos/internal/ledger"
	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
	"github.com/loglineos/loglineos/internal/metrics"
	"github.com/loglineos/loglineos/internal/span"
)

// Ledger is what the gateway needs of the ledger.
type Ledger interface {
	Append(ctx context.Context, entries []ledger.Entry) ([]ledger.Result, error)
	Get(ctx context.Context, tenant, id string) (ledger.Record, error)
	Thing(ctx context.Context, tenant, this string, from uint64, limit int) ([]ledger.Record, error)
	Receipt(ctx context.Context, tenant, id string) (ledgerfmt.Receipt, error)
	Prove(ctx context.Context, seq, size uint64) (ledgerfmt.Proof, error)
	ProveConsistency(ctx context.Context, size1, size2 uint64) ([]ledgerfmt.Hash, error)
	RootAt(ctx context.Context, size uint64) (ledgerfmt.Hash, error)
	Checkpoint() *ledgerfmt.Checkpoint
	VerifierKey() string
	// NewReader and Signer serve exports (package export).
	NewReader(from uint64) (*ledger.Reader, error)
	Signer() *ledgerfmt.Signer
	Next() uint64
	OpenReader(from uint64) (RecordReader, error)
}

// RecordReader reads stored record lines in sequence order.
type RecordReader interface {
	// NextLine returns the next record line as stored, or io.EOF at the
	// durable end. The line is valid until the next call.
	NextLine() ([]byte, error)
	// Cursor is the sequence number NextLine returns next.
	Cursor() uint64
	// Wait blocks until a record past the cursor is durable.
	Wait(ctx context.Context) error
	Close() error
}

// Authenticator says who is calling.
type Authenticator interface {
	Authenticate(r *http.Request) (*identity.Principal, error)
}

// Validator applies the span contract to a decoded span: nil accepts it.
type Validator interface {
	Validate(s *span.Span) *Rejection
}

// Rejection is why the contract refused a span.
type Rejection struct {
	Validator string // e.g. canonical_contract_v1
	Rule      string // the rule's source text
	Field     string
	Detail    string
	At        string // file:line:col of the rule
}

// Redactor replaces the values of a tenant's PII fields by keyed hashes
// before a span is stored.
type Redactor interface {
	Redact(s *span.Span) (*span.Span, error)
}

// Quota admits n spans for a principal or says when to retry.
type Quota interface {
	AllowPrincipal(p *identity.Principal, n int) error
	AllowCost(p *identity.Principal, n int) error
}

// LimitsConfig bounds what one request may carry. Its YAML keys are the
// server configuration's section limits (limits.body_bytes ...), which the
// problems name.
type LimitsConfig struct {
	BodyBytes       bytesize.Size `yaml:"body_bytes"`        // whole body; over it: 413 body-too-large
	LineBytes       bytesize.Size `yaml:"line_bytes"`        // one span; over it: that line is 413 line-too-large
	LinesPerRequest int           `yaml:"lines_per_request"` // over it: 413 too-many-lines
	JSONDepth       int           `yaml:"json_depth"`        // nesting of one span
	Members         int           `yaml:"members"`           // members of one span, all levels
	FutureSkew      time.Duration `yaml:"future_skew"`       // how far ahead of now "when" may be
	// HeaderBytes bounds the request line and header fields; over it: 431
	// header-too-large. (The http.Server's MaxHeaderBytes must be larger,
	// or net/http answers first, in plain text.)
	HeaderBytes bytesize.Size `yaml:"header_bytes"`
	// UnauthBodyBytes bounds the body of a request that needs no principal
	// (the token endpoint's form); a larger declared length is refused 413
	// before anything is read.
	UnauthBodyBytes bytesize.Size `yaml:"unauth_body_bytes"`
	// A body must arrive at BodyMinRate bytes a second after a grace of
	// BodyGrace from its first read; slower: 408 request-timeout.
	BodyGrace   time.Duration `yaml:"body_grace"`
	BodyMinRate bytesize.Size `yaml:"body_min_rate"`
}

// DefaultLimitsConfig is the limits of a zero Config.
func DefaultLimitsConfig() LimitsConfig {
	return LimitsConfig{BodyBytes: 16 << 20, LineBytes: 64 << 10, LinesPerRequest: 100_000, JSONDepth: 16, Members: 1024, FutureSkew: 5 * time.Minute,
		HeaderBytes: 64 << 10, UnauthBodyBytes: 8 << 10, BodyGrace: 10 * time.Second, BodyMinRate: 64 << 10}
}

// StreamConfig tunes the record streams (the server configuration's
// section stream).
type StreamConfig struct {
	FlushObjects   int           `yaml:"flush_objects"`    // flush after this many objects
	FlushInterval  time.Duration `yaml:"flush_interval"`   // or this long after the first unflushed one
	WSMaxLag       uint64        `yaml:"ws_max_lag"`       // a follower further behind than this is closed
	WSWriteTimeout time.Duration `yaml:"ws_write_timeout"` // a follower that takes longer to take a message is closed
}

// DefaultStreamConfig is the stream tuning of a zero Config.
func DefaultStreamConfig() StreamConfig {
	return StreamConfig{FlushObjects: 256, FlushInterval: 50 * time.Millisecond, WSMaxLag: 1_000_000, WSWriteTimeout: 10 * time.Second}
}

// OverloadConfig bounds the work in flight, on the whole server and for
// each client (a principal, or a remote address before authentication; see
// admission.go): over a server bound a request is refused 503 overloaded,
// over a client's or tenant's share 429 too-many-in-flight. Its YAML keys
// are the server configuration's section overload.
type OverloadConfig struct {
	MaxInflightRequests int           `yaml:"max_inflight_requests"` // requests being served at once (streams aside)
	MaxInflightBytes    bytesize.Size `yaml:"max_inflight_bytes"`    // request body bytes read and held by requests in flight
	MaxClientRequests   int           `yaml:"max_client_requests"`   // of MaxInflightRequests, what one client may hold
	MaxClientBytes      bytesize.Size `yaml:"max_client_bytes"`      // of MaxInflightBytes, what one client may hold
	MaxStreams          int           `yaml:"max_streams"`           // record and derived streams open at once
	MaxTenantStreams    int           `yaml:"max_tenant_streams"`    // of MaxStreams, what one tenant's principals may hold
	MaxClientStreams    int           `yaml:"max_client_streams"`    // of MaxStreams, what one principal may hold
	MaxDryRuns          int           `yaml:"max_dry_runs"`          // POST /quality/dryrun running at once
	MaxTenantDryRuns    int           `yaml:"max_tenant_dry_runs"`   // of MaxDryRuns, what one tenant may run
	RetryAfter          time.Duration `yaml:"retry_after"`
}

// DefaultOverloadConfig is the overload bounds of a zero Config: each
// client may take a quarter of the requests and bytes in flight, each
// tenant a quarter of the streams and each principal a sixteenth.
func DefaultOverloadConfig() OverloadConfig {
	return OverloadConfig{MaxInflightRequests: 1024, MaxInflightBytes: 256 << 20, MaxClientRequests: 256, MaxClientBytes: 64 << 20,
		MaxStreams: 256, MaxTenantStreams: 64, MaxClientStreams: 16, MaxDryRuns: 2, MaxTenantDryRuns: 1, RetryAfter: time.Second}
}

// Revalidator says whether the credential a principal was authenticated
// with still holds (nil), or was revoked or has expired since (an
// *identity.Error); open streams are checked with it when Revoked is
// called.
type Revalidator interface {
	Revalidate(p *identity.Principal) error
}

// Config assembles a gateway. Ledger and Auth are required.
type Config struct {
	Ledger Ledger
	Auth   Authenticator
	// Revalidator rechecks the principals of open streams at each
	// revocation (Gateway.Revoked); nil: streams end only at their token's
	// expiry.
	Revalidator Revalidator
	Validator   Validator // nil: only the wire types are checked
	Redactor    Redactor  // nil: nothing is redacted
	Quota       Quota     // nil: no quota
	// Derived serves the derived streams and trajectories; Backpressure
	// holds ingest back when derivation is behind; DryRun runs the cycle
	// over a request's spans. Each may be nil.
	Derived      Derived
	Backpressure Backpressure
	DryRun       DryRunFunc
	Metrics      *metrics.Set // nil: a private set
	Logger       *slog.Logger
	Limits       LimitsConfig
	Stream       StreamConfig
	Overload     OverloadConfig
	Now          func() time.Time
	// Mount adds routes of other subsystems beside the gateway's own. wrap
	// gives a route the gateway's request id, log line, metrics, panic
	// recovery and overload bound; with auth, the caller must authenticate
	// and PrincipalOf(r) names it.
	Mount func(mux *http.ServeMux, wrap Wrap)
	// OnWebSocket, if set, is told how long each WebSocket stream was open
	// when it ends, with the tenant it streamed (billing: ws_minutes).
	OnWebSocket func(tenant string, open time.Duration)
	// OnExport, if set, is told the bytes of each export served, with its
	// tenant (billing: exports_gb).
	OnExport func(tenant string, bytes int64)
	// StreamContext ends every record stream when it is done (at shutdown,
	// so that draining does not wait for followers).
	StreamContext context.Context
	// CORSOrigins lists the origins allowed to call from a browser.
	CORSOrigins []string
	// Ready reports whether the server is ready (not recovering, not
	// shutting down); nil means always.
	Ready func() error
}

// Gateway is the HTTP handler of the API.
type Gateway struct {
	cfg     Config
	log     *slog.Logger
	mux     *http.ServeMux
	metrics *metrics.Set

	inflight      atomic.Int64
	inflightBytes atomic.Int64
	streams       atomic.Int64
	clients       *clients
	open          openStreams
	dryRuns       dryRuns

	headerTooLarge http.Handler
}

// New returns a gateway for cfg; zero fields take their defaults.
func New(cfg Config) *Gateway {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Limits == (LimitsConfig{}) {
		cfg.Limits = DefaultLimitsConfig()
	}
	if cfg.Stream == (StreamConfig{}) {
		cfg.Stream = DefaultStreamConfig()
	}
	dl := DefaultLimitsConfig()
	fill(&cfg.Limits.HeaderBytes, dl.HeaderBytes)
	fill(&cfg.Limits.UnauthBodyBytes, dl.UnauthBodyBytes)
	fill(&cfg.Limits.BodyGrace, dl.BodyGrace)
	fill(&cfg.Limits.BodyMinRate, dl.BodyMinRate)
	do, o := DefaultOverloadConfig(), &cfg.Overload
	fill(&o.MaxInflightRequests, do.MaxInflightRequests)
	fill(&o.MaxInflightBytes, do.MaxInflightBytes)
	fill(&o.MaxClientRequests, do.MaxClientRequests)
	fill(&o.MaxClientBytes, do.MaxClientBytes)
	fill(&o.MaxStreams, do.MaxStreams)
	fill(&o.MaxTenantStreams, do.MaxTenantStreams)
	fill(&o.MaxClientStreams, do.MaxClientStreams)
	fill(&o.MaxDryRuns, do.MaxDryRuns)
	fill(&o.MaxTenantDryRuns, do.MaxTenantDryRuns)
	fill(&o.RetryAfter, do.RetryAfter)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.New()
	}
	g := &Gateway{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(), metrics: cfg.Metrics, clients: newClients()}
	g.open.init()
	g.dryRuns.init()
	g.routes()
	g.headerTooLarge = g.wrap("header-too-large", func(w http.ResponseWriter, r *http.Request) error {
		return reply.NewProblem("header-too-large", "the request line and header fields take %s; the server takes at most %s (limits.header_bytes)",
			bytesize.Format(headerBytes(r)), bytesize.Format(g.cfg.Limits.HeaderBytes))
	}, routeOpts{})
	return g
}

// fill sets a zero or negative *v to def.
func fill[T ~int | ~int64](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// routeOpts says what wrap does for a route.
type routeOpts struct {
	auth    bool                // needs a principal
	bounded bool                // counts against the overload limits; its body is metered
	cap     identity.Capability // the principal must hold it (in its tenant) before the body is read
	gzip    bool                // takes a body with Content-Encoding: gzip
	// bodyBytes, if set, bounds the body of a route that needs no
	// principal instead of Limits.UnauthBodyBytes; bodyKey names its
	// setting in refusals.
	bodyBytes int64
	bodyKey   string
	// cost is what a request takes from its tenant's (and roles') quota
	// buckets before it is served (see Cost*); ingest and dry runs are
	// charged by the span instead.
	cost int
}

// The costs of requests against a tenant's quota buckets, in the unit of
// one span ingested (tenant files: quotas.ingest_per_second and burst,
// per tenant and per role).
const (
	CostRead   = 1   // a span, a thing, a receipt, a trajectory, a delivery log
	CostStream = 10  // opening a record, derived-event or channel stream
	CostExport = 100 // starting an export
)

// Cost sets what a mounted route's request takes from the quota buckets
// (CostRead when not set).
func Cost(n int) RouteOption { return func(o *routeOpts) { o.cost = n } }

// Wrap gives a mounted route the gateway's request id, log line, metrics,
// panic recovery and overload bound; with auth, the caller must
// authenticate and PrincipalOf(r) names it.
type Wrap func(route string, h http.Handler, auth bool, opts ...RouteOption) http.Handler

// A RouteOption changes how Wrap admits a route's requests.
type RouteOption func(*routeOpts)

// UnauthBody lets a route that needs no principal (one that authenticates
// its requests itself, as signed webhooks do) take bodies of n bytes
// instead of limits.unauth_body_bytes; key names the setting of n in the
// problem that refuses a larger one.
func UnauthBody(n bytesize.Size, key string) RouteOption {
	return func(o *routeOpts) { o.bodyBytes, o.bodyKey = int64(n), key }
}

func (g *Gateway) routes() {
	var (
		public  = routeOpts{}
		open    = routeOpts{bounded: true}
		read    = routeOpts{auth: true, bounded: true, cost: CostRead}
		streams = routeOpts{auth: true, cost: CostStream}
		exports = routeOpts{auth: true, cost: CostExport}
	)
	for _, rt := range []struct {
		pattern string
		h       handlerFunc
		o       routeOpts
	}{
		{"POST /ingest", g.ingest, routeOpts{auth: true, bounded: true, cap: identity.CapIngest, gzip: true}},
		{"GET /ledger/stream", g.limitStreams(g.stream), streams},
		{"GET /ledger/ws", g.limitStreams(g.websocket), streams},
		{"GET /spans/{tenant}/{id}", g.getSpan, read},
		{"GET /things/{tenant}/{this}", g.getThing, read},
		{"GET /receipts/{tenant}/{id}", g.getReceipt, read},
		{"GET /exports/{tenant}", g.limitStreams(g.export), exports},
		{"GET /ledger/checkpoint", g.checkpoint, open},
		{"GET /ledger/proof", g.proof, open},
		{"GET /ledger/key", g.key, open},
		{"GET /derived/stream", g.limitStreams(g.derivedStream), streams},
		{"GET /derived/ws", g.limitStreams(g.derivedWS), streams},
		{"GET /trajectories/{tenant}/{id}", g.trajectory, read},
		{"POST /quality/dryrun", g.dryRun, routeOpts{auth: true, bounded: true, cap: identity.CapQualityDryrun, gzip: true}},
		{"GET /healthz", g.healthz, public},
		{"GET /readyz", g.readyz, public},
		{"GET /problems/{name}", problemPages, public},
	} {
		g.mux.Handle(rt.pattern, g.wrap(rt.pattern, rt.h, rt.o))
	}
	if g.cfg.Mount != nil {
		g.cfg.Mount(g.mux, func(route string, h http.Handler, auth bool, opts ...RouteOption) http.Handler {
			o := routeOpts{auth: auth, bounded: true}
			if auth {
				o.cost = CostRead
			}
			for _, opt := range opts {
				opt(&o)
			}
			return g.wrap(route, func(w http.ResponseWriter, r *http.Request) error {
				h.ServeHTTP(w, r)
				return nil
			}, o)
		})
	}
	// Anything else: 404 or 405 as problems.
	g.mux.Handle("/", g.wrap("other", g.notFound, public))
}

// ServeHTTP implements http.Handler.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if headerBytes(r) > int(g.cfg.Limits.HeaderBytes) {
		g.headerTooLarge.ServeHTTP(w, r)
		return
	}
	if g.corsPreflight(w, r) {
		return
	}
	version(w, r)
	g.mux.ServeHTTP(w, r)
}

type ctxKey int

const keyPrincipal ctxKey = 0

// PrincipalOf returns the authenticated caller of a request served through
// the gateway, or nil.
func PrincipalOf(r *http.Request) *identity.Principal { return principal(r) }

// WriteProblem writes err as problem+json, as the gateway's own handlers'
// errors are: see problemFor.
func (g *Gateway) WriteProblem(w http.ResponseWriter, r *http.Request, err error) {
	reply.WriteProblem(w, r, g.problemFor(r, err))
}

// problemFor is the problem that answers a handler's error: an identity
// refusal as identity says (and counted), a *reply.Problem as it is, damage
// to the ledger as 503, anything else as a 500 without details. Server
// errors are logged with the request id.
func (g *Gateway) problemFor(r *http.Request, err error) *reply.Problem {
	var ie *identity.Error
	if errors.As(err, &ie) {
		return g.authProblem(err)
	}
	p := asProblem(err)
	if p.Status >= 500 {
		g.log.Error("request failed", "request_id", reply.RequestID(r), "path", r.URL.Path, "err", err)
	}
	return p
}

func principal(r *http.Request) *identity.Principal {
	p, _ := r.Context().Value(keyPrincipal).(*identity.Principal)
	return p
}

// statusWriter remembers the status and size of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += int64(n)
	return n, err
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// exchange is the gateway's state of one request, allocated once: the
// status writer and the metered body.
type exchange struct {
	sw   statusWriter
	body meteredBody
	key  clientKey
	use  *clientUse // non-nil while admitted
}

// wrap gives a handler its request id, log line, metrics, panic recovery
// and, as o says, its principal, capability check, overload bound and
// metered body, in that order: nothing is charged before the caller is
// known, and no body byte is read before its capability is checked.
func (g *Gateway) wrap(route string, h handlerFunc, o routeOpts) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := newRequestID()
		ctx := reply.WithRequestID(r.Context(), id)
		r = r.WithContext(ctx)
		x := &exchange{sw: statusWriter{ResponseWriter: w}}
		sw := &x.sw
		sw.Header()["X-Request-Id"] = []string{id}
		g.cors(sw, r)
		securityHeaders(sw.Header())
		var tenant string
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				g.log.Error("panic", "request_id", id, "route", route, "panic", v, "stack", string(debug.Stack()))
				if sw.status == 0 {
					reply.WriteProblem(sw, r, reply.NewProblem("internal", ""))
				}
			}
			g.releaseRequest(x)
			el := time.Since(start)
			status := sw.status
			if status == 0 {
				status = http.StatusOK
			}
			code := metrics.CodeClass(status)
			method := methodLabel(r.Method)
			g.metrics.Requests.WithLabelValues(route, method, code).Inc()
			g.metrics.RequestDuration.WithLabelValues(route, method, code).Observe(el.Seconds())
			lvl := slog.LevelInfo
			if status >= 500 {
				lvl = slog.LevelError
			}
			g.log.LogAttrs(r.Context(), lvl, "request", slog.String("request_id", id), slog.String("method", r.Method),
				slog.String("path", r.URL.Path), slog.String("route", route), slog.Int("status", status),
				slog.Int64("bytes", sw.bytes), slog.Duration("duration", el), slog.String("tenant", tenant),
				slog.String("remote", r.RemoteAddr))
		}()
		var p *identity.Principal
		if o.auth {
			var err error
			if p, err = g.cfg.Auth.Authenticate(r); err != nil {
				reply.WriteProblem(sw, r, g.authProblem(err))
				return
			}
			tenant = p.Tenant
			r = r.WithContext(context.WithValue(r.Context(), keyPrincipal, p))
			if o.cap != "" && !p.Dev && !slices.Contains(p.Caps, o.cap) {
				g.metrics.AuthFailures.WithLabelValues("403", "capability").Inc()
				reply.WriteProblem(sw, r, reply.NewProblem("forbidden", "%s may not use %s in tenant %q: its roles (%s) do not grant it",
					p.Subject, o.cap, p.Tenant, strings.Join(p.Roles, ", ")))
				return
			}
			if o.cost > 0 && g.cfg.Quota != nil {
				if err := g.cfg.Quota.AllowCost(p, o.cost); err != nil {
					reply.WriteProblem(sw, r, g.authProblem(err))
					return
				}
			}
		}
		if o.bounded {
			if prob := g.admitRequest(x, clientOf(r, p)); prob != nil {
				reply.WriteProblem(sw, r, prob)
				return
			}
			if prob := g.admitBody(x, w, r, o); prob != nil {
				reply.WriteProblem(sw, r, prob)
				return
			}
		}
		if err := h(sw, r); err != nil {
			if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
				return // the client went away
			}
			p := g.problemFor(r, err)
			if sw.status == 0 {
				reply.WriteProblem(sw, r, p)
			}
		}
	})
}

// admitBody checks the body's encoding and declared length and puts it
// behind the meter. A request that needs no principal has its (small)
// body read here, so that every refusal of it is a problem of this
// package's.
func (g *Gateway) admitBody(x *exchange, w http.ResponseWriter, r *http.Request, o routeOpts) *reply.Problem {
	if r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	gz, prob := acceptEncoding(r, o.gzip)
	if prob != nil {
		return prob
	}
	limit := int64(g.cfg.Limits.BodyBytes)
	if !o.auth {
		limit = int64(g.cfg.Limits.UnauthBodyBytes)
		if o.bodyBytes > 0 {
			limit = o.bodyBytes
			if r.ContentLength > limit {
				return reply.NewProblem("body-too-large", "body of %s exceeds %s (%s)", bytesize.Format(r.ContentLength), bytesize.Format(limit), o.bodyKey)
			}
		} else if r.ContentLength > limit {
			return reply.NewProblem("body-too-large", "body of %s exceeds %s (limits.unauth_body_bytes): a request without a token carries a small form at most",
				bytesize.Format(r.ContentLength), bytesize.Format(limit))
		}
	}
	g.meterBody(x, w, r, limit, gz)
	x.body.limitKey = o.bodyKey
	if o.auth {
		return nil
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var pr *reply.Problem
		if errors.As(err, &pr) {
			return pr
		}
		return reply.NewProblem("bad-request", "reading the body: %v", err)
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	return nil
}

// authProblem renders a refusal of identity (identity.ProblemOf) and
// counts it; an authenticator's error that is not identity's is a 401 all
// the same.
func (g *Gateway) authProblem(err error) *reply.Problem {
	var ie *identity.Error
	if !errors.As(err, &ie) {
		g.metrics.AuthFailures.WithLabelValues("401", "unknown").Inc()
		p := reply.NewProblem("unauthenticated", "%v", err)
		p.Rule = "unknown"
		return p
	}
	p := identity.ProblemOf(err)
	switch p.Status {
	case http.StatusTooManyRequests:
		g.metrics.Throttled.WithLabelValues("quota").Inc()
	case http.StatusUnauthorized, http.StatusForbidden:
		g.metrics.AuthFailures.WithLabelValues(strconv.Itoa(p.Status), p.Rule).Inc()
	case http.StatusInternalServerError:
		g.log.Error("identity failed", "err", err)
	}
	return p
}

// can checks a capability on a tenant for the request's principal.
func (g *Gateway) can(r *http.Request, tenant string, c identity.Capability) error {
	p := principal(r)
	if p.Can(tenant, c) {
		return nil
	}
	g.metrics.AuthFailures.WithLabelValues("403", "capability").Inc()
	if tenant != p.Tenant {
		return reply.NewProblem("forbidden", "%s may not use %s on tenant %q (its tenant is %q)", p.Subject, c, tenant, p.Tenant)
	}
	return reply.NewProblem("forbidden", "%s may not use %s on tenant %q", p.Subject, c, tenant)
}

func (g *Gateway) notFound(w http.ResponseWriter, r *http.Request) error {
	// The mux sends unknown methods on known paths here too: say which
	// methods the path takes.
	var allow []string
	for _, m := range []string{"GET", "POST", "PUT", "DELETE", "PATCH"} {
		if m == r.Method {
			continue
		}
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pat := g.mux.Handler(probe); pat != "" && pat != "/" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		return reply.NewProblem("method-not-allowed", "%s %s: this path takes %s", r.Method, r.URL.Path, strings.Join(allow, ", "))
	}
	return reply.NewProblem("not-found", "no route %s %s", r.Method, r.URL.Path)
}

func (g *Gateway) healthz(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	_, err := w.Write([]byte(`{"status":"ok"}` + "\n"))
	return err
}

func (g *Gateway) readyz(w http.ResponseWriter, r *http.Request) error {
	if g.cfg.Ready != nil {
		if err := g.cfg.Ready(); err != nil {
			return reply.NewProblem("unavailable", "not ready: %v", err)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_, err := fmt.Fprintf(w, `{"status":"ready","next_seq":%d}`+"\n", g.cfg.Ledger.Next())
	return err
}

// methodLabel keeps the method label's values bounded.
func methodLabel(m string) string {
	switch m {
	case "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS":
		return m
	}
	return "other"
}

func securityHeaders(h http.Header) {
	h["X-Content-Type-Options"] = hdrNosniff
	h["Referrer-Policy"] = hdrNoReferrer
	h["X-Frame-Options"] = hdrDeny
}

// Header values set on every response share these slices (one allocation
// fewer per header and request). Nothing writes into a header value in
// place; Add appends, which copies a full slice.
var (
	hdrNosniff    = []string{"nosniff"}
	hdrNoReferrer = []string{"no-referrer"}
	hdrDeny       = []string{"DENY"}
)

// newRequestID returns "req_" and a new ULID.
func newRequestID() string {
	var b [4 + ulid.EncodedSize]byte
	copy(b[:], "req_")
	id := ulid.Make()
	_ = id.MarshalTextTo(b[4:])
	return string(b[:])
}
