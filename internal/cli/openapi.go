package cli

import (
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/loglineos/loglineos/internal/atomicfile"
	"github.com/loglineos/loglineos/internal/bundle"
	"github.com/loglineos/loglineos/internal/lll/abi"
	"github.com/loglineos/loglineos/internal/openapi"
	"github.com/loglineos/loglineos/stdlib"
)

func newOpenAPICmd(stdio Stdio) *cobra.Command {
	var (
		out, format, bundlePath, server string
		trust                           []string
		dev                             bool
	)
	cmd := &cobra.Command{
		Use:   "openapi [--out FILE] [--format yaml|json] [--bundle X.lllb --trust KEY.pub]",
		Short: "Write the OpenAPI 3.1 document of the HTTP API",
		Long: `openapi writes the OpenAPI 3.1 document of the server's HTTP API: every
route, its parameters, bodies, responses and problem+json errors, with
examples. The shapes of spans and derived events come from the bundle's .lll
schemas: by default the standard bundle (compiled in memory), or --bundle, a
signed .lllb verified against the --trust keys as the server verifies it.

The document goes to standard output, or to --out. --format is yaml (the
default, also what GET /openapi.yaml serves) or json; with --out FILE.json
and no --format, json. --dev describes a server run with --dev (no
credentials, no identity endpoints); --server sets the document's server URL.
The same bundle gives the same bytes.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("format") && strings.EqualFold(filepath.Ext(out), ".json") {
				format = "json"
			}
			if format != "yaml" && format != "json" {
				return usageErr("--format %q: want yaml or json", format)
			}
			b, err := openAPIBundle(bundlePath, trust)
			if err != nil {
				return err
			}
			doc, err := openapi.Document(b, openapi.Options{ServerURL: server, Dev: dev})
			if err != nil {
				return badErr("%v", err)
			}
			var data []byte
			if format == "json" {
				data, err = doc.JSON()
			} else {
				data, err = doc.YAML()
			}
			if err != nil {
				return err
			}
			if out == "" || out == "-" {
				_, err = stdio.Out.Write(data)
				return err
			}
			// A reader never sees half a document.
			if err := atomicfile.Write(out, data, 0o644); err != nil {
				return usageErr("--out: %v", err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&out, "out", "o", "", "write the document to `FILE` (default: standard output)")
	f.StringVar(&format, "format", "yaml", "yaml or json")
	f.StringVar(&bundlePath, "bundle", "", "document this signed .lllb bundle's schemas instead of the standard bundle's")
	f.StringSliceVar(&trust, "trust", nil, "public key `FILE` trusted to sign --bundle (repeatable)")
	f.BoolVar(&dev, "dev", false, "describe a server run with --dev (no credentials, no identity endpoints)")
	f.StringVar(&server, "server", "", "the server `URL` to name in the document (default: none, paths are relative)")
	return cmd
}

// openAPIBundle loads the bundle whose schemas the document shows: the
// operator's signed bundle, verified as the server verifies it, or the
// standard bundle, compiled and signed in memory with a throwaway key (the
// document does not depend on the key). Nothing of the bundle runs here, so
// every capability of the ABI is allowed: a bundle the server would refuse
// for its capabilities is refused there, not here.
func openAPIBundle(path string, trust []string) (*bundle.Bundle, error) {
	switch {
	case path == "" && len(trust) > 0:
		return nil, usageErr("--trust without --bundle: the standard bundle needs no key")
	case path != "" && len(trust) == 0:
		return nil, usageErr("--bundle needs --trust: name the public keys allowed to sign it")
	}
	var data []byte
	name := "the standard bundle"
	opts := bundle.LoadOptions{TrustedFiles: trust, AllowedCaps: abi.Caps()}
	if path == "" {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		if data, err = stdlib.Build(priv); err != nil {
			return nil, err
		}
		opts.Trusted = []ed25519.PublicKey{pub}
	} else {
		var err error
		name = path
		if data, err = os.ReadFile(path); err != nil {
			return nil, usageErr("--bundle: %v", err)
		}
		for _, k := range trust {
			if _, err := os.Stat(k); err != nil {
				return nil, usageErr("--trust: %v", err)
			}
		}
	}
	b, err := bundle.Load(data, opts)
	if err != nil {
		return nil, badErr("%s: %v", name, err)
	}
	return b, nil
}
