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

// BenchmarkHostCallFloor measures what a guest's call of one Go host
// function costs in wazero alone: an exported function that calls an
// imported host function (i64) -> i64 once and returns its value, the host
// function a GoModuleFunc (as the module's host calls and kernels are
// linked) or a GoFunc that does nothing but answer; the difference from
// BenchmarkCallFloor's call is the host call's cost (the exit from the
// compiled code to Go and the way back).
func BenchmarkHostCallFloor(b *testing.B) {
	ctx := context.Background()
	var body enc.Code
	body.I64Const(7).Index(enc.OpCall, 0)
	m := &enc.Module{
		Types:   []enc.FuncType{{Params: []enc.ValType{enc.I64}, Results: []enc.ValType{enc.I64}}, {Results: []enc.ValType{enc.I64}}},
		Imports: []enc.Import{{Module: "h", Name: "f", Type: 0}},
		Funcs:   []enc.Func{{Type: 1, Body: body}},
		Exports: []enc.Export{{Name: "f", Kind: enc.ExternFunc, Index: 1}},
	}
	wasm, err := m.Encode()
	if err != nil {
		b.Fatal(err)
	}
	for _, kind := range []string{"module", "plain"} {
		b.Run(kind, func(b *testing.B) {
			rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCoreFeatures(vm.Features))
			defer rt.Close(ctx)
			fb := rt.NewHostModuleBuilder("h").NewFunctionBuilder()
			i64 := []api.ValueType{api.ValueTypeI64}
			if kind == "module" {
				fb = fb.WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, _ api.Module, stack []uint64) { stack[0]++ }), i64, i64)
			} else {
				fb = fb.WithGoFunction(api.GoFunc(func(_ context.Context, stack []uint64) { stack[0]++ }), i64, i64)
			}
			if _, err := fb.Export("f").Instantiate(ctx); err != nil {
				b.Fatal(err)
			}
			mod, err := rt.Instantiate(ctx, wasm)
			if err != nil {
				b.Fatal(err)
			}
			f := mod.ExportedFunction("f")
			stack := make([]uint64, 1)
			b.ReportAllocs()
			for b.Loop() {
				if err := f.CallWithStack(ctx, stack); err != nil || stack[0] != 8 {
					b.Fatal(err, stack[0])
				}
			}
		})
	}
}
