package lll_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/rogpeppe/go-internal/txtar"

	"github.com/loglineos/loglineos/internal/bundle"
	"github.com/loglineos/loglineos/internal/lll"
	"github.com/loglineos/loglineos/internal/lll/backend"
	"github.com/loglineos/loglineos/internal/lll/diag"
	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/lll/scanner"
	"github.com/loglineos/loglineos/internal/lll/wasm/codegen"
	"github.com/loglineos/loglineos/internal/lllc"
)

var update = flag.Bool("update", false, "rewrite the expected sections of testdata/*.txtar")

// TestGolden runs every testdata/*.txtar case. A case has .lll files
// (in.lll, or several), optionally in.ndjson (input for EVAL) and
// features (flags to turn on, one line, comma separated), and the
// expected sections:
//
//	out/tokens  the tokens of in.lll (only when the section is present)
//	out/errors  the diagnostics, printed as loglinec prints them
//	out/ir      the text form of the IR (when there are no errors)
//	out/eval    loglinerun's output over in.ndjson
//
// go test -run TestGolden -update rewrites the expected sections.
func TestGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.txtar")
	if len(files) < 40 {
		t.Errorf("only %d golden cases, want at least 40", len(files))
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txtar"), func(t *testing.T) {
			a, err := txtar.ParseFile(file)
			if err != nil {
				t.Fatal(err)
			}
			got := runCase(t, a)
			var out []txtar.File
			changed := false
			for _, f := range a.Files {
				if !strings.HasPrefix(f.Name, "out/") {
					out = append(out, f)
				}
			}
			for _, sec := range []string{"out/tokens", "out/errors", "out/ir", "out/eval"} {
				g, ok := got[sec]
				if !ok {
					if find(a, sec) != nil {
						changed = true
						if !*update {
							t.Errorf("%s: unexpected section (the case produced none)", sec)
						}
					}
					continue
				}
				want := find(a, sec)
				if want == nil || !bytes.Equal(want.Data, g) {
					changed = true
					if !*update {
						w := ""
						if want != nil {
							w = string(want.Data)
						}
						t.Errorf("%s mismatch (-want +got):\n%s", sec, cmp.Diff(w, string(g)))
					}
				}
				out = append(out, txtar.File{Name: sec, Data: g})
			}
			if *update && changed {
				a.Files = out
				if err := os.WriteFile(file, txtar.Format(a), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func find(a *txtar.Archive, name string) *txtar.File {
	for i := range a.Files {
		if a.Files[i].Name == name {
			return &a.Files[i]
		}
	}
	return nil
}

func runCase(t *testing.T, a *txtar.Archive) map[string][]byte {
	got := map[string][]byte{}
	var srcs []lll.Source
	var input []byte
	var features []string
	for _, f := range a.Files {
		switch {
		case strings.HasSuffix(f.Name, ".lll"):
			srcs = append(srcs, lll.Source{Name: f.Name, Text: f.Data})
		case f.Name == "in.ndjson":
			input = f.Data
		case f.Name == "features":
			for _, x := range strings.Split(strings.TrimSpace(string(f.Data)), ",") {
				if x != "" {
					features = append(features, x)
				}
			}
		}
	}
	if len(srcs) == 0 {
		t.Fatal("no .lll file in the case")
	}
	if find(a, "out/tokens") != nil || (*update && find(a, "out/tokens") != nil) {
		var b bytes.Buffer
		toks, _ := scanner.Scan(srcs[0].Name, srcs[0].Text)
		for _, tk := range toks {
			nl := ""
			if tk.NewlineBefore {
				nl = " nl"
			}
			fmt.Fprintf(&b, "%d:%d %s %q%s\n", tk.Pos.Line, tk.Pos.Col, tk.Kind, tk.Lit, nl)
		}
		got["out/tokens"] = b.Bytes()
	}
	prog, errs := lll.Compile(srcs)
	for _, d := range errs {
		if d.Code == "" || !diag.Known(d.Code) {
			t.Errorf("diagnostic without a known code: %v", d)
		}
		if !d.Pos.IsValid() {
			t.Errorf("diagnostic without a position: %v", d)
		}
	}
	if len(errs) > 0 {
		var b bytes.Buffer
		diag.Print(&b, errs, lll.Lookup(srcs))
		got["out/errors"] = b.Bytes()
		return got
	}
	got["out/ir"] = []byte(prog.String())
	if input == nil {
		return got
	}
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	data, errs, err := bundle.Compile(srcs, key, bundle.BuildOptions{})
	if err != nil || errs != nil {
		t.Fatal(err, errs)
	}
	caps := []string{"env.get", "http.request", "kv.get", "kv.set", "ledger.append", "ws.send"}
	b, err := bundle.Load(data, bundle.LoadOptions{Trusted: []ed25519.PublicKey{key.Public().(ed25519.PublicKey)}, AllowedCaps: caps})
	if err != nil {
		t.Fatal(err)
	}
	env := &eval.Env{Features: map[string]bool{}}
	for _, f := range features {
		env.Features[f] = true
	}
	var out bytes.Buffer
	if _, err := lllc.Run(context.Background(), b, env, bytes.NewReader(input), &out, nil); err != nil {
		t.Fatal(err)
	}
	got["out/eval"] = out.Bytes()
	shadowCase(t, srcs, key, caps, env, input, out.Bytes())
	return got
}

// shadowCase runs a case whose span validators compile to WebAssembly
// again with them in shadow mode: the same results, no divergence.
func shadowCase(t *testing.T, srcs []lll.Source, key ed25519.PrivateKey, caps []string, env *eval.Env, input, want []byte) {
	t.Helper()
	data, _, err := bundle.Compile(srcs, key, bundle.BuildOptions{Wasm: true})
	if errors.Is(err, codegen.ErrUnsupported) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundle.Load(data, bundle.LoadOptions{Trusted: []ed25519.PublicKey{key.Public().(ed25519.PublicKey)}, AllowedCaps: caps})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	spans, err := backend.New(ctx, b, backend.Shadow, backend.Options{OnDivergence: func(d backend.Divergence) { t.Errorf("divergence: %s", d) }})
	if err != nil {
		t.Fatal(err)
	}
	defer spans.Close(ctx)
	var out bytes.Buffer
	if _, err := lllc.RunOn(ctx, spans, b, env, bytes.NewReader(input), &out, nil); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), out.String()); diff != "" {
		t.Errorf("shadow results differ from eval's (-eval +shadow):\n%s", diff)
	}
}
