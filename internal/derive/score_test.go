package derive

import (
	"math/big"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestScoreTable(t *testing.T) {
	def := DefaultMeterPolicy()
	spec := def
	spec.MassSaturation = 13
	w304030 := def
	w304030.Weights = Weights{Mass: 30, Persistence: 40, Verification: 30}
	noMass := def
	noMass.Weights = Weights{Mass: 0, Persistence: 50, Verification: 50}
	k1 := def
	k1.ConfirmerSaturation = 1

	tests := []struct {
		name string
		m    Measures
		p    MeterPolicy
		want Components
	}{
		{"nothing", Measures{}, def, Components{}},
		{"one pending span", Measures{Spans: 1}, def, Components{4, 0, 0}},
		{"perfect", Measures{Spans: 10, Persistence: 12 * time.Hour, Confirmed: 10, Confirmers: 3}, def, Components{40, 30, 30}},
		{"beyond every saturation", Measures{Spans: 500, Persistence: 1000 * time.Hour, Confirmed: 500, Confirmers: 4}, def, Components{40, 30, 30}},
		// The reference example event: 31+24+23 = 78. verification 9/10*(3+2)/6*30 = 22.5, rounded half up.
		{"spec example", Measures{Spans: 10, Persistence: 9*time.Hour + 36*time.Minute, Confirmed: 9, Confirmers: 2}, spec, Components{31, 24, 23}},
		{"half up: 30 * 1/4 = 7.5 -> 8", Measures{Spans: 1, Persistence: 0}, func() MeterPolicy { p := w304030; p.MassSaturation = 4; return p }(), Components{8, 0, 0}},
		{"just below half: 40 * 1h/12h = 3.33 -> 3", Measures{Spans: 1, Persistence: time.Hour}, w304030, Components{3, 3, 0}},
		{"just under a half step stays down", Measures{Spans: 1, Persistence: 9*time.Minute - 1}, def, Components{4, 0, 0}},
		{"exactly half a point goes up", Measures{Spans: 1, Persistence: 12 * time.Minute}, def, Components{4, 1, 0}},
		{"a zero weight gives zero points", Measures{Spans: 10, Persistence: 12 * time.Hour, Confirmed: 10, Confirmers: 3}, noMass, Components{0, 50, 50}},
		{"one confirmer, full share: (3+1)/6", Measures{Spans: 2, Confirmed: 2, Confirmers: 1}, def, Components{8, 0, 20}},
		{"one confirmer is full credit when K=1", Measures{Spans: 2, Confirmed: 2, Confirmers: 1}, k1, Components{8, 0, 30}},
		{"confirmed exceeding spans is capped", Measures{Spans: 2, Confirmed: 9, Confirmers: 3}, def, Components{8, 0, 30}},
		{"negative persistence counts as zero", Measures{Spans: 1, Persistence: -time.Hour}, def, Components{4, 0, 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			score, c, err := Score(tc.m, tc.p)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, c); diff != "" {
				t.Errorf("components (-want +got):\n%s", diff)
			}
			if want := tc.want.Mass + tc.want.Persistence + tc.want.Verification; score != want {
				t.Errorf("score = %d, want %d", score, want)
			}
		})
	}
}

func TestScoreRejectsBadPolicy(t *testing.T) {
	p := DefaultMeterPolicy()
	p.Weights.Verification = 31
	if _, _, err := Score(Measures{Spans: 1}, p); err == nil {
		t.Fatal("weights summing to 1.01 accepted")
	}
}

// refPoints is round-half-up(w * n / d) with exact rationals.
func refPoints(w, n, d uint64) int {
	r := new(big.Rat).SetFrac(new(big.Int).SetUint64(w*n), new(big.Int).SetUint64(d))
	r.Add(r, big.NewRat(1, 2))
	q := new(big.Int).Quo(r.Num(), r.Denom())
	return int(q.Int64())
}

func randPolicy(rng *rand.Rand) MeterPolicy {
	p := DefaultMeterPolicy()
	a := rng.IntN(101)
	b := rng.IntN(101 - a)
	p.Weights = Weights{Mass: a, Persistence: b, Verification: 100 - a - b}
	p.MassSaturation = 1 + rng.IntN(50)
	p.PersistenceSaturation = time.Duration(1 + rng.Int64N(int64(1000*time.Hour)))
	p.ConfirmerSaturation = 1 + rng.IntN(MaxConfirmerSaturation)
	return p
}

func randMeasures(rng *rand.Rand) Measures {
	n := 1 + rng.Uint64N(60)
	return Measures{
		Spans:       n,
		Persistence: time.Duration(rng.Int64N(int64(2000 * time.Hour))),
		Confirmed:   rng.Uint64N(n + 1),
		Confirmers:  rng.Uint64N(MaxConfirmerSaturation + 1),
	}
}

func TestScoreProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20000; i++ {
		p := randPolicy(rng)
		m := randMeasures(rng)
		score, c, err := Score(m, p)
		if err != nil {
			t.Fatal(err)
		}
		// Points sum to the score; bounds 0..100; each component within
		// its weight.
		if c.Mass+c.Persistence+c.Verification != score || score < 0 || score > 100 {
			t.Fatalf("%+v %+v: score %d components %+v", m, p, score, c)
		}
		if c.Mass > p.Weights.Mass || c.Persistence > p.Weights.Persistence || c.Verification > p.Weights.Verification ||
			c.Mass < 0 || c.Persistence < 0 || c.Verification < 0 {
			t.Fatalf("%+v %+v: components %+v exceed weights", m, p, c)
		}
		// Agreement with an exact rational reference.
		K := uint64(p.ConfirmerSaturation)
		ref := Components{
			Mass:        refPoints(uint64(p.Weights.Mass), min(m.Spans, uint64(p.MassSaturation)), uint64(p.MassSaturation)),
			Persistence: refPoints(uint64(p.Weights.Persistence), min(uint64(m.Persistence), uint64(p.PersistenceSaturation)), uint64(p.PersistenceSaturation)),
		}
		if m.Confirmed > 0 {
			ref.Verification = refPoints(uint64(p.Weights.Verification), m.Confirmed*(K+min(m.Confirmers, K)), m.Spans*2*K)
		}
		if c != ref {
			t.Fatalf("%+v %+v: got %+v, exact reference %+v", m, p, c, ref)
		}
		// Monotone: more of a component's measure never lowers it.
		more := m
		more.Spans = min(m.Spans+1+rng.Uint64N(5), 1000)
		more.Confirmed = m.Confirmed // share may drop: only mass is compared
		_, c2, _ := Score(more, p)
		if c2.Mass < c.Mass {
			t.Fatalf("mass fell from %d to %d with more spans (%+v -> %+v)", c.Mass, c2.Mass, m, more)
		}
		more = m
		more.Persistence += time.Duration(rng.Int64N(int64(10 * time.Hour)))
		if _, c2, _ = Score(more, p); c2.Persistence < c.Persistence {
			t.Fatalf("persistence fell from %d to %d (%+v -> %+v)", c.Persistence, c2.Persistence, m, more)
		}
		more = m
		if more.Confirmed < more.Spans {
			more.Confirmed++
		}
		if _, c2, _ = Score(more, p); c2.Verification < c.Verification {
			t.Fatalf("verification fell from %d to %d with more confirmed spans (%+v -> %+v)", c.Verification, c2.Verification, m, more)
		}
		more = m
		if more.Confirmers < MaxConfirmerSaturation {
			more.Confirmers++
		}
		if _, c2, _ = Score(more, p); c2.Verification < c.Verification {
			t.Fatalf("verification fell from %d to %d with more confirmers (%+v -> %+v)", c.Verification, c2.Verification, m, more)
		}
	}
}

// Extreme values do not overflow: durations near the int64 limit and
// saturations at their maxima.
func TestScoreExtremes(t *testing.T) {
	p := DefaultMeterPolicy()
	p.PersistenceSaturation = 1<<63 - 1
	p.MassSaturation = maxMassSaturation
	score, c, err := Score(Measures{Spans: 1 << 40, Persistence: 1<<63 - 1, Confirmed: 1 << 40, Confirmers: 1 << 40}, p)
	if err != nil {
		t.Fatal(err)
	}
	if score != 100 || c != (Components{40, 30, 30}) {
		t.Errorf("score %d %+v, want 100 {40 30 30}", score, c)
	}
}
