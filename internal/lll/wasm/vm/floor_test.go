package vm_test

import (
	"context"
	"testing"

	"github.com/loglineos/loglineos/internal/lll/wasm/enc"
	"github.com/loglineos/loglineos/internal/lll/wasm/vm"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// BenchmarkCallFloor measures what wazero's call costs by itself: an
// exported function that returns a constant, called with a reused stack
// (what every run of a validator pays before its own code), and the same
// call with the setting and reading of a mutable global around it.
func BenchmarkCallFloor(b *testing.B) {
	ctx := context.Background()
	var body enc.Code
	body.I32Const(0)
	m := &enc.Module{
		Types:   []enc.FuncType{{Results: []enc.ValType{enc.I32}}},
		Funcs:   []enc.Func{{Type: 0, Body: body}},
		Globals: []enc.Global{{Type: enc.I64, Mutable: true}},
		Exports: []enc.Export{{Name: "f", Kind: enc.ExternFunc}, {Name: "g", Kind: enc.ExternGlobal}},
	}
	wasm, err := m.Encode()
	if err != nil {
		b.Fatal(err)
	}
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCoreFeatures(vm.Features))
	defer rt.Close(ctx)
	mod, err := rt.Instantiate(ctx, wasm)
	if err != nil {
		b.Fatal(err)
	}
	f, g := mod.ExportedFunction("f"), mod.ExportedGlobal("g").(api.MutableGlobal)
	stack := make([]uint64, 1)
	b.Run("call", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := f.CallWithStack(ctx, stack); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("call+global", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			g.Set(1)
			if err := f.CallWithStack(ctx, stack); err != nil || g.Get() != 1 {
				b.Fatal(err)
			}
		}
	})
}
