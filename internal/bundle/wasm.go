package bundle

import (
	"bytes"

	"github.com/loglineos/loglineos/internal/lll/abi"
	"github.com/loglineos/loglineos/internal/lll/ir"
	"github.com/loglineos/loglineos/internal/lll/wasm/codegen"
	"github.com/loglineos/loglineos/internal/lll/wasm/layout"
)

// The names of a bundle's wasm resources.
const (
	wasmDesc   = "module.json"
	wasmModule = "module.wasm"
)

// wasmMagic starts every WebAssembly 1.0 binary module: "\0asm", version 1.
const wasmMagic = "\x00asm\x01\x00\x00\x00"

// moduleDesc is wasm/module.json: the module's format and codegen's
// description of it (everything of codegen.Output but the bytes).
type moduleDesc struct {
	Format string `json:"format"`
	*codegen.Output
}

func describe(out *codegen.Output) moduleDesc {
	d := *out
	if d.Validators == nil {
		d.Validators = []string{}
	}
	if d.Points == nil {
		d.Points = []codegen.Point{}
	}
	return moduleDesc{Format: layout.Format, Output: &d}
}

// decodeWasm checks a bundle's wasm resources against its program and
// returns the module, or nil when the bundle carries none.
func decodeWasm(m *Manifest, res []Resource, prog *ir.Program) (*codegen.Output, error) {
	if len(m.Resources.Wasm) == 0 {
		return nil, nil
	}
	if len(m.Resources.Wasm) != 2 || m.Resources.Wasm[0] != wasmDesc || m.Resources.Wasm[1] != wasmModule {
		return nil, refuse(ErrMalformed, "resources.wasm is %q, want [%q %q]", m.Resources.Wasm, wasmDesc, wasmModule)
	}
	desc := moduleDesc{Output: &codegen.Output{}}
	var wasm []byte
	found := 0
	for _, r := range res {
		switch r.Name {
		case "wasm/" + wasmDesc:
			found++
			if err := strict(r.Payload, &desc); err != nil {
				return nil, refuse(ErrMalformed, "resource wasm/%s: %v", wasmDesc, err)
			}
		case "wasm/" + wasmModule:
			found++
			wasm = r.Payload
		}
	}
	if found != 2 {
		return nil, refuse(ErrMalformed, "the manifest lists wasm/%s and wasm/%s, the bundle holds %d of them", wasmDesc, wasmModule, found)
	}
	if !bytes.HasPrefix(wasm, []byte(wasmMagic)) {
		return nil, refuse(ErrMalformed, "resource wasm/%s is not a WebAssembly 1.0 module", wasmModule)
	}
	if desc.Format != layout.Format {
		return nil, refuse(ErrMalformed, "the module's format is %q; this runtime runs %q (rebuild the bundle with this loglinec)", desc.Format, layout.Format)
	}
	span := map[string]bool{}
	for _, v := range prog.Validators {
		if len(v.Input) == 1 && v.Input[0] == abi.InputSpan {
			span[v.Name] = true
		}
	}
	out := desc.Output
	out.Wasm = wasm
	listed := map[string]bool{}
	for _, name := range out.Validators {
		if !span[name] || listed[name] {
			return nil, refuse(ErrMalformed, "the module's description lists %q, which is not a span validator of the program or is listed twice", name)
		}
		listed[name] = true
	}
	routers := map[string]bool{}
	for _, r := range codegen.Routers(prog) {
		routers[r.Name] = true
	}
	listedRouters := map[string]bool{}
	for _, name := range out.Routers {
		if !routers[name] || listedRouters[name] {
			return nil, refuse(ErrMalformed, "the module's description lists router %q, which is not a router of the program the compiler compiles or is listed twice", name)
		}
		listedRouters[name] = true
	}
	events := map[string]bool{}
	for _, v := range codegen.EventValidators(prog) {
		events[v.Name] = true
	}
	for _, name := range out.Events {
		if !events[name] || listed[name] {
			return nil, refuse(ErrMalformed, "the module's description lists event validator %q, which is not an event validator of the program or is listed twice", name)
		}
		listed[name] = true
	}
	for i, p := range out.Points {
		if p.Router != "" && !listedRouters[p.Router] || p.Router == "" && !listed[p.Validator] {
			return nil, refuse(ErrMalformed, "the module's charge point %d names %q, which the module does not export", i, p.Validator+p.Router)
		}
	}
	return out, nil
}

// Wasm returns the bundle's WebAssembly module, to run in package vm, or
// nil when the bundle carries none.
func (b *Bundle) Wasm() *codegen.Output { return b.wasm }
