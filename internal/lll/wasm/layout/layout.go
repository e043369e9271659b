// Package layout is the contract between the host and a compiled module:
// where the host writes a span, where the guest writes its answer, which
// globals it exports and what its trap codes mean. Everything here is part
// of the format of the modules the backend emits; codegen writes code
// against it and the host (package vm) fills and reads memory by it.
//
// # Memory
//
// One memory of MemoryPages pages, minimum = maximum (it cannot grow):
//
//	ConstBase 0x0000  constants the compiler places (the strings of in [...]),
//	                  at most ConstSize bytes, a data segment of the module
//	OutBase   0x4000  the answer: u32 reason (Reason*), u32 member index
//	                  (for ReasonUnknown: which member of the member list;
//	                  after TrapFuel: the charge point where fuel ran out,
//	                  an index into the compiler's table of them)
//	          +8      after TrapFault: i64 a, i64 b, the operands of the
//	                  operator that failed (numbers in millionths,
//	                  durations and instants in nanoseconds; for
//	                  FaultOrder and FaultType strings: offset<<32 |
//	                  length, or -1<<32 for null; for a builtin, a is its
//	                  argument); the first word is then the fault
//	                  (Fault*), the second the operator's charge point
//	          +24     after a return: i64 the fuel left (OutFuel)
//	          +32     after an event validator's EventPassed: i64 the
//	                  byte budget left (OutBytes)
//	EnvBase   0x4040  what a run may see of the world, written by the host
//	                  before a run when the module reads any of it
//	                  (EnvSize bytes):
//	          +0      u32 the feature flags the module reads, bit i for
//	                  the i-th of codegen's Output.Features
//	          +4      u32 0
//	          +8      i64 a value for each policy value the module reads
//	                  (codegen's Output.Policies, at most EnvMaxPolicies),
//	                  as the run resolves it: a number in millionths, a
//	                  duration in nanoseconds, a bool 0 or 1, a string
//	                  offset<<32 | length (or -1<<32 for null), a list
//	                  (read by in) the address<<32 | count of its values
//	                  (i64s, among the strings; 0 for null)
//	   +EnvData       i64 the bytes the run's first read of data charges
//	                  to the byte budget (0 when the span has no data)
//	   +EnvDataRefs   for each data.PATH the module reads (codegen's
//	                  Output.Data, at most EnvMaxData): i64 the kind of
//	                  its value in the span (an ir.Kind: null when the
//	                  span has no data or no such path), i64 its value as
//	                  a policy value's
//	   +EnvStrings    the bytes of those strings and lists
//	InBase    0x8040  the input, written by the host in one copy per span:
//	          +0      u32 member count n
//	          +4      u32 the member bits (InMembers): bit f set when the
//	                  span has a member of field f, bit 0 when it has one
//	                  that is no span field
//	          +8      SlotCount slots of SlotSize bytes, slot f for field f
//	          +MembersOff  n bytes: the field id of each top-level member,
//	                  in canonical order (0 for a name the span has no field of)
//	          then    the bytes of the string fields the module reads
//	                  (codegen's Output.Strings), which their slots point
//	                  at (and of confirmed_by's strings and their values,
//	                  when the module reads them)
//	ScratchBase 0x20000  the strings a run makes (lower, upper, +), one
//	                  after the other from its start, ScratchSize bytes
//	                  (128 KiB): what does not fit traps with
//	                  TrapUnsupported (the interpreter, whose byte budget
//	                  is 4 MiB by default, answers that run). The guest
//	                  keeps its next free byte in a global of its own,
//	                  reset when a validator starts.
//
// All integers are little-endian, as WebAssembly loads them.
//
// # Slots
//
// Slot f (f a spanfield.Field, 1..9, in the order package spanfield
// fixes) describes one top-level member of the span, as the span decoder
// (package span) decoded it, the decoder the interpreter uses too:
//
//	+0  u8   kind (Kind*)
//	+1  u8   flags (Flag*)
//	+2  u16  0
//	+4  u32  length: bytes of a string, elements of a list, bytes of the
//	         canonical JSON of an object
//	+8  u32  offset of a string's bytes in memory when the module reads
//	         them (codegen's Output.Strings), else 0; for confirmed_by, when
//	         the module reads its strings (codegen's Output.ConfirmedBy),
//	         the offset of their values (i64 offset<<32 | length each,
//	         after their bytes); 0 otherwise
//	+12 u32  0
//	+16 i64  value: for when, its instant in Unix nanoseconds when FlagTime
//
// # Globals and traps
//
// The module exports GlobalFuel (a mutable i64), GlobalTrap (a mutable
// i32) and GlobalBytes (a mutable i64). Each span validator is an exported
// function (i64 fuel, i64 bytes) -> i32 named ValidatorExport(name), called
// with the run's step budget and byte budget: it sets fuel and bytes to
// them and trap to TrapNone, runs the validator, stores the fuel left at
// OutBase+OutFuel, and returns 0 when the span passes, else 1 + the index
// of the rule that fails, its reason in the output words. (The host passes
// the budgets and reads the fuel left through the call and memory, cheaper
// than setting and reading globals from outside.)
//
// The guest decrements fuel at the points where the interpreter counts a
// step and traps (TrapFuel) when it falls below zero, so budget - fuel
// after a call (the fuel global after a trap, the output's word after a
// return) is the steps the interpreter would have counted. The guest
// subtracts from bytes what the interpreter charges where it charges it (a
// list literal, the list of confirmed_by, the first read of data, the case
// of a string, a concatenation) and traps with FaultBytes when it falls
// below zero. Before executing unreachable the guest stores its reason in
// trap; a trap with trap = 0 is a fault of the module itself.
//
// # Imports
//
// A module imports exactly the host calls its compiled code makes, each
// from module ImportModule ("lll") under the call's name, sorted by name
// (so the import section, and the function indices after it, depend only
// on the program). A host links only the calls the bundle's capabilities
// grant (crypto.verify needs none): a module that imports another cannot
// be instantiated. Values cross as the guest holds them (no floats): a
// string is the i64 offset<<32 | length of its bytes in memory (a string
// field passed to a call is one the module reads: the host copied its
// bytes to the input region), null (-1<<32) among strings; a number an i64 of millionths; a bool an i64 0
// or 1 (an i32 on the guest's stack); a duration or an instant i64
// nanoseconds.
//
// The host calls of expressions (env.get, kv.get, crypto.verify) are
// functions
//
//	(i32 point, i32 want, i32 scratch, i64 arg...) -> i64
//
// with one i64 argument a parameter of the call (all strings, or null).
// point is the charge point of the call (codegen's Output.Points); want
// is the ir.Kind the code reads of the result (String: a string or null;
// Number; Bool; Any: a value the code only passes on to an action, whose
// result is its index in the host's table of the run's values, the host
// charging its bytes); scratch is the guest's next free byte of the scratch
// region, where the host writes the bytes of a string result (the guest
// then moves its next free byte past them). The result is the value in
// the representation of want. The guest charges the step and the bytes of
// the arguments before the call and the bytes of the result after it,
// where the interpreter charges them. A host that cannot answer as the
// interpreter would (the call fails, the value is of another kind than
// want, the string does not fit the scratch region) stores
// TrapUnsupported in the trap global and aborts the call: the interpreter
// answers the run. A call the host performed and that failed stores
// TrapHost and the call's charge point in the second output word, and
// aborts the call: the run fails with the interpreter's error (LLL104).
// A call made without a host is TrapUnsupported.
//
// The actions of routers (ledger.append, kv.set, ws.send, http.request)
// are functions
//
//	(i32 route, i32 args) -> ()
//
// route is the index of the route in codegen's Output.Routes; args the
// address of the route's argument record in the scratch region: the
// values of the leaves of its argument expressions (constants, fields,
// operators; map and list literals are not leaves, the host knows their
// keys and lengths from the program), ActionLeafSize bytes each, in the
// order the interpreter evaluates them, of the kinds Output.Routes lists
// (Any: a handle, see AnyData).
// The host rebuilds the arguments, adds the input when the route omits
// it (the span's canonical JSON, charged to the byte budget as the
// interpreter charges it), and records the action as the interpreter's
// Router.Route returns it (telling a Stager host of it at once, as the
// interpreter does; a Stager that fails it is TrapHost at the route's
// charge point). Each router is an exported function (i64 fuel, i64
// bytes) -> i32 named RouterExport(name), called as a span validator's
// export is (it sets fuel, bytes and trap from its parameters and stores
// the fuel left at OutBase+OutFuel before it returns): 0 when it ran to
// its end.
package layout

import "github.com/loglineos/loglineos/internal/lll/eval/spanfield"

// Memory layout (part of the format).
const (
	PageSize    = 64 << 10
	MemoryPages = 4
	ConstBase   = 0x0000
	ConstSize   = 0x4000
	OutBase     = 0x4000
	EnvBase     = 0x4040
	EnvSize     = 0x4000
	// Offsets in the env region and its limits.
	EnvPolicies    = 8
	EnvMaxPolicies = 64
	EnvData        = EnvPolicies + 8*EnvMaxPolicies
	EnvDataRefs    = EnvData + 8
	EnvMaxData     = 64
	EnvStrings     = EnvDataRefs + 16*EnvMaxData
	InBase         = EnvBase + EnvSize
	InMembers      = 4 // the member bits, in the input region
	SlotCount      = spanfield.Count
	SlotSize       = 24
	MembersOff     = 8 + SlotCount*SlotSize
	// InSize is room for the input: a span whose table is larger is
	// refused by the host.
	InSize      = ScratchBase - InBase
	ScratchBase = 2 * PageSize
	ScratchSize = MemoryPages*PageSize - ScratchBase
)

// Offsets within a slot (part of the format).
const (
	SlotKind   = 0
	SlotFlags  = 1
	SlotLen    = 4
	SlotOffset = 8
	SlotValue  = 16
)

// Slot returns the address of the slot of f.
func Slot(f spanfield.Field) uint32 { return InBase + 8 + uint32(f)*SlotSize }

// Kinds of a slot (part of the format).
const (
	KindAbsent  = 0
	KindString  = 1
	KindStrings = 2 // a list of strings (confirmed_by)
	KindObject  = 3 // a JSON object (data); its bytes are not copied
	KindOther   = 4 // any other JSON value
)

// Flags of a slot (part of the format).
const (
	FlagMember = 1 << 0 // the member is present in the span, even if empty
	FlagTime   = 1 << 1 // when: a valid RFC 3339 timestamp, its instant in the value
)

// Reasons a rule fails, in the first output word (part of the format).
const (
	ReasonRequired = 1 // a required field is absent
	ReasonEmpty    = 2 // a required string field is present but empty
	ReasonFormat   = 3 // a field does not match the rule's format
	ReasonNotOneOf = 4 // a field is not one of the rule's values
	ReasonUnknown  = 5 // a member the closed rule does not allow; its index in the second word
	ReasonCheck    = 6 // a check rule's condition does not hold
	ReasonValue    = 7 // the value of a field below data (data.gross) or of a string field does not match the rule's format
)

// Exported globals (part of the format).
const (
	GlobalFuel  = "fuel"
	GlobalTrap  = "trap"
	GlobalBytes = "bytes"
)

// Trap codes, in the trap global (part of the format).
const (
	TrapNone        = 0
	TrapFuel        = 1 // the step budget is exhausted (the interpreter's LLL100); the second output word is the charge point
	TrapUnsupported = 2 // an input the module was not compiled for (data that is not an object, strings over ScratchSize, a value below data of another kind than the code reads): the host asks the interpreter
	TrapFault       = 3 // an expression failed (the interpreter's LLL102, LLL103); the output words say how and where
	TrapHost        = 4 // a host call failed (the interpreter's LLL104): set by the host, which holds the error; the second output word is the call's charge point
)

// Faults of an expression, in the first output word after TrapFault (part
// of the format).
const (
	FaultOverflow = 1 // arithmetic overflow
	FaultDivZero  = 2 // division by zero
	FaultOrder    = 3 // an order of strings of which one is null (the interpreter's LLL102)
	FaultBytes    = 4 // the byte budget ran out (the interpreter's LLL105)
	FaultType     = 5 // an operator or builtin of a value it does not take: + or lower of null (LLL102)
)

// Offsets in the output of the operands of a fault and of the fuel left
// (part of the format).
const (
	OutA = 8
	OutB = 16
	// OutBytes: the byte budget left, stored by an event validator's
	// export when it returns EventPassed (the emit step continues it).
	OutBytes = 32
	// OutFuel: the fuel left, stored by a validator's export when it
	// returns.
	OutFuel = 24
)

// ValidatorExport returns the export name of the span validator name.
func ValidatorExport(name string) string { return "validator:" + name }
