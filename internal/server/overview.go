package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"sync"

	"github.com/loglineos/loglineos/internal/console"
	"github.com/loglineos/loglineos/internal/derive"
	"github.com/loglineos/loglineos/internal/gateway"
	"github.com/loglineos/loglineos/internal/gateway/reply"
	"github.com/loglineos/loglineos/internal/identity"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// The overviews are what the web console shows at a glance, one read each:
//
//	GET /overview/{tenant}   a tenant's counters, derivation, meter window,
//	                         latest candidates and quota (stream.read)
//	GET /overview            every tenant's line and the server's
//	                         derivation and ledger (metrics.read)
//
// The console itself is static, embedded in the binary (package console),
// served at /console/ to anyone: it holds no data, and every read it makes
// carries the caller's token.

// maxRecentCandidates is how many of a tenant's latest diamond candidates
// an overview lists, found among its last candidateScan derived events.
const (
	maxRecentCandidates = 20
	candidateScan       = 5000
)

// candidateCache keeps each tenant's latest candidates with the length of
// its derived stream they were read at (tenants with derived events only): the stream only grows, so while
// its length is the same (between events, most of a console's polls) the
// list is too, and the scan is not repeated.
type candidateCache struct {
	mu sync.Mutex
	m  map[string]cachedCandidates
}

type cachedCandidates struct {
	n   uint64
	evs []json.RawMessage
}

// TenantOverview is the answer of GET /overview/{tenant}.
type TenantOverview struct {
	Tenant string `json:"tenant"`
	// LedgerNext is the sequence number the ledger gives its next record:
	// a stream from a cursor near it shows what arrives from now on.
	LedgerNext uint64            `json:"ledger_next"`
	Ingest     IngestCounts      `json:"ingest"`
	Derivation DerivationState   `json:"derivation"`
	Meter      MeterWindow       `json:"meter"`
	Candidates []json.RawMessage `json:"candidates"`
	// Quota is the tenant's ingest bucket; nil under --dev, where no quota
	// is enforced.
	Quota *identity.Quota `json:"quota"`
}

// IngestCounts are a tenant's spans: in the ledger (as derivation has seen
// them) and accepted or rejected by POST /ingest since the server started.
type IngestCounts struct {
	Spans    uint64 `json:"spans"`
	Accepted uint64 `json:"accepted_since_start"`
	Rejected uint64 `json:"rejected_since_start"`
}

// DerivationState is where derivation stands, server-wide (cursor, backlog,
// backpressure) and for one tenant (the counters).
type DerivationState struct {
	Cursor uint64 `json:"cursor"`
	// Backlog is the durable records not derived yet; at MaxBacklog,
	// ingest is held back (Backpressure "holding").
	Backlog      uint64 `json:"backlog"`
	MaxBacklog   uint64 `json:"max_backlog"`
	Backpressure string `json:"backpressure"` // "ok", "holding" or "stopped"
	Error        string `json:"error,omitempty"`
	Derived      uint64 `json:"derived_events"`
	Linked       uint64 `json:"linked"`
	Open         uint64 `json:"open_trajectories"`
	Scored       uint64 `json:"scored"`
	Candidates   uint64 `json:"candidates"`
}

// MeterWindow is the quality meter's window: how many scores of each value
// (0..100) it holds, the threshold a score must reach at the percentile
// target (nil while the window is empty), and the policy around it.
type MeterWindow struct {
	Scores           []uint64 `json:"scores"`
	N                uint64   `json:"n"`
	Threshold        *int     `json:"threshold"`
	PercentileTarget string   `json:"percentile_target"`
	MinScore         int      `json:"min_score"`
	Warmup           int      `json:"warmup"`
	DiamondOn        bool     `json:"diamond_enabled"`
}

// ServerOverview is the answer of GET /overview.
type ServerOverview struct {
	LedgerNext     uint64                `json:"ledger_next"`
	CheckpointSize uint64                `json:"checkpoint_size"`
	Derivation     DerivationState       `json:"derivation"`
	Tenants        map[string]TenantLine `json:"tenants"`
	Dev            bool                  `json:"dev"`
	OperatorTenant string                `json:"operator_tenant,omitempty"`
}

// TenantLine is one tenant in the server overview.
type TenantLine struct {
	IngestCounts
	Derived    uint64 `json:"derived_events"`
	Open       uint64 `json:"open_trajectories"`
	Candidates uint64 `json:"candidates"`
}

func (s *Server) mountConsole(mux *http.ServeMux, wrap gateway.Wrap) {
	mux.Handle("GET /overview/{tenant}", wrap("GET /overview/{tenant}", http.HandlerFunc(s.tenantOverview), true))
	mux.Handle("GET /overview", wrap("GET /overview", http.HandlerFunc(s.serverOverview), true))
	ui := console.Handler()
	mux.Handle("GET /console/", wrap("GET /console/", ui, false))
	mux.Handle("GET /{$}", wrap("GET /{$}", http.RedirectHandler("/console/", http.StatusFound), false))
}

func (s *Server) tenantOverview(w http.ResponseWriter, r *http.Request) {
	tenant := r.PathValue("tenant")
	p := gateway.PrincipalOf(r)
	if err := identity.Authorize(p, tenant, identity.CapStreamRead); err != nil {
		s.gateway.WriteProblem(w, r, err)
		return
	}
	if s.runner == nil {
		s.gateway.WriteProblem(w, r, reply.NewProblem("unavailable", "derivation is not running on this server"))
		return
	}
	st := s.runner.Stats(tenant)
	out := TenantOverview{
		Tenant:     tenant,
		LedgerNext: s.ledger.Next(),
		Ingest:     s.ingestCounts(tenant, st),
		Derivation: s.derivationState(),
		Candidates: s.recentCandidates(tenant),
	}
	out.Derivation.Derived = s.runner.Len(tenant)
	out.Derivation.Linked, out.Derivation.Open = st.Linked, st.Open
	out.Derivation.Scored, out.Derivation.Candidates = st.Scored, st.Candidates
	hist, n := s.runner.Window(tenant)
	cfg := s.runner.TenantConfig(tenant)
	out.Meter = MeterWindow{Scores: hist[:], N: n, PercentileTarget: cfg.Meter.PercentileTarget,
		MinScore: cfg.Meter.MinScore, Warmup: cfg.Meter.Warmup, DiamondOn: cfg.Features.Diamond}
	if th, ok := s.runner.Threshold(tenant); ok {
		out.Meter.Threshold = &th
	}
	if s.identity != nil {
		q := s.identity.QuotaOf(tenant)
		out.Quota = &q
	}
	w.Header().Set("Cache-Control", "no-store")
	_ = reply.JSON(w, http.StatusOK, out)
}

func (s *Server) serverOverview(w http.ResponseWriter, r *http.Request) {
	p := gateway.PrincipalOf(r)
	if err := identity.Authorize(p, p.Tenant, identity.CapMetricsRead); err != nil {
		s.gateway.WriteProblem(w, r, err)
		return
	}
	out := ServerOverview{LedgerNext: s.ledger.Next(), Derivation: s.derivationState(),
		Tenants: map[string]TenantLine{}, Dev: s.cfg.Dev}
	if c := s.ledger.Checkpoint(); c != nil {
		out.CheckpointSize = c.Size
	}
	if s.identity != nil {
		out.OperatorTenant = s.identity.OperatorTenant()
	}
	if s.runner != nil {
		for _, t := range s.runner.Tenants() {
			st := s.runner.Stats(t)
			out.Tenants[t] = TenantLine{IngestCounts: s.ingestCounts(t, st), Derived: s.runner.Len(t),
				Open: st.Open, Candidates: st.Candidates}
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	_ = reply.JSON(w, http.StatusOK, out)
}

func (s *Server) ingestCounts(tenant string, st derive.Stats) IngestCounts {
	return IngestCounts{
		Spans:    st.Spans,
		Accepted: uint64(counterFor(s.metrics.IngestByTenant, tenant)),
		Rejected: uint64(counterFor(s.metrics.RejectByTenant, tenant)),
	}
}

func (s *Server) derivationState() DerivationState {
	d := DerivationState{MaxBacklog: s.cfg.Derive.MaxBacklog, Backpressure: "ok"}
	if s.runner == nil {
		d.Backpressure, d.Error = "stopped", "derivation is not running on this server"
		return d
	}
	d.Cursor, d.Backlog = s.runner.Cursor(), s.runner.Backlog()
	switch err := s.runner.Err(); {
	case err != nil:
		d.Backpressure, d.Error = "stopped", err.Error()
	case d.MaxBacklog > 0 && d.Backlog > d.MaxBacklog:
		d.Backpressure = "holding"
	}
	return d
}

// recentCandidates returns a tenant's latest diamond_candidate events,
// newest first, from its last candidateScan derived events.
func (s *Server) recentCandidates(tenant string) []json.RawMessage {
	n := s.runner.Len(tenant)
	c := &s.candidates
	c.mu.Lock()
	defer c.mu.Unlock()
	if got, ok := c.m[tenant]; ok && got.n == n {
		return got.evs
	}
	out := []json.RawMessage{}
	from := uint64(0)
	if n > candidateScan {
		from = n - candidateScan
	}
	marker := []byte(`"type":"diamond_candidate"`)
	_, _ = s.runner.Events(tenant, from, func(_ uint64, ev []byte) bool {
		if bytes.Contains(ev, marker) {
			out = append(out, json.RawMessage(slices.Clone(ev)))
			if len(out) > maxRecentCandidates {
				out = out[1:]
			}
		}
		return true
	})
	slices.Reverse(out)
	// Only tenants derivation knows are kept: a name nobody uses (any
	// name may be asked under --dev) leaves nothing behind.
	if n > 0 {
		if c.m == nil {
			c.m = map[string]cachedCandidates{}
		}
		c.m[tenant] = cachedCandidates{n: n, evs: out}
	}
	return out
}

// counterFor returns the value of a counter vector's series whose tenant
// label is tenant (0 when it has none), without creating the series.
func counterFor(v *prometheus.CounterVec, tenant string) float64 {
	ch := make(chan prometheus.Metric, 16)
	go func() {
		v.Collect(ch)
		close(ch)
	}()
	var total float64
	for m := range ch {
		var d dto.Metric
		if m.Write(&d) != nil {
			continue
		}
		for _, l := range d.GetLabel() {
			if l.GetName() == "tenant" && l.GetValue() == tenant {
				total += d.GetCounter().GetValue()
			}
		}
	}
	return total
}
