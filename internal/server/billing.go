package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/loglineos/loglineos/internal/atomicfile"
	"github.com/loglineos/loglineos/internal/gateway"
	"github.com/loglineos/loglineos/internal/gateway/reply"
	"github.com/loglineos/loglineos/internal/identity"
	"github.com/loglineos/loglineos/internal/metrics"
)

// A tenant is billed by four counters (the names are the specification's):
//
//	ingest_spans_count   spans of the tenant in the ledger, as derivation has seen them
//	derived_spans_count  events in the tenant's derived stream
//	exports_gb           bytes of exports served (GET /exports/{tenant}), in GB (10^9)
//	ws_minutes           minutes of WebSocket streams of the tenant, counted as each ends
//
// The first two come from the ledger (the derived store's counts, rebuilt
// by reindex); the other two are the server's own and are kept in
// <data>/billing.json, written every billingSaveEvery and at shutdown:
//
//	{"tenants":{"acme":{"exports_bytes":123,"ws_seconds":120.5}}}
//
// /metrics has them as logline_billing_*_total{tenant} (the first 1,000
// tenants, the rest together as "_other"), /metrics/public as totals, and
// GET /billing every tenant's, in the specification's units.

// billingFile is <data>/billing.json.
const billingFile = "billing.json"

// billingSaveEvery is how often billing.json is written while it changes.
const billingSaveEvery = 10 * time.Second

// billed is what one tenant used that the ledger does not record.
type billed struct {
	ExportsBytes uint64  `json:"exports_bytes"`
	WSSeconds    float64 `json:"ws_seconds"`
}

// billing holds the counters of billing.json.
type billing struct {
	path string

	mu      sync.Mutex
	tenants map[string]*billed
	dirty   bool
}

// openBilling reads billing.json (none yet: every counter is zero).
func openBilling(data string) (*billing, error) {
	b := &billing{path: filepath.Join(data, billingFile), tenants: map[string]*billed{}}
	raw, err := os.ReadFile(b.path)
	if errors.Is(err, os.ErrNotExist) {
		return b, nil
	}
	if err != nil {
		return nil, err
	}
	var f struct {
		Tenants map[string]*billed `json:"tenants"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("%s: %w (the last good counts are lost if it is removed)", b.path, err)
	}
	for t, v := range f.Tenants {
		if v != nil {
			b.tenants[t] = v
		}
	}
	return b, nil
}

func (b *billing) tenant(t string) *billed {
	v := b.tenants[t]
	if v == nil {
		v = &billed{}
		b.tenants[t] = v
	}
	return v
}

// addExport counts n bytes of an export of tenant t served.
func (b *billing) addExport(t string, n int64) {
	if n <= 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tenant(t).ExportsBytes += uint64(n)
	b.dirty = true
}

// addWS counts a WebSocket stream of tenant t open for d.
func (b *billing) addWS(t string, d time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tenant(t).WSSeconds += d.Seconds()
	b.dirty = true
}

// snapshot returns a copy of the counters.
func (b *billing) snapshot() map[string]billed {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]billed, len(b.tenants))
	for t, v := range b.tenants {
		out[t] = *v
	}
	return out
}

// save writes billing.json if it changed.
func (b *billing) save() error {
	b.mu.Lock()
	if !b.dirty {
		b.mu.Unlock()
		return nil
	}
	raw, err := json.Marshal(struct {
		Tenants map[string]*billed `json:"tenants"`
	}{b.tenants})
	b.dirty = false
	b.mu.Unlock()
	if err == nil {
		err = atomicfile.Write(b.path, raw, 0o600)
	}
	if err != nil {
		b.mu.Lock()
		b.dirty = true
		b.mu.Unlock()
	}
	return err
}

// run saves billing.json every billingSaveEvery until ctx ends, then once
// more.
func (b *billing) run(ctx context.Context, log func(error)) {
	t := time.NewTicker(billingSaveEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := b.save(); err != nil {
				log(err)
			}
			return
		case <-t.C:
			if err := b.save(); err != nil {
				log(err)
			}
		}
	}
}

// TenantBill is one tenant's billing counters, in the specification's
// units.
type TenantBill struct {
	IngestSpans  uint64  `json:"ingest_spans_count"`
	DerivedSpans uint64  `json:"derived_spans_count"`
	ExportsGB    float64 `json:"exports_gb"`
	WSMinutes    float64 `json:"ws_minutes"`
}

// bills returns every tenant's counters.
func (s *Server) bills() map[string]TenantBill {
	out := map[string]TenantBill{}
	if s.runner != nil {
		for _, t := range s.runner.Tenants() {
			out[t] = TenantBill{IngestSpans: s.runner.Stats(t).Spans, DerivedSpans: s.runner.Len(t)}
		}
	}
	if s.billing != nil {
		for t, v := range s.billing.snapshot() {
			b := out[t]
			b.ExportsGB, b.WSMinutes = float64(v.ExportsBytes)/1e9, v.WSSeconds/60
			out[t] = b
		}
	}
	return out
}

var (
	descBillIngest  = prometheus.NewDesc("logline_billing_ingest_spans_total", "Spans of the tenant in the ledger, as derivation has seen them (billing: ingest_spans_count); kept across restarts.", []string{"tenant"}, nil)
	descBillDerived = prometheus.NewDesc("logline_billing_derived_spans_total", "Events in the tenant's derived stream (billing: derived_spans_count); kept across restarts.", []string{"tenant"}, nil)
	descBillExports = prometheus.NewDesc("logline_billing_exports_bytes_total", "Bytes of the tenant's exports served (billing: exports_gb, in units of 10^9 bytes); kept across restarts.", []string{"tenant"}, nil)
	descBillWS      = prometheus.NewDesc("logline_billing_ws_seconds_total", "Seconds of the tenant's WebSocket streams, counted as each ends (billing: ws_minutes, in minutes); kept across restarts.", []string{"tenant"}, nil)
)

// billingCollector serves the billing counters on /metrics: a series for
// each of the first metrics.MaxTenants tenants (in name order), the rest
// summed as "_other", so that totals are whole.
type billingCollector struct{ s *Server }

func (c billingCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descBillIngest, descBillDerived, descBillExports, descBillWS} {
		ch <- d
	}
}

func (c billingCollector) Collect(ch chan<- prometheus.Metric) {
	bills := c.s.bills()
	out := map[string]TenantBill{}
	for i, t := range slices.Sorted(maps.Keys(bills)) {
		label := t
		if i >= metrics.MaxTenants {
			label = "_other"
		}
		b, o := bills[t], out[label]
		o.IngestSpans += b.IngestSpans
		o.DerivedSpans += b.DerivedSpans
		o.ExportsGB += b.ExportsGB
		o.WSMinutes += b.WSMinutes
		out[label] = o
	}
	for t, b := range out {
		ch <- prometheus.MustNewConstMetric(descBillIngest, prometheus.CounterValue, float64(b.IngestSpans), t)
		ch <- prometheus.MustNewConstMetric(descBillDerived, prometheus.CounterValue, float64(b.DerivedSpans), t)
		ch <- prometheus.MustNewConstMetric(descBillExports, prometheus.CounterValue, b.ExportsGB*1e9, t)
		ch <- prometheus.MustNewConstMetric(descBillWS, prometheus.CounterValue, b.WSMinutes*60, t)
	}
}

// billingHandler serves GET /billing to a caller with metrics.read: every
// tenant's counters (?tenant= one), in the specification's units.
func (s *Server) billingHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := gateway.PrincipalOf(r)
		if err := identity.Authorize(p, p.Tenant, identity.CapMetricsRead); err != nil {
			s.gateway.WriteProblem(w, r, err)
			return
		}
		bills := s.bills()
		if t := r.URL.Query().Get("tenant"); t != "" {
			b := bills[t]
			bills = map[string]TenantBill{t: b}
		}
		w.Header().Set("Cache-Control", "no-store")
		reply.JSON(w, http.StatusOK, map[string]any{"tenants": bills})
	})
}
