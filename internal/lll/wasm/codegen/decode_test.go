package codegen

import (
	"context"
	"math/rand/v2"
	"testing"
	"unicode/utf8"

	"github.com/loglineos/loglineos/internal/lll/wasm/enc"
	"github.com/loglineos/loglineos/internal/lll/wasm/wasmtest"
	"github.com/tetratelabs/wazero"
)

// TestDecodeRune: the module's rune decoder decodes as
// utf8.DecodeRuneInString does, invalid and short sequences included
// (spans only hold valid UTF-8, so the differential tests never reach
// those): every sequence of one and two bytes, every lead byte with
// continuation bytes at the edges of each range, random sequences.
func TestDecodeRune(t *testing.T) {
	g := &gen{m: &enc.Module{Memory: &enc.Memory{Min: 1, Max: 1}}}
	fn := g.decodeRune()
	g.m.Funcs = g.later
	g.m.Exports = []enc.Export{{Name: "decode", Kind: enc.ExternFunc, Index: fn}, {Name: "memory", Kind: enc.ExternMemory}}
	b, err := g.m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	wasmtest.Validate(t, "decode", b)
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCoreFeatures(wasmtest.Features))
	defer rt.Close(ctx)
	mod, err := rt.Instantiate(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	decode := mod.ExportedFunction("decode")
	check := func(s []byte) {
		t.Helper()
		mod.Memory().Write(0, s)
		res, err := decode.Call(ctx, 0, uint64(len(s)))
		if err != nil {
			t.Fatalf("% x: %v", s, err)
		}
		r, n := utf8.DecodeRuneInString(string(s))
		if got, want := res[0], uint64(n)<<32|uint64(r); got != want {
			t.Fatalf("% x: decoded %#x, want %#x (rune %U, width %d)", s, got, want, r, n)
		}
	}
	for b0 := range 256 {
		check([]byte{byte(b0)})
		for b1 := range 256 {
			check([]byte{byte(b0), byte(b1)})
		}
		for _, b1 := range []byte{0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0} {
			for _, b2 := range []byte{0x7f, 0x80, 0xbf, 0xc0} {
				check([]byte{byte(b0), b1, b2})
				for _, b3 := range []byte{0x7f, 0x80, 0xbf, 0xc0} {
					check([]byte{byte(b0), b1, b2, b3})
				}
			}
		}
	}
	r := rand.New(rand.NewPCG(9, 10))
	for range 20000 {
		s := make([]byte, 1+r.IntN(5))
		for i := range s {
			s[i] = byte(0x80 + r.IntN(0x80))
			if i == 0 {
				s[i] = byte(0xc0 + r.IntN(0x40))
			}
		}
		check(s)
	}
}
