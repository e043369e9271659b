package backend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/loglineos/loglineos/internal/lll"
	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/lll/ir"
	"github.com/loglineos/loglineos/internal/lll/wasm/codegen"
	"github.com/loglineos/loglineos/internal/lll/wasm/layout"
	"github.com/loglineos/loglineos/internal/lll/wasm/wasmtest"
	"github.com/loglineos/loglineos/stdlib"
)

// fakeKernels answers the kernels with answers varied by seed, the
// event's trajectory and the call's arguments: numbers, and for some
// seeds an error or a value of another kind. It counts its calls.
type fakeKernels struct {
	seed  int64
	calls int
}

func (k *fakeKernels) Kernel(_ context.Context, name string, in eval.Input, args []ir.Value) (ir.Value, error) {
	k.calls++
	h := k.seed
	if id, ok := in.Event.Get("trajectory_id"); ok {
		h += int64(len(id.Str())) * 7
	}
	for _, a := range args {
		h = h*31 + a.Micros()/1000 + int64(len(a.Str()))
	}
	h = max(h, -h) // |h|
	switch name {
	case "window_count":
		switch k.seed % 11 {
		case 9:
			return ir.Value{}, errors.New("the window is not available")
		case 10:
			return ir.StringValue("many"), nil
		}
		return ir.IntValue(h % 5), nil
	case "percentile":
		if k.seed%13 == 7 {
			return ir.Value{}, errors.New("no percentile")
		}
		return ir.NumberMicros(h % 101 * 1_000_000), nil
	case "threshold":
		return ir.MapValue(map[string]ir.Value{"threshold": ir.IntValue(h % 100)}), nil
	case "components":
		return ir.MapValue(map[string]ir.Value{
			"components": ir.MapValue(map[string]ir.Value{"mass": ir.IntValue(h % 40)}),
			"score":      ir.IntValue(h % 100),
		}), nil
	}
	return ir.Value{}, fmt.Errorf("no kernel %s", name)
}

// eventsSrc has event validators over what codegen compiles of them:
// values of the event (numbers, strings, bools, below a member, has),
// kernels, percentile, number and string policy values, feature flags,
// arithmetic, check rules with and without a message, and an emit step.
const eventsSrc = `policy meter {
  target: "p90"
  min: 60
  label: "gold"
}

validator checks {
  input: "trajectory_quality"
  when has(score) and features.diamond
  check score * 2 - percentile(score) > policy.meter.min else "too low"
  check components.mass + components.persistence >= 10
  check tenant != policy.meter.label and len(trajectory_id) < 40
  emit: "diamond_candidate" with threshold(policy.meter.target)
}

validator loose {
  input: "trajectory_quality"
  check score / (window_count() - 2) < 1000
  check lower(tenant) == "t" or upper(trajectory_id) matches "T_*"
}

validator closed_one {
  input: "trajectory_closed"
  when has(trajectory_id)
  emit: "trajectory_quality" with components(mass, persistence, verification)
}
`

// manyKernelsSrc has a validator with as many kernel calls as the module
// answers in one run (layout.EventMaxKernels): every answer's place in
// the event table is used.
var manyKernelsSrc = "validator many {\n  input: \"trajectory_quality\"\n  when features.diamond\n  check " +
	strings.Repeat("window_count() + ", layout.EventMaxKernels-2) + "window_count() >= 3 and percentile(score) >= 40\n" +
	"  emit: \"diamond_candidate\" with threshold(percentile(score))\n}\n"

// eventLines are events over the validators' inputs, with values of
// every kind where the validators read numbers.
func eventLines() []string {
	var out []string
	scores := []string{`70`, `59.5`, `30.000001`, `120`, `0`, `-3`, `null`, `"high"`, `true`, `9223372036854`, `{"a":1}`}
	for i := range 90 {
		score := scores[i%len(scores)]
		member := fmt.Sprintf(`,"score":%s`, score)
		if i%17 == 5 {
			member = "" // absent
		}
		comp := fmt.Sprintf(`{"mass":%d,"persistence":%d,"verification":20}`, i*3%40, i%12)
		switch i % 9 {
		case 4:
			comp = `{"mass":"x"}`
		case 7: // one millionth short of the check
			comp = `{"mass":5,"persistence":4.999999}`
		}
		out = append(out, fmt.Sprintf(`{"type":"trajectory_quality","trajectory_id":"t_%d","tenant":"%s"%s,"components":%s,"ts":"2025-10-05T22:00:00Z"}`,
			i, []string{"t", "T", "gold", "acme"}[i%4], member, comp))
	}
	out = append(out, `{"type":"trajectory_closed","trajectory_id":"t_9","tenant":"t"}`, `{"type":"trajectory_closed","tenant":"t"}`,
		`{"type":"trajectory_edge","trajectory_id":"t_1"}`, `{"type":"diamond_candidate","trajectory_id":"t_1"}`)
	return out
}

func decodeEvent(t testing.TB, line string) ir.Value {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(line))
	d.UseNumber()
	var x any
	if err := d.Decode(&x); err != nil {
		t.Fatal(err)
	}
	v, err := ir.FromJSON(x)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// eventEnvs are the Envs the events are checked under: kernels of
// several seeds (some failing, some of another kind), none, features on
// and off, step budgets that run out at every charge point of the
// shorter runs, a byte budget that runs out at the first kernel call,
// and no deadline (a run's answer must not depend on the machine's load).
func eventEnvs() []*eval.Env {
	var out []*eval.Env
	for seed := range int64(14) {
		out = append(out, &eval.Env{Kernels: &fakeKernels{seed: seed}, Features: map[string]bool{"diamond": seed%2 == 0}, Timeout: -1})
	}
	out = append(out, &eval.Env{Timeout: -1, Features: map[string]bool{"diamond": true}}, nil)
	for steps := range int64(14) {
		out = append(out, &eval.Env{Kernels: &fakeKernels{seed: 3}, Features: map[string]bool{"diamond": true}, MaxSteps: steps + 1, Timeout: -1})
	}
	out = append(out, &eval.Env{Kernels: &fakeKernels{seed: 4}, MaxBytes: 100, Timeout: -1})
	return out
}

// eventPrograms are the programs with event validators: eventsSrc, the
// standard bundle, and every golden program that has one.
func eventPrograms(t *testing.T) map[string]*ir.Program {
	t.Helper()
	progs := map[string]*ir.Program{}
	add := func(name string, srcs []lll.Source) {
		p, errs := lll.Compile(srcs)
		if len(errs) > 0 {
			return // the golden cases of errors
		}
		if len(codegen.EventValidators(p)) > 0 {
			progs[name] = p
		}
	}
	add("events", []lll.Source{{Name: "v.lll", Text: []byte(eventsSrc)}})
	add("many_kernels", []lll.Source{{Name: "v.lll", Text: []byte(manyKernelsSrc)}})
	add("stdlib", stdlib.Sources())
	for _, c := range goldenCases(t) {
		add(c.name, c.srcs)
	}
	for _, want := range []string{"events", "many_kernels", "stdlib", "meter_eval", "seed_score_and_meter"} {
		if progs[want] == nil {
			t.Fatalf("no event validators in %s", want)
		}
	}
	return progs
}

// TestShadowEvents is the gate of event validators: every program with
// event validators, compiled (its module through both validators), run
// in shadow mode over every event under every Env, with fresh kernels
// for each run: no divergence, and the module answers most runs itself.
// The meter's validator must be one the module runs.
func TestShadowEvents(t *testing.T) {
	ctx := context.Background()
	var lines []string
	for _, c := range goldenCases(t) {
		if c.name == "meter_eval" || strings.HasPrefix(c.name, "seed_") {
			lines = append(lines, c.lines...)
		}
	}
	lines = append(lines, eventLines()...)
	var events []ir.Value
	for _, l := range lines {
		if strings.Contains(l, `"type"`) && !strings.Contains(l, `"id":"s_`) {
			events = append(events, decodeEvent(t, l))
		}
	}
	total, answered := 0, 0
	for name, p := range eventPrograms(t) {
		out, err := codegen.Compile(p)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		// A subtest: without wabt it skips, the gate does not.
		t.Run("validate/"+name, func(t *testing.T) { wasmtest.Validate(t, name, out.Wasm) })
		if name == "stdlib" || name == "meter_eval" || name == "seed_score_and_meter" {
			if !slices.Contains(out.Events, "quality_meter_v1_1") {
				t.Errorf("%s: the module does not run the meter (left: %v)", name, out.EventsLeft)
			}
		}
		if name == "many_kernels" && !slices.Contains(out.Events, "many") {
			t.Errorf("%s: the module does not run it (left: %v)", name, out.EventsLeft)
		}
		var divs []Divergence
		e, err := newEvents(ctx, Shadow, p, out, Options{OnDivergence: func(d Divergence) { divs = append(divs, d) }}, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		ep, err := eval.Compile(p)
		if err != nil {
			t.Fatal(err)
		}
		var s eval.Scratch
		for _, v := range ep.Validators() {
			if !slices.Contains(out.Events, v.IR.Name) {
				continue
			}
			for _, env := range eventEnvs() {
				for _, ev := range events {
					if env != nil && env.Kernels != nil {
						env.Kernels = &fakeKernels{seed: env.Kernels.(*fakeKernels).seed}
					}
					_, _ = e.CheckEvent(ctx, v, ev, env, &s)
				}
			}
		}
		st := e.Stats()
		total, answered = total+int(st.Runs), answered+int(st.Runs-st.Fallbacks)
		for i, d := range divs {
			if i < 5 {
				t.Errorf("%s: %s", name, d)
			}
		}
		if st.Divergences != 0 {
			t.Errorf("%s: %d divergences in %d runs", name, st.Divergences, st.Runs)
		}
		_ = e.Close(ctx)
	}
	if total < 10_000 || answered < total/2 {
		t.Errorf("%d runs, %d answered by the module: want over 10,000, most by the module", total, answered)
	}
	t.Logf("%d runs, %d answered by the module", total, answered)
}

// TestWasmEvents: the wasm backend answers as the interpreter does (the
// result, the emitted event, the error), each kernel called once an
// evaluation even when the module leaves the run to the interpreter part
// way (its calls replayed).
func TestWasmEvents(t *testing.T) {
	ctx := context.Background()
	p := eventPrograms(t)["events"]
	out, err := codegen.Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	w, err := newEvents(ctx, Wasm, p, out, Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close(ctx)
	if got, want := w.Compiled(), []string{"checks", "closed_one", "loose"}; !slices.Equal(got, want) {
		t.Fatalf("compiled %v, want %v (left %v)", got, want, out.EventsLeft)
	}
	ep, err := eval.Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	var s1, s2 eval.Scratch
	for _, v := range ep.Validators() {
		for _, line := range eventLines() {
			ev := decodeEvent(t, line)
			for seed := range int64(14) {
				kw, ke := &fakeKernels{seed: seed}, &fakeKernels{seed: seed}
				got, gerr := w.CheckEvent(ctx, v, ev, &eval.Env{Kernels: kw, Features: map[string]bool{"diamond": true}}, &s1)
				want, werr := v.CheckEventWith(ctx, ev, &eval.Env{Kernels: ke, Features: map[string]bool{"diamond": true}}, &s2)
				g, wo := eventOutcome(got, gerr, 0), eventOutcome(want, werr, 0)
				if g.String() != wo.String() || !slices.Equal([]*eval.Violation{g.Violation}, []*eval.Violation{wo.Violation}) && fmt.Sprint(g.Violation) != fmt.Sprint(wo.Violation) {
					t.Errorf("%s over %s (seed %d): wasm %s, eval %s", v.IR.Name, line, seed, g, wo)
				}
				if kw.calls != ke.calls {
					t.Errorf("%s over %s (seed %d): %d kernel calls, the interpreter %d", v.IR.Name, line, seed, kw.calls, ke.calls)
				}
			}
		}
	}
	if st := w.Stats(); st.Divergences != 0 || st.Runs == st.Fallbacks {
		t.Errorf("stats %+v", st)
	}
}

// TestShadowEventsReportDivergence runs the event validators in shadow
// mode with a module compiled from another program (a constant of the
// guard changed): the events on which they disagree are reported with
// both outcomes, and the interpreter's answer is returned.
func TestShadowEventsReportDivergence(t *testing.T) {
	ctx := context.Background()
	src := "validator m {\n  input: \"trajectory_quality\"\n  when window_count() >= 0 and score >= 60\n  emit: \"diamond_candidate\"\n}\n"
	compileP := func(src string) *ir.Program {
		p, errs := lll.Compile([]lll.Source{{Name: "v.lll", Text: []byte(src)}})
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		return p
	}
	p, other := compileP(src), compileP(strings.Replace(src, ">= 60", ">= 70", 1))
	out, err := codegen.Compile(other)
	if err != nil {
		t.Fatal(err)
	}
	var divs []Divergence
	e, err := newEvents(ctx, Shadow, p, out, Options{OnDivergence: func(d Divergence) { divs = append(divs, d) }}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(ctx)
	ep, _ := eval.Compile(p)
	v := ep.Validator("m")
	var s eval.Scratch
	for _, score := range []string{"50", "65", "80"} {
		ev := decodeEvent(t, `{"type":"trajectory_quality","trajectory_id":"t_`+score+`","score":`+score+`}`)
		res, err := e.CheckEvent(ctx, v, ev, &eval.Env{Kernels: &fakeKernels{seed: 1}, Timeout: -1}, &s)
		if err != nil || res.Applied != (score != "50") || res.Applied != (res.Emitted != nil) {
			t.Errorf("score %s: %+v, %v", score, res, err)
		}
	}
	if len(divs) != 1 || e.Stats().Divergences != 1 {
		t.Fatalf("divergences %v, want one (score 65)", divs)
	}
	if got := divs[0].String(); !strings.Contains(got, `span "trajectory_quality t_65", validator m: eval emitted `) || !strings.Contains(got, "wasm skipped, 6 steps") {
		t.Errorf("divergence %s", got)
	}
}

// TestEventsRefused: an event validator that uses what codegen does not
// compile is left to the interpreter, the construct named; the others
// are compiled.
func TestEventsRefused(t *testing.T) {
	for _, tt := range []struct{ rule, want string }{
		{`require field "score"`, `rule "require field \"score\"" of an event validator`},
		{`check policy.meter.target + 1 > 3`, "arithmetic over a percentile"},
		{"uses \"env.get\"\n  check env.get(\"x\") == tenant", "a host call in an event validator"},
		{"check " + strings.Repeat("window_count() + ", layout.EventMaxKernels+1) + "1 > 3", fmt.Sprintf("over %d kernel calls", layout.EventMaxKernels)},
	} {
		src := "policy meter {\n  target: \"p90\"\n}\nvalidator bad {\n  input: \"trajectory_quality\"\n  " + tt.rule + "\n}\n" +
			"validator good {\n  input: \"trajectory_quality\"\n  when percentile(score) > 3\n}\n"
		p, errs := lll.Compile([]lll.Source{{Name: "v.lll", Text: []byte(src)}})
		if len(errs) > 0 {
			t.Errorf("%s: %v", tt.rule, errs)
			continue
		}
		out, err := codegen.Compile(p)
		if err != nil {
			t.Fatalf("%s: %v", tt.rule, err)
		}
		if !slices.Equal(out.Events, []string{"good"}) || !strings.Contains(out.EventsLeft["bad"], tt.want) || !strings.Contains(out.EventsLeft["bad"], "not supported") {
			t.Errorf("%s: events %v, left %q; want bad left for %q", tt.rule, out.Events, out.EventsLeft, tt.want)
		}
	}
}

// FuzzShadowEvents is the differential fuzz target of event validators:
// a program (any text, starting from those with event validators) and a
// derived event (any JSON, starting from the golden and generated
// events), run in shadow mode with fakeKernels of the seed the fuzzer
// picks and at its step budget: whenever the program compiles and its
// module runs an event validator the event applies to, the backends must
// agree (result, emitted event, error, steps, kernel calls).
func FuzzShadowEvents(f *testing.F) {
	var srcs [][]byte
	for _, c := range goldenCases(f) {
		if c.name == "meter_eval" || c.name == "seed_score_and_meter" {
			srcs = append(srcs, c.srcs[0].Text)
		}
	}
	var std []byte
	for _, s := range stdlib.Sources() {
		std = append(append(std, s.Text...), '\n')
	}
	srcs = append(srcs, []byte(eventsSrc), std)
	lines := eventLines()
	for i, src := range srcs {
		for j, l := range lines {
			if j%7 == i%7 {
				f.Add(src, []byte(l), uint8(j), uint16(j%16))
			}
		}
	}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, src, line []byte, seed uint8, budget uint16) {
		prog, errs := lll.Compile([]lll.Source{{Name: "f.lll", Text: src}})
		if len(errs) > 0 {
			return
		}
		out, err := codegen.Compile(prog)
		if err != nil || len(out.Events) == 0 {
			return
		}
		var x any
		d := json.NewDecoder(strings.NewReader(string(line)))
		d.UseNumber()
		if d.Decode(&x) != nil {
			return
		}
		ev, err := ir.FromJSON(x)
		if err != nil || ev.Kind() != ir.Map {
			return
		}
		var divs []Divergence
		e, err := newEvents(ctx, Shadow, prog, out, Options{OnDivergence: func(d Divergence) { divs = append(divs, d) }}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close(ctx)
		ep, err := eval.Compile(prog)
		if err != nil {
			t.Fatal(err)
		}
		var s eval.Scratch
		for _, name := range out.Events {
			env := &eval.Env{Kernels: &fakeKernels{seed: int64(seed)}, Features: map[string]bool{"diamond": seed%2 == 0}, MaxSteps: int64(budget), Timeout: -1}
			_, _ = e.CheckEvent(ctx, ep.Validator(name), ev, env, &s)
		}
		for _, d := range divs {
			t.Errorf("%s", d)
		}
	})
}

// TestEventsCanceled: a run whose context is done is the interpreter's
// to answer (its LLL101 at the first step), on wasm and shadow alike.
func TestEventsCanceled(t *testing.T) {
	e, v, env, evs := meter(t, Wasm)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var s eval.Scratch
	_, err := e.CheckEvent(ctx, v, evs["emit"], env, &s)
	_, want := v.CheckEventWith(ctx, evs["emit"], env, &s)
	if err == nil || want == nil || err.Error() != want.Error() || !strings.Contains(err.Error(), "LLL101") {
		t.Errorf("err = %v, want the interpreter's %v", err, want)
	}
	if st := e.Stats(); st.Runs != 1 || st.Fallbacks != 1 || st.Divergences != 0 {
		t.Errorf("stats %+v", st)
	}
}

// countingKernels answers window_count() with the number of calls made
// so far, plus add.
type countingKernels struct{ calls, add int64 }

func (k *countingKernels) Kernel(context.Context, string, eval.Input, []ir.Value) (ir.Value, error) {
	k.calls++
	return ir.IntValue(k.calls + k.add), nil
}

// TestEventsKernelOrder: the module reads the i-th answer at its i-th
// kernel call, for as many calls as it answers in a run: the sum of i
// times the i-th answer is 1² + ... + 16² only when each call reads its
// own (any other order gives less).
func TestEventsKernelOrder(t *testing.T) {
	ctx := context.Background()
	var terms []string
	want := 0
	for i := 1; i <= layout.EventMaxKernels; i++ {
		terms = append(terms, fmt.Sprintf("window_count() * %d", i))
		want += i * i
	}
	src := fmt.Sprintf("validator order {\n  input: \"trajectory_quality\"\n  check %s == %d\n}\n", strings.Join(terms, " + "), want)
	e, ep := eventsOn(t, Wasm, src)
	v := ep.Validator("order")
	ev := decodeEvent(t, `{"type":"trajectory_quality","trajectory_id":"t_1","score":1}`)
	for _, add := range []int64{0, 1} {
		var s eval.Scratch
		k := &countingKernels{add: add}
		res, err := e.CheckEvent(ctx, v, ev, &eval.Env{Kernels: k, Timeout: -1}, &s)
		if err != nil || !res.Applied || (res.Violation == nil) != (add == 0) || k.calls != layout.EventMaxKernels {
			t.Errorf("answers +%d: %+v, %v after %d calls; want a violation only when the answers are off", add, res, err, k.calls)
		}
	}
	if st := e.Stats(); st.Runs != 2 || st.Fallbacks != 0 {
		t.Errorf("stats %+v, want 2 runs the module answers", st)
	}
}

// eventsOn returns the event validators of the program src on kind (its
// module compiled) and the interpreter's program.
func eventsOn(t *testing.T, kind Kind, src string) (*Events, *eval.Program) {
	t.Helper()
	p, errs := lll.Compile([]lll.Source{{Name: "v.lll", Text: []byte(src)}})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	out, err := codegen.Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	e, err := newEvents(context.Background(), kind, p, out, Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close(context.Background()) })
	ep, err := eval.Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	return e, ep
}
