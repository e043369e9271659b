package derive

import (
	"bytes"
	"slices"
	"strconv"
	"testing"
)

func TestEviction(t *testing.T) {
	maxOpen := func(n int) func(*TenantConfig) {
		return func(c *TenantConfig) { c.Linker.MaxOpen = n }
	}
	lowered := DefaultTenantConfig()
	lowered.Meter.Warmup = 1000
	lowered.Linker.MaxOpen = 1
	runCases(t, []engineCase{{
		name: "a third trajectory evicts the first opened, scored like any close",
		mod:  maxOpen(2),
		inputs: []Input{
			spanIn(1, "s1", "order:1", 0),
			spanIn(2, "s2", "order:2", 1*h),
			spanIn(3, "s3", "order:3", 2*h),
		},
		want: []string{
			"edge T1 #0 s1 @0s seq=1",
			"edge T2 #0 s2 @1h0m0s seq=2",
			"closed T1 evicted @2h0m0s seq=3",
			"quality T1 4=4+0+0 @2h0m0s seq=3",
			"edge T3 #0 s3 @2h0m0s seq=3",
		},
	}, {
		name: "oldest by opening, not by activity; linking to an open one evicts nothing",
		mod:  maxOpen(2),
		inputs: []Input{
			spanIn(1, "s1", "order:1", 0),
			spanIn(2, "s2", "order:2", 0),
			spanIn(3, "s3", "order:1", 1*h),
			spanIn(4, "s4", "order:3", 2*h),
			spanIn(5, "s5", "order:1", 3*h),
		},
		want: []string{
			"edge T1 #0 s1 @0s seq=1",
			"edge T2 #0 s2 @0s seq=2",
			"edge T1 #1 s3 @1h0m0s seq=3",
			"closed T1 evicted @2h0m0s seq=4",
			"quality T1 11=8+3+0 @2h0m0s seq=4",
			"edge T3 #0 s4 @2h0m0s seq=4",
			"closed T2 evicted @3h0m0s seq=5",
			"quality T2 4=4+0+0 @3h0m0s seq=5",
			"edge T4 #0 s5 @3h0m0s seq=5",
		},
	}, {
		name: "timeouts close first; no eviction is needed then",
		mod:  maxOpen(2),
		inputs: []Input{
			spanIn(1, "s1", "order:1", 0),
			spanIn(2, "s2", "order:2", 1*h),
			spanIn(3, "s3", "order:3", 6*h+1),
		},
		want: []string{
			"edge T1 #0 s1 @0s seq=1",
			"edge T2 #0 s2 @1h0m0s seq=2",
			"closed T1 timeout @6h0m0.000000001s seq=3",
			"quality T1 4=4+0+0 @6h0m0.000000001s seq=3",
			"edge T3 #0 s3 @6h0m0.000000001s seq=3",
		},
	}, {
		name: "one open trajectory at most: each new key evicts the last",
		mod:  maxOpen(1),
		inputs: []Input{
			spanIn(1, "s1", "order:1", 0),
			spanIn(2, "s2", "order:1", 0),
			spanIn(3, "s3", "order:2", 0),
		},
		want: []string{
			"edge T1 #0 s1 @0s seq=1",
			"edge T1 #1 s2 @0s seq=2",
			"closed T1 evicted @0s seq=3",
			"quality T1 8=8+0+0 @0s seq=3",
			"edge T2 #0 s3 @0s seq=3",
		},
	}, {
		name: "a rule close after an eviction",
		mod:  func(c *TenantConfig) { c.Linker.MaxOpen = 1; c.Linker.CloseOnDid = []string{"order.delivered"} },
		inputs: []Input{
			spanIn(1, "s1", "order:1", 0),
			spanIn(2, "s2", "order:2", 0, didOf("order.delivered")),
			spanIn(3, "s3", "order:3", 0),
		},
		want: []string{
			"edge T1 #0 s1 @0s seq=1",
			"closed T1 evicted @0s seq=2",
			"quality T1 4=4+0+0 @0s seq=2",
			"edge T2 #0 s2 @0s seq=2",
			"closed T2 rule @0s seq=2",
			"quality T2 4=4+0+0 @0s seq=2",
			"edge T3 #0 s3 @0s seq=3",
		},
	}, {
		name: "a config record lowering the bound evicts the oldest down to it, in opening order",
		mod:  maxOpen(10),
		inputs: []Input{
			spanIn(1, "s1", "order:1", 0),
			spanIn(2, "s2", "order:2", 0),
			spanIn(3, "s3", "order:3", 0),
			spanIn(4, "s4", "order:1", 1*h),
			cfgIn(5, "t", &lowered),
			spanIn(6, "s6", "order:3", 2*h),
		},
		want: []string{
			"edge T1 #0 s1 @0s seq=1",
			"edge T2 #0 s2 @0s seq=2",
			"edge T3 #0 s3 @0s seq=3",
			"edge T1 #1 s4 @1h0m0s seq=4",
			"closed T1 evicted @1h0m0s seq=5",
			"quality T1 11=8+3+0 @1h0m0s seq=5",
			"closed T2 evicted @1h0m0s seq=5",
			"quality T2 4=4+0+0 @1h0m0s seq=5",
			"edge T3 #1 s6 @2h0m0s seq=6",
		},
	}})
}

func TestEvictionStats(t *testing.T) {
	e := newEngine(t, func(c *TenantConfig) { c.Linker.MaxOpen = 3 })
	var in []Input
	for i := range 10 {
		in = append(in, spanIn(uint64(i+1), "s"+strconv.Itoa(i), "order:"+strconv.Itoa(i), 0))
	}
	run(t, e, in...)
	st := e.Stats("t")
	if st.Open != 3 || st.Opened != 10 || st.Evicted != 7 || st.Scored != 7 {
		t.Fatalf("stats %+v, want 3 open, 10 opened, 7 evicted and scored", st)
	}
}

// TestEvictionOrderSurvivesSnapshots: trajectories opened at the same clock
// are evicted in the order they opened, also after a snapshot and restore
// (which must not reorder them, e.g. by id).
func TestEvictionOrderSurvivesSnapshots(t *testing.T) {
	const n = 40
	var inputs []Input
	for i := range n {
		inputs = append(inputs, spanIn(uint64(i+1), "s"+strconv.Itoa(i), "order:"+strconv.Itoa(i), 0))
	}
	mod := func(c *TenantConfig) { c.Linker.MaxOpen = n / 2 }
	whole := newEngine(t, mod)
	want := eventStream(t, whole, inputs, nil)
	for cut := 1; cut < n; cut += 3 {
		e := newEngine(t, mod)
		got := eventStream(t, e, inputs[:cut], nil)
		snap, err := e.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var r Engine
		if err := r.UnmarshalBinary(snap); err != nil {
			t.Fatal(err)
		}
		got = eventStream(t, &r, inputs[cut:], got)
		if !bytes.Equal(got, want) {
			t.Fatalf("resumed at %d: events differ from the uninterrupted run", cut)
		}
	}
	// Eviction went in opening order, which is not id order.
	var evicted []string
	for _, line := range bytes.Split(want, []byte("\n")) {
		if bytes.Contains(line, []byte(`"reason":"evicted"`)) {
			i := bytes.Index(line, []byte(`"trajectory_id":"`)) + len(`"trajectory_id":"`)
			evicted = append(evicted, string(line[i:i+26]))
		}
	}
	if len(evicted) != n/2 || slices.IsSorted(evicted) {
		t.Fatalf("%d evicted, sorted by id %v: the test does not tell opening order from id order", len(evicted), slices.IsSorted(evicted))
	}
}
