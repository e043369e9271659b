// Package vm runs modules compiled by package codegen on wazero.
//
// A Module is compiled once (wazero's compiler where the platform has one)
// with WebAssembly 1.0 plus sign-extension and nothing else, and without
// WithCloseOnContextDone: a run is bounded by its fuel, not by a
// goroutine watching its context. An Instance is one instantiation with
// its own memory and a reusable buffer; it is not safe for concurrent use
// (nor are wazero's module instances), so a Pool hands one to each caller
// at a time.
//
// CheckSpan (CheckSpanEnv) writes a span into the instance's memory as
// package layout describes (decoded by package span, the decoder the
// interpreter uses; the field table and the bytes of the strings the
// module reads, in one copy), and, when the module reads any, the run's
// feature flags, policy values and the values below the span's data into
// the env region; calls the validator's export with the step budget and
// the byte budget and turns its answer (and the fuel left it stored) into
// the same *eval.Violation the interpreter gives. A run the module leaves to the
// interpreter (layout.TrapUnsupported: strings over the scratch region, a value below data of another
// kind than the expression reads; a policy value of another kind than the
// module was compiled for, data that does not decode; a run the deadline or the context may
// have decided, see CheckSpanEnv) fails with ErrUnsupported; the caller
// then runs the interpreter, whose answer is the run's.
//
// Host calls (host.go): CompileWith links a host module ("lll") with
// only the calls the capabilities grant, so a module importing another
// cannot be instantiated (ErrCapability). Each call is performed by the
// run's eval.Host, as the interpreter performs it, its result written
// back in the module's representation. Route (router.go) runs a
// router: the host records each action the module calls for,
// rebuilt from the route's argument record, as eval's Router.Route
// returns it. CheckEvent (event.go) runs an event validator over a
// derived event, its kernels called through the run's eval.Kernels.
package vm

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	mathbits "math/bits"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/loglineos/loglineos/internal/lll/abi"
	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/lll/eval/spanfield"
	"github.com/loglineos/loglineos/internal/lll/ir"
	"github.com/loglineos/loglineos/internal/lll/wasm/codegen"
	"github.com/loglineos/loglineos/internal/lll/wasm/layout"
	"github.com/loglineos/loglineos/internal/span"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// Errors of a run.
var (
	// ErrTooLarge: the span's field table does not fit the module's input
	// region (only with span limits above the defaults).
	ErrTooLarge = errors.New("vm: span too large for the module's input region")
	// ErrUnsupported: the module met an input it was not compiled for
	// (layout.TrapUnsupported).
	ErrUnsupported = errors.New("vm: input not supported by the wasm backend yet")
	// ErrTrap: the module trapped without a trap code (a fault of the
	// module).
	ErrTrap = errors.New("vm: module trapped")
	// ErrNoValidator: the module has no span validator of that name.
	ErrNoValidator = errors.New("vm: no such validator in the module")
	// ErrMismatch: the module's description is not what codegen makes of
	// the program.
	ErrMismatch = errors.New("vm: the module's description is not what codegen makes of the program")
)

// Features are the WebAssembly features a module may use.
const Features = api.CoreFeaturesV1 | api.CoreFeatureSignExtensionOps

// Module is a compiled module and the interpreter's validators it
// answers for, which word its violations.
type Module struct {
	rt         wazero.Runtime
	cm         wazero.CompiledModule
	validators map[string]*eval.Validator
	names      []string // the validators, in the module's order
	points     []codegen.Point
	// steps says which validators count steps (have charge points): only
	// their runs can meet the deadline and the context.
	steps    map[string]bool
	features []string
	policies []codegen.PolicyRef
	defaults []ir.Value // the program's own value of each policy value
	data     [][]string
	// confirmedBy: the module reads the strings of confirmed_by.
	confirmedBy bool
	// strings: bit f when the module reads the bytes of string field f
	// (codegen's Output.Strings).
	strings uint16
	host    hostLink  // the host calls and routers (host.go)
	events  eventLink // the event validators (event.go)
}

// compile compiles the module out, which codegen compiled from p (see
// CompileWith), and links the host calls opts grants. A
// module whose case table is of another Unicode version than the
// interpreter's (codegen.Output.Unicode) is refused with ErrUnsupported:
// its lower and upper would not be the interpreter's. A description
// (out's charge points, feature flags, policy values, paths below data...)
// that is not what codegen.Compile makes of p is refused with ErrMismatch:
// the host writes what the description lists, and a module that read
// anything else would answer wrongly. (The bytes are not compared: a
// bundle's are signed, and shadow mode exists to catch a module that
// answers otherwise.)
func compile(ctx context.Context, p *ir.Program, out *codegen.Output, opts Options) (m *Module, err error) {
	ep, err := eval.Compile(p)
	if err != nil {
		return nil, fmt.Errorf("vm: %w", err)
	}
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCoreFeatures(Features))
	defer func() {
		if err != nil {
			_ = rt.Close(ctx)
		}
	}()
	cm, err := rt.CompileModule(ctx, out.Wasm)
	if err != nil {
		return nil, fmt.Errorf("vm: compile: %w", err)
	}
	if out.Unicode != "" && out.Unicode != unicode.Version {
		return nil, fmt.Errorf("%w: the module's case table is of Unicode %s, the interpreter's of %s", ErrUnsupported, out.Unicode, unicode.Version)
	}
	if want, err := codegen.Compile(p); err != nil || !want.SameDescription(out) {
		return nil, fmt.Errorf("%w (%v)", ErrMismatch, err)
	}
	m = &Module{rt: rt, cm: cm, validators: map[string]*eval.Validator{}, points: out.Points, steps: map[string]bool{},
		features: out.Features, policies: out.Policies, data: out.Data, confirmedBy: out.ConfirmedBy}
	if len(out.Features) > 32 || len(out.Policies) > layout.EnvMaxPolicies || len(out.Data) > layout.EnvMaxData {
		return nil, fmt.Errorf("vm: %d features, %d policy values and %d paths below data do not fit the env region", len(out.Features), len(out.Policies), len(out.Data))
	}
	for _, ref := range out.Policies {
		v, err := ep.PolicyValue(nil, ref.Name, ref.Path)
		if err != nil {
			return nil, fmt.Errorf("vm: %w", err)
		}
		m.defaults = append(m.defaults, v)
	}
	for _, pt := range out.Points {
		m.steps[pt.Validator] = true
	}
	for _, name := range out.Strings {
		m.strings |= 1 << spanfield.Of(name)
	}
	for _, name := range out.Validators {
		v := ep.Validator(name)
		if v == nil {
			return nil, fmt.Errorf("%w: %s", ErrNoValidator, name)
		}
		m.validators[name] = v
		// The program's own string: a caller's v.IR.Name is the same,
		// which compares without reading its bytes.
		m.names = append(m.names, v.IR.Name)
	}
	if err := m.link(ctx, p, ep, out, opts); err != nil {
		return nil, err
	}
	if err := m.linkEvents(ep, out); err != nil {
		return nil, err
	}
	return m, nil
}

// Close releases the module and every instance of it.
func (m *Module) Close(ctx context.Context) error { return m.rt.Close(ctx) }

// Instance is an instantiated module. It is not safe for concurrent use.
type Instance struct {
	m     *Module
	mod   api.Module
	mem   api.Memory
	fuel  api.MutableGlobal
	trap  api.MutableGlobal
	bytes api.MutableGlobal // the byte budget left, which host calls charge
	funcs []validator       // few: a scan is cheaper than a map's hash
	input []byte            // a view of the module's input region (memory cannot grow, so it stays valid)
	out   []byte            // a view of the module's output region
	env   []byte            // the env region's tables of features and policies
	data  []byte            // the env region's table of data.PATH values
	strs  []byte            // the env region's strings
	vals  []uint64
	stack [2]uint64
	first *Pool // the pool whose first instance this is
	// list is the member list of a span whose members are the fields of
	// listOf (member bits), in canonical order, a byte each.
	list   [2]uint64
	listOf uint32
	ev     *eventState // the runs of event validators (event.go), made at the first
	// envFeatures and envPolicies are the maps of the Env whose features
	// and policies the env region holds (envSet: it holds any), and envStrs
	// the length of their strings in strs: the next run with an Env of the
	// same maps (nil for none) writes only the span's data.
	envFeatures map[string]bool
	envPolicies map[string]*ir.Policy
	envSet      bool
	envStrs     int
}

// NewInstance instantiates the module.
func (m *Module) NewInstance(ctx context.Context) (*Instance, error) {
	mod, err := m.rt.InstantiateModule(ctx, m.cm, wazero.NewModuleConfig().WithName(""))
	if err != nil {
		return nil, m.instantiateError(err)
	}
	in := &Instance{m: m, mod: mod, mem: mod.Memory(), listOf: 1 << 31} // no span has those member bits
	var ok1, ok2, ok3 bool
	in.fuel, ok1 = mod.ExportedGlobal(layout.GlobalFuel).(api.MutableGlobal)
	in.trap, ok2 = mod.ExportedGlobal(layout.GlobalTrap).(api.MutableGlobal)
	in.bytes, ok3 = mod.ExportedGlobal(layout.GlobalBytes).(api.MutableGlobal)
	if !ok1 || !ok2 || !ok3 || in.mem == nil {
		_ = mod.Close(ctx)
		return nil, fmt.Errorf("vm: the module does not export %s, %s, %s and its memory", layout.GlobalFuel, layout.GlobalTrap, layout.GlobalBytes)
	}
	var ok bool
	in.input, ok = in.mem.Read(layout.InBase, layout.InSize)
	if in.out, ok2 = in.mem.Read(layout.OutBase, layout.EnvBase-layout.OutBase); !ok || !ok2 {
		_ = mod.Close(ctx)
		return nil, fmt.Errorf("vm: the module's memory has no input region (%d bytes at %#x) or output region", layout.InSize, layout.InBase)
	}
	for _, name := range m.names {
		f := mod.ExportedFunction(layout.ValidatorExport(name))
		if f == nil {
			_ = mod.Close(ctx)
			return nil, fmt.Errorf("%w: %s", ErrNoValidator, name)
		}
		if !validatorType(f) {
			_ = mod.Close(ctx)
			return nil, fmt.Errorf("vm: the export of %s is not a function (i64, i64) -> i32", name)
		}
		in.funcs = append(in.funcs, validator{name: name, fn: f, v: m.validators[name], steps: m.steps[name]})
	}
	return in, nil
}

// validatorType reports whether f is a function (i64 fuel, i64 bytes) ->
// i32, as the exports of validators are.
func validatorType(f api.Function) bool {
	d := f.Definition()
	return slices.Equal(d.ParamTypes(), []api.ValueType{api.ValueTypeI64, api.ValueTypeI64}) &&
		slices.Equal(d.ResultTypes(), []api.ValueType{api.ValueTypeI32})
}

// validator is what a run of one validator needs, found with one lookup.
type validator struct {
	name  string
	fn    api.Function
	v     *eval.Validator
	steps bool // it counts steps (see Module.steps)
}

// Result is what a run used besides its verdict.
type Result struct {
	// FuelUsed is the steps the run counted (the budget minus the fuel
	// left), what the interpreter counts for the same run.
	FuelUsed int64
	// Trap is the module's trap code: layout.TrapFuel when the budget ran
	// out, layout.TrapFault when an expression failed (overflow, division
	// by zero; the violation then says so, as the interpreter's does),
	// layout.TrapHost when a host call failed (LLL104), else
	// layout.TrapNone.
	Trap uint32
}

// CheckSpan runs the validator name over s with a step budget of budget
// (eval.DefaultMaxSteps when <= 0) and no deadline: CheckSpanEnv with an
// Env of that MaxSteps and a negative Timeout.
func (in *Instance) CheckSpan(ctx context.Context, name string, s *span.Span, budget int64) (*eval.Violation, Result, error) {
	return in.CheckSpanEnv(ctx, name, s, &eval.Env{MaxSteps: budget, Timeout: -1})
}

// CheckSpanEnv runs the validator name over s as eval's
// Validator.CheckSpan does with env: nil when the span passes, else the
// interpreter's violation. The run's step budget is env.MaxSteps and its
// byte budget env.MaxBytes (eval's defaults when <= 0; env may be nil);
// it sees env's feature flags and policy values. A run whose step budget
// runs out is a violation too (cannot evaluate: ... LLL100), as it is for
// the interpreter, with Result.Trap = layout.TrapFuel; so is a fault of an
// expression (LLL102, LLL103, the byte budget's LLL105), with
// layout.TrapFault. A run the module cannot answer fails with
// ErrUnsupported, and the caller asks the interpreter: the module trapped
// with layout.TrapUnsupported, a policy value is of a kind the module was
// not compiled for, or the deadline or the context may have decided the
// run.
//
// The deadline (env.Timeout, eval.DefaultTimeout when zero) and the
// context are wall-clock matters: the interpreter looks at them every 256
// steps and when its step budget runs out, and a backend cannot know when
// the other would have. The module does not look at them during a run
// (its run is bounded by its fuel); after it, a run that counted a step
// is answered only when the context is not done (the interpreter fails at
// its first step with a context done before the run) and, when it
// counted steps where the interpreter looks at the clock (256 or more, or
// its budget ran out), when the module's own run took less than the
// timeout; else it is the interpreter's (ErrUnsupported), which words
// LLL101 or LLL106 when its own run meets them. A run
// with a negative Timeout has no deadline, as for the interpreter: the
// module then answers it as the interpreter does, whatever the time.
func (in *Instance) CheckSpanEnv(ctx context.Context, name string, s *span.Span, env *eval.Env) (*eval.Violation, Result, error) {
	var val *validator
	for i := range in.funcs {
		if in.funcs[i].name == name {
			val = &in.funcs[i]
			break
		}
	}
	if val == nil {
		return nil, Result{}, fmt.Errorf("%w: %s", ErrNoValidator, name)
	}
	f, v := val.fn, val.v
	budget, maxBytes, timeout := limits(env)
	if err := in.write(s); err != nil {
		return nil, Result{}, err
	}
	if len(in.m.features) > 0 || len(in.m.policies) > 0 || len(in.m.data) > 0 {
		if err := in.writeEnv(env, s); err != nil {
			return nil, Result{}, err
		}
	}
	var run *hostRun
	call := ctx
	if len(in.m.host.imports) > 0 {
		call, run = in.hostRun(ctx, env, timeout, s)
	}
	var start time.Time
	timed := val.steps && timeout > 0
	if timed {
		start = time.Now()
	}
	used, err := in.call(call, f, budget, maxBytes)
	res := Result{FuelUsed: used}
	if res.FuelUsed > 0 {
		if ctx != nil && ctx.Err() != nil {
			return nil, res, fmt.Errorf("%w: %s: the run's context is done: %v", ErrUnsupported, name, ctx.Err())
		}
		looked := res.FuelUsed >= 256 || err != nil && uint32(in.trap.Get()) == layout.TrapFuel || run.called()
		if timed && looked && time.Since(start) >= timeout {
			return nil, res, fmt.Errorf("%w: %s: the run took longer than its deadline of %s", ErrUnsupported, name, timeout)
		}
	}
	if err != nil {
		return in.trapped(name, v, s, res, budget, maxBytes, run, err)
	}
	if rule := int(uint32(in.stack[0])); rule != 0 {
		return in.failed(name, v, s, res, rule)
	}
	return nil, res, nil
}

// call calls the export f of a validator or a router with the step and
// byte budgets and returns the steps the run counted: the budget minus
// the fuel left, which the guest stored in the output before it
// returned, or which the fuel global holds after a trap.
func (in *Instance) call(ctx context.Context, f api.Function, budget, maxBytes int64) (int64, error) {
	in.stack = [2]uint64{uint64(budget), uint64(maxBytes)}
	err := f.CallWithStack(ctx, in.stack[:])
	left := binary.LittleEndian.Uint64(in.out[layout.OutFuel:])
	if err != nil {
		left = in.fuel.Get() // the guest trapped before it stored the fuel left
	}
	return budget - int64(left), err
}

// failed words the violation of a validator that returned 1 + rule, its
// reason and member in the output.
func (in *Instance) failed(name string, v *eval.Validator, s *span.Span, res Result, rule int) (*eval.Violation, Result, error) {
	reason, word := binary.LittleEndian.Uint32(in.out), binary.LittleEndian.Uint32(in.out[4:])
	w, ok := why(reason)
	if !ok {
		return nil, res, fmt.Errorf("%w: %s: reason %d", ErrTrap, name, reason)
	}
	vi, err := v.SpanViolation(s, eval.Failure{Why: w, Rule: rule - 1, Member: int(word)})
	if err != nil {
		return nil, res, fmt.Errorf("%w: %v", ErrTrap, err)
	}
	return vi, res, nil
}

// trapped words the outcome of a run that trapped with err: the
// interpreter's violation for its trap code and the output, ErrUnsupported
// for layout.TrapUnsupported, ErrTrap for a fault of the module.
func (in *Instance) trapped(name string, v *eval.Validator, s *span.Span, res Result, budget, maxBytes int64, run *hostRun, err error) (*eval.Violation, Result, error) {
	res.Trap = uint32(in.trap.Get())
	switch res.Trap {
	case layout.TrapFuel, layout.TrapFault, layout.TrapHost:
		f, err := in.failure(name, false, res.Trap, run, budget, maxBytes)
		if err != nil {
			return nil, res, err
		}
		vi, err := v.SpanViolation(s, f)
		if err != nil {
			return nil, res, fmt.Errorf("%w: %v", ErrTrap, err)
		}
		return vi, res, nil
	case layout.TrapUnsupported:
		return nil, res, fmt.Errorf("%w: %s%s", ErrUnsupported, name, run.failedCall())
	}
	return nil, res, fmt.Errorf("%w: %s: %v", ErrTrap, name, err)
}

// failure decodes the failure of a run of the validator (or, when router,
// the router) name that trapped with trap, layout.TrapFuel, TrapFault or
// TrapHost: the charge point in the second output word; for a fault, its
// reason in the first and its operands after them; for a host call, the
// error the host holds (run's).
func (in *Instance) failure(name string, router bool, trap uint32, run *hostRun, budget, maxBytes int64) (eval.Failure, error) {
	out := in.out
	reason, word := binary.LittleEndian.Uint32(out), binary.LittleEndian.Uint32(out[4:])
	what, of := name, func(pt codegen.Point) string { return pt.Validator }
	if router {
		what, of = "router "+name, func(pt codegen.Point) string { return pt.Router }
	}
	if int(word) >= len(in.m.points) || of(in.m.points[word]) != name {
		return eval.Failure{}, fmt.Errorf("%w: %s: trap %d at point %d of %d", ErrTrap, what, trap, word, len(in.m.points))
	}
	pt := in.m.points[word]
	switch trap {
	case layout.TrapHost:
		f, ok := run.hostFailure(pt)
		if !ok {
			return eval.Failure{}, fmt.Errorf("%w: %s: trap %d without a host error", ErrTrap, what, trap)
		}
		return f, nil
	case layout.TrapFault:
		fl, ok := fault(reason)
		if !ok {
			return eval.Failure{}, fmt.Errorf("%w: %s: fault %d", ErrTrap, what, reason)
		}
		f := eval.Failure{Why: eval.WhyFault, Rule: pt.Rule, Pos: pt.Pos, Fault: fl, Op: pt.Op, Name: pt.Name, Budget: maxBytes}
		a, b := binary.LittleEndian.Uint64(out[layout.OutA:]), binary.LittleEndian.Uint64(out[layout.OutB:])
		switch fl {
		case eval.FaultBytes:
		case eval.FaultOrder, eval.FaultType:
			var okA, okB bool
			f.A, okA = in.str(a)
			f.B, okB = in.str(b)
			if !okA || !okB {
				return eval.Failure{}, fmt.Errorf("%w: %s: operands %#x, %#x out of memory", ErrTrap, what, a, b)
			}
		default:
			f.A, f.B = number(pt.Kinds[0], a), number(pt.Kinds[1], b)
		}
		return f, nil
	}
	return eval.Failure{Why: eval.WhyBudget, Rule: pt.Rule, Pos: pt.Pos, Budget: budget}, nil
}

// write lays s out in the input region in one copy: the member count and
// bits, the slots, the member list, and the bytes of the strings the
// module reads.
func (in *Instance) write(s *span.Span) error {
	m := in.m
	size := layout.MembersOff + len(s.Members)
	for fs := m.strings; fs != 0; fs &= fs - 1 {
		size += len(spanfield.String(s, spanfield.Field(mathbits.TrailingZeros16(fs))))
	}
	arr := size // the values of confirmed_by's strings, when the module reads them
	if m.confirmedBy {
		for _, c := range s.ConfirmedBy {
			size += len(c) + 8
			arr += len(c)
		}
	}
	if size > layout.InSize {
		return fmt.Errorf("%w: %d bytes, room for %d", ErrTooLarge, size, layout.InSize)
	}
	b := in.input[:size] // the module's input region itself: one copy
	n := len(s.Members)
	ids := b[layout.MembersOff:][:n]
	// The fields the span's values show present: each is a member. When
	// they are as many as the members, they are all the members, and the
	// member list is those fields in the canonical order of their names;
	// else (an empty string, an unknown member) the names tell.
	bits := fieldBit(s.ID != "", spanfield.ID) | fieldBit(s.Tenant != "", spanfield.Tenant) |
		fieldBit(s.Who != "", spanfield.Who) | fieldBit(s.Did != "", spanfield.Did) | fieldBit(s.This != "", spanfield.This) |
		fieldBit(s.WhenRaw != "", spanfield.When) | fieldBit(s.Status != "", spanfield.Status) |
		fieldBit(s.ConfirmedBy != nil, spanfield.ConfirmedBy) | fieldBit(s.Data != nil, spanfield.Data)
	if mathbits.OnesCount32(bits) == n {
		if bits != in.listOf {
			in.listOf, in.list = bits, [2]uint64{}
			i := 0
			for _, f := range canonicalOrder {
				if bits&(1<<f) != 0 {
					in.list[i/8] |= uint64(f) << (8 * (i % 8))
					i++
				}
			}
		}
		// Two words, the list of the last span with these fields (what
		// lies past the list is outside the input the module reads, or
		// under the strings).
		list := in.input[layout.MembersOff:][:16]
		binary.LittleEndian.PutUint64(list, in.list[0])
		binary.LittleEndian.PutUint64(list[8:], in.list[1])
	} else {
		bits = 0
		for i, name := range s.Members {
			f := spanfield.Of(name)
			ids[i] = byte(f)
			bits |= 1 << f
		}
	}
	t := (*[layout.MembersOff]byte)(b)
	binary.LittleEndian.PutUint64(t[0:], uint64(n)|uint64(bits)<<(8*layout.InMembers))
	str := layout.MembersOff + n
	// The string fields, in one pass of straight-line stores a slot: the
	// word of kind, flags and length, the offset, the value.
	slot := func(f spanfield.Field, x string, flags byte, value int64) {
		w := t[8+int(f)*layout.SlotSize:][:layout.SlotSize]
		var kind, off uint64
		if bits&(1<<f) != 0 {
			kind, flags = layout.KindString, flags|layout.FlagMember
			if m.strings&(1<<f) != 0 {
				off = uint64(layout.InBase + str)
				str += copy(b[str:], x)
			}
		}
		binary.LittleEndian.PutUint64(w[0:], kind|uint64(flags)<<8|uint64(len(x))<<32)
		binary.LittleEndian.PutUint64(w[8:], off)
		binary.LittleEndian.PutUint64(w[16:], uint64(value))
	}
	clear(t[8 : 8+layout.SlotSize]) // None
	slot(spanfield.ID, s.ID, 0, 0)
	slot(spanfield.Tenant, s.Tenant, 0, 0)
	slot(spanfield.Who, s.Who, 0, 0)
	slot(spanfield.Did, s.Did, 0, 0)
	slot(spanfield.This, s.This, 0, 0)
	// when's instant, as the interpreter decides it: the decoder's, or
	// abi.ValidRFC3339 of the text.
	var flags byte
	var instant int64
	switch {
	case bits&(1<<spanfield.When) == 0:
	case s.WhenOK:
		flags, instant = layout.FlagTime, s.When.UnixNano()
	default:
		if t, ok := abi.ValidRFC3339(s.WhenRaw); ok {
			flags, instant = layout.FlagTime, t.UnixNano()
		}
	}
	slot(spanfield.When, s.WhenRaw, flags, instant)
	slot(spanfield.Status, s.Status, 0, 0)

	w := t[8+int(spanfield.ConfirmedBy)*layout.SlotSize:][:layout.SlotSize]
	clear(w)
	if bits&(1<<spanfield.ConfirmedBy) != 0 {
		binary.LittleEndian.PutUint64(w, layout.KindStrings|layout.FlagMember<<8|uint64(len(s.ConfirmedBy))<<32)
		if m.confirmedBy {
			binary.LittleEndian.PutUint32(w[layout.SlotOffset:], uint32(layout.InBase+arr))
			for j, c := range s.ConfirmedBy {
				binary.LittleEndian.PutUint64(b[arr+8*j:], uint64(layout.InBase+str)<<32|uint64(len(c)))
				str += copy(b[str:], c)
			}
		}
	}
	w = t[8+int(spanfield.Data)*layout.SlotSize:][:layout.SlotSize]
	clear(w)
	if bits&(1<<spanfield.Data) != 0 {
		var kind uint64 = layout.KindOther
		if len(s.Data) > 0 && s.Data[0] == '{' {
			kind = layout.KindObject
		}
		binary.LittleEndian.PutUint64(w, kind|layout.FlagMember<<8|uint64(len(s.Data))<<32)
	}
	return nil
}

// canonicalOrder are the span fields in the order of their names in a
// canonical span (RFC 8785: by their bytes, for these ASCII names), the
// order of span.Span's Members.
var canonicalOrder = [...]spanfield.Field{spanfield.ConfirmedBy, spanfield.Data, spanfield.Did, spanfield.ID,
	spanfield.Status, spanfield.Tenant, spanfield.This, spanfield.When, spanfield.Who}

// fieldBit returns the bit of f when ok.
func fieldBit(ok bool, f spanfield.Field) uint32 {
	if ok {
		return 1 << f
	}
	return 0
}

// writeEnv writes the env region: the module's feature flags as env has
// them, its policy values as env resolves them, the paths below the span's
// data it reads and what the first read of data charges. A value of a
// policy of another kind than the module was compiled for, data that does
// not decode, or strings that do not fit the region, fail with
// ErrUnsupported.
func (in *Instance) writeEnv(env *eval.Env, s *span.Span) error {
	m := in.m
	var features map[string]bool
	var policies map[string]*ir.Policy
	if env != nil {
		features, policies = env.Features, env.Policies
	}
	if in.envSet && sameMap(features, in.envFeatures) && sameMap(policies, in.envPolicies) {
		return in.writeData(s)
	}
	in.envSet = false
	b := in.env[:0]
	var bits uint32
	for i, name := range m.features {
		if env.Feature(name) {
			bits |= 1 << i
		}
	}
	b = binary.LittleEndian.AppendUint32(b, bits)
	b = binary.LittleEndian.AppendUint32(b, 0)
	in.strs = in.strs[:0]
	for i, ref := range m.policies {
		v := env.PolicyValue(ref.Name, ref.Path, m.defaults[i])
		var x uint64
		switch {
		case ref.Kind == ir.String && (v.Kind() == ir.String || v.Kind() == ir.Null):
			var err error
			if x, err = in.envStr(v); err != nil {
				return err
			}
		case v.Kind() == ref.Kind && (v.Kind() == ir.Number || v.Kind() == ir.Bool || v.Kind() == ir.Duration || v.Kind() == ir.Percentile):
			x = uint64(v.Micros())
		case ref.Kind == ir.List && v.Kind() == ir.Null:
			x = 0 // no values: in of null is false
		case ref.Kind == ir.List && v.Kind() == ir.List:
			var err error
			if x, err = in.envList(v, ref); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%w: policy.%s.%s is a %s, the module reads a %s", ErrUnsupported, ref.Name, strings.Join(ref.Path, "."), v.Kind(), ref.Kind)
		}
		b = binary.LittleEndian.AppendUint64(b, x)
	}
	in.env = b
	if !in.mem.Write(layout.EnvBase, b) || !in.mem.Write(layout.EnvBase+layout.EnvStrings, in.strs) {
		return fmt.Errorf("%w: env write out of range", ErrTooLarge)
	}
	in.envFeatures, in.envPolicies, in.envSet, in.envStrs = features, policies, true, len(in.strs)
	return in.writeData(s)
}

// sameMap reports whether a and b are the same map (both nil, or one map).
func sameMap[M ~map[K]V, K comparable, V any](a, b M) bool {
	if a == nil || b == nil { // the common case, without reflect's cost
		return a == nil && b == nil
	}
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

// writeData writes the env region's data table, the values of the
// data.PATH the module reads in s, after the strings of the features and
// policies writeEnv wrote; an event's run (s nil) reads no span.
func (in *Instance) writeData(s *span.Span) error {
	m := in.m
	if len(m.data) == 0 || s == nil {
		return nil
	}
	in.strs = in.strs[:in.envStrs]
	d, charge, err := eval.SpanData(s)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	b := in.data[:0]
	b = binary.LittleEndian.AppendUint64(b, uint64(charge))
	for _, path := range m.data {
		v := eval.Walk(d, path)
		var x uint64
		switch v.Kind() {
		case ir.String, ir.Null:
			if x, err = in.envStr(v); err != nil {
				return err
			}
		case ir.Number, ir.Bool:
			x = uint64(v.Micros())
		}
		b = binary.LittleEndian.AppendUint64(b, uint64(v.Kind()))
		b = binary.LittleEndian.AppendUint64(b, x)
	}
	in.data = b
	if !in.mem.Write(layout.EnvBase+layout.EnvData, b) || !in.mem.Write(uint32(layout.EnvBase+layout.EnvStrings+in.envStrs), in.strs[in.envStrs:]) {
		return fmt.Errorf("%w: env write out of range", ErrTooLarge)
	}
	return nil
}

// envList places the values of the list v, the value of ref, among the
// env region's strings (strings first, then the i64 values) and returns
// address<<32 | count; a value of another kind than ref.Elem fails with
// ErrUnsupported.
func (in *Instance) envList(v ir.Value, ref codegen.PolicyRef) (uint64, error) {
	l, elem := v.List(), ref.Elem
	vals := in.vals[:0]
	for _, x := range l {
		if x.Kind() != elem {
			return 0, fmt.Errorf("%w: policy.%s.%s holds a %s, the module reads %ss", ErrUnsupported, ref.Name, strings.Join(ref.Path, "."), x.Kind(), elem)
		}
		w := uint64(x.Micros())
		if elem == ir.String {
			var err error
			if w, err = in.envStr(x); err != nil {
				return 0, err
			}
		}
		vals = append(vals, w)
	}
	in.vals = vals
	if layout.EnvStrings+len(in.strs)+8*len(l) > layout.EnvSize {
		return 0, fmt.Errorf("%w: policy lists over %d bytes", ErrUnsupported, layout.EnvSize-layout.EnvStrings)
	}
	at := uint64(layout.EnvBase + layout.EnvStrings + len(in.strs))
	for _, w := range vals {
		in.strs = binary.LittleEndian.AppendUint64(in.strs, w)
	}
	return at<<32 | uint64(len(l)), nil
}

// envStr places the string v (or null) among the env region's strings and
// returns its value, offset<<32 | length.
func (in *Instance) envStr(v ir.Value) (uint64, error) {
	if v.IsNull() {
		return 0xffffffff << 32, nil
	}
	if layout.EnvStrings+len(in.strs)+len(v.Str()) > layout.EnvSize {
		return 0, fmt.Errorf("%w: strings of policy values and data over %d bytes", ErrUnsupported, layout.EnvSize-layout.EnvStrings)
	}
	x := uint64(layout.EnvBase+layout.EnvStrings+len(in.strs))<<32 | uint64(len(v.Str()))
	in.strs = append(in.strs, v.Str()...)
	return x, nil
}

// why maps the module's reasons to the interpreter's.
func why(reason uint32) (eval.Why, bool) {
	switch reason {
	case layout.ReasonRequired:
		return eval.WhyRequired, true
	case layout.ReasonEmpty:
		return eval.WhyEmpty, true
	case layout.ReasonFormat:
		return eval.WhyNotRFC3339, true
	case layout.ReasonNotOneOf:
		return eval.WhyNotOneOf, true
	case layout.ReasonUnknown:
		return eval.WhyUnknown, true
	case layout.ReasonCheck:
		return eval.WhyCheck, true
	case layout.ReasonValue:
		return eval.WhyFormat, true
	}
	return 0, false
}

// fault maps the module's faults to the interpreter's.
func fault(code uint32) (eval.Fault, bool) {
	switch code {
	case layout.FaultOverflow:
		return eval.FaultOverflow, true
	case layout.FaultDivZero:
		return eval.FaultDivZero, true
	case layout.FaultOrder:
		return eval.FaultOrder, true
	case layout.FaultBytes:
		return eval.FaultBytes, true
	case layout.FaultType:
		return eval.FaultType, true
	}
	return 0, false
}

// number returns the value of kind k (a number when zero, a duration, a
// timestamp) a module's i64 v holds.
func number(k ir.Kind, v uint64) ir.Value {
	switch k {
	case ir.Duration:
		return ir.DurationValue(time.Duration(v))
	case ir.Timestamp:
		return ir.TimestampValue(time.Unix(0, int64(v)))
	}
	return ir.NumberMicros(int64(v))
}

// str returns the string a module's value offset<<32 | length names in
// its memory, or null (offset 2^32-1); false when it is out of memory.
func (in *Instance) str(v uint64) (ir.Value, bool) {
	if v>>32 == 0xffffffff {
		return ir.NullValue(), true
	}
	b, ok := in.mem.Read(uint32(v>>32), uint32(v))
	if !ok {
		return ir.Value{}, false
	}
	return ir.StringValue(string(b)), true
}

// Close releases the instance.
func (in *Instance) Close(ctx context.Context) error { return in.mod.Close(ctx) }

// Pool keeps instances of one module for reuse, one caller at a time each.
// Its first instance is taken and given back with one atomic operation
// each on a word that also counts the Gets, so a caller that does not
// contend pays two atomics a run and no lock; the other instances wait in
// a list under a mutex.
type Pool struct {
	m *Module
	// state is gets<<1 | 1 while first is out.
	state atomic.Uint64
	// first is made by the first Get that takes it and read and written
	// only by whoever holds it (state's bit 0), which publishes it.
	first *Instance
	mu    sync.Mutex
	free  []*Instance
}

// NewPool returns an empty pool of instances of m.
func NewPool(m *Module) *Pool { return &Pool{m: m} }

// Get returns a free instance, instantiating one when none is free.
func (p *Pool) Get(ctx context.Context) (*Instance, error) {
	if v := p.state.Load(); v&1 == 0 && p.state.CompareAndSwap(v, v+3) {
		if p.first == nil {
			in, err := p.m.NewInstance(ctx)
			if err != nil {
				p.state.Add(^uint64(0)) // give the slot back
				return nil, err
			}
			in.first = p
			p.first = in
		}
		return p.first, nil
	}
	p.state.Add(2)
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		in := p.free[n-1]
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return in, nil
	}
	p.mu.Unlock()
	return p.m.NewInstance(ctx)
}

// Put returns an instance to the pool.
func (p *Pool) Put(in *Instance) {
	if in.first == p {
		p.state.Add(^uint64(0)) // clears bit 0, which the holder of first set
		return
	}
	p.mu.Lock()
	p.free = append(p.free, in)
	p.mu.Unlock()
}

// Gets returns the number of calls of Get so far.
func (p *Pool) Gets() int64 { return int64(p.state.Load() >> 1) }

// Memory returns the instance's memory, for tests and audits.
func (in *Instance) Memory() api.Memory { return in.mem }
