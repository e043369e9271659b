package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/loglineos/loglineos/internal/datadir"
	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
)

// Entry is one record to append. For spans (Kind "" or "span"), Tenant and ID
// are required and (Tenant, ID) is the idempotency key; This is indexed too.
// Body is the record's canonical JSON object, stored as given.
type Entry struct {
	Kind   string
	Tenant string
	ID     string
	This   string
	Body   []byte
}

// Status says what Append did with an entry.
type Status uint8

// Entry outcomes.
const (
	Accepted  Status = iota + 1 // appended now
	Duplicate                   // (tenant, id) was already stored with the same body; nothing appended
	Conflict                    // (tenant, id) is stored with another body; nothing appended
)

func (s Status) String() string {
	switch s {
	case Accepted:
		return "accepted"
	case Duplicate:
		return "duplicate"
	case Conflict:
		return "conflict"
	}
	return "unknown"
}

// Result is the outcome of one entry: its receipt, or for a duplicate or a
// conflict the receipt of the record stored first (its Seq and Leaf name
// the stored record).
type Result struct {
	Status  Status
	Receipt ledgerfmt.Receipt
}

// Ledger is an open ledger. Its methods are safe for concurrent use.
type Ledger struct {
	cfg    Config
	fs     vfs.FS
	dir    string // data directory
	segDir string
	signer *ledgerfmt.Signer
	log    *slog.Logger
	lock   *datadir.Lock // nil: the caller holds it, or nothing to hold
	// live, for a read-only ledger, is the writer running beside it: the
	// view then ends at the writer's latest signed checkpoint.
	live *datadir.Holder

	// Files.
	idx   *index
	hash  keyHasher // keys the lookup hashes (from the signing key)
	tree  *treeStore
	segs  *segmentFiles
	jrnl  *journal
	state stateFile

	wg       sync.WaitGroup
	closeMu  sync.Mutex
	closed   bool
	readOnly bool
	// roProblem is the first unreadable record a read-only open met.
	roProblem *CorruptError

	// The write path (batch.go): its stages, each run by its own goroutine
	// once a writable ledger is open, the open batch they pass along, and
	// the checkpoints' bookkeeping.
	committer   committer
	sealer      sealer
	syncer      syncer
	indexer     indexer
	slot        batchSlot
	checkpoints checkpointer

	// Published state.
	durable    atomic.Pointer[durableEnd]
	indexed    atomic.Uint64 // records before this are indexed
	failure    atomic.Pointer[error]
	damageOnce atomic.Bool // a read met damaged index or tree files
	// checkedAtOpen: every record was checked by Open.
	checkedAtOpen bool
	// damagedBelow: damage was found in the records while this many were
	// durable; none of them is ever taken for a torn tail.
	damagedBelow uint64
	indexErr     atomic.Pointer[error] // set when the indexer stopped
	notifyMu     sync.Mutex
	notifyCh     chan struct{} // closed when durable or indexed advances
	lastCkpt     atomic.Pointer[ledgerfmt.Checkpoint]
	lastIndexed  atomic.Pointer[indexedBatch]
	// role says where records come from: Append or Apply (apply.go).
	role     atomic.Uint32
	applyKey commitVerifier

	stats struct {
		appended, duplicates, commits, bytes atomic.Uint64
	}
}

// durableEnd is what readers may see: records before next are durable and
// end is the position after the last of them.
type durableEnd struct {
	next uint64
	end  pos
}

// Open opens (creating if needed) the ledger in dir, the data directory:
// records go to dir/ledger, receipts to dir/receipts. Open repairs a torn
// tail, brings the indexes and the tree up to the segments, and checks the
// latest checkpoint against them.
func Open(dir string, cfg Config) (*Ledger, error) {
	cfg.setDefaults()
	l := &Ledger{
		cfg:      cfg,
		fs:       cfg.FS,
		dir:      dir,
		segDir:   cfg.FS.PathJoin(dir, "ledger", "segments"),
		log:      cfg.Logger,
		readOnly: cfg.ReadOnly,
		notifyCh: make(chan struct{}),
	}
	l.segs = &segmentFiles{fs: l.fs, dir: l.segDir}
	l.committer.l, l.sealer.l, l.syncer.l, l.indexer.l = l, l, l, l
	if cfg.FS == vfs.Default {
		if !cfg.ReadOnly && !cfg.DirLocked {
			lk, err := datadir.Acquire(dir, cfg.Holder)
			if err != nil {
				return nil, fmt.Errorf("ledger: %w", err)
			}
			l.lock = lk
		} else if cfg.ReadOnly && !cfg.DirLocked {
			h, err := datadir.Probe(dir)
			if err != nil {
				return nil, fmt.Errorf("ledger: %w", err)
			}
			if h != nil {
				l.live = h
			}
		}
	}
	if err := l.recover(); err != nil {
		l.closeFiles(false)
		l.lock.Release()
		return nil, err
	}
	if l.readOnly {
		return l, nil
	}
	if cfg.Publish != nil {
		l.role.Store(roleAppend)
	}
	l.startWriting()
	return l, nil
}

// startWriting starts the write path's goroutines.
func (l *Ledger) startWriting() {
	l.committer.reqs = make(chan *appendReq, 4096)
	l.committer.freeBufs = make(chan []byte, 4)
	l.committer.freeLeaves = make(chan []ledgerfmt.Hash, 4)
	l.sealer.wake = make(chan struct{}, 1)
	l.syncer.freeNodes = make(chan []treeNode, 4)
	l.indexer.batches = make(chan *commitBatch, 256)
	l.slot.init()
	l.idx.onDamage = func(err error) { l.indexDamaged("index", err) }
	l.idx.start()
	l.wg.Add(4)
	go l.sealer.run()
	go l.committer.run()
	go l.syncer.run()
	go l.indexer.run()
}

// Signer returns the ledger's signer (its public key, origin and key id).
func (l *Ledger) Signer() *ledgerfmt.Signer { return l.signer }

// Close stops accepting appends, commits what was accepted, brings the
// indexes up to date, writes a final checkpoint and closes the files.
func (l *Ledger) Close() error {
	l.closeMu.Lock()
	if l.closed {
		l.closeMu.Unlock()
		return ErrClosed
	}
	l.closed = true
	if !l.readOnly {
		close(l.committer.reqs)
	}
	l.closeMu.Unlock()
	if l.readOnly {
		l.closeFiles(false)
		return nil
	}
	l.wg.Wait()
	var err error
	if l.failed() == nil {
		err = l.checkpoint()
	}
	if cerr := l.closeFiles(l.failed() == nil); err == nil {
		err = cerr
	}
	if lerr := l.lock.Release(); err == nil {
		err = lerr
	}
	return err
}

func (l *Ledger) closeFiles(flush bool) error {
	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	if l.syncer.active != nil {
		if flush {
			// A ledger closed cleanly leaves segments that end with
			// their records (a failed one keeps its padding: the next
			// open finds it).
			keep(l.syncer.active.cut())
		}
		keep(l.syncer.active.f.Close())
		l.syncer.active = nil
	}
	if l.jrnl != nil {
		keep(l.jrnl.close())
	}
	if l.tree != nil {
		keep(l.tree.close())
	}
	if l.idx != nil {
		keep(l.idx.close(flush && !l.readOnly))
	}
	l.segs.close()
	return first
}

func (l *Ledger) failed() error {
	if p := l.failure.Load(); p != nil {
		return *p
	}
	return nil
}

// fail makes the ledger read-only for good after a write or sync error.
func (l *Ledger) fail(err error) {
	msg := "ledger is read-only after a storage error"
	switch {
	case errors.Is(err, ErrCorrupt):
		msg = "ledger is read-only: its records are damaged"
	case errors.Is(err, ErrPublish):
		msg = "ledger is read-only: a commit could not be published"
	}
	err = fmt.Errorf("%w: %w", ErrReadOnly, err)
	if l.failure.CompareAndSwap(nil, &err) {
		l.log.Error(msg, "err", err)
	}
}

// Err returns the error that made the ledger read-only, or nil.
func (l *Ledger) Err() error { return l.failed() }

// Append appends entries as one request and returns, in order, what became
// of each: accepted with its receipt, or a duplicate with the original
// receipt. It returns only after every accepted entry is durable (written
// and fdatasync'ed). An error means none of the entries was acknowledged.
func (l *Ledger) Append(ctx context.Context, entries []Entry) ([]Result, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	for i := range entries {
		if err := l.checkEntry(&entries[i]); err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
	}
	if err := l.failed(); err != nil {
		return nil, err
	}
	if err := l.takeRole(roleAppend); err != nil {
		return nil, err
	}
	req := &appendReq{entries: entries, results: make([]Result, len(entries)), refs: make([]recRef, len(entries)), done: make(chan struct{})}
	if err := l.submit(ctx, req); err != nil {
		return nil, err
	}
	if err := l.buildResults(req); err != nil {
		return nil, err
	}
	return req.results, nil
}

// submit hands req to the committer and waits for it to complete.
func (l *Ledger) submit(ctx context.Context, req *appendReq) error {
	l.closeMu.Lock()
	if l.closed {
		l.closeMu.Unlock()
		return ErrClosed
	}
	if l.readOnly {
		l.closeMu.Unlock()
		return fmt.Errorf("%w: opened read-only", ErrReadOnly)
	}
	select {
	case l.committer.reqs <- req:
	case <-ctx.Done():
		l.closeMu.Unlock()
		return ctx.Err()
	}
	l.closeMu.Unlock()
	// Once queued, the request is committed whatever happens to ctx: the
	// caller learns the outcome unless it stops waiting.
	select {
	case <-req.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	return req.err
}

// buildResults assembles the receipts of a completed request, in the
// appender's goroutine: the batches it refers to are durable and sealed.
// The receipts share one allocation for their paths and one for their ids.
// A copy of a span placed by another request (or earlier in this one) is
// compared with the original as stored.
func (l *Ledger) buildResults(req *appendReq) error {
	var n, npath int
	for _, r := range req.refs {
		if r.b != nil {
			n++
			npath += len(r.b.btree.levels) - 1
		}
	}
	if n == 0 {
		return nil
	}
	paths := make([]ledgerfmt.Hash, 0, npath)
	ids := make([]byte, 0, n*ledgerfmt.ReceiptIDLen)
	for _, r := range req.refs {
		if r.b != nil {
			ids = ledgerfmt.AppendReceiptID(ids, r.b.first+uint64(r.i), r.b.ts)
		}
	}
	jtis := string(ids)
	var k int
	var dups uint64
	for i, r := range req.refs {
		b := r.b
		if b == nil {
			continue
		}
		rec := &b.recs[r.i]
		at := len(paths)
		paths = b.btree.appendPath(paths, int(r.i))
		rc := ledgerfmt.Receipt{
			Op:    b.receipt.Op,
			Seq:   b.first + uint64(r.i),
			Leaf:  rec.leaf,
			Batch: b.receipt.Batch,
			JTI:   jtis[k*ledgerfmt.ReceiptIDLen : (k+1)*ledgerfmt.ReceiptIDLen],
			KID:   b.receipt.KID,
			Sig:   b.receipt.Sig,
			TS:    b.receipt.TS,
		}
		k++
		if len(paths) > at {
			rc.Batch.Path = paths[at:len(paths):len(paths)]
		}
		if rec.kind == ledgerfmt.KindSpan {
			rc.SpanID, rc.Tenant = rec.id, rec.tenant
		}
		status := Accepted
		if r.dup {
			status = Duplicate
			dups++
			if same, err := l.sameBody(b, r.i, req.entries[i].Body); err != nil {
				return err
			} else if !same {
				status = Conflict
			}
		}
		req.results[i] = Result{Status: status, Receipt: rc}
	}
	if dups > 0 {
		l.stats.duplicates.Add(dups)
	}
	return nil
}

// sameBody reports whether record i of the durable batch b has body body.
func (l *Ledger) sameBody(b *commitBatch, i int32, body []byte) (bool, error) {
	rec := &b.recs[i]
	p := pos{seg: b.seg, off: b.segOff + int64(rec.off), n: uint32(rec.n)}
	r, err := l.readRecord(p, b.first+uint64(i))
	if err != nil {
		return false, fmt.Errorf("ledger: read the original of a duplicate: %w", err)
	}
	return bytes.Equal(r.Body, body), nil
}

func (l *Ledger) checkEntry(e *Entry) error {
	if e.Kind == "" {
		e.Kind = ledgerfmt.KindSpan
	}
	if len(e.Kind) > 64 {
		return fmt.Errorf("%w: kind of %d letters", ErrInvalidEntry, len(e.Kind))
	}
	for _, c := range []byte(e.Kind) {
		if c < 'a' || c > 'z' {
			return fmt.Errorf("%w: kind %q", ErrInvalidEntry, e.Kind)
		}
	}
	if e.Kind == ledgerfmt.KindSpan && (e.Tenant == "" || e.ID == "") {
		return fmt.Errorf("%w: a span needs a tenant and an id", ErrInvalidEntry)
	}
	if len(e.Body) < 2 || e.Body[0] != '{' || e.Body[len(e.Body)-1] != '}' {
		return fmt.Errorf("%w: body is not a JSON object", ErrInvalidEntry)
	}
	if len(e.Body) > l.cfg.MaxEntryBytes {
		return fmt.Errorf("%w: body of %d bytes exceeds %d", ErrInvalidEntry, len(e.Body), l.cfg.MaxEntryBytes)
	}
	return nil
}

func (l *Ledger) notify() {
	l.notifyMu.Lock()
	close(l.notifyCh)
	l.notifyCh = make(chan struct{})
	l.notifyMu.Unlock()
}

// WaitNext waits until the ledger holds the records below n (Next() >= n,
// whether appended here or applied from another ledger), or ctx is done.
func (l *Ledger) WaitNext(ctx context.Context, n uint64) error {
	for {
		ch := l.changed()
		if l.Next() >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// changed returns a channel closed at the next commit or index advance.
func (l *Ledger) changed() <-chan struct{} {
	l.notifyMu.Lock()
	defer l.notifyMu.Unlock()
	return l.notifyCh
}

// Stats are the ledger's counters since open.
type Stats struct {
	Appended   uint64 // records appended
	Duplicates uint64 // entries answered with an earlier receipt
	Commits    uint64 // group commits (one write and one sync each)
	Bytes      uint64 // bytes written to segments
	Next       uint64 // sequence number of the next record
	Indexed    uint64 // records indexed
}

// Stats returns the counters.
func (l *Ledger) Stats() Stats {
	s := Stats{
		Appended:   l.stats.appended.Load(),
		Duplicates: l.stats.duplicates.Load(),
		Commits:    l.stats.commits.Load(),
		Bytes:      l.stats.bytes.Load(),
		Indexed:    l.indexed.Load(),
	}
	if d := l.durable.Load(); d != nil {
		s.Next = d.next
	}
	return s
}
