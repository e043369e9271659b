package backend

import (
	"context"
	"testing"
	"time"

	"github.com/loglineos/loglineos/internal/lll"
	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/lll/ir"
	"github.com/loglineos/loglineos/internal/lll/wasm/codegen"
	"github.com/loglineos/loglineos/stdlib"
)

// cheapKernels answers the meter's kernels at once (a full window, the
// score as its own percentile, a fixed threshold), so that what a
// benchmark measures is the validator, not the kernels.
type cheapKernels struct{ threshold ir.Value }

func (k *cheapKernels) Kernel(_ context.Context, name string, _ eval.Input, args []ir.Value) (ir.Value, error) {
	switch name {
	case "window_count":
		return ir.IntValue(100), nil
	case "percentile":
		return args[0], nil
	}
	return k.threshold, nil
}

// meterEvents are a trajectory_quality event the standard meter lets
// through (it emits a diamond_candidate) and one its when stops.
var meterEvents = map[string]string{
	"emit": `{"type":"trajectory_quality","trajectory_id":"t_1","score":97,"components":{"mass":40,"persistence":30,"verification":27},"tenant":"t","ts":"2025-10-05T22:00:00Z"}`,
	"skip": `{"type":"trajectory_quality","trajectory_id":"t_2","score":50,"components":{"mass":20,"persistence":10,"verification":20},"tenant":"t","ts":"2025-10-05T22:01:00Z"}`,
}

// meterWhen is the standard meter's when alone: quality_meter_v1_1 with
// no emit step, so that a run that passes is the when and nothing else
// (BenchmarkMeterWhen's "when").
const meterWhen = `validator quality_meter_when {
  input: "trajectory_quality"
  when features.diamond
  and  window_count() >= policy.quality_meter.warmup
  and  score >= policy.quality_meter.min_score
  and  percentile(score) >= policy.quality_meter.percentile_target
}
`

// meter returns the standard bundle's quality meter on kind, an Env with
// cheapKernels and no deadline, and the events; the bundle has meterWhen
// too (meterWhenOnly returns it).
func meter(tb testing.TB, kind Kind) (*Events, *eval.Validator, *eval.Env, map[string]ir.Value) {
	return meterNamed(tb, kind, "quality_meter_v1_1")
}

// meterWhenOnly is meter with the validator meterWhen.
func meterWhenOnly(tb testing.TB, kind Kind) (*Events, *eval.Validator, *eval.Env, map[string]ir.Value) {
	return meterNamed(tb, kind, "quality_meter_when")
}

func meterNamed(tb testing.TB, kind Kind, name string) (*Events, *eval.Validator, *eval.Env, map[string]ir.Value) {
	tb.Helper()
	ctx := context.Background()
	p, errs := lll.Compile(append(stdlib.Sources(), lll.Source{Name: "bench/meter_when.lll", Text: []byte(meterWhen)}))
	if len(errs) > 0 {
		tb.Fatal(errs)
	}
	out, err := codegen.Compile(p)
	if err != nil {
		tb.Fatal(err)
	}
	e, err := newEvents(ctx, kind, p, out, Options{}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = e.Close(ctx) })
	ep, err := eval.Compile(p)
	if err != nil {
		tb.Fatal(err)
	}
	v := ep.Validator(name)
	env := &eval.Env{Kernels: &cheapKernels{threshold: ir.MapValue(map[string]ir.Value{"threshold": ir.IntValue(96)})}, Features: map[string]bool{"diamond": true}, Timeout: -1}
	evs := map[string]ir.Value{}
	for name, line := range meterEvents {
		evs[name] = decodeEvent(tb, line)
	}
	return e, v, env, evs
}

// BenchmarkMeterWhen runs the standard quality meter (its when: two
// kernel calls, three policy values, three comparisons) over one
// trajectory_quality event through Events.CheckEvent, as the derivation
// runs it at every close, on each backend: an event the when stops
// (skip) and one it lets through to its emit step (emit, built by the
// interpreter's code on every backend); and, as "when", the emit event
// through meterWhen, the same when with no emit step: the when alone.
// events/s is the figure to compare.
func BenchmarkMeterWhen(b *testing.B) {
	ctx := context.Background()
	for _, name := range []string{"skip", "emit", "when"} {
		for _, k := range Kinds() {
			b.Run(name+"/"+string(k), func(b *testing.B) {
				mk, event := meter, name
				if name == "when" {
					mk, event = meterWhenOnly, "emit"
				}
				e, v, env, evs := mk(b, k)
				ev := evs[event]
				var s eval.Scratch
				if res, err := e.CheckEvent(ctx, v, ev, env, &s); err != nil || res.Applied != (name != "skip") || (res.Emitted != nil) != (name == "emit") {
					b.Fatal(res, err)
				}
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					if _, err := e.CheckEvent(ctx, v, ev, env, &s); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				if st := e.Stats(); st.Fallbacks != 0 || st.Divergences != 0 {
					b.Fatalf("stats %+v", st)
				}
			})
		}
	}
}

// BenchmarkMeterEmitStep runs the standard meter's emit step alone
// (eval's Validator.EmitEvent over the event BenchmarkMeterWhen's emit
// lets through: its with kernel, the emitted event built), the part of
// BenchmarkMeterWhen/emit both backends run with the interpreter's own
// code: emit/wasm cannot take less than this, whatever its when costs.
func BenchmarkMeterEmitStep(b *testing.B) {
	ctx := context.Background()
	_, v, env, evs := meter(b, Eval)
	var s eval.Scratch
	b.ReportAllocs()
	for b.Loop() {
		if res, err := v.EmitEvent(ctx, evs["emit"], env, &s, time.Time{}, 13, 0); err != nil || res.Emitted == nil {
			b.Fatal(res, err)
		}
	}
}

// TestMeterAllocs: the meter over an event allocates nothing in steady
// state on eval and wasm, whether its when stops the event or lets it
// through to the emit step, nor does its when alone (meterWhen).
func TestMeterAllocs(t *testing.T) {
	ctx := context.Background()
	for _, k := range []Kind{Eval, Wasm} {
		for _, mk := range []func(testing.TB, Kind) (*Events, *eval.Validator, *eval.Env, map[string]ir.Value){meter, meterWhenOnly} {
			e, v, env, evs := mk(t, k)
			for name, ev := range evs {
				var s eval.Scratch
				allocs := testing.AllocsPerRun(100, func() {
					if res, err := e.CheckEvent(ctx, v, ev, env, &s); err != nil || res.Applied != (name == "emit") {
						t.Fatal(res, err)
					}
				})
				if allocs != 0 {
					t.Errorf("%s, %s, %s: %v allocations an event, want 0", k, v.IR.Name, name, allocs)
				}
			}
			if st := e.Stats(); st.Fallbacks != 0 || st.Divergences != 0 {
				t.Errorf("%s, %s: stats %+v", k, v.IR.Name, st)
			}
		}
	}
}
