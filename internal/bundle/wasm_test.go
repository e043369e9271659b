package bundle_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/loglineos/loglineos/internal/bundle"
	"github.com/loglineos/loglineos/internal/lll"
	"github.com/loglineos/loglineos/internal/lll/wasm/codegen"
	"github.com/loglineos/loglineos/internal/lll/wasm/wasmtest"
	"github.com/loglineos/loglineos/stdlib"
)

func wasmBundle(t *testing.T) []byte {
	t.Helper()
	data, errs, err := bundle.Compile(stdlib.Sources(), testKey(1), bundle.BuildOptions{Wasm: true})
	if err != nil || errs != nil {
		t.Fatal(err, errs)
	}
	return data
}

// TestWasmCarried builds the standard bundle with its module: the module
// is codegen's, byte for byte, it validates, the manifest lists it, and a
// bundle built without it has exactly the bytes it had before modules
// existed (no "wasm" in the manifest).
func TestWasmCarried(t *testing.T) {
	prog, err := stdlib.Compile()
	if err != nil {
		t.Fatal(err)
	}
	want, err := codegen.Compile(prog)
	if err != nil {
		t.Fatal(err)
	}
	b := load(t, wasmBundle(t))
	got := b.Wasm()
	if got == nil {
		t.Fatal("Wasm() = nil for a bundle built with Wasm")
	}
	if !bytes.Equal(got.Wasm, want.Wasm) {
		t.Error("the bundle's module differs from codegen's")
	}
	if strings.Join(got.Validators, ",") != "canonical_contract_v1" {
		t.Errorf("validators %q", got.Validators)
	}
	if len(got.Points) != len(want.Points) {
		t.Errorf("%d charge points, want %d", len(got.Points), len(want.Points))
	}
	wasmtest.Validate(t, "standard", got.Wasm)
	if got := b.Manifest.Resources.Wasm; strings.Join(got, ",") != "module.json,module.wasm" {
		t.Errorf("manifest resources.wasm = %q", got)
	}

	plain := stdBundle(t)
	if bytes.Contains(plain, []byte(`"wasm"`)) {
		t.Error("a bundle built without a module mentions wasm")
	}
	if load(t, plain).Wasm() != nil {
		t.Error("Wasm() != nil for a bundle built without a module")
	}
}

// TestWasmUnsupported: a program the compiler does not cover is refused
// at build, naming the construct and its position, not built without it.
func TestWasmUnsupported(t *testing.T) {
	src := []byte("validator v {\n  uses \"kv.get\"\n  check kv.get(\"a\") == kv.get(\"b\")\n}\n")
	_, errs, err := bundle.Compile(append(stdlib.Sources(), lll.Source{Name: "x.lll", Text: src}), testKey(1), bundle.BuildOptions{Wasm: true})
	if errs != nil {
		t.Fatal(errs)
	}
	if !errors.Is(err, codegen.ErrUnsupported) || !strings.Contains(err.Error(), "x.lll:3") {
		t.Fatalf("err = %v, want codegen.ErrUnsupported at x.lll:3", err)
	}
}

// TestWasmByteFlips flips 256 bytes of the module inside a signed bundle,
// one at a time: every one is refused at load.
func TestWasmByteFlips(t *testing.T) {
	data := wasmBundle(t)
	p, err := bundle.Split(data)
	if err != nil {
		t.Fatal(err)
	}
	var mod []byte
	for _, r := range p.Resources {
		if r.Name == "wasm/module.wasm" {
			mod = r.Payload
		}
	}
	start := bytes.Index(data, mod)
	if mod == nil || start < 0 {
		t.Fatal("no module in the bundle")
	}
	opts := bundle.LoadOptions{Trusted: []ed25519.PublicKey{pub(testKey(1))}}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 256; i++ {
		off := start + rng.IntN(len(mod))
		mut := append([]byte{}, data...)
		mut[off] ^= byte(1 + rng.IntN(255))
		b, err := bundle.Load(mut, opts)
		if b != nil || !errors.Is(err, bundle.ErrBadHash) {
			t.Fatalf("flip at offset %d (module byte %d): loaded=%v err=%v, want ErrBadHash", off, off-start, b != nil, err)
		}
	}
}

// TestWasmRefusals re-signs bundles whose module or its description is
// wrong: each is refused as malformed, even with a good signature.
func TestWasmRefusals(t *testing.T) {
	key := testKey(1)
	p, err := bundle.Split(wasmBundle(t))
	if err != nil {
		t.Fatal(err)
	}
	edit := func(name string, f func([]byte) []byte) []bundle.Resource {
		var out []bundle.Resource
		for _, r := range p.Resources {
			if r.Name == name {
				if r.Payload = f(append([]byte{}, r.Payload...)); r.Payload == nil {
					continue
				}
			}
			out = append(out, r)
		}
		return out
	}
	desc := func(f func(map[string]any)) func([]byte) []byte {
		return func(b []byte) []byte {
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			f(m)
			out, _ := json.Marshal(m)
			return out
		}
	}
	cases := []struct {
		name string
		res  []bundle.Resource
		want string
	}{
		{"not wasm", edit("wasm/module.wasm", func(b []byte) []byte { b[0] = 'X'; return b }), "not a WebAssembly 1.0 module"},
		{"module missing", edit("wasm/module.wasm", func([]byte) []byte { return nil }), "holds 1 of them"},
		{"other format", edit("wasm/module.json", desc(func(m map[string]any) { m["format"] = "lll-wasm-0" })), `format is "lll-wasm-0"`},
		{"event validator", edit("wasm/module.json", desc(func(m map[string]any) { m["validators"] = []string{"quality_meter_v1_1"} })), "not a span validator"},
		{"span validator as an event validator", edit("wasm/module.json", desc(func(m map[string]any) { m["events"] = []string{"canonical_contract_v1"} })), "not an event validator"},
		{"event validator listed twice", edit("wasm/module.json", desc(func(m map[string]any) {
			m["events"] = []string{"quality_meter_v1_1", "quality_meter_v1_1", "trajectory_quality_score"}
		})), "listed twice"},
		{"listed twice", edit("wasm/module.json", desc(func(m map[string]any) {
			m["validators"] = []string{"canonical_contract_v1", "canonical_contract_v1"}
		})), "listed twice"},
		{"unknown member", edit("wasm/module.json", desc(func(m map[string]any) { m["extra"] = 1 })), "unknown field"},
		{"point of another validator", edit("wasm/module.json", desc(func(m map[string]any) {
			m["points"] = []map[string]any{{"validator": "v", "rule": 0, "pos": "x.lll:1:1", "op": "=="}}
		})), "charge point 0"},
	}
	opts := bundle.LoadOptions{Trusted: []ed25519.PublicKey{pub(key)}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := bundle.Load(rebuild(t, p, c.res, true, key), opts)
			if !errors.Is(err, bundle.ErrMalformed) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want ErrMalformed with %q", err, c.want)
			}
		})
	}
}
