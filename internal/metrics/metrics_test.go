package metrics

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestPublicQuantiles(t *testing.T) {
	s := New()
	// 1000 appends: 900 of 1 ms, 90 of 4 ms, 10 of 40 ms; by nearest rank
	// p50 is 1 ms, p95 and p99 are 4 ms.
	for i := range 1000 {
		v := 0.001
		switch {
		case i >= 990:
			v = 0.040
		case i >= 900:
			v = 0.004
		}
		s.AppendDuration.Observe(v)
	}
	q := s.Public()["ledger.append_latency_ms"].(map[string]float64)
	// Linear interpolation inside the buckets brackets each true value.
	for name, want := range map[string][2]float64{"p50": {0.5, 1}, "p95": {2, 5}, "p99": {2, 5}} {
		if got := q[name]; got < want[0] || got > want[1] || math.IsNaN(got) {
			t.Errorf("%s = %v ms, want within %v", name, got, want)
		}
	}
	s.Requests.WithLabelValues("POST /ingest", "POST", "2xx").Add(3)
	s.Requests.WithLabelValues("POST /ingest", "POST", "4xx").Add(2)
	s.AuthFailures.WithLabelValues("401", "expired").Inc()
	p := s.Public()
	if p["gateway.requests_total"] != 5.0 || p["gateway.requests_4xx"] != 2.0 || p["gateway.401_total"] != 1.0 {
		t.Fatalf("public counters %v", p)
	}
	w := httptest.NewRecorder()
	s.PublicHandler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics/public", nil))
	if !strings.Contains(w.Body.String(), `"gateway.requests_total": 5`) {
		t.Fatalf("public handler: %s", w.Body)
	}
}

func TestTenantLabelsBounded(t *testing.T) {
	s := New()
	for i := range MaxTenants + 50 {
		s.IngestByTenant.WithLabelValues(s.Tenant(fmt.Sprintf("t_%d", i))).Inc()
	}
	if got := s.Tenant("t_new"); got != "_other" {
		t.Fatalf("tenant past the cap labelled %q", got)
	}
	if got := s.Tenant("t_3"); got != "t_3" {
		t.Fatalf("a known tenant lost its label: %q", got)
	}
	families, err := s.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series, other := 0, 0.0
	for _, f := range families {
		if f.GetName() != "logline_ingest_tenant_spans_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			series++
			if labelMap(m)["tenant"] == "_other" {
				other = m.GetCounter().GetValue()
			}
		}
	}
	if series != MaxTenants+1 || other != 50 {
		t.Fatalf("%d billing series, _other=%v", series, other)
	}
	// The public counters are aggregates: the total, no tenant's name.
	pub := s.Public()
	if got, ok := pub["ingest.spans_accepted"].(float64); !ok || got != 0 {
		t.Fatalf("public accepted total is a %T, %v", pub["ingest.spans_accepted"], got)
	}
	b, _ := json.Marshal(pub)
	if strings.Contains(string(b), "t_3") || strings.Contains(string(b), "_other") {
		t.Fatalf("the public counters name tenants: %s", b)
	}
}
