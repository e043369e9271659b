package bundle

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/loglineos/loglineos/internal/lll"
	"github.com/loglineos/loglineos/internal/lll/ir"
	"github.com/loglineos/loglineos/internal/lll/wasm/codegen"
)

// BuildOptions are the optional parts of a bundle.
type BuildOptions struct {
	// ReplayToken, when set, is written into the manifest; loglinerun
	// --replay runs the bundle only when given the same token.
	ReplayToken string
	// OmitSources leaves the .lll sources out of the bundle.
	OmitSources bool
	// Wasm compiles the span validators to a WebAssembly module and
	// carries it in the bundle (see the package doc). A program the
	// compiler cannot compile whole is refused with an error that wraps
	// codegen.ErrUnsupported and names the construct and its position.
	Wasm bool
}

type resource struct {
	name    string
	payload []byte
}

// Build writes the bundle of a checked program, with its sources, signed
// with key. The bytes depend only on the program, the sources, the key and
// the options.
func Build(p *ir.Program, sources []lll.Source, key ed25519.PrivateKey, opts BuildOptions) ([]byte, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("bundle: build: signing key has %d bytes, want %d", len(key), ed25519.PrivateKeySize)
	}
	var res []resource
	add := func(kind, name string, v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("bundle: build: encode %s/%s: %w", kind, name, err)
		}
		res = append(res, resource{kind + "/" + name, b})
		return nil
	}
	m := Manifest{ABI: p.ABI, CapsAllow: append([]string{}, p.Caps...), ReplayToken: opts.ReplayToken,
		SigningKeyID: KeyID(key.Public().(ed25519.PublicKey))}
	m.Resources = Resources{Pipelines: []string{}, Policies: []string{}, Routers: []string{}, Schemas: []string{}, Validators: []string{}}
	sort.Strings(m.CapsAllow)
	for _, x := range p.Pipelines {
		m.Resources.Pipelines = append(m.Resources.Pipelines, x.Name)
		if err := add("pipelines", x.Name, x); err != nil {
			return nil, err
		}
	}
	for _, x := range p.Policies {
		m.Resources.Policies = append(m.Resources.Policies, x.Name)
		if err := add("policies", x.Name, x); err != nil {
			return nil, err
		}
	}
	for _, x := range p.Routers {
		m.Resources.Routers = append(m.Resources.Routers, x.Name)
		if err := add("routers", x.Name, x); err != nil {
			return nil, err
		}
	}
	for _, x := range p.Schemas {
		m.Resources.Schemas = append(m.Resources.Schemas, x.Name)
		if err := add("schemas", x.Name, x); err != nil {
			return nil, err
		}
	}
	for _, x := range p.Validators {
		m.Resources.Validators = append(m.Resources.Validators, x.Name)
		if err := add("validators", x.Name, x); err != nil {
			return nil, err
		}
	}
	if opts.Wasm {
		out, err := codegen.Compile(p)
		if err != nil {
			return nil, fmt.Errorf("bundle: build: %w", err)
		}
		desc, err := json.Marshal(describe(out))
		if err != nil {
			return nil, fmt.Errorf("bundle: build: encode the module's description: %w", err)
		}
		res = append(res, resource{"wasm/" + wasmDesc, desc}, resource{"wasm/" + wasmModule, out.Wasm})
		m.Resources.Wasm = []string{wasmDesc, wasmModule}
	}
	if !opts.OmitSources {
		for _, s := range sources {
			res = append(res, resource{"sources/" + s.Name, s.Text})
		}
	}
	for _, l := range [][]string{m.Resources.Pipelines, m.Resources.Policies, m.Resources.Routers, m.Resources.Schemas, m.Resources.Validators} {
		sort.Strings(l)
	}
	sort.Slice(res, func(i, j int) bool { return res[i].name < res[j].name })
	for i := 1; i < len(res); i++ {
		if res[i].name == res[i-1].name {
			return nil, fmt.Errorf("bundle: build: two resources named %s", res[i].name)
		}
	}
	section, err := encodeResources(res)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(section)
	m.Hash = "sha256:" + hex.EncodeToString(sum[:])
	mb, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("bundle: build: encode manifest: %w", err)
	}
	var out bytes.Buffer
	out.WriteString(Magic)
	binary.Write(&out, binary.BigEndian, uint32(len(mb)))
	out.Write(mb)
	out.Write(section)
	sig := ed25519.Sign(key, append([]byte(SigContext), out.Bytes()...))
	out.Write(sig)
	return out.Bytes(), nil
}

func encodeResources(res []resource) ([]byte, error) {
	var b bytes.Buffer
	if len(res) > maxResources {
		return nil, fmt.Errorf("bundle: build: %d resources, at most %d", len(res), maxResources)
	}
	binary.Write(&b, binary.BigEndian, uint32(len(res)))
	for _, r := range res {
		if len(r.name) > 0xffff || len(r.payload) > maxPayload {
			return nil, fmt.Errorf("bundle: build: resource %.40s too large", r.name)
		}
		binary.Write(&b, binary.BigEndian, uint16(len(r.name)))
		b.WriteString(r.name)
		binary.Write(&b, binary.BigEndian, uint32(len(r.payload)))
		b.Write(r.payload)
	}
	return b.Bytes(), nil
}
