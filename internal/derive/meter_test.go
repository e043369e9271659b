package derive

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/loglineos/loglineos/internal/span"
)

func compiledMeter(t testing.TB, mod func(*MeterPolicy)) *compiled {
	t.Helper()
	c := DefaultTenantConfig()
	if mod != nil {
		mod(&c.Meter)
	}
	k, err := compile(c)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// meterRig decides scores of one tenant the way the engine does, through
// the standard rules (the meter's validator and its kernels).
type meterRig struct {
	e *Engine
	t *tenant
}

func newMeterRig(tb testing.TB, mod func(*MeterPolicy)) *meterRig {
	tb.Helper()
	c := DefaultTenantConfig()
	if mod != nil {
		mod(&c.Meter)
	}
	e, err := New(Config{Default: &c})
	if err != nil {
		tb.Fatal(err)
	}
	t := e.tenant("t")
	t.meter.advance(0)
	return &meterRig{e: e, t: t}
}

// observe decides score and adds it to the window; it reports whether the
// score was a candidate.
func (r *meterRig) observe(score int) bool {
	n := r.t.stats.Candidates
	r.e.decide(nil, r.t, Event{Type: QualityEvent, Score: score, Tenant: r.t.name})
	return r.t.stats.Candidates > n
}

// The threshold and the tie share agree with their definitions, checked
// against sorted lists.
func TestMeterThresholdDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 3000; i++ {
		var m meter
		k := compiledMeter(t, nil)
		m.reconfigure(k)
		m.advance(0)
		n := 1 + rng.IntN(300)
		var scores []int
		for j := 0; j < n; j++ {
			s := rng.IntN(101)
			if rng.IntN(2) == 0 {
				s = 60 + rng.IntN(5) // many ties
			}
			scores = append(scores, s)
			m.add(s)
		}
		sort.Ints(scores)
		qpm := uint64(10 + rng.IntN(990))
		tt, phi := m.threshold(qpm)
		below, atOrBelow := 0, 0
		for _, s := range scores {
			if s < tt {
				below++
			}
			if s <= tt {
				atOrBelow++
			}
		}
		// 1000*count(<T) <= qpm*n < 1000*count(<=T)
		if !(uint64(1000*below) <= qpm*uint64(n) && qpm*uint64(n) < uint64(1000*atOrBelow)) {
			t.Fatalf("n=%d qpm=%d: T=%d has %d below and %d at or below", n, qpm, tt, below, atOrBelow)
		}
		ties := atOrBelow - below
		above := n - atOrBelow
		// phi = (n*(1000-qpm) - 1000*above) / (1000*ties), in (0,1]
		num := uint64(n)*(1000-qpm) - uint64(1000*above)
		den := uint64(1000 * ties)
		if phi == 0 || phi > CreditOne || phi != num*CreditOne/den {
			t.Fatalf("n=%d qpm=%d T=%d: phi=%d, want %d/%d of %d", n, qpm, tt, phi, num, den, uint64(CreditOne))
		}
		// Percentiles: nearest rank.
		for _, p := range []uint64{50, 95, 99} {
			rank := (p*uint64(n) + 99) / 100
			if got, want := m.percentile(p), scores[rank-1]; got != want {
				t.Fatalf("p%d of %v = %d, want %d", p, scores, got, want)
			}
		}
	}
}

func TestMeterWindowSlides(t *testing.T) {
	k := compiledMeter(t, func(p *MeterPolicy) { p.Window = 24 * time.Hour }) // 1h slices
	var m meter
	m.reconfigure(k)
	m.advance(0)
	for i := 0; i < 10; i++ {
		m.add(90)
	}
	m.advance(int64(12 * time.Hour))
	for i := 0; i < 5; i++ {
		m.add(10)
	}
	if m.n != 15 {
		t.Fatalf("n = %d, want 15", m.n)
	}
	m.advance(int64(24*time.Hour) - 1) // still the slice of 0 inside the window
	if m.n != 15 {
		t.Fatalf("n = %d at 23:59:59.999999999, want 15", m.n)
	}
	m.advance(int64(24 * time.Hour)) // the first slice leaves
	if m.n != 5 || m.total[90] != 0 || m.total[10] != 5 {
		t.Fatalf("after 24h: n=%d total[90]=%d total[10]=%d, want 5 0 5", m.n, m.total[90], m.total[10])
	}
	m.advance(int64(100 * 24 * time.Hour)) // everything leaves
	if m.n != 0 {
		t.Fatalf("n = %d after 100 days, want 0", m.n)
	}
	// Negative clocks slice correctly too.
	var m2 meter
	m2.reconfigure(k)
	m2.advance(-int64(30 * time.Minute))
	m2.add(5)
	m2.advance(int64(22*time.Hour + 59*time.Minute)) // slices -1..22
	if m2.n != 1 {
		t.Fatalf("n = %d, want 1", m2.n)
	}
	m2.advance(int64(23 * time.Hour)) // slices 0..23
	if m2.n != 0 {
		t.Fatalf("n = %d, want 0", m2.n)
	}
}

// workload is a named score distribution.
type workload struct {
	name string
	draw func(rng *rand.Rand) int
}

func clampScore(s int) int { return min(max(s, 0), 100) }

func workloads() []workload {
	return []workload{
		{"uniform", func(r *rand.Rand) int { return r.IntN(101) }},
		{"skewed low", func(r *rand.Rand) int { u := r.Float64(); return int(100 * u * u * u) }},
		{"skewed high", func(r *rand.Rand) int { u := r.Float64(); return 100 - int(100*u*u) }},
		{"bimodal", func(r *rand.Rand) int {
			if r.IntN(2) == 0 {
				return clampScore(int(30 + 8*r.NormFloat64()))
			}
			return clampScore(int(75 + 8*r.NormFloat64()))
		}},
		{"60% tied at 72", func(r *rand.Rand) int {
			if r.IntN(10) < 6 {
				return 72
			}
			return r.IntN(101)
		}},
		{"60% tied at the top (90)", func(r *rand.Rand) int {
			if r.IntN(10) < 6 {
				return 90
			}
			return r.IntN(90)
		}},
		{"all equal (80)", func(*rand.Rand) int { return 80 }},
		{"few distinct (60,70,80,90)", func(r *rand.Rand) int { return 60 + 10*r.IntN(4) }},
	}
}

// rateCheck tracks the acceptance criteria over a stream of decisions.
type rateCheck struct {
	warmup                      uint64
	minScore                    int
	scored, post, cands, inWarm uint64
	belowMin                    uint64
}

func (rc *rateCheck) add(windowCount uint64, score int, cand bool) {
	rc.scored++
	warm := windowCount < rc.warmup
	if !warm {
		rc.post++
	}
	if cand {
		rc.cands++
		if warm {
			rc.inWarm++
		}
		if score < rc.minScore {
			rc.belowMin++
		}
	}
}

func (rc *rateCheck) verify(t *testing.T, name string) {
	t.Helper()
	rate := float64(rc.cands) / float64(rc.post)
	t.Logf("%-28s scored %d, after warm-up %d, candidates %d, rate %.3f%%", name, rc.scored, rc.post, rc.cands, 100*rate)
	if rate < 0.02 || rate > 0.04 {
		t.Errorf("%s: candidate rate %.3f%%, want 2%%..4%%", name, 100*rate)
	}
	if rc.inWarm != 0 {
		t.Errorf("%s: %d candidates during warm-up", name, rc.inWarm)
	}
	if rc.belowMin != 0 {
		t.Errorf("%s: %d candidates below min_score", name, rc.belowMin)
	}
}

// The meter alone, 200,000 scores per workload, one score a minute (so the
// seven-day window slides through the run and holds about 10,000 scores).
func TestMeterWorkloads(t *testing.T) {
	for i, w := range workloads() {
		r := newMeterRig(t, nil)
		k, m := r.t.cfg, &r.t.meter
		rng := rand.New(rand.NewPCG(uint64(i), 99))
		rc := rateCheck{warmup: k.warmup, minScore: k.minScore}
		for j := 0; j < 200_000; j++ {
			m.advance(int64(j) * int64(time.Minute))
			n := m.n
			s := w.draw(rng)
			rc.add(n, s, r.observe(s))
		}
		rc.verify(t, w.name)
	}
}

// shapeTable maps a score to trajectory measures that produce it under the
// default policy (spans, persistence in 24-minute steps, confirmed spans and
// distinct confirmers). Scores 1..3 cannot be produced (one span is worth 4);
// they map to the next reachable score.
func shapeTable(t testing.TB) [NumScores]Measures {
	var table [NumScores]Measures
	var have [NumScores]bool
	p := DefaultMeterPolicy()
	for n := uint64(1); n <= 10; n++ {
		for steps := 0; steps <= 30; steps++ {
			// Spans are spread evenly; gaps must stay within the 6h
			// close_timeout or the trajectory would split.
			if time.Duration(steps)*24*time.Minute > time.Duration(n-1)*6*time.Hour {
				continue
			}
			for c := uint64(0); c <= n; c++ {
				for d := uint64(0); d <= 3; d++ {
					if (c == 0) != (d == 0) {
						continue
					}
					m := Measures{Spans: n, Persistence: time.Duration(steps) * 24 * time.Minute, Confirmed: c, Confirmers: d}
					s, _, err := Score(m, p)
					if err != nil {
						t.Fatal(err)
					}
					if !have[s] {
						have[s], table[s] = true, m
					}
				}
			}
		}
	}
	for s := NumScores - 1; s >= 0; s-- {
		if !have[s] {
			table[s] = table[s+1]
		}
	}
	return table
}

// trajectoryLedger turns n scores into a ledger whose trajectories get those
// scores: trajectory j starts at j*30s, its spans spread evenly over its
// persistence; all spans merged in event-time order.
func trajectoryLedger(t testing.TB, scores []int) []Input {
	table := shapeTable(t)
	type ref struct {
		when int64
		traj int32
		k    int16
	}
	var refs []ref
	for j, s := range scores {
		m := table[s]
		start := int64(j) * int64(30*time.Second)
		for k := uint64(0); k < m.Spans; k++ {
			off := int64(0)
			if m.Spans > 1 {
				off = int64(m.Persistence) * int64(k) / int64(m.Spans-1)
			}
			refs = append(refs, ref{start + off, int32(j), int16(k)})
		}
	}
	slices.SortStableFunc(refs, func(a, b ref) int {
		switch {
		case a.when < b.when:
			return -1
		case a.when > b.when:
			return 1
		}
		return 0
	})
	confirmers := []string{"pos://1", "bank://2", "courier://3"}
	inputs := make([]Input, 0, len(refs))
	for i, r := range refs {
		m := table[scores[r.traj]]
		sp := &span.Span{
			ID: fmt.Sprintf("s_%d_%d", r.traj, r.k), Tenant: "t_load", Who: "w", Did: "step",
			This: fmt.Sprintf("order:%d", r.traj), When: epoch.Add(time.Duration(r.when)), WhenOK: true, Status: "pending",
		}
		if uint64(r.k) < m.Confirmed {
			sp.Status = "confirmed"
			// Spread the distinct confirmers over the confirmed spans.
			sp.ConfirmedBy = []string{confirmers[min(uint64(r.k), m.Confirmers-1)]}
			if uint64(r.k) == m.Confirmed-1 {
				sp.ConfirmedBy = confirmers[:m.Confirmers]
			}
		}
		inputs = append(inputs, Input{Seq: uint64(i + 1), Kind: KindSpan, Span: sp})
	}
	return inputs
}

// End to end: 100,000 trajectories per workload through the engine, scores
// distributed as the workload says; candidate rate after warm-up within 2-4%,
// none during warm-up, none below min_score.
func TestEngineWorkloads(t *testing.T) {
	n := 100_000
	if testing.Short() || raceEnabled {
		n = 20_000
	}
	for i, w := range workloads() {
		t.Run(w.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			scores := make([]int, n)
			for j := range scores {
				scores[j] = max(w.draw(rng), 4)
			}
			inputs := trajectoryLedger(t, scores)
			e := newEngine(t, func(c *TenantConfig) { *c = DefaultTenantConfig() })
			rc := rateCheck{warmup: DefaultWarmup, minScore: DefaultMinScore}
			var evs []Event
			got := map[int]int{}
			flush := func(evs []Event, windowBefore *uint64) {
				// Re-derive each decision's window count from the quality
				// events seen so far: the meter window (7 days) holds
				// every score of the run's first week, and warm-up only
				// concerns the first 100 scores.
				for k := range evs {
					ev := &evs[k]
					switch ev.Type {
					case QualityEvent:
						got[ev.Score]++
						cand := k+1 < len(evs) && evs[k+1].Type == CandidateEvent && evs[k+1].Trajectory == ev.Trajectory
						rc.add(*windowBefore, ev.Score, cand)
						*windowBefore++
					}
				}
			}
			var seen uint64
			for _, in := range inputs {
				var err error
				if evs, err = e.Step(evs[:0], in); err != nil {
					t.Fatal(err)
				}
				flush(evs, &seen)
			}
			evs, _ = e.Step(evs[:0], tickIn(uint64(len(inputs)+1), 10000*h))
			flush(evs, &seen)
			if rc.scored != uint64(n) {
				t.Fatalf("scored %d trajectories, want %d", rc.scored, n)
			}
			// The trajectories got the scores the workload asked for.
			want := map[int]int{}
			table := shapeTable(t)
			for _, s := range scores {
				sc, _, _ := Score(table[s], DefaultMeterPolicy())
				want[sc]++
			}
			for s, c := range want {
				if got[s] != c {
					t.Fatalf("score %d given %d times, want %d", s, got[s], c)
				}
			}
			rc.verify(t, w.name)
			st := e.Stats("t_load")
			if st.Candidates != rc.cands {
				t.Errorf("Stats.Candidates = %d, counted %d", st.Candidates, rc.cands)
			}
		})
	}
}
