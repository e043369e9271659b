package vm

import (
	"context"
	"testing"

	"github.com/loglineos/loglineos/internal/lll/wasm/codegen"
	"github.com/loglineos/loglineos/internal/span"
	"github.com/loglineos/loglineos/stdlib"
)

// BenchmarkParts splits a run of the standard contract over one span
// into what it costs: writing the span's field table into the module's
// memory, the call of the validator (wazero's call and the guest's code;
// BenchmarkCallFloor has wazero's call alone), the whole CheckSpan, and
// taking an instance from the pool and giving it back.
func BenchmarkParts(b *testing.B) {
	ctx := context.Background()
	p, err := stdlib.Compile()
	if err != nil {
		b.Fatal(err)
	}
	out, err := codegen.Compile(p)
	if err != nil {
		b.Fatal(err)
	}
	m, err := Compile(ctx, p, out)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close(ctx)
	in, err := m.NewInstance(ctx)
	if err != nil {
		b.Fatal(err)
	}
	const name = "canonical_contract_v1"
	s, err := span.Parse([]byte(`{"id":"s_01JD8X3K2M4N5P6Q7R8S9T0V1W","tenant":"t_voulezvous","who":"dan","did":"sale.post","this":"order:12345","when":"2025-10-05T22:18:07Z","confirmed_by":["pos://register-7"],"status":"confirmed","data":{"gross":19.90,"items":3}}`), span.Limits{})
	if err != nil {
		b.Fatal(err)
	}
	if vi, _, err := in.CheckSpan(ctx, name, s, 0); vi != nil || err != nil {
		b.Fatal(vi, err)
	}
	b.Run("write", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := in.write(s); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("call", func(b *testing.B) {
		f := in.funcs[0].fn
		b.ReportAllocs()
		for b.Loop() {
			in.stack = [2]uint64{1000, 1 << 20}
			if err := f.CallWithStack(ctx, in.stack[:]); err != nil || in.stack[0] != 0 {
				b.Fatal(err, in.stack[0])
			}
		}
	})
	b.Run("checkspan", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if vi, _, err := in.CheckSpan(ctx, name, s, 0); vi != nil || err != nil {
				b.Fatal(vi, err)
			}
		}
	})
	b.Run("pool", func(b *testing.B) {
		pool := NewPool(m)
		b.ReportAllocs()
		for b.Loop() {
			in, err := pool.Get(ctx)
			if err != nil {
				b.Fatal(err)
			}
			pool.Put(in)
		}
	})
}
