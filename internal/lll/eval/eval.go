// Package eval is the interpreter of .lll programs (the EVAL backend).
//
// Compile turns an ir.Program into executable form once: field rules become
// small structs checked by a switch over the span's fields, expressions
// become trees of Go closures with every name already resolved, so running
// a validator over a decoded span does no map lookups and, for the
// canonical contract, no allocation.
//
// Evaluation is pure: feature flags, policy overrides, kernels (stateful Go
// functions such as percentile) and host calls come only from the Env the
// caller passes. Each run (one CheckSpan, CheckEvent, CheckEventWith, Route
// or Enabled) has its own limits, so a run that exceeds one fails alone:
//
//	limit                     Env field  default           error
//	steps                     MaxSteps   DefaultMaxSteps   LLL100
//	the caller's context      -          -                 LLL101
//	bytes of values created   MaxBytes   DefaultMaxBytes   LLL105
//	wall-clock deadline       Timeout    DefaultTimeout    LLL106
//
// Every limit is an *Error, as are runtime type errors (LLL102),
// arithmetic errors (LLL103) and missing kernels (LLL104).
//
// The context and the deadline are looked at every 256 steps (not at
// every step: reading the clock costs more than a step) and after every
// kernel and host call; a host call's context carries the deadline, so a
// slow call can stop early. The byte budget is charged, before the value
// is made where that is possible, for every value a run creates: strings
// of +, lower and upper, list and map literals, the JSON of a span's data
// when a rule reads it, the arguments of a call and the values kernels
// and host calls return. The charge is approximate but errs high (see
// valueSize): a value's 64-byte slot even for a number, a string's bytes,
// a map's entries twice (its keys and values, and the Go map they are
// built from).
package eval

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/bits"
	"slices"
	"strings"
	"time"
	"unsafe"

	"github.com/loglineos/loglineos/internal/lll/abi"
	"github.com/loglineos/loglineos/internal/lll/diag"
	"github.com/loglineos/loglineos/internal/lll/eval/spanfield"
	"github.com/loglineos/loglineos/internal/lll/ir"
	"github.com/loglineos/loglineos/internal/span"
)

// DefaultMaxSteps is the step budget of a run when Env.MaxSteps is zero.
const DefaultMaxSteps = 100_000

// DefaultMaxBytes is the byte budget of a run when Env.MaxBytes is zero:
// 4 MiB, twice what the data of the largest span the default span limits
// admit (64 KiB of zeros in an array) is charged when decoded.
const DefaultMaxBytes = 4 << 20

// DefaultTimeout is how long a run may take when Env.Timeout is zero.
const DefaultTimeout = 50 * time.Millisecond

// Error is a runtime error.
type Error struct {
	Code diag.Code
	Pos  string
	Msg  string
}

func (e *Error) Error() string {
	if e.Pos != "" {
		return fmt.Sprintf("%s: error[%s]: %s", e.Pos, e.Code, e.Msg)
	}
	return fmt.Sprintf("error[%s]: %s", e.Code, e.Msg)
}

// Input is what a run examines: a span, or a derived event or a webhook
// (a map value).
type Input struct {
	Span  *span.Span
	Event ir.Value
}

// Webhook is a webhook the server accepted, as routers of input "webhook"
// (abi.InputWebhook) see it.
type Webhook struct {
	Source     string    // the configured source name ("stripe")
	ID         string    // the webhook-id ("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W")
	ReceivedAt time.Time // when the server accepted it
	Tenant     string
	Payload    []byte // the JSON body; empty for none (payload is then null)
}

// Input returns the webhook as the input of a run: Event is the map
//
//	{source: "stripe", id: "msg_...", received_at: <timestamp>, tenant: "acme", payload: <the decoded body>}
//
// with numbers of the payload read as the language's numbers. It fails
// (an *Error LLL102) when the payload is not one JSON value.
func (w Webhook) Input() (Input, error) {
	payload := ir.NullValue()
	if len(w.Payload) > 0 {
		var err error
		if payload, err = decodeJSON("payload", w.Payload); err != nil {
			return Input{}, err
		}
	}
	return Input{Event: ir.MapValue(map[string]ir.Value{
		"source":      ir.StringValue(w.Source),
		"id":          ir.StringValue(w.ID),
		"received_at": ir.TimestampValue(w.ReceivedAt),
		"tenant":      ir.StringValue(w.Tenant),
		"payload":     payload,
	})}, nil
}

// Kernels provides the stateful kernels (percentile, window_count,
// threshold, components, ...). Implementations live with the state they
// keep (the derivation); the interpreter only calls them. Kernel may not
// keep args after it returns: the interpreter reuses their memory.
type Kernels interface {
	Kernel(ctx context.Context, name string, in Input, args []ir.Value) (ir.Value, error)
}

// Host performs host calls used inside expressions (kv.get, env.get,
// crypto.verify). Capabilities are enforced before a bundle is loaded.
type Host interface {
	Call(ctx context.Context, name string, args []ir.Value) (ir.Value, error)
}

// Env is what a run may see of the world. The zero Env has every feature
// off, the bundle's own policy values, no kernels and no host. Runs read an
// Env, they do not copy it: the maps Features and Policies must not change
// once a run has used them (the compiled backend writes what they hold
// into an instance once per pair of maps); for other values, make new maps.
type Env struct {
	Features map[string]bool
	// Policies overrides policies by name (as from a tenant configuration).
	Policies map[string]*ir.Policy
	Kernels  Kernels
	Host     Host
	// MaxSteps bounds the steps of a run (DefaultMaxSteps when <= 0).
	MaxSteps int64
	// MaxBytes bounds the bytes of the values a run creates
	// (DefaultMaxBytes when <= 0).
	MaxBytes int64
	// Timeout bounds the wall-clock time of a run (DefaultTimeout when
	// zero; a negative Timeout sets no deadline, for runs that must give
	// the same answer whatever the machine's load, such as a replay).
	Timeout time.Duration
}

// Feature reports whether the feature flag name is on (features.NAME).
// A nil Env has every feature off.
func (env *Env) Feature(name string) bool { return env != nil && env.Features[name] }

// PolicyValue returns the value of policy.NAME.PATH... (name, and the key
// and the keys below it in path) in a run with env: env's override of the
// policy's key, else def, the program's own value (see
// Program.PolicyValue). A nil Env overrides nothing.
func (env *Env) PolicyValue(name string, path []string, def ir.Value) ir.Value {
	if env != nil && env.Policies != nil {
		if p := env.Policies[name]; p != nil {
			if f := p.Field(path[0]); f != nil {
				v, _ := walk(f.Value, path[1:])
				return v
			}
		}
	}
	return def
}

type frame struct {
	ctx      context.Context
	env      *Env
	in       Input
	steps    int64
	max      int64
	bytes    int64
	maxBytes int64
	timeout  time.Duration
	deadline time.Time // zero: none
	data     ir.Value
	dataDone bool
	dataErr  error
	// args is a stack of the arguments of the kernel calls in progress,
	// kept from one run to the next when the frame is (see Scratch).
	args []ir.Value
}

type fn func(fr *frame) (ir.Value, error)

func (fr *frame) step(pos string) error {
	fr.steps++
	if fr.steps > fr.max {
		if err := fr.check(pos); err != nil {
			return err
		}
		return budgetError(pos, fr.max)
	}
	if fr.steps&255 == 0 {
		return fr.check(pos)
	}
	return nil
}

// check returns the error of a run whose context is done or whose deadline
// has passed.
func (fr *frame) check(pos string) error {
	if fr.ctx != nil {
		if err := fr.ctx.Err(); err != nil {
			return &Error{Code: diag.Canceled, Pos: pos, Msg: "evaluation canceled: " + err.Error()}
		}
	}
	if !fr.deadline.IsZero() && !time.Now().Before(fr.deadline) {
		return &Error{Code: diag.Deadline, Pos: pos, Msg: fmt.Sprintf("evaluation exceeded its deadline of %s", fr.timeout)}
	}
	return nil
}

// alloc charges n bytes of values to the run's byte budget.
func (fr *frame) alloc(pos string, n int64) error {
	fr.bytes += n
	if fr.bytes > fr.maxBytes {
		return bytesError(pos, fr.maxBytes)
	}
	return nil
}

// allocValue charges a value made outside the run (by a kernel, a host
// call or the JSON decoder).
func (fr *frame) allocValue(pos string, v ir.Value) error {
	return fr.alloc(pos, valueSize(v, fr.maxBytes-fr.bytes))
}

// What the byte budget charges (see the package doc).
const (
	valueBytes    = int64(unsafe.Sizeof(ir.Value{})) // a value's slot
	sliceBytes    = 24                               // a slice header
	mapBytes      = 48                               // a map's header and key and value slices
	mapEntryBytes = 2 * (16 + valueBytes)            // a key and value in the map and in the Go map it is made from
)

// ValueBytes and SliceBytes are what the byte budget charges for a
// value's slot and for a slice header: a second backend charges them
// where the interpreter does (a list literal of n elements costs
// ValueBytes + SliceBytes + n*ValueBytes, the upper or lower case of a
// string of n bytes ValueBytes + 3*n, the concatenation of strings of n
// and m bytes ValueBytes + n + m).
const (
	ValueBytes = valueBytes
	SliceBytes = sliceBytes
	// MapBytes and MapEntryBytes are what a map literal of n entries
	// costs besides ValueBytes: MapBytes + n*MapEntryBytes + the bytes of
	// its keys.
	MapBytes      = mapBytes
	MapEntryBytes = mapEntryBytes
)

// ValueSize returns the bytes the byte budget charges for the value v
// made outside the run (by a host call), counting only until they exceed
// limit: a second backend charges it where the interpreter does.
func ValueSize(v ir.Value, limit int64) int64 { return valueSize(v, limit) }

// valueSize returns the bytes charged for v, counting only until they
// exceed limit (so a huge value costs no more than the budget to measure).
func valueSize(v ir.Value, limit int64) int64 {
	n := valueBytes
	switch v.Kind() {
	case ir.String:
		n += int64(len(v.Str()))
	case ir.List:
		n += sliceBytes
		l := v.List()
		for i := range l {
			if n > limit {
				break
			}
			if x := &l[i]; composite(x.Kind()) {
				n += valueSize(*x, limit-n)
			} else {
				n += valueBytes // its slot
			}
		}
	case ir.Map:
		n += mapBytes
		vals := v.Values()
		for i, k := range v.Keys() {
			if n > limit {
				break
			}
			e := mapEntryBytes + int64(len(k))
			if x := &vals[i]; composite(x.Kind()) {
				e += valueSize(*x, limit-n) - valueBytes // counted up to the limit left before the entry
			} // else its slot, counted in the entry
			n += e
		}
	}
	return n
}

// composite reports whether a value of kind k costs more than its slot
// (valueSize's recursion, which copies the value, is for those only).
func composite(k ir.Kind) bool { return k == ir.String || k == ir.List || k == ir.Map }

func newFrame(ctx context.Context, env *Env, in Input) *frame {
	fr := &frame{}
	fr.reset(ctx, env, in)
	return fr
}

// reset readies fr for a new run, keeping the memory of its argument stack.
func (fr *frame) reset(ctx context.Context, env *Env, in Input) {
	*fr = frame{ctx: ctx, env: env, in: in, max: DefaultMaxSteps, maxBytes: DefaultMaxBytes, timeout: DefaultTimeout, args: fr.args[:0]}
	if env != nil {
		if env.MaxSteps > 0 {
			fr.max = env.MaxSteps
		}
		if env.MaxBytes > 0 {
			fr.maxBytes = env.MaxBytes
		}
		if env.Timeout != 0 {
			fr.timeout = env.Timeout
		}
	}
	if fr.timeout > 0 {
		fr.deadline = time.Now().Add(fr.timeout)
	}
	if ctx != nil && ctx.Err() != nil {
		fr.max = 0 // the first step fails, with the context's error
	}
}

func rtErr(code diag.Code, pos, format string, args ...any) error {
	return &Error{Code: code, Pos: pos, Msg: fmt.Sprintf(format, args...)}
}

// ---- span fields ----

func hasMember(s *span.Span, name string) bool {
	for _, m := range s.Members {
		if m == name {
			return true
		}
	}
	return false
}

// spanValue returns the value of a span field (null when absent).
func (fr *frame) spanValue(f spanfield.Field, pos string) (ir.Value, error) {
	s := fr.in.Span
	switch f {
	case spanfield.When:
		if s.WhenRaw == "" {
			return ir.NullValue(), nil
		}
		if s.WhenOK {
			return ir.TimestampValue(s.When), nil
		}
		if t, ok := abi.ValidRFC3339(s.WhenRaw); ok {
			return ir.TimestampValue(t), nil
		}
		return ir.Value{}, rtErr(diag.RuntimeType, pos, "field when is not RFC 3339: %q", clip(s.WhenRaw))
	case spanfield.ConfirmedBy:
		if s.ConfirmedBy == nil {
			return ir.NullValue(), nil
		}
		if err := fr.alloc(pos, valueBytes+sliceBytes+valueBytes*int64(len(s.ConfirmedBy))); err != nil {
			return ir.Value{}, err
		}
		l := make([]ir.Value, len(s.ConfirmedBy))
		for i, c := range s.ConfirmedBy {
			l[i] = ir.StringValue(c)
		}
		return ir.ListValue(l), nil
	case spanfield.Data:
		if !fr.dataDone {
			fr.dataDone = true
			if s.Data != nil {
				fr.data, fr.dataErr = fr.decodeData(s.Data, pos)
			}
		}
		return fr.data, fr.dataErr
	case spanfield.None:
		return ir.NullValue(), nil
	}
	str := spanfield.String(s, f)
	if str == "" && !hasMember(s, f.Name()) {
		return ir.NullValue(), nil
	}
	return ir.StringValue(str), nil
}

// SpanData is a span's data as a run reads it: its value, decoded as the
// interpreter decodes it (null when the span has none), and the bytes
// the run's first read of data charges to the byte budget (the copy of
// the JSON and the value made of it; 0 without data). It fails as the
// interpreter's first read of data fails when the JSON does not decode to
// the language's values (an *Error LLL102). A second backend charges the
// bytes where the interpreter first reads data (a field data.PATH or
// has(data.PATH)), and reads a path below the value with Walk.
func SpanData(s *span.Span) (v ir.Value, bytes int64, err error) {
	if s.Data == nil {
		return ir.NullValue(), 0, nil
	}
	v, err = decodeJSON("data", s.Data)
	if err != nil {
		return ir.Value{}, 0, err
	}
	return v, int64(len(s.Data)) + valueSize(v, math.MaxInt64), nil
}

// Walk returns the value at path below v, as the interpreter reads a
// dotted field (data.gross) or policy value: down maps only; null below
// any other value and for a missing key.
func Walk(v ir.Value, path []string) ir.Value {
	v, _ = walk(v, path)
	return v
}

// decodeData decodes the JSON of a span's data, charging the copy of the
// bytes it decodes and the value it makes.
func (fr *frame) decodeData(b []byte, pos string) (ir.Value, error) {
	if err := fr.alloc(pos, int64(len(b))); err != nil {
		return ir.Value{}, err
	}
	v, err := decodeJSON("data", b)
	if err != nil {
		return v, err
	}
	if err := fr.allocValue(pos, v); err != nil {
		return ir.Value{}, err
	}
	return v, nil
}

// decodeJSON decodes one JSON value, what (data, payload) the errors name.
func decodeJSON(what string, b []byte) (ir.Value, error) {
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.UseNumber()
	var x any
	if err := d.Decode(&x); err != nil {
		return ir.Value{}, rtErr(diag.RuntimeType, "", "%s is not valid JSON: %v", what, err)
	}
	if _, err := d.Token(); err != io.EOF {
		return ir.Value{}, rtErr(diag.RuntimeType, "", "%s is not valid JSON: more after the first value", what)
	}
	v, err := ir.FromJSON(x)
	if err != nil {
		return ir.Value{}, rtErr(diag.RuntimeType, "", "%s: %v", what, err)
	}
	return v, nil
}

// ---- expressions ----

type compiler struct {
	prog *ir.Program
	// inputSpan reports whether fields are span fields (else event members).
	inputSpan bool
}

func (c *compiler) compile(e *ir.Expr) (fn, error) {
	if e == nil {
		return nil, fmt.Errorf("missing expression")
	}
	args := make([]fn, len(e.Args))
	for i, a := range e.Args {
		f, err := c.compile(a)
		if err != nil {
			return nil, err
		}
		args[i] = f
	}
	pos := e.Pos
	arity := func(n int) error {
		if len(args) != n {
			return fmt.Errorf("%s at %s: want %d operands, have %d", e.Op, pos, n, len(args))
		}
		return nil
	}
	switch e.Op {
	case ir.OpConst:
		if e.Value == nil {
			return nil, fmt.Errorf("const at %s without value", pos)
		}
		v := *e.Value
		return func(fr *frame) (ir.Value, error) { return v, fr.step(pos) }, nil
	case ir.OpSymbol:
		v := ir.StringValue(e.Name)
		return func(fr *frame) (ir.Value, error) { return v, fr.step(pos) }, nil
	case ir.OpField, ir.OpHas:
		return c.field(e)
	case ir.OpPolicy:
		def := c.prog.Policy(e.Name)
		if def == nil || len(e.Path) == 0 || def.Field(e.Path[0]) == nil {
			return nil, fmt.Errorf("policy reference %s.%v at %s to an unknown policy", e.Name, e.Path, pos)
		}
		name, path := e.Name, e.Path
		defVal, err := walk(def.Field(path[0]).Value, path[1:])
		if err != nil {
			return nil, err
		}
		return func(fr *frame) (ir.Value, error) {
			if err := fr.step(pos); err != nil {
				return ir.Value{}, err
			}
			return fr.env.PolicyValue(name, path, defVal), nil
		}, nil
	case ir.OpFeature:
		name := e.Name
		return func(fr *frame) (ir.Value, error) {
			if err := fr.step(pos); err != nil {
				return ir.Value{}, err
			}
			return ir.BoolValue(fr.env.Feature(name)), nil
		}, nil
	case ir.OpNot:
		if err := arity(1); err != nil {
			return nil, err
		}
		x := args[0]
		return func(fr *frame) (ir.Value, error) {
			b, err := boolOf(fr, x, pos)
			return ir.BoolValue(!b), err
		}, nil
	case ir.OpAnd, ir.OpOr:
		if err := arity(2); err != nil {
			return nil, err
		}
		x, y := args[0], args[1]
		isAnd := e.Op == ir.OpAnd
		return func(fr *frame) (ir.Value, error) {
			a, err := boolOf(fr, x, pos)
			if err != nil {
				return ir.Value{}, err
			}
			if a != isAnd {
				return ir.BoolValue(a), nil
			}
			b, err := boolOf(fr, y, pos)
			return ir.BoolValue(b), err
		}, nil
	case ir.OpNeg:
		if err := arity(1); err != nil {
			return nil, err
		}
		x := args[0]
		return func(fr *frame) (ir.Value, error) {
			v, err := x(fr)
			if err != nil {
				return v, err
			}
			switch v.Kind() {
			case ir.Number:
				return ir.NumberMicros(-v.Micros()), nil
			case ir.Duration:
				return ir.DurationValue(-v.Duration()), nil
			}
			return ir.Value{}, rtErr(diag.RuntimeType, pos, "cannot negate a %s", v.Kind())
		}, nil
	case ir.OpEq, ir.OpNe, ir.OpLt, ir.OpLe, ir.OpGt, ir.OpGe, ir.OpIn, ir.OpMatches,
		ir.OpAdd, ir.OpSub, ir.OpMul, ir.OpDiv, ir.OpIndex:
		if err := arity(2); err != nil {
			return nil, err
		}
		return c.binary(e.Op, args[0], args[1], e, pos)
	case ir.OpList:
		return func(fr *frame) (ir.Value, error) {
			if err := fr.step(pos); err != nil {
				return ir.Value{}, err
			}
			if err := fr.alloc(pos, valueBytes+sliceBytes+valueBytes*int64(len(args))); err != nil {
				return ir.Value{}, err
			}
			l := make([]ir.Value, len(args))
			for i, a := range args {
				v, err := a(fr)
				if err != nil {
					return v, err
				}
				l[i] = v
			}
			return ir.ListValue(l), nil
		}, nil
	case ir.OpMap:
		if len(e.Path) != len(args) {
			return nil, fmt.Errorf("map at %s: %d keys for %d values", pos, len(e.Path), len(args))
		}
		keys := e.Path
		size := valueBytes + mapBytes
		for _, k := range keys {
			size += mapEntryBytes + int64(len(k))
		}
		return func(fr *frame) (ir.Value, error) {
			if err := fr.step(pos); err != nil {
				return ir.Value{}, err
			}
			if err := fr.alloc(pos, size); err != nil {
				return ir.Value{}, err
			}
			m := make(map[string]ir.Value, len(args))
			for i, a := range args {
				v, err := a(fr)
				if err != nil {
					return v, err
				}
				m[keys[i]] = v
			}
			return ir.MapValue(m), nil
		}, nil
	case ir.OpCall:
		return c.builtin(e.Name, args, pos)
	case ir.OpKernel, ir.OpHost:
		name := e.Name
		kernel := e.Op == ir.OpKernel
		f, ok := abi.Funcs()[name]
		if !ok || (kernel && f.Kind != "kernel") || (!kernel && f.Kind != "host") {
			return nil, fmt.Errorf("unknown %s %s at %s", e.Op, name, pos)
		}
		return func(fr *frame) (ir.Value, error) {
			if err := fr.step(pos); err != nil {
				return ir.Value{}, err
			}
			if err := fr.alloc(pos, sliceBytes+valueBytes*int64(len(args))); err != nil {
				return ir.Value{}, err
			}
			// The arguments go on the frame's stack (a call among them
			// pushes and pops its own above them) and are popped on
			// return: kernels do not keep them.
			base := len(fr.args)
			for _, a := range args {
				v, err := a(fr)
				if err != nil {
					fr.pop(base)
					return v, err
				}
				fr.args = append(fr.args, v)
			}
			vals := fr.args[base:len(fr.args):len(fr.args)]
			ctx := fr.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			if kernel {
				if fr.env == nil || fr.env.Kernels == nil {
					fr.pop(base)
					return ir.Value{}, rtErr(diag.KernelUnavailable, pos, "kernel %s is not available here (kernels run in the derivation)", name)
				}
				v, err := fr.env.Kernels.Kernel(ctx, name, fr.in, vals)
				fr.pop(base)
				return fr.returned(pos, name, v, err)
			}
			vals = slices.Clone(vals) // a host may keep its arguments
			fr.pop(base)
			if fr.env == nil || fr.env.Host == nil {
				return ir.Value{}, rtErr(diag.KernelUnavailable, pos, "host call %s is not available here", name)
			}
			if !fr.deadline.IsZero() {
				var cancel context.CancelFunc
				ctx, cancel = context.WithDeadline(ctx, fr.deadline)
				defer cancel()
			}
			v, err := fr.env.Host.Call(ctx, name, vals)
			return fr.returned(pos, name, v, err)
		}, nil
	}
	return nil, fmt.Errorf("unknown operator %q at %s", e.Op, pos)
}

// pop drops the arguments above base from the stack of kernel arguments.
func (fr *frame) pop(base int) {
	clear(fr.args[base:])
	fr.args = fr.args[:base]
}

// returned is the outcome of a kernel or host call: the run's context and
// deadline are looked at (a call may have taken long, or failed because
// they ended), then the value returned is charged.
func (fr *frame) returned(pos, name string, v ir.Value, err error) (ir.Value, error) {
	if cerr := fr.check(pos); cerr != nil {
		return ir.Value{}, cerr
	}
	if err != nil {
		return v, wrapHost(err, pos, name)
	}
	if err := fr.allocValue(pos, v); err != nil {
		return ir.Value{}, err
	}
	return v, nil
}

func wrapHost(err error, pos, name string) error {
	if _, ok := err.(*Error); ok {
		return err
	}
	return rtErr(diag.KernelUnavailable, pos, "%s: %v", name, err)
}

func walk(v ir.Value, path []string) (ir.Value, error) {
	for _, p := range path {
		if v.Kind() != ir.Map {
			return ir.NullValue(), nil
		}
		v, _ = v.Get(p)
	}
	return v, nil
}

func (c *compiler) field(e *ir.Expr) (fn, error) {
	pos, path, name := e.Pos, e.Path, e.Name
	has := e.Op == ir.OpHas
	if !c.inputSpan {
		return func(fr *frame) (ir.Value, error) {
			if err := fr.step(pos); err != nil {
				return ir.Value{}, err
			}
			v, _ := fr.in.Event.Get(name)
			v, _ = walk(v, path)
			if has {
				return ir.BoolValue(!v.IsNull()), nil
			}
			return v, nil
		}, nil
	}
	f := spanfield.Of(name)
	if f == spanfield.None {
		return nil, fmt.Errorf("unknown span field %q at %s", name, pos)
	}
	return func(fr *frame) (ir.Value, error) {
		if err := fr.step(pos); err != nil {
			return ir.Value{}, err
		}
		s := fr.in.Span
		if s == nil {
			return ir.Value{}, rtErr(diag.RuntimeType, pos, "input is not a span")
		}
		if has && len(path) == 0 {
			switch f {
			case spanfield.ConfirmedBy:
				return ir.BoolValue(s.ConfirmedBy != nil), nil
			case spanfield.Data:
				return ir.BoolValue(s.Data != nil), nil
			}
			return ir.BoolValue(spanfield.String(s, f) != "" || hasMember(s, name)), nil
		}
		v, err := fr.spanValue(f, pos)
		if err != nil {
			if has && !isLimit(err) {
				return ir.BoolValue(false), nil
			}
			return v, err
		}
		v, _ = walk(v, path)
		if has {
			return ir.BoolValue(!v.IsNull()), nil
		}
		return v, nil
	}, nil
}

// isLimit reports whether err is a run's limit (steps, bytes, deadline,
// context), which no expression may hide.
func isLimit(err error) bool {
	e, ok := err.(*Error)
	if !ok {
		return false
	}
	switch e.Code {
	case diag.StepBudget, diag.Canceled, diag.ByteBudget, diag.Deadline:
		return true
	}
	return false
}

func boolOf(fr *frame, x fn, pos string) (bool, error) {
	v, err := x(fr)
	if err != nil {
		return false, err
	}
	if v.Kind() != ir.Bool {
		return false, rtErr(diag.RuntimeType, pos, "want a bool, have %s %s", v.Kind(), clip(v.String()))
	}
	return v.Bool(), nil
}

func (c *compiler) builtin(name string, args []fn, pos string) (fn, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("builtin %s at %s: want 1 argument", name, pos)
	}
	x := args[0]
	var op func(fr *frame, v ir.Value) (ir.Value, error)
	switch name {
	case "len":
		op = func(_ *frame, v ir.Value) (ir.Value, error) {
			switch v.Kind() {
			case ir.String, ir.List, ir.Map:
				return ir.IntValue(int64(v.Len())), nil
			case ir.Null:
				return ir.IntValue(0), nil
			}
			return ir.Value{}, builtinError("len", v, pos)
		}
	case "lower", "upper":
		f := strings.ToLower
		if name == "upper" {
			f = strings.ToUpper
		}
		op = func(fr *frame, v ir.Value) (ir.Value, error) {
			if v.Kind() != ir.String {
				return ir.Value{}, builtinError(name, v, pos)
			}
			// The upper or lower case of a string is at most 3 times as
			// long (an invalid byte becomes the 3-byte U+FFFD).
			if err := fr.alloc(pos, valueBytes+3*int64(len(v.Str()))); err != nil {
				return ir.Value{}, err
			}
			return ir.StringValue(f(v.Str())), nil
		}
	default:
		return nil, fmt.Errorf("unknown builtin %s at %s", name, pos)
	}
	return func(fr *frame) (ir.Value, error) {
		if err := fr.step(pos); err != nil {
			return ir.Value{}, err
		}
		v, err := x(fr)
		if err != nil {
			return v, err
		}
		return op(fr, v)
	}, nil
}

func (c *compiler) binary(op ir.Op, x, y fn, e *ir.Expr, pos string) (fn, error) {
	var glob *Glob
	if op == ir.OpMatches {
		if e.Args[1].Op != ir.OpConst || e.Args[1].Value == nil {
			return nil, fmt.Errorf("matches at %s needs a constant pattern", pos)
		}
		glob = CompileGlob(e.Args[1].Value.Str())
	}
	return func(fr *frame) (ir.Value, error) {
		if err := fr.step(pos); err != nil {
			return ir.Value{}, err
		}
		a, err := x(fr)
		if err != nil {
			return a, err
		}
		b, err := y(fr)
		if err != nil {
			return b, err
		}
		if op == ir.OpAdd && a.Kind() == ir.String && b.Kind() == ir.String {
			if err := fr.alloc(pos, valueBytes+int64(len(a.Str())+len(b.Str()))); err != nil {
				return ir.Value{}, err
			}
		}
		switch op {
		case ir.OpEq:
			return ir.BoolValue(a.Equal(b)), nil
		case ir.OpNe:
			return ir.BoolValue(!a.Equal(b)), nil
		case ir.OpLt, ir.OpLe, ir.OpGt, ir.OpGe:
			c, err := compare(a, b, pos)
			if err != nil {
				return ir.Value{}, err
			}
			switch op {
			case ir.OpLt:
				return ir.BoolValue(c < 0), nil
			case ir.OpLe:
				return ir.BoolValue(c <= 0), nil
			case ir.OpGt:
				return ir.BoolValue(c > 0), nil
			}
			return ir.BoolValue(c >= 0), nil
		case ir.OpIn:
			if b.Kind() == ir.Null {
				return ir.BoolValue(false), nil
			}
			if b.Kind() != ir.List {
				return ir.Value{}, rtErr(diag.RuntimeType, pos, "in needs a list, have %s", b.Kind())
			}
			for _, el := range b.List() {
				if a.Equal(el) {
					return ir.BoolValue(true), nil
				}
			}
			return ir.BoolValue(false), nil
		case ir.OpMatches:
			if a.Kind() != ir.String {
				if a.Kind() == ir.Null {
					return ir.BoolValue(false), nil
				}
				return ir.Value{}, rtErr(diag.RuntimeType, pos, "matches needs a string, have %s", a.Kind())
			}
			return ir.BoolValue(glob.Match(a.Str())), nil
		case ir.OpIndex:
			switch a.Kind() {
			case ir.List:
				if b.Kind() != ir.Number || b.Micros()%ir.NumberScale != 0 {
					return ir.Value{}, rtErr(diag.RuntimeType, pos, "a list index must be an integer, have %s", b)
				}
				i := b.Int()
				if i < 0 || i >= int64(len(a.List())) {
					return ir.NullValue(), nil
				}
				return a.List()[i], nil
			case ir.Map:
				if b.Kind() != ir.String {
					return ir.Value{}, rtErr(diag.RuntimeType, pos, "a map key must be a string, have %s", b.Kind())
				}
				v, _ := a.Get(b.Str())
				return v, nil
			case ir.Null:
				return ir.NullValue(), nil
			}
			return ir.Value{}, rtErr(diag.RuntimeType, pos, "cannot index a %s", a.Kind())
		}
		return arith(op, a, b, pos)
	}, nil
}

func compare(a, b ir.Value, pos string) (int, error) {
	num := func(k ir.Kind) bool { return k == ir.Number || k == ir.Percentile }
	switch {
	case num(a.Kind()) && num(b.Kind()),
		a.Kind() == ir.Duration && b.Kind() == ir.Duration,
		a.Kind() == ir.Timestamp && b.Kind() == ir.Timestamp:
		x, y := a.Micros(), b.Micros()
		switch {
		case x < y:
			return -1, nil
		case x > y:
			return 1, nil
		}
		return 0, nil
	case a.Kind() == ir.String && b.Kind() == ir.String:
		return strings.Compare(a.Str(), b.Str()), nil
	}
	return 0, orderError(a, b, pos)
}

// mulDiv returns a*b/c rounded toward zero, or false on overflow.
func mulDiv(a, b, c int64) (int64, bool) {
	if c == 0 {
		return 0, false
	}
	neg := (a < 0) != (b < 0) != (c < 0)
	ua, ub, uc := abs64(a), abs64(b), abs64(c)
	hi, lo := bits.Mul64(ua, ub)
	if hi >= uc {
		return 0, false
	}
	q, _ := bits.Div64(hi, lo, uc)
	if q > math.MaxInt64 {
		return 0, false
	}
	if neg {
		return -int64(q), true
	}
	return int64(q), true
}

func abs64(x int64) uint64 {
	if x < 0 {
		return uint64(-x)
	}
	return uint64(x)
}

func arith(op ir.Op, a, b ir.Value, pos string) (ir.Value, error) {
	ak, bk := a.Kind(), b.Kind()
	num := func(k ir.Kind) bool { return k == ir.Number || k == ir.Percentile }
	overflow := func() (ir.Value, error) { return ir.Value{}, overflowError(op, a, b, pos) }
	add := func(x, y int64) (int64, bool) {
		s := x + y
		return s, !((x > 0 && y > 0 && s < 0) || (x < 0 && y < 0 && s >= 0))
	}
	switch op {
	case ir.OpAdd, ir.OpSub:
		y := b.Micros()
		if op == ir.OpSub {
			y = -y
		}
		var kind ir.Kind
		switch {
		case num(ak) && num(bk):
			kind = ir.Number
		case ak == ir.Duration && bk == ir.Duration:
			kind = ir.Duration
		case ak == ir.Timestamp && bk == ir.Duration:
			kind = ir.Timestamp
		case ak == ir.Timestamp && bk == ir.Timestamp && op == ir.OpSub:
			kind = ir.Duration
		case ak == ir.String && bk == ir.String && op == ir.OpAdd:
			return ir.StringValue(a.Str() + b.Str()), nil
		default:
			return ir.Value{}, operandsError(op, a, b, pos)
		}
		s, ok := add(a.Micros(), y)
		if !ok {
			return overflow()
		}
		switch kind {
		case ir.Number:
			return ir.NumberMicros(s), nil
		case ir.Duration:
			return ir.DurationValue(durationOf(s)), nil
		}
		return ir.TimestampValue(timeOf(s)), nil
	case ir.OpMul:
		switch {
		case num(ak) && num(bk):
			r, ok := mulDiv(a.Micros(), b.Micros(), ir.NumberScale)
			if !ok {
				return overflow()
			}
			return ir.NumberMicros(r), nil
		case ak == ir.Duration && num(bk), num(ak) && bk == ir.Duration:
			d, n := a, b
			if num(ak) {
				d, n = b, a
			}
			r, ok := mulDiv(d.Micros(), n.Micros(), ir.NumberScale)
			if !ok {
				return overflow()
			}
			return ir.DurationValue(durationOf(r)), nil
		}
	case ir.OpDiv:
		if b.Micros() == 0 {
			return ir.Value{}, divisionByZero(pos)
		}
		switch {
		case num(ak) && num(bk):
			r, ok := mulDiv(a.Micros(), ir.NumberScale, b.Micros())
			if !ok {
				return overflow()
			}
			return ir.NumberMicros(r), nil
		case ak == ir.Duration && num(bk):
			r, ok := mulDiv(a.Micros(), ir.NumberScale, b.Micros())
			if !ok {
				return overflow()
			}
			return ir.DurationValue(durationOf(r)), nil
		}
	}
	return ir.Value{}, operandsError(op, a, b, pos)
}
