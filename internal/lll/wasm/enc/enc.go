// Package enc is a deterministic encoder of WebAssembly 1.0 binary modules
// (https://www.w3.org/TR/wasm-core-1/, chapter 5), written by hand so that
// the bytes of a module depend only on the Module given: no map iteration,
// no clock, no third-party encoder.
//
// A module is the magic and version, then its sections, each present only
// when not empty, in the order the format fixes:
//
//	00 61 73 6d  01 00 00 00          "\0asm", version 1
//	01 type      the function types, in Module.Types order
//	02 import    the imported functions, in Module.Imports order
//	03 function  the type index of each defined function
//	05 memory    at most one memory: limits min and max (pages of 64 KiB)
//	06 global    the globals, each with a constant initializer
//	07 export    the exports, in Module.Exports order (names unique)
//	0a code      the bodies: local declarations (runs of one type), then
//	             the instructions, ending with 0b (end)
//	0b data      active segments of memory 0 at constant offsets
//
// A section is its id byte, its size as unsigned LEB128, then its
// contents; a vector is its length as unsigned LEB128, then its elements;
// a name is a vector of UTF-8 bytes. Integers in instructions are LEB128:
// unsigned for indices, alignments and offsets, signed for i32.const and
// i64.const (AppendUleb128, AppendSleb128).
//
// Function indices count the imports first: the i-th defined function has
// index len(Imports)+i.
package enc

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// ErrInvalid is returned by Encode for a module that refers to something
// it does not have (a type, function or global index out of range), has
// two exports of one name, or a name that is not UTF-8.
var ErrInvalid = errors.New("enc: invalid module")

// Magic and Version open every module (part of the format).
var (
	Magic   = [4]byte{0x00, 0x61, 0x73, 0x6d}
	Version = [4]byte{0x01, 0x00, 0x00, 0x00}
)

// Section ids (part of the format).
const (
	SectionType     = 1
	SectionImport   = 2
	SectionFunction = 3
	SectionMemory   = 5
	SectionGlobal   = 6
	SectionExport   = 7
	SectionCode     = 10
	SectionData     = 11
)

// ValType is a value type. The backend computes on integers only (numbers
// are fixed-point int64), so no float type is offered.
type ValType byte

// The value types (part of the format).
const (
	I32 ValType = 0x7f
	I64 ValType = 0x7e
)

// ExternKind is the kind of an import or export.
type ExternKind byte

// The extern kinds (part of the format).
const (
	ExternFunc   ExternKind = 0x00
	ExternMemory ExternKind = 0x02
	ExternGlobal ExternKind = 0x03
)

// FuncType is a function type.
type FuncType struct {
	Params, Results []ValType
}

// Import is an imported function of type Type.
type Import struct {
	Module, Name string
	Type         uint32
}

// Func is a defined function: its type, its locals (after the parameters,
// one entry a local) and its body, the instructions without the final end,
// which Encode adds.
type Func struct {
	Type   uint32
	Locals []ValType
	Body   []byte
}

// Memory is the module's memory, in pages of 64 KiB. A Max equal to Min
// makes a memory that cannot grow.
type Memory struct {
	Min, Max uint32
}

// Global is a global of type Type initialized to the constant Init.
type Global struct {
	Type    ValType
	Mutable bool
	Init    int64
}

// Export exports the function, memory or global of Index as Name.
type Export struct {
	Name  string
	Kind  ExternKind
	Index uint32
}

// Data is an active data segment: Bytes copied into memory 0 at Offset
// when the module is instantiated.
type Data struct {
	Offset uint32
	Bytes  []byte
}

// Module is a module to encode. The zero Module encodes to the 8 bytes of
// an empty module.
type Module struct {
	Types   []FuncType
	Imports []Import
	Funcs   []Func
	Memory  *Memory
	Globals []Global
	Exports []Export
	Data    []Data
}

// Encode returns the binary form of m, or an error wrapping ErrInvalid.
// The same Module always gives the same bytes.
func (m *Module) Encode() ([]byte, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	out := append(Magic[:0:0], Magic[:]...)
	out = append(out, Version[:]...)
	var sec []byte
	section := func(id byte, n int, body func()) {
		if n == 0 {
			return
		}
		sec = AppendUleb128(sec[:0], uint64(n))
		body()
		out = append(out, id)
		out = AppendUleb128(out, uint64(len(sec)))
		out = append(out, sec...)
	}
	section(SectionType, len(m.Types), func() {
		for _, t := range m.Types {
			sec = append(sec, 0x60)
			sec = appendValTypes(sec, t.Params)
			sec = appendValTypes(sec, t.Results)
		}
	})
	section(SectionImport, len(m.Imports), func() {
		for _, im := range m.Imports {
			sec = appendName(sec, im.Module)
			sec = appendName(sec, im.Name)
			sec = append(sec, byte(ExternFunc))
			sec = AppendUleb128(sec, uint64(im.Type))
		}
	})
	section(SectionFunction, len(m.Funcs), func() {
		for _, f := range m.Funcs {
			sec = AppendUleb128(sec, uint64(f.Type))
		}
	})
	if m.Memory != nil {
		section(SectionMemory, 1, func() {
			sec = append(sec, 0x01) // limits with a maximum
			sec = AppendUleb128(sec, uint64(m.Memory.Min))
			sec = AppendUleb128(sec, uint64(m.Memory.Max))
		})
	}
	section(SectionGlobal, len(m.Globals), func() {
		for _, g := range m.Globals {
			sec = append(sec, byte(g.Type), b2b(g.Mutable))
			sec = appendConst(sec, g.Type, g.Init)
			sec = append(sec, OpEnd)
		}
	})
	section(SectionExport, len(m.Exports), func() {
		for _, e := range m.Exports {
			sec = appendName(sec, e.Name)
			sec = append(sec, byte(e.Kind))
			sec = AppendUleb128(sec, uint64(e.Index))
		}
	})
	section(SectionCode, len(m.Funcs), func() {
		var body []byte
		for _, f := range m.Funcs {
			body = appendLocals(body[:0], f.Locals)
			body = append(body, f.Body...)
			body = append(body, OpEnd)
			sec = AppendUleb128(sec, uint64(len(body)))
			sec = append(sec, body...)
		}
	})
	section(SectionData, len(m.Data), func() {
		for _, d := range m.Data {
			sec = append(sec, 0x00) // memory 0
			sec = appendConst(sec, I32, int64(int32(d.Offset)))
			sec = append(sec, OpEnd)
			sec = AppendUleb128(sec, uint64(len(d.Bytes)))
			sec = append(sec, d.Bytes...)
		}
	})
	return out, nil
}

// check finds the references Encode would write out of range.
func (m *Module) check() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, a...)...)
	}
	nt := uint32(len(m.Types))
	for i, im := range m.Imports {
		if im.Type >= nt {
			return bad("import %d: type %d of %d", i, im.Type, nt)
		}
		if !utf8.ValidString(im.Module) || !utf8.ValidString(im.Name) {
			return bad("import %d: name is not UTF-8", i)
		}
	}
	for i, f := range m.Funcs {
		if f.Type >= nt {
			return bad("function %d: type %d of %d", i, f.Type, nt)
		}
	}
	if m.Memory != nil && (m.Memory.Min > m.Memory.Max || m.Memory.Max > 65536) {
		return bad("memory limits %d..%d", m.Memory.Min, m.Memory.Max)
	}
	for i, g := range m.Globals {
		if g.Type != I32 && g.Type != I64 {
			return bad("global %d: type %#x", i, byte(g.Type))
		}
	}
	seen := make(map[string]bool, len(m.Exports))
	for _, e := range m.Exports {
		var n int
		switch e.Kind {
		case ExternFunc:
			n = len(m.Imports) + len(m.Funcs)
		case ExternGlobal:
			n = len(m.Globals)
		case ExternMemory:
			n = 0
			if m.Memory != nil {
				n = 1
			}
		default:
			return bad("export %q: kind %#x", e.Name, byte(e.Kind))
		}
		if e.Index >= uint32(n) {
			return bad("export %q: index %d of %d", e.Name, e.Index, n)
		}
		if seen[e.Name] || !utf8.ValidString(e.Name) {
			return bad("export %q: duplicate or not UTF-8", e.Name)
		}
		seen[e.Name] = true
	}
	if len(m.Data) > 0 && m.Memory == nil {
		return bad("data without a memory")
	}
	return nil
}

func b2b(b bool) byte {
	if b {
		return 1
	}
	return 0
}

func appendValTypes(dst []byte, ts []ValType) []byte {
	dst = AppendUleb128(dst, uint64(len(ts)))
	for _, t := range ts {
		dst = append(dst, byte(t))
	}
	return dst
}

func appendName(dst []byte, s string) []byte {
	dst = AppendUleb128(dst, uint64(len(s)))
	return append(dst, s...)
}

// appendLocals writes the local declarations: runs of one type, in order.
func appendLocals(dst []byte, locals []ValType) []byte {
	runs := 0
	for i := range locals {
		if i == 0 || locals[i] != locals[i-1] {
			runs++
		}
	}
	dst = AppendUleb128(dst, uint64(runs))
	for i := 0; i < len(locals); {
		j := i
		for j < len(locals) && locals[j] == locals[i] {
			j++
		}
		dst = AppendUleb128(dst, uint64(j-i))
		dst = append(dst, byte(locals[i]))
		i = j
	}
	return dst
}

func appendConst(dst []byte, t ValType, v int64) []byte {
	if t == I32 {
		return AppendSleb128(append(dst, OpI32Const), int64(int32(v)))
	}
	return AppendSleb128(append(dst, OpI64Const), v)
}

// AppendUleb128 appends v as unsigned LEB128: seven bits a byte, least
// significant first, the high bit set on every byte but the last.
func AppendUleb128(dst []byte, v uint64) []byte {
	for v >= 0x80 {
		dst = append(dst, byte(v)|0x80)
		v >>= 7
	}
	return append(dst, byte(v))
}

// AppendSleb128 appends v as signed LEB128: seven bits a byte, least
// significant first, until the rest is all sign and the last byte's bit 6
// carries it.
func AppendSleb128(dst []byte, v int64) []byte {
	for {
		b := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && b&0x40 == 0) || (v == -1 && b&0x40 != 0) {
			return append(dst, b)
		}
		dst = append(dst, b|0x80)
	}
}
