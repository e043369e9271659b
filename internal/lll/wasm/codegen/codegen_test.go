package codegen_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/loglineos/loglineos/internal/lll"
	"github.com/loglineos/loglineos/internal/lll/ir"
	"github.com/loglineos/loglineos/internal/lll/wasm/codegen"
	"github.com/loglineos/loglineos/internal/lll/wasm/wasmtest"
	"github.com/loglineos/loglineos/stdlib"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func compileSrc(t *testing.T, src string) *ir.Program {
	t.Helper()
	p, errs := lll.Compile([]lll.Source{{Name: "t.lll", Text: []byte(src)}})
	if len(errs) > 0 {
		t.Fatalf("compile: %v", errs)
	}
	return p
}

// TestStdlib compiles the standard bundle's span validators (the canonical
// contract), checks the module with both validators and against its
// golden bytes (testdata/stdlib.wasm.hex, -update rewrites it).
func TestStdlib(t *testing.T) {
	p, err := stdlib.Compile()
	if err != nil {
		t.Fatal(err)
	}
	out, err := codegen.Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"canonical_contract_v1"}, out.Validators); diff != "" {
		t.Errorf("validators (-want +got):\n%s", diff)
	}
	wasmtest.Validate(t, "stdlib", out.Wasm)
	for range 3 {
		again, err := codegen.Compile(p)
		if err != nil || string(again.Wasm) != string(out.Wasm) {
			t.Fatalf("a second compilation differs (err %v)", err)
		}
	}
	golden := filepath.Join("testdata", "stdlib.wasm.hex")
	got := hexLines(out.Wasm)
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("module bytes (-want +got; sha256 %x):\n%s", sha256.Sum256(out.Wasm), diff)
	}
}

// hexLines writes b as hex, 32 bytes a line, for readable golden diffs.
func hexLines(b []byte) string {
	var s strings.Builder
	for len(b) > 0 {
		n := min(32, len(b))
		s.WriteString(hex.EncodeToString(b[:n]) + "\n")
		b = b[n:]
	}
	return s.String()
}

// TestRules compiles one validator for each shape of field rule codegen
// covers and checks each module independently.
func TestRules(t *testing.T) {
	for name, body := range map[string]string{
		"require":        `require field "who"`,
		"allow empty ok": `allow field "this"`,
		"allow in":       `allow field "did" in ["a", "b"]`,
		"require string": `require field "tenant" as "string"`,
		"allow when":     `allow field "when" as "rfc3339"`,
		"confirmed_by":   `require field "confirmed_by" as "array"`,
		"data":           `require field "data" as "object"`,
		"closed":         `reject unknown fields`,
		"two in lists":   `require field "status" in ["x", "y"]` + "\n" + `allow field "did" in ["y", "z"]`,
	} {
		p := compileSrc(t, "validator v {\n"+body+"\non_fail \"reject\"\n}\n")
		out, err := codegen.Compile(p)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		wasmtest.Validate(t, name, out.Wasm)
	}
}

// TestUnsupported: what codegen does not compile yet is refused, with
// ErrUnsupported, never compiled to something else.
func TestUnsupported(t *testing.T) {
	for name, src := range map[string]string{
		"guard":        "when who == \"dan\"\nrequire field \"did\"",
		"check":        "check len(who) < 10",
		"dotted field": `require field "data.gross"`,
		"format":       `require field "who" as "rfc3339"`,
	} {
		src = "validator v {\n" + src + "\non_fail \"reject\"\n}\n"
		p, errs := lll.Compile([]lll.Source{{Name: "t.lll", Text: []byte(src)}})
		if len(errs) > 0 {
			t.Errorf("%s: the source does not compile: %v", name, errs)
			continue
		}
		if _, err := codegen.Compile(p); !errors.Is(err, codegen.ErrUnsupported) {
			t.Errorf("%s: err = %v, want ErrUnsupported", name, err)
		}
	}
}
