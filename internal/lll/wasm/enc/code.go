package enc

// Opcodes of the instructions the backend emits (part of the format).
const (
	OpUnreachable = 0x00
	OpBlock       = 0x02
	OpLoop        = 0x03
	OpIf          = 0x04
	OpElse        = 0x05
	OpEnd         = 0x0b
	OpBr          = 0x0c
	OpBrIf        = 0x0d
	OpReturn      = 0x0f
	OpCall        = 0x10
	OpDrop        = 0x1a
	OpSelect      = 0x1b
	OpLocalGet    = 0x20
	OpLocalSet    = 0x21
	OpLocalTee    = 0x22
	OpGlobalGet   = 0x23
	OpGlobalSet   = 0x24
	OpI32Load     = 0x28
	OpI64Load     = 0x29
	OpI32Load8U   = 0x2d
	OpI32Store    = 0x36
	OpI32Store8   = 0x3a
	OpI64Store    = 0x37
	OpI32Const    = 0x41
	OpI64Const    = 0x42
	OpI32Eqz      = 0x45
	OpI32Eq       = 0x46
	OpI32Ne       = 0x47
	OpI32LtS      = 0x48
	OpI32LtU      = 0x49
	OpI32GtS      = 0x4a
	OpI32GtU      = 0x4b
	OpI32LeS      = 0x4c
	OpI32LeU      = 0x4d
	OpI32GeS      = 0x4e
	OpI32GeU      = 0x4f
	OpI64Eqz      = 0x50
	OpI64Eq       = 0x51
	OpI64Ne       = 0x52
	OpI64LtS      = 0x53
	OpI64LtU      = 0x54
	OpI64GtS      = 0x55
	OpI64LeS      = 0x57
	OpI64GeS      = 0x59
	OpI64GeU      = 0x5a
	OpI32Add      = 0x6a
	OpI32Sub      = 0x6b
	OpI32Mul      = 0x6c
	OpI32And      = 0x71
	OpI32Or       = 0x72
	OpI32Shl      = 0x74
	OpI32Xor      = 0x73
	OpI32ShrU     = 0x76
	OpI64Add      = 0x7c
	OpI64Sub      = 0x7d
	OpI64Mul      = 0x7e
	OpI64And      = 0x83
	OpI64Or       = 0x84
	OpI64RemS     = 0x81
	OpI64Xor      = 0x85
	OpI64Shl      = 0x86
	OpI64ShrU     = 0x88
	OpI32WrapI64  = 0xa7
	OpI64ExtendU  = 0xad // i64.extend_i32_u
)

// Block types (part of the format): a block without results, or with one.
const (
	BlockEmpty = 0x40
	BlockI32   = byte(I32)
	BlockI64   = byte(I64)
)

// Code is a sequence of instructions being written. Its methods append one
// instruction each and return the Code, so a body reads as a program:
//
//	var c enc.Code
//	c.LocalGet(0).I32Const(1).Op(enc.OpI32Add)
type Code []byte

// Op appends an instruction without immediates (i32.add, end, ...).
func (c *Code) Op(op byte) *Code { *c = append(*c, op); return c }

// Index appends an instruction whose immediate is one index (local.get,
// global.set, call, br, br_if).
func (c *Code) Index(op byte, i uint32) *Code {
	*c = AppendUleb128(append(*c, op), uint64(i))
	return c
}

// Block appends a structured instruction (block, loop, if) and its type.
func (c *Code) Block(op, typ byte) *Code { *c = append(*c, op, typ); return c }

// Mem appends a load or store with its alignment (log2 of bytes) and
// constant offset.
func (c *Code) Mem(op byte, align, offset uint32) *Code {
	*c = AppendUleb128(AppendUleb128(append(*c, op), uint64(align)), uint64(offset))
	return c
}

// I32Const appends i32.const v.
func (c *Code) I32Const(v int32) *Code {
	*c = AppendSleb128(append(*c, OpI32Const), int64(v))
	return c
}

// I64Const appends i64.const v.
func (c *Code) I64Const(v int64) *Code {
	*c = AppendSleb128(append(*c, OpI64Const), v)
	return c
}

// LocalGet appends local.get i.
func (c *Code) LocalGet(i uint32) *Code { return c.Index(OpLocalGet, i) }

// LocalSet appends local.set i.
func (c *Code) LocalSet(i uint32) *Code { return c.Index(OpLocalSet, i) }
