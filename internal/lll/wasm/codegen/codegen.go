// Package codegen compiles the IR of a program (package ir) to a
// WebAssembly 1.0 module laid out as package layout describes.
//
// It compiles the span validators of a program, one exported function
// each, and compiles a rule exactly as the interpreter (package eval)
// decides it, branch for branch: a top-level field rule
// (require/allow field F [as FORMAT] [in [...]]) along the interpreter's
// fast path over the span's fields (and the format nonempty on a string
// field, which the slow path decides the same), reject unknown fields as a
// loop over the member list, require/allow field "data.PATH" [as FORMAT]
// [in [...]] along the slow path (the formats string, nonempty, number,
// integer, bool, array and object, decided by the value's kind; see
// dataRule). Those rules are checked by the interpreter without counting
// steps, so the code for them charges no fuel either.
//
// Guards and check rules are compiled for a subset of expressions (see
// expr.go): constants, the values of the top-level string fields, has over
// a top-level field, values below data (data.gross) and has of them,
// feature flags, policy values that are numbers, bools, strings or
// durations, duration constants, the instant of when, ==, !=, <, <=, >, >=
// over numbers, durations, instants and strings, in over a list literal,
// over confirmed_by and over a policy value that is a list of strings or
// of numbers, matches, len of a string and of confirmed_by, lower and
// upper of a string, the concatenation of strings, +, -, *, / and unary
// minus over numbers, the arithmetic of durations and instants the
// interpreter has (duration ± duration, instant ± duration, instant -
// instant, duration * number, number * duration, duration / number,
// -duration), not, and, or. Fuel is charged where the interpreter counts a
// step and in the same order (every operator but not, and, or and neg,
// before its operands), so a module runs out of fuel at the step the
// interpreter does; the charge points are listed in Output.Points for the
// host to word that violation.
//
// Feature flags and policy values are read from the env region
// (layout.EnvBase), which the host writes for each run from its Env: the
// flags the module reads (Output.Features) as bits, the policy values
// (Output.Policies) as the run resolves them, each compiled for the kind
// of the program's own value; a run whose value is of another kind is the
// interpreter's to answer (the host does not call the module).
//
// A value below a span's data is known only at run time: it is compiled
// as the kind the expression around it fixes (data.gross > 10: a number;
// lower(data.note): a string; a condition: a bool; two such values
// compared fix none and are refused) and read from the env region, where
// the host writes each path's kind and value for the span (eval.SpanData,
// eval.Walk); a value of another kind traps with layout.TrapUnsupported.
// The run's first read of data charges the byte budget what the
// interpreter's decoding of it charges.
//
// The instant of when is read from its slot when the span's when is RFC
// 3339 (layout.FlagTime); an absent, empty or invalid when (the
// interpreter's null, or its LLL102) traps with layout.TrapUnsupported.
//
// Arithmetic is the interpreter's on millionths (on nanoseconds for
// durations and instants), bit for bit: sums checked for overflow,
// products and quotients through a 128-bit a*b/c that reports overflow
// where eval's mulDiv does, division by zero refused, the negation of the
// smallest number wrapping to itself as eval's does. A fault traps with
// layout.TrapFault, the fault, the operands (their kinds in the charge
// point) and the operator's charge point in the output, for the host to
// word the interpreter's LLL103 violation. Strings are ordered by their bytes as
// strings.Compare orders them; a null among them traps with FaultOrder,
// for the interpreter's LLL102 ("cannot order").
//
// Strings a run makes (lower, upper, +) are written in the scratch region
// (layout.ScratchBase); the byte budget is charged where and as the
// interpreter charges it (a list literal, the case of a string, a
// concatenation; eval.ValueBytes), a budget that runs out trapping with
// FaultBytes for the interpreter's LLL105; lower or upper of a null and a
// concatenation with a null trap with FaultType (LLL102). lower and upper
// map every rune as strings.ToLower and strings.ToUpper do, with the
// compiler's table of Unicode's cases (unicode.CaseRanges, 5 KiB of
// constants) in the module, whose version Output.Unicode records. A run
// whose strings do not fit the scratch region traps with
// layout.TrapUnsupported and the host asks the interpreter.
//
// x matches "glob" (the pattern is a constant) is compiled to a matcher
// of that pattern that does what Go's path.Match does with it, step for
// step (see glob.go), on every input: runes decoded as
// utf8.DecodeRuneInString decodes them; a null x does not match.
//
// Host calls are the module's imports (imports.go, and package layout's
// Imports): env.get, kv.get (read as the kind the place of the call
// wants, as a value below data is) and crypto.verify in expressions, the
// actions of routes. The routers whose input is a span, and those of
// other inputs that do not read them (see Routers), are compiled to one
// exported function each (router.go): their routes in order, each guard,
// then the leaves of the action's arguments written to a record in the
// scratch region and the action's imported function called; other
// routers are not part of the module.
//
// What it does not compile yet it refuses with an error wrapping
// ErrUnsupported, never approximates: other operators and builtins (index,
// map and list values but as an action's argument), policy values of
// other kinds (percentiles, timestamps, maps, lists but in), kernels, a
// kv.get whose kind the expression does not fix, an action's argument
// whose kind is known only at run time, the values of
// confirmed_by and data themselves (len and in of confirmed_by aside), two
// values below data compared with each other, formats other than those
// named above (the interpreter's fast path for a top-level field: rfc3339
// on when, string and nonempty on a string field, array and
// array_of_strings on confirmed_by, object on data; and those below data),
// in [...] on when, confirmed_by or data. Pipelines are not part of the
// module.
//
// Event validators (event.go) are compiled to one exported function each,
// deciding their guard and check rules over the event's values, the
// kernels of expressions answered by the host between runs (package
// layout, Kernels); one that uses what is not compiled is left to the
// interpreter (Output.EventsLeft).
//
// The module's functions are, in order: the imported host calls (sorted
// by name), streq (the byte equality of two strings in memory), one
// function a span validator, in the order of the program, one a router
// (see Routers), one an event validator, then the helpers expressions use (string equality, a*b/c,
// string order, the rune decoder, a glob's chunks followed by its
// matcher, the case of a string, concatenation), in the order of their
// first use. Besides the module, Output lists what the
// host needs to run it (charge points, feature flags, policy values, paths
// below data, whether it reads confirmed_by's strings, the string fields
// whose bytes it reads, the Unicode version of its case table): whoever stores a module must store those with it.
package codegen

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/loglineos/loglineos/internal/lll/abi"
	"github.com/loglineos/loglineos/internal/lll/eval/spanfield"
	"github.com/loglineos/loglineos/internal/lll/ir"
	"github.com/loglineos/loglineos/internal/lll/wasm/enc"
	"github.com/loglineos/loglineos/internal/lll/wasm/layout"
)

// ErrUnsupported is wrapped by the errors of Compile for a program that
// uses what the backend does not compile yet.
var ErrUnsupported = errors.New("codegen: not supported by the wasm backend yet")

// Output is a compiled module. Its description (every field but Wasm)
// has a JSON form, which bundles carry beside the module.
type Output struct {
	// Wasm is the binary module.
	Wasm []byte `json:"-"`
	// Validators names the span validators the module exports, in order.
	Validators []string `json:"validators"`
	// Points are the module's charge points, by the index the module
	// reports when its fuel runs out at one.
	Points []Point `json:"points"`
	// Features are the feature flags the module reads, by their bit in
	// the env region (layout.EnvBase).
	Features []string `json:"features,omitempty"`
	// Policies are the policy values the module reads, by their index
	// in the env region's table.
	Policies []PolicyRef `json:"policies,omitempty"`
	// Data are the paths below a span's data (data.PATH) the module
	// reads, by their index in the env region's table of them.
	Data [][]string `json:"data,omitempty"`
	// ConfirmedBy says that the module reads the strings of confirmed_by:
	// the host writes them in the input region and their values (i64s,
	// offset<<32 | length) after them, the slot's offset pointing at
	// those.
	ConfirmedBy bool `json:"confirmed_by,omitempty"`
	// Strings are the string fields (id ... status, when's text
	// included) whose bytes the module reads (in an expression, an in
	// [...], or passed to a host call or an action), in the order of
	// package spanfield: the host copies the bytes of those only, and the slot of
	// any other string field has its length but offset 0. (An event
	// validator reads the event table, whose strings are always copied.)
	Strings []string `json:"strings,omitempty"`
	// Unicode is the version of Unicode (unicode.Version) of the case
	// table the module carries for lower and upper, "" without one: a
	// host of another version must not run the module.
	Unicode string `json:"unicode,omitempty"`
	// Imports are the host calls the module imports (layout.ImportModule),
	// sorted: a host links them only when the bundle's capabilities
	// grant them.
	Imports []string `json:"imports,omitempty"`
	// Routers names the routers the module exports (see Routers), in
	// order.
	Routers []string `json:"routers,omitempty"`
	// Routes are the routes of those routers, by the index an action's
	// host function receives.
	Routes []Route `json:"routes,omitempty"`
	// Events names the event validators the module exports, in order
	// (event.go); the others run on the interpreter.
	Events []string `json:"events,omitempty"`
	// EventFields are, for each event validator that reads any, the
	// values of the event (a member and the path below it) it reads, by
	// their slot in the event table (layout.EventBase): the host writes
	// those of the validator it runs.
	EventFields map[string][][]string `json:"event_fields,omitempty"`
	// Kernels are the kernels of expressions the module's event
	// validators call (percentile, window_count), sorted. They are not
	// imported: the host answers them between runs (see package layout,
	// Kernels), and they need no capability.
	Kernels []string `json:"kernels,omitempty"`
	// EventsLeft says, for each event validator the module does not
	// export, why (the ErrUnsupported of its construct). It is not part
	// of the description.
	EventsLeft map[string]string `json:"-"`
}

// SameDescription reports whether o and x describe their modules alike
// (everything but the bytes: validators, charge points, what the host
// writes for the module): a host checks the description of a module it
// loads against what Compile makes of the program, so that a description
// that lost a field cannot make the module read what the host did not
// write.
func (o *Output) SameDescription(x *Output) bool {
	return slices.Equal(o.Validators, x.Validators) && slices.Equal(o.Points, x.Points) &&
		slices.Equal(o.Features, x.Features) &&
		slices.EqualFunc(o.Policies, x.Policies, func(a, b PolicyRef) bool {
			return a.Name == b.Name && slices.Equal(a.Path, b.Path) && a.Kind == b.Kind && a.Elem == b.Elem
		}) &&
		slices.EqualFunc(o.Data, x.Data, slices.Equal) && o.ConfirmedBy == x.ConfirmedBy && slices.Equal(o.Strings, x.Strings) && o.Unicode == x.Unicode &&
		slices.Equal(o.Imports, x.Imports) && slices.Equal(o.Routers, x.Routers) &&
		slices.EqualFunc(o.Routes, x.Routes, func(a, b Route) bool {
			return a.Router == b.Router && a.Index == b.Index && a.Point == b.Point && slices.Equal(a.Leaves, b.Leaves)
		}) &&
		slices.Equal(o.Events, x.Events) && slices.Equal(o.Kernels, x.Kernels) &&
		maps.EqualFunc(o.EventFields, x.EventFields, func(a, b [][]string) bool { return slices.EqualFunc(a, b, slices.Equal) })
}

// PolicyRef is a policy value a module reads: policy.Name.Path... The
// host resolves it for each run (eval.Env.PolicyValue) and writes it in
// the env region; the module was compiled for a value of Kind (ir.Number,
// ir.Bool, or ir.String, for which null is written too), and a run whose
// value is of another kind is the interpreter's to answer.
//
// A list (Kind ir.List, read by in) is of values of kind Elem (ir.String
// or ir.Number): the host writes its values as i64s in the env region and
// the policy value as their address<<32 | their count.
type PolicyRef struct {
	Name string   `json:"name"`
	Path []string `json:"path"`
	Kind ir.Kind  `json:"kind"`
	Elem ir.Kind  `json:"elem,omitempty"`
}

// Limits of the env region.
const (
	maxFeatures = 32
	maxPolicies = layout.EnvMaxPolicies
	maxData     = layout.EnvMaxData
)

// The module's types, globals and functions, by index. The span
// validators and the routers follow the imports and streq, one function
// each; the helpers expressions need come after them, in the order of
// their first use.
const (
	typeStreq     = 0 // (i32 ptr, i32 len, i32 ptr, i32 len) -> i32
	typeValidator = 1 // (i64 fuel, i64 bytes) -> i32, a validator's or a router's
	globalFuel    = 0
	globalTrap    = 1
	globalBytes   = 2 // the byte budget left
	globalScratch = 3 // the next free byte of the scratch region (not exported)
	globalData    = 4 // 1 once the run has read data (not exported)
	// globalKernel counts an event validator's kernel calls (not
	// exported; only modules with event validators have it).
	globalKernel = 5
)

// gen is one compilation.
type gen struct {
	prog     *ir.Program
	m        *enc.Module
	out      *Output
	consts   consts
	later    []enc.Func        // the helpers, after the validators
	nextFunc uint32            // the index of the next helper
	streq    uint32            // streq's index (after the imports)
	imports  map[string]uint32 // the index of each imported host call
	strEq    uint32            // the string equality helper, 0 until used
	mulDivFn uint32            // the a*b/c helper, 0 until used
	strCmp   uint32            // the string order helper, 0 until used
	caseFn   uint32            // the lower and upper helper, 0 until used
	concatFn uint32            // the concatenation helper, 0 until used
	decodeFn uint32            // the rune decoder, 0 until used
	globs    map[string]uint32 // the matcher of each glob, by pattern
	strings  uint16            // bit f: the module reads the bytes of string field f (Output.Strings)
}

// Compile compiles the span validators of p, its routers of spans and
// those of its event validators it supports (see event.go).
func Compile(p *ir.Program) (*Output, error) {
	return compileWith(p, EventValidators(p))
}

// compileOnly compiles p with the event validators events.
func compileOnly(p *ir.Program, events []*ir.Validator) (*Output, error) {
	g := &gen{
		prog: p,
		m: &enc.Module{
			Types: []enc.FuncType{
				{Params: []enc.ValType{enc.I32, enc.I32, enc.I32, enc.I32}, Results: []enc.ValType{enc.I32}},
				{Params: []enc.ValType{enc.I64, enc.I64}, Results: []enc.ValType{enc.I32}},
			},
			Funcs:  []enc.Func{{Type: typeStreq, Body: streq()}},
			Memory: &enc.Memory{Min: layout.MemoryPages, Max: layout.MemoryPages},
			Globals: []enc.Global{
				{Type: enc.I64, Mutable: true},
				{Type: enc.I32, Mutable: true},
				{Type: enc.I64, Mutable: true},
				{Type: enc.I32, Mutable: true, Init: layout.ScratchBase},
				{Type: enc.I32, Mutable: true},
			},
			Exports: []enc.Export{
				{Name: layout.GlobalFuel, Kind: enc.ExternGlobal, Index: globalFuel},
				{Name: layout.GlobalTrap, Kind: enc.ExternGlobal, Index: globalTrap},
				{Name: layout.GlobalBytes, Kind: enc.ExternGlobal, Index: globalBytes},
				{Name: "memory", Kind: enc.ExternMemory},
			},
		},
		out: &Output{},
	}
	var spanValidators []*ir.Validator
	for _, v := range p.Validators {
		if len(v.Input) == 1 && v.Input[0] == abi.InputSpan {
			spanValidators = append(spanValidators, v)
		}
	}
	routers := Routers(p)
	if err := g.importHostCalls(append(spanValidators, events...), routers); err != nil {
		return nil, err
	}
	g.streq = uint32(len(g.m.Imports))
	g.nextFunc = g.streq + 1 + uint32(len(spanValidators)+len(routers)+len(events))
	export := func(name string, f *fn) {
		g.m.Exports = append(g.m.Exports, enc.Export{Name: name, Kind: enc.ExternFunc, Index: g.streq + uint32(len(g.m.Funcs))})
		g.m.Funcs = append(g.m.Funcs, enc.Func{Type: typeValidator, Locals: f.locals, Body: *f.c})
	}
	for _, v := range spanValidators {
		f := &fn{g: g, v: v, name: v.Name, c: &enc.Code{}, locals: []enc.ValType{enc.I32}}
		if err := f.validator(); err != nil {
			return nil, fmt.Errorf("codegen: validator %s: %w", v.Name, err)
		}
		export(layout.ValidatorExport(v.Name), f)
		g.out.Validators = append(g.out.Validators, v.Name)
	}
	for _, r := range routers {
		f := &fn{g: g, router: r, name: r.Name, c: &enc.Code{}, locals: []enc.ValType{enc.I32}}
		if err := f.routes(); err != nil {
			return nil, fmt.Errorf("codegen: router %s: %w", r.Name, err)
		}
		export(layout.RouterExport(r.Name), f)
		g.out.Routers = append(g.out.Routers, r.Name)
	}
	if len(events) > 0 {
		g.m.Globals = append(g.m.Globals, enc.Global{Type: enc.I32, Mutable: true}) // globalKernel
	}
	for _, v := range events {
		f := &fn{g: g, v: v, name: v.Name, c: &enc.Code{}, locals: []enc.ValType{enc.I32}, event: true}
		if err := f.eventValidator(); err != nil {
			return nil, fmt.Errorf("codegen: validator %s: %w", v.Name, err)
		}
		export(layout.EventExport(v.Name), f)
		g.out.Events = append(g.out.Events, v.Name)
		if len(f.fields) > 0 {
			if g.out.EventFields == nil {
				g.out.EventFields = map[string][][]string{}
			}
			g.out.EventFields[v.Name] = f.fields
		}
	}
	g.m.Funcs = append(g.m.Funcs, g.later...)
	for f := spanfield.ID; f <= spanfield.Status; f++ {
		if g.strings&(1<<f) != 0 {
			g.out.Strings = append(g.out.Strings, f.Name())
		}
	}
	c := &g.consts
	if len(c.data) > layout.ConstSize {
		return nil, fmt.Errorf("%w: %d bytes of constants, over %d", ErrUnsupported, len(c.data), layout.ConstSize)
	}
	if len(c.data) > 0 {
		g.m.Data = []enc.Data{{Offset: layout.ConstBase, Bytes: c.data}}
	}
	b, err := g.m.Encode()
	if err != nil {
		return nil, fmt.Errorf("codegen: %w", err)
	}
	g.out.Wasm = b
	return g.out, nil
}

// consts places constant strings in the constant region, once each.
type consts struct {
	data []byte
	at   map[string]uint32
}

func (c *consts) place(s string) uint32 {
	if off, ok := c.at[s]; ok {
		return off
	}
	if c.at == nil {
		c.at = map[string]uint32{}
	}
	off := layout.ConstBase + uint32(len(c.data))
	c.data = append(c.data, s...)
	c.at[s] = off
	return off
}

// streq is func(a, alen, b, blen) -> i32: whether the bytes are equal.
func streq() []byte {
	var c enc.Code
	c.LocalGet(1).LocalGet(3).Op(enc.OpI32Ne).Block(enc.OpIf, enc.BlockEmpty).I32Const(0).Op(enc.OpReturn).Op(enc.OpEnd)
	c.Block(enc.OpBlock, enc.BlockEmpty).Block(enc.OpLoop, enc.BlockEmpty)
	c.LocalGet(1).Op(enc.OpI32Eqz).Index(enc.OpBrIf, 1)
	c.LocalGet(0).Mem(enc.OpI32Load8U, 0, 0).LocalGet(2).Mem(enc.OpI32Load8U, 0, 0).Op(enc.OpI32Ne).
		Block(enc.OpIf, enc.BlockEmpty).I32Const(0).Op(enc.OpReturn).Op(enc.OpEnd)
	for _, l := range []uint32{0, 2} {
		c.LocalGet(l).I32Const(1).Op(enc.OpI32Add).LocalSet(l)
	}
	c.LocalGet(1).I32Const(1).Op(enc.OpI32Sub).LocalSet(1)
	c.Index(enc.OpBr, 0).Op(enc.OpEnd).Op(enc.OpEnd)
	c.I32Const(1)
	return c
}

// validator compiles the body of a span validator's function: it sets the
// fuel and the byte budget from its parameters (locals 0 and 1) and clears
// the trap code; then its guard (a false guard passes), then its rules in
// order, the first that fails returning 1 + its index. Before each return
// it stores the fuel left in the output (layout.OutFuel).
func (f *fn) validator() error {
	v, c := f.v, f.c
	prologue(c)
	if err := f.guard(0); err != nil {
		return err
	}
	for i, r := range v.Rules {
		f.rule = i
		var err error
		switch r.Kind {
		case ir.RuleRequire, ir.RuleAllow:
			if strings.HasPrefix(r.Field, "data.") {
				err = f.dataRule(i, r)
			} else {
				err = fieldRule(f, i, r)
			}
		case ir.RuleClosed:
			closedRule(c, i, r)
		case ir.RuleCheck:
			if err = f.cond(r.Cond); err == nil {
				c.Op(enc.OpI32Eqz).Block(enc.OpIf, enc.BlockEmpty)
				fail(c, i, layout.ReasonCheck)
				c.Op(enc.OpEnd)
			}
		default:
			err = fmt.Errorf("%w: rule %q at %s", ErrUnsupported, r.Source, r.Pos)
		}
		if err != nil {
			return err
		}
	}
	storeFuel(c)
	c.I32Const(0)
	return nil
}

// guard compiles the guard of f's validator, if it has one: when the
// guard does not hold, the function stores the fuel left and returns
// skip.
func (f *fn) guard(skip int32) error {
	if f.v.Guard == nil {
		return nil
	}
	f.rule = -1
	if err := f.cond(f.v.Guard); err != nil {
		return fmt.Errorf("the guard: %w", err)
	}
	c := f.c
	c.Op(enc.OpI32Eqz).Block(enc.OpIf, enc.BlockEmpty)
	storeFuel(c)
	c.I32Const(skip).Op(enc.OpReturn).Op(enc.OpEnd)
	return nil
}

// prologue starts the function of a validator or a router: it sets the
// fuel and the byte budget from its parameters (locals 0 and 1), clears
// the trap code, empties the scratch region and forgets any read of data.
func prologue(c *enc.Code) {
	c.LocalGet(localFuel).Index(enc.OpGlobalSet, globalFuel)
	c.LocalGet(localBytes).Index(enc.OpGlobalSet, globalBytes)
	c.I32Const(layout.TrapNone).Index(enc.OpGlobalSet, globalTrap)
	c.I32Const(layout.ScratchBase).Index(enc.OpGlobalSet, globalScratch)
	c.I32Const(0).Index(enc.OpGlobalSet, globalData)
}

// storeFuel stores the fuel left in the output, as a validator does
// before it returns.
func storeFuel(c *enc.Code) {
	c.I32Const(layout.OutBase).Index(enc.OpGlobalGet, globalFuel).Mem(enc.OpI64Store, 3, layout.OutFuel)
}

// fail writes the reason and the fuel left and returns 1 + the rule's
// index.
func fail(c *enc.Code, rule int, reason int32) {
	c.I32Const(layout.OutBase).I32Const(reason).Mem(enc.OpI32Store, 2, 0)
	storeFuel(c)
	c.I32Const(int32(rule + 1)).Op(enc.OpReturn)
}

func slotLoad(c *enc.Code, f spanfield.Field, op byte, align, off uint32) {
	c.I32Const(int32(layout.Slot(f))).Mem(op, align, off)
}

// fieldRule compiles require/allow field F along the interpreter's fast
// path (eval's spanFieldRule with an empty path).
func fieldRule(fn *fn, i int, r *ir.Rule) error {
	c, g := fn.c, fn.g
	unsupported := func(what string) error {
		return fmt.Errorf("%w: %s in rule %q at %s", ErrUnsupported, what, r.Source, r.Pos)
	}
	f := spanfield.Of(r.Field)
	if f == spanfield.None {
		return unsupported("a field that is not a top-level span field")
	}
	require := r.Kind == ir.RuleRequire
	str := f != spanfield.ConfirmedBy && f != spanfield.Data // a string member (when included)
	// Decide, as eval does, what follows presence, before emitting code.
	var check func()
	// nonempty: a string field's member that is present but empty (which
	// require refuses first) does not match the format.
	nonempty := func() {
		if r.Format == "nonempty" {
			slotLoad(c, f, enc.OpI32Load, 2, layout.SlotLen)
			c.Op(enc.OpI32Eqz).Block(enc.OpIf, enc.BlockEmpty)
			fail(c, i, layout.ReasonValue)
			c.Op(enc.OpEnd)
		}
	}
	switch {
	case r.In != nil && str && f != spanfield.When:
		if r.Format != "" && r.Format != "string" && r.Format != "nonempty" {
			return unsupported("format " + r.Format + " with in [...]")
		}
		var values []string
		for _, x := range r.In {
			if x.Kind() != ir.String {
				return unsupported("a value of in [...] that is not a string")
			}
			values = append(values, x.Str())
		}
		g.strings |= 1 << f
		check = func() {
			nonempty()
			off, n := fn.local(enc.I32), fn.local(enc.I32)
			slotLoad(c, f, enc.OpI32Load, 2, layout.SlotOffset)
			c.LocalSet(off)
			slotLoad(c, f, enc.OpI32Load, 2, layout.SlotLen)
			c.LocalSet(n)
			for _, x := range values {
				c.Block(enc.OpBlock, enc.BlockEmpty) // br 0: not x
				equalConst(c, off, n, x)
				c.Index(enc.OpBr, 1) // x: the rule passes
				c.Op(enc.OpEnd)
			}
			fail(c, i, layout.ReasonNotOneOf)
		}
	case r.In != nil:
		return unsupported("in [...] on " + r.Field)
	case r.Format == "":
		check = func() {}
	case str && f != spanfield.When && r.Format == "nonempty":
		check = nonempty
	case f == spanfield.When && r.Format == "rfc3339":
		check = func() {
			slotLoad(c, f, enc.OpI32Load8U, 0, layout.SlotFlags)
			c.I32Const(layout.FlagTime).Op(enc.OpI32And).Index(enc.OpBrIf, 0)
			fail(c, i, layout.ReasonFormat)
		}
	case f == spanfield.ConfirmedBy && (r.Format == "array" || r.Format == "array_of_strings"),
		str && f != spanfield.When && r.Format == "string":
		check = func() {}
	case f == spanfield.Data && r.Format == "object":
		// Anything but an object leaves the interpreter's fast path; the
		// span decoder refuses such spans, so the module traps rather
		// than guess.
		check = func() {
			slotLoad(c, f, enc.OpI32Load8U, 0, layout.SlotKind)
			c.I32Const(layout.KindObject).Op(enc.OpI32Eq).Index(enc.OpBrIf, 0)
			c.I32Const(layout.TrapUnsupported).Index(enc.OpGlobalSet, globalTrap).Op(enc.OpUnreachable)
		}
	default:
		return unsupported("format " + r.Format + " on " + r.Field)
	}

	c.Block(enc.OpBlock, enc.BlockEmpty) // the rule; br to its end passes it
	if str {
		// present: a non-empty string; a member that is empty is present
		// for allow (its format is checked) and empty for require.
		slotLoad(c, f, enc.OpI32Load, 2, layout.SlotLen)
		c.Op(enc.OpI32Eqz).Block(enc.OpIf, enc.BlockEmpty)
		slotLoad(c, f, enc.OpI32Load8U, 0, layout.SlotFlags)
		c.I32Const(layout.FlagMember).Op(enc.OpI32And).Block(enc.OpIf, enc.BlockEmpty)
		if require {
			fail(c, i, layout.ReasonEmpty)
		}
		c.Op(enc.OpElse)
		if require {
			fail(c, i, layout.ReasonRequired)
		} else {
			c.Index(enc.OpBr, 2)
		}
		c.Op(enc.OpEnd).Op(enc.OpEnd)
	} else {
		slotLoad(c, f, enc.OpI32Load8U, 0, layout.SlotKind)
		c.Op(enc.OpI32Eqz).Block(enc.OpIf, enc.BlockEmpty)
		if require {
			fail(c, i, layout.ReasonRequired)
		} else {
			c.Index(enc.OpBr, 1)
		}
		c.Op(enc.OpEnd)
	}
	check()
	c.Op(enc.OpEnd)
	return nil
}

// equalConst emits the comparison of the string at the i32 locals off
// and n with the constant x, inside a block it leaves (br 0) when they
// differ: the length, then the bytes in as few loads as cover them (i64
// words, the last one overlapping the one before it; i32 words or single
// bytes for strings under 8 bytes), compared with constants, so that no
// byte outside the string is read.
func equalConst(c *enc.Code, off, n uint32, x string) {
	c.LocalGet(n).I32Const(int32(len(x))).Op(enc.OpI32Ne).Index(enc.OpBrIf, 0)
	word := func(op, eq byte, at int) {
		c.LocalGet(off).Mem(op, 0, uint32(at))
		switch op {
		case enc.OpI64Load:
			c.I64Const(int64(binary.LittleEndian.Uint64([]byte(x[at:]))))
		case enc.OpI32Load:
			c.I32Const(int32(binary.LittleEndian.Uint32([]byte(x[at:]))))
		default:
			c.I32Const(int32(x[at]))
		}
		c.Op(eq).Index(enc.OpBrIf, 0)
	}
	switch l := len(x); {
	case l >= 8:
		for at := 0; at+8 <= l; at += 8 {
			word(enc.OpI64Load, enc.OpI64Ne, at)
		}
		if l%8 != 0 {
			word(enc.OpI64Load, enc.OpI64Ne, l-8)
		}
	case l >= 4:
		word(enc.OpI32Load, enc.OpI32Ne, 0)
		if l > 4 {
			word(enc.OpI32Load, enc.OpI32Ne, l-4)
		}
	default:
		for at := range l {
			word(enc.OpI32Load8U, enc.OpI32Ne, at)
		}
	}
}

// closedRule compiles reject unknown fields: the first member whose field
// the rule does not allow (or that is no span field) fails. The member
// bits the host writes decide a span that passes without a loop; the loop
// over the member list finds the member that fails.
func closedRule(c *enc.Code, i int, r *ir.Rule) {
	var mask int32
	for _, a := range r.Allowed {
		if f := spanfield.Of(a); f != spanfield.None {
			mask |= 1 << f
		}
	}
	const j = localMember
	c.Block(enc.OpBlock, enc.BlockEmpty)
	c.I32Const(layout.InBase).Mem(enc.OpI32Load, 2, layout.InMembers).I32Const(^mask).Op(enc.OpI32And).Op(enc.OpI32Eqz).Index(enc.OpBrIf, 0)
	c.I32Const(0).LocalSet(j)
	c.Block(enc.OpBlock, enc.BlockEmpty).Block(enc.OpLoop, enc.BlockEmpty)
	c.LocalGet(j).I32Const(layout.InBase).Mem(enc.OpI32Load, 2, 0).Op(enc.OpI32GeU).Index(enc.OpBrIf, 1)
	c.I32Const(mask).LocalGet(j).Mem(enc.OpI32Load8U, 0, layout.InBase+layout.MembersOff).Op(enc.OpI32ShrU).
		I32Const(1).Op(enc.OpI32And).Op(enc.OpI32Eqz).Block(enc.OpIf, enc.BlockEmpty)
	c.I32Const(layout.OutBase).LocalGet(j).Mem(enc.OpI32Store, 2, 4)
	fail(c, i, layout.ReasonUnknown)
	c.Op(enc.OpEnd)
	c.LocalGet(j).I32Const(1).Op(enc.OpI32Add).LocalSet(j).Index(enc.OpBr, 0)
	c.Op(enc.OpEnd).Op(enc.OpEnd).Op(enc.OpEnd)
}
