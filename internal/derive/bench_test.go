package derive

import (
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/loglineos/loglineos/internal/span"
)

// BenchmarkStep measures derivation over a recorded input stream: the mixed
// synthetic ledger (5 tenants, heartbeats, late spans, rule closes, ticks,
// config changes), 200,000 spans replayed in a loop, one input per
// iteration. It reports spans per second of wall time and spans per second
// of process CPU time; run it with -cpu 1 so that the CPU time is one
// core's, which makes the figure independent of other load on the machine.
func BenchmarkStep(b *testing.B) { benchStep(b, false) }

// BenchmarkStepJSON is BenchmarkStep plus the canonical JSON encoding of
// every derived event.
func BenchmarkStepJSON(b *testing.B) { benchStep(b, true) }

func benchStep(b *testing.B, encode bool) {
	inputs := slices.Collect(defaultLedger(200_000).ledger())
	runtime.GC()
	e, _ := New(Config{})
	var evs []Event
	var out []byte
	var spans, events int
	var cpu time.Duration
	j := 0
	b.ReportAllocs()
	b.ResetTimer()
	c0 := cpuTime()
	for i := 0; i < b.N; i++ {
		if j == len(inputs) {
			b.StopTimer()
			cpu += cpuTime() - c0
			e, _ = New(Config{})
			j = 0
			c0 = cpuTime()
			b.StartTimer()
		}
		in := inputs[j]
		j++
		var err error
		evs, err = e.Step(evs[:0], in)
		if err != nil {
			b.Fatal(err)
		}
		if encode {
			out = out[:0]
			for k := range evs {
				out = evs[k].AppendJSON(out)
			}
		}
		events += len(evs)
		if in.Kind == KindSpan {
			spans++
		}
	}
	cpu += cpuTime() - c0
	b.ReportMetric(float64(spans)/b.Elapsed().Seconds(), "spans/s")
	if cpu > 0 {
		b.ReportMetric(float64(spans)/cpu.Seconds(), "spans/cpu-s")
	}
	b.ReportMetric(float64(events)/float64(b.N), "events/op")
}

// openTrajectoryBytes opens n trajectories (distinct keys "order:<i>", one
// confirmed span each, all within the close timeout) in a fresh engine and
// returns the heap growth per open trajectory, after GC, counting everything
// the engine retains: table, index, key strings, lists. The spans are
// parsed from their JSON text, with a data member, as a server does: every
// string of a parsed span is a substring of its whole text, which the
// engine must not keep.
func openTrajectoryBytes(tb testing.TB, n int) float64 {
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	e, _ := New(Config{})
	var evs []Event
	var text []byte
	for i := 0; i < n; i++ {
		text = fmt.Appendf(text[:0], `{"id":"s_%d","tenant":"t_mem","who":"dan","did":"order.open","this":"order:%d","when":%q,"status":"confirmed","confirmed_by":["pos://register-7"],"data":{"gross":19.9,"items":3,"note":"a data member makes the text longer than its fields"}}`,
			i, i, epoch.Add(time.Duration(i)*10*time.Millisecond).Format(time.RFC3339Nano))
		sp, err := span.Parse(text, span.Limits{})
		if err != nil {
			tb.Fatal(err)
		}
		if evs, err = e.Step(evs[:0], Input{Seq: uint64(i + 1), Kind: KindSpan, Span: sp}); err != nil {
			tb.Fatal(err)
		}
	}
	evs = nil
	runtime.GC()
	runtime.ReadMemStats(&m1)
	if got := e.Stats("t_mem").Open; got != uint64(n) {
		tb.Fatalf("open trajectories = %d, want %d", got, n)
	}
	runtime.KeepAlive(e)
	return float64(int64(m1.HeapAlloc)-int64(m0.HeapAlloc)) / float64(n)
}

// BenchmarkOpenTrajectoryMemory reports bytes of heap per open trajectory
// with 1,000,000 open trajectories. It measures a footprint, not a speed, so
// it does the work once per call whatever b.N is.
func BenchmarkOpenTrajectoryMemory(b *testing.B) {
	b.ReportMetric(openTrajectoryBytes(b, 1_000_000), "bytes/open-trajectory")
}

// The memory acceptance: at most 256 bytes of heap per open trajectory with
// 1,000,000 of them open.
func TestOpenTrajectoryMemory(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("opens a million trajectories (and measures memory, which the race detector inflates): .ci/run runs it without -race")
	}
	per := openTrajectoryBytes(t, 1_000_000)
	t.Logf("%.1f bytes per open trajectory (1,000,000 open)", per)
	if per > 256 {
		t.Errorf("%.1f bytes per open trajectory, want <= 256", per)
	}
}
