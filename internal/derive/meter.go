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

// accrue adds one score's worth of credit, (1000-qpm)/1000 of a candidate,
// capped at CreditCap, when the window holds at least warmup scores (and at
// least one). It is called for every score decided, before the meter's
// guard, whatever the guard then says.
func (m *meter) accrue(k *compiled) {
	if !k.credit || m.n == 0 || m.n < k.warmup {
		return
	}
	accrual := (1000 - k.qpm) * CreditOne / 1000
	m.credit = min(m.credit+accrual, CreditCap)
}

// spend takes one candidate's credit, reporting whether there was one.
func (m *meter) spend() bool {
	if m.credit < CreditOne {
		return false
	}
	m.credit -= CreditOne
	return true
}

// ration adds phi to the tie accumulator and reports whether it reached one
// candidate's worth (which it then spends): the score tied with the
// threshold is admitted.
func (m *meter) ration(phi uint64) bool {
	m.tie += phi
	if m.tie < CreditOne {
		return false
	}
	m.tie -= CreditOne
	return true
}

// add puts score into the window's current slice.
func (m *meter) add(score int) {
	if m.ring == nil {
		m.ring = new([MeterSlices][NumScores]uint32)
	}
	m.ring[floorMod(m.cur, MeterSlices)][score]++
	m.total[score]++
	m.n++
}

// rank returns, in permille, the highest percentile target p (0..999) at
// which a score of x micros (a score times 1e6) is at or above the window's
// threshold T(p): with c = count(<= x), x >= T(p) exactly when
// 1000*c > p*n, so the answer is min(ceil(1000*c/n) - 1, 999), and 0 when
// no score of the window is <= x or the window is empty.
func (m *meter) rank(x int64) uint64 {
	if m.n == 0 || x < 0 {
		return 0
	}
	var c uint64
	for s := 0; s < NumScores && int64(s)*1_000_000 <= x; s++ {
		c += m.total[s]
	}
	if c == 0 {
		return 0
	}
	p := (1000*c+m.n-1)/m.n - 1
	return min(p, 999)
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
