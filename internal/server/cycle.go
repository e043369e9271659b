package server

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/loglineos/loglineos/internal/cycle"
	"github.com/loglineos/loglineos/internal/derive"
	"github.com/loglineos/loglineos/internal/gateway"
	"github.com/loglineos/loglineos/internal/gateway/reply"
	"github.com/loglineos/loglineos/internal/identity"
	"github.com/loglineos/loglineos/internal/lll/backend"
	"github.com/loglineos/loglineos/internal/span"
	"github.com/loglineos/loglineos/internal/tenant"
)

// startCycle opens the derived store and starts the runner, the clock ticks
// and the tenant configuration watcher.
func (s *Server) startCycle(ctx context.Context) error {
	s.base = tenant.BasePolicies(s.bundle)
	def, err := tenant.ParseConfig(s.base)
	if err != nil {
		return fmt.Errorf("the bundle's policies: %w", err)
	}
	s.defaultCfg = def
	s.rules = derive.CompileRules(s.bundle.Program())
	if s.events.Kind() != backend.Eval {
		s.rules.CheckEvent = s.events.CheckEvent // the score's and the meter's validators on bundle.backend
	}
	var records tenant.Appender = s.ledger
	if s.cluster != nil {
		// A cluster node's ledger follows the cluster's log and takes no
		// appends of its own: a config record goes through the cluster,
		// into every node's ledger (a record appended to the copy would
		// make it diverge from the log and stop following it).
		records = s.cluster.sub
	}
	s.watcher = &tenant.Watcher{
		Dir:    filepath.Join(s.cfg.Data, "cfg", "tenants"),
		Base:   s.base,
		Ledger: records,
		Apply:  s.applyTenant,
		Logger: s.log.With("component", "tenants"),
	}
	if s.cfg.Cluster.NoDerive {
		// A gateway that leaves derivation to the workers: no derived
		// store, but the tenant files (quotas, members, redaction) apply.
		if err := s.watcher.Scan(ctx); err != nil {
			return fmt.Errorf("tenant configuration: %w", err)
		}
		return nil
	}
	r, err := cycle.Open(s.ledger, cycle.Config{
		Dir:         filepath.Join(s.cfg.Data, "derived"),
		Default:     def,
		Rules:       s.rules,
		Fingerprint: s.bundle.Hash(),
		Share:       s.cfg.Derive.BackgroundShare,
		LowWater:    s.cfg.Derive.MaxBacklog / 2,
		Logger:      s.log.With("component", "cycle"),
		Sink:        s.sink(),
		Observe:     s.observeEvents(),
	})
	if err != nil {
		return err
	}
	s.runner = r
	if err := s.watcher.Scan(ctx); err != nil {
		return fmt.Errorf("tenant configuration: %w", err) // Open's cleanup closes the runner
	}
	s.metrics.Registry.MustRegister(cycleCollector{r})
	return nil
}

// sink is the cycle's sink: the runtime, when there is one.
func (s *Server) sink() cycle.Sink {
	if s.runtime == nil {
		return nil
	}
	return s.runtime
}

// runCycle runs the background parts of the cycle until ctx ends.
func (s *Server) runCycle(ctx context.Context) {
	if s.runner != nil {
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			s.runner.Run(ctx)
		}()
	}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		s.watcher.Run(ctx, s.cfg.Derive.TenantScanInterval)
	}()
	// A cluster's gateways and workers do not append clock ticks: the
	// integrator that holds the lease does (cluster.NodeConfig.Ticks),
	// and every node's derivation reads them from the log.
	if d := s.cfg.Derive.TickInterval; d > 0 && s.cluster == nil {
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			cycle.AppendTicks(ctx, s.ledger, d, func(err error) bool {
				s.log.Error("clock tick not appended", "err", err)
				return true
			})
		}()
	}
}

// applyTenant applies a tenant file's redaction list, and gives identity its
// quotas, members and roles; f is nil when the file was removed.
func (s *Server) applyTenant(name string, f *tenant.File) error {
	if f == nil {
		s.redact.set(name, nil)
		s.tenantRuntimes.set(name, nil)
		s.tenantDocs.Delete(name)
	} else {
		s.redact.set(name, f.Redact)
		s.tenantRuntimes.set(name, f.Runtime)
		s.tenantDocs.Store(name, f.Doc)
	}
	if s.identity == nil {
		return nil
	}
	if f == nil {
		return s.identity.SetTenant(name, identity.TenantConfig{})
	}
	tc := identity.TenantFromFile(identity.Quota{IngestPerSecond: f.Quotas.IngestPerSecond, Burst: f.Quotas.Burst}, f.Members, f.Roles)
	if len(f.Quotas.Roles) > 0 {
		tc.RoleQuotas = map[string]identity.Quota{}
		for role, q := range f.Quotas.Roles {
			tc.RoleQuotas[role] = identity.Quota(q)
		}
	}
	return s.identity.SetTenant(name, tc)
}

// dryRun runs the cycle over spans with tenant's policy in force and the
// overrides over it. A policy the cycle does not read is refused, not
// ignored.
func (s *Server) dryRun(tenantName string, spans []*span.Span, overrides map[string]any, opts derive.SimConfig) (derive.Summary, gateway.DryRunPolicy, error) {
	pol := gateway.DryRunPolicy{Tenant: tenantName, Source: "bundle", Overrides: len(overrides) > 0}
	if policies, ok := overrides["policies"].(map[string]any); ok {
		known := tenant.DerivationPolicies()
		for _, name := range slices.Sorted(maps.Keys(policies)) {
			if !slices.Contains(known, name) {
				return derive.Summary{}, pol, reply.NewProblem("bad-request", "unknown policy %q; the known policies are %s", name, strings.Join(known, ", "))
			}
		}
	}
	doc := s.base
	if d, ok := s.tenantDocs.Load(tenantName); ok {
		doc, pol.Source = d.(map[string]any), "tenant file"
	}
	doc = tenant.Merge(doc, overrides)
	cfg, err := tenant.ParseConfig(doc)
	if err != nil {
		return derive.Summary{}, pol, err
	}
	if pol.Hash, err = tenant.PolicyHash(doc); err != nil {
		return derive.Summary{}, pol, err
	}
	sum, err := cycle.DryRun(spans, cfg, s.rules, opts)
	return sum, pol, err
}

// backpressure holds ingest back while derivation is more than MaxBacklog
// records behind, as the tenant's derived_events_perf.on_overload says:
// shed_derived lets ingest go on (derivation catches up later; nothing
// derived is lost), slow_ingest waits for the backlog to shrink, reject_429
// refuses with Retry-After.
type backpressure struct {
	s *Server
}

func (b backpressure) Admit(ctx context.Context, tenant string) error {
	if rt := b.s.runtime; rt != nil && rt.Full(tenant) {
		p := reply.NewProblem("webhook-queue-full", "tenant %q has %d or more deliveries pending (runtime.queue_per_tenant); ingest resumes as they drain", tenant, b.s.cfg.Runtime.QueuePerTenant)
		p.RetryAfter = 5 * time.Second
		return p
	}
	r, max := b.s.runner, b.s.cfg.Derive.MaxBacklog
	if r == nil || max == 0 {
		return nil
	}
	// The backlog a refusal names is the one it was decided on (derivation
	// may have caught up since: "0 records behind" was said once).
	n := r.Backlog()
	if n <= max {
		return nil
	}
	switch r.TenantConfig(tenant).Perf.OnOverload {
	case "reject_429":
		return gateway.BacklogProblem(n, max, time.Second)
	case "slow_ingest":
		deadline := time.Now().Add(b.s.cfg.Derive.SlowIngestWait)
		for ; n > max; n = r.Backlog() {
			if time.Now().After(deadline) {
				return gateway.BacklogProblem(n, max, time.Second)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-r.Changed():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return nil
}

// cycleCollector exposes the derivation counters and each tenant's current
// score percentiles (quality.pXX.current).
type cycleCollector struct{ r *cycle.Runner }

var (
	descBacklog     = prometheus.NewDesc("logline_derive_backlog_records", "Durable ledger records not derived yet.", nil, nil)
	descEvents      = prometheus.NewDesc("logline_derive_events_total", "Derived events written since the server started.", nil, nil)
	descActive      = prometheus.NewDesc("logline_trajectory_active", "Open trajectories.", []string{"tenant"}, nil)
	descOpened      = prometheus.NewDesc("logline_trajectory_opened_total", "Trajectories opened.", []string{"tenant"}, nil)
	descClosed      = prometheus.NewDesc("logline_trajectory_closed_total", "Trajectories closed, by reason.", []string{"tenant", "reason"}, nil)
	descScored      = prometheus.NewDesc("logline_quality_scores_total", "Trajectory quality scores given.", []string{"tenant"}, nil)
	descCandidates  = prometheus.NewDesc("logline_quality_candidates_total", "diamond_candidate flags raised.", []string{"tenant"}, nil)
	descPercentile  = prometheus.NewDesc("logline_quality_score_percentile", "Current score percentile of the tenant's sliding window (quality.pXX.current).", []string{"tenant", "percentile"}, nil)
	descThreshold   = prometheus.NewDesc("logline_quality_threshold", "The meter's current threshold: the score at the tenant's percentile_target of its window (quality.pXX.current at the target), what a score must reach to be flagged; absent while the window is empty.", []string{"tenant", "target"}, nil)
	descQualifiedPM = prometheus.NewDesc("logline_quality_candidate_ratio", "Candidates over scores given.", []string{"tenant"}, nil)
	descStopped     = prometheus.NewDesc("logline_derive_stopped", "1 when derivation has stopped on an error (the log and /readyz say which), else 0.", nil, nil)
	descRebuilds    = prometheus.NewDesc("logline_derive_rebuilds_total", "Rebuilds of the derived store from the start of the ledger at start, by reason: policies (the bundle changed), format (an upgrade changed the snapshot format), snapshot (unreadable), files (a derived file differs from its recorded checksum).", []string{"reason"}, nil)
	descOpenFiles   = prometheus.NewDesc("logline_derive_open_files", "Tenant files of the derived store open now.", nil, nil)
)

func (c cycleCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descBacklog, descEvents, descActive, descOpened, descClosed, descScored, descCandidates, descPercentile, descThreshold, descQualifiedPM, descStopped, descRebuilds, descOpenFiles} {
		ch <- d
	}
}

func (c cycleCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descBacklog, prometheus.GaugeValue, float64(c.r.Backlog()))
	ch <- prometheus.MustNewConstMetric(descEvents, prometheus.CounterValue, float64(c.r.EventsDerived()))
	stopped := 0.0
	if c.r.Err() != nil {
		stopped = 1
	}
	ch <- prometheus.MustNewConstMetric(descStopped, prometheus.GaugeValue, stopped)
	for _, reason := range []string{cycle.RebuildPolicies, cycle.RebuildFormat, cycle.RebuildSnapshot, cycle.RebuildFiles} {
		n := 0.0
		if c.r.Rebuilt() == reason {
			n = 1
		}
		ch <- prometheus.MustNewConstMetric(descRebuilds, prometheus.CounterValue, n, reason)
	}
	ch <- prometheus.MustNewConstMetric(descOpenFiles, prometheus.GaugeValue, float64(c.r.OpenFiles()))
	tenants := c.r.Tenants()
	if len(tenants) > 1000 {
		tenants = tenants[:1000]
	}
	for _, t := range tenants {
		st := c.r.Stats(t)
		ch <- prometheus.MustNewConstMetric(descActive, prometheus.GaugeValue, float64(st.Open), t)
		ch <- prometheus.MustNewConstMetric(descOpened, prometheus.CounterValue, float64(st.Opened), t)
		ch <- prometheus.MustNewConstMetric(descClosed, prometheus.CounterValue, float64(st.Timeout), t, "timeout")
		ch <- prometheus.MustNewConstMetric(descClosed, prometheus.CounterValue, float64(st.Rule), t, "rule")
		ch <- prometheus.MustNewConstMetric(descClosed, prometheus.CounterValue, float64(st.Evicted), t, "evicted")
		ch <- prometheus.MustNewConstMetric(descScored, prometheus.CounterValue, float64(st.Scored), t)
		ch <- prometheus.MustNewConstMetric(descCandidates, prometheus.CounterValue, float64(st.Candidates), t)
		ratio := 0.0
		if st.Scored > 0 {
			ratio = float64(st.Candidates) / float64(st.Scored)
		}
		ch <- prometheus.MustNewConstMetric(descQualifiedPM, prometheus.GaugeValue, ratio, t)
		p50, p95, p99 := c.r.Percentiles(t)
		for _, p := range []struct {
			name string
			v    int
		}{{"p50", p50}, {"p95", p95}, {"p99", p99}} {
			ch <- prometheus.MustNewConstMetric(descPercentile, prometheus.GaugeValue, float64(p.v), t, p.name)
		}
		if th, ok := c.r.Threshold(t); ok {
			ch <- prometheus.MustNewConstMetric(descThreshold, prometheus.GaugeValue, float64(th), t, c.r.TenantConfig(t).Meter.PercentileTarget)
		}
	}
}

// observeEvents returns the cycle's observer of derived events: the close
// latency (trajectory.close_latency_ms) of every trajectory closed, the
// event time from its earliest span to its close, by tenant.
func (s *Server) observeEvents() func([]derive.Event) {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "logline_trajectory_close_latency_seconds",
		Help: "Event time from a trajectory's earliest span to its close (trajectory.close_latency_ms), by tenant; counted as derivation closes them (again after a restart re-derives from a snapshot).",
		// 1 s to about 48 days, each bucket 4 times the last.
		Buckets: prometheus.ExponentialBuckets(1, 4, 13),
	}, []string{"tenant"})
	s.metrics.Registry.MustRegister(h)
	return func(evs []derive.Event) {
		for i := range evs {
			if ev := &evs[i]; ev.Type == derive.ClosedEvent {
				h.WithLabelValues(s.metrics.Tenant(ev.Tenant)).Observe(float64(ev.Lifetime) / 1e9)
			}
		}
	}
}
