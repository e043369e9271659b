package cli

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/loglineos/loglineos/internal/bundle"
	"github.com/loglineos/loglineos/internal/openapi"
	"github.com/loglineos/loglineos/stdlib"
)

// runOpenAPI runs `logline openapi args...` as Main would once root.go
// lists the command, and returns its output and exit status.
func runOpenAPI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	stdio := Stdio{In: strings.NewReader(""), Out: &out, Err: &errOut, Env: func(string) string { return "" }}
	root := &cobra.Command{Use: "logline", SilenceUsage: true, SilenceErrors: true}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return &exitError{code: ExitUsage, err: err} })
	root.AddCommand(newOpenAPICmd(stdio))
	root.SetArgs(append([]string{"openapi"}, args...))
	root.SetOut(&out)
	root.SetErr(&errOut)
	err := root.ExecuteContext(context.Background())
	code = ExitOK
	if err != nil {
		code = ExitBad
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		} else if isFlagError(err) {
			code = ExitUsage
		}
		errOut.WriteString("logline: " + err.Error() + "\n")
	}
	return out.String(), errOut.String(), code
}

// standardDoc is the document of the standard bundle.
func standardDoc(t *testing.T) openapi.Doc {
	t.Helper()
	_, priv, err := bundleKeys(t, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data, err := stdlib.Build(priv)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundle.Load(data, bundle.LoadOptions{Trusted: []ed25519.PublicKey{priv.Public().(ed25519.PublicKey)}})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := openapi.Document(b, openapi.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// bundleKeys writes a new key pair (PEM) in dir and returns the public
// key's file and the private key.
func bundleKeys(t *testing.T, dir string) (pubFile string, priv ed25519.PrivateKey, err error) {
	t.Helper()
	privPEM, pubPEM, err := bundle.GenerateKey(rand.Reader)
	if err != nil {
		return "", nil, err
	}
	pubFile = filepath.Join(dir, "signing.key.pub")
	if err := os.WriteFile(pubFile, pubPEM, 0o644); err != nil {
		return "", nil, err
	}
	priv, err = bundle.ParsePrivateKey(privPEM)
	return pubFile, priv, err
}

func TestOpenAPICommand(t *testing.T) {
	want := standardDoc(t)
	wantYAML, err := want.YAML()
	if err != nil {
		t.Fatal(err)
	}
	wantJSON, err := want.JSON()
	if err != nil {
		t.Fatal(err)
	}

	// Standard output, YAML: the document, the same bytes run after run
	// (each run signs the standard bundle with a new throwaway key).
	for range 2 {
		out, errOut, code := runOpenAPI(t)
		if code != ExitOK || out != string(wantYAML) {
			t.Fatalf("logline openapi: exit %d, stderr %q; output differs from the document: %v", code, errOut, out != string(wantYAML))
		}
	}
	var y map[string]any
	if out, _, _ := runOpenAPI(t); yaml.Unmarshal([]byte(out), &y) != nil || y["openapi"] != "3.1.0" {
		t.Errorf("the output is not an OpenAPI 3.1 YAML document")
	}

	// JSON, on standard output and in files.
	if out, _, code := runOpenAPI(t, "--format", "json"); code != ExitOK || out != string(wantJSON) || !json.Valid([]byte(out)) {
		t.Errorf("--format json: exit %d, not the JSON document", code)
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		file string
		want []byte
	}{
		{[]string{"--out", filepath.Join(dir, "api.yaml")}, "api.yaml", wantYAML},
		{[]string{"--out", filepath.Join(dir, "api.json")}, "api.json", wantJSON},
		{[]string{"-o", filepath.Join(dir, "api.txt"), "--format", "json"}, "api.txt", wantJSON},
		{[]string{"--out", filepath.Join(dir, "forced.json"), "--format", "yaml"}, "forced.json", wantYAML},
	} {
		out, errOut, code := runOpenAPI(t, tc.args...)
		if code != ExitOK || out != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", tc.args, code, out, errOut)
			continue
		}
		if got, err := os.ReadFile(filepath.Join(dir, tc.file)); err != nil || !bytes.Equal(got, tc.want) {
			t.Errorf("%v: %s is not the document (%v)", tc.args, tc.file, err)
		}
	}

	// --dev and --server change what they say.
	if out, _, code := runOpenAPI(t, "--dev", "--server", "http://127.0.0.1:8080"); code != ExitOK ||
		strings.Contains(out, "/auth/token:") || !strings.Contains(out, "url: http://127.0.0.1:8080") {
		t.Errorf("--dev --server: exit %d, or identity routes documented, or no server URL", code)
	}
}

func TestOpenAPICommandBundle(t *testing.T) {
	dir := t.TempDir()
	pub, priv, err := bundleKeys(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	data, err := stdlib.Build(priv)
	if err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "std.lllb")
	if err := os.WriteFile(good, data, 0o644); err != nil {
		t.Fatal(err)
	}
	flipped := filepath.Join(dir, "flipped.lllb")
	bad := append([]byte(nil), data...)
	bad[len(bad)-100] ^= 1
	if err := os.WriteFile(flipped, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	otherDir := t.TempDir()
	otherPub, _, err := bundleKeys(t, otherDir)
	if err != nil {
		t.Fatal(err)
	}
	std, _, _ := runOpenAPI(t)

	out, errOut, code := runOpenAPI(t, "--bundle", good, "--trust", pub)
	if code != ExitOK || out != std {
		t.Errorf("--bundle std.lllb: exit %d (%s); the same sources should give the standard document", code, errOut)
	}

	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"untrusted key", []string{"--bundle", good, "--trust", otherPub}, ExitBad, "not trusted"},
		{"flipped byte", []string{"--bundle", flipped, "--trust", pub}, ExitBad, "flipped.lllb"},
		{"bundle without trust", []string{"--bundle", good}, ExitUsage, "--trust"},
		{"trust without bundle", []string{"--trust", pub}, ExitUsage, "--trust without --bundle"},
		{"missing bundle", []string{"--bundle", filepath.Join(dir, "nope.lllb"), "--trust", pub}, ExitUsage, "--bundle"},
		{"missing key", []string{"--bundle", good, "--trust", filepath.Join(dir, "nope.pub")}, ExitUsage, "--trust"},
		{"bad format", []string{"--format", "xml"}, ExitUsage, "want yaml or json"},
		{"argument", []string{"extra"}, ExitUsage, "takes no arguments"},
		{"unknown flag", []string{"--nope"}, ExitUsage, "unknown flag"},
		{"unwritable out", []string{"--out", filepath.Join(dir, "no", "such", "dir.yaml")}, ExitUsage, "--out"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := runOpenAPI(t, tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.want) || out != "" {
				t.Errorf("exit %d, stderr %q, stdout %d bytes; want exit %d naming %q", code, errOut, len(out), tc.code, tc.want)
			}
		})
	}
}
