package vm

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/loglineos/loglineos/internal/lll/abi"
	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/lll/ir"
	"github.com/loglineos/loglineos/internal/lll/wasm/layout"
	"github.com/loglineos/loglineos/internal/span"
	"github.com/tetratelabs/wazero/api"
)

// ErrNoRouter: the module has no router of that name.
var ErrNoRouter = fmt.Errorf("vm: no such router in the module")

// Route runs the router name over the input in (a span, or the event of
// a router of another input that does not read it) as eval's
// Router.RouteSteps does with env: the actions of the routes whose guards hold, in order, each
// recorded by the host when the module calls the action's host function
// (and told to env.Host at once when it is an eval.Stager, as the
// interpreter does); the routes' guards and arguments see env's feature
// flags and policy values and make their host calls through env.Host.
// A run whose step budget runs out, or whose expression fails, fails with
// the interpreter's error (Result.Trap says which). A run the module
// cannot answer fails with ErrUnsupported, and the caller asks the
// interpreter: as for CheckSpanEnv, and when a host call failed (the
// interpreter words its error).
func (in *Instance) Route(ctx context.Context, name string, input eval.Input, env *eval.Env) ([]eval.Action, Result, error) {
	r := in.m.host.routers[name]
	f := in.mod.ExportedFunction(layout.RouterExport(name))
	if r == nil || f == nil {
		return nil, Result{}, fmt.Errorf("%w: %s", ErrNoRouter, name)
	}
	budget, maxBytes, timeout := limits(env)
	s := input.Span
	if s == nil {
		s = &span.Span{} // a router of another input reads none of it
	}
	if err := in.write(s); err != nil {
		return nil, Result{}, err
	}
	if len(in.m.features) > 0 || len(in.m.policies) > 0 || len(in.m.data) > 0 {
		if err := in.writeEnv(env, s); err != nil {
			return nil, Result{}, err
		}
	}
	ctx, run := in.hostRun(ctx, env, timeout, input.Span)
	run.router, run.event = name, input.Event
	start := time.Now()
	used, err := in.call(ctx, f, budget, maxBytes)
	res := Result{FuelUsed: used}
	if err != nil {
		res.Trap = uint32(in.trap.Get())
	}
	if res.FuelUsed > 0 {
		if ctx.Err() != nil {
			return nil, res, fmt.Errorf("%w: router %s: the run's context is done: %v", ErrUnsupported, name, ctx.Err())
		}
		looked := res.FuelUsed >= 256 || res.Trap == layout.TrapFuel || run.called()
		if timeout > 0 && looked && time.Since(start) >= timeout {
			return nil, res, fmt.Errorf("%w: router %s: the run took longer than its deadline of %s", ErrUnsupported, name, timeout)
		}
	}
	if err == nil {
		return run.actions, res, nil
	}
	switch res.Trap {
	case layout.TrapFuel, layout.TrapFault, layout.TrapHost:
		fl, err := in.failure(name, true, res.Trap, run, budget, maxBytes)
		if err != nil {
			return nil, res, err
		}
		return nil, res, fl.Err()
	case layout.TrapUnsupported:
		return nil, res, fmt.Errorf("%w: router %s%s", ErrUnsupported, name, run.failedCall())
	}
	return nil, res, fmt.Errorf("%w: router %s: %v", ErrTrap, name, err)
}

// limits returns the step budget, the byte budget and the deadline of a
// run with env: env's, or eval's defaults where env (which may be nil)
// leaves them zero.
func limits(env *eval.Env) (budget, maxBytes int64, timeout time.Duration) {
	budget, maxBytes, timeout = eval.DefaultMaxSteps, eval.DefaultMaxBytes, eval.DefaultTimeout
	if env != nil && env.MaxSteps > 0 {
		budget = env.MaxSteps
	}
	if env != nil && env.MaxBytes > 0 {
		maxBytes = env.MaxBytes
	}
	if env != nil && env.Timeout != 0 {
		timeout = env.Timeout
	}
	return budget, maxBytes, timeout
}

// actionFunc is the host function of the action name: (i32 route, i32
// args) -> () (see package layout). It rebuilds the route's arguments from
// its record, adds the input when the route omits it, tells a Stager host
// of the action and records it, as eval's Router.Route does.
func actionFunc(m *Module, name string) api.GoModuleFunc {
	params := len(abi.Funcs()[name].Params)
	return func(ctx context.Context, mod api.Module, stack []uint64) {
		run := runOf(ctx)
		k, rec := int(uint32(stack[0])), uint32(stack[1])
		if k >= len(m.host.routes) || m.host.routes[k].Router != run.router || m.host.irRoute[k].Call != name {
			panic(fmt.Errorf("vm: %s called for route %d, not one of router %s", name, k, run.router))
		}
		rt, irt := m.host.routes[k], m.host.irRoute[k]
		b, ok := mod.Memory().Read(rec, uint32(layout.ActionLeafSize*len(rt.Leaves)))
		if !ok {
			panic(fmt.Errorf("vm: the arguments of %s out of memory", name))
		}
		a := eval.Action{Router: run.router, Route: irt.Source, Pos: irt.Pos, Call: name}
		leaf := 0
		for _, e := range irt.Args {
			v, err := run.value(e, b, rt.Leaves, &leaf)
			if err != nil {
				run.abort(err)
			}
			a.Args = append(a.Args, v)
		}
		if len(a.Args) < params && run.span == nil {
			a.Input = true
			a.Args = append(a.Args, run.event) // the event itself, charged nothing, as the interpreter adds it
		}
		if len(a.Args) < params {
			a.Input = true
			c := run.span.Canonical()
			left := int64(run.in.bytes.Get()) - (eval.ValueBytes + int64(len(c)))
			if left < 0 {
				run.faultBytes(mod, uint32(rt.Point)) // the interpreter's LLL105 at the route
			}
			run.in.bytes.Set(uint64(left))
			a.Args = append(a.Args, ir.StringValue(string(c)))
		}
		if st, ok := run.host.(eval.Stager); ok {
			if err := st.Stage(ctx, &a); err != nil {
				run.hostFailed(mod, uint32(rt.Point), name, err)
			}
		}
		run.actions = append(run.actions, a)
	}
}

// value rebuilds the value of the argument expression e from the leaves
// in b (of kinds kinds), from the leaf *leaf on.
func (r *hostRun) value(e *ir.Expr, b []byte, kinds []ir.Kind, leaf *int) (ir.Value, error) {
	switch e.Op {
	case ir.OpMap:
		m := make(map[string]ir.Value, len(e.Args))
		for i, a := range e.Args {
			v, err := r.value(a, b, kinds, leaf)
			if err != nil {
				return v, err
			}
			m[e.Path[i]] = v
		}
		return ir.MapValue(m), nil
	case ir.OpList:
		l := make([]ir.Value, len(e.Args))
		for i, a := range e.Args {
			v, err := r.value(a, b, kinds, leaf)
			if err != nil {
				return v, err
			}
			l[i] = v
		}
		return ir.ListValue(l), nil
	}
	i := *leaf
	if i >= len(kinds) {
		return ir.Value{}, fmt.Errorf("vm: leaf %d of %d", i, len(kinds))
	}
	*leaf++
	w := binary.LittleEndian.Uint64(b[layout.ActionLeafSize*i:])
	switch kinds[i] {
	case ir.String:
		v, ok := r.in.str(w)
		if !ok {
			return v, fmt.Errorf("vm: a string argument out of memory")
		}
		return v, nil
	case ir.Number:
		return ir.NumberMicros(int64(w)), nil
	case ir.Bool:
		return ir.BoolValue(w != 0), nil
	case ir.Duration:
		return ir.DurationValue(time.Duration(w)), nil
	case ir.Timestamp:
		return ir.TimestampValue(time.Unix(0, int64(w))), nil
	case ir.Any:
		if w&layout.AnyData != 0 {
			i := w &^ layout.AnyData
			if i >= uint64(len(r.in.m.data)) {
				return ir.Value{}, fmt.Errorf("vm: path %d below data of %d", i, len(r.in.m.data))
			}
			d, _, err := eval.SpanData(r.span)
			if err != nil {
				return ir.Value{}, err
			}
			return eval.Walk(d, r.in.m.data[i]), nil
		}
		if w >= uint64(len(r.values)) {
			return ir.Value{}, fmt.Errorf("vm: value %d of %d", w, len(r.values))
		}
		return r.values[w], nil
	}
	return ir.Value{}, fmt.Errorf("vm: an argument of kind %s", kinds[i])
}
