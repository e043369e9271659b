// Package server assembles a LogLineOS server from its subsystems: the
// ledger, the policy bundle (the span contract), identity, metrics and the
// HTTP gateway. A Server is a struct of those parts; nothing is global.
package server

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/loglineos/loglineos/internal/atomicfile"
	"github.com/loglineos/loglineos/internal/bundle"
	"github.com/loglineos/loglineos/internal/cluster"
	"github.com/loglineos/loglineos/internal/cycle"
	"github.com/loglineos/loglineos/internal/datadir"
	"github.com/loglineos/loglineos/internal/derive"
	"github.com/loglineos/loglineos/internal/gateway"
	"github.com/loglineos/loglineos/internal/gateway/reply"
	"github.com/loglineos/loglineos/internal/identity"
	"github.com/loglineos/loglineos/internal/ledger"
	"github.com/loglineos/loglineos/internal/lll/backend"
	"github.com/loglineos/loglineos/internal/metrics"
	"github.com/loglineos/loglineos/internal/openapi"
	"github.com/loglineos/loglineos/internal/runtime"
	"github.com/loglineos/loglineos/internal/tenant"
	"github.com/loglineos/loglineos/stdlib"
)

// Server is one running LogLineOS server.
type Server struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics.Set

	ledger   *ledger.Ledger
	cluster  *clusterNode      // with cluster.nats: the node whose ledger this is
	lock     *datadir.Lock     // held here when the ledger is read-only
	identity *identity.Service // nil in --dev
	bundle   *bundle.Bundle
	spans    *backend.Spans  // the bundle's span validators on bundle.backend
	events   *backend.Events // and the derivation's event validators
	gateway  *gateway.Gateway

	openapi        http.Handler
	redact         *redactor
	runner         *cycle.Runner
	runtime        *runtime.Runtime // nil when the ledger is read-only
	traceFile      *os.File         // runtime.trace
	tenantRuntimes tenantRuntimes
	watcher        *tenant.Watcher
	base           map[string]any
	tenantDocs     sync.Map // tenant -> the derivation doc of its file in force (dry runs)
	billing        *billing
	shared         *cluster.SharedFiles // a cluster node's identity files, kept the same on every node
	candidates     candidateCache       // the overview's latest candidates by tenant
	defaultCfg     derive.TenantConfig
	rules          *derive.Rules // the bundle's pipeline and validators the derivation runs

	streamsCtx    context.Context
	cancelStreams context.CancelFunc
	stopping      atomic.Bool
	closeOnce     sync.Once
	closeErr      error
	bg            sync.WaitGroup
	bgCancel      context.CancelFunc
}

// Open recovers the ledger, loads the bundle and identity, and assembles the
// gateway. It may take a while on a large ledger after a crash; Starting
// serves /healthz and a not-ready /readyz meanwhile. When it fails, what it
// had opened is closed again, by the path Close takes.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (_ *Server, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Data, 0o755); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, metrics: metrics.New()}
	s.streamsCtx, s.cancelStreams = context.WithCancel(context.Background())
	bgctx, cancel := context.WithCancel(context.Background())
	s.bgCancel = cancel
	defer func() {
		if err != nil {
			s.close()
		}
	}()

	if cfg.Clustered() {
		if cfg.Cluster.Role == "integrator" {
			return nil, errors.New("cluster.role integrator serves no API: run it with RunIntegrator (logline serve --role integrator)")
		}
		err = s.openClusterLedger(ctx)
	} else {
		err = s.openLedger()
	}
	if err != nil {
		return nil, err
	}
	if err := s.loadBundle(); err != nil {
		return nil, err
	}
	if err := s.openBackend(); err != nil {
		return nil, fmt.Errorf("bundle.backend %s: %w", s.cfg.Bundle.Backend, err)
	}
	if err := s.openRuntime(); err != nil {
		return nil, err
	}
	s.openapi = s.openAPIHandler()
	var audit identity.ReceiptRecorder // nil under --dev: no security events are recorded
	// In a cluster, the first node to get here makes the identity (its
	// keys, redaction key and bootstrap operator) and the others wait for
	// it, then find it.
	sctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	err = s.sharedChange(sctx, func(ctx context.Context) error {
		if !cfg.Dev {
			audit = auditRecorder{l: s.ledger, now: time.Now}
			if s.cluster != nil {
				audit = auditRecorder{l: s.cluster.sub, now: time.Now}
			}
			if err := s.openIdentity(ctx, bgctx, audit); err != nil {
				return err
			}
		}
		key, err := loadRedactKey(ctx, filepath.Join(cfg.Data, "identity"), audit)
		if err != nil {
			return fmt.Errorf("redaction key: %w", err)
		}
		s.redact = &redactor{key: key, by: map[string][][]string{}}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := s.startCycle(ctx); err != nil {
		return nil, err
	}
	s.runCycle(bgctx)
	if s.billing, err = openBilling(cfg.Data); err != nil {
		return nil, fmt.Errorf("billing: %w", err)
	}
	s.metrics.Registry.MustRegister(billingCollector{s})
	if !cfg.Ledger.ReadOnly {
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			s.billing.run(bgctx, func(err error) { s.log.Error("billing.json not written", "err", err) })
		}()
	}

	s.gateway = gateway.New(s.gatewayConfig())
	if s.shared != nil && s.identity != nil {
		// From here, changes other nodes make to the identity files are
		// read again as they come (and once now, for those made since
		// the identity was opened). After the gateway exists: a
		// revocation ends its streams.
		if err := s.shared.SetReload(s.identity.Reload); err != nil {
			return nil, fmt.Errorf("identity: %w", err)
		}
	}
	s.runRuntime(bgctx)
	s.bg.Add(1)
	go s.sampleGauges()
	if !cfg.Ledger.ReadOnly && cfg.Ledger.ScrubRate > 0 {
		s.bg.Add(1)
		go s.scrub(bgctx)
	}
	return s, nil
}

// openLedger recovers and opens the ledger. The server writes more than
// the ledger (derived/, identity/): it holds the data directory itself
// when the ledger opens read-only.
func (s *Server) openLedger() error {
	start := time.Now()
	if s.cfg.Ledger.ReadOnly {
		lock, err := datadir.Acquire(s.cfg.Data, "logline serve")
		if err != nil {
			return err
		}
		s.lock = lock
		s.log.Warn("the ledger is open read-only (salvage): ingest answers 503; reads serve what is readable")
	}
	l, err := ledger.Open(s.cfg.Data, s.ledgerOptions())
	if err != nil {
		if errors.Is(err, datadir.ErrLocked) {
			return err
		}
		return fmt.Errorf("open ledger: %w", err)
	}
	s.ledger = l
	s.log.Info("ledger open", "records", l.Next(), "key", l.Signer().VerifierKey(), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// ledgerOptions is the section ledger as the ledger's options, with the
// server's hooks.
func (s *Server) ledgerOptions() ledger.Config {
	c := s.cfg.Ledger.Config
	if c.CheckAtOpen <= 0 {
		c.CheckAtOpen = -1 // check_at_open: 0 checks nothing at open
	}
	c.Holder = "logline serve"
	c.DirLocked = s.lock != nil
	c.Logger = s.log.With("component", "ledger")
	c.OnRepair = func(what, reason string) {
		s.metrics.LedgerRepairs.WithLabelValues(what).Inc()
	}
	c.OnCommit = func(records, bytes int, sync time.Duration) {
		s.metrics.CommitRecords.Observe(float64(records))
		s.metrics.CommitDuration.Observe(sync.Seconds())
	}
	return c
}

// openAPIHandler serves the bundle's OpenAPI document, built at the first
// request (building it takes a good part of a second under the race
// detector, and most servers are never asked). An operator's bundle may
// declare no schemas: the server runs, it just has no API document to
// give, and says why (404, and a warning logged once).
func (s *Server) openAPIHandler() http.Handler {
	build := sync.OnceValues(func() (http.Handler, error) {
		h, err := openapi.Handler(s.bundle, openapi.Options{Dev: s.cfg.Dev})
		if err != nil {
			s.log.Warn("no OpenAPI document for this bundle", "err", err)
		}
		return h, err
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, err := build()
		if err != nil {
			s.gateway.WriteProblem(w, r, reply.NewProblem("not-found", "no OpenAPI document: %s", err.Error()))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// openIdentity opens identity with the section auth, creates the bootstrap
// operator at the first start, and rotates the signing key in the
// background until bg ends.
func (s *Server) openIdentity(ctx, bg context.Context, audit identity.ReceiptRecorder) error {
	c := s.cfg.Auth
	c.KeyDir = filepath.Join(s.cfg.Data, "jwks")
	c.StateDir = filepath.Join(s.cfg.Data, "identity")
	c.OnReject = func(r identity.Reason) { s.metrics.InvalidTokens.WithLabelValues(string(r)).Inc() }
	// Open streams end at the revocation of their credential.
	c.OnRevoke = func(subject string) {
		if s.gateway != nil {
			s.gateway.Revoked(subject)
		}
	}
	c.OperatorTenant = OperatorTenant
	c.Receipts = audit
	if s.shared != nil {
		c.Shared = s.shared
	}
	c.WriteError = func(w http.ResponseWriter, r *http.Request, err error) {
		s.gateway.WriteProblem(w, r, err)
	}
	id, err := identity.New(ctx, c)
	if err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	s.identity = id
	if err := s.bootstrapOperator(ctx); err != nil {
		return err
	}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		id.Run(bg, time.Minute, func(err error) { s.log.Error("key rotation", "err", err) })
	}()
	return nil
}

// gatewayConfig assembles the gateway from the server's parts and the
// sections limits, stream, overload and cors.
func (s *Server) gatewayConfig() gateway.Config {
	var store gateway.Ledger = ledgerStore{s.ledger}
	switch {
	case s.cluster != nil && s.cfg.Cluster.Role == "worker":
		store = workerStore{ledgerStore{s.ledger}}
	case s.cluster != nil:
		store = clusterStore{ledgerStore{s.ledger}, s.cluster.sub}
	}
	c := gateway.Config{
		Ledger:        store,
		Auth:          identity.DevAuthenticator{},
		Metrics:       s.metrics,
		Logger:        s.log.With("component", "gateway"),
		Limits:        s.cfg.Limits,
		Stream:        s.cfg.Stream,
		Overload:      s.cfg.Overload,
		Redactor:      s.redact,
		Backpressure:  backpressure{s},
		DryRun:        s.dryRun,
		StreamContext: s.streamsCtx,
		CORSOrigins:   s.cfg.CORS.Origins,
		Ready:         s.ready,
		Mount:         s.mount,
		OnWebSocket:   s.billing.addWS,
		OnExport:      s.billing.addExport,
	}
	if s.runner != nil { // a nil *cycle.Runner is not a nil Derived
		c.Derived = s.runner
	}
	if s.identity != nil {
		c.Auth, c.Revalidator, c.Quota = s.identity, s.identity, s.identity.Limiter()
	}
	if len(s.spans.Validators()) > 0 {
		c.Validator = bundleValidator{s.spans}
	}
	return c
}

// scrub checks every record in the background, at ledger.scrub_rate: once
// after the start unless the open checked them all, then every
// ledger.scrub_every. Damage stops appends (the ledger says where) and
// makes /readyz fail.
func (s *Server) scrub(ctx context.Context) {
	defer s.bg.Done()
	wait := time.Duration(0)
	if s.ledger.CheckedAtOpen() {
		wait = s.cfg.Ledger.ScrubEvery
	}
	for {
		if wait <= 0 && s.ledger.CheckedAtOpen() && s.cfg.Ledger.ScrubEvery <= 0 {
			return
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		start := time.Now()
		err := s.ledger.Scrub(ctx, int64(s.cfg.Ledger.ScrubRate))
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			s.log.Error("scrub: the ledger's records are damaged; see the runbook", "err", err)
			return
		}
		s.log.Info("scrub: every record checked", "records", s.ledger.Next(), "took", time.Since(start).Round(time.Millisecond))
		if wait = s.cfg.Ledger.ScrubEvery; wait <= 0 {
			return
		}
	}
}

// loadBundle loads the operator's signed bundle, or compiles the standard
// bundle and signs it with this server's own key (kept in the data
// directory and trusted by this server alone).
func (s *Server) loadBundle() error {
	b, err := LoadBundle(s.cfg)
	if err != nil {
		return err
	}
	s.bundle = b
	s.log.Info("bundle loaded", "hash", b.Hash(), "standard", s.cfg.Bundle.Path == "")
	return nil
}

// LoadBundle returns the bundle a server with cfg runs.
func LoadBundle(cfg Config) (*bundle.Bundle, error) {
	var data []byte
	var opts bundle.LoadOptions
	if cfg.Bundle.Path != "" {
		b, err := os.ReadFile(cfg.Bundle.Path)
		if err != nil {
			return nil, fmt.Errorf("bundle: %w", err)
		}
		data = b
		opts.TrustedFiles = cfg.Bundle.Trust
		opts.AllowedCaps = cfg.Runtime.Caps
	} else {
		key, err := localBundleKey(filepath.Join(cfg.Data, "bundle"))
		if err != nil {
			return nil, err
		}
		if data, err = stdlib.Build(key); err != nil {
			return nil, fmt.Errorf("standard bundle: %w", err)
		}
		opts.Trusted = []ed25519.PublicKey{key.Public().(ed25519.PublicKey)}
	}
	b, err := bundle.Load(data, opts)
	if errors.Is(err, bundle.ErrCapNotAllowed) {
		return nil, fmt.Errorf("bundle: %w; runtime.caps in the server's configuration grants it", err)
	}
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	return b, nil
}

// localBundleKey reads or creates the key that signs the standard bundle.
func localBundleKey(dir string) (ed25519.PrivateKey, error) {
	path := filepath.Join(dir, "local.key")
	if b, err := os.ReadFile(path); err == nil {
		return bundle.ParsePrivateKey(b)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	priv, pub, err := bundle.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.Write(path, priv, 0o600); err != nil {
		return nil, err
	}
	if err := atomicfile.Write(path+".pub", pub, 0o644); err != nil {
		return nil, err
	}
	return bundle.ParsePrivateKey(priv)
}

// mount adds the routes of the other subsystems beside the gateway's.
func (s *Server) mount(mux *http.ServeMux, wrap gateway.Wrap) {
	mux.Handle("GET /metrics", wrap("GET /metrics", s.metricsHandler(), true))
	mux.Handle("GET /metrics/public", wrap("GET /metrics/public", s.metrics.PublicHandler(), false))
	mux.Handle("GET /billing", wrap("GET /billing", s.billingHandler(), true))
	mux.Handle("GET /openapi.yaml", wrap("GET /openapi.yaml", s.openapi, false))
	if s.identity != nil {
		mux.Handle("GET /auth/login", wrap("GET /auth/login", s.identity.LoginHandler(), false))
		mux.Handle("GET /auth/callback", wrap("GET /auth/callback", s.identity.CallbackHandler(), false))
		mux.Handle("POST /auth/token", wrap("POST /auth/token", s.identity.TokenHandler(), false))
		mux.Handle("GET /.well-known/jwks.json", wrap("GET /.well-known/jwks.json", s.identity.JWKSHandler(), false))
	}
	s.mountAdmin(mux, wrap)
	s.mountRuntime(mux, wrap)
	s.mountConsole(mux, wrap)
}

// metricsHandler serves GET /metrics to a caller with metrics.read (an
// operator's administrator or monitor): the families name every tenant.
func (s *Server) metricsHandler() http.Handler {
	h := s.metrics.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := gateway.PrincipalOf(r)
		if err := identity.Authorize(p, p.Tenant, identity.CapMetricsRead); err != nil {
			s.gateway.WriteProblem(w, r, err)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (s *Server) ready() error {
	if s.stopping.Load() {
		return errors.New("shutting down")
	}
	if err := s.ledger.Err(); err != nil {
		return err
	}
	// A cluster gateway cut off from NATS takes no spans (each request
	// would wait for an answer that cannot come): not one to send writers
	// to. A worker still serves its copy.
	if s.cluster != nil && s.cfg.clusterRole() == "gateway" && !s.cluster.nc.IsConnected() {
		return errors.New("not connected to the cluster's NATS servers (reconnecting): ingest cannot reach the integrator")
	}
	// Derivation stopped for every tenant: the server still takes spans,
	// but it is not a server to send readers to.
	if s.runner == nil {
		return nil // a cluster gateway that leaves derivation to the workers
	}
	if err := s.runner.Err(); err != nil {
		return fmt.Errorf("derivation stopped: %w", err)
	}
	return nil
}

// sampleGauges keeps the gauges that are read rather than counted fresh.
func (s *Server) sampleGauges() {
	defer s.bg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		st := s.ledger.Stats()
		s.metrics.LedgerRecords.Set(float64(st.Next))
		ro := 0.0
		if s.ledger.Err() != nil || s.cfg.Ledger.ReadOnly {
			ro = 1
		}
		s.metrics.LedgerReadOnly.Set(ro)
		s.metrics.IndexBacklog.Set(float64(st.Next - min(st.Indexed, st.Next)))
		select {
		case <-s.streamsCtx.Done():
			return
		case <-t.C:
		}
	}
}

// Handler is the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.gateway }

// Metrics returns the server's metrics (what GET /metrics serves).
func (s *Server) Metrics() *metrics.Set { return s.metrics }

// Ledger returns the server's ledger.
func (s *Server) Ledger() *ledger.Ledger { return s.ledger }

// BeginShutdown marks the server not ready and ends the record streams, so
// that an http.Server.Shutdown that follows does not wait for followers.
func (s *Server) BeginShutdown() {
	s.stopping.Store(true)
	s.cancelStreams()
}

// Close stops the background work and closes the ledger, which writes a
// final checkpoint. Call it after the HTTP server has drained. Later calls
// return the first call's result.
func (s *Server) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.close() })
	return s.closeErr
}

// close stops what runs and closes what is open, in the reverse order of
// Open; a failed Open takes it too, with only part of the server there.
func (s *Server) close() error {
	s.BeginShutdown()
	s.bgCancel()
	s.bg.Wait()
	var errs []error
	if s.shared != nil {
		errs = append(errs, s.shared.Close())
	}
	if s.identity != nil {
		errs = append(errs, s.identity.Close())
	}
	if s.runner != nil {
		errs = append(errs, s.runner.Close())
	}
	if s.runtime != nil {
		errs = append(errs, s.runtime.Close())
	}
	if s.traceFile != nil {
		errs = append(errs, s.traceFile.Close())
	}
	switch {
	case s.cluster != nil:
		errs = append(errs, s.cluster.stop()) // it closes the ledger
	case s.ledger != nil:
		errs = append(errs, s.ledger.Close())
	}
	if s.spans != nil {
		errs = append(errs, s.spans.Close(context.Background()))
	}
	if s.events != nil {
		errs = append(errs, s.events.Close(context.Background()))
	}
	errs = append(errs, s.lock.Release())
	return errors.Join(errs...)
}

// ledgerStore adapts the ledger to the gateway's interface.
type ledgerStore struct{ *ledger.Ledger }

func (l ledgerStore) VerifierKey() string { return l.Signer().VerifierKey() }

func (l ledgerStore) OpenReader(from uint64) (gateway.RecordReader, error) {
	return l.NewReader(from)
}
