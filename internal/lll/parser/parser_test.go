package parser_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/loglineos/loglineos/internal/lll/ast"
	"github.com/loglineos/loglineos/internal/lll/diag"
	"github.com/loglineos/loglineos/internal/lll/parser"
)

// TestPartialTree checks that the parser reports every independent error
// and still returns the declarations around them.
func TestPartialTree(t *testing.T) {
	src := `validator a {
  require field "id" as
  requre field "who"
  require field "did"
}
polcy x { }
validator b {
  check (1 +
  allow field "data"
}
policy p { k: 1 }
`
	f, errs := parser.ParseFile("t.lll", []byte(src))
	var got []string
	for _, d := range errs {
		got = append(got, d.Pos.String()+" "+string(d.Code))
	}
	want := []string{"t.lll:2:24 LLL010", "t.lll:3:3 LLL012", "t.lll:6:1 LLL011", "t.lll:9:9 LLL010"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("errors (-want +got):\n%s\n%v", diff, errs)
	}
	var decls []string
	for _, d := range f.Decls {
		decls = append(decls, d.Keyword.String()+" "+d.Name.Name)
	}
	if diff := cmp.Diff([]string{"validator a", "validator b", "policy p"}, decls); diff != "" {
		t.Errorf("declarations (-want +got):\n%s", diff)
	}
	// validator a keeps its good rule after the bad ones.
	var rules []string
	for _, s := range f.Decls[0].Body {
		if r, ok := s.(*ast.FieldRule); ok {
			rules = append(rules, r.Name.Value)
		}
	}
	if diff := cmp.Diff([]string{"did"}, rules); diff != "" {
		t.Errorf("rules of validator a (-want +got):\n%s", diff)
	}
	for _, d := range errs {
		if !diag.Known(d.Code) {
			t.Errorf("unknown code %s", d.Code)
		}
	}
}
