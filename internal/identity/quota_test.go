package identity

import (
	"errors"
	"fmt"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestQuotaRetryAfter(t *testing.T) {
	clock := newFakeClock()
	l := NewLimiter(LimiterConfig{Now: clock.Now, Tenants: map[string]TenantConfig{
		"acme": {Quota: Quota{IngestPerSecond: 10, Burst: 20}},
	}})
	if err := l.Allow("acme", nil, 20); err != nil {
		t.Fatalf("the burst: %v", err)
	}
	err := l.Allow("acme", nil, 5)
	var e *Error
	if !errors.As(err, &e) || e.Kind != KindQuota || e.Status() != 429 || !errors.Is(err, ErrQuota) {
		t.Fatalf("over quota: %v", err)
	}
	w := httptest.NewRecorder()
	WriteProblem(w, httptest.NewRequest("POST", "/ingest", nil), err)
	if e.RetryAfter != 500*time.Millisecond || w.Header().Get("Retry-After") != "1" {
		t.Errorf("RetryAfter = %v (Retry-After: %q s), want 500ms (1 s)", e.RetryAfter, w.Header().Get("Retry-After"))
	}
	clock.Add(e.RetryAfter)
	if err := l.Allow("acme", nil, 5); err != nil {
		t.Errorf("after RetryAfter: %v", err)
	}
	if err := l.Allow("acme", nil, 21); ReasonOf(err) != ReasonBatchTooBig {
		t.Errorf("batch over the burst: %v", err)
	}
	// An unconfigured tenant gets the default.
	if err := l.Allow("other", nil, DefaultTenantQuota().Burst); err != nil {
		t.Errorf("default quota: %v", err)
	}
}

func TestQuotaPerRole(t *testing.T) {
	clock := newFakeClock()
	l := NewLimiter(LimiterConfig{Now: clock.Now, Tenants: map[string]TenantConfig{
		"acme": {Quota: Quota{IngestPerSecond: 100, Burst: 100}, RoleQuotas: map[string]Quota{RoleApp: {IngestPerSecond: 1, Burst: 10}}},
	}})
	if err := l.Allow("acme", []string{RoleApp}, 10); err != nil {
		t.Fatal(err)
	}
	err := l.Allow("acme", []string{RoleApp}, 1)
	var e *Error
	if !errors.As(err, &e) || e.Kind != KindQuota || e.RetryAfter != time.Second {
		t.Fatalf("app over its role quota: %v", err)
	}
	// The refused request took nothing from the tenant's bucket: writers
	// still have 90.
	if err := l.Allow("acme", []string{RoleWriter}, 90); err != nil {
		t.Errorf("writer after the app's refusal: %v", err)
	}
	if err := l.Allow("acme", []string{RoleWriter}, 1); ReasonOf(err) != ReasonQuota {
		t.Errorf("tenant bucket: %v", err)
	}
}

func TestQuotaUpdate(t *testing.T) {
	clock := newFakeClock()
	s := newTestService(t, clock, func(c *Config) {
		c.Tenants["acme"] = TenantConfig{Quota: Quota{IngestPerSecond: 1, Burst: 1}}
	})
	l := s.Limiter()
	if err := l.Allow("acme", nil, 1); err != nil {
		t.Fatal(err)
	}
	if err := l.Allow("acme", nil, 1); err == nil {
		t.Fatal("second request allowed")
	}
	if err := s.UpdateTenants(map[string]TenantConfig{"acme": {Quota: Quota{IngestPerSecond: 1000, Burst: 1000}}}); err != nil {
		t.Fatal(err)
	}
	clock.Add(time.Second)
	if err := l.Allow("acme", nil, 500); err != nil {
		t.Errorf("after raising the quota: %v", err)
	}
}

func TestQuotaRegistryBounded(t *testing.T) {
	clock := newFakeClock()
	l := NewLimiter(LimiterConfig{Now: clock.Now, Max: 128})
	for i := range 10000 {
		if err := l.Allow("t"+strconv.Itoa(i), nil, 1); err != nil {
			t.Fatal(err)
		}
	}
	if n := l.Len(); n > 128 {
		t.Errorf("%d buckets, want at most 128", n)
	}
}

// TestQuotaIsolation floods tenant A from several goroutines while tenant
// B keeps asking at its own pace: every one of B's requests is allowed.
func TestQuotaIsolation(t *testing.T) {
	clock := newFakeClock() // frozen: A's bucket never refills
	l := NewLimiter(LimiterConfig{Now: clock.Now, Tenants: map[string]TenantConfig{
		"a": {Quota: Quota{IngestPerSecond: 100, Burst: 100}},
		"b": {Quota: Quota{IngestPerSecond: 100, Burst: 5000}},
	}})
	var wg sync.WaitGroup
	var aAllowed, aRefused atomic.Int64
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if l.Allow("a", []string{RoleApp}, 1) == nil {
					aAllowed.Add(1)
				} else {
					aRefused.Add(1)
				}
			}
		})
	}
	for aRefused.Load() < 1000 { // the flood is on
		time.Sleep(time.Millisecond)
	}
	var worst time.Duration
	for i := range 5000 {
		start := time.Now()
		if err := l.Allow("b", []string{RoleApp}, 1); err != nil {
			t.Fatalf("tenant b refused at request %d while a floods: %v", i, err)
		}
		worst = max(worst, time.Since(start))
	}
	refusedDuring := aRefused.Load()
	close(stop)
	wg.Wait()
	if aRefused.Load() == refusedDuring {
		t.Error("the flood stopped while b was measured")
	}
	if aAllowed.Load() != 100 || aRefused.Load() == 0 {
		t.Errorf("tenant a: %d allowed, %d refused; want 100 allowed", aAllowed.Load(), aRefused.Load())
	}
	t.Logf("a: %d allowed, %d refused; b: 5000 allowed, slowest %v", aAllowed.Load(), aRefused.Load(), worst)
}

// BenchmarkLimiterAllow: many tenants, all cores.
func BenchmarkLimiterAllow(b *testing.B) {
	l := NewLimiter(LimiterConfig{Default: Quota{IngestPerSecond: 1e9, Burst: 1 << 30}})
	tenants := make([]string, 1000)
	for i := range tenants {
		tenants[i] = fmt.Sprintf("tenant-%d", i)
	}
	var n atomic.Uint64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := int(n.Add(1)) * 7919
		for pb.Next() {
			i++
			_ = l.Allow(tenants[i%len(tenants)], nil, 1)
		}
	})
}

// BenchmarkLimiterUnderFlood measures tenant b's Allow while the other
// goroutines flood tenant a past its quota.
func BenchmarkLimiterUnderFlood(b *testing.B) {
	l := NewLimiter(LimiterConfig{Tenants: map[string]TenantConfig{
		"a": {Quota: Quota{IngestPerSecond: 10, Burst: 10}},
		"b": {Quota: Quota{IngestPerSecond: 1e9, Burst: 1 << 30}},
	}})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				_ = l.Allow("a", nil, 1)
			}
		}
	})
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if err := l.Allow("b", nil, 1); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	close(stop)
	wg.Wait()
	reportPercentiles(b, "", lat, 50, 99)
}
