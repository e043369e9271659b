package codegen

import (
	"errors"
	"fmt"
	"slices"

	"github.com/loglineos/loglineos/internal/lll/abi"
	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/lll/eval/spanfield"
	"github.com/loglineos/loglineos/internal/lll/ir"
	"github.com/loglineos/loglineos/internal/lll/wasm/enc"
	"github.com/loglineos/loglineos/internal/lll/wasm/layout"
)

// Event validators (validators whose input is a derived event, such as
// the quality meter over trajectory_quality) are compiled to one exported
// function each (layout.EventExport), deciding what eval's
// Validator.CheckEventWith decides before it builds the emitted event:
// whether the guard holds, then the check rules in order. The event's
// values the code reads (a member and the path below it: score,
// components.mass) are read from the event table the host writes
// (layout.EventBase, Output.EventFields: each validator's own slots, so
// the host writes only what the validator it runs reads), each as the
// kind the place of the read fixes, as a value below a span's data is: a
// value of another kind (a null score compared) traps with
// layout.TrapUnsupported and the interpreter answers. The kernels of
// expressions (percentile, window_count) are answered by the host between
// runs (package layout, Kernels): a call reads the next answer the host
// wrote, or returns layout.EventKernel with the call's charge point and
// arguments for the host to make it, with the interpreter's arguments; a
// percentile policy value is read as the number it orders as.
//
// The event a validator emits (emit: EVENT with threshold(...)) is not
// compiled: after a run that passes, the host builds it with the
// interpreter's own code (eval's Validator.EmitEvent), continuing the
// run's steps and byte budget, so the emitted event, its kernel calls
// and the steps they count are the interpreter's by construction.
//
// An event validator that uses what is not compiled (require, allow and
// reject unknown fields rules, host calls, a kernel of another result
// than a number, arithmetic over a percentile, a value of the event whose
// kind the expression does not fix) is left out of the module
// (Output.EventsLeft says why) and runs on the interpreter.

// EventValidators returns the validators of p whose input is a derived
// event, the ones Compile tries to compile.
func EventValidators(p *ir.Program) []*ir.Validator {
	var out []*ir.Validator
	for _, v := range p.Validators {
		if !slices.Contains(v.Input, abi.InputSpan) && !slices.Contains(v.Input, abi.InputWebhook) {
			out = append(out, v)
		}
	}
	return out
}

// compileWith compiles p with those of the event validators events that
// compile: each is tried alone first, and one that does not compile
// (ErrUnsupported) is left to the interpreter. When those that compile
// alone do not fit one module together, none is compiled.
func compileWith(p *ir.Program, events []*ir.Validator) (*Output, error) {
	if len(events) == 0 {
		return compileOnly(p, nil)
	}
	if _, err := compileOnly(p, nil); err != nil {
		return nil, err
	}
	left := map[string]string{}
	var ok []*ir.Validator
	for _, v := range events {
		if _, err := compileOnly(p, []*ir.Validator{v}); err != nil {
			if !errors.Is(err, ErrUnsupported) {
				return nil, err
			}
			left[v.Name] = err.Error()
			continue
		}
		ok = append(ok, v)
	}
	out, err := compileOnly(p, ok)
	if errors.Is(err, ErrUnsupported) {
		for _, v := range ok {
			left[v.Name] = err.Error()
		}
		out, err = compileOnly(p, nil)
	}
	if err != nil {
		return nil, err
	}
	if len(left) > 0 {
		out.EventsLeft = left
	}
	return out, nil
}

// eventValidator compiles the body of an event validator's function,
// whose parameters and prologue are a span validator's: its guard (one
// that does not hold returns layout.EventSkipped), then its check rules
// in order, the first that fails returning layout.EventPassed + 1 + its
// index; layout.EventPassed when all pass, with the byte budget left in
// the output (layout.OutBytes), for the emit step to continue
// (layout.EventKernel when a kernel call needs the host's answer, see
// kernel). Before each return it stores the fuel left in the output
// (layout.OutFuel).
func (f *fn) eventValidator() error {
	v, c := f.v, f.c
	prologue(c)
	c.I32Const(0).Index(enc.OpGlobalSet, globalKernel)
	if err := f.guard(layout.EventSkipped); err != nil {
		return err
	}
	for i, r := range v.Rules {
		f.rule = i
		if r.Kind != ir.RuleCheck {
			return fmt.Errorf("%w: rule %q of an event validator at %s", ErrUnsupported, r.Source, r.Pos)
		}
		if err := f.cond(r.Cond); err != nil {
			return err
		}
		c.Op(enc.OpI32Eqz).Block(enc.OpIf, enc.BlockEmpty)
		c.I32Const(layout.OutBase).I32Const(layout.ReasonCheck).Mem(enc.OpI32Store, 2, 0)
		storeFuel(c)
		c.I32Const(int32(layout.EventPassed + 1 + i)).Op(enc.OpReturn)
		c.Op(enc.OpEnd)
	}
	storeFuel(c)
	c.I32Const(layout.OutBase).Index(enc.OpGlobalGet, globalBytes).Mem(enc.OpI64Store, 3, layout.OutBytes)
	c.I32Const(layout.EventPassed)
	return nil
}

// eventExpr compiles what an event validator's expressions read
// differently from a span validator's (the event's values, kernels,
// percentile policy values), and refuses what they must not read as a
// span validator's would; ok is false for the expressions compiled as
// anywhere else.
func (f *fn) eventExpr(e *ir.Expr, hint kind) (_ kind, _ error, ok bool) {
	pct := func(a *ir.Expr) bool { return a.Type.Kind == ir.Percentile }
	switch e.Op {
	case ir.OpField, ir.OpHas:
		k, err := f.eventField(e, hint)
		return k, err, true
	case ir.OpKernel:
		k, err := f.kernel(e)
		return k, err, true
	case ir.OpHost:
		return 0, f.unsupported(e, "a host call in an event validator"), true
	case ir.OpPolicy:
		if v, found := f.g.policyDefault(e); found && v.Kind() == ir.Percentile {
			i, err := f.g.policyRef(e, PolicyRef{Name: e.Name, Path: e.Path, Kind: ir.Percentile})
			if err != nil {
				return 0, err, true
			}
			f.charge(e)
			f.c.I32Const(layout.EnvBase).Mem(enc.OpI64Load, 3, layout.EnvPolicies+8*i)
			return kNum, nil, true
		}
	case ir.OpAdd, ir.OpSub, ir.OpMul, ir.OpDiv, ir.OpNeg:
		// A percentile is a number to the interpreter's arithmetic, but
		// its faults word it as a percentile.
		if slices.ContainsFunc(e.Args, pct) {
			return 0, f.unsupported(e, "arithmetic over a percentile"), true
		}
	case ir.OpIn:
		if len(e.Args) == 2 && e.Args[1].Op == ir.OpField {
			return 0, f.unsupported(e, "in over a value of the event"), true
		}
	case ir.OpCall:
		if a := e.Args; e.Name == "len" && len(a) == 1 && a[0].Op == ir.OpField && len(a[0].Path) == 0 && spanfield.Of(a[0].Name) == spanfield.ConfirmedBy {
			return 0, f.unsupported(e, "len of the event's "+a[0].Name), true
		}
	}
	return 0, nil, false
}

// eventField compiles a value of the event (member.path...) or has of
// it, as eval reads it: a step, then the member walked down the path
// (null when absent). The value is read from its slot of the event table
// as the kind hint the place of the read wants; a value of another kind
// traps with layout.TrapUnsupported.
func (f *fn) eventField(e *ir.Expr, hint kind) (kind, error) {
	want := map[kind][]ir.Kind{kNum: {ir.Number}, kBool: {ir.Bool}, kStr: {ir.String, ir.Null}, kDur: {ir.Duration}, kTime: {ir.Timestamp}}[hint]
	if e.Op == ir.OpField && want == nil {
		return 0, f.unsupported(e, "a value of the event whose kind the expression does not fix")
	}
	i, err := f.eventRef(append([]string{e.Name}, e.Path...), e.Pos)
	if err != nil {
		return 0, err
	}
	c := f.c
	f.charge(e)
	slot := int32(layout.EventSlots + layout.SlotSize*i)
	c.I32Const(slot).Mem(enc.OpI32Load8U, 0, layout.SlotKind)
	if e.Op == ir.OpHas {
		c.I32Const(int32(ir.Null)).Op(enc.OpI32Ne)
		return kBool, nil
	}
	f.trapUnlessKind(want, false)
	switch hint {
	case kStr:
		c.I32Const(slot).Mem(enc.OpI64Load, 2, layout.SlotLen) // length | offset<<32
	case kBool:
		c.I32Const(slot).Mem(enc.OpI64Load, 3, layout.SlotValue).Op(enc.OpI32WrapI64)
	default:
		c.I32Const(slot).Mem(enc.OpI64Load, 3, layout.SlotValue)
	}
	return hint, nil
}

// eventRef returns the slot of the event's value at path (a member and
// the keys below it) in the validator's event table, giving it the next
// at its first use.
func (f *fn) eventRef(path []string, pos string) (uint32, error) {
	for i, p := range f.fields {
		if slices.Equal(p, path) {
			return uint32(i), nil
		}
	}
	if len(f.fields) == layout.EventMaxFields {
		return 0, fmt.Errorf("%w: over %d values of the event at %s", ErrUnsupported, layout.EventMaxFields, pos)
	}
	f.fields = append(f.fields, path)
	return uint32(len(f.fields) - 1), nil
}

// IsExprKernel reports whether name is a kernel of expressions
// (percentile, window_count), which the host answers between runs of an
// event validator (see package layout, Kernels); the kernels of emit and
// derive steps are not the module's.
func IsExprKernel(name string) bool {
	f := abi.Funcs()[name]
	return f.Kind == "kernel" && slices.Contains(f.Where, abi.InExpr)
}

// kernel compiles a kernel call of an expression as eval does: a step;
// the byte budget charged SliceBytes + ValueBytes an argument; the
// arguments (numbers or strings, as the kernel's parameters are) in
// order; the call's answer, which the host wrote (layout's Kernels: the
// k-th call of the run reads the k-th answer; without it the validator
// stores the call's charge point, its arguments and the fuel left and
// returns layout.EventKernel for the host to make the call and run it
// again); then ValueBytes charged for the number it returns. The kinds
// of the arguments are in the call's charge point (Point.Kinds), its
// name in Point.Name.
func (f *fn) kernel(e *ir.Expr) (kind, error) {
	def := abi.Funcs()[e.Name]
	if !IsExprKernel(e.Name) {
		return 0, f.unsupported(e, "the kernel "+e.Name)
	}
	if def.Variadic || len(e.Args) != len(def.Params) || len(e.Args) > 2 {
		return 0, f.unsupported(e, fmt.Sprintf("%s with %d arguments", e.Name, len(e.Args)))
	}
	if def.Result.Kind != ir.Number {
		return 0, f.unsupported(e, "the kernel "+e.Name+", whose value is not a number")
	}
	if f.kernels++; f.kernels > layout.EventMaxKernels {
		return 0, f.unsupported(e, fmt.Sprintf("over %d kernel calls in one validator", layout.EventMaxKernels))
	}
	c := f.c
	pt := f.charge(e)
	f.g.out.Points[pt].Name = e.Name
	f.chargeBytes(pt, func() { c.I64Const(eval.SliceBytes + eval.ValueBytes*int64(len(e.Args))) })
	args := make([]uint32, len(e.Args))
	for i, a := range e.Args {
		var want kind
		switch def.Params[i].Kind {
		case ir.Number:
			want = kNum
		case ir.String:
			want = kStr
		default:
			return 0, f.unsupported(a, "an argument of "+e.Name+" of kind "+def.Params[i].Kind.String())
		}
		k, err := f.exprAs(a, want)
		if err != nil {
			return 0, err
		}
		if k != want {
			return 0, f.unsupported(a, "an argument of "+e.Name+" of another kind than its parameter")
		}
		f.g.out.Points[pt].Kinds[i] = want.irKind()
		args[i] = f.local(enc.I64)
		c.LocalSet(args[i])
	}
	// The answer, when the host wrote it: the next one.
	c.Index(enc.OpGlobalGet, globalKernel).I32Const(layout.EventBase).Mem(enc.OpI32Load, 2, 4).Op(enc.OpI32LtU)
	c.Block(enc.OpIf, enc.BlockI64)
	c.Index(enc.OpGlobalGet, globalKernel).I32Const(3).Op(enc.OpI32Shl).Mem(enc.OpI64Load, 3, layout.EventKernels)
	c.Index(enc.OpGlobalGet, globalKernel).I32Const(1).Op(enc.OpI32Add).Index(enc.OpGlobalSet, globalKernel)
	c.Op(enc.OpElse)
	// Else the call, for the host to make.
	c.I32Const(layout.OutBase).I32Const(int32(pt)).Mem(enc.OpI32Store, 2, 4)
	for i, l := range args {
		c.I32Const(layout.OutBase).LocalGet(l).Mem(enc.OpI64Store, 3, uint32(layout.OutA+8*i))
	}
	storeFuel(c)
	c.I32Const(layout.EventKernel).Op(enc.OpReturn)
	c.Op(enc.OpEnd)
	v := f.local(enc.I64)
	c.LocalSet(v)
	f.chargeBytes(pt, func() { c.I64Const(eval.ValueBytes) })
	c.LocalGet(v)
	return kNum, nil
}
