// Package backend runs a bundle's span validators and routers on the
// backend a deployment chooses:
//
//   - eval: the interpreter (package eval), the reference;
//   - wasm: the WebAssembly module the bundle carries (package vm), built
//     by loglinec --backend wasm. An input the module was not compiled for
//     (vm.ErrUnsupported, vm.ErrTooLarge) is answered by the interpreter
//     and counted as a fallback; it is never guessed. A module that fails
//     otherwise (a trap it should not raise) is answered by the
//     interpreter too, and reported as a Divergence;
//   - shadow: both, every evaluation, and their outcomes compared: the
//     violation (validator, rule, field, detail, position, action) and the
//     steps counted (the module's fuel used against the interpreter's
//     steps, which also settles the trap: a module whose fuel ran out
//     reports the interpreter's LLL100 violation). A difference is a
//     Divergence, handed to Options.OnDivergence; the interpreter's answer
//     is the one returned.
//
// The routers the module compiles (codegen.Routers: those of spans, and
// those of other inputs that do not read them) run on the backend too
// (Spans.Route): their
// actions, errors and steps are compared in shadow mode. The host calls
// of a run (env.get, kv.get, crypto.verify, the actions told to a
// Stager host) are made once an evaluation: the first run's are recorded
// and replayed to the second, so shadow compares the host-call sequences
// (names, arguments, order) too, and a wasm run the interpreter must
// answer asks nothing twice. The module is linked under the bundle's
// caps_allow: one that imports a call it does not grant fails New.
// Event validators run on the backend through Events (events.go);
// pipelines and the routers of other inputs that read them run on the
// interpreter under every backend.
//
// A Spans is safe for concurrent use: each wasm evaluation takes an
// instance from a pool (wazero's instances are not safe for concurrent
// calls) and gives it back.
package backend

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/loglineos/loglineos/internal/bundle"
	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/lll/ir"
	"github.com/loglineos/loglineos/internal/lll/wasm/codegen"
	"github.com/loglineos/loglineos/internal/lll/wasm/vm"
	"github.com/loglineos/loglineos/internal/span"
)

// Kind is a backend.
type Kind string

// The backends.
const (
	Eval   Kind = "eval"
	Wasm   Kind = "wasm"
	Shadow Kind = "shadow"
)

// Kinds returns the backends, in the order the documentation lists them.
func Kinds() []Kind { return []Kind{Eval, Wasm, Shadow} }

// ErrUnknownKind is returned by ParseKind for a name that is not a backend.
var ErrUnknownKind = errors.New("backend: unknown backend")

// ErrNoModule is returned by New for wasm and shadow when the bundle
// carries no module, or a module without one of its span validators.
var ErrNoModule = errors.New("backend: the bundle carries no WebAssembly module for its span validators")

// ParseKind returns the backend called s.
func ParseKind(s string) (Kind, error) {
	for _, k := range Kinds() {
		if string(k) == s {
			return k, nil
		}
	}
	return "", fmt.Errorf("%w %q: want eval, wasm or shadow", ErrUnknownKind, s)
}

// Outcome is what one backend answered for one span and validator (or
// router).
type Outcome struct {
	Violation *eval.Violation `json:"violation"`
	Steps     int64           `json:"steps"`
	Error     string          `json:"error,omitempty"`
	// Actions are a router's actions, worded: call[arguments] at the
	// route's position.
	Actions []string `json:"actions,omitempty"`
	// Skipped says an event validator did not apply (its guard did not
	// hold), and Emitted is the event it emitted, in its text form.
	Skipped bool   `json:"skipped,omitempty"`
	Emitted string `json:"emitted,omitempty"`
}

// Divergence is an evaluation on which the backends disagreed: of a span
// validator, or of a router (Router set, Validator empty).
type Divergence struct {
	Validator string  `json:"validator,omitempty"`
	Router    string  `json:"router,omitempty"`
	SpanID    string  `json:"span_id"`
	Eval      Outcome `json:"eval"`
	Wasm      Outcome `json:"wasm"`
}

// Name is the validator's or the router's name (a metric's label).
func (d Divergence) Name() string { return d.Validator + d.Router }

// Options configure a Spans.
type Options struct {
	// OnDivergence receives every divergence in shadow mode, on the
	// goroutine that checked the span.
	OnDivergence func(Divergence)
	// Compile compiles the module from the bundle's IR when the bundle
	// carries none, for a bundle whose signer is the process itself (a
	// server's standard bundle): the module is then derived from the
	// signed IR by this binary rather than signed itself.
	Compile bool
	// caps are the capabilities the module's host calls are linked under
	// (the bundle's caps_allow; nil: those the program declares).
	caps []string
}

// Stats are a Spans's counters since New.
type Stats struct {
	// Runs counts the evaluations of the module (wasm and shadow).
	Runs int64
	// Fallbacks counts the evaluations the module could not take, answered
	// by the interpreter (wasm) or not compared (shadow).
	Fallbacks int64
	// Divergences counts the evaluations on which the backends disagreed
	// (shadow) or the module failed (wasm, shadow).
	Divergences int64
}

// Spans checks spans against a bundle's span validators on one backend.
type Spans struct {
	kind        Kind
	validators  []*eval.Validator
	mod         *shared
	pool        *vm.Pool
	routers     map[string]bool // the routers the module runs
	imports     bool            // the module makes host calls
	opts        Options
	warmGets    int64 // the pool's Gets before the first run (New's instance)
	fallbacks   atomic.Int64
	divergences atomic.Int64
}

// New prepares the span validators of b to run on kind. For wasm and
// shadow it compiles the bundle's module (wazero) and checks that it
// exports every span validator; Close releases it.
func New(ctx context.Context, b *bundle.Bundle, kind Kind, opts Options) (*Spans, error) {
	out, opts, err := bundleModule(b, kind, opts)
	if err != nil {
		return nil, err
	}
	return newSpans(ctx, kind, b.IngestValidators(), b.IR, out, opts, nil)
}

// Open prepares both the span validators and the event validators of b to
// run on kind, as New and NewEvents do, with one compiled module for the
// two (compiling it is the costly part of their start); each Close
// releases its share.
func Open(ctx context.Context, b *bundle.Bundle, kind Kind, opts Options) (*Spans, *Events, error) {
	out, opts, err := bundleModule(b, kind, opts)
	if err != nil {
		return nil, nil, err
	}
	var m *shared
	if kind != Eval {
		if m, err = compileModule(ctx, b.IR, out, opts); err != nil {
			return nil, nil, err
		}
	}
	sp, err := newSpans(ctx, kind, b.IngestValidators(), b.IR, out, opts, m)
	if err != nil {
		_ = m.release(ctx)
		return nil, nil, err
	}
	m.retain() // the Events' share
	evs, err := newEvents(ctx, kind, b.IR, out, opts, m)
	if err != nil {
		_ = m.release(ctx)
		_ = sp.Close(ctx)
		return nil, nil, err
	}
	return sp, evs, nil
}

// bundleModule returns the module of b for kind (none for eval): the one
// the bundle carries or, with opts.Compile, the one compiled from its IR;
// and opts with the bundle's capabilities.
func bundleModule(b *bundle.Bundle, kind Kind, opts Options) (*codegen.Output, Options, error) {
	if _, err := ParseKind(string(kind)); err != nil {
		return nil, opts, err
	}
	out := b.Wasm()
	if kind != Eval && out == nil {
		if !opts.Compile {
			return nil, opts, fmt.Errorf("%w (build it with loglinec --backend wasm)", ErrNoModule)
		}
		var err error
		if out, err = codegen.Compile(b.IR); err != nil {
			return nil, opts, fmt.Errorf("backend: %w", err)
		}
	}
	opts.caps = b.Manifest.CapsAllow
	if opts.caps == nil {
		opts.caps = []string{}
	}
	return out, opts, nil
}

// newSpans runs validators on kind, with the module out compiled from
// prog (unused for eval): m, or compiled here when m is nil. The Spans
// takes over a share of m (released by its Close) once it is returned.
func newSpans(ctx context.Context, kind Kind, validators []*eval.Validator, prog *ir.Program, out *codegen.Output, opts Options, m *shared) (*Spans, error) {
	c := &Spans{kind: kind, validators: validators, opts: opts}
	if kind == Eval {
		return c, nil
	}
	for _, v := range c.validators {
		if !slices.Contains(out.Validators, v.IR.Name) {
			return nil, fmt.Errorf("%w: the module does not export %s", ErrNoModule, v.IR.Name)
		}
	}
	c.imports = len(out.Imports) > 0
	c.routers = map[string]bool{}
	for _, r := range codegen.Routers(prog) {
		if !slices.Contains(out.Routers, r.Name) {
			return nil, fmt.Errorf("%w: the module does not export router %s", ErrNoModule, r.Name)
		}
		c.routers[r.Name] = true
	}
	var err error
	if c.mod, c.pool, err = load(ctx, prog, out, opts, m); err != nil {
		return nil, err
	}
	c.warmGets = c.pool.Gets()
	return c, nil
}

// shared is a compiled module and the number of Spans and Events that use
// it: the last Close closes it.
type shared struct {
	m    *vm.Module
	refs atomic.Int32
}

// compileModule compiles the module out of prog, linked under opts.caps, with
// one share.
func compileModule(ctx context.Context, prog *ir.Program, out *codegen.Output, opts Options) (*shared, error) {
	m, err := vm.CompileWith(ctx, prog, out, vm.Options{Caps: opts.caps})
	if err != nil {
		return nil, fmt.Errorf("backend: %w", err)
	}
	s := &shared{m: m}
	s.refs.Store(1)
	return s, nil
}

// retain takes a share; nil is no module.
func (s *shared) retain() {
	if s != nil {
		s.refs.Add(1)
	}
}

// release gives a share back; nil is no module.
func (s *shared) release(ctx context.Context) error {
	if s == nil || s.refs.Add(-1) > 0 {
		return nil
	}
	return s.m.Close(ctx)
}

// load returns m (the module out of prog compiled here when m is nil) and
// a pool of its instances holding one: a module its capabilities cannot
// link fails here. A failure releases the module only if it compiled it:
// the caller's m stays the caller's.
func load(ctx context.Context, prog *ir.Program, out *codegen.Output, opts Options, m *shared) (*shared, *vm.Pool, error) {
	own := m == nil
	if own {
		var err error
		if m, err = compileModule(ctx, prog, out, opts); err != nil {
			return nil, nil, err
		}
	}
	pool := vm.NewPool(m.m)
	in, err := pool.Get(ctx)
	if err != nil {
		if own {
			_ = m.release(ctx)
		}
		return nil, nil, fmt.Errorf("backend: %w", err)
	}
	pool.Put(in)
	return m, pool, nil
}

// Close releases the module, if any (its share of it).
func (c *Spans) Close(ctx context.Context) error {
	return c.mod.release(ctx)
}

// Kind returns the backend.
func (c *Spans) Kind() Kind { return c.kind }

// Validators returns the span validators, in the order they run (sorted by
// name, as bundle.IngestValidators).
func (c *Spans) Validators() []*eval.Validator { return c.validators }

// Stats returns the counters.
func (c *Spans) Stats() Stats {
	var runs int64
	if c.pool != nil {
		runs = c.pool.Gets() - c.warmGets // one Get a run
	}
	return Stats{Runs: runs, Fallbacks: c.fallbacks.Load(), Divergences: c.divergences.Load()}
}

// CheckSpan checks s against v, one of Validators, as v.CheckSpan(ctx, s,
// env) does, on the backend: nil when the span passes. The module sees the
// same Env (features, policy values, step and byte budgets); it does not
// look at the clock while it runs, its fuel bounds it, and a run the
// deadline or the context could have decided for the interpreter is
// answered by the interpreter (vm.Instance.CheckSpanEnv).
func (c *Spans) CheckSpan(ctx context.Context, v *eval.Validator, s *span.Span, env *eval.Env) *eval.Violation {
	if c.kind == Eval {
		return v.CheckSpan(ctx, s, env)
	}
	// The host calls of a module that makes any are recorded by the first
	// run and replayed to the second, as for routers (see Route).
	first, second := env, env
	var rec *recorder
	if c.imports && env != nil && env.Host != nil {
		rec = &recorder{host: env.Host}
		first = withHost(env, rec)
	}
	if c.kind == Wasm {
		vi, res, err := c.runWasm(ctx, v, s, first)
		if err == nil {
			return vi
		}
		if rec != nil {
			second = withHost(env, &replayer{log: rec.log, host: env.Host})
		}
		want, steps := v.CheckSpanSteps(ctx, s, second)
		if !isFallback(err) {
			c.diverged(v, s, Outcome{Violation: want, Steps: steps}, Outcome{Steps: res.FuelUsed, Error: err.Error()})
		}
		return want
	}
	want, steps := v.CheckSpanSteps(ctx, s, first)
	var rp *replayer
	if rec != nil {
		rp = &replayer{log: rec.log, strict: true}
		second = withHost(env, rp)
	}
	vi, res, err := c.runWasm(ctx, v, s, second)
	mismatch := rp.differs(!isFallback(err))
	if isFallback(err) && mismatch == "" {
		return want
	}
	got := Outcome{Violation: vi, Steps: res.FuelUsed}
	switch {
	case mismatch != "":
		got.Error = "host calls differ: " + mismatch
	case err != nil:
		got.Error = err.Error()
	}
	if got.Error != "" || got.Steps != steps || !reflect.DeepEqual(vi, want) {
		c.diverged(v, s, Outcome{Violation: want, Steps: steps}, got)
	}
	return want
}

func (c *Spans) diverged(v *eval.Validator, s *span.Span, e, w Outcome) {
	c.divergences.Add(1)
	if c.opts.OnDivergence != nil {
		c.opts.OnDivergence(Divergence{Validator: v.IR.Name, SpanID: s.ID, Eval: e, Wasm: w})
	}
}

// runWasm runs v on the module; an error that is a fallback has been
// counted as one.
func (c *Spans) runWasm(ctx context.Context, v *eval.Validator, s *span.Span, env *eval.Env) (*eval.Violation, vm.Result, error) {
	in, err := c.pool.Get(ctx) // counts the run
	if err != nil {
		return nil, vm.Result{}, err
	}
	vi, res, err := in.CheckSpanEnv(ctx, v.IR.Name, s, env)
	c.pool.Put(in)
	if isFallback(err) {
		c.fallbacks.Add(1)
	}
	return vi, res, err
}

func isFallback(err error) bool {
	return err != nil && (errors.Is(err, vm.ErrUnsupported) || errors.Is(err, vm.ErrTooLarge))
}

// String words a divergence on one line: the span, the validator (or
// router) and both outcomes.
func (d Divergence) String() string {
	what := "validator " + d.Validator
	if d.Router != "" {
		what = "router " + d.Router
	}
	return fmt.Sprintf("span %q, %s: eval %s; wasm %s", d.SpanID, what, d.Eval, d.Wasm)
}

// String words an outcome: its violation or "pass", and the steps.
func (o Outcome) String() string {
	var b strings.Builder
	switch {
	case o.Error != "":
		b.WriteString("error: " + o.Error)
	case o.Actions != nil:
		fmt.Fprintf(&b, "actions [%s]", strings.Join(o.Actions, "; "))
	case o.Skipped:
		b.WriteString("skipped")
	case o.Emitted != "":
		b.WriteString("emitted " + o.Emitted)
	case o.Violation == nil:
		b.WriteString("pass")
	default:
		fmt.Fprintf(&b, "%s: %s (%s at %s, %s)", o.Violation.Field, o.Violation.Detail, o.Violation.Rule, o.Violation.Pos, o.Violation.Action)
	}
	fmt.Fprintf(&b, ", %d steps", o.Steps)
	return b.String()
}
