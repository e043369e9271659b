package derive_test

import (
	"fmt"
	"time"

	"github.com/loglineos/loglineos/internal/derive"
	"github.com/loglineos/loglineos/internal/span"
)

func Example() {
	e, err := derive.New(derive.Config{}) // every tenant on DefaultTenantConfig()
	if err != nil {
		panic(err)
	}
	t0 := time.Date(2025, 10, 5, 22, 18, 7, 0, time.UTC)
	ledger := []derive.Input{
		{Seq: 41, Kind: derive.KindSpan, Span: &span.Span{ID: "s_1", Tenant: "t_voulezvous", Who: "dan", Did: "sale.post",
			This: "order:12345", When: t0, WhenOK: true, Status: "confirmed", ConfirmedBy: []string{"pos://register-7"}}},
		{Seq: 42, Kind: derive.KindSpan, Span: &span.Span{ID: "s_2", Tenant: "t_voulezvous", Who: "eve", Did: "order.packed",
			This: "order:12345", When: t0.Add(90 * time.Minute), WhenOK: true, Status: "pending"}},
		{Seq: 43, Kind: derive.KindTick, Tick: t0.Add(8 * time.Hour)}, // the server's clock record
	}
	var evs []derive.Event
	var line []byte
	for _, in := range ledger {
		if evs, err = e.Step(evs[:0], in); err != nil {
			panic(err)
		}
		for _, ev := range evs {
			line = ev.AppendJSON(line[:0])
			fmt.Println(string(line))
		}
	}
	// Output:
	// {"position":0,"seq":41,"src_span_id":"s_1","tenant":"t_voulezvous","this":"order:12345","trajectory_id":"t_glkb9gvs0n6e2me0quvomh3r","ts":"2025-10-05T22:18:07Z","type":"trajectory_edge"}
	// {"position":1,"seq":42,"src_span_id":"s_2","tenant":"t_voulezvous","this":"order:12345","trajectory_id":"t_glkb9gvs0n6e2me0quvomh3r","ts":"2025-10-05T23:48:07Z","type":"trajectory_edge"}
	// {"reason":"timeout","seq":43,"tenant":"t_voulezvous","trajectory_id":"t_glkb9gvs0n6e2me0quvomh3r","ts":"2025-10-06T06:18:07Z","type":"trajectory_closed"}
	// {"components":{"mass":8,"persistence":4,"verification":10},"score":22,"seq":43,"tenant":"t_voulezvous","trajectory_id":"t_glkb9gvs0n6e2me0quvomh3r","ts":"2025-10-06T06:18:07Z","type":"trajectory_quality"}
}
