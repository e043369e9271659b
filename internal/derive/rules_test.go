package derive

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/loglineos/loglineos/internal/lll"
	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/lll/ir"
	"github.com/loglineos/loglineos/stdlib"
)

// customRules compiles the standard sources with edit applied to
// pipelines.lll.
func customRules(t testing.TB, old, new string) *Rules {
	t.Helper()
	srcs := stdlib.Sources()
	for i := range srcs {
		if strings.HasSuffix(srcs[i].Name, "pipelines.lll") {
			if !bytes.Contains(srcs[i].Text, []byte(old)) {
				t.Fatalf("pipelines.lll has no %q", old)
			}
			srcs[i].Text = bytes.Replace(srcs[i].Text, []byte(old), []byte(new), 1)
		}
	}
	p, errs := lll.Compile(srcs)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	ep, err := eval.Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	return CompileRules(ep)
}

// candidates derives the mixed ledger under rules and cfg and returns the
// scores of the candidates.
func candidates(t testing.TB, rules *Rules, cfg *TenantConfig) []int {
	t.Helper()
	var scores []int
	_, err := Simulate(defaultLedger(60_000).ledger(), Config{Default: cfg, Rules: rules}, SimConfig{OnEvent: func(ev *Event) error {
		if ev.Type == CandidateEvent {
			scores = append(scores, ev.Score)
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	return scores
}

// A bundle whose meter says score >= 90 flags only scores of 90 and more:
// the derivation evaluates the bundle's when clause, not a copy of it.
func TestRulesCustomMeterClause(t *testing.T) {
	std := candidates(t, nil, nil)
	custom := candidates(t, customRules(t, "score >= policy.quality_meter.min_score", "score >= 90"), nil)
	low := 0
	for _, s := range std {
		if s < 90 {
			low++
		}
	}
	if len(std) == 0 || low == 0 {
		t.Fatalf("standard bundle: %d candidates, %d below 90; the test needs some", len(std), low)
	}
	for _, s := range custom {
		if s < 90 {
			t.Fatalf("custom bundle (score >= 90) flagged a score of %d", s)
		}
	}
}

// A bundle whose linking pipeline is guarded off links nothing.
func TestRulesPipelineGuard(t *testing.T) {
	r := customRules(t, "when features.trajectory\n", "when features.cluster\n")
	sum, err := Simulate(defaultLedger(5_000).ledger(), Config{Rules: r}, SimConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Trajectories != 0 || sum.EventCount != 0 {
		t.Errorf("pipeline guarded off: %d trajectories, %d events", sum.Trajectories, sum.EventCount)
	}
}

// Each of the meter's own rules can be turned off, and then lets more
// scores through: the credit budget from the defaults, tie rationing with
// the budget already off (else the budget hides it).
func TestMeterKnobsOff(t *testing.T) {
	with := func(mod func(*MeterPolicy)) []int {
		c := DefaultTenantConfig()
		mod(&c.Meter)
		return candidates(t, nil, &c)
	}
	def := with(func(*MeterPolicy) {})
	noBudget := with(func(m *MeterPolicy) { m.CreditBudget = false })
	neither := with(func(m *MeterPolicy) { m.CreditBudget, m.TieRationing = false, false })
	if len(noBudget) <= len(def) {
		t.Errorf("credit_budget off: %d candidates, want more than the %d of the defaults", len(noBudget), len(def))
	}
	if len(neither) <= len(noBudget) {
		t.Errorf("tie_rationing off too: %d candidates, want more than the %d with it on", len(neither), len(noBudget))
	}
}

// slowKernels answers as the engine's kernels do, except that its first
// components() takes longer than a run's default deadline, as a kernel may
// on a loaded machine.
type slowKernels struct {
	eval.Kernels
	slept bool
}

func (s *slowKernels) Kernel(ctx context.Context, name string, in eval.Input, args []ir.Value) (ir.Value, error) {
	if name == kernelComponents && !s.slept {
		s.slept = true
		time.Sleep(eval.DefaultTimeout + 10*time.Millisecond)
	}
	return s.Kernels.Kernel(ctx, name, in, args)
}

// The derivation's .lll runs have no wall-clock deadline: a slow machine
// derives what a fast one does.
func TestRulesNoDeadline(t *testing.T) {
	inputs := slices.Collect(defaultLedger(20_000).ledger())
	run := func(slow bool) ([]Event, bool) {
		e, err := New(Config{})
		if err != nil {
			t.Fatal(err)
		}
		sk := &slowKernels{Kernels: e.kern}
		var out []Event
		for _, in := range inputs {
			if out, err = e.Step(out, in); err != nil {
				t.Fatal(err)
			}
			for _, tn := range e.tenants {
				if slow {
					tn.cfg.env.Kernels = sk // a configuration record makes a new env
				}
			}
		}
		return out, sk.slept
	}
	want, _ := run(false)
	got, slept := run(true)
	if !slept {
		t.Fatal("the workload closes no trajectory: components() never ran")
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("a slow kernel changed the derived events (-fast +slow):\n%s", diff)
	}
}
