package derive

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/loglineos/loglineos/internal/span"
)

// ErrBadInput is wrapped by Step's errors: an input the engine refuses. A
// refused input leaves the engine unchanged.
var ErrBadInput = errors.New("derive: bad input")

// InputKind says what a ledger record is to the derivation.
type InputKind uint8

// Input kinds.
const (
	KindSpan   InputKind = iota + 1 // a span (validated, When valid)
	KindTick                        // a server clock tick; applies to every tenant
	KindConfig                      // a tenant configuration change
)

// Input is one ledger record, in ledger order.
type Input struct {
	// Seq is the record's ledger sequence number; it must increase from one
	// input to the next.
	Seq  uint64
	Kind InputKind
	// Span is the span of a KindSpan record. It must have WhenOK set and a
	// non-empty Tenant. The engine may keep references to its strings.
	Span *span.Span
	// Tick is the time of a KindTick record.
	Tick time.Time
	// Tenant and Config make a KindConfig record: Config applies to Tenant
	// from this record on. A nil Config returns the tenant to the engine's
	// default configuration.
	Tenant string
	Config *TenantConfig
}

// Config configures an Engine. The zero Config is valid.
type Config struct {
	// Default is the configuration of every tenant that has no KindConfig
	// record in force; nil means DefaultTenantConfig().
	Default *TenantConfig
	// Rules are the bundle's pipeline and validators the derivation runs
	// (see Rules); nil means the standard bundle's (StandardRules).
	Rules *Rules
}

// Engine is the derivation: a deterministic state machine over ledger
// records (see the package documentation). The zero Engine is ready to use
// with DefaultTenantConfig. An Engine is not safe for concurrent use.
type Engine struct {
	ready    bool
	rules    *Rules
	kern     *kernels
	def      *compiled
	tenants  []*tenant // sorted by name
	byName   map[string]*tenant
	last     *tenant // the tenant of the previous span, a lookup shortcut
	started  bool
	lastSeq  uint64
	haveTick bool
	tickMax  int64
	keyBuf   []byte   // scratch: composite keys
	idBuf    []byte   // scratch: trajectory id preimages
	exp      []uint32 // scratch: expired slots
}

// noClock is the clock of a tenant that has seen no time yet.
const noClock = math.MinInt64

type tenant struct {
	name   string
	cfg    *compiled
	custom bool // cfg came from a KindConfig record
	clock  int64
	traj   trajTable
	meter  meter
	guard  guard
	stats  Stats
}

// Stats are cumulative counters of one tenant, for metrics and summaries.
// They are part of the engine state (snapshots keep them).
type Stats struct {
	Spans    uint64 // spans seen
	Excepted uint64 // spans matching an exception, never linked
	Unkeyed  uint64 // spans with an empty key field, never linked
	Unlinked uint64 // spans seen while the linking pipeline's guard did not hold
	Linked   uint64 // spans linked (= trajectory_edge derived)
	Opened   uint64 // trajectories opened
	Open     uint64 // trajectories open now
	Timeout  uint64 // trajectories closed with reason timeout
	Rule     uint64 // trajectories closed with reason rule
	Evicted  uint64 // trajectories closed with reason evicted
	Scored   uint64 // trajectories scored (= closed)
	// Candidates counts the scores the meter flagged while features.diamond
	// was on (whether or not the guardrail then shed the event).
	Candidates uint64
	// Histogram counts every score ever given, by score.
	Histogram [NumScores]uint64
	// Shed counts shed events by type (index EventType-1).
	Shed [numSheddable]uint64
	// LastThreshold is the meter threshold of the latest score decided
	// against a non-empty window, -1 if none; LastThresholdSeq is the seq of
	// the record that caused it.
	LastThreshold    int
	LastThresholdSeq uint64
}

// New returns an Engine whose tenants default to cfg.Default.
func New(cfg Config) (*Engine, error) {
	e := &Engine{}
	def := DefaultTenantConfig()
	if cfg.Default != nil {
		def = *cfg.Default
	}
	k, err := compile(def)
	if err != nil {
		return nil, err
	}
	rules := cfg.Rules
	if rules == nil {
		if rules, err = StandardRules(); err != nil {
			return nil, err
		}
	}
	if err := e.setup(k, rules); err != nil {
		return nil, err
	}
	return e, nil
}

func (e *Engine) setup(def *compiled, rules *Rules) error {
	e.ready = true
	e.rules = rules
	e.kern = &kernels{shapes: newEventShapes(rules)}
	e.def = def
	e.tenants = nil
	e.byName = make(map[string]*tenant)
	e.last = nil
	e.started, e.lastSeq = false, 0
	e.haveTick, e.tickMax = false, 0
	return e.bind(def)
}

func (e *Engine) init() {
	if !e.ready {
		k, err := compile(DefaultTenantConfig())
		if err != nil {
			panic("derive: default config invalid: " + err.Error()) // a bug, caught by tests
		}
		rules, err := StandardRules()
		if err == nil {
			err = e.setup(k, rules)
		}
		if err != nil {
			panic("derive: standard rules: " + err.Error()) // a bug, caught by tests
		}
	}
}

// Step applies one ledger record and appends the events it derives to dst.
// It is a pure function of the engine state and in: no clock, no randomness,
// no map order. On error (ErrBadInput) the state is unchanged and dst is
// returned as it was.
func (e *Engine) Step(dst []Event, in Input) ([]Event, error) {
	e.init()
	var k *compiled
	switch {
	case e.started && in.Seq <= e.lastSeq:
		return dst, fmt.Errorf("%w: seq %d after %d: sequence numbers must increase", ErrBadInput, in.Seq, e.lastSeq)
	case in.Kind == KindSpan:
		switch {
		case in.Span == nil:
			return dst, fmt.Errorf("%w: seq %d: span record without a span", ErrBadInput, in.Seq)
		case !in.Span.WhenOK:
			return dst, fmt.Errorf("%w: seq %d: span %q has no valid when", ErrBadInput, in.Seq, in.Span.ID)
		case in.Span.Tenant == "":
			return dst, fmt.Errorf("%w: seq %d: span %q has no tenant", ErrBadInput, in.Seq, in.Span.ID)
		}
	case in.Kind == KindTick:
	case in.Kind == KindConfig:
		if in.Tenant == "" {
			return dst, fmt.Errorf("%w: seq %d: config record without a tenant", ErrBadInput, in.Seq)
		}
		if in.Config != nil {
			var err error
			if k, err = compile(*in.Config); err == nil {
				err = e.bind(k)
			}
			if err != nil {
				return dst, fmt.Errorf("%w: seq %d: config of tenant %q: %w", ErrBadInput, in.Seq, in.Tenant, err)
			}
		}
	default:
		return dst, fmt.Errorf("%w: seq %d: unknown input kind %d", ErrBadInput, in.Seq, in.Kind)
	}
	e.started, e.lastSeq = true, in.Seq
	switch in.Kind {
	case KindSpan:
		dst = e.stepSpan(dst, in.Seq, in.Span)
	case KindTick:
		dst = e.stepTick(dst, in.Seq, unixNano(in.Tick))
	case KindConfig:
		dst = e.stepConfig(dst, in.Seq, in.Tenant, k)
	}
	return dst, nil
}

// unixNano returns t in Unix nanoseconds, saturated to the int64 range
// (years 1678 to 2262), never noClock.
func unixNano(t time.Time) int64 {
	const nsPerSec = 1_000_000_000
	const maxSec = math.MaxInt64 / nsPerSec
	const minSec = math.MinInt64 / nsPerSec
	s := t.Unix()
	switch {
	case s > maxSec || (s == maxSec && int64(t.Nanosecond()) > math.MaxInt64%nsPerSec):
		return math.MaxInt64
	case s < minSec:
		return noClock + 1
	}
	return max(t.UnixNano(), noClock+1)
}

func addSat(a, b int64) int64 { // b >= 0
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

func (e *Engine) tenant(name string) *tenant {
	if e.last != nil && e.last.name == name {
		return e.last
	}
	t := e.byName[name]
	if t == nil {
		name = strings.Clone(name) // not a substring of a span's text
		t = &tenant{name: name, cfg: e.def, clock: noClock}
		t.stats.LastThreshold = -1
		t.traj.init()
		t.meter.reconfigure(t.cfg)
		if e.haveTick {
			t.clock = e.tickMax
		}
		e.byName[name] = t
		i, _ := slices.BinarySearchFunc(e.tenants, name, func(t *tenant, n string) int { return strings.Compare(t.name, n) })
		e.tenants = slices.Insert(e.tenants, i, t)
	}
	e.last = t
	return t
}

func (e *Engine) stepSpan(dst []Event, seq uint64, sp *span.Span) []Event {
	t := e.tenant(sp.Tenant)
	when := unixNano(sp.When)
	t.stats.Spans++
	dst = e.advance(dst, t, max(t.clock, when), seq)
	k := t.cfg
	if !k.linkOn {
		t.stats.Unlinked++
		return dst
	}
	for i := range k.exceptions {
		m := &k.exceptions[i]
		if m.match(fieldValue(sp, m.field)) {
			t.stats.Excepted++
			return dst
		}
	}
	return e.link(dst, t, sp, when, seq)
}

func (e *Engine) stepTick(dst []Event, seq uint64, tick int64) []Event {
	if !e.haveTick || tick > e.tickMax {
		e.haveTick, e.tickMax = true, tick
	}
	for _, t := range e.tenants {
		dst = e.advance(dst, t, max(t.clock, e.tickMax), seq)
	}
	return dst
}

func (e *Engine) stepConfig(dst []Event, seq uint64, name string, k *compiled) []Event {
	t := e.tenant(name)
	old := t.cfg
	t.custom = k != nil
	if k == nil {
		k = e.def
	}
	t.cfg = k
	t.meter.reconfigure(k)
	if t.clock != noClock {
		t.meter.advance(t.clock)
	}
	if !slices.Equal(old.src.Linker.KeyFields, k.src.Linker.KeyFields) && t.traj.n > 0 {
		// Keys built from the old fields cannot be compared with keys built
		// from the new ones: every open trajectory closes by rule.
		exp := e.exp[:0]
		for i := t.traj.head[openList]; i != noSlot; i = t.traj.at(i).link[openList][1] {
			exp = append(exp, i)
		}
		dst = e.closeAll(dst, t, exp, ReasonRule, seq)
	}
	// A lower max_open_trajectories applies at once.
	return e.evict(dst, t, t.traj.n-k.maxOpen, seq)
}

// evict closes the n oldest open trajectories of t (by opening, which is
// ledger order) with reason evicted.
func (e *Engine) evict(dst []Event, t *tenant, n int, seq uint64) []Event {
	for ; n > 0 && t.traj.head[openList] != noSlot; n-- {
		dst = e.close(dst, t, t.traj.head[openList], ReasonEvicted, seq)
	}
	return dst
}

// advance moves t's clock to clock (never backwards) and derives what that
// causes: the meter's window slides, the guardrail's minute may roll over
// (reporting what it shed), and trajectories past their deadline close.
func (e *Engine) advance(dst []Event, t *tenant, clock int64, seq uint64) []Event {
	if clock > t.clock {
		t.clock = clock
	}
	t.meter.advance(t.clock)
	dst = t.guard.roll(dst, t, seq)
	return e.expire(dst, t, seq)
}

func (k *compiled) deadline(s *traj) int64 {
	return min(addSat(s.lastClock, k.timeout), addSat(s.openClock, k.window))
}

// expire closes, with reason timeout, every open trajectory of t whose
// deadline is before t's clock, in (deadline, id, key) order.
func (e *Engine) expire(dst []Event, t *tenant, seq uint64) []Event {
	tt := &t.traj
	if tt.n == 0 {
		return dst
	}
	k := t.cfg
	exp := e.exp[:0]
	for i := tt.head[lruList]; i != noSlot; i = tt.at(i).link[lruList][1] {
		s := tt.at(i)
		if addSat(s.lastClock, k.timeout) >= t.clock {
			break
		}
		s.flags |= markBit
		exp = append(exp, i)
	}
	for i := tt.head[openList]; i != noSlot; i = tt.at(i).link[openList][1] {
		s := tt.at(i)
		if addSat(s.openClock, k.window) >= t.clock {
			break
		}
		if s.flags&markBit == 0 {
			s.flags |= markBit
			exp = append(exp, i)
		}
	}
	for _, i := range exp {
		tt.at(i).flags &^= markBit
	}
	if len(exp) == 0 {
		return dst
	}
	return e.closeAll(dst, t, exp, ReasonTimeout, seq)
}

// closeAll closes the slots in exp in (deadline, id, key) order.
func (e *Engine) closeAll(dst []Event, t *tenant, exp []uint32, reason CloseReason, seq uint64) []Event {
	k, tt := t.cfg, &t.traj
	if len(exp) > 1 {
		slices.SortFunc(exp, func(a, b uint32) int {
			sa, sb := tt.at(a), tt.at(b)
			if da, db := k.deadline(sa), k.deadline(sb); da != db {
				if da < db {
					return -1
				}
				return 1
			}
			if c := bytes.Compare(sa.id[:], sb.id[:]); c != 0 {
				return c
			}
			return strings.Compare(sa.key, sb.key)
		})
	}
	for _, i := range exp {
		dst = e.close(dst, t, i, reason, seq)
	}
	e.exp = exp[:0]
	return dst
}

func fieldValue(sp *span.Span, f spanField) string {
	switch f {
	case fieldID:
		return sp.ID
	case fieldTenant:
		return sp.Tenant
	case fieldWho:
		return sp.Who
	case fieldDid:
		return sp.Did
	case fieldThis:
		return sp.This
	case fieldStatus:
		return sp.Status
	case fieldWhen:
		return sp.WhenRaw
	}
	return ""
}

// link adds sp to the open trajectory of its key, opening one if there is
// none, and derives the edge (and the rule close, if sp's did is a closing
// one).
func (e *Engine) link(dst []Event, t *tenant, sp *span.Span, when int64, seq uint64) []Event {
	k := t.cfg
	tt := &t.traj
	key, i, found, ok := e.lookup(t, sp)
	if !ok {
		t.stats.Unkeyed++
		return dst
	}
	var s *traj
	var pos uint32
	if found {
		s = tt.at(i)
		pos = s.count
		if s.count < math.MaxUint32 {
			s.count++
		}
		s.lastClock = t.clock
		s.minWhen = min(s.minWhen, when)
		s.maxWhen = max(s.maxWhen, when)
		tt.moveToBack(lruList, i)
	} else {
		if tt.n >= k.maxOpen {
			dst = e.evict(dst, t, tt.n-k.maxOpen+1, seq)
		}
		i, s = e.open(t, sp, key, when)
	}
	if sp.Status == "confirmed" {
		s.confirm(sp.ConfirmedBy)
	}
	t.stats.Linked++
	dst = t.emit(dst, Event{
		Type:       EdgeEvent,
		Trajectory: s.id,
		Position:   pos,
		Tenant:     t.name,
		TS:         t.clock,
		Seq:        seq,
		SrcSpanID:  sp.ID,
		This:       sp.This,
	})
	if len(k.closeOnDid) > 0 {
		if _, ok := k.closeOnDid[sp.Did]; ok {
			dst = e.close(dst, t, i, ReasonRule, seq)
		}
	}
	return dst
}

// lookup finds the open trajectory of sp's key: its slot if found, else
// the key a new trajectory would have. ok is false when a key field of sp
// is empty (the span is not linked).
func (e *Engine) lookup(t *tenant, sp *span.Span) (key string, i uint32, found, ok bool) {
	k, tt := t.cfg, &t.traj
	if len(k.keyFields) == 1 {
		key = fieldValue(sp, k.keyFields[0])
		if key == "" {
			return "", 0, false, false
		}
		i, found = tt.index[key]
		return key, i, found, true
	}
	// Composite key: each value as uvarint(len) || bytes.
	b := e.keyBuf[:0]
	for _, f := range k.keyFields {
		v := fieldValue(sp, f)
		if v == "" {
			e.keyBuf = b
			return "", 0, false, false
		}
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	e.keyBuf = b
	i, found = tt.index[string(b)]
	if !found {
		key = string(b)
	}
	return key, i, found, true
}

// open opens a trajectory for sp under key and returns its slot.
func (e *Engine) open(t *tenant, sp *span.Span, key string, when int64) (uint32, *traj) {
	tt := &t.traj
	if len(t.cfg.keyFields) == 1 {
		// The span's strings are substrings of its whole text: keeping
		// one would keep the text alive as long as the trajectory.
		key = strings.Clone(key)
	}
	i := tt.alloc()
	s := tt.at(i)
	s.id = e.trajectoryID(t.name, t.cfg, sp)
	s.key = key
	s.openClock, s.lastClock = t.clock, t.clock
	s.minWhen, s.maxWhen = when, when
	s.count = 1
	tt.index[key] = i
	tt.pushBack(lruList, i)
	tt.pushBack(openList, i)
	tt.n++
	t.stats.Opened++
	t.stats.Open++
	return i, s
}

// confirm counts a confirmed span of s, and remembers its confirmers up to
// MaxConfirmerSaturation distinct ones.
func (s *traj) confirm(by []string) {
	confirmed := false
	for _, c := range by {
		if c == "" {
			continue
		}
		confirmed = true
		if n := s.nconf(); n < MaxConfirmerSaturation {
			h := fnv64(c)
			if !slices.Contains(s.confirmers[:n], h) {
				s.confirmers[n] = h
				s.flags++
			}
		}
	}
	if confirmed && s.confirmed < math.MaxUint32 {
		s.confirmed++
	}
}

// close derives trajectory_closed, trajectory_quality and, if the meter says
// so, diamond_candidate for slot i, and frees it.
func (e *Engine) close(dst []Event, t *tenant, i uint32, reason CloseReason, seq uint64) []Event {
	k := t.cfg
	s := t.traj.at(i)
	ev := Event{Type: ClosedEvent, Reason: reason, Trajectory: s.id, Tenant: t.name, TS: t.clock, Seq: seq, Lifetime: max(0, t.clock-s.minWhen)}
	dst = t.emit(dst, ev)
	c := scoreOf(measures{
		spans:      uint64(s.count),
		persist:    uint64(s.maxWhen) - uint64(s.minWhen),
		confirmed:  uint64(s.confirmed),
		confirmers: uint64(s.nconf()),
	}, k)
	t.traj.remove(i)
	switch reason {
	case ReasonTimeout:
		t.stats.Timeout++
	case ReasonRule:
		t.stats.Rule++
	case ReasonEvicted:
		t.stats.Evicted++
	}
	t.stats.Open--
	ks := e.kern
	ks.t, ks.c, ks.thr, ks.tie = t, c, -1, 0
	q, ok := e.check(e.rules.score, t, &ev)
	if !ok {
		return dst
	}
	ev.Type, ev.Reason = QualityEvent, 0
	ev.Components = Components{
		Mass:         memberInt(q, 0, "components", "mass"),
		Persistence:  memberInt(q, 0, "components", "persistence"),
		Verification: memberInt(q, 0, "components", "verification"),
	}
	ev.Score = min(max(memberInt(q, ev.Components.Mass+ev.Components.Persistence+ev.Components.Verification, "score"), 0), NumScores-1)
	t.stats.Scored++
	t.stats.Histogram[ev.Score]++
	dst = t.emit(dst, ev)
	return e.decide(dst, t, ev)
}

// decide runs the meter on the trajectory_quality event ev: the credit
// accrues, the meter's validators say whether the score is eligible, the
// credit budget whether it is a candidate; then the score enters the
// window.
func (e *Engine) decide(dst []Event, t *tenant, ev Event) []Event {
	k, m := t.cfg, &t.meter
	ks := e.kern
	ks.t, ks.thr, ks.phi, ks.tie = t, -1, 0, 0
	if m.n > 0 {
		ks.thr, ks.phi = m.threshold(k.qpm)
		t.stats.LastThreshold, t.stats.LastThresholdSeq = ks.thr, ev.Seq
	}
	m.accrue(k)
	if d, ok := e.check(e.rules.meter, t, &ev); ok && (!k.credit || m.spend()) {
		t.stats.Candidates++
		ev.Type, ev.Components = CandidateEvent, Components{}
		ev.Threshold = memberInt(d, max(ks.thr, 0), "threshold")
		dst = t.emit(dst, ev)
	}
	m.add(ev.Score)
	return dst
}

// trajectoryID is the first 15 bytes of SHA-256 over the preimage
//
//	item("logline/trajectory/v1") item(tenant) uvarint(len(key_fields))
//	{item(field name) item(field value)}... item(first span id)
//
// where item(x) = uvarint(len(x)) || x.
func (e *Engine) trajectoryID(tenant string, k *compiled, sp *span.Span) TrajectoryID {
	b := e.idBuf[:0]
	item := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	item("logline/trajectory/v1")
	item(tenant)
	b = binary.AppendUvarint(b, uint64(len(k.keyFields)))
	names := fieldNames()
	for _, f := range k.keyFields {
		item(names[f])
		item(fieldValue(sp, f))
	}
	item(sp.ID)
	e.idBuf = b
	sum := sha256.Sum256(b)
	var id TrajectoryID
	copy(id[:], sum[:])
	return id
}

// fnv64 is FNV-1a, 64 bits: the identity of a confirmer inside a trajectory.
func fnv64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// Tenants returns the names of the tenants the engine has seen, sorted.
func (e *Engine) Tenants() []string {
	out := make([]string, len(e.tenants))
	for i, t := range e.tenants {
		out[i] = t.name
	}
	return out
}

// Stats returns the counters of tenant (zero Stats, LastThreshold -1, if the
// engine has not seen it).
func (e *Engine) Stats(tenant string) Stats {
	if t := e.byName[tenant]; t != nil {
		return t.stats
	}
	return Stats{LastThreshold: -1}
}

// Percentiles returns the nearest-rank 50th, 95th and 99th percentiles of the
// scores in tenant's meter window (quality.pXX.current); zeros when the
// window is empty.
func (e *Engine) Percentiles(tenant string) (p50, p95, p99 int) {
	t := e.byName[tenant]
	if t == nil {
		return 0, 0, 0
	}
	return t.meter.percentile(50), t.meter.percentile(95), t.meter.percentile(99)
}

// Threshold returns the meter's current threshold for tenant: the score at
// its percentile_target of the window (what a score must reach to rank at
// the target); ok is false while the window is empty.
func (e *Engine) Threshold(tenant string) (threshold int, ok bool) {
	t := e.byName[tenant]
	if t == nil || t.meter.n == 0 {
		return 0, false
	}
	th, _ := t.meter.threshold(t.cfg.qpm)
	return th, true
}

// Window returns the scores in tenant's meter window, counted by score
// (what the threshold is taken from), and their number.
func (e *Engine) Window(tenant string) (hist [NumScores]uint64, n uint64) {
	if t := e.byName[tenant]; t != nil {
		return t.meter.total, t.meter.n
	}
	return hist, 0
}

// Clock returns tenant's derivation clock; ok is false while the tenant has
// seen no time.
func (e *Engine) Clock(tenant string) (clock time.Time, ok bool) {
	t := e.byName[tenant]
	if t == nil || t.clock == noClock {
		return time.Time{}, false
	}
	return time.Unix(0, t.clock).UTC(), true
}

// LastSeq returns the seq of the last record applied; ok is false before the
// first. It is the durable cursor to persist with a snapshot.
func (e *Engine) LastSeq() (seq uint64, ok bool) { return e.lastSeq, e.started }

// TenantConfig returns the configuration in force for tenant.
func (e *Engine) TenantConfig(tenant string) TenantConfig {
	e.init()
	if t := e.byName[tenant]; t != nil {
		return cloneConfig(t.cfg.src)
	}
	return cloneConfig(e.def.src)
}
