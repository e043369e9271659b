package codegen

import (
	"fmt"
	"slices"

	"github.com/loglineos/loglineos/internal/lll/abi"
	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/lll/ir"
	"github.com/loglineos/loglineos/internal/lll/wasm/enc"
	"github.com/loglineos/loglineos/internal/lll/wasm/layout"
)

// IsAction reports whether the host call name is a router's action
// (ledger.append, kv.set, ws.send, http.request), imported as
// (i32 route, i32 args) -> (), rather than a call of expressions,
// imported as (i32 point, i32 want, i32 scratch, i64 arg...) -> i64 (see
// package layout).
func IsAction(name string) bool {
	return slices.Contains(abi.Funcs()[name].Where, abi.InRoute)
}

// importHostCalls makes the import section: every host call the span
// validators and routers compiled make, sorted by name, each with a type
// of its own placed after the two fixed ones; and lists the kernels the
// event validators call (Output.Kernels), which are not imported.
func (g *gen) importHostCalls(vs []*ir.Validator, rs []*ir.Router) error {
	seen := map[string]bool{}
	var walk func(e *ir.Expr)
	walk = func(e *ir.Expr) {
		if e == nil {
			return
		}
		if e.Op == ir.OpHost || e.Op == ir.OpKernel {
			seen[e.Name] = true
		}
		for _, a := range e.Args {
			walk(a)
		}
	}
	for _, v := range vs {
		walk(v.Guard)
		for _, r := range v.Rules {
			walk(r.Cond)
		}
	}
	for _, r := range rs {
		for _, rt := range r.Routes {
			seen[rt.Call] = true
			walk(rt.Guard)
			for _, a := range rt.Args {
				walk(a)
			}
		}
	}
	names := make([]string, 0, len(seen))
	for name := range seen {
		f, ok := abi.Funcs()[name]
		switch {
		case ok && IsExprKernel(name):
			g.out.Kernels = append(g.out.Kernels, name) // answered between runs, not imported
		case !ok || f.Kind != "host":
			return fmt.Errorf("%w: the call %s, which is no host call", ErrUnsupported, name)
		default:
			names = append(names, name)
		}
	}
	slices.Sort(names)
	slices.Sort(g.out.Kernels)
	g.imports = map[string]uint32{}
	for i, name := range names {
		g.m.Types = append(g.m.Types, ImportType(name))
		g.m.Imports = append(g.m.Imports, enc.Import{Module: layout.ImportModule, Name: name, Type: uint32(len(g.m.Types) - 1)})
		g.imports[name] = uint32(i)
	}
	if len(names) > 0 {
		g.out.Imports = names
	}
	return nil
}

// host compiles a host call of an expression (env.get, kv.get,
// crypto.verify) as eval does: a step; the byte budget charged
// SliceBytes + ValueBytes an argument; the arguments, strings (or null),
// in order; the call, which the host performs with the interpreter's
// Host; then the bytes of the value returned charged. kv.get's value is
// of any kind: it is read as the kind hint the place of the call wants
// (a string or null, a number, a bool), and the host leaves a value of
// another kind to the interpreter (layout.TrapUnsupported); as an
// action's argument (hint kAny) it is passed on whatever its kind, as a
// handle the host resolves.
func (f *fn) host(e *ir.Expr, hint kind) (kind, error) {
	idx, ok := f.g.imports[e.Name]
	if !ok || IsAction(e.Name) {
		return 0, f.unsupported(e, "the host call "+e.Name+" in an expression")
	}
	want := hint
	switch e.Name {
	case "env.get":
		want = kStr
	case "crypto.verify":
		want = kBool
	case "kv.get":
		if want != kStr && want != kNum && want != kBool && want != kAny {
			return 0, f.unsupported(e, "a value of kv.get whose kind the expression does not fix")
		}
	default:
		return 0, f.unsupported(e, "the host call "+e.Name)
	}
	if len(e.Args) != len(abi.Funcs()[e.Name].Params) {
		return 0, f.unsupported(e, fmt.Sprintf("%s with %d arguments", e.Name, len(e.Args)))
	}
	c := f.c
	pt := f.charge(e)
	f.chargeBytes(pt, func() { c.I64Const(eval.SliceBytes + eval.ValueBytes*int64(len(e.Args))) })
	args := make([]uint32, len(e.Args))
	for i, a := range e.Args {
		k, err := f.exprAs(a, kStr)
		if err != nil {
			return 0, err
		}
		if k != kStr {
			return 0, f.unsupported(a, "an argument of "+e.Name+" that is not a string")
		}
		args[i] = f.local(enc.I64)
		c.LocalSet(args[i])
	}
	c.I32Const(int32(pt)).I32Const(int32(want.irKind())).Index(enc.OpGlobalGet, globalScratch)
	for _, l := range args {
		c.LocalGet(l)
	}
	c.Index(enc.OpCall, idx)
	v := f.local(enc.I64)
	c.LocalSet(v)
	if want == kStr {
		// The host wrote the string at the scratch region's next free
		// byte: move it past them (null's length is 0).
		c.Index(enc.OpGlobalGet, globalScratch).LocalGet(v).Op(enc.OpI32WrapI64).Op(enc.OpI32Add).Index(enc.OpGlobalSet, globalScratch)
	}
	if want != kAny { // the host charges a value of any kind, whose size it knows
		f.chargeBytes(pt, func() {
			c.I64Const(eval.ValueBytes)
			if want == kStr {
				f.strLen(v)
				c.Op(enc.OpI64Add)
			}
		})
	}
	c.LocalGet(v)
	if want == kBool {
		c.Op(enc.OpI32WrapI64)
	}
	return want, nil
}

// point is a charge point of the function's validator or router at the
// rule (or route) rule.
func (f *fn) point(rule int, pos string) Point {
	if f.router != nil {
		return Point{Router: f.name, Rule: rule, Pos: pos}
	}
	return Point{Validator: f.name, Rule: rule, Pos: pos}
}

// ImportType is the type of the imported host call name (see package
// layout): an action's, or a call of expressions' with one i64 a
// parameter.
func ImportType(name string) enc.FuncType {
	t := enc.FuncType{Params: []enc.ValType{enc.I32, enc.I32}}
	if !IsAction(name) {
		t.Params = append(t.Params, enc.I32)
		for range abi.Funcs()[name].Params {
			t.Params = append(t.Params, enc.I64)
		}
		t.Results = []enc.ValType{enc.I64}
	}
	return t
}
