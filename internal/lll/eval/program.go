package eval

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/loglineos/loglineos/internal/lll/abi"
	"github.com/loglineos/loglineos/internal/lll/eval/spanfield"
	"github.com/loglineos/loglineos/internal/lll/ir"
	"github.com/loglineos/loglineos/internal/span"
)

// Program is a compiled, executable program.
type Program struct {
	IR         *ir.Program
	validators []*Validator
	pipelines  []*Pipeline
	routers    []*Router
}

// Compile prepares p for execution. It fails when the IR is malformed
// (an unknown operator, a reference to a missing policy, an unknown
// format): IR that the checker produced never fails.
func Compile(p *ir.Program) (*Program, error) {
	if p.ABI != ir.ABI {
		return nil, fmt.Errorf("eval: unknown ABI %q", p.ABI)
	}
	out := &Program{IR: p}
	for _, v := range p.Validators {
		cv, err := compileValidator(p, v)
		if err != nil {
			return nil, fmt.Errorf("eval: validator %s: %w", v.Name, err)
		}
		out.validators = append(out.validators, cv)
	}
	for _, pl := range p.Pipelines {
		c := &compiler{prog: p, inputSpan: true}
		cp := &Pipeline{IR: pl}
		if pl.Guard != nil {
			g, err := c.compile(pl.Guard)
			if err != nil {
				return nil, fmt.Errorf("eval: pipeline %s: %w", pl.Name, err)
			}
			cp.guard = g
		}
		for _, d := range pl.Derives {
			if f, ok := abi.Funcs()[d.Kernel]; !ok || f.Kind != "kernel" {
				return nil, fmt.Errorf("eval: pipeline %s: unknown kernel %q", pl.Name, d.Kernel)
			}
		}
		out.pipelines = append(out.pipelines, cp)
	}
	for _, r := range p.Routers {
		cr, err := compileRouter(p, r)
		if err != nil {
			return nil, fmt.Errorf("eval: router %s: %w", r.Name, err)
		}
		out.routers = append(out.routers, cr)
	}
	return out, nil
}

// PolicyValue returns the value of policy.NAME.PATH... (name, and the key
// and the keys below it in path) as a run with env reads it: env's
// override of the policy's key, else the program's own value
// (Env.PolicyValue). It fails for a policy or key the program does not
// have.
func (p *Program) PolicyValue(env *Env, name string, path []string) (ir.Value, error) {
	def := p.IR.Policy(name)
	if def == nil || len(path) == 0 || def.Field(path[0]) == nil {
		return ir.Value{}, fmt.Errorf("eval: no policy value %s.%s", name, strings.Join(path, "."))
	}
	v, _ := walk(def.Field(path[0]).Value, path[1:])
	return env.PolicyValue(name, path, v), nil
}

// Validators returns the validators, sorted by name.
func (p *Program) Validators() []*Validator { return p.validators }

// Validator returns the validator called name, or nil.
func (p *Program) Validator(name string) *Validator {
	i := sort.Search(len(p.validators), func(i int) bool { return p.validators[i].IR.Name >= name })
	if i < len(p.validators) && p.validators[i].IR.Name == name {
		return p.validators[i]
	}
	return nil
}

// Pipelines returns the pipelines, sorted by name.
func (p *Program) Pipelines() []*Pipeline { return p.pipelines }

// Routers returns the routers, sorted by name.
func (p *Program) Routers() []*Router { return p.routers }

// Violation is the failure of one rule of a validator: the answer a
// gateway turns into a rejected-span problem.
type Violation struct {
	Validator string `json:"validator"` // "canonical_contract_v1"
	Rule      string `json:"rule"`      // the rule as written: require field "when" as "rfc3339"
	Field     string `json:"field"`     // "when" ("" for a check)
	Detail    string `json:"detail"`    // field "when" is not RFC 3339: "2025-13-45"
	Pos       string `json:"pos"`       // stdlib/canonical.lll:6:3
	Action    string `json:"action"`    // on_fail: "reject" or "warn"
}

// Error returns "validator: detail (rule at pos)".
func (v *Violation) Error() string {
	return fmt.Sprintf("%s: %s (%s at %s)", v.Validator, v.Detail, v.Rule, v.Pos)
}

// Validator is a compiled validator.
type Validator struct {
	IR        *ir.Validator
	spanInput bool
	guard     fn
	rules     []*rule
	emitWith  []fn
	// emitKeys are the members of the emitted event copied from the
	// input and its type, sorted: emitType is the type's index.
	emitKeys []string
	emitType int
}

type rule struct {
	ir      *ir.Rule
	top     string // top-level member
	field   spanfield.Field
	path    []string
	format  *abi.Format
	allowed uint16 // span members allowed (closed), by memberBit
	allowL  []string
	cond    fn
	in      []ir.Value      // the values the field may take; nil: any
	inStr   map[string]bool // the string values of in, for top-level span strings
	inShow  string          // in, as the violation shows it
}

// oneOf reports whether v is one of the rule's values (always, for a rule
// without any).
func (r *rule) oneOf(v ir.Value) bool {
	if r.in == nil {
		return true
	}
	for _, w := range r.in {
		if w.Equal(v) {
			return true
		}
	}
	return false
}

func memberBit(name string) uint16 {
	f := spanfield.Of(name)
	if f == spanfield.None {
		return 0
	}
	return 1 << f
}

func compileValidator(p *ir.Program, v *ir.Validator) (*Validator, error) {
	spanIn := len(v.Input) == 1 && v.Input[0] == abi.InputSpan
	for _, in := range v.Input {
		if _, ok := abi.Inputs()[in]; !ok {
			return nil, fmt.Errorf("unknown input %q", in)
		}
		if in == abi.InputSpan && !spanIn {
			return nil, fmt.Errorf("span cannot be mixed with other inputs")
		}
		if in == abi.InputWebhook {
			return nil, fmt.Errorf("the input %s is for routers only", in)
		}
	}
	c := &compiler{prog: p, inputSpan: spanIn}
	cv := &Validator{IR: v, spanInput: spanIn}
	if v.Guard != nil {
		g, err := c.compile(v.Guard)
		if err != nil {
			return nil, err
		}
		cv.guard = g
	}
	formats := abi.Formats()
	for _, r := range v.Rules {
		cr := &rule{ir: r}
		switch r.Kind {
		case ir.RuleRequire, ir.RuleAllow:
			top, rest, dotted := strings.Cut(r.Field, ".")
			cr.top = top
			if dotted {
				cr.path = strings.Split(rest, ".")
			}
			if spanIn {
				cr.field = spanfield.Of(top)
				if cr.field == spanfield.None {
					return nil, fmt.Errorf("unknown span field %q", top)
				}
			}
			if r.Format != "" {
				f, ok := formats[r.Format]
				if !ok {
					return nil, fmt.Errorf("unknown format %q", r.Format)
				}
				cr.format = &f
			}
			if len(r.In) > 0 {
				cr.in, cr.inStr = r.In, map[string]bool{}
				shown := make([]string, len(r.In))
				for i, x := range r.In {
					switch x.Kind() {
					case ir.String:
						cr.inStr[x.Str()] = true
					case ir.Number, ir.Bool:
					default:
						return nil, fmt.Errorf("field %q: a value of in is a %s, not a string, number or bool", r.Field, x.Kind())
					}
					shown[i] = show(x)
				}
				cr.inShow = strings.Join(shown, ", ")
			}
		case ir.RuleClosed:
			cr.allowL = r.Allowed
			for _, a := range r.Allowed {
				cr.allowed |= memberBit(a)
			}
		case ir.RuleCheck:
			f, err := c.compile(r.Cond)
			if err != nil {
				return nil, err
			}
			cr.cond = f
		default:
			return nil, fmt.Errorf("unknown rule kind %q", r.Kind)
		}
		cv.rules = append(cv.rules, cr)
	}
	if v.OnFail != "reject" && v.OnFail != "warn" {
		return nil, fmt.Errorf("unknown on_fail %q", v.OnFail)
	}
	if v.Emit != nil {
		fields, ok := abi.Inputs()[v.Emit.Event]
		if !ok {
			return nil, fmt.Errorf("unknown event %q", v.Emit.Event)
		}
		for _, f := range fields {
			cv.emitKeys = append(cv.emitKeys, f.Name)
		}
		if !slices.Contains(cv.emitKeys, "type") {
			cv.emitKeys = append(cv.emitKeys, "type")
		}
		slices.Sort(cv.emitKeys)
		cv.emitType = slices.Index(cv.emitKeys, "type")
		for _, w := range v.Emit.With {
			f, err := c.compile(w)
			if err != nil {
				return nil, err
			}
			cv.emitWith = append(cv.emitWith, f)
		}
	}
	return cv, nil
}

// Name returns the validator's name.
func (v *Validator) Name() string { return v.IR.Name }

// AppliesTo reports whether the validator takes inputs of the given type
// ("span", "trajectory_quality", ...).
func (v *Validator) AppliesTo(input string) bool {
	for _, in := range v.IR.Input {
		if in == input {
			return true
		}
	}
	return false
}

func (v *Validator) violation(r *ir.Rule, field, detail string) *Violation {
	return &Violation{Validator: v.IR.Name, Rule: r.Source, Field: field, Detail: detail, Pos: r.Pos, Action: v.IR.OnFail}
}

// Validate checks a span with the zero Env (features off, the bundle's own
// policies, no kernels). It returns nil when the span passes.
func (v *Validator) Validate(s *span.Span) *Violation {
	return v.CheckSpan(context.Background(), s, nil)
}

// CheckSpan checks a span. It returns nil when the span passes or the
// validator's guard does not hold. A rule that cannot be evaluated (a
// runtime error, the step budget, cancellation) fails: its violation's
// Detail says why.
func (v *Validator) CheckSpan(ctx context.Context, s *span.Span, env *Env) *Violation {
	vi, _ := v.CheckSpanSteps(ctx, s, env)
	return vi
}

// CheckSpanSteps is CheckSpan that also returns the steps the run counted
// against its budget: what a second backend's fuel must match.
func (v *Validator) CheckSpanSteps(ctx context.Context, s *span.Span, env *Env) (_ *Violation, steps int64) {
	if !v.spanInput {
		return nil, 0
	}
	var fr *frame
	defer func() {
		if fr != nil {
			steps = fr.steps
		}
	}()
	frameOf := func() *frame {
		if fr == nil {
			fr = newFrame(ctx, env, Input{Span: s})
		}
		return fr
	}
	if v.guard != nil {
		ok, err := boolOf(frameOf(), v.guard, v.IR.Pos)
		if err != nil {
			return v.cannotEvaluate(nil, err), 0
		}
		if !ok {
			return nil, 0
		}
	}
	for _, r := range v.rules {
		switch r.ir.Kind {
		case ir.RuleRequire, ir.RuleAllow:
			if vi := v.spanFieldRule(r, s, frameOf); vi != nil {
				return vi, 0
			}
		case ir.RuleClosed:
			for _, m := range s.Members {
				if b := memberBit(m); b == 0 || r.allowed&b == 0 {
					return v.unknown(r, m), 0
				}
			}
		case ir.RuleCheck:
			if vi := v.checkRule(r, frameOf()); vi != nil {
				return vi, 0
			}
		}
	}
	return nil, 0
}

func (v *Validator) checkRule(r *rule, fr *frame) *Violation {
	ok, err := boolOf(fr, r.cond, r.ir.Pos)
	if err != nil {
		return v.cannotEvaluate(r, err)
	}
	if !ok {
		return v.checkFailed(r)
	}
	return nil
}

func (v *Validator) spanFieldRule(r *rule, s *span.Span, frameOf func() *frame) *Violation {
	require := r.ir.Kind == ir.RuleRequire
	if r.path == nil {
		// Fast path: top-level members.
		present := false
		switch r.field {
		case spanfield.ConfirmedBy:
			present = s.ConfirmedBy != nil
		case spanfield.Data:
			present = s.Data != nil
		default:
			present = spanfield.String(s, r.field) != ""
		}
		if !present {
			if r.field != spanfield.ConfirmedBy && r.field != spanfield.Data && hasMember(s, r.top) {
				if require {
					return v.empty(r)
				}
				present = true // an empty string, allowed: check its format
			} else if require {
				return v.required(r)
			} else {
				return nil
			}
		}
		if r.in != nil && r.field != spanfield.ConfirmedBy && r.field != spanfield.Data && r.field != spanfield.When {
			// A top-level string member: its format, then its value.
			if r.format != nil {
				if ok, reason := r.format.Match(ir.StringValue(spanfield.String(s, r.field))); !ok {
					return v.badFormat(r, ir.StringValue(spanfield.String(s, r.field)), reason)
				}
			}
			if str := spanfield.String(s, r.field); !r.inStr[str] {
				return v.notOneOfString(r, str)
			}
			return nil
		}
		if r.format == nil {
			return nil
		}
		switch f := r.format.Name; {
		case r.field == spanfield.When && f == "rfc3339":
			if s.WhenOK {
				return nil
			}
			if _, ok := abi.ValidRFC3339(s.WhenRaw); ok {
				return nil
			}
			return v.notRFC3339(r, s.WhenRaw)
		case r.field == spanfield.ConfirmedBy && (f == "array" || f == "array_of_strings"):
			return nil
		case r.field == spanfield.Data && f == "object":
			if len(s.Data) > 0 && s.Data[0] == '{' {
				return nil
			}
		case r.field != spanfield.ConfirmedBy && r.field != spanfield.Data && r.field != spanfield.When && f == "string":
			return nil
		}
	}
	fr := frameOf()
	val, err := fr.spanValue(r.field, r.ir.Pos)
	if err != nil && r.field == spanfield.When {
		val, err = ir.StringValue(s.WhenRaw), nil
	}
	if err != nil {
		return v.cannotEvaluate(r, err)
	}
	val, _ = walk(val, r.path)
	if val.IsNull() {
		if require {
			return v.required(r)
		}
		return nil
	}
	if r.format != nil {
		if ok, reason := r.format.Match(val); !ok {
			return v.badFormat(r, val, reason)
		}
	}
	if !r.oneOf(val) {
		return v.notOneOf(r, show(val))
	}
	return nil
}

func show(v ir.Value) string {
	if v.Kind() == ir.String {
		return fmt.Sprintf("%q", v.Str())
	}
	return v.String()
}

// Result is the outcome of running a validator on an event.
type Result struct {
	// Applied is false when the guard did not hold (or the input type is
	// not one the validator takes).
	Applied   bool
	Violation *Violation
	// Emitted is the event emitted (a map), when the validator emits and
	// its rules passed.
	Emitted *ir.Value
}

// CheckEvent runs the validator on a derived event (a map with a "type"
// member). Errors of the guard or of the emit kernels are returned; rules
// that fail give a Violation.
func (v *Validator) CheckEvent(ctx context.Context, ev ir.Value, env *Env) (Result, error) {
	return v.CheckEventWith(ctx, ev, env, &Scratch{})
}

// Scratch is memory that runs reuse from one to the next: the frame of a
// run, the arguments of its kernel calls and the members of the event it
// emits. A caller that runs validators many times in a row (the
// derivation, twice at every close) keeps one, and a run then allocates
// nothing of its own. The event a run emits lives in the Scratch: it is
// valid until the next run on the same Scratch. A Scratch is not safe for
// concurrent use; the zero Scratch is ready.
type Scratch struct {
	fr      frame
	keys    []string
	vals    []ir.Value
	with    []ir.Value // the values of the emit step's withs
	emitted ir.Value
}

// set sets the member k of the event being emitted, keeping the members
// sorted (a later value replaces an earlier one of the same name).
func (s *Scratch) set(k string, x ir.Value) {
	i, found := slices.BinarySearch(s.keys, k)
	if found {
		s.vals[i] = x
		return
	}
	s.keys, s.vals = slices.Insert(s.keys, i, k), slices.Insert(s.vals, i, x)
}

// CheckEventWith is CheckEvent with the memory of s: Result.Emitted points
// into s and is valid until the next run on s.
func (v *Validator) CheckEventWith(ctx context.Context, ev ir.Value, env *Env, s *Scratch) (Result, error) {
	typ, _ := ev.Get("type")
	if v.spanInput || !v.AppliesTo(typ.Str()) {
		return Result{}, nil
	}
	fr := &s.fr
	fr.reset(ctx, env, Input{Event: ev})
	if v.guard != nil {
		ok, err := boolOf(fr, v.guard, v.IR.Pos)
		if err != nil {
			return Result{}, err
		}
		if !ok {
			return Result{}, nil
		}
	}
	res := Result{Applied: true}
	for _, r := range v.rules {
		switch r.ir.Kind {
		case ir.RuleRequire, ir.RuleAllow:
			val, _ := ev.Get(r.top)
			val, _ = walk(val, r.path)
			if val.IsNull() {
				if r.ir.Kind == ir.RuleRequire {
					res.Violation = v.required(r)
					return res, nil
				}
				continue
			}
			if r.format != nil {
				if ok, reason := r.format.Match(val); !ok {
					res.Violation = v.badFormat(r, val, reason)
					return res, nil
				}
			}
			if !r.oneOf(val) {
				res.Violation = v.notOneOf(r, show(val))
				return res, nil
			}
		case ir.RuleClosed:
			for _, k := range ev.Keys() {
				if !contains(r.allowL, k) {
					res.Violation = v.unknown(r, k)
					return res, nil
				}
			}
		case ir.RuleCheck:
			if vi := v.checkRule(r, fr); vi != nil {
				res.Violation = vi
				return res, nil
			}
		}
	}
	return v.emit(fr, ev, s, res)
}

// Steps returns the steps the last run on s counted against its budget
// (CheckEventWith, EmitEvent): what a second backend's fuel must match.
func (s *Scratch) Steps() int64 { return s.fr.steps }

// EmitEvent is the end of CheckEventWith for a run whose guard and rules
// a second backend decided (the event applies and passes): it builds the
// event the validator emits (none when it emits none) by the
// interpreter's own code, its with kernels called through env.Kernels,
// continuing a run that started at start (its deadline env.Timeout after
// it; the zero time: now) and has counted steps steps and charged bytes
// bytes of its budgets. Result.Emitted points into s, and s.Steps() is
// then the whole run's steps, as CheckEventWith's would be.
func (v *Validator) EmitEvent(ctx context.Context, ev ir.Value, env *Env, s *Scratch, start time.Time, steps, bytes int64) (Result, error) {
	fr := &s.fr
	fr.reset(ctx, env, Input{Event: ev})
	fr.steps, fr.bytes = steps, bytes
	if !start.IsZero() && fr.timeout > 0 {
		fr.deadline = start.Add(fr.timeout)
	}
	return v.emit(fr, ev, s, Result{Applied: true})
}

// emit builds the event the validator emits, if it emits one, in s.
func (v *Validator) emit(fr *frame, ev ir.Value, s *Scratch, res Result) (Result, error) {
	if v.IR.Emit == nil {
		return res, nil
	}
	// The with kernels first (the members copied from the input count no
	// step and cannot fail), then the members in their order, one pass
	// over the sorted keys: the type, those of the input the emitted
	// event has, and those of the first with (a later value replaces an
	// earlier one of the same name), then those of the other withs.
	clear(s.with)
	s.with = s.with[:0]
	for _, w := range v.emitWith {
		x, err := w(fr)
		if err != nil {
			return Result{}, err
		}
		s.with = append(s.with, x)
	}
	var wk []string
	var wv []ir.Value
	if len(s.with) > 0 {
		wk, wv = s.with[0].Keys(), s.with[0].Values()
	}
	clear(s.vals)
	s.keys, s.vals = s.keys[:0], s.vals[:0]
	ik, iv := ev.Keys(), ev.Values()
	j := 0 // the next key of the with
	for i, k := range v.emitKeys {
		for ; j < len(wk) && wk[j] < k; j++ {
			s.keys, s.vals = append(s.keys, wk[j]), append(s.vals, wv[j])
		}
		if j < len(wk) && wk[j] == k {
			s.keys, s.vals = append(s.keys, k), append(s.vals, wv[j])
			j++
			continue
		}
		if i == v.emitType {
			s.keys, s.vals = append(s.keys, k), append(s.vals, ir.StringValue(v.IR.Emit.Event))
			continue
		}
		for l, x := range ik { // == rejects most keys by their length alone
			if x == k {
				s.keys, s.vals = append(s.keys, k), append(s.vals, iv[l])
				break
			}
		}
	}
	s.keys, s.vals = append(s.keys, wk[j:]...), append(s.vals, wv[j:]...)
	for _, x := range s.with[min(1, len(s.with)):] {
		vals := x.Values()
		for i, k := range x.Keys() {
			s.set(k, vals[i])
		}
	}
	size := valueBytes + mapBytes
	for _, k := range s.keys {
		size += mapEntryBytes + int64(len(k))
	}
	if err := fr.alloc(v.IR.Emit.Pos, size); err != nil {
		return Result{}, err
	}
	s.emitted.SetSortedMap(s.keys, s.vals)
	res.Emitted = &s.emitted
	return res, nil
}

func contains(s []string, x string) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}

// Pipeline is a compiled pipeline: the derive steps and their guard.
type Pipeline struct {
	IR    *ir.Pipeline
	guard fn
}

// Enabled evaluates the pipeline's guard (typically a feature flag).
func (p *Pipeline) Enabled(ctx context.Context, env *Env) (bool, error) {
	if p.guard == nil {
		return true, nil
	}
	return boolOf(newFrame(ctx, env, Input{Span: &span.Span{}}), p.guard, p.IR.Pos)
}

// Router is a compiled router.
type Router struct {
	IR     *ir.Router
	routes []compiledRoute
}

type compiledRoute struct {
	ir      *ir.Route
	nParams int
	guard   fn
	args    []fn
}

// Stager is a Host told of each action as its route produces it, before
// the next route runs: what a route's kv.set writes is what a later route
// of the same evaluation reads with kv.get (read-your-writes). An error
// fails the evaluation.
type Stager interface {
	Stage(ctx context.Context, a *Action) error
}

// Action is a host call a router asks for. Routers do not perform I/O:
// the runtime performs the actions, under the bundle's capabilities.
type Action struct {
	Router string
	Route  string // the route as written
	Pos    string
	Call   string // "ws.send"
	Args   []ir.Value
	// Input says the last argument is the input itself, the route having
	// omitted it: the span's canonical JSON (as a string) or the event.
	Input bool
}

func compileRouter(p *ir.Program, r *ir.Router) (*Router, error) {
	for _, in := range r.Input {
		if _, ok := abi.Inputs()[in]; !ok {
			return nil, fmt.Errorf("unknown input %q", in)
		}
		if in == abi.InputWebhook && len(r.Input) > 1 {
			return nil, fmt.Errorf("the input %s cannot be combined with other inputs", in)
		}
	}
	spanIn := len(r.Input) == 1 && r.Input[0] == abi.InputSpan
	c := &compiler{prog: p, inputSpan: spanIn}
	out := &Router{IR: r}
	for _, rt := range r.Routes {
		f, ok := abi.Funcs()[rt.Call]
		if !ok || f.Kind != "host" {
			return nil, fmt.Errorf("unknown host call %q", rt.Call)
		}
		cr := compiledRoute{ir: rt, nParams: len(f.Params)}
		if rt.Guard != nil {
			g, err := c.compile(rt.Guard)
			if err != nil {
				return nil, err
			}
			cr.guard = g
		}
		for _, a := range rt.Args {
			x, err := c.compile(a)
			if err != nil {
				return nil, err
			}
			cr.args = append(cr.args, x)
		}
		out.routes = append(out.routes, cr)
	}
	return out, nil
}

// Route returns the actions of every route whose guard holds, in order.
// When a call's payload is omitted (ws.send("sales")), the input itself is
// the payload: the span's canonical JSON, or the event.
func (r *Router) Route(ctx context.Context, in Input, env *Env) ([]Action, error) {
	out, _, err := r.RouteSteps(ctx, in, env)
	return out, err
}

// RouteSteps is Route, and the steps the run counted: what a second
// backend's run of the router must count too.
func (r *Router) RouteSteps(ctx context.Context, in Input, env *Env) (_ []Action, steps int64, _ error) {
	fr := newFrame(ctx, env, in)
	defer func() { steps = fr.steps }()
	var out []Action
	for _, rt := range r.routes {
		if rt.guard != nil {
			ok, err := boolOf(fr, rt.guard, rt.ir.Pos)
			if err != nil {
				return nil, 0, err
			}
			if !ok {
				continue
			}
		}
		a := Action{Router: r.IR.Name, Route: rt.ir.Source, Pos: rt.ir.Pos, Call: rt.ir.Call}
		for _, x := range rt.args {
			v, err := x(fr)
			if err != nil {
				return nil, 0, err
			}
			a.Args = append(a.Args, v)
		}
		if len(a.Args) < rt.nParams {
			a.Input = true
			if in.Span != nil {
				c := in.Span.Canonical()
				if err := fr.alloc(rt.ir.Pos, valueBytes+int64(len(c))); err != nil {
					return nil, 0, err
				}
				a.Args = append(a.Args, ir.StringValue(string(c)))
			} else {
				a.Args = append(a.Args, in.Event)
			}
		}
		if env != nil {
			if st, ok := env.Host.(Stager); ok {
				if err := st.Stage(ctx, &a); err != nil {
					return nil, 0, wrapHost(err, rt.ir.Pos, a.Call)
				}
			}
		}
		out = append(out, a)
	}
	return out, 0, nil
}
