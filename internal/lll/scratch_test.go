package lll_test

import (
	"context"
	"fmt"
	"maps"
	"testing"

	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/lll/ir"
)

// scratchKernels answers percentile(x) with x as a percentile (and fails
// for x = 13), window_count() with 7 and threshold(p) with {threshold: p}.
var scratchKernels = kernelFunc(func(_ context.Context, name string, _ eval.Input, args []ir.Value) (ir.Value, error) {
	switch name {
	case "percentile":
		if args[0].Micros() == 13*ir.NumberScale {
			return ir.Value{}, fmt.Errorf("no percentile of 13")
		}
		return ir.PercentileMicros(args[0].Micros()), nil
	case "window_count":
		return ir.IntValue(7), nil
	case "threshold":
		return ir.MapValue(map[string]ir.Value{"threshold": ir.IntValue(args[0].Micros() / ir.NumberScale)}), nil
	}
	return ir.Value{}, fmt.Errorf("no kernel %s", name)
})

// Runs that share a Scratch give what runs on their own give, one after
// the other: calls nested in the arguments of calls, failing calls,
// guards that do not hold, rules that fail and events of another shape
// leave nothing behind.
func TestCheckEventWithScratch(t *testing.T) {
	ep := compileEval(t, `validator v {
  input: "trajectory_quality"
  when percentile(score + window_count()) >= 10
  check score != 50
  emit: "diamond_candidate" with threshold(percentile(score + window_count()))
}
validator w {
  input: "trajectory_quality"
  emit: "diamond_candidate"
}`)
	env := &eval.Env{Kernels: scratchKernels}
	show := func(r eval.Result, err error) string {
		e := "-"
		if r.Emitted != nil {
			e = r.Emitted.String()
		}
		return fmt.Sprintf("applied %v, violation %v, emitted %s, error %v", r.Applied, r.Violation, e, err)
	}
	var s eval.Scratch
	for _, score := range []int64{40, 6, 3, 50, 13, 90, 0, 40, 6} {
		ev := ir.MapValue(map[string]ir.Value{"type": ir.StringValue("trajectory_quality"), "score": ir.IntValue(score)})
		for _, name := range []string{"v", "w"} {
			v := ep.Validator(name)
			want, wantErr := v.CheckEvent(t.Context(), ev, env)
			got, gotErr := v.CheckEventWith(t.Context(), ev, env, &s)
			if g, w := show(got, gotErr), show(want, wantErr); g != w {
				t.Errorf("%s, score %d: with a shared scratch %s, want %s", name, score, g, w)
			}
		}
	}
}

// A run on a Scratch of the derivation's shape allocates nothing.
func TestCheckEventWithScratchAllocs(t *testing.T) {
	ep := compileEval(t, `validator v {
  input: "trajectory_quality"
  when window_count() >= 5 and percentile(score) >= 10
  emit: "diamond_candidate" with threshold(percentile(score))
}`)
	v := ep.Validator("v")
	thr := ir.SortedMapValue([]string{"threshold"}, []ir.Value{ir.IntValue(70)})
	env := &eval.Env{Timeout: -1, Kernels: kernelFunc(func(_ context.Context, name string, _ eval.Input, args []ir.Value) (ir.Value, error) {
		if name == "threshold" {
			return thr, nil
		}
		return scratchKernels(context.Background(), name, eval.Input{}, args)
	})}
	ev := ir.MapValue(map[string]ir.Value{"type": ir.StringValue("trajectory_quality"), "score": ir.IntValue(80)})
	var s eval.Scratch
	ctx := context.Background()
	if res, err := v.CheckEventWith(ctx, ev, env, &s); err != nil || res.Emitted == nil {
		t.Fatalf("the validator emits nothing: %v", err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := v.CheckEventWith(ctx, ev, env, &s); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations a run, want 0", allocs)
	}
}

// The emitted event is the type, the members of the input the event type
// has, and the members each with's map gives, a later one replacing an
// earlier one of the same name, whatever the keys the kernels return:
// before, among, equal to and after the event type's members.
func TestEmitMembers(t *testing.T) {
	ep := compileEval(t, `validator one {
  input: "trajectory_closed"
  emit: "trajectory_quality" with components(mass)
}
validator two {
  input: "trajectory_closed"
  emit: "trajectory_quality" with components(mass), components(persistence)
}`)
	ev := ir.MapValue(map[string]ir.Value{"type": ir.StringValue("trajectory_closed"), "trajectory_id": ir.StringValue("t_1"),
		"tenant": ir.StringValue("acme"), "ts": ir.StringValue("2025-10-05T22:00:00Z"), "seq": ir.IntValue(4), "score": ir.IntValue(9), "mass": ir.IntValue(3)})
	returns := []map[string]ir.Value{
		{},
		{"components": ir.IntValue(1), "score": ir.IntValue(2)},
		{"a": ir.IntValue(1), "m": ir.IntValue(2), "zz": ir.IntValue(3)},
		{"type": ir.StringValue("other"), "seq": ir.IntValue(5), "tenant": ir.NullValue()},
		{"score": ir.IntValue(7), "a": ir.IntValue(8)},
	}
	for _, name := range []string{"one", "two"} {
		for i, first := range returns {
			second := returns[(i+1)%len(returns)]
			env := &eval.Env{Kernels: kernelFunc(func(_ context.Context, _ string, _ eval.Input, args []ir.Value) (ir.Value, error) {
				if args[0].Str() == "mass" {
					return ir.MapValue(first), nil
				}
				return ir.MapValue(second), nil
			})}
			// What the event is, made another way: a Go map, written in
			// the order the members are given.
			want := map[string]ir.Value{"type": ir.StringValue("trajectory_quality")}
			for _, k := range []string{"trajectory_id", "score", "components", "tenant", "ts", "seq"} {
				if x, ok := ev.Get(k); ok {
					want[k] = x
				}
			}
			maps.Copy(want, first)
			if name == "two" {
				maps.Copy(want, second)
			}
			var s eval.Scratch
			for range 2 { // a second run on the scratch gives the same
				res, err := ep.Validator(name).CheckEventWith(t.Context(), ev, env, &s)
				if err != nil || res.Emitted == nil {
					t.Fatalf("%s, case %d: %v, %v", name, i, res, err)
				}
				if got, w := res.Emitted.String(), ir.MapValue(want).String(); got != w {
					t.Errorf("%s, case %d: emitted %s, want %s", name, i, got, w)
				}
			}
		}
	}
}
