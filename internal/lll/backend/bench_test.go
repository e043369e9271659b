package backend

import (
	"context"
	"strings"
	"testing"

	"github.com/loglineos/loglineos/internal/bundle"
	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/lll/ir"
	"github.com/loglineos/loglineos/stdlib"
)

// heavyRule is one rule of the compute-heavy program: string comparisons,
// a membership test, and arithmetic over the lengths of the span's strings
// (checked for overflow on both backends).
const heavyRule = `  check (len(who) + len(did) * 2 - len(this) / 4) * 3 < 100000 and who != did and (did in ["sale.post", "sale.void", "stock.in", "stock.out", "order.open", "order.close"] or did < "m") and ((len(id) * 3 + 7) * (len(tenant) + 1) - 5) / 2 > -1000 and this >= "a" and (len(who) + 1) * (len(did) + 1) * (len(this) + 1) < 1000000000
`

// heavySource is a validator with a guard and 16 such rules: what the
// module is for (every rule passes, so every rule runs).
func heavySource() string {
	return "validator heavy {\n  when status != \"cancelled\" and has(who) and len(tenant) > 0\n" + strings.Repeat(heavyRule, 16) + "}\n"
}

const benchSpan = `{"id":"s_01JD8X3K2M4N5P6Q7R8S9T0V1W","tenant":"t_voulezvous","who":"dan","did":"sale.post","this":"order:12345","when":"2025-10-05T22:18:07Z","confirmed_by":["pos://register-7"],"status":"confirmed","data":{"gross":19.90,"items":3}}`

func benchBundles(b *testing.B) map[string]*bundle.Bundle {
	b.Helper()
	std := compileSources(b, stdlib.Sources())
	return map[string]*bundle.Bundle{"contract": std, "heavy": compileText(b, heavySource())}
}

// BenchmarkSpans checks one span through Spans.CheckSpan, as the gateway
// does (an instance taken from the pool and given back, the span's field
// table copied into it), on each backend: the standard span contract and
// the compute-heavy program. spans/s is the figure to compare.
func BenchmarkSpans(b *testing.B) {
	ctx := context.Background()
	for _, prog := range []string{"contract", "heavy"} {
		bd := benchBundles(b)[prog]
		for _, k := range Kinds() {
			b.Run(prog+"/"+string(k), func(b *testing.B) {
				c, err := New(ctx, bd, k, Options{})
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close(ctx)
				s := parse(b, benchSpan)
				v := c.Validators()[0]
				env := &eval.Env{}
				if vi := c.CheckSpan(ctx, v, s, env); vi != nil {
					b.Fatal(vi)
				}
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					if c.CheckSpan(ctx, v, s, env) != nil {
						b.Fatal("violation")
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "spans/s")
				if st := c.Stats(); st.Fallbacks != 0 || st.Divergences != 0 {
					b.Fatalf("stats %+v", st)
				}
			})
		}
	}
}

// BenchmarkModule measures what starting on wasm costs: compiling the
// module with wazero (once per process) and instantiating it (once per
// pooled instance).
func BenchmarkModule(b *testing.B) {
	ctx := context.Background()
	for name, bd := range benchBundles(b) {
		b.Run("compile/"+name, func(b *testing.B) {
			for b.Loop() {
				c, err := New(ctx, bd, Wasm, Options{})
				if err != nil {
					b.Fatal(err)
				}
				c.Close(ctx)
			}
		})
		b.Run("instantiate/"+name, func(b *testing.B) {
			c, err := New(ctx, bd, Wasm, Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close(ctx)
			for b.Loop() {
				in, err := c.mod.m.NewInstance(ctx)
				if err != nil {
					b.Fatal(err)
				}
				in.Close(ctx)
			}
		})
	}
}

// BenchmarkRoute routes one span through Spans.Route on each backend: the
// key-value router of loglinerun's examples (two kv.get, a kv.set told to
// the host, a map payload, the input as a payload), with a host that
// keeps its store in memory. routes/s is the figure to compare.
func BenchmarkRoute(b *testing.B) {
	ctx := context.Background()
	bd := compileText(b, firstsRouter)
	rt := bd.Routers()[0]
	s := parse(b, benchSpan)
	for _, k := range Kinds() {
		b.Run(string(k), func(b *testing.B) {
			c, err := New(ctx, bd, k, Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close(ctx)
			env := &eval.Env{Host: &benchHost{kv: map[string]ir.Value{}}}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Route(ctx, rt, eval.Input{Span: s}, env); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "routes/s")
		})
	}
}

// benchHost is kvHost without its logs.
type benchHost struct{ kv map[string]ir.Value }

func (h *benchHost) Call(_ context.Context, name string, args []ir.Value) (ir.Value, error) {
	if v, ok := h.kv[args[0].Str()]; ok && name == "kv.get" {
		return v, nil
	}
	return ir.NullValue(), nil
}

func (h *benchHost) Stage(_ context.Context, a *eval.Action) error {
	if a.Call == "kv.set" {
		h.kv[a.Args[0].Str()] = a.Args[1]
	}
	return nil
}
