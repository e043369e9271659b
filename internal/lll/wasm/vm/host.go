package vm

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/loglineos/loglineos/internal/lll/abi"
	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/lll/ir"
	"github.com/loglineos/loglineos/internal/lll/wasm/codegen"
	"github.com/loglineos/loglineos/internal/lll/wasm/enc"
	"github.com/loglineos/loglineos/internal/lll/wasm/layout"
	"github.com/loglineos/loglineos/internal/span"
	"github.com/tetratelabs/wazero/api"
)

// ErrCapability: the module imports a host call the capabilities do not
// grant, so it cannot be instantiated.
var ErrCapability = errors.New("vm: the module imports a host call its capabilities do not grant")

// Options configure CompileWith.
type Options struct {
	// Caps are the capabilities granted (a bundle's caps_allow): the host
	// links only the host calls they grant (and those that need none,
	// crypto.verify). Nil grants the capabilities the program declares.
	Caps []string
}

// Compile is CompileWith with the capabilities p declares.
func Compile(ctx context.Context, p *ir.Program, out *codegen.Output) (*Module, error) {
	return CompileWith(ctx, p, out, Options{})
}

// CompileWith compiles the module out, which codegen compiled from p, and
// links the host calls opts.Caps grant (module layout.ImportModule, one
// function a call, see package layout). A module that imports a call
// they do not grant compiles, but NewInstance fails with ErrCapability
// naming the call and its capability: a missing capability is a missing
// import, not a check at call time. A module whose case table is of
// another Unicode version than the interpreter's
// (codegen.Output.Unicode) is refused with ErrUnsupported: its lower and
// upper would not be the interpreter's. A description (out's charge
// points, feature flags, policy values, paths below data, imports,
// routes...) that is not what codegen.Compile makes of p is refused with
// ErrMismatch: the host writes what the description lists, and a module
// that read anything else would answer wrongly. (The bytes are not
// compared: a bundle's are signed, and shadow mode exists to catch a
// module that answers otherwise.)
func CompileWith(ctx context.Context, p *ir.Program, out *codegen.Output, opts Options) (*Module, error) {
	if opts.Caps == nil {
		opts.Caps = p.Caps
	}
	return compile(ctx, p, out, opts)
}

// hostLink is what a module's host calls and routers need.
type hostLink struct {
	imports []string // the host calls the module imports
	caps    []string // the capabilities granted
	routers map[string]*eval.Router
	routes  []codegen.Route
	irRoute []*ir.Route // the IR of each route, by its index
}

// granted reports whether caps grant the host call name.
func granted(name string, caps []string) bool {
	f, ok := abi.Funcs()[name]
	return ok && f.Kind == "host" && (f.Cap == "" || slices.Contains(caps, f.Cap))
}

// link instantiates the host module with the host calls opts grants
// and records the module's routers and routes.
func (m *Module) link(ctx context.Context, p *ir.Program, ep *eval.Program, out *codegen.Output, opts Options) error {
	m.host = hostLink{imports: out.Imports, caps: opts.Caps, routers: map[string]*eval.Router{}, routes: out.Routes}
	for _, name := range out.Routers {
		for _, r := range ep.Routers() {
			if r.IR.Name == name {
				m.host.routers[name] = r
			}
		}
		if m.host.routers[name] == nil {
			return fmt.Errorf("%w: router %s", ErrNoValidator, name)
		}
	}
	for _, rt := range out.Routes {
		r := m.host.routers[rt.Router]
		if r == nil || rt.Index < 0 || rt.Index >= len(r.IR.Routes) {
			return fmt.Errorf("%w: route %d of router %s", ErrMismatch, rt.Index, rt.Router)
		}
		m.host.irRoute = append(m.host.irRoute, r.IR.Routes[rt.Index])
	}
	names := make([]string, 0, len(abi.Funcs()))
	for name, f := range abi.Funcs() {
		if f.Kind == "host" {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	hb := m.rt.NewHostModuleBuilder(layout.ImportModule)
	for _, name := range names {
		if !granted(name, opts.Caps) {
			continue
		}
		t := codegen.ImportType(name)
		fn := actionFunc(m, name)
		if !codegen.IsAction(name) {
			fn = exprFunc(name, len(abi.Funcs()[name].Params))
		}
		hb.NewFunctionBuilder().WithGoModuleFunction(fn, valueTypes(t.Params), valueTypes(t.Results)).Export(name)
	}
	if _, err := hb.Instantiate(ctx); err != nil {
		return fmt.Errorf("vm: the host calls: %w", err)
	}
	return nil
}

func valueTypes(ts []enc.ValType) []api.ValueType {
	out := make([]api.ValueType, len(ts))
	for i, t := range ts {
		out[i] = api.ValueType(t) // the same bytes: 0x7f i32, 0x7e i64
	}
	return out
}

// instantiateError words the failure to instantiate the module: an import
// the capabilities do not grant is named with its capability.
func (m *Module) instantiateError(err error) error {
	for _, name := range m.host.imports {
		if !granted(name, m.host.caps) {
			return fmt.Errorf("%w: it imports %s, which needs the capability %q, not granted (caps %q): %v",
				ErrCapability, name, abi.Funcs()[name].Cap, m.host.caps, err)
		}
	}
	return fmt.Errorf("vm: instantiate: %w", err)
}

// hostRun is one run's state, which the host functions find in the
// context of the call.
type hostRun struct {
	in       *Instance
	host     eval.Host     // the run's Env.Host (a copy: the Env itself does not escape)
	deadline time.Time     // zero: none
	calls    int           // the host calls made
	span     *span.Span    // the input, or nil
	event    ir.Value      // the input of a router of another input
	router   string        // the router run, "" for a validator
	actions  []eval.Action // the actions the router's routes recorded
	failed   error         // why the host aborted the run, if it did
	hostErr  error         // the error of the host call that failed (layout.TrapHost)
	hostCall string        // and its name
	values   []ir.Value    // the values of any kind the module holds handles of
}

type runKey struct{}

// hostRun readies a run of in that may make host calls: the context the
// host functions find it in.
func (in *Instance) hostRun(ctx context.Context, env *eval.Env, timeout time.Duration, s *span.Span) (context.Context, *hostRun) {
	if ctx == nil {
		ctx = context.Background()
	}
	run := &hostRun{in: in, span: s}
	if env != nil {
		run.host = env.Host
	}
	if timeout > 0 {
		run.deadline = time.Now().Add(timeout)
	}
	return context.WithValue(ctx, runKey{}, run), run
}

// called reports whether the run made a host call (after which the
// interpreter looks at the clock).
func (r *hostRun) called() bool { return r != nil && r.calls > 0 }

// errAbort is the panic of a host function that leaves the run to the
// interpreter (wazero turns it into the call's error).
var errAbort = errors.New("vm: the host left the run to the interpreter")

// abort stores layout.TrapUnsupported and aborts the call.
func (r *hostRun) abort(why error) {
	r.failed = why
	r.in.trap.Set(layout.TrapUnsupported)
	panic(errAbort)
}

// faultBytes stores the fault of a byte budget that ran out at the charge
// point pt (layout.FaultBytes, layout.TrapFault), as the guest does, and
// aborts the call.
func (r *hostRun) faultBytes(mod api.Module, pt uint32) {
	mem := mod.Memory()
	mem.WriteUint32Le(layout.OutBase, layout.FaultBytes)
	mem.WriteUint32Le(layout.OutBase+4, pt)
	r.in.trap.Set(layout.TrapFault)
	panic(errAbort)
}

// hostFailed stores layout.TrapHost and the charge point pt of the host
// call name that failed with err, and aborts the call.
func (r *hostRun) hostFailed(mod api.Module, pt uint32, name string, err error) {
	r.hostErr, r.hostCall = err, name
	mod.Memory().WriteUint32Le(layout.OutBase+4, pt)
	r.in.trap.Set(layout.TrapHost)
	panic(errAbort)
}

// hostFailure returns the failure of a run that trapped with
// layout.TrapHost at the charge point pt.
func (r *hostRun) hostFailure(pt codegen.Point) (eval.Failure, bool) {
	if r == nil || r.hostErr == nil {
		return eval.Failure{}, false
	}
	return eval.Failure{Why: eval.WhyHost, Rule: pt.Rule, Pos: pt.Pos, Name: r.hostCall, Host: r.hostErr}, true
}

func runOf(ctx context.Context) *hostRun {
	run, _ := ctx.Value(runKey{}).(*hostRun)
	if run == nil {
		panic(errors.New("vm: a host call outside a run"))
	}
	return run
}

// exprFunc is the host function of the host call name of expressions:
// (i32 point, i32 want, i32 scratch, i64 arg...) -> i64 (see package
// layout), performed by the run's eval.Host as the interpreter performs
// it (the same arguments, a context with the run's deadline).
func exprFunc(name string, params int) api.GoModuleFunc {
	return func(ctx context.Context, mod api.Module, stack []uint64) {
		run := runOf(ctx)
		run.calls++
		want, scr := ir.Kind(uint32(stack[1])), uint32(stack[2])
		args := make([]ir.Value, params)
		for i := range args {
			v, ok := run.in.str(stack[3+i])
			if !ok {
				run.abort(fmt.Errorf("%s: argument %d out of memory", name, i))
			}
			args[i] = v
		}
		if run.host == nil {
			run.abort(fmt.Errorf("host call %s is not available here", name))
		}
		cctx := ctx
		if !run.deadline.IsZero() {
			var cancel context.CancelFunc
			cctx, cancel = context.WithDeadline(ctx, run.deadline)
			defer cancel()
		}
		v, err := run.host.Call(cctx, name, args)
		if err != nil {
			run.hostFailed(mod, uint32(stack[0]), name, err)
		}
		switch {
		case want == ir.String && v.IsNull():
			stack[0] = 0xffffffff << 32
		case want == ir.String && v.Kind() == ir.String:
			n := uint32(len(v.Str()))
			if uint64(scr)+uint64(n) > layout.ScratchBase+layout.ScratchSize || !mod.Memory().WriteString(scr, v.Str()) {
				run.abort(fmt.Errorf("%s: %d bytes do not fit the scratch region", name, n))
			}
			stack[0] = uint64(scr)<<32 | uint64(n)
		case (want == ir.Number || want == ir.Bool) && v.Kind() == want:
			stack[0] = uint64(v.Micros())
		case want == ir.Any:
			// Passed on to an action: the module holds a handle, the
			// host charges the value's bytes as the interpreter does.
			left := int64(run.in.bytes.Get())
			if n := eval.ValueSize(v, left); n > left {
				run.faultBytes(mod, uint32(stack[0]))
			} else {
				run.in.bytes.Set(uint64(left - n))
			}
			stack[0] = uint64(len(run.values))
			run.values = append(run.values, v)
		default:
			run.abort(fmt.Errorf("%s returned a %s, the module reads a %s", name, v.Kind(), want))
		}
	}
}

// failedCall says why the host left a run to the interpreter.
func (r *hostRun) failedCall() string {
	if r == nil || r.failed == nil {
		return ""
	}
	return ": " + strings.TrimPrefix(r.failed.Error(), "vm: ")
}
