package layout

// Event validators (validators whose input is a derived event,
// trajectory_quality...) read the event from an input table the host
// writes at EventBase (the input region: a run reads a span or an event,
// never both) in one copy per event:
//
//	+0  u32  the number n of the event's values the validator reads
//	         (codegen's Output.EventFields of the validator, at most
//	         EventMaxFields; each validator numbers its own from 0)
//	+4  u32  the number of kernel answers the host wrote (see Kernels)
//	+8  n slots of SlotSize bytes, slot i the value of the i-th member
//	    path (score, components.mass) as the interpreter reads it
//	    (the member, walked down its path; null when absent):
//	      +0  u8   its kind (an ir.Kind: null, bool, number, string,
//	               duration, timestamp; any other kind is written with
//	               its kind alone)
//	      +4  u32  a string's length (0 for null)
//	      +8  u32  a string's offset in memory (2^32-1 for null), so that
//	               the i64 at +4 is the string's offset<<32 | length, or
//	               -1<<32 for null, as strings are held on the stack
//	      +16 i64  a number in millionths, a bool 0 or 1, a duration or
//	               an instant in nanoseconds
//	EventKernels  EventMaxKernels i64: the answers of the run's kernel
//	    calls, in the order of the calls (numbers in millionths)
//	EventStrings  the bytes of the slots' strings, which slots point at.
//
// An event validator is an exported function (i64 fuel, i64 bytes) -> i32
// named EventExport(name), called as a span validator's export is (it
// sets fuel, bytes and trap from its parameters and stores the fuel left
// at OutBase+OutFuel before it returns): EventSkipped when its guard does
// not hold (the interpreter's Result.Applied false), EventPassed when its
// rules pass (the byte budget left at OutBase+OutBytes), EventKernel when it needs a kernel's answer (see Kernels),
// else EventPassed + 1 + the index of the check rule that fails (its
// reason, ReasonCheck, in the first output word). Its traps are the span
// validators'. The event the validator emits, if any, is built by the host
// after a run that passes.
//
// # Kernels
//
// The kernels of expressions (percentile, window_count) are not imported:
// a call of a Go function from a module's code costs several times a
// whole run of a small validator, so the host answers them between runs.
// The validator counts its kernel calls from 0 (a global of its own, reset
// when it starts); at its k-th call, after its step and the bytes of the
// arguments are charged, it reads the answer at EventKernels + 8k when
// the host wrote more than k answers (the word at +4), and charges the
// bytes of the value returned. Else it stores the call's charge point in
// the second output word, its arguments at OutBase+OutA, OutBase+OutB (as
// the call's parameters are: a number in millionths, a string
// offset<<32 | length), the fuel left at OutBase+OutFuel, and returns
// EventKernel. The host then makes the call through the run's kernels
// (eval.Env.Kernels, with the interpreter's arguments and input), writes
// its answer after the others and calls the validator again, from its
// start, with the same budgets: the run is a function of the event, the
// Env and the answers, so the last call is the run the interpreter makes,
// each kernel called once, in the interpreter's order. A kernel that fails
// is the interpreter's LLL104 at the call's charge point (the fuel used is
// the budget minus the fuel left the validator stored); a value that is
// not a number, or a run that makes more than EventMaxKernels calls, is
// left to the interpreter. A validator has at most EventMaxKernels kernel
// calls in its code, and none runs twice in a run.
const (
	EventBase       = InBase
	EventSlots      = EventBase + 8
	EventMaxFields  = 64
	EventKernels    = EventSlots + SlotSize*EventMaxFields
	EventMaxKernels = 16
	EventStrings    = EventKernels + 8*EventMaxKernels
	EventSkipped    = 0
	EventPassed     = 1
	EventKernel     = 0x7fffffff
)

// EventExport returns the export name of the event validator name.
func EventExport(name string) string { return "event:" + name }
