package backend

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/lll/ir"
	"github.com/loglineos/loglineos/internal/lll/wasm/layout"
	"github.com/loglineos/loglineos/internal/lll/wasm/vm"
)

// Route runs the router rt (one of the bundle's) over in as rt.Route(ctx,
// in, env) does, on the backend: the actions of its routes, in order. The
// module runs the routers it exports (codegen.Routers); a router it does
// not export (one of another input that reads it)
// runs on the interpreter under every backend.
//
// The host calls of a run go to env.Host through a recording of them:
// under wasm, a run the module leaves to the interpreter (or fails) is
// answered by the interpreter with the module's calls replayed from the
// recording (the same answers; an action the module already told a
// Stager host of is not told twice) and the calls after them performed;
// under shadow, the interpreter runs first, then the module with the
// interpreter's calls replayed, and their actions (call, arguments,
// order), errors, steps and host calls (names, arguments, order) are
// compared. A difference is a Divergence (its Router set), the
// interpreter's answer the one returned.
func (c *Spans) Route(ctx context.Context, rt *eval.Router, in eval.Input, env *eval.Env) ([]eval.Action, error) {
	if c.kind == Eval || !c.routers[rt.IR.Name] {
		return rt.Route(ctx, in, env)
	}
	var host eval.Host
	if env != nil {
		host = env.Host
	}
	if c.kind == Wasm {
		rec := &recorder{host: host}
		acts, res, err := c.routeWasm(ctx, rt.IR.Name, in, withHost(env, rec))
		if err == nil || isRouteError(err) {
			return acts, res.err
		}
		want, steps, werr := rt.RouteSteps(ctx, in, withHost(env, &replayer{log: rec.log, host: host}))
		if !isFallback(err) {
			c.divergedRouter(rt.IR.Name, in, Outcome{Steps: steps, Error: errText(werr), Actions: words(want)}, Outcome{Steps: res.FuelUsed, Error: err.Error()})
		}
		return want, werr
	}
	rec := &recorder{host: host}
	want, steps, werr := rt.RouteSteps(ctx, in, withHost(env, rec))
	rp := &replayer{log: rec.log, strict: true}
	got, res, err := c.routeWasm(ctx, rt.IR.Name, in, withHost(env, rp))
	mismatch := rp.differs(!isFallback(err))
	if isFallback(err) && mismatch == "" {
		return want, werr
	}
	if isRouteError(err) {
		err = nil // compared as the run's error
		got = nil
	}
	gotErr := errText(res.err)
	if err != nil {
		gotErr = err.Error()
	}
	if mismatch != "" || err != nil || res.FuelUsed != steps || gotErr != errText(werr) || !sameActions(got, want) {
		w := Outcome{Steps: res.FuelUsed, Error: gotErr, Actions: words(got)}
		if mismatch != "" {
			w.Error = "host calls differ: " + mismatch
		}
		c.divergedRouter(rt.IR.Name, in, Outcome{Steps: steps, Error: errText(werr), Actions: words(want)}, w)
	}
	return want, werr
}

// routeResult is a module run of a router besides its actions.
type routeResult struct {
	vm.Result
	err error // the run's error as the interpreter's (LLL100, LLL102...)
}

// routeWasm runs the router name on the module. Its error is the run's
// own (isRouteError: out of fuel, a fault) or the module's failure; a
// fallback is counted.
func (c *Spans) routeWasm(ctx context.Context, name string, input eval.Input, env *eval.Env) ([]eval.Action, routeResult, error) {
	in, err := c.pool.Get(ctx) // counts the run
	if err != nil {
		return nil, routeResult{}, err
	}
	acts, res, err := in.Route(ctx, name, input, env)
	c.pool.Put(in)
	if isFallback(err) {
		c.fallbacks.Add(1)
	}
	rr := routeResult{Result: res}
	if err != nil && (res.Trap == layout.TrapFuel || res.Trap == layout.TrapFault || res.Trap == layout.TrapHost) && !errors.Is(err, vm.ErrTrap) && !isFallback(err) {
		rr.err = err
		err = &routeError{err}
	}
	return acts, rr, err
}

// routeError is a router run that ended with the interpreter's error.
type routeError struct{ error }

func (e *routeError) Unwrap() error { return e.error }

func isRouteError(err error) bool {
	var re *routeError
	return errors.As(err, &re)
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// sameValues reports whether a and b are the same values: of the same
// kinds (a null is a null however made), ir.Value.Equal.
func sameValues(a, b []ir.Value) bool {
	return slices.EqualFunc(a, b, func(x, y ir.Value) bool { return x.Kind() == y.Kind() && x.Equal(y) })
}

// sameActions reports whether a and b are the same actions: routes,
// calls, arguments and order.
func sameActions(a, b []eval.Action) bool {
	return slices.EqualFunc(a, b, func(x, y eval.Action) bool {
		return x.Router == y.Router && x.Route == y.Route && x.Pos == y.Pos && x.Call == y.Call && x.Input == y.Input && sameValues(x.Args, y.Args)
	})
}

// words words actions for a divergence: call(arguments) at the route.
func words(acts []eval.Action) []string {
	out := make([]string, 0, len(acts))
	for _, a := range acts {
		out = append(out, fmt.Sprintf("%s%s at %s", a.Call, ir.ListValue(a.Args), a.Pos))
	}
	return out
}

// hostCall is a host call (or an action told to a Stager host) a run
// made, and its answer.
type hostCall struct {
	name string // the call, or "stage " + the action's call
	args []ir.Value
	v    ir.Value
	err  error
}

func (h hostCall) String() string { return h.name + ir.ListValue(h.args).String() }

// withHost returns a copy of env with the host h, or env when it has no
// host (every backend then says so alike).
func withHost(env *eval.Env, h eval.Host) *eval.Env {
	if env == nil || env.Host == nil {
		return env
	}
	e := *env
	e.Host = h
	return &e
}

// differs returns how the calls replayed differ from the recording ("" for
// none, or for a nil replayer): the first call that differs, one too
// many, or, for a run that ended (not left to the interpreter part way:
// complete), the calls the recording has more.
func (r *replayer) differs(complete bool) string {
	if r == nil {
		return ""
	}
	if r.mismatch == "" && complete && r.next < len(r.log) {
		r.mismatch = fmt.Sprintf("%d host calls, the interpreter %d", r.next, len(r.log))
	}
	return r.mismatch
}

// recorder performs a run's host calls with host and records them.
type recorder struct {
	host eval.Host
	log  []hostCall
}

func (r *recorder) Call(ctx context.Context, name string, args []ir.Value) (ir.Value, error) {
	if r.host == nil {
		err := fmt.Errorf("host call %s is not available here", name)
		r.log = append(r.log, hostCall{name: name, args: args, err: err})
		return ir.Value{}, err
	}
	v, err := r.host.Call(ctx, name, args)
	r.log = append(r.log, hostCall{name: name, args: args, v: v, err: err})
	return v, err
}

func (r *recorder) Stage(ctx context.Context, a *eval.Action) error {
	var err error
	if st, ok := r.host.(eval.Stager); ok {
		err = st.Stage(ctx, a)
	}
	r.log = append(r.log, hostCall{name: "stage " + a.Call, args: a.Args, err: err})
	return err
}

// replayer answers a run's host calls from another run's log, in order:
// while they are the same calls (names and arguments) it gives the
// recorded answers (and does not tell host of an action again); strict,
// a call that differs or is one too many is a mismatch, else it and the
// calls after it are performed with host.
type replayer struct {
	log      []hostCall
	next     int
	host     eval.Host
	strict   bool
	mismatch string // the first difference (strict)
	diverged bool   // past the recording (not strict)
}

// replay returns the recorded answer of the call c, if the recording has
// it next.
func (r *replayer) replay(c hostCall) (hostCall, bool) {
	if !r.diverged && r.next < len(r.log) {
		rec := r.log[r.next]
		if rec.name == c.name && sameValues(rec.args, c.args) {
			r.next++
			return rec, true
		}
		if r.strict && r.mismatch == "" {
			r.mismatch = fmt.Sprintf("call %d is %s, the interpreter's %s", r.next+1, c, rec)
		}
	} else if r.strict && r.mismatch == "" {
		r.mismatch = fmt.Sprintf("call %d, %s, is one the interpreter did not make", r.next+1, c)
	}
	r.diverged = true
	return hostCall{}, false
}

func (r *replayer) Call(ctx context.Context, name string, args []ir.Value) (ir.Value, error) {
	if rec, ok := r.replay(hostCall{name: name, args: args}); ok {
		return rec.v, rec.err
	}
	if r.strict || r.host == nil {
		return ir.Value{}, fmt.Errorf("host call %s is not available here", name)
	}
	return r.host.Call(ctx, name, args)
}

func (r *replayer) Stage(ctx context.Context, a *eval.Action) error {
	if rec, ok := r.replay(hostCall{name: "stage " + a.Call, args: a.Args}); ok {
		return rec.err
	}
	if st, ok := r.host.(eval.Stager); ok && !r.strict {
		return st.Stage(ctx, a)
	}
	return nil
}

func (c *Spans) divergedRouter(name string, in eval.Input, e, w Outcome) {
	c.divergences.Add(1)
	if c.opts.OnDivergence != nil {
		id := ""
		if in.Span != nil {
			id = in.Span.ID
		} else if v, ok := in.Event.Get("id"); ok && v.Kind() == ir.String {
			id = v.Str() // an event's or a webhook's id
		}
		c.opts.OnDivergence(Divergence{Router: name, SpanID: id, Eval: e, Wasm: w})
	}
}

// Routers returns the names of the routers the backend runs on the module
// (none for eval), sorted.
func (c *Spans) Routers() []string {
	out := make([]string, 0, len(c.routers))
	for name := range c.routers {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}
