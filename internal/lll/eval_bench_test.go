package lll_test

import (
	"testing"

	"github.com/loglineos/loglineos/internal/lll/eval"
)

// BenchmarkCheckRule evaluates a check rule over span data: a frame, the
// JSON of data decoded, a comparison.
func BenchmarkCheckRule(b *testing.B) {
	ep := compileEval(b, `validator v { check data.gross >= 100 and who != "" }`)
	v := ep.Validator("v")
	s := spanOf(b, `{"id":"a","who":"w","data":{"gross":150,"net":120}}`)
	b.ReportAllocs()
	for b.Loop() {
		if vi := v.CheckSpan(b.Context(), s, nil); vi != nil {
			b.Fatal(vi)
		}
	}
}

// BenchmarkRoute routes a span: a guard, a map literal built per route.
func BenchmarkRoute(b *testing.B) {
	ep := compileEval(b, `router r {
  uses "ws.send"
  route when did == "sale.post" to ws.send("sales", {id: id, who: who})
}`)
	rt := ep.Routers()[0]
	in := eval.Input{Span: spanOf(b, `{"id":"a","who":"w","did":"sale.post"}`)}
	b.ReportAllocs()
	for b.Loop() {
		acts, err := rt.Route(b.Context(), in, nil)
		if err != nil || len(acts) != 1 {
			b.Fatal(acts, err)
		}
	}
}
