package derive

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/loglineos/loglineos/internal/lll/abi"
	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/lll/ir"
	"github.com/loglineos/loglineos/stdlib"
)

// ErrRules is wrapped by the errors of StandardRules and of applying a
// bundle's rules to a configuration (a guard that cannot be evaluated).
var ErrRules = errors.New("derive: rules")

// The kernels of the neutral cycle (ABI v1), as .lll programs name them.
const (
	kernelLink       = "link_open_or_continue"
	kernelComponents = "components"
	kernelPercentile = "percentile"
	kernelWindow     = "window_count"
	kernelThreshold  = "threshold"
)

// Rules are the parts of a bundle's .lll program that the derivation runs:
// the guards of its pipelines and the when / emit clauses of its validators
// of derived events. Compile them once per bundle (CompileRules) and give
// them to every engine of that bundle (Config.Rules); they are read only, so
// engines may share them.
//
// The derivation reads them so:
//
//   - Linking. A span is linked (trajectory_edge) when the guard of a
//     pipeline that derives on link_open_or_continue() holds for the
//     tenant's configuration. The guard sees features and policies only
//     (it is evaluated once per configuration, not per span). Trajectories
//     already open close by timeout and by rule whatever it says, so that
//     nothing is left half-derived.
//   - Score. At each close, the trajectory_closed event goes to the
//     validators that take it and emit trajectory_quality, in name order;
//     the first whose when holds and whose rules pass gives the
//     trajectory_quality event, its score and components being what its
//     emit clause computed (components(...)). When none does, the
//     trajectory is not scored and the meter does not see it.
//   - Meter. That trajectory_quality event goes to the validators that take
//     it and emit diamond_candidate, in name order; the first whose when
//     holds makes the score eligible, with the threshold its emit clause
//     computed (threshold(...)). The credit budget (credit_budget) then
//     decides whether it is a candidate.
//
// The kernels are Go functions over the engine's state, answered for the
// event being decided: components(name...) gives the points of the named
// components of the closed trajectory and their sum as score;
// window_count() the number of scores in the tenant's meter window before
// this one; percentile(x) the highest percentile target, in steps of 0.1,
// at which x is at or above the window's threshold (0 on an empty window),
// except that with tie_rationing a score equal to the threshold of the
// tenant's percentile_target ranks at or above that target only for the
// share of such scores the tail quota has room for (docs/quality.md §4.4;
// the first call for an event decides, later calls repeat the answer);
// threshold(p) the window's threshold at percentile p, as the member
// threshold. Expressions are evaluated left to right and "and" stops at the
// first false operand, so the tie accumulator moves only when the operands
// before percentile(score) hold.
//
// A guard or emit clause that fails at run time (an arithmetic error, the
// step or byte budget) counts as not holding: derivation must go on, and the
// same records fail the same way on every replay. The runs have no
// wall-clock deadline (eval.Env.Timeout < 0), which would make what is
// derived depend on the machine's load.
type Rules struct {
	link  []*eval.Pipeline  // pipelines deriving on link_open_or_continue
	score []*eval.Validator // take trajectory_closed, emit trajectory_quality
	meter []*eval.Validator // take trajectory_quality, emit diamond_candidate
	// The members of trajectory_closed and trajectory_quality the score's
	// and the meter's validators read, sorted: only those are built.
	scoreReads, meterReads []string
	// CheckEvent runs the score's and the meter's validators on an event;
	// nil is the interpreter's eval.Validator.CheckEventWith. A backend's
	// (the WebAssembly module's, backend.Events.CheckEvent) must answer
	// as it does, calling the kernels as it calls them.
	CheckEvent func(ctx context.Context, v *eval.Validator, ev ir.Value, env *eval.Env, s *eval.Scratch) (eval.Result, error)
}

// CompileRules picks out of p (a compiled bundle program) the pipelines and
// validators the derivation runs.
func CompileRules(p *eval.Program) *Rules {
	r := &Rules{}
	for _, pl := range p.Pipelines() {
		if slices.ContainsFunc(pl.IR.Derives, func(d *ir.Derive) bool { return d.Kernel == kernelLink }) {
			r.link = append(r.link, pl)
		}
	}
	// CheckEvent reads type to know the validator applies.
	scoreReads, meterReads := map[string]bool{"type": true}, map[string]bool{"type": true}
	for _, v := range p.Validators() {
		switch em := v.IR.Emit; {
		case em == nil:
		case em.Event == QualityEvent.String() && v.AppliesTo(ClosedEvent.String()):
			r.score = append(r.score, v)
			reads(v.IR, scoreReads)
		case em.Event == CandidateEvent.String() && v.AppliesTo(QualityEvent.String()):
			r.meter = append(r.meter, v)
			reads(v.IR, meterReads)
		}
	}
	members := func(typ EventType, read map[string]bool) []string {
		var out []string
		for _, f := range abi.Inputs()[typ.String()] {
			if read[f.Name] || read[""] {
				out = append(out, f.Name)
			}
		}
		slices.Sort(out)
		return out
	}
	r.scoreReads, r.meterReads = members(ClosedEvent, scoreReads), members(QualityEvent, meterReads)
	return r
}

// reads adds to read the top-level members of its input that v reads; ""
// stands for all of them (a rule that looks at every member).
func reads(v *ir.Validator, read map[string]bool) {
	var walk func(x *ir.Expr)
	walk = func(x *ir.Expr) {
		if x == nil {
			return
		}
		if x.Op == ir.OpField || x.Op == ir.OpHas {
			read[x.Name] = true
		}
		for _, a := range x.Args {
			walk(a)
		}
	}
	walk(v.Guard)
	for _, r := range v.Rules {
		switch r.Kind {
		case ir.RuleRequire, ir.RuleAllow:
			top, _, _ := strings.Cut(r.Field, ".")
			read[top] = true
		case ir.RuleClosed:
			read[""] = true
		}
		walk(r.Cond)
	}
	if v.Emit != nil {
		for _, w := range v.Emit.With {
			walk(w)
		}
	}
}

// StandardRules compiles the rules of the standard bundle (package stdlib).
func StandardRules() (*Rules, error) {
	p, err := stdlib.Compile()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRules, err)
	}
	ep, err := eval.Compile(p)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRules, err)
	}
	return CompileRules(ep), nil
}

// bind prepares k for the engine's rules: the .lll environment of its
// features and policies, and whether spans are linked under it.
func (e *Engine) bind(k *compiled) error {
	c := &k.src
	k.env = &eval.Env{
		Features: map[string]bool{"trajectory": c.Features.Trajectory, "diamond": c.Features.Diamond, "cluster": c.Features.Cluster},
		Policies: policyValues(k),
		Kernels:  e.kern,
		// No wall-clock deadline: what is derived must not depend on the
		// machine's speed or load. The step and byte budgets stay: they
		// count work, so the same records hit them on every replay.
		Timeout: -1,
	}
	k.linkOn = false
	for _, pl := range e.rules.link {
		on, err := pl.Enabled(context.Background(), k.env)
		if err != nil {
			return fmt.Errorf("%w: pipeline %s: %w", ErrRules, pl.IR.Name, err)
		}
		k.linkOn = k.linkOn || on
	}
	return nil
}

// policyValues returns the policies of k as .lll programs read them
// (policy.quality_meter.min_score, ...), typed as abi.StandardPolicies says.
func policyValues(k *compiled) map[string]*ir.Policy {
	c := &k.src
	strs := func(l []string) ir.Value {
		out := make([]ir.Value, len(l))
		for i, s := range l {
			out[i] = ir.StringValue(s)
		}
		return ir.ListValue(out)
	}
	num := func(v int) ir.Value { return ir.IntValue(int64(v)) }
	hundredths := func(v int) ir.Value { return ir.NumberMicros(int64(v) * (ir.NumberScale / 100)) }
	vals := map[string]map[string]ir.Value{
		"trajectory_linker": {
			"key_fields":            strs(c.Linker.KeyFields),
			"window":                ir.DurationValue(c.Linker.Window),
			"close_timeout":         ir.DurationValue(c.Linker.CloseTimeout),
			"exceptions":            strs(c.Linker.Exceptions),
			"close_on_did":          strs(c.Linker.CloseOnDid),
			"max_open_trajectories": num(c.Linker.MaxOpen),
		},
		"quality_meter": {
			"weights": ir.MapValue(map[string]ir.Value{
				"mass":         hundredths(c.Meter.Weights.Mass),
				"persistence":  hundredths(c.Meter.Weights.Persistence),
				"verification": hundredths(c.Meter.Weights.Verification),
			}),
			"mass_saturation":        num(c.Meter.MassSaturation),
			"persistence_saturation": ir.DurationValue(c.Meter.PersistenceSaturation),
			"confirmer_saturation":   num(c.Meter.ConfirmerSaturation),
			"percentile_target":      ir.PercentileMicros(int64(k.qpm) * (ir.NumberScale / 10)),
			"min_score":              num(c.Meter.MinScore),
			"warmup":                 num(c.Meter.Warmup),
			"window":                 ir.DurationValue(c.Meter.Window),
			"tie_rationing":          ir.BoolValue(c.Meter.TieRationing),
			"credit_budget":          ir.BoolValue(c.Meter.CreditBudget),
		},
		"derived_events_perf": {
			"max_per_minute": num(c.Perf.MaxPerMinute),
			"on_overload":    ir.StringValue(c.Perf.OnOverload),
		},
	}
	out := make(map[string]*ir.Policy, len(vals))
	for name, keys := range abi.StandardPolicies() {
		p := &ir.Policy{Name: name}
		for _, key := range keys {
			if v, ok := vals[name][key.Name]; ok {
				p.Fields = append(p.Fields, &ir.PolicyField{Key: key.Name, Type: key.Type, Value: v})
			}
		}
		slices.SortFunc(p.Fields, func(a, b *ir.PolicyField) int { return strings.Compare(a.Key, b.Key) })
		out[name] = p
	}
	return out
}

// kernels answers the kernels of the derivation for the one event being
// decided: the engine sets its fields before running a validator.
type kernels struct {
	t   *tenant
	c   Components // the closed trajectory's points
	thr int        // the window's threshold at the tenant's target; -1: empty window
	phi uint64     // the share of ties the quota has room for, in CreditOne units
	tie int8       // the tie decision of this event: 0 not taken, 1 admitted, -1 refused

	shapes  *eventShapes
	scratch eval.Scratch // the memory of the validators' runs
}

// Kernel implements eval.Kernels.
func (ks *kernels) Kernel(_ context.Context, name string, _ eval.Input, args []ir.Value) (ir.Value, error) {
	m, k := &ks.t.meter, ks.t.cfg
	switch name {
	case kernelComponents:
		return ks.components(args)
	case kernelWindow:
		return ir.IntValue(int64(m.n)), nil
	case kernelPercentile:
		x := args[0].Micros()
		p := m.rank(x)
		if k.tieRation && ks.thr >= 0 && x == int64(ks.thr)*ir.NumberScale {
			if ks.tie == 0 {
				ks.tie = -1
				if m.ration(ks.phi) {
					ks.tie = 1
				}
			}
			if ks.tie < 0 {
				p = min(p, k.qpm-1)
			}
		}
		return ir.NumberMicros(int64(p) * (ir.NumberScale / 10)), nil
	case kernelThreshold:
		t := 0
		if m.n > 0 {
			q := min(max(args[0].Micros()/(ir.NumberScale/10), 0), 999)
			t, _ = m.threshold(uint64(q))
		}
		ks.shapes.thresholdVals[0] = ir.IntValue(int64(t))
		return ks.shapes.thresholdVal, nil
	}
	return ir.Value{}, fmt.Errorf("kernel %s is a pipeline's derive step, not a function of an expression", name)
}

// components is the kernel components(name...): the points of the named
// components (each once) and their sum as score.
func (ks *kernels) components(args []ir.Value) (ir.Value, error) {
	var named [3]bool
	for _, a := range args {
		i := slices.Index(ks.shapes.componentKeys, a.Str())
		if i < 0 {
			return ir.Value{}, fmt.Errorf("unknown component %q", a.Str())
		}
		named[i] = true
	}
	points := [3]int{ks.c.Mass, ks.c.Persistence, ks.c.Verification}
	sh := ks.shapes
	sum := 0
	for i, on := range named {
		if on {
			sum += points[i]
		}
	}
	if named == [3]bool{true, true, true} {
		for i, p := range points {
			sh.components[i] = ir.IntValue(int64(p))
		}
		sh.resultVals[1] = ir.IntValue(int64(sum))
		return sh.result, nil
	}
	m := map[string]ir.Value{}
	for i, on := range named {
		if on {
			m[sh.componentKeys[i]] = ir.IntValue(int64(points[i]))
		}
	}
	return ir.MapValue(map[string]ir.Value{"components": ir.MapValue(m), "score": ir.IntValue(int64(sum))}), nil
}

// eventShapes builds the derived events the validators read, and the
// results of the kernels, in buffers reused from one event to the next: a
// validator's result is read before the next event is built, so one set of
// values per engine does, and deciding a score allocates little.
type eventShapes struct {
	closed, quality       eventShape
	componentKeys         []string
	components            [3]ir.Value // components(mass, persistence, verification)
	componentsVal, result ir.Value    // {mass, ...} and {components, score}
	resultVals            [2]ir.Value
	thresholdVal          ir.Value // {threshold}
	thresholdVals         [1]ir.Value
	idBuf                 []byte
}

// eventShape is one event type restricted to the members the validators
// read: val is the map over vals.
type eventShape struct {
	keys []string
	vals []ir.Value
	val  ir.Value
}

func newShape(keys []string) eventShape {
	sh := eventShape{keys: keys, vals: make([]ir.Value, len(keys))}
	sh.val = ir.SortedMapValue(sh.keys, sh.vals)
	return sh
}

func newEventShapes(r *Rules) *eventShapes {
	sh := &eventShapes{
		closed:        newShape(r.scoreReads),
		quality:       newShape(r.meterReads),
		componentKeys: []string{"mass", "persistence", "verification"},
	}
	sh.componentsVal = ir.SortedMapValue(sh.componentKeys, sh.components[:])
	sh.resultVals[0] = sh.componentsVal
	sh.result = ir.SortedMapValue([]string{"components", "score"}, sh.resultVals[:])
	sh.thresholdVal = ir.SortedMapValue([]string{"threshold"}, sh.thresholdVals[:])
	return sh
}

// value is ev (trajectory_closed or trajectory_quality) as the validators
// see it; it is valid until the next call.
func (sh *eventShapes) value(ev *Event) ir.Value {
	s := &sh.closed
	if ev.Type == QualityEvent {
		s = &sh.quality
	}
	for i, k := range s.keys {
		var v ir.Value
		switch k {
		case "type":
			v = ir.StringValue(ev.Type.String())
		case "trajectory_id":
			sh.idBuf = ev.Trajectory.AppendText(sh.idBuf[:0])
			v = ir.StringValue(string(sh.idBuf))
		case "reason":
			v = ir.StringValue(ev.Reason.String())
		case "score":
			v = ir.IntValue(int64(ev.Score))
		case "components":
			v = ir.MapValue(map[string]ir.Value{
				"mass":         ir.IntValue(int64(ev.Components.Mass)),
				"persistence":  ir.IntValue(int64(ev.Components.Persistence)),
				"verification": ir.IntValue(int64(ev.Components.Verification)),
			})
		case "tenant":
			v = ir.StringValue(ev.Tenant)
		case "ts":
			v = ir.TimestampValue(time.Unix(0, ev.TS))
		case "seq":
			v = ir.IntValue(int64(ev.Seq))
		}
		s.vals[i] = v
	}
	return s.val
}

// check runs the validators vs on ev (for tenant t) and returns what the
// first that applies, passes its rules and emits emitted; that value is
// valid until the next check.
func (e *Engine) check(vs []*eval.Validator, t *tenant, ev *Event) (ir.Value, bool) {
	if len(vs) == 0 {
		return ir.Value{}, false
	}
	in := e.kern.shapes.value(ev)
	run := e.rules.CheckEvent
	if run == nil {
		run = func(ctx context.Context, v *eval.Validator, ev ir.Value, env *eval.Env, s *eval.Scratch) (eval.Result, error) {
			return v.CheckEventWith(ctx, ev, env, s)
		}
	}
	for _, v := range vs {
		res, err := run(context.Background(), v, in, t.cfg.env, &e.kern.scratch)
		if err != nil || !res.Applied || res.Violation != nil || res.Emitted == nil {
			continue
		}
		return *res.Emitted, true
	}
	return ir.Value{}, false
}

// memberInt returns the integer part of the number member name of v, and
// def when it has none.
func memberInt(v ir.Value, def int, name ...string) int {
	for _, n := range name {
		v, _ = v.Get(n)
	}
	if v.Kind() != ir.Number {
		return def
	}
	return int(v.Int())
}
