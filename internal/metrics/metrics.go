// Package metrics holds LogLineOS's metric families, in one private
// Prometheus registry per server, and the public counters: the same figures
// as JSON under the source document's dotted names (gateway.requests_total,
// ledger.receipts_total, ...), served at /metrics/public.
//
// Names carry their units (_seconds, _bytes, _records, _total). Label values
// are bounded: routes are patterns, statuses are classes (2xx ...), and
// per-tenant series stop growing at MaxTenants (later tenants are counted
// under "_other").
package metrics

import (
	"encoding/json"
	"math"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
)

// MaxTenants bounds the tenants that get series of their own.
const MaxTenants = 1000

// Set is the metric families of one server.
type Set struct {
	Registry *prometheus.Registry

	Requests        *prometheus.CounterVec   // route, method, code
	RequestDuration *prometheus.HistogramVec // route, method, code
	AuthFailures    *prometheus.CounterVec   // code (401/403), reason
	Throttled       *prometheus.CounterVec   // reason: quota, client_share (429), overload (503), derivation_backlog
	InvalidTokens   *prometheus.CounterVec   // reason
	Inflight        prometheus.Gauge

	IngestSpans    *prometheus.CounterVec // result: accepted, duplicate, rejected
	IngestByTenant *prometheus.CounterVec // tenant: accepted since the start (billing's count is the ledger's)
	RejectByTenant *prometheus.CounterVec // tenant: lines rejected since the start

	AppendDuration prometheus.Histogram // one Append call, as the gateway waits for it
	CommitRecords  prometheus.Histogram // records per group commit
	CommitDuration prometheus.Histogram // write + fdatasync of one commit
	Receipts       prometheus.Counter
	LedgerRecords  prometheus.Gauge
	IndexBacklog   prometheus.Gauge
	LedgerReadOnly prometheus.Gauge       // 1 when the ledger takes no appends
	LedgerRepairs  *prometheus.CounterVec // what: index, tree

	tenantsMu sync.Mutex
	tenants   map[string]bool
}

// New registers the families in a new registry.
func New() *Set {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	latency := []float64{.0001, .00025, .0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	s := &Set{
		Registry: reg,
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "logline_gateway_requests_total", Help: "HTTP requests served, by route pattern, method and status class.",
		}, []string{"route", "method", "code"}),
		RequestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "logline_gateway_request_duration_seconds", Help: "Time to serve an HTTP request, by route pattern, method and status class.",
			Buckets: latency,
		}, []string{"route", "method", "code"}),
		AuthFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "logline_gateway_auth_failures_total", Help: "Requests refused 401 (unauthenticated) or 403 (forbidden), by reason.",
		}, []string{"code", "reason"}),
		Throttled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "logline_gateway_throttled_total", Help: "Requests refused for quota or a client's share (429), overload (503) or the derivation backlog.",
		}, []string{"reason"}),
		InvalidTokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "logline_identity_invalid_tokens_total", Help: "Bearer tokens refused, by reason.",
		}, []string{"reason"}),
		Inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "logline_gateway_inflight_requests", Help: "Requests being served.",
		}),
		IngestSpans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "logline_ingest_spans_total", Help: "Spans received, by result: accepted, duplicate or rejected.",
		}, []string{"result"}),
		IngestByTenant: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "logline_ingest_tenant_spans_total", Help: "Spans accepted since the server started, by tenant (logline_billing_ingest_spans_total counts them from the ledger, across restarts).",
		}, []string{"tenant"}),
		RejectByTenant: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "logline_ingest_tenant_rejected_total", Help: "Span lines rejected since the server started, by the caller's tenant (in development, the tenant the line names).",
		}, []string{"tenant"}),
		AppendDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "logline_ledger_append_duration_seconds", Help: "Time from handing spans to the ledger to their durable receipts.",
			Buckets: latency,
		}),
		CommitRecords: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "logline_ledger_commit_records", Help: "Records per group commit (one write and one fdatasync).",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9),
		}),
		CommitDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "logline_ledger_commit_duration_seconds", Help: "Write and fdatasync time of one group commit.",
			Buckets: latency,
		}),
		Receipts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "logline_ledger_receipts_total", Help: "Append receipts issued (accepted spans and records).",
		}),
		LedgerRecords: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "logline_ledger_records", Help: "Durable records in the ledger (the next sequence number).",
		}),
		IndexBacklog: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "logline_ledger_index_backlog_records", Help: "Durable records not yet indexed.",
		}),
		LedgerReadOnly: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "logline_ledger_read_only", Help: "1 when the ledger takes no appends: after a storage error, damaged records, or a read-only start.",
		}),
		LedgerRepairs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "logline_ledger_repairs_total", Help: "Derived ledger files (index, tree) found damaged: rebuilt from the segments at open, or met by a read (rebuilt at the next start).",
		}, []string{"what"}),
		tenants: map[string]bool{},
	}
	reg.MustRegister(s.Requests, s.RequestDuration, s.AuthFailures, s.Throttled, s.InvalidTokens, s.Inflight,
		s.IngestSpans, s.IngestByTenant, s.RejectByTenant, s.AppendDuration, s.CommitRecords, s.CommitDuration, s.Receipts,
		s.LedgerRecords, s.IndexBacklog, s.LedgerReadOnly, s.LedgerRepairs)
	return s
}

// CodeClass returns "2xx" for 200 and so on.
func CodeClass(status int) string { return strconv.Itoa(status/100) + "xx" }

// Tenant returns the label value for a tenant: itself, or "_other" once
// MaxTenants tenants have series.
func (s *Set) Tenant(t string) string {
	s.tenantsMu.Lock()
	defer s.tenantsMu.Unlock()
	if s.tenants[t] {
		return t
	}
	if len(s.tenants) >= MaxTenants {
		return "_other"
	}
	s.tenants[t] = true
	return t
}

// Handler serves the registry in the Prometheus text format.
func (s *Set) Handler() http.Handler {
	return promhttp.HandlerFor(s.Registry, promhttp.HandlerOpts{Registry: s.Registry})
}

// Public returns the public counters under the source's dotted names:
// aggregates only, never a tenant's name.
func (s *Set) Public() map[string]any {
	out := map[string]any{}
	families, err := s.Registry.Gather()
	if err != nil {
		return out
	}
	byName := map[string]*dto.MetricFamily{}
	for _, f := range families {
		byName[f.GetName()] = f
	}
	sum := func(name string, match func(labels map[string]string) bool) float64 {
		f := byName[name]
		if f == nil {
			return 0
		}
		var t float64
		for _, m := range f.GetMetric() {
			if match != nil && !match(labelMap(m)) {
				continue
			}
			switch {
			case m.Counter != nil:
				t += m.Counter.GetValue()
			case m.Gauge != nil:
				t += m.Gauge.GetValue()
			}
		}
		return t
	}
	out["gateway.requests_total"] = sum("logline_gateway_requests_total", nil)
	for _, c := range []string{"2xx", "3xx", "4xx", "5xx"} {
		out["gateway.requests_"+c] = sum("logline_gateway_requests_total", func(l map[string]string) bool { return l["code"] == c })
	}
	out["gateway.401_total"] = sum("logline_gateway_auth_failures_total", func(l map[string]string) bool { return l["code"] == "401" })
	out["gateway.403_total"] = sum("logline_gateway_auth_failures_total", func(l map[string]string) bool { return l["code"] == "403" })
	out["gateway.429_total"] = sum("logline_gateway_throttled_total", func(l map[string]string) bool {
		return l["reason"] == "quota" || l["reason"] == "client_share"
	})
	out["gateway.503_total"] = sum("logline_gateway_throttled_total", func(l map[string]string) bool { return l["reason"] == "overload" })
	out["gateway.latency_ms"] = quantilesMS(byName["logline_gateway_request_duration_seconds"])
	out["ingest.spans_accepted"] = sum("logline_ingest_spans_total", func(l map[string]string) bool { return l["result"] == "accepted" })
	out["ingest.spans_duplicate"] = sum("logline_ingest_spans_total", func(l map[string]string) bool { return l["result"] == "duplicate" })
	out["ingest.spans_rejected"] = sum("logline_ingest_spans_total", func(l map[string]string) bool { return l["result"] == "rejected" })
	out["ledger.receipts_total"] = sum("logline_ledger_receipts_total", nil)
	out["ledger.records"] = sum("logline_ledger_records", nil)
	out["ledger.backlog"] = sum("logline_ledger_index_backlog_records", nil)
	out["ledger.append_latency_ms"] = quantilesMS(byName["logline_ledger_append_duration_seconds"])
	out["ledger.commit_latency_ms"] = quantilesMS(byName["logline_ledger_commit_duration_seconds"])
	// Every tenant's count together: the public counters name no tenant
	// (the per-tenant series are on /metrics, for metrics.read).
	out["billing.ingest_spans_count"] = sum("logline_billing_ingest_spans_total", nil)
	out["billing.derived_spans_count"] = sum("logline_billing_derived_spans_total", nil)
	out["billing.exports_gb"] = sum("logline_billing_exports_bytes_total", nil) / 1e9
	out["billing.ws_minutes"] = sum("logline_billing_ws_seconds_total", nil) / 60
	return out
}

// PublicHandler serves Public as JSON.
func (s *Set) PublicHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(s.Public())
	})
}

func labelMap(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// quantilesMS estimates p50, p95 and p99 in milliseconds from a histogram
// family (all series merged), interpolating linearly inside buckets.
func quantilesMS(f *dto.MetricFamily) map[string]float64 {
	out := map[string]float64{"p50": 0, "p95": 0, "p99": 0}
	if f == nil {
		return out
	}
	counts := map[float64]float64{}
	var total float64
	for _, m := range f.GetMetric() {
		h := m.GetHistogram()
		if h == nil {
			continue
		}
		total += float64(h.GetSampleCount())
		for _, b := range h.GetBucket() {
			counts[b.GetUpperBound()] += float64(b.GetCumulativeCount())
		}
	}
	if total == 0 {
		return out
	}
	bounds := make([]float64, 0, len(counts))
	for b := range counts {
		bounds = append(bounds, b)
	}
	sort.Float64s(bounds)
	q := func(p float64) float64 {
		rank := p * total
		prevBound, prevCount := 0.0, 0.0
		for _, b := range bounds {
			c := counts[b]
			if c >= rank {
				if math.IsInf(b, 1) || c == prevCount {
					return prevBound * 1000
				}
				return (prevBound + (b-prevBound)*(rank-prevCount)/(c-prevCount)) * 1000
			}
			prevBound, prevCount = b, c
		}
		return prevBound * 1000
	}
	for _, p := range []struct {
		name string
		v    float64
	}{{"p50", .50}, {"p95", .95}, {"p99", .99}} {
		out[p.name] = math.Round(q(p.v)*1000) / 1000
	}
	return out
}

// Since is a helper for observing a duration in seconds.
func Since(t time.Time) float64 { return time.Since(t).Seconds() }
