package lll_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/txtar"

	"github.com/loglineos/loglineos/internal/lll"
	"github.com/loglineos/loglineos/internal/lll/diag"
	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/lll/ir"
	"github.com/loglineos/loglineos/internal/span"
)

// FuzzCompile feeds arbitrary text to the scanner, parser and checker.
// Nothing may panic or hang; every diagnostic has a known code and a
// position; a program that checks must compile for EVAL and run (within
// its step budget) on a span and an event.
func FuzzCompile(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.txtar")
	for _, file := range files {
		a, err := txtar.ParseFile(file)
		if err != nil {
			f.Fatal(err)
		}
		for _, x := range a.Files {
			if filepath.Ext(x.Name) == ".lll" {
				f.Add(x.Data)
			}
		}
	}
	std, _ := filepath.Glob("../../stdlib/*.lll")
	for _, s := range std {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	sp, err := span.Parse([]byte(`{"id":"a","tenant":"t","who":"w","did":"d","this":"x","when":"2025-10-05T22:18:07Z","status":"confirmed","confirmed_by":["c"],"data":{"gross":1,"n":{"m":[1,2]}}}`), span.Limits{})
	if err != nil {
		f.Fatal(err)
	}
	ev := ir.MapValue(map[string]ir.Value{"type": ir.StringValue("trajectory_quality"), "score": ir.IntValue(70)})
	f.Fuzz(func(t *testing.T, src []byte) {
		prog, errs := lll.Compile([]lll.Source{{Name: "f.lll", Text: src}})
		for _, d := range errs {
			if !diag.Known(d.Code) || !d.Pos.IsValid() {
				t.Fatalf("diagnostic without a known code or position: %v", d)
			}
		}
		if len(errs) > 0 {
			return
		}
		if _, err := prog.Encode(); err != nil {
			t.Fatalf("Encode: %v", err)
		}
		ep, err := eval.Compile(prog)
		if err != nil {
			t.Fatalf("checked program does not compile: %v\n%s", err, prog)
		}
		env := &eval.Env{MaxSteps: 10_000, Features: map[string]bool{"trajectory": true, "diamond": true}}
		for _, v := range ep.Validators() {
			v.CheckSpan(context.Background(), sp, env)
			v.CheckEvent(context.Background(), ev, env)
		}
		for _, r := range ep.Routers() {
			r.Route(context.Background(), eval.Input{Span: sp}, env)
		}
	})
}
