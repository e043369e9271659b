package bundle

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/loglineos/loglineos/internal/lll"
	"github.com/loglineos/loglineos/internal/lll/abi"
	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/lll/ir"
)

// The reasons Load refuses a bundle. Each refusal is a *LoadError that
// matches one of these with errors.Is.
var (
	ErrMalformed     = errors.New("malformed bundle")
	ErrBadHash       = errors.New("resource hash does not match the manifest")
	ErrUntrustedKey  = errors.New("signing key not trusted")
	ErrBadSignature  = errors.New("bad signature")
	ErrUnknownABI    = errors.New("unknown ABI")
	ErrCapNotAllowed = errors.New("capability not allowed")
)

// LoadError is a refusal of Load: a sentinel and what exactly was wrong.
type LoadError struct {
	Err    error // one of the Err* sentinels
	Detail string
}

func (e *LoadError) Error() string { return "bundle refused: " + e.Err.Error() + ": " + e.Detail }

// Unwrap returns the sentinel.
func (e *LoadError) Unwrap() error { return e.Err }

func refuse(err error, format string, args ...any) error {
	return &LoadError{Err: err, Detail: fmt.Sprintf(format, args...)}
}

// LoadOptions says what a deployment trusts and allows.
type LoadOptions struct {
	// Trusted are the keys whose signatures are accepted.
	Trusted []ed25519.PublicKey
	// TrustedFiles are PEM files of more trusted keys.
	TrustedFiles []string
	// AllowedCaps are the capabilities bundles may use here; nil allows
	// none (deny by default).
	AllowedCaps []string
}

// Parts is the framing of a bundle, before any check of its content.
type Parts struct {
	Manifest    Manifest
	ManifestRaw []byte
	Section     []byte // the resource section
	Resources   []Resource
	Signed      []byte // every byte the signature covers (without SigContext)
	Signature   []byte
}

// Resource is one named resource.
type Resource struct {
	Name    string
	Payload []byte
}

// Split parses the framing of a bundle without verifying it (for tools
// that inspect bundles). Load is the only way to get a runnable bundle.
func Split(data []byte) (*Parts, error) {
	if len(data) < len(Magic) || string(data[:len(Magic)]) != Magic {
		return nil, refuse(ErrMalformed, "not a .lllb bundle (bad magic bytes)")
	}
	r := reader{b: data, off: len(Magic)}
	mlen, ok := r.u32()
	if !ok || mlen > maxManifest {
		return nil, refuse(ErrMalformed, "bad manifest length at offset %d", len(Magic))
	}
	mraw, ok := r.bytes(int(mlen))
	if !ok {
		return nil, refuse(ErrMalformed, "manifest truncated (wants %d bytes)", mlen)
	}
	p := &Parts{ManifestRaw: mraw}
	dec := json.NewDecoder(bytes.NewReader(mraw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p.Manifest); err != nil {
		return nil, refuse(ErrMalformed, "manifest: %v", err)
	}
	if dec.More() {
		return nil, refuse(ErrMalformed, "manifest: trailing data")
	}
	if canon, err := json.Marshal(p.Manifest); err != nil || !bytes.Equal(canon, mraw) {
		return nil, refuse(ErrMalformed, "manifest is not in canonical form")
	}
	start := r.off
	count, ok := r.u32()
	if !ok || count > maxResources {
		return nil, refuse(ErrMalformed, "bad resource count at offset %d", start)
	}
	prev := ""
	for i := uint32(0); i < count; i++ {
		at := r.off
		nlen, ok := r.u16()
		if !ok {
			return nil, refuse(ErrMalformed, "resource %d truncated at offset %d", i, at)
		}
		name, ok := r.bytes(int(nlen))
		if !ok {
			return nil, refuse(ErrMalformed, "resource %d: name truncated at offset %d", i, at)
		}
		plen, ok := r.u32()
		if !ok || plen > maxPayload {
			return nil, refuse(ErrMalformed, "resource %q: bad length at offset %d", name, at)
		}
		payload, ok := r.bytes(int(plen))
		if !ok {
			return nil, refuse(ErrMalformed, "resource %q: payload truncated", name)
		}
		n := string(name)
		if i > 0 && n <= prev {
			return nil, refuse(ErrMalformed, "resource %q is out of order or repeated", n)
		}
		prev = n
		p.Resources = append(p.Resources, Resource{Name: n, Payload: payload})
	}
	p.Section = data[start:r.off]
	if len(data)-r.off != ed25519.SignatureSize {
		return nil, refuse(ErrMalformed, "want a %d-byte signature after the resources, have %d bytes", ed25519.SignatureSize, len(data)-r.off)
	}
	p.Signed = data[:r.off]
	p.Signature = data[r.off:]
	return p, nil
}

type reader struct {
	b   []byte
	off int
}

func (r *reader) u32() (uint32, bool) {
	if len(r.b)-r.off < 4 {
		return 0, false
	}
	v := binary.BigEndian.Uint32(r.b[r.off:])
	r.off += 4
	return v, true
}

func (r *reader) u16() (uint16, bool) {
	if len(r.b)-r.off < 2 {
		return 0, false
	}
	v := binary.BigEndian.Uint16(r.b[r.off:])
	r.off += 2
	return v, true
}

func (r *reader) bytes(n int) ([]byte, bool) {
	if n < 0 || len(r.b)-r.off < n {
		return nil, false
	}
	v := r.b[r.off : r.off+n]
	r.off += n
	return v, true
}

// Load verifies a bundle and prepares it to run. See the package doc for
// the checks, made in order before anything is decoded or executed.
func Load(data []byte, opts LoadOptions) (*Bundle, error) {
	p, err := Split(data)
	if err != nil {
		return nil, err
	}
	m := &p.Manifest
	sum := sha256.Sum256(p.Section)
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != m.Hash {
		return nil, refuse(ErrBadHash, "the resources hash to %s, the manifest says %s", got, m.Hash)
	}
	trusted := append([]ed25519.PublicKey{}, opts.Trusted...)
	for _, f := range opts.TrustedFiles {
		k, err := ReadPublicKey(f)
		if err != nil {
			return nil, refuse(ErrUntrustedKey, "%v", err)
		}
		trusted = append(trusted, k)
	}
	var key ed25519.PublicKey
	var ids []string
	for _, k := range trusted {
		if len(k) != ed25519.PublicKeySize {
			continue
		}
		ids = append(ids, KeyID(k))
		if KeyID(k) == m.SigningKeyID {
			key = k
		}
	}
	if key == nil {
		if len(ids) == 0 {
			return nil, refuse(ErrUntrustedKey, "signed by key %q, and no key is trusted", m.SigningKeyID)
		}
		return nil, refuse(ErrUntrustedKey, "signed by key %q, which is not trusted (trusted: %s)", m.SigningKeyID, strings.Join(ids, ", "))
	}
	if !ed25519.Verify(key, append([]byte(SigContext), p.Signed...), p.Signature) {
		return nil, refuse(ErrBadSignature, "the signature does not verify with key %s: the bundle was changed after signing", m.SigningKeyID)
	}
	if m.ABI != abi.Version {
		return nil, refuse(ErrUnknownABI, "bundle ABI %q, this runtime runs %q", m.ABI, abi.Version)
	}
	known := abi.Caps()
	for _, c := range m.CapsAllow {
		if !contains(known, c) {
			return nil, refuse(ErrCapNotAllowed, "bundle asks for unknown capability %q", c)
		}
		if !contains(opts.AllowedCaps, c) {
			allowed := "none"
			if len(opts.AllowedCaps) > 0 {
				allowed = strings.Join(opts.AllowedCaps, ", ")
			}
			return nil, refuse(ErrCapNotAllowed, "bundle needs capability %q, which this deployment does not allow (allowed: %s)", c, allowed)
		}
	}
	prog, sources, err := decode(p)
	if err != nil {
		return nil, err
	}
	for _, c := range prog.Caps {
		if !contains(m.CapsAllow, c) {
			return nil, refuse(ErrMalformed, "the program uses capability %q, which caps_allow does not declare", c)
		}
	}
	ep, err := eval.Compile(prog)
	if err != nil {
		return nil, refuse(ErrMalformed, "%v", err)
	}
	wasm, err := decodeWasm(m, p.Resources, prog)
	if err != nil {
		return nil, err
	}
	return &Bundle{Manifest: *m, IR: prog, prog: ep, Sources: sources, wasm: wasm}, nil
}

func contains(s []string, x string) bool {
	for _, y := range s {
		if x == y {
			return true
		}
	}
	return false
}

func decode(p *Parts) (*ir.Program, []lll.Source, error) {
	m := &p.Manifest
	prog := &ir.Program{ABI: m.ABI, Caps: []string{}}
	listed := map[string][]string{
		"pipelines": m.Resources.Pipelines, "policies": m.Resources.Policies, "routers": m.Resources.Routers,
		"schemas": m.Resources.Schemas, "validators": m.Resources.Validators,
	}
	have := map[string][]string{}
	var sources []lll.Source
	caps := map[string]bool{}
	for _, r := range p.Resources {
		kind, name, ok := strings.Cut(r.Name, "/")
		if !ok || name == "" || !contains(kindNames(), kind) {
			return nil, nil, refuse(ErrMalformed, "resource %q has an unknown kind", r.Name)
		}
		if kind != "sources" && kind != "wasm" {
			have[kind] = append(have[kind], name)
		}
	}
	for _, kind := range kindNames() {
		if kind == "sources" || kind == "wasm" {
			continue
		}
		want, got := listed[kind], have[kind]
		for _, n := range want {
			if !contains(got, n) {
				return nil, nil, refuse(ErrMalformed, "the manifest lists %s/%s, which the bundle does not hold", kind, n)
			}
		}
		for _, n := range got {
			if !contains(want, n) {
				return nil, nil, refuse(ErrMalformed, "the bundle holds %s/%s, which the manifest does not list", kind, n)
			}
		}
	}
	for _, r := range p.Resources {
		kind, name, ok := strings.Cut(r.Name, "/")
		if !ok || name == "" || !contains(kindNames(), kind) {
			return nil, nil, refuse(ErrMalformed, "resource %q has an unknown kind", r.Name)
		}
		if kind == "sources" {
			sources = append(sources, lll.Source{Name: name, Text: r.Payload})
			continue
		}
		if kind == "wasm" {
			if !contains(m.Resources.Wasm, name) {
				return nil, nil, refuse(ErrMalformed, "the bundle holds %s, which the manifest does not list", r.Name)
			}
			continue
		}
		var got string
		var err error
		switch kind {
		case "pipelines":
			x := &ir.Pipeline{}
			err = strict(r.Payload, x)
			got = x.Name
			prog.Pipelines = append(prog.Pipelines, x)
			addCaps(caps, x.Caps)
		case "policies":
			x := &ir.Policy{}
			err = strict(r.Payload, x)
			got = x.Name
			prog.Policies = append(prog.Policies, x)
		case "routers":
			x := &ir.Router{}
			err = strict(r.Payload, x)
			got = x.Name
			prog.Routers = append(prog.Routers, x)
			addCaps(caps, x.Caps)
		case "schemas":
			x := &ir.Schema{}
			err = strict(r.Payload, x)
			got = x.Name
			prog.Schemas = append(prog.Schemas, x)
		case "validators":
			x := &ir.Validator{}
			err = strict(r.Payload, x)
			got = x.Name
			prog.Validators = append(prog.Validators, x)
			addCaps(caps, x.Caps)
		}
		if err != nil {
			return nil, nil, refuse(ErrMalformed, "resource %s: %v", r.Name, err)
		}
		if got != name {
			return nil, nil, refuse(ErrMalformed, "resource %s holds %s %q", r.Name, kind, got)
		}
	}
	for c := range caps {
		prog.Caps = append(prog.Caps, c)
	}
	sort.Strings(prog.Caps)
	if prog.Pipelines == nil {
		prog.Pipelines = []*ir.Pipeline{}
	}
	if prog.Policies == nil {
		prog.Policies = []*ir.Policy{}
	}
	if prog.Routers == nil {
		prog.Routers = []*ir.Router{}
	}
	if prog.Schemas == nil {
		prog.Schemas = []*ir.Schema{}
	}
	if prog.Validators == nil {
		prog.Validators = []*ir.Validator{}
	}
	return prog, sources, nil
}

func addCaps(m map[string]bool, caps []string) {
	for _, c := range caps {
		m[c] = true
	}
}

func strict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	return nil
}
