package codegen

import (
	"fmt"

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
	Validator string
	Rule      int    // the index of the rule; -1: the guard
	Pos       string // the expression's position
}

// maxNodes bounds the expressions of one validator. The interpreter
// charges its byte budget for list literals only, in this subset, at most
// 152 bytes a node: 4096 nodes stay far below eval.DefaultMaxBytes, so a
// module never has to decide the byte budget.
const maxNodes = 4096

// kind is the static kind of an expression's value in the subset compiled,
// and its representation on the stack:
//
//	kBool  i32 0 or 1
//	kNum   i64 millionths (a number; never null)
//	kStr   i64 offset<<32 | length of a string in memory, or strNull
type kind uint8

const (
	kBool kind = iota + 1
	kNum
	kStr
)

// strNull is the null of a kStr: no string starts at offset 2^32-1.
const strNull = -1 << 32

func (k kind) valType() enc.ValType {
	if k == kBool {
		return enc.I32
	}
	return enc.I64
}

// fn compiles the expressions of one validator's function.
type fn struct {
	g      *gen
	v      *ir.Validator
	c      *enc.Code
	rule   int           // the rule whose expression is compiled; -1: the guard
	locals []enc.ValType // the function's locals; local 0 is the member index of reject unknown fields
	nodes  int
}

func (f *fn) local(t enc.ValType) uint32 {
	f.locals = append(f.locals, t)
	return uint32(len(f.locals) - 1)
}

func (f *fn) unsupported(e *ir.Expr, what string) error {
	return fmt.Errorf("%w: %s at %s", ErrUnsupported, what, e.Pos)
}

// charge emits the interpreter's step at e: fuel -= 1; if fuel < 0, the
// point's index in the second output word, trap = TrapFuel, unreachable.
func (f *fn) charge(e *ir.Expr) {
	pt := uint32(len(f.g.out.Points))
	f.g.out.Points = append(f.g.out.Points, Point{Validator: f.v.Name, Rule: f.rule, Pos: e.Pos})
	c := f.c
	c.Index(enc.OpGlobalGet, globalFuel).I64Const(1).Op(enc.OpI64Sub).Index(enc.OpGlobalSet, globalFuel)
	c.Index(enc.OpGlobalGet, globalFuel).I64Const(0).Op(enc.OpI64LtS).Block(enc.OpIf, enc.BlockEmpty)
	c.I32Const(layout.OutBase).I32Const(int32(pt)).Mem(enc.OpI32Store, 2, 4)
	c.I32Const(layout.TrapFuel).Index(enc.OpGlobalSet, globalTrap).Op(enc.OpUnreachable)
	c.Op(enc.OpEnd)
}

// cond compiles a guard or a check's condition, which must be a bool.
func (f *fn) cond(e *ir.Expr) error {
	k, err := f.expr(e)
	if err != nil {
		return err
	}
	if k != kBool {
		return f.unsupported(e, "a condition that is not a bool")
	}
	return nil
}

// expr compiles e, charging fuel where and in the order the interpreter
// counts steps (eval's fr.step: every operator but not, and, or and neg
// counts one before its operands), and returns the kind of its value.
func (f *fn) expr(e *ir.Expr) (kind, error) {
	if f.nodes++; f.nodes > maxNodes {
		return 0, f.unsupported(e, fmt.Sprintf("over %d expression nodes in one validator", maxNodes))
	}
	c := f.c
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
		if len(e.Path) > 0 || sf == spanfield.None {
			return 0, f.unsupported(e, "a field that is not a top-level span field")
		}
		if e.Op == ir.OpField && (!sf.IsString() || sf == spanfield.When) {
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
		c.Block(enc.OpIf, enc.BlockI64)
		c.I32Const(int32(layout.Slot(sf))).Mem(enc.OpI64Load, 2, layout.SlotLen) // length | offset<<32
		c.Op(enc.OpElse).I64Const(strNull).Op(enc.OpEnd)
		return kStr, nil
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
		if len(e.Args) != 2 {
			return 0, f.unsupported(e, string(e.Op)+" without two operands")
		}
		f.charge(e)
		a, err := f.expr(e.Args[0])
		if err != nil {
			return 0, err
		}
		b, err := f.expr(e.Args[1])
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
		if a != kNum || b != kNum {
			return 0, f.unsupported(e, "an order of values that are not both numbers")
		}
		switch e.Op {
		case ir.OpLt:
			c.Op(enc.OpI64LtS)
		case ir.OpLe:
			c.Op(enc.OpI64LeS)
		case ir.OpGt:
			c.Op(enc.OpI64GtS)
		default:
			c.Op(enc.OpI64GeS)
		}
		return kBool, nil
	case ir.OpIn:
		return f.in(e)
	case ir.OpCall:
		if e.Name != "len" || len(e.Args) != 1 {
			return 0, f.unsupported(e, "the builtin "+e.Name)
		}
		f.charge(e)
		k, err := f.expr(e.Args[0])
		if err != nil {
			return 0, err
		}
		if k != kStr {
			return 0, f.unsupported(e, "len of what is not a string")
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
	case a == kNum:
		c.Op(enc.OpI64Eq)
	default:
		c.Index(enc.OpCall, f.g.strEqual())
	}
}

// in compiles x in [e1, ...]: the interpreter counts a step for in, then
// those of x, one for the list, those of each element (all evaluated),
// and then looks for x among them.
func (f *fn) in(e *ir.Expr) (kind, error) {
	if len(e.Args) != 2 || e.Args[1].Op != ir.OpList {
		return 0, f.unsupported(e, "in over what is not a list literal")
	}
	c := f.c
	f.charge(e)
	k, err := f.expr(e.Args[0])
	if err != nil {
		return 0, err
	}
	x := f.local(k.valType())
	c.LocalSet(x)
	f.nodes++
	f.charge(e.Args[1])
	found := f.local(enc.I32)
	c.I32Const(0).LocalSet(found)
	for _, el := range e.Args[1].Args {
		c.LocalGet(x)
		ek, err := f.expr(el)
		if err != nil {
			return 0, err
		}
		f.equal(k, ek)
		c.LocalGet(found).Op(enc.OpI32Or).LocalSet(found)
	}
	c.LocalGet(found)
	return kBool, nil
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
		c.Index(enc.OpCall, funcStreq)
		g.later = append(g.later, enc.Func{Type: uint32(len(g.m.Types) - 1), Body: c})
		g.strEq = g.nextFunc
		g.nextFunc++
	}
	return g.strEq
}
