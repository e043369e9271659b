package layout

// Event validators (validators whose input is a derived event,
// trajectory_quality...) read the event from an input table the host
// writes at EventBase (the input region: a run reads a span or an event,
// never both) in one copy per event:
//
//	+0  u32  the number n of the event's values the module reads
//	         (codegen's Output.EventFields, at most EventMaxFields)
//	+4  u32  0
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
//	then the bytes of its strings, which slots point at.
//
// An event validator is an exported function (i64 fuel, i64 bytes) -> i32
// named EventExport(name), called as a span validator's export is (it
// sets fuel, bytes and trap from its parameters and stores the fuel left
// at OutBase+OutFuel before it returns): EventSkipped when its guard does
// not hold (the interpreter's Result.Applied false), EventPassed when its
// rules pass, else EventPassed + 1 + the index of the check rule that
// fails (its reason, ReasonCheck, in the first output word). Its traps
// are the span validators'. The event the validator emits, if any, is
// built by the host after a run that passes.
//
// The kernels of expressions (percentile, window_count) are imported
// from ImportModule under their names, as the host calls of expressions
// are ((i32 point, i32 want, i32 scratch, i64 arg...) -> i64, an argument
// a number in millionths or a string as the call's parameter is); the
// host calls the run's kernels (eval.Env.Kernels) with the interpreter's
// arguments and input.
const (
	EventBase      = InBase
	EventSlots     = EventBase + 8
	EventMaxFields = 64
	EventSkipped   = 0
	EventPassed    = 1
)

// EventExport returns the export name of the event validator name.
func EventExport(name string) string { return "event:" + name }
