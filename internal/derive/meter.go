package derive

import "math/bits"

// Quality Meter v1.1 constants; part of the derivation ABI v1.
const (
	// NumScores is the number of distinct scores, 0..100.
	NumScores = 101
	// MeterSlices is the number of event-time slices the meter's window is
	// cut into; the window slides one slice at a time.
	MeterSlices = 24
	// CreditOne is one candidate's worth of credit in the meter's fixed-point
	// accumulators (32 fractional bits).
	CreditOne = 1 << 32
	// CreditCap is the most credit the meter keeps: after a long stretch
	// without eligible scores, at most this many candidates can follow at once.
	CreditCap = 16 * CreditOne
)

// meter is one tenant's Quality Meter: an exact histogram of the scores of
// the last MeterSlices slices of event time, plus two fixed-point
// accumulators, tie (the tie policy) and credit (the rate budget). See
// docs/quality.md.
type meter struct {
	win     int64 // the window the ring is laid out for, ns
	slice   int64 // win / MeterSlices, ns
	cur     int64 // slice index of the tenant clock
	started bool
	ring    *[MeterSlices][NumScores]uint32 // allocated on first score
	total   [NumScores]uint64               // sum of ring over slices
	n       uint64                          // sum of total
	credit  uint64
	tie     uint64
}

// reconfigure lays the ring out for k's window. A change of window restarts
// the distribution (the old slices cannot be re-cut exactly); the
// accumulators are kept.
func (m *meter) reconfigure(k *compiled) {
	if m.win == k.meterWin {
		return
	}
	m.win, m.slice = k.meterWin, k.meterWin/MeterSlices
	m.started = false
	m.ring = nil
	m.total = [NumScores]uint64{}
	m.n = 0
}

// advance slides the window to the slice of clock, dropping the slices that
// fall out of it.
func (m *meter) advance(clock int64) {
	idx := floorDiv(clock, m.slice)
	if !m.started {
		m.cur, m.started = idx, true
		return
	}
	if idx <= m.cur {
		return
	}
	steps := idx - m.cur
	if steps > MeterSlices {
		steps = MeterSlices
	}
	if m.ring != nil {
		for s := int64(1); s <= steps; s++ {
			row := &m.ring[floorMod(m.cur+s, MeterSlices)]
			for i, c := range row {
				if c != 0 {
					m.total[i] -= uint64(c)
					m.n -= uint64(c)
					row[i] = 0
				}
			}
		}
	}
	m.cur = idx
}

// decision is the meter's verdict on one score.
type decision struct {
	candidate bool
	threshold int // -1 when the window was empty
}

// observe decides whether score is a candidate against the scores already in
// the window, then adds it to the window.
func (m *meter) observe(score int, k *compiled) decision {
	d := decision{threshold: -1}
	if m.n > 0 {
		t, phi := m.threshold(k.qpm)
		d.threshold = t
		if m.n >= k.warmup {
			accrual := (1000 - k.qpm) * CreditOne / 1000
			m.credit = min(m.credit+accrual, CreditCap)
			if score >= k.minScore {
				eligible := score > t
				if score == t {
					m.tie += phi
					if m.tie >= CreditOne {
						m.tie -= CreditOne
						eligible = true
					}
				}
				if eligible && m.credit >= CreditOne {
					m.credit -= CreditOne
					d.candidate = true
				}
			}
		}
	}
	if m.ring == nil {
		m.ring = new([MeterSlices][NumScores]uint32)
	}
	m.ring[floorMod(m.cur, MeterSlices)][score]++
	m.total[score]++
	m.n++
	return d
}

// threshold returns T, the qpm-permille percentile of the window, and phi,
// the share of the scores equal to T that the tail quota still has room for,
// in CreditOne units. T is the smallest score s with
//
//	1000 * count(<= s) > qpm * n
//
// so that 1000*count(< T) <= qpm*n < 1000*count(<= T); the tail quota is
// n*(1000-qpm)/1000 scores, of which count(> T) are strictly above T, and
// phi = (quota - count(> T)) / count(== T), which lies in (0, 1].
func (m *meter) threshold(qpm uint64) (int, uint64) {
	n := m.n
	target := qpm * n // fits: n < 2^54 in any realistic state
	var cum uint64
	t := NumScores - 1
	for s, c := range m.total {
		cum += c
		if 1000*cum > target {
			t = s
			break
		}
	}
	above := n - cum
	ties := m.total[t]
	quotaM := (1000 - qpm) * n // thousandths of a score
	need := quotaM - 1000*above
	// phi = need / (1000 * ties) in units of CreditOne.
	hi, lo := bits.Mul64(need, CreditOne)
	den := 1000 * ties
	if hi >= den { // impossible for a consistent histogram; be safe anyway
		return t, CreditOne
	}
	phi, _ := bits.Div64(hi, lo, den)
	return t, phi
}

// percentile returns the nearest-rank p-th percentile (0 < p <= 100) of the
// window: the smallest s with 100*count(<= s) >= p*n; 0 when it is empty.
func (m *meter) percentile(p uint64) int {
	if m.n == 0 {
		return 0
	}
	return histPercentile(&m.total, m.n, p)
}

func histPercentile(h *[NumScores]uint64, n, p uint64) int {
	var cum uint64
	for s, c := range h {
		cum += c
		if 100*cum >= p*n {
			return s
		}
	}
	return NumScores - 1
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func floorMod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}
