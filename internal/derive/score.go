package derive

import (
	"math"
	"math/bits"
	"time"
)

// Measures are the facts about a closed trajectory that its quality score is
// computed from.
type Measures struct {
	// Spans is the number of spans linked into the trajectory.
	Spans uint64
	// Persistence is the event-time span from its earliest to its latest
	// "when" (not the order the spans arrived in).
	Persistence time.Duration
	// Confirmed is the number of its spans with status "confirmed" and at
	// least one non-empty confirmed_by entry.
	Confirmed uint64
	// Confirmers is the number of distinct non-empty confirmed_by values
	// over those spans, counted up to MaxConfirmerSaturation.
	Confirmers uint64
}

// Score computes the quality score of m under policy p, exactly as the engine
// does (docs/quality.md has the formula). It fails only if p is invalid.
func Score(m Measures, p MeterPolicy) (score int, c Components, err error) {
	cfg := DefaultTenantConfig()
	cfg.Meter = p
	k, err := compile(cfg)
	if err != nil {
		return 0, Components{}, err
	}
	p64 := uint64(0)
	if m.Persistence > 0 {
		p64 = uint64(m.Persistence)
	}
	// The engine counts spans in 32 bits (saturating); so does Score.
	c = scoreOf(measures{spans: min(m.Spans, math.MaxUint32), persist: p64, confirmed: min(m.Confirmed, math.MaxUint32), confirmers: m.Confirmers}, k)
	return c.Mass + c.Persistence + c.Verification, c, nil
}

// measures is Measures with the persistence in unsigned nanoseconds, so that
// the full range of clamped timestamps cannot overflow.
type measures struct {
	spans, persist, confirmed, confirmers uint64
}

// scoreOf computes the three components in integer arithmetic only. Each
// component is round_half_up(W * n / d) where W is the weight in hundredths
// (= 100 * weight) and n/d in [0,1] is the component's fraction:
//
//	mass          n = min(spans, S_mass)              d = S_mass
//	persistence   n = min(last-first, S_persist) [ns] d = S_persist [ns]
//	verification  n = confirmed * (K + min(D, K))     d = spans * 2K
//
// with K the confirmer saturation and D the distinct confirmers.
func scoreOf(m measures, k *compiled) Components {
	var c Components
	if m.spans == 0 {
		return c
	}
	c.Mass = points(k.weights[0], min(m.spans, k.massSat), k.massSat)
	c.Persistence = points(k.weights[1], min(m.persist, k.persistSat), k.persistSat)
	conf := min(m.confirmed, m.spans)
	if conf > 0 {
		K := k.confSat
		c.Verification = points(k.weights[2], conf*(K+min(m.confirmers, K)), m.spans*2*K)
	}
	return c
}

// points returns round_half_up(w * n / d) = floor((2*w*n + d) / (2*d)) for
// 0 <= n <= d, 0 < d < 2^63 and w <= 100, computed in 128-bit integers. The
// result is at most w.
func points(w, n, d uint64) int {
	hi, lo := bits.Mul64(2*w, n)
	lo, carry := bits.Add64(lo, d, 0)
	hi += carry
	q, _ := bits.Div64(hi, lo, 2*d)
	return int(q)
}
