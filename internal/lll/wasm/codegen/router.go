package codegen

import (
	"fmt"
	"slices"

	"github.com/loglineos/loglineos/internal/lll/abi"
	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/lll/eval/spanfield"
	"github.com/loglineos/loglineos/internal/lll/ir"
	"github.com/loglineos/loglineos/internal/lll/wasm/enc"
	"github.com/loglineos/loglineos/internal/lll/wasm/layout"
)

// Route is a route of a compiled router: what the host needs to rebuild
// the action from the route's argument record (see package layout).
type Route struct {
	Router string `json:"router"`
	// Index is the route's index in its router's routes.
	Index int `json:"index"`
	// Point is the route's charge point (its position), where the bytes
	// of the input are charged when the route omits it.
	Point int `json:"point"`
	// Leaves are the kinds of the values of the argument record, in order.
	Leaves []ir.Kind `json:"leaves"`
}

// Routers returns the routers of p that Compile compiles: those whose
// input is a span, and those of other inputs (derived events, webhooks)
// whose routes do not read their input (route to
// http.request(env.get("hook")): the input is only the payload the host
// adds). A router of another input that reads it is not compiled: it runs
// on the interpreter under every backend.
func Routers(p *ir.Program) []*ir.Router {
	var out []*ir.Router
	for _, r := range p.Routers {
		if len(r.Input) == 1 && r.Input[0] == abi.InputSpan || !readsInput(r) {
			out = append(out, r)
		}
	}
	return out
}

// readsInput reports whether a route of r reads a field of its input.
func readsInput(r *ir.Router) bool {
	var reads func(e *ir.Expr) bool
	reads = func(e *ir.Expr) bool {
		if e == nil {
			return false
		}
		if e.Op == ir.OpField || e.Op == ir.OpHas {
			return true
		}
		return slices.ContainsFunc(e.Args, reads)
	}
	for _, rt := range r.Routes {
		if reads(rt.Guard) || slices.ContainsFunc(rt.Args, reads) {
			return true
		}
	}
	return false
}

// routes compiles the body of a router's function, whose parameters and
// prologue are a validator's: each route in order, as eval's Router.Route
// runs it in one frame: its guard (a false guard skips the route), then
// its arguments, whose leaves are written to the route's argument record
// in the scratch region, then the call of the action's imported host
// function, which records the action. At its end it stores the fuel left
// in the output (layout.OutFuel) and returns 0.
func (f *fn) routes() error {
	c := f.c
	prologue(c)
	for i, rt := range f.router.Routes {
		f.rule = i
		idx, ok := f.g.imports[rt.Call]
		if !ok || !IsAction(rt.Call) {
			return fmt.Errorf("%w: the action %s at %s", ErrUnsupported, rt.Call, rt.Pos)
		}
		if len(rt.Args) > len(abi.Funcs()[rt.Call].Params) {
			return fmt.Errorf("%w: %s with %d arguments at %s", ErrUnsupported, rt.Call, len(rt.Args), rt.Pos)
		}
		f.g.out.Points = append(f.g.out.Points, f.point(i, rt.Pos))
		route := Route{Router: f.name, Index: i, Point: len(f.g.out.Points) - 1, Leaves: []ir.Kind{}}
		c.Block(enc.OpBlock, enc.BlockEmpty) // the route; br 0 skips it
		if rt.Guard != nil {
			if err := f.cond(rt.Guard); err != nil {
				return fmt.Errorf("the guard of the route at %s: %w", rt.Pos, err)
			}
			c.Op(enc.OpI32Eqz).Index(enc.OpBrIf, 0)
		}
		n := 0
		for _, a := range rt.Args {
			n += leaves(a)
		}
		rec := f.local(enc.I32)
		scratch(c, func() { c.I32Const(int32(layout.ActionLeafSize * n)) }, rec)
		for _, a := range rt.Args {
			if err := f.arg(a, rec, &route.Leaves); err != nil {
				return fmt.Errorf("the route at %s: %w", rt.Pos, err)
			}
		}
		c.I32Const(int32(len(f.g.out.Routes))).LocalGet(rec).Index(enc.OpCall, idx)
		c.Op(enc.OpEnd)
		f.g.out.Routes = append(f.g.out.Routes, route)
	}
	storeFuel(c)
	c.I32Const(0)
	return nil
}

// leaves counts the leaves of an action's argument: the values that are
// not map or list literals.
func leaves(e *ir.Expr) int {
	if e.Op != ir.OpMap && e.Op != ir.OpList {
		return 1
	}
	n := 0
	for _, a := range e.Args {
		n += leaves(a)
	}
	return n
}

// arg compiles an argument of an action as eval does, writing its leaves
// to the record at the address in local rec, after those already there
// (len(*kinds) of them), and appending their kinds: a map literal counts
// a step and charges ValueBytes + MapBytes + MapEntryBytes and the bytes
// of the key an entry, a list literal a step and ValueBytes + SliceBytes
// + ValueBytes an element, before their values; a leaf is compiled as the
// kind the checker gives it; a value known only at run time, kv.get's or
// one below data, is passed on as a handle the host resolves.
func (f *fn) arg(e *ir.Expr, rec uint32, kinds *[]ir.Kind) error {
	c := f.c
	switch e.Op {
	case ir.OpMap, ir.OpList:
		if f.nodes++; f.nodes > maxNodes {
			return f.unsupported(e, fmt.Sprintf("over %d expression nodes in one router", maxNodes))
		}
		size := eval.ValueBytes + eval.SliceBytes + eval.ValueBytes*int64(len(e.Args))
		if e.Op == ir.OpMap {
			if len(e.Path) != len(e.Args) {
				return f.unsupported(e, "a map literal whose keys are not its values'")
			}
			size = eval.ValueBytes + eval.MapBytes
			for _, k := range e.Path {
				size += eval.MapEntryBytes + int64(len(k))
			}
		}
		pt := f.charge(e)
		f.chargeBytes(pt, func() { c.I64Const(size) })
		for _, a := range e.Args {
			if err := f.arg(a, rec, kinds); err != nil {
				return err
			}
		}
		return nil
	}
	k := staticKind(e)
	if k == 0 && e.Op == ir.OpField && spanfield.Of(e.Name) == spanfield.Data && len(e.Path) > 0 {
		// A value below data, passed on as the host reads it from the
		// span: a step, the run's first read of data, the path's handle.
		i, err := f.g.dataRef(e.Path, e.Pos)
		if err != nil {
			return err
		}
		f.nodes++
		f.readData(f.charge(e))
		c.LocalGet(rec).I64Const(layout.AnyData|int64(i)).Mem(enc.OpI64Store, 3, uint32(layout.ActionLeafSize*len(*kinds)))
		*kinds = append(*kinds, ir.Any)
		return nil
	}
	if k == 0 && e.Op == ir.OpHost && e.Name == "kv.get" {
		k = kAny // passed on as the host returned it
	}
	if k == 0 {
		return f.unsupported(e, "an argument of an action whose kind is known only at run time")
	}
	c.LocalGet(rec)
	got, err := f.exprAs(e, k)
	if err != nil {
		return err
	}
	if got != k {
		return f.unsupported(e, "an argument of an action of another kind than its type")
	}
	if k == kBool {
		c.Op(enc.OpI64ExtendU)
	}
	c.Mem(enc.OpI64Store, 3, uint32(layout.ActionLeafSize*len(*kinds)))
	*kinds = append(*kinds, k.irKind())
	return nil
}
