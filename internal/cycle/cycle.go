// Package cycle runs the neutral cycle against a ledger: it reads records in
// ledger order from its own durable cursor, steps the pure derivation engine
// (internal/derive) with each, and keeps the derived events of every tenant,
// with an index by trajectory, in a store under <data>/derived.
//
// The store is derived data. Each batch of events is written together with
// the cursor after the records that produced them; the engine's state is
// snapshotted now and then with its cursor; on restart the engine resumes
// from the snapshot and derives again what followed, which writes the same
// keys with the same bytes (derivation is deterministic). The store also
// records the policy fingerprint it was derived under: when the bundle's
// policies change, it is rebuilt from the start of the ledger, so that the
// derived stream is always a function of (the records, the policies).
//
// Layout of the store (a pebble database):
//
//	'e' tenant n            -> event n of the tenant's stream (canonical JSON)
//	'j' tenant trajectory n -> (empty)          the events of one trajectory
//	'm' "cursor"            -> next ledger seq, after the last applied batch
//	'm' "snapshot"          -> engine state, its cursor and the stream lengths
//	'm' "policy"            -> the policy fingerprint the store was derived under
package cycle

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"

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
	// BatchRecords bounds the records applied per store batch (default 4096).
	BatchRecords int
	// SnapshotEvery and SnapshotInterval say how often the engine state is
	// saved (defaults 100,000 records and 5 s).
	SnapshotEvery    uint64
	SnapshotInterval time.Duration
	Logger           *slog.Logger
}

// Runner is the running cycle.
type Runner struct {
	opts Options
	src  Source
	log  *slog.Logger
	db   *pebble.DB

	mu      sync.Mutex // guards eng and counts
	eng     *derive.Engine
	counts  map[string]uint64 // events per tenant, as applied to the engine
	durable map[string]uint64 // events per tenant, committed to the store

	cursor   atomic.Uint64 // next ledger seq to derive (committed)
	notifyMu sync.Mutex
	notifyCh chan struct{}
	events   atomic.Uint64 // events derived since open
	err      atomic.Pointer[error]
}

var (
	keyCursor   = []byte("mcursor")
	keySnapshot = []byte("msnapshot")
	keyPolicy   = []byte("mpolicy")
)

// Open opens (or creates) the store and restores the engine from its last
// snapshot. A store derived under other policies is emptied first.
func Open(src Source, opts Options) (*Runner, error) {
	if opts.BatchRecords <= 0 {
		opts.BatchRecords = 4096
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

func (r *Runner) openStore() error {
	db, err := pebble.Open(r.opts.Dir, &pebble.Options{Logger: quietLogger{r.log}})
	if err != nil {
		return fmt.Errorf("cycle: open store: %w", err)
	}
	fp, closer, err := db.Get(keyPolicy)
	switch {
	case err == nil:
		same := string(fp) == r.opts.Fingerprint
		closer.Close()
		if !same {
			r.log.Warn("policies changed: rebuilding the derived store from the start of the ledger")
			db.Close()
			if err := os.RemoveAll(r.opts.Dir); err != nil {
				return err
			}
			return r.openStore()
		}
	case errors.Is(err, pebble.ErrNotFound):
		if err := db.Set(keyPolicy, []byte(r.opts.Fingerprint), pebble.Sync); err != nil {
			db.Close()
			return err
		}
	default:
		db.Close()
		return err
	}
	r.db = db
	def := r.opts.Default
	eng, err := derive.New(derive.Config{Default: &def})
	if err != nil {
		db.Close()
		return err
	}
	r.eng = eng
	r.counts = map[string]uint64{}
	if v, closer, err := db.Get(keySnapshot); err == nil {
		err = r.restore(v)
		closer.Close()
		if err != nil {
			r.log.Warn("derived snapshot unreadable; deriving from the start", "err", err)
			r.eng, _ = derive.New(derive.Config{Default: &def})
			r.counts = map[string]uint64{}
			r.cursor.Store(0)
		}
	}
	r.durable = maps(r.counts)
	return nil
}

func maps(m map[string]uint64) map[string]uint64 {
	out := make(map[string]uint64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// snapshot layout: cursor u64, tenant count u32, (len u16, tenant, count u64)*,
// then the engine's state.
func (r *Runner) snapshotBytes(cursor uint64) ([]byte, error) {
	st, err := r.eng.MarshalBinary()
	if err != nil {
		return nil, err
	}
	b := binary.BigEndian.AppendUint64(nil, cursor)
	tenants := make([]string, 0, len(r.counts))
	for t := range r.counts {
		tenants = append(tenants, t)
	}
	slices.Sort(tenants)
	b = binary.BigEndian.AppendUint32(b, uint32(len(tenants)))
	for _, t := range tenants {
		b = binary.BigEndian.AppendUint16(b, uint16(len(t)))
		b = append(b, t...)
		b = binary.BigEndian.AppendUint64(b, r.counts[t])
	}
	return append(b, st...), nil
}

func (r *Runner) restore(b []byte) error {
	if len(b) < 12 {
		return errors.New("short snapshot")
	}
	cursor := binary.BigEndian.Uint64(b)
	n := binary.BigEndian.Uint32(b[8:])
	b = b[12:]
	counts := map[string]uint64{}
	for range n {
		if len(b) < 2 {
			return errors.New("short snapshot")
		}
		l := int(binary.BigEndian.Uint16(b))
		if len(b) < 2+l+8 {
			return errors.New("short snapshot")
		}
		counts[string(b[2:2+l])] = binary.BigEndian.Uint64(b[2+l:])
		b = b[2+l+8:]
	}
	if err := r.eng.UnmarshalBinary(b); err != nil {
		return err
	}
	r.counts = counts
	r.cursor.Store(cursor)
	return nil
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
	var (
		evs      []derive.Event
		line     []byte
		key      []byte
		wb       = r.db.NewBatch()
		inBatch  int
		sinceSn  uint64
		lastSnap = time.Now()
		next     = r.cursor.Load()
	)
	defer wb.Close()
	commit := func(sync bool) error {
		if inBatch == 0 && !sync {
			return nil
		}
		wb.Set(keyCursor, binary.BigEndian.AppendUint64(nil, next), nil)
		snap := sync || sinceSn >= r.opts.SnapshotEvery || time.Since(lastSnap) >= r.opts.SnapshotInterval
		r.mu.Lock()
		if snap {
			b, err := r.snapshotBytes(next)
			if err != nil {
				r.mu.Unlock()
				return err
			}
			wb.Set(keySnapshot, b, nil)
		}
		durable := maps(r.counts)
		r.mu.Unlock()
		opt := pebble.NoSync
		if snap {
			opt = pebble.Sync
		}
		if err := wb.Commit(opt); err != nil {
			return err
		}
		wb.Reset()
		r.mu.Lock()
		r.durable = durable
		r.mu.Unlock()
		r.cursor.Store(next)
		if snap {
			sinceSn, lastSnap = 0, time.Now()
		}
		inBatch = 0
		r.notify()
		return nil
	}
	for {
		rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
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
				if sinceSn > 0 {
					if err := commit(true); err != nil {
						return err
					}
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
		if err != nil {
			r.mu.Unlock()
			return fmt.Errorf("seq %d: %w", rec.Seq, err)
		}
		for i := range evs {
			ev := &evs[i]
			n := r.counts[ev.Tenant]
			r.counts[ev.Tenant] = n + 1
			line = ev.AppendJSON(line[:0])
			key = eventKey(key[:0], ev.Tenant, n)
			wb.Set(key, line, nil)
			if ev.Trajectory != (derive.TrajectoryID{}) {
				key = trajKey(key[:0], ev.Tenant, ev.Trajectory.String(), n)
				wb.Set(key, nil, nil)
			}
		}
		r.mu.Unlock()
		r.events.Add(uint64(len(evs)))
		next = rec.Seq + 1
		inBatch++
		sinceSn++
		if inBatch >= r.opts.BatchRecords {
			if err := commit(false); err != nil {
				return err
			}
		}
	}
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

func eventKey(dst []byte, tenant string, n uint64) []byte {
	dst = appendStr(append(dst, 'e'), tenant)
	return binary.BigEndian.AppendUint64(dst, n)
}

func trajKey(dst []byte, tenant, traj string, n uint64) []byte {
	dst = appendStr(appendStr(append(dst, 'j'), tenant), traj)
	return binary.BigEndian.AppendUint64(dst, n)
}

// Len returns the number of committed events in a tenant's stream.
func (r *Runner) Len(tenant string) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.durable[tenant]
}

// Events calls fn with the committed events of a tenant's stream from event
// number from on, until fn returns false or the committed end is reached.
// It returns the number of the next event.
func (r *Runner) Events(tenant string, from uint64, fn func(n uint64, ev []byte) bool) (uint64, error) {
	end := r.Len(tenant)
	if from >= end {
		return from, nil
	}
	it, err := r.db.NewIter(&pebble.IterOptions{LowerBound: eventKey(nil, tenant, from), UpperBound: eventKey(nil, tenant, end)})
	if err != nil {
		return from, err
	}
	defer it.Close()
	next := from
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		next = binary.BigEndian.Uint64(k[len(k)-8:]) + 1
		if !fn(next-1, it.Value()) {
			break
		}
	}
	return next, it.Error()
}

// Trajectory returns the events of one trajectory, in order.
func (r *Runner) Trajectory(tenant, id string) ([]json.RawMessage, error) {
	end := r.Len(tenant)
	prefix := appendStr(appendStr([]byte{'j'}, tenant), id)
	it, err := r.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: append(append([]byte(nil), prefix...), 0xff)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []json.RawMessage
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) != len(prefix)+8 {
			continue
		}
		n := binary.BigEndian.Uint64(k[len(k)-8:])
		if n >= end {
			break
		}
		v, closer, err := r.db.Get(eventKey(nil, tenant, n))
		if err != nil {
			return nil, err
		}
		out = append(out, append(json.RawMessage(nil), v...))
		closer.Close()
	}
	return out, it.Error()
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
func (r *Runner) Close() error { return r.db.Close() }

type quietLogger struct{ log *slog.Logger }

func (l quietLogger) Infof(format string, args ...any) {
	l.log.Debug("derived store: " + fmt.Sprintf(format, args...))
}
func (l quietLogger) Errorf(format string, args ...any) {
	l.log.Warn("derived store: " + fmt.Sprintf(format, args...))
}
func (l quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}
