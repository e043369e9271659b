package derive

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"time"
)

// ErrBadSnapshot is wrapped by UnmarshalBinary's errors.
var ErrBadSnapshot = errors.New("derive: bad snapshot")

// snapshotMagic starts every snapshot; its last byte is the format version.
// A snapshot of another version is refused (the cycle then derives again
// from the start of the ledger).
const snapshotMagic = "LLDERIV\x03"

// MarshalBinary returns the engine state as deterministic bytes: equal states
// give equal bytes, whatever the history of slot reuse or map layout. Format
// (version 3), integers as uvarint, signed ones as zig-zag varint, strings
// and lists length-prefixed:
//
//	"LLDERIV\x03"
//	config(default)
//	started lastSeq haveTick tickMax
//	count, then per tenant in name order:
//	  name custom [config] clock
//	  stats (counters, 101-bucket histogram, shed by type, last threshold)
//	  meter (started cur credit tie, 24 rows of (score,count) pairs)
//	  guard (started minute count shed by type)
//	  count, then per open trajectory in opening order:
//	    id[15] key openClock lastClock minWhen maxWhen count confirmed
//	    n, n x confirmer hash (8 bytes big-endian)
//	CRC-32 (IEEE) of everything before, 4 bytes big-endian
//
// The opening order is part of the state (eviction follows it). Slot
// numbers, the activity list, links and maps are rebuilt on load, in orders
// that do not affect derived output.
func (e *Engine) MarshalBinary() ([]byte, error) {
	e.init()
	w := &enc{b: append([]byte(nil), snapshotMagic...)}
	w.config(&e.def.src)
	w.bool(e.started)
	w.u(e.lastSeq)
	w.bool(e.haveTick)
	w.i(e.tickMax)
	w.u(uint64(len(e.tenants)))
	for _, t := range e.tenants {
		w.str(t.name)
		w.bool(t.custom)
		if t.custom {
			w.config(&t.cfg.src)
		}
		w.i(t.clock)
		st := &t.stats
		for _, v := range []uint64{st.Spans, st.Excepted, st.Unkeyed, st.Unlinked, st.Linked, st.Opened, st.Open, st.Timeout, st.Rule, st.Evicted, st.Scored, st.Candidates} {
			w.u(v)
		}
		for _, v := range st.Histogram {
			w.u(v)
		}
		for _, v := range st.Shed {
			w.u(v)
		}
		w.i(int64(st.LastThreshold))
		w.u(st.LastThresholdSeq)

		m := &t.meter
		w.bool(m.started)
		w.i(m.cur)
		w.u(m.credit)
		w.u(m.tie)
		for r := 0; r < MeterSlices; r++ {
			var row *[NumScores]uint32
			if m.ring != nil {
				row = &m.ring[r]
			}
			nnz := 0
			if row != nil {
				for _, c := range row {
					if c != 0 {
						nnz++
					}
				}
			}
			w.u(uint64(nnz))
			if nnz > 0 {
				for s, c := range row {
					if c != 0 {
						w.u(uint64(s))
						w.u(uint64(c))
					}
				}
			}
		}

		g := &t.guard
		w.bool(g.started)
		w.i(g.minute)
		w.u(g.count)
		for _, v := range g.shed {
			w.u(v)
		}

		tt := &t.traj
		w.u(uint64(tt.n))
		for i := tt.head[openList]; i != noSlot; i = tt.at(i).link[openList][1] {
			s := tt.at(i)
			w.b = append(w.b, s.id[:]...)
			w.str(s.key)
			w.i(s.openClock)
			w.i(s.lastClock)
			w.i(s.minWhen)
			w.i(s.maxWhen)
			w.u(uint64(s.count))
			w.u(uint64(s.confirmed))
			n := s.nconf()
			w.u(uint64(n))
			for _, h := range s.confirmers[:n] {
				w.b = binary.BigEndian.AppendUint64(w.b, h)
			}
		}
	}
	w.b = binary.BigEndian.AppendUint32(w.b, crc32.ChecksumIEEE(w.b))
	return w.b, nil
}

// UnmarshalBinary replaces the engine state with the one in data, as written
// by MarshalBinary (including the default configuration). On error the
// engine is unchanged.
//
// The engine keeps its Rules (they are not part of the state): a snapshot
// restores under the rules of the bundle the engine was made for.
func (e *Engine) UnmarshalBinary(data []byte) error {
	e.init()
	ne, err := decodeSnapshot(data, e.rules)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadSnapshot, err)
	}
	*e = *ne
	return nil
}

func decodeSnapshot(data []byte, rules *Rules) (*Engine, error) {
	if len(data) < len(snapshotMagic)+4 || string(data[:len(snapshotMagic)]) != snapshotMagic {
		return nil, errors.New("not a version 1 snapshot")
	}
	body, sum := data[:len(data)-4], binary.BigEndian.Uint32(data[len(data)-4:])
	if crc32.ChecksumIEEE(body) != sum {
		return nil, errors.New("checksum mismatch")
	}
	r := &dec{b: body[len(snapshotMagic):]}
	e := &Engine{}
	defCfg := r.config()
	if r.err != nil {
		return nil, r.err
	}
	def, err := compile(defCfg)
	if err != nil {
		return nil, fmt.Errorf("default config: %w", err)
	}
	if err := e.setup(def, rules); err != nil {
		return nil, fmt.Errorf("default config: %w", err)
	}
	e.started = r.bool()
	e.lastSeq = r.u()
	e.haveTick = r.bool()
	e.tickMax = r.i()
	nt := r.count(1)
	for ti := 0; ti < nt && r.err == nil; ti++ {
		t := &tenant{name: r.str(), cfg: def}
		if t.name == "" || (ti > 0 && e.tenants[ti-1].name >= t.name) {
			return nil, errors.New("tenant names not sorted and unique")
		}
		if err := r.tenant(t); err != nil {
			return nil, err
		}
		if t.custom && r.err == nil {
			if err := e.bind(t.cfg); err != nil {
				return nil, fmt.Errorf("tenant %q config: %w", t.name, err)
			}
		}
		if r.err != nil {
			break
		}
		e.byName[t.name] = t
		e.tenants = append(e.tenants, t)
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, errors.New("trailing bytes")
	}
	return e, nil
}

// tenant reads the rest of a tenant after its name. It returns an error
// for content that is not a valid state; a short read is left in r.err.
func (r *dec) tenant(t *tenant) error {
	t.traj.init()
	if t.custom = r.bool(); t.custom {
		c := r.config()
		if r.err != nil {
			return nil
		}
		var err error
		if t.cfg, err = compile(c); err != nil {
			return fmt.Errorf("tenant %q config: %w", t.name, err)
		}
	}
	t.meter.reconfigure(t.cfg)
	t.clock = r.i()
	if err := r.stats(&t.stats); err != nil {
		return err
	}
	if err := r.meter(&t.meter); err != nil {
		return err
	}
	g := &t.guard
	g.started = r.bool()
	g.minute = r.i()
	g.count = r.u()
	for i := range g.shed {
		g.shed[i] = r.u()
	}
	return r.trajectories(t)
}

func (r *dec) stats(st *Stats) error {
	for _, p := range []*uint64{&st.Spans, &st.Excepted, &st.Unkeyed, &st.Unlinked, &st.Linked, &st.Opened, &st.Open, &st.Timeout, &st.Rule, &st.Evicted, &st.Scored, &st.Candidates} {
		*p = r.u()
	}
	for i := range st.Histogram {
		st.Histogram[i] = r.u()
	}
	for i := range st.Shed {
		st.Shed[i] = r.u()
	}
	st.LastThreshold = int(r.i())
	st.LastThresholdSeq = r.u()
	if st.LastThreshold < -1 || st.LastThreshold > 100 {
		return errors.New("bad last threshold")
	}
	return nil
}

func (r *dec) meter(m *meter) error {
	m.started = r.bool()
	m.cur = r.i()
	m.credit = r.u()
	m.tie = r.u()
	if m.credit > CreditCap || m.tie >= CreditOne {
		return errors.New("meter accumulators out of range")
	}
	for row := 0; row < MeterSlices && r.err == nil; row++ {
		nnz := r.count(2)
		prev := -1
		for j := 0; j < nnz && r.err == nil; j++ {
			s, c := r.u(), r.u()
			if s >= NumScores || int(s) <= prev || c == 0 || c > 1<<32-1 {
				return errors.New("bad meter histogram")
			}
			prev = int(s)
			if m.ring == nil {
				m.ring = new([MeterSlices][NumScores]uint32)
			}
			m.ring[row][s] = uint32(c)
			m.total[s] += c
			m.n += c
		}
	}
	return nil
}

// trajectories reads a tenant's open trajectories and rebuilds its lists.
func (r *dec) trajectories(t *tenant) error {
	n := r.count(TrajectoryIDSize + 8)
	tt := &t.traj
	for j := 0; j < n && r.err == nil; j++ {
		var s traj
		copy(s.id[:], r.bytes(TrajectoryIDSize))
		s.key = r.str()
		s.openClock, s.lastClock, s.minWhen, s.maxWhen = r.i(), r.i(), r.i(), r.i()
		cnt, conf, nc := r.u(), r.u(), r.u()
		if cnt == 0 || cnt > 1<<32-1 || conf > cnt || nc > MaxConfirmerSaturation || s.minWhen > s.maxWhen ||
			s.openClock > s.lastClock || s.lastClock > t.clock || s.openClock == noClock {
			return errors.New("bad trajectory")
		}
		s.count, s.confirmed, s.flags = uint32(cnt), uint32(conf), uint8(nc)
		for c := uint64(0); c < nc; c++ {
			s.confirmers[c] = binary.BigEndian.Uint64(r.bytes(8))
		}
		if r.err != nil {
			break
		}
		if j > 0 && tt.at(uint32(j-1)).openClock > s.openClock {
			return errors.New("trajectories not in opening order")
		}
		if _, dup := tt.index[s.key]; dup {
			return errors.New("duplicate trajectory key")
		}
		*tt.at(tt.grow()) = s
		tt.index[s.key] = uint32(j)
	}
	if r.err != nil {
		return nil
	}
	tt.n = int(tt.used)
	if uint64(tt.n) != t.stats.Open {
		return errors.New("open trajectory count mismatch")
	}
	if tt.n > t.cfg.maxOpen {
		return errors.New("more open trajectories than max_open_trajectories")
	}
	order := make([]uint32, tt.n)
	for j := range order {
		order[j] = uint32(j)
		tt.pushBack(openList, uint32(j))
	}
	// The activity list is in lastClock order; among equal clocks the
	// order does not matter (they expire together).
	slices.SortStableFunc(order, func(a, b uint32) int { return cmp.Compare(tt.at(a).lastClock, tt.at(b).lastClock) })
	for _, j := range order {
		tt.pushBack(lruList, j)
	}
	return nil
}

type enc struct{ b []byte }

func (w *enc) u(v uint64) { w.b = binary.AppendUvarint(w.b, v) }
func (w *enc) i(v int64)  { w.b = binary.AppendVarint(w.b, v) }
func (w *enc) bool(v bool) {
	if v {
		w.b = append(w.b, 1)
	} else {
		w.b = append(w.b, 0)
	}
}
func (w *enc) str(s string) { w.u(uint64(len(s))); w.b = append(w.b, s...) }
func (w *enc) strs(s []string) {
	w.u(uint64(len(s)))
	for _, x := range s {
		w.str(x)
	}
}

func (w *enc) config(c *TenantConfig) {
	w.bool(c.Features.Trajectory)
	w.bool(c.Features.Diamond)
	w.bool(c.Features.Cluster)
	l := &c.Linker
	w.strs(l.KeyFields)
	w.i(int64(l.Window))
	w.i(int64(l.CloseTimeout))
	w.strs(l.Exceptions)
	w.strs(l.CloseOnDid)
	w.i(int64(l.MaxOpen))
	m := &c.Meter
	w.i(int64(m.Weights.Mass))
	w.i(int64(m.Weights.Persistence))
	w.i(int64(m.Weights.Verification))
	w.i(int64(m.MassSaturation))
	w.i(int64(m.PersistenceSaturation))
	w.i(int64(m.ConfirmerSaturation))
	w.str(m.PercentileTarget)
	w.i(int64(m.MinScore))
	w.i(int64(m.Warmup))
	w.i(int64(m.Window))
	w.bool(m.TieRationing)
	w.bool(m.CreditBudget)
	w.i(int64(c.Perf.MaxPerMinute))
	w.str(c.Perf.OnOverload)
}

type dec struct {
	b   []byte
	err error
}

func (r *dec) fail(msg string) {
	if r.err == nil {
		r.err = errors.New(msg)
	}
	r.b = nil
}

func (r *dec) u() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("truncated or bad uvarint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *dec) i() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("truncated or bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *dec) bool() bool {
	if len(r.b) == 0 || r.b[0] > 1 {
		r.fail("bad bool")
		return false
	}
	v := r.b[0] == 1
	r.b = r.b[1:]
	return v
}

func (r *dec) bytes(n int) []byte {
	if len(r.b) < n {
		r.fail("truncated")
		return make([]byte, n)
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

// count reads a length whose elements take at least minSize bytes each, and
// refuses one the remaining input cannot hold.
func (r *dec) count(minSize int) int {
	v := r.u()
	if v > uint64(len(r.b)/minSize) {
		r.fail("count exceeds input")
		return 0
	}
	return int(v)
}

func (r *dec) str() string { return string(r.bytes(r.count(1))) }

func (r *dec) strs() []string {
	n := r.count(1)
	out := make([]string, 0, n)
	for j := 0; j < n && r.err == nil; j++ {
		out = append(out, r.str())
	}
	return out
}

func (r *dec) config() TenantConfig {
	var c TenantConfig
	c.Features.Trajectory = r.bool()
	c.Features.Diamond = r.bool()
	c.Features.Cluster = r.bool()
	l := &c.Linker
	l.KeyFields = r.strs()
	l.Window = durationOf(r.i())
	l.CloseTimeout = durationOf(r.i())
	l.Exceptions = r.strs()
	l.CloseOnDid = r.strs()
	l.MaxOpen = int(r.i())
	m := &c.Meter
	m.Weights.Mass = int(r.i())
	m.Weights.Persistence = int(r.i())
	m.Weights.Verification = int(r.i())
	m.MassSaturation = int(r.i())
	m.PersistenceSaturation = durationOf(r.i())
	m.ConfirmerSaturation = int(r.i())
	m.PercentileTarget = r.str()
	m.MinScore = int(r.i())
	m.Warmup = int(r.i())
	m.Window = durationOf(r.i())
	m.TieRationing = r.bool()
	m.CreditBudget = r.bool()
	c.Perf.MaxPerMinute = int(r.i())
	c.Perf.OnOverload = r.str()
	return c
}

func durationOf(v int64) time.Duration { return time.Duration(v) }
