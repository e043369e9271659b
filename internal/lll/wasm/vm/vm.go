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
// CheckSpan writes a span into the instance's memory as package layout
// describes (decoded by package span, the decoder the interpreter uses;
// the field table and the strings in one copy), sets the fuel to the step
// budget, calls the validator and turns its answer into the same
// *eval.Violation the interpreter gives.
package vm

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/loglineos/loglineos/internal/lll/abi"
	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/lll/ir"
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
)

// Features are the WebAssembly features a module may use.
const Features = api.CoreFeaturesV1 | api.CoreFeatureSignExtensionOps

// Module is a compiled module and the rules of the validators it exports.
type Module struct {
	rt         wazero.Runtime
	cm         wazero.CompiledModule
	validators map[string]*ir.Validator
}

// Compile compiles wasm, whose span validators are those of p named in
// names (codegen.Output.Validators).
func Compile(ctx context.Context, wasm []byte, p *ir.Program, names []string) (m *Module, err error) {
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCoreFeatures(Features))
	defer func() {
		if err != nil {
			_ = rt.Close(ctx)
		}
	}()
	cm, err := rt.CompileModule(ctx, wasm)
	if err != nil {
		return nil, fmt.Errorf("vm: compile: %w", err)
	}
	m = &Module{rt: rt, cm: cm, validators: map[string]*ir.Validator{}}
	for _, name := range names {
		var v *ir.Validator
		for _, x := range p.Validators {
			if x.Name == name {
				v = x
			}
		}
		if v == nil {
			return nil, fmt.Errorf("%w: %s", ErrNoValidator, name)
		}
		m.validators[name] = v
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
	funcs map[string]api.Function
	buf   []byte
	stack [1]uint64
}

// NewInstance instantiates the module.
func (m *Module) NewInstance(ctx context.Context) (*Instance, error) {
	mod, err := m.rt.InstantiateModule(ctx, m.cm, wazero.NewModuleConfig().WithName(""))
	if err != nil {
		return nil, fmt.Errorf("vm: instantiate: %w", err)
	}
	in := &Instance{m: m, mod: mod, mem: mod.Memory(), funcs: map[string]api.Function{}}
	var ok1, ok2 bool
	in.fuel, ok1 = mod.ExportedGlobal(layout.GlobalFuel).(api.MutableGlobal)
	in.trap, ok2 = mod.ExportedGlobal(layout.GlobalTrap).(api.MutableGlobal)
	if !ok1 || !ok2 || in.mem == nil {
		_ = mod.Close(ctx)
		return nil, fmt.Errorf("vm: the module does not export %s, %s and its memory", layout.GlobalFuel, layout.GlobalTrap)
	}
	for name := range m.validators {
		f := mod.ExportedFunction(layout.ValidatorExport(name))
		if f == nil {
			_ = mod.Close(ctx)
			return nil, fmt.Errorf("%w: %s", ErrNoValidator, name)
		}
		in.funcs[name] = f
	}
	return in, nil
}

// Result is what a run used besides its verdict.
type Result struct {
	// FuelUsed is the steps the run counted (the budget minus the fuel
	// left), what the interpreter counts for the same run.
	FuelUsed int64
}

// CheckSpan runs the validator name over s with a step budget of budget
// (eval.DefaultMaxSteps when <= 0), as eval's Validator.CheckSpan does
// with an Env of that MaxSteps: nil when the span passes.
func (in *Instance) CheckSpan(ctx context.Context, name string, s *span.Span, budget int64) (*eval.Violation, Result, error) {
	f, v := in.funcs[name], in.m.validators[name]
	if f == nil {
		return nil, Result{}, fmt.Errorf("%w: %s", ErrNoValidator, name)
	}
	if budget <= 0 {
		budget = eval.DefaultMaxSteps
	}
	if err := in.write(s); err != nil {
		return nil, Result{}, err
	}
	in.fuel.Set(uint64(budget))
	in.trap.Set(0)
	err := f.CallWithStack(ctx, in.stack[:])
	res := Result{FuelUsed: budget - int64(in.fuel.Get())}
	if err != nil {
		switch in.trap.Get() {
		case layout.TrapFuel:
			return nil, res, fmt.Errorf("vm: %s: evaluation exceeded its budget of %d steps", name, budget)
		case layout.TrapUnsupported:
			return nil, res, fmt.Errorf("%w: %s", ErrUnsupported, name)
		}
		return nil, res, fmt.Errorf("%w: %s: %v", ErrTrap, name, err)
	}
	rule := int(uint32(in.stack[0]))
	if rule == 0 {
		return nil, res, nil
	}
	if rule > len(v.Rules) {
		return nil, res, fmt.Errorf("%w: %s: rule %d of %d", ErrTrap, name, rule, len(v.Rules))
	}
	out, _ := in.mem.Read(layout.OutBase, 8)
	reason, member := binary.LittleEndian.Uint32(out), binary.LittleEndian.Uint32(out[4:])
	vi, err := violation(v, v.Rules[rule-1], s, reason, member)
	return vi, res, err
}

// write lays s out in the input region in one copy.
func (in *Instance) write(s *span.Span) error {
	size := layout.MembersOff + len(s.Members)
	for f := layout.FieldID; f <= layout.FieldStatus; f++ {
		size += len(spanString(s, f))
	}
	if size > layout.InSize {
		return fmt.Errorf("%w: %d bytes, room for %d", ErrTooLarge, size, layout.InSize)
	}
	b := in.buf[:0]
	if cap(b) < size {
		b = make([]byte, 0, size)
	}
	b = b[:size]
	clear(b[:layout.MembersOff])
	binary.LittleEndian.PutUint32(b, uint32(len(s.Members)))
	str := layout.MembersOff + len(s.Members)
	for i, m := range s.Members {
		b[layout.MembersOff+i] = byte(layout.FieldOf(m))
		f := layout.FieldOf(m)
		if f == layout.FieldNone {
			continue
		}
		slot := b[8+int(f)*layout.SlotSize:][:layout.SlotSize]
		slot[layout.SlotFlags] = layout.FlagMember
		switch f {
		case layout.FieldConfirmedBy:
			slot[layout.SlotKind] = layout.KindStrings
			binary.LittleEndian.PutUint32(slot[layout.SlotLen:], uint32(len(s.ConfirmedBy)))
		case layout.FieldData:
			slot[layout.SlotKind] = layout.KindOther
			if len(s.Data) > 0 && s.Data[0] == '{' {
				slot[layout.SlotKind] = layout.KindObject
			}
			binary.LittleEndian.PutUint32(slot[layout.SlotLen:], uint32(len(s.Data)))
		default:
			x := spanString(s, f)
			slot[layout.SlotKind] = layout.KindString
			binary.LittleEndian.PutUint32(slot[layout.SlotLen:], uint32(len(x)))
			binary.LittleEndian.PutUint32(slot[layout.SlotOffset:], uint32(layout.InBase+str))
			str += copy(b[str:], x)
			if f == layout.FieldWhen {
				if t, ok := when(s); ok {
					slot[layout.SlotFlags] |= layout.FlagTime
					binary.LittleEndian.PutUint64(slot[layout.SlotValue:], uint64(t))
				}
			}
		}
	}
	in.buf = b
	if !in.mem.Write(layout.InBase, b) {
		return fmt.Errorf("%w: memory write out of range", ErrTooLarge)
	}
	return nil
}

// when returns the instant of the span's when, as the interpreter decides
// it: the decoder's, or abi.ValidRFC3339 of the text.
func when(s *span.Span) (int64, bool) {
	if s.WhenOK {
		return s.When.UnixNano(), true
	}
	t, ok := abi.ValidRFC3339(s.WhenRaw)
	return t.UnixNano(), ok
}

func spanString(s *span.Span, f layout.Field) string {
	switch f {
	case layout.FieldID:
		return s.ID
	case layout.FieldTenant:
		return s.Tenant
	case layout.FieldWho:
		return s.Who
	case layout.FieldDid:
		return s.Did
	case layout.FieldThis:
		return s.This
	case layout.FieldWhen:
		return s.WhenRaw
	case layout.FieldStatus:
		return s.Status
	}
	return ""
}

// violation builds the interpreter's violation for a rule that failed for
// reason (member: the index of the member, for ReasonUnknown).
func violation(v *ir.Validator, r *ir.Rule, s *span.Span, reason, member uint32) (*eval.Violation, error) {
	vi := &eval.Violation{Validator: v.Name, Rule: r.Source, Field: r.Field, Pos: r.Pos, Action: v.OnFail}
	f := layout.FieldOf(r.Field)
	switch reason {
	case layout.ReasonRequired:
		vi.Detail = fmt.Sprintf("field %q is required", r.Field)
	case layout.ReasonEmpty:
		vi.Detail = fmt.Sprintf("field %q is empty", r.Field)
	case layout.ReasonFormat:
		vi.Detail = fmt.Sprintf("field %q is not RFC 3339: %q", r.Field, clip(s.WhenRaw))
	case layout.ReasonNotOneOf:
		shown := make([]string, len(r.In))
		for i, x := range r.In {
			shown[i] = fmt.Sprintf("%q", x.Str())
		}
		vi.Detail = fmt.Sprintf("field %q is not one of %s: %s", r.Field, strings.Join(shown, ", "), clip(fmt.Sprintf("%q", spanString(s, f))))
	case layout.ReasonUnknown:
		if int(member) >= len(s.Members) {
			return nil, fmt.Errorf("%w: %s: member %d of %d", ErrTrap, v.Name, member, len(s.Members))
		}
		m := s.Members[member]
		vi.Field = m
		vi.Detail = fmt.Sprintf("unknown field %q (allowed: %s)", clip(m), strings.Join(r.Allowed, ", "))
	default:
		return nil, fmt.Errorf("%w: %s: reason %d", ErrTrap, v.Name, reason)
	}
	return vi, nil
}

// clip shortens a text shown in a violation as the interpreter does.
func clip(s string) string {
	if len(s) > 64 {
		return s[:61] + "..."
	}
	return s
}

// Close releases the instance.
func (in *Instance) Close(ctx context.Context) error { return in.mod.Close(ctx) }

// Pool keeps instances of one module for reuse, one caller at a time each.
type Pool struct {
	m    *Module
	mu   sync.Mutex
	free []*Instance
}

// NewPool returns an empty pool of instances of m.
func NewPool(m *Module) *Pool { return &Pool{m: m} }

// Get returns a free instance, instantiating one when none is free.
func (p *Pool) Get(ctx context.Context) (*Instance, error) {
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
	p.mu.Lock()
	p.free = append(p.free, in)
	p.mu.Unlock()
}

// Memory returns the instance's memory, for tests and audits.
func (in *Instance) Memory() api.Memory { return in.mem }
