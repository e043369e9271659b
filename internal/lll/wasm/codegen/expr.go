package codegen

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/lll/eval/spanfield"
	"github.com/loglineos/loglineos/internal/lll/ir"
	"github.com/loglineos/loglineos/internal/lll/wasm/enc"
	"github.com/loglineos/loglineos/internal/lll/wasm/layout"
)

// Point is a place where a module charges fuel: an expression of a
// validator's guard or check rule, at which the interpreter counts a step.
// When the fuel runs out there, the module leaves the point's index in the
// second output word (layout.TrapFuel), and the host words the violation
// with the point's position, as the interpreter does.
type Point struct {
	Validator string `json:"validator"`
	// Router is the router of a point of a route (Validator is then
	// empty, and Rule the index of the route in the router).
	Router string `json:"router,omitempty"`
	Rule   int    `json:"rule"`           // the index of the rule; -1: the guard
	Pos    string `json:"pos"`            // the expression's position
	Op     ir.Op  `json:"op"`             // the expression's operator (to word a fault there)
	Name   string `json:"name,omitempty"` // the builtin's name, for a call
	// Kinds are the kinds of the operands of an arithmetic operator (a
	// number when zero), to word a fault there.
	Kinds [2]ir.Kind `json:"kinds"`
}

// maxNodes bounds the expressions of one validator (and so the size of
// its code).
const maxNodes = 4096

// kind is the static kind of an expression's value in the subset compiled,
// and its representation on the stack:
//
//	kBool  i32 0 or 1
//	kNum   i64 millionths (a number; never null)
//	kStr   i64 offset<<32 | length of a string in memory, or strNull
//	kDur   i64 nanoseconds
//	kTime  i64 Unix nanoseconds
type kind uint8

const (
	kBool kind = iota + 1
	kNum
	kStr
	kDur  // i64 nanoseconds (a duration; never null)
	kTime // i64 Unix nanoseconds (a timestamp; never null)
	// kAny is a value of any kind a host call returned, which the module
	// only passes on (an action's argument): i64 its index in the host's
	// table of the run's values.
	kAny
)

// irKind is the interpreter's kind of a value of kind k.
func (k kind) irKind() ir.Kind {
	return [...]ir.Kind{kBool: ir.Bool, kNum: ir.Number, kStr: ir.String, kDur: ir.Duration, kTime: ir.Timestamp, kAny: ir.Any}[k]
}

// strNull is the null of a kStr: no string starts at offset 2^32-1.
const strNull = -1 << 32

func (k kind) valType() enc.ValType {
	if k == kBool {
		return enc.I32
	}
	return enc.I64
}

// fn compiles the expressions of one validator's or router's function.
type fn struct {
	g      *gen
	v      *ir.Validator // the validator, or nil
	router *ir.Router    // the router, or nil
	name   string        // the validator's or router's name
	c      *enc.Code
	rule   int           // the rule whose expression is compiled; -1: the guard
	locals []enc.ValType // the function's locals after its parameters; the first is the member index of reject unknown fields (localMember)
	nodes  int
	event  bool // an event validator's: fields are the event's (event.go)
	// fields are the values of the event an event validator reads, by
	// slot, and kernels its kernel calls so far.
	fields  [][]string
	kernels int
}

// The locals of a validator's function: its parameters, the fuel and the
// byte budget, then the member index of reject unknown fields, then those
// expressions take (fn.local).
const (
	localFuel   = 0
	localBytes  = 1
	localMember = 2
)

func (f *fn) local(t enc.ValType) uint32 {
	f.locals = append(f.locals, t)
	return uint32(len(f.locals)-1) + localMember
}

func (f *fn) unsupported(e *ir.Expr, what string) error {
	return fmt.Errorf("%w: %s at %s", ErrUnsupported, what, e.Pos)
}

// charge emits the interpreter's step at e: fuel -= 1; if fuel < 0, the
// point's index in the second output word, trap = TrapFuel, unreachable.
// It returns the point's index.
func (f *fn) charge(e *ir.Expr) uint32 {
	i := uint32(len(f.g.out.Points))
	pt := f.point(f.rule, e.Pos)
	pt.Op = e.Op
	if e.Op == ir.OpCall {
		pt.Name = e.Name
	}
	f.g.out.Points = append(f.g.out.Points, pt)
	c := f.c
	c.Index(enc.OpGlobalGet, globalFuel).I64Const(1).Op(enc.OpI64Sub).Index(enc.OpGlobalSet, globalFuel)
	c.Index(enc.OpGlobalGet, globalFuel).I64Const(0).Op(enc.OpI64LtS).Block(enc.OpIf, enc.BlockEmpty)
	c.I32Const(layout.OutBase).I32Const(int32(i)).Mem(enc.OpI32Store, 2, 4)
	c.I32Const(layout.TrapFuel).Index(enc.OpGlobalSet, globalTrap).Op(enc.OpUnreachable)
	c.Op(enc.OpEnd)
	return i
}

// chargeBytes emits the interpreter's charge of its byte budget at the
// charge point pt, of the bytes n pushes (an i64): bytes -= n; if bytes <
// 0, pt in the second output word and FaultBytes.
func (f *fn) chargeBytes(pt uint32, n func()) {
	c := f.c
	c.Index(enc.OpGlobalGet, globalBytes)
	n()
	c.Op(enc.OpI64Sub).Index(enc.OpGlobalSet, globalBytes)
	c.Index(enc.OpGlobalGet, globalBytes).I64Const(0).Op(enc.OpI64LtS).Block(enc.OpIf, enc.BlockEmpty)
	c.I32Const(layout.OutBase).I32Const(int32(pt)).Mem(enc.OpI32Store, 2, 4)
	fault(c, layout.FaultBytes)
	c.Op(enc.OpEnd)
}

// cond compiles a guard or a check's condition, which must be a bool.
func (f *fn) cond(e *ir.Expr) error {
	k, err := f.exprAs(e, kBool)
	if err != nil {
		return err
	}
	if k != kBool {
		return f.unsupported(e, "a condition that is not a bool")
	}
	return nil
}

// stringArg compiles the step of e (len, lower, upper, matches) and its
// first operand, which must be a string, returning the step's charge
// point.
func (f *fn) stringArg(e *ir.Expr, what string) (uint32, error) {
	pt := f.charge(e)
	k, err := f.exprAs(e.Args[0], kStr)
	if err != nil {
		return 0, err
	}
	if k != kStr {
		return 0, f.unsupported(e, what+" of what is not a string")
	}
	return pt, nil
}

// staticKind is the kind of e's value the checker's type fixes, 0 for a
// value known only at run time (data.PATH) or of a kind not compiled.
func staticKind(e *ir.Expr) kind {
	switch e.Type.Kind {
	case ir.Number:
		return kNum
	case ir.String:
		return kStr
	case ir.Bool:
		return kBool
	case ir.Duration:
		return kDur
	case ir.Timestamp:
		return kTime
	}
	return 0
}

// exprAs compiles e, charging fuel where and in the order the interpreter
// counts steps (eval's fr.step: every operator but not, and, or and neg
// counts one before its operands), and returns the kind of its value. A
// value known only at run time (data.PATH) is compiled as the kind hint
// the place of e wants (0: none).
func (f *fn) exprAs(e *ir.Expr, hint kind) (kind, error) {
	if f.nodes++; f.nodes > maxNodes {
		return 0, f.unsupported(e, fmt.Sprintf("over %d expression nodes in one validator", maxNodes))
	}
	c := f.c
	if f.event {
		if k, err, ok := f.eventExpr(e, hint); ok {
			return k, err
		}
	}
	switch e.Op {
	case ir.OpConst:
		if e.Value == nil {
			return 0, f.unsupported(e, "a constant without a value")
		}
		f.charge(e)
		return f.value(e, *e.Value)
	case ir.OpSymbol:
		f.charge(e)
		return f.value(e, ir.StringValue(e.Name))
	case ir.OpField, ir.OpHas:
		sf := spanfield.Of(e.Name)
		if sf == spanfield.Data && len(e.Path) > 0 {
			return f.data(e, hint)
		}
		if len(e.Path) > 0 || sf == spanfield.None {
			return 0, f.unsupported(e, "a field that is not a top-level span field")
		}
		if e.Op == ir.OpField && sf == spanfield.When {
			// A valid when is its instant; an absent, empty or invalid
			// one (null, or the interpreter's LLL102) is the
			// interpreter's to answer.
			f.charge(e)
			slot := int32(layout.Slot(sf))
			c.I32Const(slot).Mem(enc.OpI32Load8U, 0, layout.SlotFlags).I32Const(layout.FlagTime).Op(enc.OpI32And).Op(enc.OpI32Eqz)
			c.Block(enc.OpIf, enc.BlockEmpty)
			trapUnsupported(c)
			c.Op(enc.OpEnd)
			c.I32Const(slot).Mem(enc.OpI64Load, 3, layout.SlotValue)
			return kTime, nil
		}
		if e.Op == ir.OpField && !sf.IsString() {
			return 0, f.unsupported(e, "the value of field "+e.Name)
		}
		f.charge(e)
		// The member flag: the span has the member (a string field that is
		// not a member is empty, and null).
		c.I32Const(int32(layout.Slot(sf))).Mem(enc.OpI32Load8U, 0, layout.SlotFlags).I32Const(layout.FlagMember).Op(enc.OpI32And)
		if e.Op == ir.OpHas {
			c.I32Const(0).Op(enc.OpI32Ne)
			return kBool, nil
		}
		f.g.strings |= 1 << sf
		c.Block(enc.OpIf, enc.BlockI64)
		c.I32Const(int32(layout.Slot(sf))).Mem(enc.OpI64Load, 2, layout.SlotLen) // length | offset<<32
		c.Op(enc.OpElse).I64Const(strNull).Op(enc.OpEnd)
		return kStr, nil
	case ir.OpFeature:
		bit, err := f.g.feature(e)
		if err != nil {
			return 0, err
		}
		f.charge(e)
		c.I32Const(layout.EnvBase).Mem(enc.OpI32Load, 2, 0).I32Const(int32(bit)).Op(enc.OpI32ShrU).I32Const(1).Op(enc.OpI32And)
		return kBool, nil
	case ir.OpPolicy:
		i, k, err := f.g.policy(e)
		if err != nil {
			return 0, err
		}
		f.charge(e)
		c.I32Const(layout.EnvBase).Mem(enc.OpI64Load, 3, layout.EnvPolicies+8*i)
		if k == kBool {
			c.Op(enc.OpI32WrapI64)
		}
		return k, nil
	case ir.OpNot:
		if len(e.Args) != 1 {
			return 0, f.unsupported(e, "not without one operand")
		}
		if err := f.cond(e.Args[0]); err != nil {
			return 0, err
		}
		c.Op(enc.OpI32Eqz)
		return kBool, nil
	case ir.OpAnd, ir.OpOr:
		if len(e.Args) != 2 {
			return 0, f.unsupported(e, string(e.Op)+" without two operands")
		}
		if err := f.cond(e.Args[0]); err != nil {
			return 0, err
		}
		c.Block(enc.OpIf, enc.BlockI32)
		if e.Op == ir.OpOr {
			c.I32Const(1).Op(enc.OpElse)
		}
		if err := f.cond(e.Args[1]); err != nil {
			return 0, err
		}
		if e.Op == ir.OpAnd {
			c.Op(enc.OpElse).I32Const(0)
		}
		c.Op(enc.OpEnd)
		return kBool, nil
	case ir.OpEq, ir.OpNe, ir.OpLt, ir.OpLe, ir.OpGt, ir.OpGe:
		pt, a, b, err := f.binary(e)
		if err != nil {
			return 0, err
		}
		switch e.Op {
		case ir.OpEq, ir.OpNe:
			f.equal(a, b)
			if e.Op == ir.OpNe {
				c.Op(enc.OpI32Eqz)
			}
			return kBool, nil
		}
		if a == kStr && b == kStr {
			f.strOrder(e.Op, pt)
			return kBool, nil
		}
		if a != b || a != kNum && a != kDur && a != kTime {
			return 0, f.unsupported(e, "an order of values that are not both numbers, durations, timestamps or strings")
		}
		num, _ := order(e.Op)
		c.Op(num)
		return kBool, nil
	case ir.OpIn:
		return f.in(e)
	case ir.OpMatches:
		return f.matches(e)
	case ir.OpNeg:
		if len(e.Args) != 1 {
			return 0, f.unsupported(e, "neg without one operand")
		}
		k, err := f.exprAs(e.Args[0], kNum)
		if err != nil {
			return 0, err
		}
		if k != kNum && k != kDur {
			return 0, f.unsupported(e, "neg of what is not a number or a duration")
		}
		// The interpreter negates without a check (its -x wraps), and so
		// does x * -1.
		c.I64Const(-1).Op(enc.OpI64Mul)
		return k, nil
	case ir.OpAdd, ir.OpSub, ir.OpMul, ir.OpDiv:
		return f.arith(e)
	case ir.OpHost:
		return f.host(e, hint)
	case ir.OpCall:
		if (e.Name == "lower" || e.Name == "upper") && len(e.Args) == 1 {
			return f.caseOf(e)
		}
		if e.Name != "len" || len(e.Args) != 1 {
			return 0, f.unsupported(e, "the builtin "+e.Name)
		}
		if a := e.Args[0]; a.Op == ir.OpField && len(a.Path) == 0 && spanfield.Of(a.Name) == spanfield.ConfirmedBy {
			return f.lenConfirmedBy(e)
		}
		if _, err := f.stringArg(e, "len"); err != nil {
			return 0, err
		}
		// null's length field is 0, as len(null) is.
		c.Op(enc.OpI32WrapI64).Op(enc.OpI64ExtendU).I64Const(ir.NumberScale).Op(enc.OpI64Mul)
		return kNum, nil
	}
	return 0, f.unsupported(e, "the operator "+string(e.Op))
}

// value pushes a constant.
func (f *fn) value(e *ir.Expr, v ir.Value) (kind, error) {
	switch v.Kind() {
	case ir.Bool:
		f.c.I32Const(int32(v.Micros()))
		return kBool, nil
	case ir.Number:
		f.c.I64Const(v.Micros())
		return kNum, nil
	case ir.String:
		off := f.g.consts.place(v.Str())
		f.c.I64Const(int64(off)<<32 | int64(len(v.Str())))
		return kStr, nil
	case ir.Duration:
		f.c.I64Const(v.Micros())
		return kDur, nil
	case ir.Timestamp:
		f.c.I64Const(v.Micros())
		return kTime, nil
	}
	return 0, f.unsupported(e, "a constant of kind "+v.Kind().String())
}

// equal compares the two values on the stack, of kinds a and b, as
// ir.Value.Equal does: values of different kinds are never equal (a null
// string and a number, a string and a bool).
func (f *fn) equal(a, b kind) {
	c := f.c
	switch {
	case a != b:
		c.Op(enc.OpDrop).Op(enc.OpDrop).I32Const(0)
	case a == kBool:
		c.Op(enc.OpI32Eq)
	case a == kStr:
		c.Index(enc.OpCall, f.g.strEqual())
	default:
		c.Op(enc.OpI64Eq)
	}
}

// in compiles x in [e1, ...]: the interpreter counts a step for in, then
// those of x, one for the list, those of each element (all evaluated),
// and then looks for x among them.
func (f *fn) in(e *ir.Expr) (kind, error) {
	if len(e.Args) == 2 && e.Args[1].Op == ir.OpField && len(e.Args[1].Path) == 0 && spanfield.Of(e.Args[1].Name) == spanfield.ConfirmedBy {
		return f.inConfirmedBy(e)
	}
	if len(e.Args) == 2 && e.Args[1].Op == ir.OpPolicy {
		return f.inPolicy(e)
	}
	if len(e.Args) != 2 || e.Args[1].Op != ir.OpList {
		return 0, f.unsupported(e, "in over what is not a list literal, confirmed_by or a policy value")
	}
	c := f.c
	f.charge(e)
	hint := kind(0)
	for _, el := range e.Args[1].Args {
		if hint = staticKind(el); hint != 0 {
			break
		}
	}
	k, err := f.exprAs(e.Args[0], hint)
	if err != nil {
		return 0, err
	}
	x := f.local(k.valType())
	c.LocalSet(x)
	f.nodes++
	list := f.charge(e.Args[1])
	f.chargeBytes(list, func() { c.I64Const(eval.ValueBytes + eval.SliceBytes + eval.ValueBytes*int64(len(e.Args[1].Args))) })
	found := f.local(enc.I32)
	c.I32Const(0).LocalSet(found)
	for _, el := range e.Args[1].Args {
		c.LocalGet(x)
		ek, err := f.exprAs(el, k)
		if err != nil {
			return 0, err
		}
		f.equal(k, ek)
		c.LocalGet(found).Op(enc.OpI32Or).LocalSet(found)
	}
	c.LocalGet(found)
	return kBool, nil
}

// inConfirmedBy compiles x in confirmed_by as eval does: a step for in,
// those of x, one for the field; a span with confirmed_by has the
// interpreter make the list, charging ValueBytes + SliceBytes + ValueBytes
// a string; x is looked for among its strings (none without it: in of
// null is false), which the host writes in the input region when the
// module reads them (Output.ConfirmedBy).
func (f *fn) inConfirmedBy(e *ir.Expr) (kind, error) {
	c := f.c
	x, err := f.needle(e, kStr)
	if err != nil {
		return 0, err
	}
	f.makeConfirmedBy(f.charge(e.Args[1]))
	f.g.out.ConfirmedBy = true
	slot := int32(layout.Slot(spanfield.ConfirmedBy))
	addr, count := f.local(enc.I32), f.local(enc.I32)
	c.I32Const(slot).Mem(enc.OpI32Load, 2, layout.SlotOffset).LocalSet(addr)
	c.I32Const(slot).Mem(enc.OpI32Load, 2, layout.SlotLen).LocalSet(count)
	f.scan(x, kStr, addr, count)
	return kBool, nil
}

// inPolicy compiles x in policy.NAME.KEY, a policy value that is a list
// of strings or of numbers, as eval does: a step for in, those of x, one
// for the policy value; x is looked for among the list's values, which
// the host writes in the env region (none for null: in of null is false).
func (f *fn) inPolicy(e *ir.Expr) (kind, error) {
	c := f.c
	i, k, err := f.g.policyList(e.Args[1])
	if err != nil {
		return 0, err
	}
	x, err := f.needle(e, k)
	if err != nil {
		return 0, err
	}
	f.charge(e.Args[1])
	v, addr, count := f.local(enc.I64), f.local(enc.I32), f.local(enc.I32)
	c.I32Const(layout.EnvBase).Mem(enc.OpI64Load, 3, layout.EnvPolicies+8*i).LocalSet(v)
	c.LocalGet(v).I64Const(32).Op(enc.OpI64ShrU).Op(enc.OpI32WrapI64).LocalSet(addr)
	c.LocalGet(v).Op(enc.OpI32WrapI64).LocalSet(count)
	f.scan(x, k, addr, count)
	return kBool, nil
}

// needle compiles the step of in and its left operand, which must be of
// kind want, into a local it returns.
func (f *fn) needle(e *ir.Expr, want kind) (uint32, error) {
	f.charge(e)
	k, err := f.exprAs(e.Args[0], want)
	if err != nil {
		return 0, err
	}
	if k != want {
		return 0, f.unsupported(e, "in over a list of values of another kind")
	}
	x := f.local(k.valType())
	f.c.LocalSet(x)
	f.nodes++ // the list's node
	return x, nil
}

// makeConfirmedBy emits the interpreter's making of the list of
// confirmed_by when the span has it, at the charge point pt of the field:
// it charges ValueBytes + SliceBytes + ValueBytes a string.
func (f *fn) makeConfirmedBy(pt uint32) {
	c := f.c
	slot := int32(layout.Slot(spanfield.ConfirmedBy))
	c.I32Const(slot).Mem(enc.OpI32Load8U, 0, layout.SlotKind).I32Const(layout.KindStrings).Op(enc.OpI32Eq).Block(enc.OpIf, enc.BlockEmpty)
	f.chargeBytes(pt, func() {
		c.I32Const(slot).Mem(enc.OpI32Load, 2, layout.SlotLen).Op(enc.OpI64ExtendU).I64Const(eval.ValueBytes).Op(enc.OpI64Mul)
		c.I64Const(eval.ValueBytes + eval.SliceBytes).Op(enc.OpI64Add)
	})
	c.Op(enc.OpEnd)
}

// scan emits the search of the value in local x, of kind k, among the
// count i64 values of kind k at addr (locals, which it consumes), as
// ir.Value.Equal compares them, and pushes whether it is there.
func (f *fn) scan(x uint32, k kind, addr, count uint32) {
	c := f.c
	found := f.local(enc.I32)
	c.I32Const(0).LocalSet(found)
	c.Block(enc.OpBlock, enc.BlockEmpty).Block(enc.OpLoop, enc.BlockEmpty)
	c.LocalGet(count).Op(enc.OpI32Eqz).Index(enc.OpBrIf, 1)
	c.LocalGet(x).LocalGet(addr).Mem(enc.OpI64Load, 3, 0)
	f.equal(k, k)
	c.Block(enc.OpIf, enc.BlockEmpty).I32Const(1).LocalSet(found).Index(enc.OpBr, 2).Op(enc.OpEnd)
	c.LocalGet(addr).I32Const(8).Op(enc.OpI32Add).LocalSet(addr)
	c.LocalGet(count).I32Const(1).Op(enc.OpI32Sub).LocalSet(count).Index(enc.OpBr, 0)
	c.Op(enc.OpEnd).Op(enc.OpEnd)
	c.LocalGet(found)
}

// strEqual returns the index of the function (i64 a, i64 b) -> i32 that
// compares two kStr values as ir.Value.Equal does, adding it to the
// module at its first use.
func (g *gen) strEqual() uint32 {
	if g.strEq == 0 {
		g.m.Types = append(g.m.Types, enc.FuncType{Params: []enc.ValType{enc.I64, enc.I64}, Results: []enc.ValType{enc.I32}})
		var c enc.Code
		// The same bits: both null, or the same bytes.
		c.LocalGet(0).LocalGet(1).Op(enc.OpI64Eq).Block(enc.OpIf, enc.BlockEmpty).I32Const(1).Op(enc.OpReturn).Op(enc.OpEnd)
		// One null: not equal.
		for _, l := range []uint32{0, 1} {
			c.LocalGet(l).I64Const(32).Op(enc.OpI64ShrU).I64Const(0xffffffff).Op(enc.OpI64Eq).
				Block(enc.OpIf, enc.BlockEmpty).I32Const(0).Op(enc.OpReturn).Op(enc.OpEnd)
		}
		for _, l := range []uint32{0, 1} {
			c.LocalGet(l).I64Const(32).Op(enc.OpI64ShrU).Op(enc.OpI32WrapI64)
			c.LocalGet(l).Op(enc.OpI32WrapI64)
		}
		c.Index(enc.OpCall, g.streq)
		g.later = append(g.later, enc.Func{Type: uint32(len(g.m.Types) - 1), Body: c})
		g.strEq = g.nextFunc
		g.nextFunc++
	}
	return g.strEq
}

// binary compiles the step of a binary operator and its two operands,
// returning the step's charge point and the operands' kinds.
func (f *fn) binary(e *ir.Expr) (pt uint32, a, b kind, err error) {
	if len(e.Args) != 2 {
		return 0, 0, 0, f.unsupported(e, string(e.Op)+" without two operands")
	}
	pt = f.charge(e)
	ha, hb := staticKind(e.Args[0]), staticKind(e.Args[1])
	switch {
	case ha == 0 && hb == 0 && (e.Op == ir.OpAdd || e.Op == ir.OpSub || e.Op == ir.OpMul || e.Op == ir.OpDiv):
		// Arithmetic of two values known only at run time: the checker
		// types it a number.
		ha, hb = staticKind(e), staticKind(e)
	case ha == 0:
		ha = hb
	case hb == 0:
		hb = ha
	}
	if e.Op == ir.OpMul || e.Op == ir.OpDiv { // a duration times or over a number
		if ha == kDur && staticKind(e.Args[1]) == 0 {
			hb = kNum
		}
		if hb == kDur && staticKind(e.Args[0]) == 0 {
			ha = kNum
		}
	}
	if a, err = f.exprAs(e.Args[0], ha); err != nil {
		return 0, 0, 0, err
	}
	if b, err = f.exprAs(e.Args[1], hb); err != nil {
		return 0, 0, 0, err
	}
	return pt, a, b, nil
}

// operands stores the two values on the stack in the output (and leaves
// them in locals x and y) with the charge point pt, for the host to word a
// fault at pt.
func (f *fn) operands(pt uint32) (x, y uint32) {
	c := f.c
	x, y = f.local(enc.I64), f.local(enc.I64)
	c.LocalSet(y).LocalSet(x)
	c.I32Const(layout.OutBase).LocalGet(x).Mem(enc.OpI64Store, 3, layout.OutA)
	c.I32Const(layout.OutBase).LocalGet(y).Mem(enc.OpI64Store, 3, layout.OutB)
	c.I32Const(layout.OutBase).I32Const(int32(pt)).Mem(enc.OpI32Store, 2, 4)
	return x, y
}

// strOrder compiles <, <=, >, >= over the two strings on the stack as
// eval's compare does: strings.Compare of their bytes; a null on either
// side cannot be ordered (FaultOrder, the interpreter's LLL102).
func (f *fn) strOrder(op ir.Op, pt uint32) {
	c := f.c
	x, y := f.operands(pt)
	f.eitherNull(x, y, layout.FaultOrder)
	for _, l := range []uint32{x, y} {
		c.LocalGet(l).I64Const(32).Op(enc.OpI64ShrU).Op(enc.OpI32WrapI64)
		c.LocalGet(l).Op(enc.OpI32WrapI64)
	}
	_, str := order(op)
	c.Index(enc.OpCall, f.g.strCompare()).I32Const(0).Op(str)
}

// eitherNull traps with the fault when the string in local x or y is
// null.
func (f *fn) eitherNull(x, y uint32, fl int32) {
	c := f.c
	// Offsets are below 2^32-1, and below 2^18, so the high words' or is
	// all ones only with a null.
	c.LocalGet(x).LocalGet(y).Op(enc.OpI64Or).I64Const(32).Op(enc.OpI64ShrU).I64Const(0xffffffff).Op(enc.OpI64Eq)
	c.Block(enc.OpIf, enc.BlockEmpty)
	fault(c, fl)
	c.Op(enc.OpEnd)
}

// strLen pushes the length of the string in local x, as an i64.
func (f *fn) strLen(x uint32) {
	f.c.LocalGet(x).Op(enc.OpI32WrapI64).Op(enc.OpI64ExtendU)
}

// caseOf compiles lower(x) and upper(x) as eval's builtin does: a step,
// those of x; a null x fails (FaultType, the interpreter's "lower of a
// null"); the byte budget is charged ValueBytes + 3 bytes a byte of x;
// then the helper writes the case of x in the scratch region, as
// strings.ToLower and strings.ToUpper write it.
func (f *fn) caseOf(e *ir.Expr) (kind, error) {
	c := f.c
	pt, err := f.stringArg(e, e.Name)
	if err != nil {
		return 0, err
	}
	c.I64Const(strNull)
	x, _ := f.operands(pt)
	f.eitherNull(x, x, layout.FaultType)
	f.chargeBytes(pt, func() {
		f.strLen(x)
		c.I64Const(3).Op(enc.OpI64Mul).I64Const(eval.ValueBytes).Op(enc.OpI64Add)
	})
	upper := int32(0)
	if e.Name == "upper" {
		upper = 1
	}
	c.LocalGet(x).I32Const(upper).Index(enc.OpCall, f.g.caseHelper())
	return kStr, nil
}

// concat compiles a + b over strings as eval does: after the step and the
// operands, a null among them fails (FaultType, "cannot + null and
// string"), else the byte budget is charged ValueBytes + the bytes of
// both and the helper writes them one after the other in the scratch
// region.
func (f *fn) concat(pt uint32) {
	c := f.c
	x, y := f.operands(pt)
	f.eitherNull(x, y, layout.FaultType)
	f.chargeBytes(pt, func() {
		f.strLen(x)
		f.strLen(y)
		c.Op(enc.OpI64Add).I64Const(eval.ValueBytes).Op(enc.OpI64Add)
	})
	c.LocalGet(x).LocalGet(y).Index(enc.OpCall, f.g.concatHelper())
}

// packStr pushes the string of the i32 locals off and n: off<<32 | n.
func packStr(c *enc.Code, off, n uint32) {
	c.LocalGet(off).Op(enc.OpI64ExtendU).I64Const(32).Op(enc.OpI64Shl).LocalGet(n).Op(enc.OpI64ExtendU).Op(enc.OpI64Or)
}

// trapUnsupported emits the trap of an input the module does not handle.
func trapUnsupported(c *enc.Code) {
	c.I32Const(layout.TrapUnsupported).Index(enc.OpGlobalSet, globalTrap).Op(enc.OpUnreachable)
}

// scratch emits the reservation of the i32 bytes n pushes in the scratch
// region, leaving their address in local dst; when they do not fit, the
// module traps with layout.TrapUnsupported.
func scratch(c *enc.Code, n func(), dst uint32) {
	c.Index(enc.OpGlobalGet, globalScratch).LocalSet(dst)
	c.LocalGet(dst)
	n()
	c.Op(enc.OpI32Add).I32Const(layout.ScratchBase+layout.ScratchSize).Op(enc.OpI32GtU).Block(enc.OpIf, enc.BlockEmpty)
	trapUnsupported(c)
	c.Op(enc.OpEnd)
	c.LocalGet(dst)
	n()
	c.Op(enc.OpI32Add).Index(enc.OpGlobalSet, globalScratch)
}

// caseHelper returns the index of the function (i64 x, i32 upper) -> i64
// that writes the lower (upper: the upper) case of the string x in the
// scratch region as strings.ToLower and strings.ToUpper write it: each
// rune mapped as unicode.ToLower and unicode.ToUpper map it (ASCII by
// its letters, other runes by the table of unicode.CaseRanges the module
// carries, caseTable), an invalid byte written as U+FFFD, runes encoded
// as utf8.EncodeRune encodes them. It reserves 3 bytes a byte of x (what
// the interpreter charges; layout.TrapUnsupported when they do not fit)
// and gives back what it does not use. It is added at its first use.
func (g *gen) caseHelper() uint32 {
	if g.caseFn != 0 {
		return g.caseFn
	}
	table, entries := g.caseTable()
	decode := g.decodeRune()
	const (
		x, upper         = 0, 1
		ptr, n, dst, o   = 2, 3, 4, 5 // the input left, the output's start and end
		b, r, lo, hi, at = 6, 7, 8, 9, 10
		dec              = 11
	)
	var c enc.Code
	c.LocalGet(x).I64Const(32).Op(enc.OpI64ShrU).Op(enc.OpI32WrapI64).LocalSet(ptr)
	c.LocalGet(x).Op(enc.OpI32WrapI64).LocalSet(n)
	scratch(&c, func() { c.LocalGet(n).I32Const(3).Op(enc.OpI32Mul) }, dst)
	c.LocalGet(dst).LocalSet(o)
	store := func(off uint32, value func()) {
		c.LocalGet(o)
		value()
		c.Mem(enc.OpI32Store8, 0, off)
	}
	c.Block(enc.OpBlock, enc.BlockEmpty).Block(enc.OpLoop, enc.BlockEmpty) // each rune
	c.LocalGet(n).Op(enc.OpI32Eqz).Index(enc.OpBrIf, 1)
	c.LocalGet(ptr).Mem(enc.OpI32Load8U, 0, 0).LocalSet(b)
	c.LocalGet(b).I32Const(utf8.RuneSelf).Op(enc.OpI32LtU).Block(enc.OpIf, enc.BlockEmpty)
	{
		// ASCII: b - 'A' (upper: 'a') < 26 is a letter of the other case.
		c.LocalGet(b).I32Const('A').LocalGet(upper).I32Const(5).Op(enc.OpI32Shl).Op(enc.OpI32Add).Op(enc.OpI32Sub).
			I32Const(26).Op(enc.OpI32LtU).Block(enc.OpIf, enc.BlockEmpty)
		c.LocalGet(b).I32Const(0x20).Op(enc.OpI32Xor).LocalSet(b)
		c.Op(enc.OpEnd)
		store(0, func() { c.LocalGet(b) })
		for _, l := range []uint32{o, ptr} {
			c.LocalGet(l).I32Const(1).Op(enc.OpI32Add).LocalSet(l)
		}
		c.LocalGet(n).I32Const(1).Op(enc.OpI32Sub).LocalSet(n).Index(enc.OpBr, 1)
	}
	c.Op(enc.OpEnd)
	c.LocalGet(ptr).LocalGet(n).Index(enc.OpCall, decode).LocalSet(dec)
	c.LocalGet(dec).Op(enc.OpI32WrapI64).LocalSet(r)
	c.LocalGet(dec).I64Const(32).Op(enc.OpI64ShrU).Op(enc.OpI32WrapI64).LocalSet(b) // b: the width
	c.LocalGet(ptr).LocalGet(b).Op(enc.OpI32Add).LocalSet(ptr)
	c.LocalGet(n).LocalGet(b).Op(enc.OpI32Sub).LocalSet(n)
	// unicode's to: a binary search of the ranges for r.
	c.I32Const(0).LocalSet(lo).I32Const(int32(entries)).LocalSet(hi)
	c.Block(enc.OpBlock, enc.BlockEmpty).Block(enc.OpLoop, enc.BlockEmpty)
	{
		c.LocalGet(lo).LocalGet(hi).Op(enc.OpI32GeU).Index(enc.OpBrIf, 1)
		c.LocalGet(lo).LocalGet(hi).Op(enc.OpI32Add).I32Const(1).Op(enc.OpI32ShrU).LocalSet(b) // b: the middle
		c.LocalGet(b).I32Const(4).Op(enc.OpI32Shl).I32Const(int32(table)).Op(enc.OpI32Add).LocalSet(at)
		c.LocalGet(r).LocalGet(at).Mem(enc.OpI32Load, 2, 0).Op(enc.OpI32LtU).Block(enc.OpIf, enc.BlockEmpty)
		c.LocalGet(b).LocalSet(hi).Index(enc.OpBr, 1)
		c.Op(enc.OpEnd)
		c.LocalGet(r).LocalGet(at).Mem(enc.OpI32Load, 2, 4).Op(enc.OpI32GtU).Block(enc.OpIf, enc.BlockEmpty)
		c.LocalGet(b).I32Const(1).Op(enc.OpI32Add).LocalSet(lo).Index(enc.OpBr, 1)
		c.Op(enc.OpEnd)
		// Found: the delta of the case (Delta[UpperCase] at +8,
		// Delta[LowerCase] at +12), or an Upper-Lower sequence.
		c.LocalGet(at).I32Const(4).LocalGet(upper).I32Const(2).Op(enc.OpI32Shl).Op(enc.OpI32Sub).Op(enc.OpI32Add).
			Mem(enc.OpI32Load, 2, 8).LocalSet(b) // b: the delta
		c.LocalGet(b).I32Const(unicode.UpperLower).Op(enc.OpI32Eq).Block(enc.OpIf, enc.BlockEmpty)
		c.LocalGet(at).Mem(enc.OpI32Load, 2, 0).LocalSet(lo) // lo: the sequence's start
		c.LocalGet(r).LocalGet(lo).Op(enc.OpI32Sub).I32Const(-2).Op(enc.OpI32And).I32Const(1).LocalGet(upper).Op(enc.OpI32Sub).Op(enc.OpI32Or).
			LocalGet(lo).Op(enc.OpI32Add).LocalSet(r)
		c.Op(enc.OpElse)
		c.LocalGet(r).LocalGet(b).Op(enc.OpI32Add).LocalSet(r)
		c.Op(enc.OpEnd)
		c.Index(enc.OpBr, 1)
	}
	c.Op(enc.OpEnd).Op(enc.OpEnd)
	// utf8.EncodeRune.
	cont := func(shift int32) func() {
		return func() {
			c.LocalGet(r)
			if shift > 0 {
				c.I32Const(shift).Op(enc.OpI32ShrU)
			}
			c.I32Const(0x3f).Op(enc.OpI32And).I32Const(0x80).Op(enc.OpI32Or)
		}
	}
	lead := func(mark, shift int32) func() {
		return func() { c.LocalGet(r).I32Const(shift).Op(enc.OpI32ShrU).I32Const(mark).Op(enc.OpI32Or) }
	}
	advance := func(k int32) { c.LocalGet(o).I32Const(k).Op(enc.OpI32Add).LocalSet(o).Index(enc.OpBr, 1) }
	c.Block(enc.OpBlock, enc.BlockEmpty) // the rune written
	c.LocalGet(r).I32Const(0x80).Op(enc.OpI32LtU).Block(enc.OpIf, enc.BlockEmpty)
	store(0, func() { c.LocalGet(r) })
	advance(1)
	c.Op(enc.OpEnd)
	c.LocalGet(r).I32Const(0x800).Op(enc.OpI32LtU).Block(enc.OpIf, enc.BlockEmpty)
	store(0, lead(0xc0, 6))
	store(1, cont(0))
	advance(2)
	c.Op(enc.OpEnd)
	// Surrogates and what is above the last rune are written U+FFFD.
	c.LocalGet(r).I32Const(unicode.MaxRune).Op(enc.OpI32GtU).
		LocalGet(r).I32Const(0xd800).Op(enc.OpI32Sub).I32Const(0x800).Op(enc.OpI32LtU).Op(enc.OpI32Or).
		Block(enc.OpIf, enc.BlockEmpty).I32Const(utf8.RuneError).LocalSet(r).Op(enc.OpEnd)
	c.LocalGet(r).I32Const(0x10000).Op(enc.OpI32LtU).Block(enc.OpIf, enc.BlockEmpty)
	store(0, lead(0xe0, 12))
	store(1, cont(6))
	store(2, cont(0))
	advance(3)
	c.Op(enc.OpEnd)
	store(0, lead(0xf0, 18))
	store(1, cont(12))
	store(2, cont(6))
	store(3, cont(0))
	c.LocalGet(o).I32Const(4).Op(enc.OpI32Add).LocalSet(o)
	c.Op(enc.OpEnd)
	c.Index(enc.OpBr, 0)
	c.Op(enc.OpEnd).Op(enc.OpEnd)
	// Give back the reservation's rest.
	c.LocalGet(o).Index(enc.OpGlobalSet, globalScratch)
	c.LocalGet(o).LocalGet(dst).Op(enc.OpI32Sub).LocalSet(n)
	packStr(&c, dst, n)
	typ := g.funcType(enc.FuncType{Params: []enc.ValType{enc.I64, enc.I32}, Results: []enc.ValType{enc.I64}})
	locals := []enc.ValType{enc.I32, enc.I32, enc.I32, enc.I32, enc.I32, enc.I32, enc.I32, enc.I32, enc.I32, enc.I64}
	g.caseFn = g.helper(typ, locals, c)
	return g.caseFn
}

// caseTable places unicode.CaseRanges in the constant region, 16 bytes a
// range (u32 Lo, u32 Hi, i32 Delta[UpperCase], i32 Delta[LowerCase]; an
// Upper-Lower sequence's delta is unicode.UpperLower), and returns its
// address and its number of ranges. The table is the compiler's: the
// module records its Unicode version (Output.Unicode) for the host to
// refuse it under another.
func (g *gen) caseTable() (uint32, int) {
	var b []byte
	for _, cr := range unicode.CaseRanges {
		b = binary.LittleEndian.AppendUint32(b, cr.Lo)
		b = binary.LittleEndian.AppendUint32(b, cr.Hi)
		b = binary.LittleEndian.AppendUint32(b, uint32(cr.Delta[unicode.UpperCase]))
		b = binary.LittleEndian.AppendUint32(b, uint32(cr.Delta[unicode.LowerCase]))
	}
	g.out.Unicode = unicode.Version
	return g.consts.place(string(b)), len(unicode.CaseRanges)
}

// concatHelper returns the index of the function (i64 a, i64 b) -> i64
// that writes the strings a and b one after the other in the scratch
// region (layout.TrapUnsupported when they do not fit), adding it at its
// first use.
func (g *gen) concatHelper() uint32 {
	if g.concatFn != 0 {
		return g.concatFn
	}
	const a, b, dst, n, i, src, to = 0, 1, 2, 3, 4, 5, 6
	var c enc.Code
	for _, l := range []uint32{a, b} {
		c.LocalGet(n).LocalGet(l).Op(enc.OpI32WrapI64).Op(enc.OpI32Add).LocalSet(n)
	}
	scratch(&c, func() { c.LocalGet(n) }, dst)
	c.LocalGet(dst).LocalSet(to)
	for _, l := range []uint32{a, b} {
		c.LocalGet(l).I64Const(32).Op(enc.OpI64ShrU).Op(enc.OpI32WrapI64).LocalSet(src)
		c.LocalGet(l).Op(enc.OpI32WrapI64).LocalSet(i)
		c.Block(enc.OpBlock, enc.BlockEmpty).Block(enc.OpLoop, enc.BlockEmpty)
		c.LocalGet(i).Op(enc.OpI32Eqz).Index(enc.OpBrIf, 1)
		c.LocalGet(to).LocalGet(src).Mem(enc.OpI32Load8U, 0, 0).Mem(enc.OpI32Store8, 0, 0)
		for _, p := range []uint32{to, src} {
			c.LocalGet(p).I32Const(1).Op(enc.OpI32Add).LocalSet(p)
		}
		c.LocalGet(i).I32Const(1).Op(enc.OpI32Sub).LocalSet(i).Index(enc.OpBr, 0)
		c.Op(enc.OpEnd).Op(enc.OpEnd)
	}
	packStr(&c, dst, n)
	typ := g.funcType(enc.FuncType{Params: []enc.ValType{enc.I64, enc.I64}, Results: []enc.ValType{enc.I64}})
	g.concatFn = g.helper(typ, []enc.ValType{enc.I32, enc.I32, enc.I32, enc.I32, enc.I32}, c)
	return g.concatFn
}

// order returns the instruction of <, <=, >, >= (op) over two numbers
// (i64), and over the result of a string comparison and 0 (i32).
func order(op ir.Op) (num, str byte) {
	switch op {
	case ir.OpLt:
		return enc.OpI64LtS, enc.OpI32LtS
	case ir.OpLe:
		return enc.OpI64LeS, enc.OpI32LeS
	case ir.OpGt:
		return enc.OpI64GtS, enc.OpI32GtS
	}
	return enc.OpI64GeS, enc.OpI32GeS
}

// strCompare returns the index of the function (a, alen, b, blen) -> i32
// that compares two strings' bytes as strings.Compare does (-1, 0, 1),
// adding it to the module at its first use.
func (g *gen) strCompare() uint32 {
	if g.strCmp != 0 {
		return g.strCmp
	}
	const a, alen, b, blen, n = 0, 1, 2, 3, 4 // n: the bytes left to compare
	var c enc.Code
	// n = min(alen, blen)
	c.LocalGet(alen).LocalGet(blen).LocalGet(alen).LocalGet(blen).Op(enc.OpI32LtU).Op(enc.OpSelect).LocalSet(n)
	c.Block(enc.OpBlock, enc.BlockEmpty).Block(enc.OpLoop, enc.BlockEmpty)
	c.LocalGet(n).Op(enc.OpI32Eqz).Index(enc.OpBrIf, 1)
	c.LocalGet(a).Mem(enc.OpI32Load8U, 0, 0).LocalGet(b).Mem(enc.OpI32Load8U, 0, 0).Op(enc.OpI32Ne).Block(enc.OpIf, enc.BlockEmpty)
	c.I32Const(-1).I32Const(1).LocalGet(a).Mem(enc.OpI32Load8U, 0, 0).LocalGet(b).Mem(enc.OpI32Load8U, 0, 0).Op(enc.OpI32LtU).
		Op(enc.OpSelect).Op(enc.OpReturn).Op(enc.OpEnd)
	for _, l := range []uint32{a, b} {
		c.LocalGet(l).I32Const(1).Op(enc.OpI32Add).LocalSet(l)
	}
	c.LocalGet(n).I32Const(1).Op(enc.OpI32Sub).LocalSet(n)
	c.Index(enc.OpBr, 0).Op(enc.OpEnd).Op(enc.OpEnd)
	// A common prefix: the shorter first.
	c.LocalGet(alen).LocalGet(blen).Op(enc.OpI32GtU).LocalGet(alen).LocalGet(blen).Op(enc.OpI32LtU).Op(enc.OpI32Sub)
	g.later = append(g.later, enc.Func{Type: typeStreq, Locals: []enc.ValType{enc.I32}, Body: c})
	g.strCmp = g.nextFunc
	g.nextFunc++
	return g.strCmp
}

// arith compiles a + b, a - b, a * b, a / b over numbers as eval's arith
// does on millionths: a step for the operator before its operands; then
// the operands and the operator's charge point in the output, for the host
// to word a fault (layout.TrapFault); a sum whose sign the operands' do
// not explain overflows; a product or quotient is mulDiv's (a*b/10^6,
// a*10^6/b), after division by zero is refused.
func (f *fn) arith(e *ir.Expr) (kind, error) {
	c := f.c
	pt, a, b, err := f.binary(e)
	if err != nil {
		return 0, err
	}
	if e.Op == ir.OpAdd && a == kStr && b == kStr {
		f.concat(pt)
		return kStr, nil
	}
	// The kind of the result, as eval's arith decides it.
	var r kind
	switch {
	case a == kNum && b == kNum:
		r = kNum
	case (e.Op == ir.OpAdd || e.Op == ir.OpSub) && a == kDur && b == kDur:
		r = kDur
	case (e.Op == ir.OpAdd || e.Op == ir.OpSub) && a == kTime && b == kDur:
		r = kTime
	case e.Op == ir.OpSub && a == kTime && b == kTime:
		r = kDur
	case e.Op == ir.OpMul && (a == kDur && b == kNum || a == kNum && b == kDur), e.Op == ir.OpDiv && a == kDur && b == kNum:
		r = kDur
	default:
		return 0, f.unsupported(e, string(e.Op)+" of values of these kinds")
	}
	f.g.out.Points[pt].Kinds = [2]ir.Kind{a.irKind(), b.irKind()}
	x, y := f.operands(pt)
	switch e.Op {
	case ir.OpAdd, ir.OpSub:
		if e.Op == ir.OpSub {
			c.LocalGet(y).I64Const(-1).Op(enc.OpI64Mul).LocalSet(y) // -b, wrapping as the interpreter's
		}
		s := f.local(enc.I64)
		c.LocalGet(x).LocalGet(y).Op(enc.OpI64Add).LocalSet(s)
		// Overflow: x and y of one sign, s of the other.
		c.LocalGet(x).LocalGet(s).Op(enc.OpI64Xor).LocalGet(y).LocalGet(s).Op(enc.OpI64Xor).Op(enc.OpI64And).
			I64Const(0).Op(enc.OpI64LtS).Block(enc.OpIf, enc.BlockEmpty)
		fault(c, layout.FaultOverflow)
		c.Op(enc.OpEnd).LocalGet(s)
	case ir.OpMul:
		c.LocalGet(x).LocalGet(y).I64Const(ir.NumberScale).Index(enc.OpCall, f.g.mulDiv())
	default:
		c.LocalGet(y).Op(enc.OpI64Eqz).Block(enc.OpIf, enc.BlockEmpty)
		fault(c, layout.FaultDivZero)
		c.Op(enc.OpEnd)
		c.LocalGet(x).I64Const(ir.NumberScale).LocalGet(y).Index(enc.OpCall, f.g.mulDiv())
	}
	return r, nil
}

// fault stores the fault in the first output word and traps with
// layout.TrapFault.
func fault(c *enc.Code, fault int32) {
	c.I32Const(layout.OutBase).I32Const(fault).Mem(enc.OpI32Store, 2, 0)
	c.I32Const(layout.TrapFault).Index(enc.OpGlobalSet, globalTrap).Op(enc.OpUnreachable)
}

// mulDiv returns the index of the function (i64 a, i64 b, i64 c) -> i64
// that computes a*b/c rounded toward zero as eval's mulDiv does, with the
// 128-bit product of |a| and |b| divided by |c| bit by bit, and that
// traps with FaultOverflow where eval's reports overflow (a quotient of 64
// bits or more, or above the largest i64), adding it at its first use.
func (g *gen) mulDiv() uint32 {
	if g.mulDivFn != 0 {
		return g.mulDivFn
	}
	g.m.Types = append(g.m.Types, enc.FuncType{Params: []enc.ValType{enc.I64, enc.I64, enc.I64}, Results: []enc.ValType{enc.I64}})
	const (
		ua, ub, uc = 3, 4, 5 // |a|, |b|, |c|
		hi, lo     = 6, 7    // |a|*|b|, then the remainder and the bits left
		q, mid, p  = 8, 9, 10
		i, neg     = 11, 12
	)
	var c enc.Code
	// neg = (a < 0) != (b < 0) != (c < 0)
	for k, l := range []uint32{0, 1, 2} {
		c.LocalGet(l).I64Const(0).Op(enc.OpI64LtS)
		if k > 0 {
			c.Op(enc.OpI32Xor)
		}
	}
	c.LocalSet(neg)
	for k, l := range []uint32{0, 1, 2} {
		c.LocalGet(l).I64Const(-1).Op(enc.OpI64Mul).LocalGet(l).LocalGet(l).I64Const(0).Op(enc.OpI64LtS).Op(enc.OpSelect).LocalSet(ua + uint32(k))
	}
	low := func(l uint32) { c.LocalGet(l).I64Const(0xffffffff).Op(enc.OpI64And) }
	high := func(l uint32) { c.LocalGet(l).I64Const(32).Op(enc.OpI64ShrU) }
	mul := func(x func(uint32), y func(uint32)) { x(ua); y(ub); c.Op(enc.OpI64Mul) }
	// p = a0*b0; mid = p>>32 + lo32(a0*b1) + lo32(a1*b0)
	mul(low, low)
	c.LocalSet(p)
	high(p)
	mul(low, high)
	c.LocalSet(q) // q holds a0*b1 for now
	low(q)
	c.Op(enc.OpI64Add)
	mul(high, low)
	c.LocalSet(i) // i holds a1*b0 for now
	low(i)
	c.Op(enc.OpI64Add).LocalSet(mid)
	// lo = mid<<32 | lo32(p); hi = a1*b1 + a0*b1>>32 + a1*b0>>32 + mid>>32
	c.LocalGet(mid).I64Const(32).Op(enc.OpI64Shl)
	low(p)
	c.Op(enc.OpI64Or).LocalSet(lo)
	mul(high, high)
	high(q)
	c.Op(enc.OpI64Add)
	high(i)
	c.Op(enc.OpI64Add)
	high(mid)
	c.Op(enc.OpI64Add).LocalSet(hi)
	overflow := func() {
		c.Block(enc.OpIf, enc.BlockEmpty)
		fault(&c, layout.FaultOverflow)
		c.Op(enc.OpEnd)
	}
	c.LocalGet(hi).LocalGet(uc).Op(enc.OpI64GeU)
	overflow()
	// 64 steps of long division; hi < uc <= 2^63, so hi<<1 fits.
	c.I64Const(0).LocalSet(q).I64Const(64).LocalSet(i)
	c.Block(enc.OpLoop, enc.BlockEmpty)
	c.LocalGet(hi).I64Const(1).Op(enc.OpI64Shl).LocalGet(lo).I64Const(63).Op(enc.OpI64ShrU).Op(enc.OpI64Or).LocalSet(hi)
	c.LocalGet(lo).I64Const(1).Op(enc.OpI64Shl).LocalSet(lo)
	c.LocalGet(q).I64Const(1).Op(enc.OpI64Shl).LocalSet(q)
	c.LocalGet(hi).LocalGet(uc).Op(enc.OpI64GeU).Block(enc.OpIf, enc.BlockEmpty)
	c.LocalGet(hi).LocalGet(uc).Op(enc.OpI64Sub).LocalSet(hi)
	c.LocalGet(q).I64Const(1).Op(enc.OpI64Or).LocalSet(q)
	c.Op(enc.OpEnd)
	c.LocalGet(i).I64Const(1).Op(enc.OpI64Sub).Index(enc.OpLocalTee, i).I64Const(0).Op(enc.OpI64Ne).Index(enc.OpBrIf, 0)
	c.Op(enc.OpEnd)
	c.LocalGet(q).I64Const(0).Op(enc.OpI64LtS) // q > MaxInt64
	overflow()
	c.LocalGet(q).I64Const(-1).Op(enc.OpI64Mul).LocalGet(q).LocalGet(neg).Op(enc.OpSelect)
	locals := []enc.ValType{enc.I64, enc.I64, enc.I64, enc.I64, enc.I64, enc.I64, enc.I64, enc.I64, enc.I64, enc.I32}
	g.later = append(g.later, enc.Func{Type: uint32(len(g.m.Types) - 1), Locals: locals, Body: c})
	g.mulDivFn = g.nextFunc
	g.nextFunc++
	return g.mulDivFn
}

// matches compiles x matches "glob" as eval does: a step for matches, then
// those of x and of the constant pattern; a null x does not match; a
// string is matched by the pattern's matcher (glob.go).
func (f *fn) matches(e *ir.Expr) (kind, error) {
	if len(e.Args) != 2 || e.Args[1].Op != ir.OpConst || e.Args[1].Value == nil || e.Args[1].Value.Kind() != ir.String {
		return 0, f.unsupported(e, "matches without a constant pattern")
	}
	match, err := f.g.glob(e.Args[1].Value.Str())
	if err != nil {
		return 0, err
	}
	c := f.c
	if _, err := f.stringArg(e, "matches"); err != nil {
		return 0, err
	}
	f.nodes++
	f.charge(e.Args[1])
	x := f.local(enc.I64)
	c.LocalSet(x)
	c.LocalGet(x).I64Const(32).Op(enc.OpI64ShrU).I64Const(0xffffffff).Op(enc.OpI64Eq)
	c.Block(enc.OpIf, enc.BlockI32).I32Const(0).Op(enc.OpElse)
	c.LocalGet(x).I64Const(32).Op(enc.OpI64ShrU).Op(enc.OpI32WrapI64).LocalGet(x).Op(enc.OpI32WrapI64).Index(enc.OpCall, match)
	c.Op(enc.OpEnd)
	return kBool, nil
}

// feature returns the bit of the feature flag e reads in the env region,
// giving it the next at its first use.
func (g *gen) feature(e *ir.Expr) (uint32, error) {
	for i, name := range g.out.Features {
		if name == e.Name {
			return uint32(i), nil
		}
	}
	if len(g.out.Features) == maxFeatures {
		return 0, fmt.Errorf("%w: over %d feature flags at %s", ErrUnsupported, maxFeatures, e.Pos)
	}
	g.out.Features = append(g.out.Features, e.Name)
	return uint32(len(g.out.Features) - 1), nil
}

// policy returns the index of the policy value e reads in the env
// region's table and its kind, giving it the next at its first use. The
// kind is that of the program's own value: a number, a bool or a string.
func (g *gen) policy(e *ir.Expr) (uint32, kind, error) {
	unsupported := func(what string) (uint32, kind, error) {
		return 0, 0, fmt.Errorf("%w: %s at %s", ErrUnsupported, what, e.Pos)
	}
	v, ok := g.policyDefault(e)
	if !ok {
		return unsupported("a policy value the program does not have")
	}
	var k kind
	switch v.Kind() {
	case ir.Number:
		k = kNum
	case ir.Bool:
		k = kBool
	case ir.String:
		k = kStr
	case ir.Duration:
		k = kDur
	default:
		return unsupported("a policy value of kind " + v.Kind().String())
	}
	i, err := g.policyRef(e, PolicyRef{Name: e.Name, Path: e.Path, Kind: v.Kind()})
	return i, k, err
}

// policyDefault returns the program's own value of the policy value e.
func (g *gen) policyDefault(e *ir.Expr) (ir.Value, bool) {
	def := g.prog.Policy(e.Name)
	if def == nil || len(e.Path) == 0 || def.Field(e.Path[0]) == nil {
		return ir.Value{}, false
	}
	v := def.Field(e.Path[0]).Value
	for _, key := range e.Path[1:] {
		if v.Kind() != ir.Map {
			return ir.Value{}, false
		}
		v, _ = v.Get(key)
	}
	return v, true
}

// policyRef returns the index of ref in the env region's table, giving it
// the next at its first use.
func (g *gen) policyRef(e *ir.Expr, ref PolicyRef) (uint32, error) {
	for i, r := range g.out.Policies {
		if r.Name == ref.Name && slices.Equal(r.Path, ref.Path) {
			if r.Kind != ref.Kind || r.Elem != ref.Elem {
				return 0, fmt.Errorf("%w: policy.%s read as two kinds at %s", ErrUnsupported, ref.Name, e.Pos)
			}
			return uint32(i), nil
		}
	}
	if len(g.out.Policies) == maxPolicies {
		return 0, fmt.Errorf("%w: over %d policy values at %s", ErrUnsupported, maxPolicies, e.Pos)
	}
	ref.Path = slices.Clone(ref.Path)
	g.out.Policies = append(g.out.Policies, ref)
	return uint32(len(g.out.Policies) - 1), nil
}

// policyList returns the index of the policy value e, a list of strings or
// of numbers in the program, and the kind of its values.
func (g *gen) policyList(e *ir.Expr) (uint32, kind, error) {
	unsupported := func(what string) (uint32, kind, error) {
		return 0, 0, fmt.Errorf("%w: %s at %s", ErrUnsupported, what, e.Pos)
	}
	v, ok := g.policyDefault(e)
	if !ok || v.Kind() != ir.List || len(v.List()) == 0 {
		return unsupported("in over a policy value that is not a list of strings or numbers")
	}
	elem := v.List()[0].Kind()
	for _, x := range v.List() {
		if x.Kind() != elem || elem != ir.String && elem != ir.Number {
			return unsupported("in over a policy value that is not a list of strings or numbers")
		}
	}
	i, err := g.policyRef(e, PolicyRef{Name: e.Name, Path: e.Path, Kind: ir.List, Elem: elem})
	return i, map[ir.Kind]kind{ir.String: kStr, ir.Number: kNum}[elem], err
}

// data compiles data.PATH and has(data.PATH) as eval reads them: a step;
// the run's first read of data charges the bytes the host left in the env
// region (eval.SpanData's) to the byte budget; then the value at the path,
// which the host resolved for the span (eval.Walk), as kind hint: a value
// of another kind (a number where a string is compared, null where a
// number is) traps with layout.TrapUnsupported and the interpreter
// answers the run. has is whether the value is not null.
func (f *fn) data(e *ir.Expr, hint kind) (kind, error) {
	want := map[kind][]ir.Kind{kNum: {ir.Number}, kBool: {ir.Bool}, kStr: {ir.String, ir.Null}}[hint]
	if e.Op == ir.OpField && want == nil {
		return 0, f.unsupported(e, "a value of data whose kind the expression does not fix")
	}
	i, err := f.g.dataRef(e.Path, e.Pos)
	if err != nil {
		return 0, err
	}
	c := f.c
	f.readData(f.charge(e))
	at := layout.EnvDataRefs + 16*i
	c.I32Const(layout.EnvBase).Mem(enc.OpI64Load, 3, at)
	if e.Op == ir.OpHas {
		c.I64Const(int64(ir.Null)).Op(enc.OpI64Ne)
		return kBool, nil
	}
	f.trapUnlessKind(want, true)
	c.I32Const(layout.EnvBase).Mem(enc.OpI64Load, 3, at+8)
	if hint == kBool {
		c.Op(enc.OpI32WrapI64)
	}
	return hint, nil
}

// trapUnlessKind emits a trap (unsupported: the interpreter answers) unless
// the kind on the stack, an i32 or (wide) an i64, is one of want; it takes
// the kind off the stack.
func (f *fn) trapUnlessKind(want []ir.Kind, wide bool) {
	c := f.c
	t := enc.I32
	if wide {
		t = enc.I64
	}
	kd := f.local(t)
	c.LocalSet(kd)
	for k, w := range want {
		c.LocalGet(kd)
		if wide {
			c.I64Const(int64(w)).Op(enc.OpI64Ne)
		} else {
			c.I32Const(int32(w)).Op(enc.OpI32Ne)
		}
		if k > 0 {
			c.Op(enc.OpI32And)
		}
	}
	c.Block(enc.OpIf, enc.BlockEmpty)
	trapUnsupported(c)
	c.Op(enc.OpEnd)
}

// readData emits the run's first read of data: it charges the byte
// budget, at the charge point pt, what the host left in the env region.
func (f *fn) readData(pt uint32) {
	c := f.c
	c.Index(enc.OpGlobalGet, globalData).Op(enc.OpI32Eqz).Block(enc.OpIf, enc.BlockEmpty)
	c.I32Const(1).Index(enc.OpGlobalSet, globalData)
	f.chargeBytes(pt, func() { c.I32Const(layout.EnvBase).Mem(enc.OpI64Load, 3, layout.EnvData) })
	c.Op(enc.OpEnd)
}

// dataRef returns the index of data.PATH in the env region's table,
// giving it the next at its first use.
func (g *gen) dataRef(path []string, pos string) (uint32, error) {
	for i, p := range g.out.Data {
		if slices.Equal(p, path) {
			return uint32(i), nil
		}
	}
	if len(g.out.Data) == maxData {
		return 0, fmt.Errorf("%w: over %d paths below data at %s", ErrUnsupported, maxData, pos)
	}
	g.out.Data = append(g.out.Data, slices.Clone(path))
	return uint32(len(g.out.Data) - 1), nil
}

// dataRule compiles require/allow field "data.PATH" [as FORMAT] [in [...]]
// along eval's slow path: the run's first read of data charges its bytes
// (a budget that runs out fails the rule, LLL105, at the rule); a null
// value is absent (required, or the rule passes); then the format, by the
// value's kind (string, nonempty, number, integer, bool, array, object;
// others are refused), then the values of in, as ir.Value.Equal compares
// them. The host words the violation from the span (layout.ReasonValue).
func (f *fn) dataRule(i int, r *ir.Rule) error {
	unsupported := func(what string) error {
		return fmt.Errorf("%w: %s in rule %q at %s", ErrUnsupported, what, r.Source, r.Pos)
	}
	path := strings.Split(strings.TrimPrefix(r.Field, "data."), ".")
	k, err := f.g.dataRef(path, r.Pos)
	if err != nil {
		return err
	}
	c := f.c
	const kd = localMember // the kind, in the member index's local (as i32)
	at := layout.EnvDataRefs + 16*k
	value := func(op byte, align uint32) { c.I32Const(layout.EnvBase).Mem(op, align, at+8) }
	is := func(kind ir.Kind) { c.LocalGet(kd).I32Const(int32(kind)).Op(enc.OpI32Eq) }
	var format func() // pushes whether the value matches
	switch r.Format {
	case "":
	case "string", "number", "bool", "array", "object":
		kind := map[string]ir.Kind{"string": ir.String, "number": ir.Number, "bool": ir.Bool, "array": ir.List, "object": ir.Map}[r.Format]
		format = func() { is(kind) }
	case "nonempty":
		format = func() {
			is(ir.String)
			value(enc.OpI32Load, 2) // the length, in the low word
			c.I32Const(0).Op(enc.OpI32Ne).Op(enc.OpI32And)
		}
	case "integer":
		format = func() {
			is(ir.Number)
			value(enc.OpI64Load, 3)
			c.I64Const(ir.NumberScale).Op(enc.OpI64RemS).Op(enc.OpI64Eqz).Op(enc.OpI32And)
		}
	default:
		return unsupported("format " + r.Format + " on a value below data")
	}
	for _, x := range r.In {
		if x.Kind() != ir.String && x.Kind() != ir.Number && x.Kind() != ir.Bool {
			return unsupported("a value of in [...] of kind " + x.Kind().String())
		}
	}
	f.g.out.Points = append(f.g.out.Points, f.point(i, r.Pos))
	c.Block(enc.OpBlock, enc.BlockEmpty) // the rule; br to its end passes it
	f.readData(uint32(len(f.g.out.Points) - 1))
	c.I32Const(layout.EnvBase).Mem(enc.OpI32Load, 2, at).LocalSet(kd)
	is(ir.Null)
	c.Block(enc.OpIf, enc.BlockEmpty)
	if r.Kind == ir.RuleRequire {
		fail(c, i, layout.ReasonRequired)
	} else {
		c.Index(enc.OpBr, 1)
	}
	c.Op(enc.OpEnd)
	if format != nil {
		format()
		c.Op(enc.OpI32Eqz).Block(enc.OpIf, enc.BlockEmpty)
		fail(c, i, layout.ReasonValue)
		c.Op(enc.OpEnd)
	}
	if r.In != nil {
		for _, x := range r.In {
			is(x.Kind())
			c.Block(enc.OpIf, enc.BlockEmpty)
			switch x.Kind() {
			case ir.String:
				c.I32Const(layout.EnvBase).Mem(enc.OpI32Load, 2, at+12) // the offset, in the high word
				c.I32Const(layout.EnvBase).Mem(enc.OpI32Load, 2, at+8)  // the length
				c.I32Const(int32(f.g.consts.place(x.Str()))).I32Const(int32(len(x.Str()))).Index(enc.OpCall, f.g.streq)
			default:
				value(enc.OpI64Load, 3)
				c.I64Const(x.Micros()).Op(enc.OpI64Eq)
			}
			c.Index(enc.OpBrIf, 1).Op(enc.OpEnd)
		}
		fail(c, i, layout.ReasonNotOneOf)
	}
	c.Op(enc.OpEnd)
	return nil
}

// lenConfirmedBy compiles len(confirmed_by) as eval does: a step for len,
// one for the field; a span with confirmed_by (a list of strings, which
// the span decoder never leaves null) has the interpreter make the list,
// charging the byte budget ValueBytes + SliceBytes + ValueBytes a
// string; len is its length, 0 without it (len of null).
func (f *fn) lenConfirmedBy(e *ir.Expr) (kind, error) {
	c := f.c
	f.charge(e)
	f.nodes++
	f.makeConfirmedBy(f.charge(e.Args[0]))
	slot := int32(layout.Slot(spanfield.ConfirmedBy))
	// An absent member's slot is zero: length 0.
	c.I32Const(slot).Mem(enc.OpI32Load, 2, layout.SlotLen).Op(enc.OpI64ExtendU).I64Const(ir.NumberScale).Op(enc.OpI64Mul)
	return kNum, nil
}
