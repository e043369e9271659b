package vm_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/lll/ir"
	"github.com/loglineos/loglineos/internal/lll/wasm/codegen"
	"github.com/loglineos/loglineos/internal/lll/wasm/vm"
	"github.com/loglineos/loglineos/internal/lll/wasm/wasmtest"
	"github.com/loglineos/loglineos/internal/span"
	"github.com/loglineos/loglineos/stdlib"
)

const contract = "canonical_contract_v1"

func setup(t testing.TB) (*ir.Program, *eval.Validator, *vm.Pool) {
	t.Helper()
	p, err := stdlib.Compile()
	if err != nil {
		t.Fatal(err)
	}
	ep, m := compileProgram(t, p)
	return p, ep.Validator(contract), vm.NewPool(m)
}

// compileProgram compiles p for both backends; the module is closed when
// the test ends.
func compileProgram(t testing.TB, p *ir.Program) (*eval.Program, *vm.Module) {
	t.Helper()
	ep, err := eval.Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	out, err := codegen.Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	m, err := vm.Compile(ctx, p, out)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(ctx) })
	return ep, m
}

// TestDifferential runs the interpreter and the module over generated
// spans, valid and each kind of invalid: the same verdict, the same
// failing rule and detail, the same steps (fuel) used.
func TestDifferential(t *testing.T) {
	_, ev, pool := setup(t)
	ctx := context.Background()
	in, err := pool.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Put(in)
	r := rand.New(rand.NewPCG(1, 2))
	vs := wasmtest.SpanVariants()
	seen := map[string]int{}
	for n := range 3000 {
		line := wasmtest.GenSpan(r, vs)
		if n == 0 {
			line = []byte(`{"id":"s_1","tenant":"t","who":"dan","did":"x","this":"y","when":"2025-10-05T22:18:07Z","status":"confirmed"}`)
		}
		s, err := span.Parse(line, span.Limits{})
		if err != nil {
			t.Fatalf("span %d %s: %v", n, line, err)
		}
		want, steps := ev.CheckSpanSteps(ctx, s, &eval.Env{MaxSteps: eval.DefaultMaxSteps})
		got, res, err := in.CheckSpan(ctx, contract, s, eval.DefaultMaxSteps)
		if err != nil {
			t.Fatalf("span %d %s: %v", n, line, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("span %d %s: violation (-eval +wasm):\n%s", n, line, diff)
		}
		if res.FuelUsed != steps {
			t.Fatalf("span %d %s: fuel used %d, eval counted %d steps", n, line, res.FuelUsed, steps)
		}
		key := "pass"
		if want != nil {
			key = want.Rule
			if strings.HasPrefix(want.Detail, "field") {
				key += " / " + strings.SplitN(want.Detail, " ", 4)[2]
			}
		}
		seen[key]++
	}
	// The generator must reach every rule of the contract, and pass.
	for _, must := range []string{"pass", `require field "id" / is`, `require field "when" as "rfc3339" / is`,
		`require field "status" in ["confirmed", "pending", "rejected", "cancelled"] / is`, "reject unknown fields"} {
		if seen[must] == 0 {
			t.Errorf("no span gave %q; seen %v", must, seen)
		}
	}
	t.Logf("outcomes: %v", seen)
}

// TestPool: instances come back and are reused; two instances do not
// share memory.
func TestPool(t *testing.T) {
	_, _, pool := setup(t)
	ctx := context.Background()
	a, err := pool.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := pool.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatal("two Gets without a Put gave one instance")
	}
	bad, _ := span.Parse([]byte(`{"id":"x"}`), span.Limits{})
	good, _ := span.Parse([]byte(`{"id":"s","tenant":"t","who":"w","did":"d","this":"t","when":"2025-10-05T22:18:07Z","status":"pending"}`), span.Limits{})
	if vi, _, err := a.CheckSpan(ctx, contract, bad, 0); err != nil || vi == nil {
		t.Fatalf("bad span: %v, %v", vi, err)
	}
	if vi, _, err := b.CheckSpan(ctx, contract, good, 0); err != nil || vi != nil {
		t.Fatalf("good span: %v, %v", vi, err)
	}
	pool.Put(a)
	if c, _ := pool.Get(ctx); c != a {
		t.Fatal("Get after Put did not reuse the instance")
	}
}

// TestMemoryFixed: the memory's minimum is its maximum, so it cannot grow.
func TestMemoryFixed(t *testing.T) {
	_, _, pool := setup(t)
	in, err := pool.Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := in.Memory().Grow(1); ok {
		t.Fatal("the memory grew")
	}
}

// TestAllocs: a run over a span allocates nothing in steady state.
func TestAllocs(t *testing.T) {
	_, _, pool := setup(t)
	ctx := context.Background()
	in, err := pool.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s, err := span.Parse([]byte(`{"id":"s","tenant":"t","who":"w","did":"d","this":"t","when":"2025-10-05T22:18:07Z","status":"pending","data":{"a":1}}`), span.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if vi, _, err := in.CheckSpan(ctx, contract, s, 0); vi != nil || err != nil {
			t.Fatal(vi, err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations a run, want 0", allocs)
	}
}

// BenchmarkCheckSpan runs the canonical contract on the module (a span
// that passes, its field table copied in each time).
func BenchmarkCheckSpan(b *testing.B) {
	_, _, pool := setup(b)
	ctx := context.Background()
	in, err := pool.Get(ctx)
	if err != nil {
		b.Fatal(err)
	}
	s, _ := span.Parse([]byte(`{"id":"s_01JD8X3K2M4N5P6Q7R8S9T0V1W","tenant":"t_voulezvous","who":"dan","did":"sale.post","this":"order:12345","when":"2025-10-05T22:18:07Z","confirmed_by":["pos://register-7"],"status":"confirmed","data":{"gross":19.90,"items":3}}`), span.Limits{})
	b.ReportAllocs()
	for b.Loop() {
		if vi, _, err := in.CheckSpan(ctx, contract, s, 0); vi != nil || err != nil {
			b.Fatal(vi, err)
		}
	}
}

// TestPoolConcurrent: callers on several goroutines never hold one
// instance at once, each run answers for its own span, and Gets counts
// every Get.
func TestPoolConcurrent(t *testing.T) {
	_, _, pool := setup(t)
	ctx := context.Background()
	bad, _ := span.Parse([]byte(`{"id":"x"}`), span.Limits{})
	good, _ := span.Parse([]byte(`{"id":"s","tenant":"t","who":"w","did":"d","this":"t","when":"2025-10-05T22:18:07Z","status":"pending"}`), span.Limits{})
	const workers, runs = 4, 200
	var mu sync.Mutex
	held := map[*vm.Instance]bool{}
	hold := func(in *vm.Instance, on bool) bool {
		mu.Lock()
		defer mu.Unlock()
		if held[in] == on {
			return false
		}
		held[in] = on
		return true
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range runs {
				in, err := pool.Get(ctx)
				if err != nil {
					errs <- err
					return
				}
				if !hold(in, true) {
					errs <- fmt.Errorf("worker %d: an instance handed out twice", w)
					return
				}
				s, pass := good, (w+i)%2 == 0
				if !pass {
					s = bad
				}
				if vi, _, err := in.CheckSpan(ctx, contract, s, 0); err != nil || (vi == nil) != pass {
					errs <- fmt.Errorf("worker %d run %d: %v, %v; want pass %v", w, i, vi, err, pass)
					return
				}
				hold(in, false)
				pool.Put(in)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := pool.Gets(); got != workers*runs {
		t.Errorf("Gets %d, want %d", got, workers*runs)
	}
}
