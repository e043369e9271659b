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
// the policies).
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
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/loglineos/loglineos/internal/atomicfile"
	"github.com/loglineos/loglineos/internal/derive"
	"github.com/loglineos/loglineos/internal/ledger"
	"github.com/loglineos/loglineos/internal/span"
)

// Source is the ledger as the cycle reads it.
type Source interface {
	NewReader(from uint64) (*ledger.Reader, error)
	Next() uint64
}

// Options configure a Runner.
type Options struct {
	// Dir is the store's directory, normally <data>/derived.
	Dir string
	// Default is the configuration of tenants without a config record: the
	// bundle's policies.
	Default derive.TenantConfig
	// Fingerprint names the policies (e.g. the bundle hash); a store derived
	// under another is rebuilt.
	Fingerprint string
	// BatchRecords bounds the records applied per store batch (default 4096),
	// and a smaller batch waits up to FlushDelay for more before it is
	// written (default 20 ms).
	BatchRecords int
	FlushDelay   time.Duration
	// SnapshotEvery and SnapshotInterval say how often the engine state is
	// saved (defaults 100,000 records and 5 s).
	SnapshotEvery    uint64
	SnapshotInterval time.Duration
	// While ingest is appending and derivation is less than LowWater
	// records behind, the runner uses at most Share of the time (it sleeps
	// between batches), leaving the CPU to ingest; further behind it runs
	// flat out. Derivation is background work: this changes when events are
	// derived, never which. Share 0 or 1 (the default) never holds back.
	Share    float64
	LowWater uint64
	Logger   *slog.Logger
}

// Runner is the running cycle.
type Runner struct {
	opts Options
	src  Source
	log  *slog.Logger
	st   *store

	mu  sync.Mutex // guards eng
	eng *derive.Engine

	cursor   atomic.Uint64 // next ledger seq to derive (committed)
	notifyMu sync.Mutex
	notifyCh chan struct{}
	events   atomic.Uint64 // events derived since open
	err      atomic.Pointer[error]
}

// Open opens (or creates) the store and restores the engine from its last
// snapshot. A store derived under other policies is emptied first.
func Open(src Source, opts Options) (*Runner, error) {
	if opts.BatchRecords <= 0 {
		opts.BatchRecords = 4096
	}
	if opts.FlushDelay == 0 {
		opts.FlushDelay = 20 * time.Millisecond
	}
	if opts.SnapshotEvery == 0 {
		opts.SnapshotEvery = 100_000
	}
	if opts.SnapshotInterval <= 0 {
		opts.SnapshotInterval = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Runner{opts: opts, src: src, log: opts.Logger, notifyCh: make(chan struct{})}
	if err := r.openStore(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Runner) snapshotPath() string { return filepath.Join(r.opts.Dir, "snapshot") }

func (r *Runner) openStore() error {
	def := r.opts.Default
	eng, err := derive.New(derive.Config{Default: &def})
	if err != nil {
		return err
	}
	r.eng = eng
	snap, err := os.ReadFile(r.snapshotPath())
	var sn *snapshot
	switch {
	case err == nil:
		sn, err = decodeSnapshot(snap)
		if err != nil {
			r.log.Warn("derived snapshot unreadable; deriving from the start", "err", err)
			sn = nil
		} else if sn.fingerprint != r.opts.Fingerprint {
			r.log.Warn("policies changed: rebuilding the derived store from the start of the ledger")
			sn = nil
		}
		if sn == nil {
			if err := os.RemoveAll(r.opts.Dir); err != nil {
				return err
			}
		}
	case !errors.Is(err, os.ErrNotExist):
		return err
	}
	if sn != nil {
		if err := r.eng.UnmarshalBinary(sn.engine); err != nil {
			r.log.Warn("derived snapshot unreadable; deriving from the start", "err", err)
			if err := os.RemoveAll(r.opts.Dir); err != nil {
				return err
			}
			r.eng, _ = derive.New(derive.Config{Default: &def})
			sn = nil
		}
	}
	st, err := openStoreFiles(r.opts.Dir)
	if err != nil {
		return err
	}
	if sn == nil {
		sn = &snapshot{fingerprint: r.opts.Fingerprint}
	}
	if err := st.restoreLengths(sn.tenants, sn.buckets); err != nil {
		st.close()
		return err
	}
	r.st = st
	r.cursor.Store(sn.cursor)
	return nil
}

// snapshot is the engine state with the cursor and the store's lengths.
type snapshot struct {
	fingerprint string
	cursor      uint64
	tenants     []snapTenant
	buckets     [256]int64
	engine      []byte
}

const snapshotMagic = "logline derived snapshot v1\n"

func (sn *snapshot) encode() []byte {
	b := []byte(snapshotMagic)
	b = appendStr(b, sn.fingerprint)
	b = binary.BigEndian.AppendUint64(b, sn.cursor)
	b = binary.BigEndian.AppendUint32(b, uint32(len(sn.tenants)))
	for _, t := range sn.tenants {
		b = appendStr(b, t.tenant)
		b = binary.BigEndian.AppendUint64(b, t.n)
		b = binary.BigEndian.AppendUint64(b, uint64(t.evLen))
	}
	for _, l := range sn.buckets {
		b = binary.BigEndian.AppendUint64(b, uint64(l))
	}
	b = append(b, sn.engine...)
	sum := sha256.Sum256(b)
	return append(b, sum[:]...)
}

func decodeSnapshot(b []byte) (*snapshot, error) {
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
	var sn snapshot
	var ok bool
	if sn.fingerprint, ok = str(); !ok {
		return nil, bad
	}
	if sn.cursor, ok = u64(); !ok || len(p) < 4 {
		return nil, bad
	}
	nt := binary.BigEndian.Uint32(p)
	p = p[4:]
	for range nt {
		var t snapTenant
		var ev uint64
		if t.tenant, ok = str(); !ok {
			return nil, bad
		}
		if t.n, ok = u64(); !ok {
			return nil, bad
		}
		if ev, ok = u64(); !ok {
			return nil, bad
		}
		t.evLen = int64(ev)
		sn.tenants = append(sn.tenants, t)
	}
	for i := range sn.buckets {
		v, ok := u64()
		if !ok {
			return nil, bad
		}
		sn.buckets[i] = int64(v)
	}
	sn.engine = p
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
	sn := snapshot{fingerprint: r.opts.Fingerprint, cursor: cursor, tenants: tenants, buckets: buckets, engine: eng}
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
		snap = snap || sinceSn >= r.opts.SnapshotEvery || time.Since(lastSnap) >= r.opts.SnapshotInterval
		if snap && sinceSn > 0 {
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
			if inBatch > 0 && inBatch < r.opts.BatchRecords {
				if wait := r.opts.FlushDelay - time.Since(batchStart); wait > 0 {
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
			wctx, cancel := context.WithTimeout(ctx, r.opts.SnapshotInterval)
			err := rd.Wait(wctx)
			cancel()
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
		in, ok := toInput(rec, r.log)
		r.mu.Lock()
		if ok {
			evs, err = r.eng.Step(evs[:0], in)
			if errors.Is(err, derive.ErrBadInput) {
				// Deterministically not derivable (e.g. a span without a
				// valid when under an operator's contract): skip it.
				r.log.Warn("record not derivable", "seq", rec.Seq, "err", err)
				evs, err = evs[:0], nil
			}
		} else {
			evs = evs[:0]
		}
		r.mu.Unlock()
		if err != nil {
			return fmt.Errorf("seq %d: %w", rec.Seq, err)
		}
		for i := range evs {
			ev := &evs[i]
			tf, err := r.st.tenant(ev.Tenant)
			if err != nil {
				return err
			}
			line = ev.AppendJSON(line[:0])
			r.st.add(tf, line, ev.Trajectory, ev.Trajectory != (derive.TrajectoryID{}))
		}
		r.events.Add(uint64(len(evs)))
		next = rec.Seq + 1
		if inBatch == 0 {
			batchStart = time.Now()
		}
		inBatch++
		sinceSn++
		if inBatch >= r.opts.BatchRecords {
			if err := commit(false); err != nil {
				return err
			}
			if err := r.yield(ctx, &slice, &lastNext); err != nil {
				return nil
			}
		}
	}
}

// yield holds the runner back while ingest is busy and derivation is not
// far behind: after working for a slice of time, it sleeps so that its work
// is Share of the whole.
func (r *Runner) yield(ctx context.Context, slice *time.Time, lastNext *uint64) error {
	share := r.opts.Share
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
	if busy && r.Backlog() < r.opts.LowWater {
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
	case ledger.KindSpan:
		s, err := span.Parse(rec.Body, span.Limits{MaxBytes: len(rec.Body) + 1, MaxMembers: 1 << 20, MaxDepth: 64})
		if err != nil {
			log.Warn("span record does not decode", "seq", rec.Seq, "err", err)
			return derive.Input{}, false
		}
		return derive.Input{Seq: rec.Seq, Kind: derive.KindSpan, Span: s}, true
	case ledger.KindTick:
		t, err := DecodeTick(rec.Body)
		if err != nil {
			log.Warn("tick record does not decode", "seq", rec.Seq, "err", err)
			return derive.Input{}, false
		}
		return derive.Input{Seq: rec.Seq, Kind: derive.KindTick, Tick: t}, true
	case ledger.KindConfig:
		tenant, cfg, err := DecodeConfig(rec.Body)
		if err != nil {
			log.Warn("config record does not decode", "seq", rec.Seq, "err", err)
			return derive.Input{}, false
		}
		return derive.Input{Seq: rec.Seq, Kind: derive.KindConfig, Tenant: tenant, Config: cfg}, true
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
