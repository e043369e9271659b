package vm

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/lll/ir"
	"github.com/loglineos/loglineos/internal/lll/wasm/codegen"
	"github.com/loglineos/loglineos/internal/lll/wasm/layout"
	"github.com/tetratelabs/wazero/api"
)

// eventLink is what a module's event validators need.
type eventLink struct {
	validators map[string]*eval.Validator
	fields     [][]string // the event's values the module reads, by slot
}

// linkEvents records the module's event validators.
func (m *Module) linkEvents(ep *eval.Program, out *codegen.Output) error {
	if len(out.EventFields) > layout.EventMaxFields {
		return fmt.Errorf("vm: %d values of the event do not fit the event table", len(out.EventFields))
	}
	m.events = eventLink{validators: map[string]*eval.Validator{}, fields: out.EventFields}
	for _, name := range out.Events {
		v := ep.Validator(name)
		if v == nil {
			return fmt.Errorf("%w: %s", ErrNoValidator, name)
		}
		m.events.validators[name] = v
	}
	return nil
}

// Events names the event validators the module runs.
func (m *Module) Events() []string {
	out := make([]string, 0, len(m.events.validators))
	for name := range m.events.validators {
		out = append(out, name)
	}
	return out
}

// eventState is an instance's memory for the runs of event validators,
// made at its first: the run (a hostRun the kernels' host functions find
// in ctx, a context made once) and the validators' functions.
type eventState struct {
	run   hostRun
	ctx   context.Context
	funcs map[string]validator
}

// eventKernels is what the kernels' host functions of a run need: the
// run's kernels, its context and input, as the interpreter passes them;
// and the calls the run made (their arguments in vals), kept from one run
// to the next.
type eventKernels struct {
	k     eval.Kernels
	ctx   context.Context
	input eval.Input
	args  [2]ir.Value
	log   []KernelCall
	vals  []ir.Value
}

// KernelCall is a kernel call a run made, and its answer.
type KernelCall struct {
	Name  string
	Args  []ir.Value
	Value ir.Value
	Err   error
}

// EventOutcome is the outcome of a run of an event validator.
type EventOutcome struct {
	// Result and Err are what eval's Validator.CheckEventWith returns
	// for the run (Result.Emitted points into the Scratch of the run).
	Result eval.Result
	Err    error
	// Run is the fuel the run used (the steps the interpreter counts,
	// its emit step's included) and its trap.
	Run Result
	// Kernels are the kernel calls the module made, in order (not those
	// of the emit step, made by the interpreter's code), valid until the
	// instance's next run: a caller that asks the interpreter after the
	// module left a run replays them (the kernels may have state).
	Kernels []KernelCall
}

// CheckEvent runs the event validator name over the event ev as eval's
// Validator.CheckEventWith(ctx, ev, env, s) does: the module decides
// whether the guard holds and the check rules pass, each kernel call made
// through env.Kernels with the interpreter's arguments and input; then a
// run that passes builds the emitted event with the interpreter's own
// code (eval's Validator.EmitEvent), continuing the module's steps and
// byte budget. The outcome is the interpreter's: its Result and error
// (a guard that fails to evaluate is an error, a check rule a
// violation), the fuel its steps. A run the module cannot answer fails
// with ErrUnsupported and the caller asks the interpreter: a value of the
// event of another kind than the module reads, no kernels (the
// interpreter words their absence), a kernel's value that is not a
// number, a policy value of another kind than the module was compiled
// for, or a run the deadline or the context may have decided (as for
// CheckSpanEnv; the interpreter looks at the clock after every kernel
// call). The kernel calls the module made were made: a caller that then
// asks the interpreter replays them rather than calling the kernels twice.
func (in *Instance) CheckEvent(ctx context.Context, name string, ev ir.Value, env *eval.Env, s *eval.Scratch) (out EventOutcome, _ error) {
	st := in.ev
	if st == nil {
		st = &eventState{funcs: map[string]validator{}}
		st.ctx = context.WithValue(context.Background(), runKey{}, &st.run)
		in.ev = st
	}
	val, ok := st.funcs[name]
	if !ok {
		v := in.m.events.validators[name]
		f := in.mod.ExportedFunction(layout.EventExport(name))
		if v == nil || f == nil {
			return EventOutcome{}, fmt.Errorf("%w: event validator %s", ErrNoValidator, name)
		}
		if !validatorType(f) {
			return EventOutcome{}, fmt.Errorf("vm: the export of event validator %s is not a function (i64, i64) -> i32", name)
		}
		val = validator{name: name, fn: f, v: v, steps: in.m.steps[name]}
		st.funcs[name] = val
	}
	v := val.v
	if typ, _ := ev.Get("type"); !v.AppliesTo(typ.Str()) {
		return EventOutcome{}, nil
	}
	if ctx == nil {
		ctx = context.Background()
	}
	budget, maxBytes, timeout := limits(env)
	if err := in.writeEvent(ev); err != nil {
		return EventOutcome{}, err
	}
	if len(in.m.features) > 0 || len(in.m.policies) > 0 {
		if err := in.writeEnv(env, nil); err != nil {
			return EventOutcome{}, err
		}
	}
	k := st.run.kernels
	clear(k.log)
	clear(k.vals)
	k.log, k.vals = k.log[:0], k.vals[:0]
	k.ctx, k.input, k.k = ctx, eval.Input{Event: ev}, nil
	if env != nil {
		k.k = env.Kernels
	}
	st.run = hostRun{in: in, kernels: k}
	var start time.Time
	timed := val.steps && timeout > 0
	if timed {
		start = time.Now()
	}
	used, err := in.call(st.ctx, val.fn, budget, maxBytes)
	// The event and the kernels do not outlive the run.
	st.run.kernels.ctx, st.run.kernels.input, st.run.kernels.k = nil, eval.Input{}, nil
	res := Result{FuelUsed: used}
	defer func() { out.Kernels = st.run.kernels.log }()
	if res.FuelUsed > 0 {
		if ctx.Err() != nil {
			return EventOutcome{Run: res}, fmt.Errorf("%w: %s: the run's context is done: %v", ErrUnsupported, name, ctx.Err())
		}
		looked := res.FuelUsed >= 256 || err != nil && uint32(in.trap.Get()) == layout.TrapFuel || st.run.called()
		if timed && looked && time.Since(start) >= timeout {
			return EventOutcome{Run: res}, fmt.Errorf("%w: %s: the run took longer than its deadline of %s", ErrUnsupported, name, timeout)
		}
	}
	if err != nil {
		res.Trap = uint32(in.trap.Get())
		switch res.Trap {
		case layout.TrapFuel, layout.TrapFault, layout.TrapHost:
			f, ferr := in.failure(name, false, res.Trap, &st.run, budget, maxBytes)
			if ferr != nil {
				return EventOutcome{Run: res}, ferr
			}
			r, rerr := v.EventFailure(f)
			if r.Violation == nil && rerr == nil {
				return EventOutcome{Run: res}, fmt.Errorf("%w: %s: trap %d", ErrTrap, name, res.Trap)
			}
			if r.Violation == nil && f.Rule >= 0 { // a rule's failure is a violation, not an error
				return EventOutcome{Run: res}, fmt.Errorf("%w: %v", ErrTrap, rerr)
			}
			return EventOutcome{Result: r, Err: rerr, Run: res}, nil
		case layout.TrapUnsupported:
			return EventOutcome{Run: res}, fmt.Errorf("%w: %s%s", ErrUnsupported, name, st.run.failedCall())
		}
		return EventOutcome{Run: res}, fmt.Errorf("%w: %s: %v", ErrTrap, name, err)
	}
	reason := binary.LittleEndian.Uint32(in.out)
	switch code := uint32(in.stack[0]); {
	case code == layout.EventSkipped:
		return EventOutcome{Run: res}, nil
	case code == layout.EventPassed:
		r, rerr := v.EmitEvent(ctx, ev, env, s, start, res.FuelUsed, maxBytes-int64(in.bytes.Get()))
		res.FuelUsed = s.Steps()
		return EventOutcome{Result: r, Err: rerr, Run: res}, nil
	case reason == layout.ReasonCheck:
		r, rerr := v.EventFailure(eval.Failure{Why: eval.WhyCheck, Rule: int(code - layout.EventPassed - 1)})
		if rerr != nil {
			return EventOutcome{Run: res}, fmt.Errorf("%w: %v", ErrTrap, rerr)
		}
		return EventOutcome{Result: r, Run: res}, nil
	default:
		return EventOutcome{Run: res}, fmt.Errorf("%w: %s: result %d, reason %d", ErrTrap, name, code, reason)
	}
}

// writeEvent lays the event's values the module reads out in the event
// table (layout.EventBase) in one copy: each value as the interpreter
// reads it (the member walked down its path), its kind and its value,
// strings after the slots.
func (in *Instance) writeEvent(ev ir.Value) error {
	fields := in.m.events.fields
	b := in.input // the module's input region itself
	str := 8 + layout.SlotSize*len(fields)
	binary.LittleEndian.PutUint64(b, uint64(len(fields)))
	for i, path := range fields {
		x, _ := ev.Get(path[0])
		x = eval.Walk(x, path[1:])
		slot := b[8+layout.SlotSize*i:][:layout.SlotSize]
		clear(slot)
		slot[layout.SlotKind] = byte(x.Kind())
		switch x.Kind() {
		case ir.String:
			if str+len(x.Str()) > layout.InSize {
				return fmt.Errorf("%w: the event's strings over %d bytes", ErrTooLarge, layout.InSize)
			}
			binary.LittleEndian.PutUint32(slot[layout.SlotLen:], uint32(len(x.Str())))
			binary.LittleEndian.PutUint32(slot[layout.SlotOffset:], uint32(layout.InBase+str))
			str += copy(b[str:], x.Str())
		case ir.Null:
			binary.LittleEndian.PutUint32(slot[layout.SlotOffset:], 0xffffffff)
		case ir.Number, ir.Bool, ir.Duration, ir.Timestamp:
			binary.LittleEndian.PutUint64(slot[layout.SlotValue:], uint64(x.Micros()))
		}
	}
	return nil
}

// kernelFunc is the host function of the kernel name of expressions:
// (i32 point, i32 want, i32 scratch, i64 arg...) -> i64, as the host
// calls of expressions (see package layout). It calls the run's
// eval.Kernels as the interpreter does (the run's context and input, the
// arguments rebuilt as the kinds the call's charge point lists); an error
// is the interpreter's LLL104 at the call (layout.TrapHost); no kernels,
// or a value that is not a number, leaves the run to the interpreter.
func kernelFunc(m *Module, name string, params int) api.GoModuleFunc {
	return func(ctx context.Context, mod api.Module, stack []uint64) {
		run := runOf(ctx)
		run.calls++
		pt := uint32(stack[0])
		if int(pt) >= len(m.points) || m.points[pt].Name != name {
			panic(fmt.Errorf("vm: kernel %s called at point %d, not one of its calls", name, pt))
		}
		k := &run.kernels
		args := k.args[:params]
		for i := range args {
			switch m.points[pt].Kinds[i] {
			case ir.Number:
				args[i] = ir.NumberMicros(int64(stack[3+i]))
			case ir.String:
				v, ok := run.in.str(stack[3+i])
				if !ok {
					run.abort(fmt.Errorf("%s: argument %d out of memory", name, i))
				}
				args[i] = v
			default:
				panic(fmt.Errorf("vm: kernel %s: an argument of kind %s", name, m.points[pt].Kinds[i]))
			}
		}
		if k.k == nil {
			run.abort(fmt.Errorf("kernel %s is not available here", name))
		}
		v, err := k.k.Kernel(k.ctx, name, k.input, args)
		at := len(k.vals)
		k.vals = append(k.vals, args...)
		k.log = append(k.log, KernelCall{Name: name, Args: k.vals[at:len(k.vals):len(k.vals)], Value: v, Err: err})
		clear(args)
		if err != nil {
			run.hostFailed(mod, pt, name, err)
		}
		if v.Kind() != ir.Number {
			run.abort(fmt.Errorf("%s returned a %s, the module reads a number", name, v.Kind()))
		}
		stack[0] = uint64(v.Micros())
	}
}
