package vm_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/loglineos/loglineos/internal/lll"
	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/lll/wasm/codegen"
	"github.com/loglineos/loglineos/internal/lll/wasm/vm"
	"github.com/loglineos/loglineos/internal/lll/wasm/wasmtest"
	"github.com/loglineos/loglineos/internal/span"
	"github.com/rogpeppe/go-internal/txtar"
)

// corpusCompiled are the programs of the language's golden tests
// (internal/lll/testdata) whose span validators the backend compiles; the
// others are refused with codegen.ErrUnsupported.
func corpusCompiled() []string {
	return []string{"all_declarations", "allowed_values", "check_expressions", "closed_contract", "data_paths", "duration_arith", "guard_feature",
		"guard_off", "lists_and_in", "schema_allowed_values", "seed_canonical_contract", "timestamps", "warn_action"}
}

// TestCorpus compiles the programs of the language's golden tests: each
// compiles (its module valid) or is refused with ErrUnsupported, never
// another error; the modules answer the spans of each test (in.ndjson) as
// the interpreter does, with the same fuel, at the default step budget
// and at each smaller one down to 1.
func TestCorpus(t *testing.T) {
	files, err := filepath.Glob("../../testdata/*.txtar")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden tests: %v", err)
	}
	ctx := context.Background()
	var compiled []string
	runs := map[string]int{}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".txtar")
		a, err := txtar.ParseFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var srcs []lll.Source
		var spans []byte
		for _, f := range a.Files {
			switch {
			case strings.HasSuffix(f.Name, ".lll"):
				srcs = append(srcs, lll.Source{Name: f.Name, Text: f.Data})
			case f.Name == "in.ndjson":
				spans = f.Data
			}
		}
		p, errs := lll.Compile(srcs)
		if len(srcs) == 0 || len(errs) > 0 {
			continue
		}
		out, err := codegen.Compile(p)
		if errors.Is(err, codegen.ErrUnsupported) {
			t.Logf("%s: %v", name, err)
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(out.Validators) == 0 {
			continue
		}
		compiled = append(compiled, name)
		wasmtest.Validate(t, name, out.Wasm)
		ep, m := compileProgram(t, p)
		in, err := m.NewInstance(ctx)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(spans))
		for sc.Scan() {
			s, err := span.Parse(sc.Bytes(), span.Limits{})
			if err != nil {
				continue
			}
			for _, v := range out.Validators {
				ev := ep.Validator(v)
				_, steps := ev.CheckSpanSteps(ctx, s, &eval.Env{Timeout: -1})
				budgets := []int64{eval.DefaultMaxSteps}
				for b := int64(1); b <= steps; b++ {
					budgets = append(budgets, b) // every budget below what the run needs
				}
				for _, budget := range budgets {
					want, wantSteps := ev.CheckSpanSteps(ctx, s, &eval.Env{MaxSteps: budget, Timeout: -1})
					got, res, err := in.CheckSpan(ctx, v, s, budget)
					if errors.Is(err, vm.ErrUnsupported) {
						runs["left to the interpreter"]++
						continue
					}
					if err != nil {
						t.Fatalf("%s: %s over %s: %v", name, v, sc.Bytes(), err)
					}
					if diff := cmp.Diff(want, got); diff != "" || res.FuelUsed != wantSteps || res.Trap != trapOf(want) {
						t.Fatalf("%s: %s over %s budget %d: fuel %d (eval %d), trap %d; violation (-eval +wasm):\n%s", name, v, sc.Bytes(), budget, res.FuelUsed, wantSteps, res.Trap, diff)
					}
					runs[outcome(want)]++
				}
			}
		}
	}
	if diff := cmp.Diff(corpusCompiled(), compiled); diff != "" {
		t.Errorf("the programs compiled (-want +got):\n%s", diff)
	}
	if runs["pass"] == 0 || runs["check"] == 0 || runs["field"] == 0 || runs["check out of fuel"] == 0 {
		t.Errorf("runs %v: want passes, failed checks and field rules, and budgets run out", runs)
	}
	t.Logf("runs: %v", runs)
}
