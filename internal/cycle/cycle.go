// Package cycle runs the neutral cycle against a ledger: it reads records in
// ledger order from its own durable cursor, steps the pure derivation engine
// (internal/derive) with each, and keeps the derived events of every tenant,
// with an index by trajectory, in a store under <data>/derived.
//
// The store is derived data (see store.go for its files). Events are
// appended per tenant as they are derived and made visible batch by batch;
// the engine's state is snapshotted now and then together with the length of
// every file and the cursor; on restart the files are cut back to the
// snapshot and the engine resumes from it, deriving again what followed,
// which gives the same bytes (derivation is deterministic). The snapshot
// also records the policy fingerprint the store was derived under: when the
// bundle's policies change, the store is rebuilt from the start of the
// ledger, so that the derived stream is always a function of (the records,
// the policies). It records a checksum of every file as well: a file found
// damaged at open also rebuilds the store, and Verify compares a store with
// a fresh derivation byte for byte.
package cycle

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/loglineos/loglineos/internal/atomicfile"
	"github.com/loglineos/loglineos/internal/derive"
	"github.com/loglineos/loglineos/internal/ledger"
	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
	"github.com/loglineos/loglineos/internal/span"
	"github.com/loglineos/loglineos/internal/tenant"
)

// Source is the ledger as the cycle reads it.
type Source interface {
	NewReader(from uint64) (*ledger.Reader, error)
	Next() uint64
}

// Sink is given, in ledger order, every record the runner applies and the
// events derived from it (routers run there). Sync(next) is called before a
// snapshot makes the cursor durable at next: what the sink did for the
// records below next must then be durable, for they are not offered again.
// After a restart the records past the last snapshot are offered again.
type Sink interface {
	Record(rec ledger.Record, evs []derive.Event) error
	Sync(next uint64) error
}

// Config configures a Runner. Dir, Default and Fingerprint are required;
// every other zero field takes the default named in its comment.
type Config struct {
	// Dir is the store's directory, normally <data>/derived.
	Dir string
	// Sink, if set, is given every record and its events (see Sink).
	Sink Sink
	// Observe, if set, sees the events derived from each record as they
	// are derived (for metrics); it must not keep evs.
	Observe func(evs []derive.Event)
	// Default is the configuration of tenants without a config record: the
	// bundle's policies.
	Default derive.TenantConfig
	// Rules are the bundle's pipeline and validators the derivation runs;
	// nil means the standard bundle's (see derive.Config).
	Rules *derive.Rules
	// Fingerprint names the policies (e.g. the bundle hash); a store derived
	// under another is rebuilt.
	Fingerprint string
	// BatchRecords bounds the records applied per store batch
	// (DefaultBatchRecords), and a smaller batch waits up to FlushDelay for
	// more before it is written (DefaultFlushDelay).
	BatchRecords int
	FlushDelay   time.Duration
	// SnapshotEvery and SnapshotInterval say how often the engine state is
	// saved (DefaultSnapshotEvery records, DefaultSnapshotInterval).
	SnapshotEvery    uint64
	SnapshotInterval time.Duration
	// While ingest is appending and derivation is less than LowWater
	// records behind, the runner uses at most Share of the time (it sleeps
	// between batches), leaving the CPU to ingest; further behind it runs
	// flat out. Derivation is background work: this changes when events are
	// derived, never which. Share 0 or 1 (the default) never holds back.
	Share    float64
	LowWater uint64
	// MaxOpenFiles bounds the tenant files the store keeps open at once, two
	// a tenant (DefaultMaxOpenFiles); the least recently used are closed to
	// open others. The trajectory index files (256 at most) are open
	// besides.
	MaxOpenFiles int
	// Logger gets the runner's warnings and errors. Nil: discarded.
	Logger *slog.Logger
}

// Defaults of Config.
const (
	DefaultBatchRecords     = 4096
	DefaultFlushDelay       = 20 * time.Millisecond
	DefaultSnapshotEvery    = 100_000
	DefaultSnapshotInterval = 5 * time.Second
	// DefaultMaxOpenFiles: with the 256 trajectory index files, the store
	// holds at most 384 descriptors, which leaves most of a 1024 limit to
	// the ledger and the connections.
	DefaultMaxOpenFiles = 128
)

// withDefaults returns c with its zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.BatchRecords <= 0 {
		c.BatchRecords = DefaultBatchRecords
	}
	if c.FlushDelay == 0 {
		c.FlushDelay = DefaultFlushDelay
	}
	if c.SnapshotEvery == 0 {
		c.SnapshotEvery = DefaultSnapshotEvery
	}
	if c.SnapshotInterval <= 0 {
		c.SnapshotInterval = DefaultSnapshotInterval
	}
	if c.MaxOpenFiles <= 0 {
		c.MaxOpenFiles = DefaultMaxOpenFiles
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Reasons for rebuilding the derived store from the start of the ledger at
// open (Runner.Rebuilt).
const (
	RebuildPolicies = "policies" // derived under other policies
	RebuildFormat   = "format"   // written by a version with another snapshot format
	RebuildSnapshot = "snapshot" // the snapshot is unreadable or damaged
	RebuildFiles    = "files"    // a derived file differs from the snapshot's checksum
)

// Runner is the running cycle.
type Runner struct {
	cfg Config
	src Source
	log *slog.Logger
	st  *store

	mu  sync.Mutex // guards eng
	eng *derive.Engine

	cursor   atomic.Uint64 // next ledger seq to derive (committed)
	notifyMu sync.Mutex
	notifyCh chan struct{}
	events   atomic.Uint64 // events derived since open
	err      atomic.Pointer[error]
	rebuilt  string // why open rebuilt the store, or ""
}

// Open opens (or creates) the store and restores the engine from its last
// snapshot. A store derived under other policies is emptied first.
func Open(src Source, cfg Config) (*Runner, error) {
	cfg = cfg.withDefaults()
	r := &Runner{cfg: cfg, src: src, log: cfg.Logger, notifyCh: make(chan struct{})}
	if err := r.openStore(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Runner) snapshotPath() string { return filepath.Join(r.cfg.Dir, "snapshot") }

func (r *Runner) openStore() error {
	def := r.cfg.Default
	eng, err := derive.New(derive.Config{Default: &def, Rules: r.cfg.Rules})
	if err != nil {
		return err
	}
	sn, err := r.usableSnapshot(eng)
	var re *rebuildError
	switch {
	case errors.As(err, &re):
		r.log.Warn("rebuilding the derived store from the start of the ledger", "reason", re.reason, "err", re.err)
		r.rebuilt = re.reason
		if err := os.RemoveAll(r.cfg.Dir); err != nil {
			return err
		}
		if eng, err = derive.New(derive.Config{Default: &def, Rules: r.cfg.Rules}); err != nil {
			return err
		}
	case err != nil:
		return err
	}
	r.eng = eng
	st, err := openStoreFiles(r.cfg.Dir, r.cfg.MaxOpenFiles, nil)
	if err != nil {
		return err
	}
	if sn == nil {
		sn = &snapshot{fingerprint: r.cfg.Fingerprint}
	}
	if err := st.restoreLengths(sn.tenants, sn.buckets); err != nil {
		st.close()
		return err
	}
	r.st = st
	r.cursor.Store(sn.cursor)
	return nil
}

// rebuildError says why a store cannot be resumed.
type rebuildError struct {
	reason string
	err    error
}

func (e *rebuildError) Error() string { return e.reason + ": " + e.err.Error() }

func (e *rebuildError) Unwrap() error { return e.err }

// usableSnapshot reads the snapshot, restores eng from it and checks the
// files against it. It returns the snapshot (nil when there is none); a
// *rebuildError when the store must be rebuilt; another error when it
// cannot be opened.
func (r *Runner) usableSnapshot(eng *derive.Engine) (*snapshot, error) {
	b, err := os.ReadFile(r.snapshotPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	sn, err := decodeSnapshot(b)
	if errors.Is(err, errOldSnapshot) {
		return nil, &rebuildError{RebuildFormat, err}
	}
	if err != nil {
		return nil, &rebuildError{RebuildSnapshot, err}
	}
	if sn.fingerprint != r.cfg.Fingerprint {
		return nil, &rebuildError{RebuildPolicies, errors.New("the policies changed")}
	}
	if err := eng.UnmarshalBinary(sn.engine); err != nil {
		return nil, &rebuildError{RebuildSnapshot, err}
	}
	if err := checkFiles(r.cfg.Dir, sn); err != nil {
		return nil, &rebuildError{RebuildFiles, err}
	}
	return sn, nil
}

// Rebuilt returns why Open rebuilt the store from the start of the ledger
// (RebuildPolicies, RebuildFormat, RebuildSnapshot or RebuildFiles), or ""
// if it did not.
func (r *Runner) Rebuilt() string { return r.rebuilt }

// OpenFiles returns the number of tenant files the store has open.
func (r *Runner) OpenFiles() int { return 2 * r.st.files.open() }

// snapshot is the engine state with the cursor and the store's lengths and
// checksums.
type snapshot struct {
	fingerprint string
	cursor      uint64
	tenants     []snapTenant
	buckets     [256]snapFile
	engine      []byte
	// engineAt is the offset of engine in the encoded snapshot.
	engineAt int
}

// snapshotMagic starts a snapshot, format 2:
//
//	magic, uvarint-prefixed fingerprint, cursor (8 bytes),
//	tenant count (4), per tenant in name order: uvarint-prefixed name,
//	  event count (8), events length (8), CRC-32C of the events file (4),
//	  CRC-32C of the index file (4);
//	per trajectory bucket 00..ff: length (8), CRC-32C (4);
//	the engine state (derive's MarshalBinary), SHA-256 of all before (32).
//
// Integers are big-endian. A snapshot of another format is not read: the
// store is rebuilt.
const snapshotMagic = "logline derived snapshot v2\n"

// errOldSnapshot is a snapshot of an earlier format (the store is rebuilt;
// it is not damage).
var errOldSnapshot = errors.New("cycle: derived snapshot of an earlier format")

func (sn *snapshot) encode() []byte {
	b := []byte(snapshotMagic)
	b = appendStr(b, sn.fingerprint)
	b = binary.BigEndian.AppendUint64(b, sn.cursor)
	b = binary.BigEndian.AppendUint32(b, uint32(len(sn.tenants)))
	for _, t := range sn.tenants {
		b = appendStr(b, t.tenant)
		b = binary.BigEndian.AppendUint64(b, t.n)
		b = binary.BigEndian.AppendUint64(b, uint64(t.evLen))
		b = binary.BigEndian.AppendUint32(b, t.evSum)
		b = binary.BigEndian.AppendUint32(b, t.ixSum)
	}
	for _, f := range sn.buckets {
		b = binary.BigEndian.AppendUint64(b, uint64(f.length))
		b = binary.BigEndian.AppendUint32(b, f.sum)
	}
	b = append(b, sn.engine...)
	sum := sha256.Sum256(b)
	return append(b, sum[:]...)
}

func decodeSnapshot(b []byte) (*snapshot, error) {
	if bytes.HasPrefix(b, []byte("logline derived snapshot v1\n")) {
		return nil, errOldSnapshot
	}
	if len(b) < len(snapshotMagic)+32 || string(b[:len(snapshotMagic)]) != snapshotMagic {
		return nil, errors.New("not a derived snapshot")
	}
	body, sum := b[:len(b)-32], b[len(b)-32:]
	if s := sha256.Sum256(body); !bytes.Equal(s[:], sum) {
		return nil, errors.New("derived snapshot checksum mismatch")
	}
	p := body[len(snapshotMagic):]
	bad := errors.New("truncated derived snapshot")
	str := func() (string, bool) {
		n, k := binary.Uvarint(p)
		if k <= 0 || uint64(len(p)-k) < n {
			return "", false
		}
		s := string(p[k : k+int(n)])
		p = p[k+int(n):]
		return s, true
	}
	u64 := func() (uint64, bool) {
		if len(p) < 8 {
			return 0, false
		}
		v := binary.BigEndian.Uint64(p)
		p = p[8:]
		return v, true
	}
	u32 := func() (uint32, bool) {
		if len(p) < 4 {
			return 0, false
		}
		v := binary.BigEndian.Uint32(p)
		p = p[4:]
		return v, true
	}
	var sn snapshot
	var ok bool
	if sn.fingerprint, ok = str(); !ok {
		return nil, bad
	}
	if sn.cursor, ok = u64(); !ok {
		return nil, bad
	}
	nt, ok := u32()
	if !ok {
		return nil, bad
	}
	for range nt {
		var t snapTenant
		var ev uint64
		if t.tenant, ok = str(); !ok {
			return nil, bad
		}
		if t.n, ok = u64(); !ok {
			return nil, bad
		}
		if ev, ok = u64(); !ok || ev > math.MaxInt64 || t.n > math.MaxInt64/8 {
			return nil, bad
		}
		t.evLen = int64(ev)
		if t.evSum, ok = u32(); !ok {
			return nil, bad
		}
		if t.ixSum, ok = u32(); !ok {
			return nil, bad
		}
		sn.tenants = append(sn.tenants, t)
	}
	for i := range sn.buckets {
		v, ok := u64()
		if !ok || v > math.MaxInt64 {
			return nil, bad
		}
		sn.buckets[i].length = int64(v)
		if sn.buckets[i].sum, ok = u32(); !ok {
			return nil, bad
		}
	}
	sn.engine = p
	sn.engineAt = len(body) - len(p)
	return &sn, nil
}

// writeSnapshot syncs the store and records the engine state at cursor.
func (r *Runner) writeSnapshot(cursor uint64) error {
	if err := r.st.sync(); err != nil {
		return err
	}
	r.mu.Lock()
	eng, err := r.eng.MarshalBinary()
	r.mu.Unlock()
	if err != nil {
		return err
	}
	tenants, buckets := r.st.lengths()
	sn := snapshot{fingerprint: r.cfg.Fingerprint, cursor: cursor, tenants: tenants, buckets: buckets, engine: eng}
	return atomicfile.Write(r.snapshotPath(), sn.encode(), 0o644)
}

// Cursor returns the next ledger sequence number to derive: every record
// before it has its events in the store.
func (r *Runner) Cursor() uint64 { return r.cursor.Load() }

// Backlog returns how many durable records are not derived yet.
func (r *Runner) Backlog() uint64 {
	n, c := r.src.Next(), r.cursor.Load()
	if n < c {
		return 0
	}
	return n - c
}

// Err returns the error that stopped the runner, if any.
func (r *Runner) Err() error {
	if p := r.err.Load(); p != nil {
		return *p
	}
	return nil
}

func (r *Runner) notify() {
	r.notifyMu.Lock()
	close(r.notifyCh)
	r.notifyCh = make(chan struct{})
	r.notifyMu.Unlock()
}

// Changed returns a channel closed when the cursor next advances.
func (r *Runner) Changed() <-chan struct{} {
	r.notifyMu.Lock()
	defer r.notifyMu.Unlock()
	return r.notifyCh
}

// Run derives until ctx ends or an error stops it. It returns nil when ctx
// ends, after writing a snapshot.
func (r *Runner) Run(ctx context.Context) error {
	err := r.run(ctx)
	if err != nil && ctx.Err() == nil {
		err = fmt.Errorf("cycle: %w", err)
		r.err.Store(&err)
		r.log.Error("derivation stopped", "err", err)
		r.notify()
		return err
	}
	return nil
}

func (r *Runner) run(ctx context.Context) error {
	rd, err := r.src.NewReader(r.cursor.Load())
	if err != nil {
		return err
	}
	defer rd.Close()
	// The CRC is checked; the leaf hashes are the business of Verify and
	// the proofs, and recomputing them here would double derivation's cost.
	rd.SkipLeafCheck()
	slice, lastNext := time.Now(), r.src.Next()
	var (
		evs      []derive.Event
		line     []byte
		inBatch  int
		sinceSn  uint64
		lastSnap = time.Now()
		next     = r.cursor.Load()
	)
	commit := func(snap bool) error {
		if inBatch == 0 && !snap {
			return nil
		}
		if err := r.st.flush(); err != nil {
			return err
		}
		snap = snap || sinceSn >= r.cfg.SnapshotEvery || time.Since(lastSnap) >= r.cfg.SnapshotInterval
		if snap && sinceSn > 0 {
			if r.cfg.Sink != nil {
				if err := r.cfg.Sink.Sync(next); err != nil {
					return fmt.Errorf("sink: %w", err)
				}
			}
			if err := r.writeSnapshot(next); err != nil {
				return err
			}
			sinceSn, lastSnap = 0, time.Now()
		}
		r.cursor.Store(next)
		inBatch = 0
		r.notify()
		return nil
	}
	var batchStart time.Time
	for {
		rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			// A small batch waits a little for more records before it is
			// written: under a stream of small commits, flushing after
			// each would cost more than deriving them.
			if inBatch > 0 && inBatch < r.cfg.BatchRecords {
				if wait := r.cfg.FlushDelay - time.Since(batchStart); wait > 0 {
					wctx, cancel := context.WithTimeout(ctx, wait)
					err := rd.Wait(wctx)
					cancel()
					if err == nil {
						continue
					}
					if ctx.Err() != nil {
						return commit(true)
					}
				}
			}
			if err := commit(false); err != nil {
				return err
			}
			wctx, cancel := context.WithTimeout(ctx, r.cfg.SnapshotInterval)
			err := rd.Wait(wctx)
			cancel()
			// Time spent waiting for records is not work: the share
			// counts from here.
			slice = time.Now()
			if ctx.Err() != nil {
				return commit(true)
			}
			if errors.Is(err, context.DeadlineExceeded) {
				if err := commit(true); err != nil {
					return err
				}
				continue
			}
			if err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		if evs, err = r.step(evs, rec); err != nil {
			return err
		}
		line = r.st.addEvents(evs, line)
		r.events.Add(uint64(len(evs)))
		if r.cfg.Observe != nil && len(evs) > 0 {
			r.cfg.Observe(evs)
		}
		if r.cfg.Sink != nil {
			if err := r.cfg.Sink.Record(rec, evs); err != nil {
				return fmt.Errorf("sink: seq %d: %w", rec.Seq, err)
			}
		}
		next = rec.Seq + 1
		if inBatch == 0 {
			batchStart = time.Now()
		}
		inBatch++
		sinceSn++
		if inBatch >= r.cfg.BatchRecords {
			if err := commit(false); err != nil {
				return err
			}
			if err := r.yield(ctx, &slice, &lastNext); err != nil {
				return nil
			}
		}
	}
}

// step applies one record to the engine, under the lock readers of the
// engine take.
func (r *Runner) step(evs []derive.Event, rec ledger.Record) ([]derive.Event, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return step(r.eng, evs, rec, r.log)
}

// step applies one record to eng and returns the events it derives. Records
// that are deterministically not derivable (a body that does not decode, a
// span without a valid when under an operator's contract: whatever the
// engine refuses with ErrBadInput) are skipped, and logged; the same records
// are skipped at every replay. A panic of the engine (a bug) is returned as
// an error: the engine's state is then unknown and derivation must stop.
func step(eng *derive.Engine, evs []derive.Event, rec ledger.Record, log *slog.Logger) (_ []derive.Event, err error) {
	defer func() {
		if p := recover(); p != nil {
			log.Error("derivation panicked", "seq", rec.Seq, "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("seq %d: derivation panicked: %v", rec.Seq, p)
		}
	}()
	in, ok := toInput(rec, log)
	if !ok {
		return evs[:0], nil
	}
	evs, err = eng.Step(evs[:0], in)
	if errors.Is(err, derive.ErrBadInput) {
		log.Warn("record not derivable", "seq", rec.Seq, "err", err)
		return evs[:0], nil
	}
	if err != nil {
		return evs[:0], fmt.Errorf("seq %d: %w", rec.Seq, err)
	}
	return evs, nil
}

// yield holds the runner back while ingest is busy and derivation is not
// far behind: after working for a slice of time, it sleeps so that its work
// is Share of the whole.
func (r *Runner) yield(ctx context.Context, slice *time.Time, lastNext *uint64) error {
	share := r.cfg.Share
	if share <= 0 || share >= 1 {
		return nil
	}
	worked := time.Since(*slice)
	if worked < 5*time.Millisecond {
		return nil
	}
	next := r.src.Next()
	busy := next != *lastNext
	*lastNext = next
	if busy && r.Backlog() < r.cfg.LowWater {
		pause := time.Duration(float64(worked) * (1 - share) / share)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
	}
	*slice = time.Now()
	return nil
}

// toInput turns a ledger record into the engine's input.
func toInput(rec ledger.Record, log *slog.Logger) (derive.Input, bool) {
	switch rec.Kind {
	case ledgerfmt.KindSpan:
		s, err := span.Parse(rec.Body, span.Limits{MaxBytes: len(rec.Body) + 1, MaxMembers: 1 << 20, MaxDepth: 64})
		if err != nil {
			log.Warn("span record does not decode", "seq", rec.Seq, "err", err)
			return derive.Input{}, false
		}
		return derive.Input{Seq: rec.Seq, Kind: derive.KindSpan, Span: s}, true
	case ledgerfmt.KindTick:
		t, err := DecodeTick(rec.Body)
		if err != nil {
			log.Warn("tick record does not decode", "seq", rec.Seq, "err", err)
			return derive.Input{}, false
		}
		return derive.Input{Seq: rec.Seq, Kind: derive.KindTick, Tick: t}, true
	case ledgerfmt.KindConfig:
		name, cfg, err := tenant.DecodeConfig(rec.Body)
		if err != nil {
			log.Warn("config record does not decode", "seq", rec.Seq, "err", err)
			return derive.Input{}, false
		}
		return derive.Input{Seq: rec.Seq, Kind: derive.KindConfig, Tenant: name, Config: cfg}, true
	}
	return derive.Input{}, false
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// Len returns the number of committed events in a tenant's stream.
func (r *Runner) Len(tenant string) uint64 {
	_, n, _ := r.st.committed(tenant)
	return n
}

// Events calls fn with the committed events of a tenant's stream from event
// number from on, until fn returns false or the committed end is reached.
// It returns the number of the next event.
func (r *Runner) Events(tenant string, from uint64, fn func(n uint64, ev []byte) bool) (uint64, error) {
	return r.st.events(tenant, from, fn)
}

// Trajectory returns the events of one trajectory, in order; none for an id
// that is not a trajectory id.
func (r *Runner) Trajectory(tenant, id string) ([]json.RawMessage, error) {
	tid, ok := parseTrajectoryID(id)
	if !ok {
		return nil, nil
	}
	lines, err := r.st.trajectory(tenant, tid)
	out := make([]json.RawMessage, len(lines))
	for i, l := range lines {
		out[i] = l
	}
	return out, err
}

// Stats returns a tenant's derivation counters.
func (r *Runner) Stats(tenant string) derive.Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.eng.Stats(tenant)
}

// Percentiles returns a tenant's current score percentiles.
func (r *Runner) Percentiles(tenant string) (p50, p95, p99 int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.eng.Percentiles(tenant)
}

// Threshold returns a tenant's meter threshold at its percentile target;
// ok is false while its window is empty.
func (r *Runner) Threshold(tenant string) (int, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.eng.Threshold(tenant)
}

// Window returns a tenant's meter window, counted by score, and its size.
func (r *Runner) Window(tenant string) (hist [derive.NumScores]uint64, n uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.eng.Window(tenant)
}

// Tenants lists the tenants the engine knows.
func (r *Runner) Tenants() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.eng.Tenants()
}

// TenantConfig returns the configuration in force for a tenant.
func (r *Runner) TenantConfig(tenant string) derive.TenantConfig {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.eng.TenantConfig(tenant)
}

// EventsDerived counts the events derived since open.
func (r *Runner) EventsDerived() uint64 { return r.events.Load() }

// Close closes the store. Run must have returned.
func (r *Runner) Close() error { return r.st.close() }
