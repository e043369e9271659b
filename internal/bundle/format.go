// Package bundle reads and writes .lllb bundles: compiled, signed .lll
// programs, and is the runtime's only door to them (Load).
//
// # Byte format (version 1)
//
// All integers are big-endian. A bundle is
//
//	magic      8 bytes   "\x89LLLB\r\n\x1a"
//	mlen       uint32    length of the manifest
//	manifest   mlen bytes, canonical JSON (see Manifest)
//	--- resource section (hashed) ---
//	count      uint32    number of resources
//	count times:
//	  nlen     uint16    length of the name
//	  name     nlen bytes, "KIND/NAME", KIND one of pipelines, policies,
//	           routers, schemas, sources, validators, wasm; strictly
//	           increasing
//	  plen     uint32    length of the payload
//	  payload  plen bytes: for sources the .lll text, for wasm/module.wasm
//	           the WebAssembly module, for wasm/module.json its
//	           description (see Wasm), otherwise the JSON encoding of the
//	           ir.Pipeline, ir.Policy, ir.Router, ir.Schema or
//	           ir.Validator
//	--- end of resource section ---
//	signature  64 bytes  ed25519 over SigContext followed by every byte
//	                     before the signature
//
// and nothing after. The manifest's hash is "sha256:" and the lowercase hex
// SHA-256 of the resource section; signing_key_id is KeyID of the signing
// key. The manifest JSON has its members in this order and no spaces:
//
//	{"abi":"v1","caps_allow":["ws.send"],"hash":"sha256:...",
//	 "replay_token":"...",   (only when set)
//	 "resources":{"pipelines":[...],"policies":[...],"routers":[...],
//	              "schemas":[...],"validators":[...],
//	              "wasm":["module.json","module.wasm"]},  (only with a module)
//	 "signing_key_id":"..."}
//
// caps_allow is the sorted union of the capabilities the program uses
// (the "uses" of its declarations); resources lists the names of each kind,
// sorted. Nothing in a bundle depends on the time, the machine or the order
// of the input files, so the same sources give the same bytes.
//
// # The WebAssembly module
//
// A bundle built with BuildOptions.Wasm also carries its span validators
// compiled to WebAssembly (package codegen): wasm/module.wasm, the module
// as codegen wrote it, and wasm/module.json, what a host needs to run it:
//
//	{"format":"lll-wasm-6","validators":["canonical_contract_v1"],
//	 "points":[{"validator":"...","rule":0,"pos":"file:line:col","op":"==","kinds":[0,0]}],
//	 "features":[...],"policies":[...],"data":[...],"confirmed_by":true,"unicode":"15.0.0"}
//
// format is the module's memory layout and exports (layout.Format); a
// runtime refuses a module of another format. The rest is
// codegen.Output's description (its charge points, what the host writes
// for it); package vm refuses a description other than the one the
// program compiles to. Both resources are inside
// the hashed and signed section, so a module cannot be changed or swapped
// without the signature failing; Load checks that the module starts with
// the WebAssembly magic and version and that its description names only
// span validators of the program. The module runs in package vm; a
// bundle without one runs on the interpreter only.
//
// # Loading
//
// Load checks, in order and before anything is decoded or run: the framing
// (ErrMalformed), the resource hash (ErrBadHash), that the signing key is
// trusted (ErrUntrustedKey), the signature (ErrBadSignature), the ABI
// (ErrUnknownABI), that caps_allow is within what the deployment allows
// (ErrCapNotAllowed), and that the resources are exactly those the
// manifest lists and decode to a program that uses no capability beyond
// caps_allow (ErrMalformed). Every refusal is a *LoadError that matches its
// sentinel with errors.Is.
//
// # Using a bundle
//
// The gateway validates ingest with the span validators:
//
//	b, err := bundle.Load(data, bundle.LoadOptions{Trusted: keys, AllowedCaps: nil})
//	for _, v := range b.IngestValidators() {
//		if vi := v.Validate(s); vi != nil { // *bundle.Violation
//			// reject: vi.Validator, vi.Rule, vi.Field, vi.Detail, vi.Pos
//		}
//	}
//	p, _ := b.Policy("trajectory_linker")
//	d, _ := p.Duration("close_timeout")    // 6h
//	p, err = p.With(map[string]any{"close_timeout": "2h"}) // tenant override, type-checked
//	schemas := b.JSONSchemas("#/components/schemas/") // JSON Schema 2020-12 by name
package bundle

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
)

// Magic starts every bundle.
const Magic = "\x89LLLB\r\n\x1a"

// SigContext is prefixed to the signed bytes, so a bundle signature can
// never be mistaken for a signature of anything else.
const SigContext = "loglineos.lllb.v1\x00"

// Format limits.
const (
	maxManifest  = 1 << 20
	maxResources = 1 << 16
	maxPayload   = 64 << 20
)

// Resource kinds, in the order they sort.
func kindNames() []string {
	return []string{"pipelines", "policies", "routers", "schemas", "sources", "validators", "wasm"}
}

// Manifest is the signed description of a bundle (docs/lll.md).
type Manifest struct {
	ABI          string    `json:"abi"`
	CapsAllow    []string  `json:"caps_allow"`
	Hash         string    `json:"hash"`
	ReplayToken  string    `json:"replay_token,omitempty"`
	Resources    Resources `json:"resources"`
	SigningKeyID string    `json:"signing_key_id"`
}

// Resources lists the resources of a bundle by kind.
type Resources struct {
	Pipelines  []string `json:"pipelines"`
	Policies   []string `json:"policies"`
	Routers    []string `json:"routers"`
	Schemas    []string `json:"schemas"`
	Validators []string `json:"validators"`
	// Wasm is ["module.json", "module.wasm"] when the bundle carries a
	// WebAssembly module, else absent.
	Wasm []string `json:"wasm,omitempty"`
}

// KeyID returns the id of a public key: the first 8 bytes of its SHA-256,
// in lowercase hex.
func KeyID(pub ed25519.PublicKey) string {
	h := sha256.Sum256(pub)
	return hex.EncodeToString(h[:8])
}
