package runtime

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"

	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/lll/ir"
)

// Host returns the host of evaluations for tenant: the calls an
// expression may make (env.get, kv.get, crypto.verify), each under the
// capabilities the bundle, the server and the tenant allow.
func (rt *Runtime) Host(tenant string) *Host { return &Host{rt: rt, tenant: tenant} }

// Host performs the host calls of one tenant's evaluations.
type Host struct {
	rt     *Runtime
	tenant string
	// txn holds the kv writes of the record being routed (nil for a
	// webhook: kv.set is refused); staged, the evaluation's own.
	txn    *kvTxn
	staged []kvWrite
}

// ErrDenied is the error of a host call the capabilities do not allow.
var ErrDenied = errors.New("capability not allowed")

// Call performs one host call.
func (h *Host) Call(_ context.Context, name string, args []ir.Value) (ir.Value, error) {
	if !h.rt.allowed(h.tenant, name) {
		h.rt.m.evalFailures.WithLabelValues(h.rt.m.tenant(h.tenant), name).Inc()
		return ir.Value{}, fmt.Errorf("%w for tenant %s (the bundle's caps_allow, the server's runtime.caps and the tenant's runtime.caps must all list it)", ErrDenied, h.tenant)
	}
	var env map[string]string
	if t := h.rt.cfg.Tenants.Runtime(h.tenant); t != nil {
		env = t.Env
	}
	var v ir.Value
	var err error
	if name == "kv.get" {
		v, err = h.kvGet(args)
	} else {
		v, err = callExpr(name, args, env)
	}
	if err != nil {
		h.rt.m.evalFailures.WithLabelValues(h.rt.m.tenant(h.tenant), name).Inc()
	}
	return v, err
}

// callExpr performs a host call made inside an expression, once allowed,
// with env as the recorded environment.
func callExpr(name string, args []ir.Value, env map[string]string) (ir.Value, error) {
	switch name {
	case "crypto.verify":
		return CryptoVerify(args)
	case "env.get":
		if len(args) != 1 || args[0].Kind() != ir.String {
			return ir.Value{}, errors.New("env.get takes one string")
		}
		if v, ok := env[args[0].Str()]; ok {
			return ir.StringValue(v), nil
		}
		return ir.NullValue(), nil
	}
	return ir.Value{}, fmt.Errorf("%s is not a host call of expressions", name)
}

// StaticHost is the host of evaluations outside a server (loglinerun): the
// calls of expressions under the capabilities in Caps, env.get reading Env,
// kv.get reading what the run's kv.set actions wrote (in memory, from an
// empty store). Other route actions are not performed: the caller prints
// them.
type StaticHost struct {
	Caps []string
	Env  map[string]string
	kv   map[string]string // key -> value JSON
}

// Call performs one host call.
func (h *StaticHost) Call(_ context.Context, name string, args []ir.Value) (ir.Value, error) {
	if c, ok := hostCaps[name]; !ok || (c != "" && !slices.Contains(h.Caps, c)) {
		return ir.Value{}, fmt.Errorf("%w (allow it with --allow-cap %s)", ErrDenied, name)
	}
	if name == "kv.get" {
		if len(args) != 1 || args[0].Kind() != ir.String {
			return ir.Value{}, errors.New("kv.get takes one string")
		}
		if v, ok := h.kv[args[0].Str()]; ok {
			return decodeValue([]byte(v))
		}
		return ir.NullValue(), nil
	}
	return callExpr(name, args, h.Env)
}

// Stage performs a kv.set at once, in memory.
func (h *StaticHost) Stage(_ context.Context, a *eval.Action) error {
	if a.Call != "kv.set" || !slices.Contains(h.Caps, "kv.set") {
		return nil
	}
	key, v, err := kvArgs(a)
	if err != nil {
		return err
	}
	if h.kv == nil {
		h.kv = map[string]string{}
	}
	if v == "null" {
		delete(h.kv, key)
	} else {
		h.kv[key] = v
	}
	return nil
}

// CryptoVerify is crypto.verify(public_key, message, signature): an
// ed25519 signature check, with the key and the signature in standard
// base64. A malformed key or signature verifies false.
func CryptoVerify(args []ir.Value) (ir.Value, error) {
	if len(args) != 3 {
		return ir.Value{}, errors.New("crypto.verify takes three strings")
	}
	for _, a := range args {
		if a.Kind() != ir.String {
			return ir.Value{}, errors.New("crypto.verify takes three strings")
		}
	}
	key, err1 := base64.StdEncoding.DecodeString(args[0].Str())
	sig, err2 := base64.StdEncoding.DecodeString(args[2].Str())
	if err1 != nil || err2 != nil || len(key) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
		return ir.BoolValue(false), nil
	}
	return ir.BoolValue(ed25519.Verify(key, []byte(args[1].Str()), sig)), nil
}
