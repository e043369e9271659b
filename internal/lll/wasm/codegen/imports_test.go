package codegen_test

import (
	"encoding/hex"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/loglineos/loglineos/internal/lll/wasm/codegen"
	"github.com/loglineos/loglineos/internal/lll/wasm/enc"
	"github.com/loglineos/loglineos/internal/lll/wasm/wasmtest"
)

// hostSrc makes host calls in a validator and routes to actions.
const hostSrc = `validator v {
  uses "kv.get", "env.get"
  check kv.get(this) == who or env.get("k") == did else "kv"
}
router r {
  uses "ws.send", "kv.set"
  route when did == "x" to ws.send("c", {who: who, n: [1, true]})
  route to kv.set(this, id)
}
`

// section returns the contents of the section id of the module b.
func section(t *testing.T, b []byte, id byte) []byte {
	t.Helper()
	b = b[8:]
	for len(b) > 0 {
		sid := b[0]
		var size, shift uint64
		i := 1
		for {
			size |= uint64(b[i]&0x7f) << shift
			shift += 7
			i++
			if b[i-1]&0x80 == 0 {
				break
			}
		}
		if sid == id {
			return b[i : i+int(size)]
		}
		b = b[i+int(size):]
	}
	return nil
}

// TestImports: the module imports exactly the host calls the program
// makes, from module "lll", sorted by name, each with its type (actions
// (i32, i32) -> (), calls of expressions (i32, i32, i32, i64...) -> i64)
// after the two fixed ones; the bytes are the same on every compilation.
func TestImports(t *testing.T) {
	p := compileSrc(t, hostSrc)
	out, err := codegen.Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	wasmtest.Validate(t, "host", out.Wasm)
	if diff := cmp.Diff([]string{"env.get", "kv.get", "kv.set", "ws.send"}, out.Imports); diff != "" {
		t.Errorf("imports (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"r"}, out.Routers); diff != "" {
		t.Errorf("routers (-want +got):\n%s", diff)
	}
	// 4 imports: "lll" "env.get" func type 2, "lll" "kv.get" type 3,
	// "lll" "kv.set" type 4, "lll" "ws.send" type 5.
	want := "04" +
		"036c6c6c" + "07656e762e676574" + "00" + "02" +
		"036c6c6c" + "066b762e676574" + "00" + "03" +
		"036c6c6c" + "066b762e736574" + "00" + "04" +
		"036c6c6c" + "0777732e73656e64" + "00" + "05"
	if got := hex.EncodeToString(section(t, out.Wasm, enc.SectionImport)); got != want {
		t.Errorf("import section %s, want %s", got, want)
	}
	// The types: streq, validator (i64 i64) -> i32, then env.get, kv.get (i32 i32 i32 i64)
	// -> i64, kv.set, ws.send (i32 i32) -> ().
	types := hex.EncodeToString(section(t, out.Wasm, enc.SectionType))
	wantTypes := "60047f7f7f7f017f" + "60027e7e017f" + "60047f7f7f7e017e" + "60047f7f7f7e017e" + "60027f7f00" + "60027f7f00"
	if len(types) < 2+len(wantTypes) || types[2:2+len(wantTypes)] != wantTypes {
		t.Errorf("types %s, want them to start with %s", types, wantTypes)
	}
	for range 3 {
		again, err := codegen.Compile(p)
		if err != nil || string(again.Wasm) != string(out.Wasm) {
			t.Fatalf("a second compilation differs (err %v)", err)
		}
	}
	golden(t, "host.wasm.hex", out.Wasm)
}
