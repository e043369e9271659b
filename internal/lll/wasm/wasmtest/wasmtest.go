// Package wasmtest holds test helpers of the AOT-WASM backend. Validate
// checks a module with two validators that share no code with the
// encoder: wasm-validate from WebAssembly Binary Toolkit (Debian's wabt
// package) and wazero's CompileModule.
//
// wasm-validate must be on PATH. When it is not, Validate skips the test
// with a message naming the package to install, unless the environment
// variable RequireWabtEnv is set (as .ci/run sets it), in which case it
// fails.
package wasmtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// RequireWabtEnv names the environment variable that turns a missing
// wasm-validate from a skip into a failure.
const RequireWabtEnv = "LOGLINE_TEST_REQUIRE_WABT"

// wabtFlags restrict wasm-validate to the features the backend's modules
// may use: WebAssembly 1.0 (mutable globals included) plus sign-extension,
// as Features does for wazero.
func wabtFlags() []string {
	return []string{"--disable-multi-value", "--disable-bulk-memory", "--disable-reference-types",
		"--disable-simd", "--disable-saturating-float-to-int"}
}

// Features are the WebAssembly features the backend's modules may use.
const Features = api.CoreFeaturesV1 | api.CoreFeatureSignExtensionOps

// Validate fails t when wasm-validate or wazero's CompileModule refuses
// the module b; name says which module in the messages.
func Validate(t testing.TB, name string, b []byte) {
	t.Helper()
	CompileWazero(t, name, b)
	err := Wabt(b)
	if errors.Is(err, ErrNoWabt) {
		if os.Getenv(RequireWabtEnv) != "" {
			t.Fatalf("%s: wasm-validate is not on PATH and %s is set (apt-get install wabt)", name, RequireWabtEnv)
		}
		t.Skipf("%s: wasm-validate is not on PATH: install Debian's wabt to check modules independently (%s=1 makes this a failure)", name, RequireWabtEnv)
	}
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// ErrNoWabt is returned by Wabt when wasm-validate is not on PATH.
var ErrNoWabt = errors.New("wasmtest: wasm-validate is not on PATH")

// Wabt runs wasm-validate on b and returns its complaint as an error, or
// ErrNoWabt.
func Wabt(b []byte) error {
	tool, err := exec.LookPath("wasm-validate")
	if err != nil {
		return ErrNoWabt
	}
	dir, err := os.MkdirTemp("", "wasmtest")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "m.wasm")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return err
	}
	if out, err := exec.Command(tool, append(wabtFlags(), path)...).CombinedOutput(); err != nil {
		return fmt.Errorf("wasm-validate refuses the module: %v\n%s", err, out)
	}
	return nil
}

// CompileWazero fails t when wazero's CompileModule refuses b.
func CompileWazero(t testing.TB, name string, b []byte) {
	t.Helper()
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter().WithCoreFeatures(Features))
	defer r.Close(ctx)
	m, err := r.CompileModule(ctx, b)
	if err != nil {
		t.Fatalf("%s: wazero refuses the module: %v", name, err)
	}
	_ = m.Close(ctx)
}
