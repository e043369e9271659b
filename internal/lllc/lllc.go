// Package lllc holds the command-line drivers of the .lll toolchain:
// Main is loglinec (compile .lll sources into a signed .lllb bundle,
// generate signing keys, print IR or manifests) and RunMain is loglinerun
// (verify a bundle and run it over NDJSON). Both take their arguments and
// streams as parameters and return the exit status (0 ok, 1 when the input
// is bad, 2 on usage errors), so tests run them in process; cmd/loglinec
// and cmd/loglinerun only call them.
//
// Source names. Positions in diagnostics and in the bundle name a source
// file by the path given on the command line, cleaned and with forward
// slashes, when it is relative and stays below the working directory
// (stdlib/canonical.lll); otherwise by its base name. So the same command
// run in two checkouts gives the same bundle.
package lllc

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/loglineos/loglineos/internal/bundle"
	"github.com/loglineos/loglineos/internal/lll"
	"github.com/loglineos/loglineos/internal/lll/diag"
)

const loglinecUsage = `usage: loglinec [-o out.lllb] [--key signing.key] [--replay-token TOKEN] [--backend eval|wasm] FILE.lll...
       loglinec --emit ir|manifest FILE.lll...     print instead of writing a bundle
       loglinec --emit manifest BUNDLE.lllb        print the manifest of a bundle
       loglinec --emit wasm -o X.wasm FILE.lll...  write the WebAssembly module (span validators, routers) alone
       loglinec --emit wasm -o X.wasm BUNDLE.lllb  write the module a bundle carries, as signed
       loglinec keygen [NAME]                      write NAME (private, 0600) and NAME.pub

Compiles .lll sources into a bundle signed with an ed25519 key. With
--backend wasm the bundle also carries the span validators and routers
compiled to WebAssembly (for loglinerun and logline serve --backend
wasm|shadow), importing only the host calls they make; a
program the WebAssembly compiler does not cover yet is refused, naming the
construct and its position.
Exit status: 0 ok, 1 when a source or key is bad, 2 on usage errors.

Flags:
`

// Main runs loglinec with args (without the program name).
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "keygen" {
		return keygen(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("loglinec", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "out.lllb", "write the bundle to `FILE`")
	keyFile := fs.String("key", "signing.key", "sign with the ed25519 private key in `FILE` (PEM)")
	emit := fs.String("emit", "", "print `WHAT` (ir or manifest) to standard output, or write the wasm module to -o, instead of writing a bundle")
	replay := fs.String("replay-token", "", "write `TOKEN` as the manifest's replay_token")
	backend := fs.String("backend", "eval", "`BACKEND`s the bundle carries code for: eval (the IR, always) or wasm (the IR and a WebAssembly module)")
	fs.Usage = func() {
		fmt.Fprint(stderr, loglinecUsage)
		fs.PrintDefaults()
	}
	files, err := parseInterleaved(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *emit != "" && *emit != "ir" && *emit != "manifest" && *emit != "wasm" {
		fmt.Fprintf(stderr, "loglinec: --emit %s: want ir, manifest or wasm\n", *emit)
		return 2
	}
	if *backend != "eval" && *backend != "wasm" {
		fmt.Fprintf(stderr, "loglinec: --backend %s: want eval or wasm\n", *backend)
		return 2
	}
	outSet := false
	fs.Visit(func(f *flag.Flag) { outSet = outSet || f.Name == "o" })
	if *emit == "wasm" && (!outSet || !strings.HasSuffix(*out, ".wasm")) {
		fmt.Fprintln(stderr, "loglinec: --emit wasm writes a binary module: give it -o FILE.wasm")
		return 2
	}
	if len(files) == 0 {
		fmt.Fprintln(stderr, "loglinec: no input files")
		fs.Usage()
		return 2
	}
	if *emit == "manifest" && len(files) == 1 && strings.HasSuffix(files[0], ".lllb") {
		return printBundleManifest(files[0], stdout, stderr)
	}
	if *emit == "wasm" && len(files) == 1 && strings.HasSuffix(files[0], ".lllb") {
		return writeBundleModule(files[0], *out, stderr)
	}
	srcs, err := readSources(files)
	if err != nil {
		fmt.Fprintf(stderr, "loglinec: %v\n", err)
		return 1
	}
	prog, errs := lll.Compile(srcs)
	if len(errs) > 0 {
		diag.Print(stderr, errs, lll.Lookup(srcs))
		fmt.Fprintf(stderr, "loglinec: %d error%s\n", len(errs), plural(len(errs)))
		return 1
	}
	if *emit == "ir" {
		fmt.Fprint(stdout, prog.String())
		return 0
	}
	if *emit == "wasm" {
		return writeModule(prog, *out, stderr)
	}
	keyPEM, err := os.ReadFile(*keyFile)
	if err != nil {
		fmt.Fprintf(stderr, "loglinec: signing key: %v (create one with: loglinec keygen)\n", err)
		return 1
	}
	key, err := bundle.ParsePrivateKey(keyPEM)
	if err != nil {
		fmt.Fprintf(stderr, "loglinec: signing key %s: %v\n", *keyFile, err)
		return 1
	}
	data, errs, err := bundle.Compile(srcs, key, bundle.BuildOptions{ReplayToken: *replay, Wasm: *backend == "wasm"})
	if err == nil && len(errs) > 0 {
		err = errs
	}
	if err != nil {
		fmt.Fprintf(stderr, "loglinec: %v\n", err)
		return 1
	}
	if *emit == "manifest" {
		return printManifest(data, stdout, stderr)
	}
	if err := os.WriteFile(*out, data, 0o644); err != nil {
		fmt.Fprintf(stderr, "loglinec: %v\n", err)
		return 1
	}
	p, _ := bundle.Split(data)
	fmt.Fprintf(stderr, "loglinec: wrote %s (%d bytes, %s, key %s)\n", *out, len(data), p.Manifest.Hash, p.Manifest.SigningKeyID)
	return 0
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// parseInterleaved parses flags that may come after positional arguments.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// SourceName returns the name a source file gets in diagnostics and
// bundles (see the package doc).
func SourceName(path string) string {
	clean := filepath.Clean(path)
	if filepath.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, ".."+string(filepath.Separator)) {
		return filepath.Base(clean)
	}
	return filepath.ToSlash(clean)
}

func readSources(files []string) ([]lll.Source, error) {
	seen := map[string]string{}
	var srcs []lll.Source
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		name := SourceName(f)
		if prev, ok := seen[name]; ok {
			return nil, fmt.Errorf("%s and %s have the same name %s in the bundle; give them different names", prev, f, name)
		}
		seen[name] = f
		srcs = append(srcs, lll.Source{Name: name, Text: b})
	}
	return srcs, nil
}

func printManifest(data []byte, stdout, stderr io.Writer) int {
	p, err := bundle.Split(data)
	if err != nil {
		fmt.Fprintf(stderr, "loglinec: %v\n", err)
		return 1
	}
	b, _ := json.MarshalIndent(p.Manifest, "", "  ")
	fmt.Fprintf(stdout, "%s\n", b)
	return 0
}

func printBundleManifest(path string, stdout, stderr io.Writer) int {
	data, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintf(stderr, "loglinec: %v\n", err)
		return 1
	}
	return printManifest(data, stdout, stderr)
}

func keygen(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("loglinec keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: loglinec keygen [NAME]\n\nWrites an ed25519 key pair: NAME (private, mode 0600) and NAME.pub, in PEM; NAME defaults to signing.key.")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 1 {
		fs.Usage()
		return 2
	}
	name := "signing.key"
	if fs.NArg() == 1 {
		name = fs.Arg(0)
	}
	for _, f := range []string{name, name + ".pub"} {
		if _, err := os.Stat(f); err == nil {
			fmt.Fprintf(stderr, "loglinec keygen: %s exists; not overwriting a key\n", f)
			return 1
		}
	}
	priv, pub, err := bundle.GenerateKey(rand.Reader)
	if err != nil {
		fmt.Fprintf(stderr, "loglinec keygen: %v\n", err)
		return 1
	}
	if err := writeNew(name, priv, 0o600); err != nil {
		fmt.Fprintf(stderr, "loglinec keygen: %v\n", err)
		return 1
	}
	if err := writeNew(name+".pub", pub, 0o644); err != nil {
		fmt.Fprintf(stderr, "loglinec keygen: %v\n", err)
		return 1
	}
	k, _ := bundle.ParsePublicKey(pub)
	fmt.Fprintf(stdout, "wrote %s (private, keep it secret) and %s.pub (key id %s)\n", name, name, bundle.KeyID(k))
	return 0
}

func writeNew(name string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
