package bundle_test

import (
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/loglineos/loglineos/internal/bundle"
	"github.com/loglineos/loglineos/internal/lll"
	"github.com/loglineos/loglineos/stdlib"
)

// BenchmarkCanonicalContract validates decoded spans with
// canonical_contract_v1 through EVAL (target: >= 2,000,000 spans/s on
// one core, i.e. <= 500 ns/op).
func BenchmarkCanonicalContract(b *testing.B) {
	bd := load(b, stdBundle(b))
	v := bd.Validator("canonical_contract_v1")
	s := parse(b, good)
	if vi := v.Validate(s); vi != nil {
		b.Fatal(vi)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if v.Validate(s) != nil {
			b.Fatal("violation")
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "spans/s")
}

// BenchmarkCanonicalContractReject measures the rejecting path (a bad
// "when"), which formats a detail.
func BenchmarkCanonicalContractReject(b *testing.B) {
	bd := load(b, stdBundle(b))
	v := bd.Validator("canonical_contract_v1")
	s := parse(b, `{"id":"a","tenant":"t","who":"w","did":"d","this":"x","when":"2025-13-45","status":"pending"}`)
	b.ReportAllocs()
	for b.Loop() {
		if v.Validate(s) == nil {
			b.Fatal("no violation")
		}
	}
}

// BenchmarkCompileStdlib compiles the standard sources (target: <= 50 ms).
func BenchmarkCompileStdlib(b *testing.B) {
	srcs := stdlib.Sources()
	b.ReportAllocs()
	for b.Loop() {
		if _, errs := lll.Compile(srcs); errs != nil {
			b.Fatal(errs)
		}
	}
}

// BenchmarkBuildStdlib compiles, encodes and signs the standard bundle.
func BenchmarkBuildStdlib(b *testing.B) {
	key := testKey(1)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := stdlib.Build(key); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoadStdlib verifies and loads the standard bundle.
func BenchmarkLoadStdlib(b *testing.B) {
	data := stdBundle(b)
	opts := bundle.LoadOptions{Trusted: []ed25519.PublicKey{pub(testKey(1))}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := bundle.Load(data, opts); err != nil {
			b.Fatal(err)
		}
	}
}

// TestPerformanceBudgets checks the budgets loosely (10x margin), so a
// gross regression fails the ordinary test run; the benchmarks give the
// real figures.
func TestPerformanceBudgets(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("timing (skipped in -short and -race runs)")
	}
	r := testing.Benchmark(BenchmarkCanonicalContract)
	if per := time.Duration(r.NsPerOp()); per > 5*time.Microsecond {
		t.Errorf("canonical_contract_v1: %v a span, budget 500ns", per)
	}
	if r.AllocsPerOp() != 0 {
		t.Errorf("canonical_contract_v1: %d allocations a span, want 0", r.AllocsPerOp())
	}
	c := testing.Benchmark(BenchmarkCompileStdlib)
	if per := time.Duration(c.NsPerOp()); per > 500*time.Millisecond {
		t.Errorf("compiling stdlib: %v, budget 50ms", per)
	}
}
