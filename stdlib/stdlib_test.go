package stdlib_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/loglineos/loglineos/internal/derive"
	"github.com/loglineos/loglineos/internal/lll/ir"
	"github.com/loglineos/loglineos/internal/tenant"
	"github.com/loglineos/loglineos/stdlib"
)

// TestPoliciesMatchDerive checks that the policies of the standard bundle
// are exactly the defaults of the derivation's kernels: the bundle's values,
// read the way a tenant configuration is read, give DefaultTenantConfig.
// The two cannot drift apart silently.
func TestPoliciesMatchDerive(t *testing.T) {
	prog, err := stdlib.Compile()
	if err != nil {
		t.Fatal(err)
	}
	policies := map[string]any{}
	for _, name := range []string{"trajectory_linker", "quality_meter", "derived_events_perf"} {
		p := prog.Policy(name)
		if p == nil {
			t.Fatalf("no policy %s", name)
		}
		m := map[string]any{}
		for _, f := range p.Fields {
			m[f.Key] = f.Value.Interface()
		}
		policies[name] = m
	}
	got, err := tenant.ParseConfig(map[string]any{
		"features": map[string]any{"trajectory": true, "diamond": true},
		"policies": policies,
	})
	if err != nil {
		t.Fatalf("derive refuses the standard policies: %v", err)
	}
	if diff := cmp.Diff(derive.DefaultTenantConfig(), got); diff != "" {
		t.Errorf("standard policies differ from derive's defaults (-derive +stdlib):\n%s", diff)
	}
}

// TestCompiles checks that the standard sources compile and declare what
// the product names.
func TestCompiles(t *testing.T) {
	prog, err := stdlib.Compile()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, v := range prog.Validators {
		got = append(got, "validator "+v.Name)
	}
	for _, p := range prog.Pipelines {
		got = append(got, "pipeline "+p.Name)
	}
	for _, p := range prog.Policies {
		got = append(got, "policy "+p.Name)
	}
	for _, s := range prog.Schemas {
		got = append(got, "schema "+s.Name)
	}
	want := []string{
		"validator canonical_contract_v1", "validator quality_meter_v1_1", "validator trajectory_quality_score",
		"pipeline trajectory_linker",
		"policy derived_events_perf", "policy quality_meter", "policy trajectory_linker",
		"schema diamond_candidate", "schema span", "schema trajectory_closed", "schema trajectory_edge", "schema trajectory_quality",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Error(diff)
	}
	if len(prog.Caps) != 0 {
		t.Errorf("the standard bundle needs capabilities %v, want none", prog.Caps)
	}
	if p := prog.Policy("quality_meter"); p.Field("percentile_target").Value.Kind() != ir.Percentile {
		t.Errorf("percentile_target is not a percentile")
	}
}

// TestStatusValues checks the span statuses the canonical contract allows
// (the set docs/lll.md and the README document) and that the span schema
// publishes the same set.
func TestStatusValues(t *testing.T) {
	prog, err := stdlib.Compile()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"confirmed", "pending", "rejected", "cancelled"}
	var got []string
	for _, v := range prog.Validators {
		if v.Name != "canonical_contract_v1" {
			continue
		}
		for _, r := range v.Rules {
			if r.Field == "status" {
				for _, x := range r.In {
					got = append(got, x.Str())
				}
			}
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("the contract's statuses (-want +got):\n%s", diff)
	}
	var published []string
	for _, s := range prog.Schemas {
		for _, f := range s.Type.Fields {
			if s.Name == "span" && f.Name == "status" {
				for _, a := range f.Type.Alts {
					published = append(published, a.Const)
				}
			}
		}
	}
	if diff := cmp.Diff(want, published); diff != "" {
		t.Errorf("the span schema's statuses (-want +got):\n%s", diff)
	}
}
