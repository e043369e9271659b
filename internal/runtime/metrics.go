package runtime

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/loglineos/loglineos/internal/metrics"
)

// runtimeMetrics are the runtime's metric families.
type runtimeMetrics struct {
	actions        *prometheus.CounterVec   // tenant, router, call, outcome
	attempts       *prometheus.CounterVec   // tenant, call, outcome (delivered, failed, dead)
	attemptSeconds *prometheus.HistogramVec // call
	latency        *prometheus.HistogramVec // call: from queued to delivered
	queued         prometheus.Counter
	breakerOpen    prometheus.Counter
	webhooksIn     *prometheus.CounterVec // tenant, outcome
	evalFailures   *prometheus.CounterVec // tenant, call
	tenant         func(string) string    // the bounded tenant label
}

func newMetrics(set *metrics.Set) (*runtimeMetrics, error) {
	m := &runtimeMetrics{
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "logline_runtime_actions_total",
			Help: "Router actions, by tenant, router, host call and outcome (queued, sent, denied, not_allowed, depth, invalid, error)."},
			[]string{"tenant", "router", "call", "outcome"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "logline_runtime_delivery_attempts_total",
			Help: "Delivery attempts of queued actions, by tenant, call and outcome (delivered, failed, dead)."},
			[]string{"tenant", "call", "outcome"}),
		attemptSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "logline_runtime_attempt_seconds",
			Help: "Duration of one delivery attempt.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 8)}, []string{"call"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "logline_runtime_delivery_latency_seconds",
			Help: "From the record that caused an action becoming durable (acknowledged) to the action's delivery.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 20)}, []string{"call"}),
		queued: prometheus.NewCounter(prometheus.CounterOpts{Name: "logline_runtime_queued_total",
			Help: "Actions queued in the outbox."}),
		breakerOpen: prometheus.NewCounter(prometheus.CounterOpts{Name: "logline_runtime_breaker_opened_total",
			Help: "Times an endpoint's circuit breaker opened."}),
		webhooksIn: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "logline_webhooks_in_total",
			Help: "Webhooks received, by tenant and outcome (accepted, bad_signature, stale, replay, unknown_source, rejected)."},
			[]string{"tenant", "outcome"}),
		evalFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "logline_runtime_host_call_failures_total",
			Help: "Host calls refused or failed inside an evaluation, by tenant and call."}, []string{"tenant", "call"}),
		tenant: func(t string) string { return t },
	}
	if set != nil {
		m.tenant = set.Tenant
		reg := set.Registry
		for _, c := range []prometheus.Collector{m.actions, m.attempts, m.attemptSeconds, m.latency, m.queued, m.breakerOpen, m.webhooksIn, m.evalFailures} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
