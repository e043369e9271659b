package wasmtest_test

import (
	"errors"
	"testing"

	"github.com/loglineos/loglineos/internal/lll/wasm/enc"
	"github.com/loglineos/loglineos/internal/lll/wasm/wasmtest"
)

// TestWabtRefuses makes sure the independent validator does look: a
// function declared without results that leaves an i32 on the stack, and
// a module using a feature the backend must not (bulk memory's
// memory.fill), are refused.
func TestWabtRefuses(t *testing.T) {
	var leaves enc.Code
	leaves.I32Const(1)
	var fill enc.Code
	fill.I32Const(0).I32Const(0).I32Const(0).Op(0xfc).Op(11).Op(0) // memory.fill
	for _, tc := range []struct {
		name string
		m    enc.Module
	}{
		{"ill-typed", enc.Module{Types: []enc.FuncType{{}}, Funcs: []enc.Func{{Body: leaves}}}},
		{"bulk memory", enc.Module{Types: []enc.FuncType{{}}, Funcs: []enc.Func{{Body: fill}}, Memory: &enc.Memory{Min: 1, Max: 1}}},
	} {
		b, err := tc.m.Encode()
		if err != nil {
			t.Fatal(err)
		}
		err = wasmtest.Wabt(b)
		if errors.Is(err, wasmtest.ErrNoWabt) {
			t.Skip("wasm-validate is not on PATH")
		}
		if err == nil {
			t.Errorf("%s: wasm-validate accepts it", tc.name)
		}
	}
}
