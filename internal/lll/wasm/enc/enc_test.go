package enc_test

import (
	"encoding/hex"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/loglineos/loglineos/internal/lll/wasm/enc"
	"github.com/loglineos/loglineos/internal/lll/wasm/wasmtest"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The vectors: the examples of the LEB128 article (624485, -123456) and
// the edges of one, two and ten bytes.
func TestUleb128(t *testing.T) {
	for _, tc := range []struct {
		in   uint64
		want string
	}{
		{0, "00"},
		{1, "01"},
		{127, "7f"},
		{128, "80 01"},
		{255, "ff 01"},
		{16383, "ff 7f"},
		{16384, "80 80 01"},
		{624485, "e5 8e 26"},
		{math.MaxUint32, "ff ff ff ff 0f"},
		{math.MaxInt64, "ff ff ff ff ff ff ff ff 7f"},
		{math.MaxUint64, "ff ff ff ff ff ff ff ff ff 01"},
	} {
		got := enc.AppendUleb128(nil, tc.in)
		if diff := cmp.Diff(unhex(t, tc.want), got); diff != "" {
			t.Errorf("AppendUleb128(%d) (-want +got):\n%s", tc.in, diff)
		}
	}
}

func TestSleb128(t *testing.T) {
	for _, tc := range []struct {
		in   int64
		want string
	}{
		{0, "00"},
		{1, "01"},
		{-1, "7f"},
		{63, "3f"},
		{64, "c0 00"},
		{-64, "40"},
		{-65, "bf 7f"},
		{127, "ff 00"},
		{128, "80 01"},
		{-128, "80 7f"},
		{-123456, "c0 bb 78"},
		{math.MaxInt32, "ff ff ff ff 07"},
		{math.MinInt32, "80 80 80 80 78"},
		{math.MaxInt64, "ff ff ff ff ff ff ff ff ff 00"},
		{math.MinInt64, "80 80 80 80 80 80 80 80 80 7f"},
	} {
		got := enc.AppendSleb128(nil, tc.in)
		if diff := cmp.Diff(unhex(t, tc.want), got); diff != "" {
			t.Errorf("AppendSleb128(%d) (-want +got):\n%s", tc.in, diff)
		}
	}
}

// goldenModules are small modules and their bytes, section by section.
func goldenModules() []struct {
	name string
	m    enc.Module
	want string
} {
	var answer enc.Code
	answer.I32Const(42)
	var withLocals enc.Code
	withLocals.I32Const(7).LocalSet(0).LocalGet(0).Index(enc.OpCall, 0).LocalGet(0)
	var fuel enc.Code
	fuel.Index(enc.OpGlobalGet, 0).I64Const(1).Op(enc.OpI64Sub).Index(enc.OpGlobalSet, 0).
		Index(enc.OpGlobalGet, 0).I64Const(0).Op(enc.OpI64LtS).Block(enc.OpIf, enc.BlockEmpty).
		I32Const(1).Index(enc.OpGlobalSet, 1).Op(enc.OpUnreachable).Op(enc.OpEnd).
		I32Const(16).Mem(enc.OpI32Load8U, 0, 1)
	return []struct {
		name string
		m    enc.Module
		want string
	}{
		{"empty", enc.Module{}, "0061736d 01000000"},
		{"answer", enc.Module{
			Types:   []enc.FuncType{{Results: []enc.ValType{enc.I32}}},
			Funcs:   []enc.Func{{Type: 0, Body: answer}},
			Exports: []enc.Export{{Name: "f", Kind: enc.ExternFunc, Index: 0}},
		}, "0061736d 01000000" +
			"01 05 01 60 00 01 7f" + // type: () -> i32
			"03 02 01 00" + // function: type 0
			"07 05 01 01 66 00 00" + // export "f" func 0
			"0a 06 01 04 00 41 2a 0b"}, // code: no locals, i32.const 42, end
		{"memory-global-data", enc.Module{
			Memory:  &enc.Memory{Min: 1, Max: 1},
			Globals: []enc.Global{{Type: enc.I64, Mutable: true, Init: 100}},
			Exports: []enc.Export{{Name: "fuel", Kind: enc.ExternGlobal}, {Name: "memory", Kind: enc.ExternMemory}},
			Data:    []enc.Data{{Offset: 16, Bytes: []byte("hi")}},
		}, "0061736d 01000000" +
			"05 04 01 01 01 01" + // memory: one, limits with a max (01), min 1, max 1
			"06 07 01 7e 01 42 e4 00 0b" + // global: mut i64 = i64.const 100
			"07 11 02 04 6675656c 03 00 06 6d656d6f7279 02 00" +
			"0b 08 01 00 41 10 0b 02 6869"}, // data: memory 0 at i32.const 16, "hi"
		{"import-locals", enc.Module{
			Types:   []enc.FuncType{{Params: []enc.ValType{enc.I32}}, {Results: []enc.ValType{enc.I32}}},
			Imports: []enc.Import{{Module: "env", Name: "log", Type: 0}},
			Funcs:   []enc.Func{{Type: 1, Locals: []enc.ValType{enc.I32, enc.I32, enc.I64}, Body: withLocals}},
			Exports: []enc.Export{{Name: "g", Kind: enc.ExternFunc, Index: 1}},
		}, "0061736d 01000000" +
			"01 09 02 60 01 7f 00 60 00 01 7f" +
			"02 0b 01 03 656e76 03 6c6f67 00 00" + // import env.log: func type 0
			"03 02 01 01" +
			"07 05 01 01 67 00 01" +
			"0a 12 01 10 02 02 7f 01 7e 41 07 21 00 20 00 10 00 20 00 0b"}, // locals: 2 i32, 1 i64
		{"fuel-trap", enc.Module{
			Types:   []enc.FuncType{{Results: []enc.ValType{enc.I32}}},
			Funcs:   []enc.Func{{Type: 0, Body: fuel}},
			Memory:  &enc.Memory{Min: 1, Max: 1},
			Globals: []enc.Global{{Type: enc.I64, Mutable: true}, {Type: enc.I32, Mutable: true}},
			Exports: []enc.Export{{Name: "run", Kind: enc.ExternFunc}, {Name: "fuel", Kind: enc.ExternGlobal}, {Name: "trap", Kind: enc.ExternGlobal, Index: 1}},
		}, "0061736d 01000000" +
			"01 05 01 60 00 01 7f" +
			"03 02 01 00" +
			"05 04 01 01 01 01" +
			"06 0b 02 7e 01 42 00 0b 7f 01 41 00 0b" +
			"07 15 03 03 72756e 00 00 04 6675656c 03 00 04 74726170 03 01" +
			"0a 1d 01 1b 00 23 00 42 01 7d 24 00 23 00 42 00 53 04 40 41 01 24 01 00 0b 41 10 2d 00 01 0b"},
	}
}

func TestGolden(t *testing.T) {
	for _, tc := range goldenModules() {
		got, err := tc.m.Encode()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if diff := cmp.Diff(hex.EncodeToString(unhex(t, tc.want)), hex.EncodeToString(got)); diff != "" {
			t.Errorf("%s: bytes (-want +got):\n%s", tc.name, diff)
		}
	}
}

// TestValid checks every golden module with the independent validators.
func TestValid(t *testing.T) {
	for _, tc := range goldenModules() {
		b, err := tc.m.Encode()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		wasmtest.Validate(t, tc.name, b)
	}
}

func TestDeterministic(t *testing.T) {
	for _, tc := range goldenModules() {
		a, err := tc.m.Encode()
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			b, _ := tc.m.Encode()
			if string(a) != string(b) {
				t.Fatalf("%s: two encodings differ", tc.name)
			}
		}
	}
}

func TestInvalid(t *testing.T) {
	fn := []enc.FuncType{{}}
	for _, tc := range []struct {
		name string
		m    enc.Module
	}{
		{"import type", enc.Module{Imports: []enc.Import{{Module: "m", Name: "f", Type: 0}}}},
		{"func type", enc.Module{Types: fn, Funcs: []enc.Func{{Type: 1}}}},
		{"export index", enc.Module{Types: fn, Funcs: []enc.Func{{}}, Exports: []enc.Export{{Name: "f", Index: 1}}}},
		{"export twice", enc.Module{Types: fn, Funcs: []enc.Func{{}}, Exports: []enc.Export{{Name: "f"}, {Name: "f"}}}},
		{"export memory", enc.Module{Exports: []enc.Export{{Name: "memory", Kind: enc.ExternMemory}}}},
		{"export global", enc.Module{Exports: []enc.Export{{Name: "fuel", Kind: enc.ExternGlobal}}}},
		{"name not UTF-8", enc.Module{Types: fn, Funcs: []enc.Func{{}}, Exports: []enc.Export{{Name: "\xff"}}}},
		{"memory limits", enc.Module{Memory: &enc.Memory{Min: 2, Max: 1}}},
		{"data without memory", enc.Module{Data: []enc.Data{{Bytes: []byte("x")}}}},
		{"global type", enc.Module{Globals: []enc.Global{{Type: 0x7d}}}},
	} {
		if _, err := tc.m.Encode(); !errors.Is(err, enc.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", tc.name, err)
		}
	}
}
