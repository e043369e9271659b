package lllc

import (
	"fmt"
	"io"
	"os"

	"github.com/loglineos/loglineos/internal/bundle"
	"github.com/loglineos/loglineos/internal/lll/ir"
	"github.com/loglineos/loglineos/internal/lll/wasm/codegen"
)

// writeModule compiles the span validators and routers of prog to
// WebAssembly and writes the module alone to path.
func writeModule(prog *ir.Program, path string, stderr io.Writer) int {
	out, err := codegen.Compile(prog)
	if err != nil {
		fmt.Fprintf(stderr, "loglinec: %v\n", err)
		return 1
	}
	what := fmt.Sprintf("%d span validator%s", len(out.Validators), plural(len(out.Validators)))
	if n := len(out.Routers); n > 0 {
		what += fmt.Sprintf(", %d router%s", n, plural(n))
	}
	return writeWasm(path, out.Wasm, what, stderr)
}

// writeBundleModule writes the module a bundle carries, byte for byte as
// signed. The bundle is framed, not verified: this is for inspection;
// loglinerun and logline serve verify before they run anything.
func writeBundleModule(src, path string, stderr io.Writer) int {
	data, err := os.ReadFile(src)
	if err != nil {
		fmt.Fprintf(stderr, "loglinec: %v\n", err)
		return 1
	}
	p, err := bundle.Split(data)
	if err != nil {
		fmt.Fprintf(stderr, "loglinec: %s: %v\n", src, err)
		return 1
	}
	for _, r := range p.Resources {
		if r.Name == "wasm/module.wasm" {
			return writeWasm(path, r.Payload, "from "+src, stderr)
		}
	}
	fmt.Fprintf(stderr, "loglinec: %s carries no WebAssembly module (build it with loglinec --backend wasm)\n", src)
	return 1
}

func writeWasm(path string, wasm []byte, what string, stderr io.Writer) int {
	if err := os.WriteFile(path, wasm, 0o644); err != nil {
		fmt.Fprintf(stderr, "loglinec: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "loglinec: wrote %s (%d bytes, %s)\n", path, len(wasm), what)
	return 0
}
