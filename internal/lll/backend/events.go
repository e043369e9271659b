package backend

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/loglineos/loglineos/internal/bundle"
	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/lll/ir"
	"github.com/loglineos/loglineos/internal/lll/wasm/codegen"
	"github.com/loglineos/loglineos/internal/lll/wasm/vm"
)

// Events runs a bundle's event validators (the quality meter over
// trajectory_quality...) on one backend, as Spans runs its span
// validators: eval, wasm (the module's event validators; those it does
// not export, and the runs it leaves, on the interpreter) or shadow (both,
// every evaluation, compared: whether the validator applied, its
// violation, the event it emitted, the run's error, its steps and its
// kernel calls).
//
// The kernels of a run (percentile, window_count, and the emit step's
// threshold, components) are called once an evaluation: the first run's
// calls are recorded and replayed to the second, in order, so a kernel
// with state (the meter's tie rationing) is asked once, and shadow
// compares the kernel-call sequences (names, arguments, order).
//
// An Events is safe for concurrent use.
type Events struct {
	kind        Kind
	mod         *shared
	pool        *vm.Pool
	warmGets    int64    // the pool's Gets before the first run
	compiled    []string // the event validators the module runs (few: a scan beats a map's hash)
	opts        Options
	scratch     sync.Pool // *eval.Scratch, for the second run of shadow
	fallbacks   atomic.Int64
	divergences atomic.Int64
}

// NewEvents prepares the event validators of b to run on kind, with the
// bundle's module (or, with opts.Compile and a bundle without one, the
// module compiled from its IR) for wasm and shadow; Close releases it.
func NewEvents(ctx context.Context, b *bundle.Bundle, kind Kind, opts Options) (*Events, error) {
	out, opts, err := bundleModule(b, kind, opts)
	if err != nil {
		return nil, err
	}
	return newEvents(ctx, kind, b.IR, out, opts, nil)
}

// newEvents runs the event validators of prog on kind, with the module
// out compiled from prog (unused for eval): m, or compiled here when m is
// nil, as newSpans.
func newEvents(ctx context.Context, kind Kind, prog *ir.Program, out *codegen.Output, opts Options, m *shared) (*Events, error) {
	e := &Events{kind: kind, opts: opts}
	e.scratch.New = func() any { return &eval.Scratch{} }
	if kind == Eval {
		return e, nil
	}
	e.compiled = slices.Clone(out.Events)
	slices.Sort(e.compiled)
	var err error
	if e.mod, e.pool, err = load(ctx, prog, out, opts, m); err != nil {
		return nil, err
	}
	e.warmGets = e.pool.Gets()
	return e, nil
}

// Close releases the module, if any (its share of it).
func (e *Events) Close(ctx context.Context) error {
	return e.mod.release(ctx)
}

// Kind returns the backend.
func (e *Events) Kind() Kind { return e.kind }

// Compiled returns the names of the event validators the module runs
// (none for eval), sorted.
func (e *Events) Compiled() []string { return slices.Clone(e.compiled) }

// Stats returns the counters.
func (e *Events) Stats() Stats {
	var runs int64
	if e.pool != nil {
		runs = e.pool.Gets() - e.warmGets // one Get a run
	}
	return Stats{Runs: runs, Fallbacks: e.fallbacks.Load(), Divergences: e.divergences.Load()}
}

// runs reports whether the module runs the validator name.
func (e *Events) runs(name string) bool {
	for _, c := range e.compiled {
		if c == name {
			return true
		}
	}
	return false
}

// CheckEvent runs v (one of the program's validators) on the derived
// event ev as v.CheckEventWith(ctx, ev, env, s) does, on the backend; the
// interpreter's answer is the one returned under shadow, and
// Result.Emitted points into s.
func (e *Events) CheckEvent(ctx context.Context, v *eval.Validator, ev ir.Value, env *eval.Env, s *eval.Scratch) (eval.Result, error) {
	if e.kind == Eval || !e.runs(v.IR.Name) {
		return v.CheckEventWith(ctx, ev, env, s)
	}
	// Whether v applies to ev's type, the module decides (wasm); shadow
	// compares only the runs of validators that apply.
	if e.kind == Wasm {
		var got vm.EventOutcome
		calls, err := e.runWasm(ctx, v, ev, env, s, &got)
		if err == nil {
			return got.Result, got.Err
		}
		// The interpreter answers, the module's kernel calls replayed.
		var k eval.Kernels
		if env != nil {
			k = env.Kernels
		}
		want, werr := v.CheckEventWith(ctx, ev, withKernels(env, &kernelReplayer{rp: replayer{log: calls}, k: k}), s)
		if !isFallback(err) {
			e.diverged(v, ev, eventOutcome(want, werr, s.Steps()), Outcome{Steps: got.Run.FuelUsed, Error: err.Error()})
		}
		return want, werr
	}
	if typ, _ := ev.Get("type"); !v.AppliesTo(typ.Str()) {
		return v.CheckEventWith(ctx, ev, env, s)
	}
	first := env
	rec := &kernelRecorder{}
	if env != nil && env.Kernels != nil {
		rec.k = env.Kernels
		first = withKernels(env, rec)
	}
	want, werr := v.CheckEventWith(ctx, ev, first, s)
	steps := s.Steps()
	s2 := e.scratch.Get().(*eval.Scratch)
	defer e.scratch.Put(s2)
	rp := &kernelReplayer{rp: replayer{log: rec.log, strict: true}}
	var got vm.EventOutcome
	_, err := e.runWasm(ctx, v, ev, withKernels(env, rp), s2, &got)
	mismatch := rp.rp.differs(!isFallback(err))
	if isFallback(err) && mismatch == "" {
		return want, werr
	}
	w := eventOutcome(got.Result, got.Err, got.Run.FuelUsed)
	switch {
	case mismatch != "":
		w.Error = "kernel calls differ: " + strings.ReplaceAll(mismatch, "host calls", "kernel calls")
	case err != nil:
		w.Error = err.Error()
	}
	if wo := eventOutcome(want, werr, steps); !reflect.DeepEqual(w, wo) {
		e.diverged(v, ev, wo, w)
	}
	return want, werr
}

// runWasm runs v on the module, its outcome written to out; an error
// that is a fallback has been counted as one. A run that fails returns
// the kernel calls the module made, for the interpreter to replay.
func (e *Events) runWasm(ctx context.Context, v *eval.Validator, ev ir.Value, env *eval.Env, s *eval.Scratch, out *vm.EventOutcome) ([]hostCall, error) {
	in, err := e.pool.Get(ctx)
	if err != nil {
		return nil, err
	}
	err = in.CheckEvent(ctx, v.IR.Name, ev, env, s, out)
	var calls []hostCall
	if err != nil {
		for _, c := range in.KernelCalls() { // the instance's memory: copied before it is given back
			calls = append(calls, hostCall{name: c.Name, args: slices.Clone(c.Args), v: c.Value, err: c.Err})
		}
	}
	e.pool.Put(in)
	if isFallback(err) {
		e.fallbacks.Add(1)
	}
	return calls, err
}

func (e *Events) diverged(v *eval.Validator, ev ir.Value, want, got Outcome) {
	e.divergences.Add(1)
	if e.opts.OnDivergence != nil {
		e.opts.OnDivergence(Divergence{Validator: v.IR.Name, SpanID: eventID(ev), Eval: want, Wasm: got})
	}
}

// eventID names an event in a divergence: its type and its trajectory.
func eventID(ev ir.Value) string {
	typ, _ := ev.Get("type")
	id, _ := ev.Get("trajectory_id")
	return typ.Str() + " " + id.Str()
}

// eventOutcome is the outcome of a run of an event validator, as a
// divergence shows and shadow compares it: not applied is "skipped", the
// emitted event in its canonical text.
func eventOutcome(r eval.Result, err error, steps int64) Outcome {
	o := Outcome{Violation: r.Violation, Steps: steps, Error: errText(err), Skipped: !r.Applied && err == nil}
	if r.Emitted != nil {
		o.Emitted = r.Emitted.String()
	}
	return o
}

// withKernels returns a copy of env with the kernels k, or env when it
// has none (every backend then says so alike).
func withKernels(env *eval.Env, k eval.Kernels) *eval.Env {
	if env == nil || env.Kernels == nil {
		return env
	}
	e := *env
	e.Kernels = k
	return &e
}

// kernelRecorder calls a run's kernels with k and records the calls, as
// hostCalls (their arguments copied: the interpreter reuses their
// memory). Event validators make no host calls, so a log holds kernel
// calls only.
type kernelRecorder struct {
	k    eval.Kernels
	log  []hostCall
	vals []ir.Value // the recorded arguments
}

// Kernel implements eval.Kernels.
func (r *kernelRecorder) Kernel(ctx context.Context, name string, in eval.Input, args []ir.Value) (ir.Value, error) {
	v, err := r.k.Kernel(ctx, name, in, args)
	at := len(r.vals)
	r.vals = append(r.vals, args...)
	r.log = append(r.log, hostCall{name: name, args: r.vals[at:len(r.vals):len(r.vals)], v: v, err: err})
	return v, err
}

// kernelReplayer answers a run's kernel calls from another run's log, as
// replayer answers host calls; past the log (not strict) they are made
// with k.
type kernelReplayer struct {
	rp replayer
	k  eval.Kernels
}

// Kernel implements eval.Kernels.
func (r *kernelReplayer) Kernel(ctx context.Context, name string, in eval.Input, args []ir.Value) (ir.Value, error) {
	if rec, ok := r.rp.replay(hostCall{name: name, args: args}); ok {
		return rec.v, rec.err
	}
	if r.rp.strict || r.k == nil {
		return ir.Value{}, fmt.Errorf("kernel %s: a call the first run did not make", name)
	}
	return r.k.Kernel(ctx, name, in, args)
}
