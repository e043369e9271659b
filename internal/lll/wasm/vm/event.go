package vm

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/loglineos/loglineos/internal/lll/abi"
	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/lll/ir"
	"github.com/loglineos/loglineos/internal/lll/wasm/codegen"
	"github.com/loglineos/loglineos/internal/lll/wasm/layout"
)

// eventLink is what a module's event validators need.
type eventLink struct {
	validators map[string]*eval.Validator
	fields     map[string][][]string // the event's values each reads, by slot
	// params is, by charge point, the parameters of the kernel called
	// there, -1 at a point that is no kernel call.
	params []int
}

// linkEvents records the module's event validators.
func (m *Module) linkEvents(ep *eval.Program, out *codegen.Output) error {
	m.events = eventLink{validators: map[string]*eval.Validator{}, fields: out.EventFields, params: make([]int, len(out.Points))}
	funcs := abi.Funcs()
	for i, pt := range out.Points {
		m.events.params[i] = -1
		if codegen.IsExprKernel(pt.Name) {
			m.events.params[i] = len(funcs[pt.Name].Params)
		}
	}
	for _, name := range out.Events {
		v := ep.Validator(name)
		if v == nil {
			return fmt.Errorf("%w: %s", ErrNoValidator, name)
		}
		if n := len(out.EventFields[name]); n > layout.EventMaxFields {
			return fmt.Errorf("vm: %s reads %d values of the event, which do not fit the event table", name, n)
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
// made at its first: the validators' functions, found by a scan (few:
// cheaper than a map's hash), and the kernel calls of the last run: the
// charge point of each, their arguments one after the other in vals,
// their answers in the event table but for the last call's when it ended
// the run (an error, a value that is not a number).
type eventState struct {
	funcs   []eventFunc
	calls   []uint32
	vals    []ir.Value
	stopped bool // the last call ended the run, with last and lastErr
	last    ir.Value
	lastErr error
	args    [2]ir.Value
	// input is the kernels' input of the run (its event), kept here so
	// that each call copies it from memory written long before.
	input eval.Input
}

// eventFunc is what a run of one event validator needs.
type eventFunc struct {
	validator
	fields [][]string // the event's values it reads, by slot
	// kernels has bit i set when charge point i is one of its kernel
	// calls (the only points it may ask the host to call at).
	kernels []uint64
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
	// its emit step's included) and its trap (layout.TrapHost for a
	// kernel that failed).
	Run Result
}

// KernelCalls returns the kernel calls the last run of an event validator
// made, in order (not those of the emit step, made by the interpreter's
// code): a caller that asks the interpreter after the module left a run
// replays them (the kernels may have state). It is made when asked, from
// what the run kept, and holds the instance's memory until its next run.
func (in *Instance) KernelCalls() []KernelCall {
	st := in.ev
	if st == nil || len(st.calls) == 0 {
		return nil
	}
	out := make([]KernelCall, len(st.calls))
	vals := st.vals
	for i, at := range st.calls {
		n := in.m.events.params[at]
		c := KernelCall{Name: in.m.points[at].Name, Args: vals[:n:n]}
		vals = vals[n:]
		if i == len(st.calls)-1 && st.stopped {
			c.Value, c.Err = st.last, st.lastErr
		} else {
			c.Value = ir.NumberMicros(int64(binary.LittleEndian.Uint64(in.input[layout.EventKernels-layout.EventBase+8*i:])))
		}
		out[i] = c
	}
	return out
}

// eventFunc returns the function of the event validator name.
func (in *Instance) eventFunc(name string) (*eventFunc, error) {
	st := in.ev
	if st == nil {
		st = &eventState{}
		in.ev = st
	}
	for i := range st.funcs {
		if st.funcs[i].name == name {
			return &st.funcs[i], nil
		}
	}
	v := in.m.events.validators[name]
	f := in.mod.ExportedFunction(layout.EventExport(name))
	if v == nil || f == nil {
		return nil, fmt.Errorf("%w: event validator %s", ErrNoValidator, name)
	}
	if !validatorType(f) {
		return nil, fmt.Errorf("vm: the export of event validator %s is not a function (i64, i64) -> i32", name)
	}
	// The program's own string: a caller's v.IR.Name is the same, which
	// compares without reading its bytes.
	ef := eventFunc{validator: validator{name: v.IR.Name, fn: f, v: v, steps: in.m.steps[name]}, fields: in.m.events.fields[name],
		kernels: make([]uint64, (len(in.m.points)+63)/64)}
	for i, pt := range in.m.points {
		if pt.Validator == name && in.m.events.params[i] >= 0 {
			ef.kernels[i/64] |= 1 << (i % 64)
		}
	}
	st.funcs = append(st.funcs, ef)
	return &st.funcs[len(st.funcs)-1], nil
}

// CheckEvent runs the event validator name over the event ev as eval's
// Validator.CheckEventWith(ctx, ev, env, s) does, its outcome written to
// out (the caller's: a struct returned is copied on its way back, which
// a run this short notices): the module decides
// whether the guard holds and the check rules pass, each kernel call made
// through env.Kernels with the interpreter's arguments and input (between
// runs of the module, see package layout's Kernels); then a run that
// passes builds the emitted event with the interpreter's own code (eval's
// Validator.EmitEvent), continuing the module's steps and byte budget.
// The outcome is the interpreter's: its Result and error (a guard that
// fails to evaluate is an error, a check rule a violation), the fuel its
// steps. A run the module cannot answer fails with ErrUnsupported and the
// caller asks the interpreter: a value of the event of another kind than
// the module reads, no kernels (the interpreter words their absence), a
// kernel's value that is not a number, a policy value of another kind
// than the module was compiled for, or a run the deadline or the context
// may have decided (as for CheckSpanEnv; the interpreter looks at the
// clock after every kernel call). The kernel calls the module made were
// made: a caller that then asks the interpreter replays them rather than
// calling the kernels twice.
func (in *Instance) CheckEvent(ctx context.Context, name string, ev ir.Value, env *eval.Env, s *eval.Scratch, out *EventOutcome) error {
	*out = EventOutcome{}
	f, err := in.eventFunc(name)
	if err != nil {
		return err
	}
	v := f.v
	if !v.AppliesTo(eventType(ev)) {
		return nil
	}
	if ctx == nil {
		ctx = context.Background()
	}
	budget, maxBytes, timeout := limits(env)
	if err := in.writeEvent(f.fields, ev); err != nil {
		return err
	}
	if len(in.m.features) > 0 || len(in.m.policies) > 0 {
		if err := in.writeEnv(env, nil); err != nil {
			return err
		}
	}
	st := in.ev
	clear(st.vals)
	st.calls, st.vals, st.stopped, st.last, st.lastErr = st.calls[:0], st.vals[:0], false, ir.Value{}, nil
	st.input.Event = ev
	var kernels eval.Kernels
	if env != nil {
		kernels = env.Kernels
	}
	var start time.Time
	timed := f.steps && timeout > 0
	if timed {
		start = time.Now()
	}
	// Run the validator until it needs no kernel's answer it lacks: the
	// host makes each call it asks for and runs it again.
	var used int64
	var failed *eval.Failure // a kernel that failed
	var left error           // why the host leaves the run to the interpreter
	for {
		// The module makes no host calls: the context of the call is
		// none of the run's.
		used, err = in.call(context.Background(), f.fn, budget, maxBytes)
		if err != nil || uint32(in.stack[0]) != layout.EventKernel {
			break
		}
		if failed, left = in.kernel(ctx, f, kernels); failed != nil || left != nil {
			break
		}
	}
	res := Result{FuelUsed: used}
	out.Run = res
	if res.FuelUsed > 0 {
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %s: the run's context is done: %v", ErrUnsupported, name, ctx.Err())
		}
		looked := res.FuelUsed >= 256 || err != nil && uint32(in.trap.Get()) == layout.TrapFuel || len(st.calls) > 0
		if timed && looked && time.Since(start) >= timeout {
			return fmt.Errorf("%w: %s: the run took longer than its deadline of %s", ErrUnsupported, name, timeout)
		}
	}
	switch {
	case left != nil:
		return left
	case failed != nil:
		out.Run.Trap = layout.TrapHost
		return in.eventFailure(v, *failed, out)
	case err != nil:
		out.Run.Trap = uint32(in.trap.Get())
		switch out.Run.Trap {
		case layout.TrapFuel, layout.TrapFault:
			fl, ferr := in.failure(name, false, out.Run.Trap, nil, budget, maxBytes)
			if ferr != nil {
				return ferr
			}
			return in.eventFailure(v, fl, out)
		case layout.TrapUnsupported:
			return fmt.Errorf("%w: %s", ErrUnsupported, name)
		}
		return fmt.Errorf("%w: %s: %v", ErrTrap, name, err)
	}
	reason := binary.LittleEndian.Uint32(in.out)
	switch code := uint32(in.stack[0]); {
	case code == layout.EventSkipped:
		return nil
	case code == layout.EventPassed:
		bytesLeft := int64(binary.LittleEndian.Uint64(in.out[layout.OutBytes:]))
		out.Result, out.Err = v.EmitEvent(ctx, ev, env, s, start, res.FuelUsed, maxBytes-bytesLeft)
		out.Run.FuelUsed = s.Steps()
		return nil
	case reason == layout.ReasonCheck:
		r, rerr := v.EventFailure(eval.Failure{Why: eval.WhyCheck, Rule: int(code - layout.EventPassed - 1)})
		if rerr != nil {
			return fmt.Errorf("%w: %v", ErrTrap, rerr)
		}
		out.Result = r
		return nil
	default:
		return fmt.Errorf("%w: %s: result %d, reason %d", ErrTrap, name, code, reason)
	}
}

// eventType returns the member type of the event ev (a string, else
// ""), as ev.Get("type") finds it, without copying the event: the keys
// are scanned from the last (type sorts after most members).
func eventType(ev ir.Value) string {
	keys := ev.Keys()
	for i := len(keys) - 1; i >= 0; i-- {
		if keys[i] == "type" {
			return ev.Values()[i].Str()
		}
	}
	return ""
}

// eventFailure is the outcome of a run that failed with f (its step
// budget, a fault, a kernel that failed): the interpreter's error for the
// guard, its violation for a rule.
func (in *Instance) eventFailure(v *eval.Validator, f eval.Failure, out *EventOutcome) error {
	r, rerr := v.EventFailure(f)
	if r.Violation == nil && rerr == nil {
		return fmt.Errorf("%w: %s: trap %d", ErrTrap, v.IR.Name, out.Run.Trap)
	}
	if r.Violation == nil && f.Rule >= 0 { // a rule's failure is a violation, not an error
		return fmt.Errorf("%w: %v", ErrTrap, rerr)
	}
	out.Result, out.Err = r, rerr
	return nil
}

// kernel makes the kernel call a run of f asked for (its charge point and
// arguments in the output) through kernels, as the interpreter makes it
// (the run's context, the event as the input, the arguments rebuilt as
// the kinds the call's charge point lists), records it and writes its
// answer for the next run. It returns the failure of a kernel that
// failed (the interpreter's LLL104 at the call), or why the run is left
// to the interpreter: no kernels, a value that is not a number, more
// calls than the table holds.
func (in *Instance) kernel(ctx context.Context, f *eventFunc, kernels eval.Kernels) (*eval.Failure, error) {
	st := in.ev
	at := binary.LittleEndian.Uint32(in.out[4:])
	if int(at/64) >= len(f.kernels) || f.kernels[at/64]&(1<<(at%64)) == 0 {
		return nil, fmt.Errorf("%w: %s: a kernel call at point %d of %d", ErrTrap, f.name, at, len(in.m.points))
	}
	pt := &in.m.points[at]
	name := pt.Name
	n := len(st.calls)
	if n == layout.EventMaxKernels {
		return nil, fmt.Errorf("%w: %s: over %d kernel calls", ErrUnsupported, f.name, layout.EventMaxKernels)
	}
	args := st.args[:in.m.events.params[at]]
	for i := range args {
		x := binary.LittleEndian.Uint64(in.out[layout.OutA+8*i:])
		switch pt.Kinds[i] {
		case ir.Number:
			args[i] = ir.NumberMicros(int64(x))
		case ir.String:
			a, ok := in.str(x)
			if !ok {
				return nil, fmt.Errorf("%w: %s: %s: argument %d out of memory", ErrUnsupported, f.name, name, i)
			}
			args[i] = a
		default:
			return nil, fmt.Errorf("%w: %s: kernel %s: an argument of kind %s", ErrTrap, f.name, name, pt.Kinds[i])
		}
	}
	if kernels == nil {
		return nil, fmt.Errorf("%w: %s: kernel %s is not available here", ErrUnsupported, f.name, name)
	}
	// The answer goes straight to st.last: copied out of the call's
	// result registers once, where a local would be copied again.
	st.last, st.lastErr = kernels.Kernel(ctx, name, st.input, args)
	st.calls = append(st.calls, at)
	st.vals = append(st.vals, args...)
	clear(args)
	if k := st.last.Kind(); st.lastErr != nil || k != ir.Number {
		st.stopped = true
		if err := st.lastErr; err != nil {
			return &eval.Failure{Why: eval.WhyHost, Rule: pt.Rule, Pos: pt.Pos, Name: name, Host: err}, nil
		}
		return nil, fmt.Errorf("%w: %s: %s returned a %s, the module reads a number", ErrUnsupported, f.name, name, k)
	}
	binary.LittleEndian.PutUint64(in.input[layout.EventKernels-layout.EventBase+8*n:], uint64(st.last.Micros()))
	binary.LittleEndian.PutUint32(in.input[4:], uint32(n+1))
	return nil, nil
}

// writeEvent lays the event's values fields (a validator's) out in the
// event table (layout.EventBase) in one copy: each value as the
// interpreter reads it (the member walked down its path), its kind and
// its value, strings at layout.EventStrings; and no kernel answers.
func (in *Instance) writeEvent(fields [][]string, ev ir.Value) error {
	b := in.input // the module's input region itself
	str := layout.EventStrings - layout.EventBase
	binary.LittleEndian.PutUint32(b, uint32(len(fields)))
	binary.LittleEndian.PutUint32(b[4:], 0)
	keys, vals := ev.Keys(), ev.Values()
	for i, path := range fields {
		var x ir.Value // as ev.Get(path[0]) finds it, without copying the event
		for j, k := range keys {
			if k == path[0] {
				x = vals[j]
				break
			}
		}
		if len(path) > 1 {
			x = eval.Walk(x, path[1:])
		}
		slot := b[layout.EventSlots-layout.EventBase+layout.SlotSize*i:][:layout.SlotSize]
		clear(slot)
		slot[layout.SlotKind] = byte(x.Kind())
		switch x.Kind() {
		case ir.String:
			if str+len(x.Str()) > layout.InSize {
				return fmt.Errorf("%w: the event's strings over %d bytes", ErrTooLarge, layout.InSize-(layout.EventStrings-layout.EventBase))
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
