package server

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/loglineos/loglineos/internal/gateway"
	"github.com/loglineos/loglineos/internal/lll/backend"
	"github.com/loglineos/loglineos/internal/span"
)

// openBackend prepares the span validators, the routers and the event
// validators of the derivation on bundle.backend and registers its
// metrics: logline_runtime_divergence_total (by validator or router),
// logline_runtime_wasm_runs_total and logline_runtime_wasm_fallbacks_total
// (span validators and routers), logline_runtime_wasm_event_runs_total
// and logline_runtime_wasm_event_fallbacks_total (event validators).
// Divergences are logged, at most ten a minute after the first ten.
func (s *Server) openBackend() error {
	kind, err := backend.ParseKind(s.cfg.Bundle.Backend)
	if err != nil {
		return err
	}
	divs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "logline_runtime_divergence_total",
		Help: "Evaluations (of spans, of derived events) on which the wasm backend and the interpreter disagreed (bundle.backend shadow) or the module failed (wasm, shadow), by validator or router (its label validator)."},
		[]string{"validator"})
	logs := rate.Sometimes{First: 10, Interval: 6 * time.Second}
	opts := backend.Options{
		Compile: s.cfg.Bundle.Path == "",
		OnDivergence: func(d backend.Divergence) {
			divs.WithLabelValues(d.Name()).Inc()
			logs.Do(func() {
				s.log.Error("backend divergence: the wasm module and the interpreter disagree on an input; the interpreter's answer was kept",
					"input", d.SpanID, "validator", d.Validator, "router", d.Router, "eval", d.Eval.String(), "wasm", d.Wasm.String())
			})
		},
	}
	sp, evs, err := backend.Open(context.Background(), s.bundle, kind, opts)
	if err != nil {
		return err
	}
	s.spans, s.events = sp, evs
	for _, v := range sp.Validators() {
		divs.WithLabelValues(v.IR.Name) // a series at 0 from the start, for alerts on its increase
	}
	for _, r := range sp.Routers() {
		divs.WithLabelValues(r)
	}
	for _, v := range evs.Compiled() {
		divs.WithLabelValues(v)
	}
	collectors := []prometheus.Collector{divs}
	for _, c := range []struct {
		name, help string
		value      func() int64
	}{
		{"logline_runtime_wasm_runs_total", "Evaluations (span validators, routers) run on the wasm module (bundle.backend wasm or shadow).",
			func() int64 { return sp.Stats().Runs }},
		{"logline_runtime_wasm_fallbacks_total", "Evaluations (span validators, routers) the wasm module was not compiled for, answered by the interpreter.",
			func() int64 { return sp.Stats().Fallbacks }},
		{"logline_runtime_wasm_event_runs_total", "Evaluations of the derivation's event validators run on the wasm module (bundle.backend wasm or shadow).",
			func() int64 { return evs.Stats().Runs }},
		{"logline_runtime_wasm_event_fallbacks_total", "Evaluations of the derivation's event validators the wasm module was not compiled for, answered by the interpreter.",
			func() int64 { return evs.Stats().Fallbacks }},
	} {
		collectors = append(collectors, prometheus.NewCounterFunc(prometheus.CounterOpts{Name: c.name, Help: c.help},
			func() float64 { return float64(c.value()) }))
	}
	for _, c := range collectors {
		if err := s.metrics.Registry.Register(c); err != nil {
			return err
		}
	}
	s.log.Info("span and event validators", "backend", kind)
	return nil
}

// bundleValidator runs the bundle's ingest validators on the configured
// backend; the first violation rejects the span.
type bundleValidator struct{ spans *backend.Spans }

func (bv bundleValidator) Validate(s *span.Span) *gateway.Rejection {
	for _, v := range bv.spans.Validators() {
		if vi := bv.spans.CheckSpan(context.Background(), v, s, nil); vi != nil {
			return &gateway.Rejection{Validator: vi.Validator, Rule: vi.Rule, Field: vi.Field, Detail: vi.Detail, At: vi.Pos}
		}
	}
	return nil
}
