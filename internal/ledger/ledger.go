package ledger

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/loglineos/loglineos/internal/datadir"
	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
)

// DefaultCheckAtOpen is Options.CheckAtOpen's default.
const DefaultCheckAtOpen = 256 << 20

// Options configure a ledger. The zero value works: data on the real file
// system, defaults below.
type Options struct {
	// FS is the file system; nil means the real one. Tests pass an in-memory
	// or fault-injecting one.
	FS vfs.FS
	// Origin names the ledger in its checkpoints and keys. It is used only
	// when the signing key is created, at first open. Default DefaultOrigin.
	Origin string
	// SegmentBytes is the size at which a segment is sealed and the next one
	// started. Default 64 MiB.
	SegmentBytes int64
	// MaxBatchEntries and MaxBatchBytes bound one group commit. Defaults
	// 16384 records and 8 MiB.
	MaxBatchEntries int
	MaxBatchBytes   int
	// MaxDelay lets a commit wait this long for more appenders once it has
	// one. Zero (the default) never waits: an idle ledger commits at once.
	MaxDelay time.Duration
	// MaxEntryBytes bounds one record's body. Default 1 MiB.
	MaxEntryBytes int
	// CheckpointEvery and CheckpointInterval say how often a signed
	// checkpoint is written: after that many records, or that much time with
	// new records, whichever comes first; and always at Close. Defaults
	// 1,000,000 records and 10 s.
	CheckpointEvery    uint64
	CheckpointInterval time.Duration
	// IndexCacheBytes is ignored: the index files are read through the
	// operating system's page cache. It is kept so that old configurations
	// still compile.
	IndexCacheBytes int64
	// IndexMemTableBytes bounds the in-memory part of the lookup indexes
	// (the newest spans' entries, about 96 bytes a span) before it is written
	// to disk; two such parts exist while one is being written. It also
	// bounds what a crash leaves to re-index at open. Default 16 MiB
	// (about 175,000 spans).
	IndexMemTableBytes int64
	// DedupFilterBytes sizes the filter that tells new span ids from stored
	// ones without reading the index. It is allocated at open whatever the
	// ledger's size; past about 50 million spans per 64 MiB its false
	// positives (each costing an index lookup) grow. Default 64 MiB.
	DedupFilterBytes int
	// ReadOnly opens the ledger for inspection: nothing is written or
	// repaired, corruption is reported by Verify rather than refused. Beside
	// a running writer (another process holding the data directory), a
	// read-only ledger sees the records of the writer's latest signed
	// checkpoint and nothing after it: the rest may still be in flight.
	ReadOnly bool
	// CheckAtOpen: when the segments hold at most this many bytes, Open
	// checks every record (framing, CRC, sequence, time) before it returns,
	// so that a damaged record stops the start. A larger ledger is checked
	// by Scrub once open (its records are checked as they are read, too).
	// Default 256 MiB; negative never checks everything at open, unless
	// Scrub found damage before (ledger/DAMAGED).
	CheckAtOpen int64
	// DirLocked says the caller holds the data directory's lock
	// (datadir.Acquire) itself. Otherwise a writable Open on the operating
	// system's file system takes it, naming itself Holder, and gives it up
	// at Close; a second writer then fails at once with datadir.ErrLocked.
	DirLocked bool
	// Holder names this process in the lock file. Default "logline".
	Holder string
	// Now and Rand replace the clock and the randomness (for the key).
	Now  func() time.Time
	Rand io.Reader
	// Logger receives recovery notes and index messages.
	Logger *slog.Logger
	// OnRepair, if set, is called when derived files (what: "index",
	// "tree") are found damaged and rebuilt from the segments at open, or
	// found damaged while the ledger runs (they are then rebuilt at the
	// next open). It may be called from several goroutines at once.
	OnRepair func(what, reason string)
	// OnCommit, if set, is called after every durable group commit with its
	// record count, byte count and the time its write and sync took.
	OnCommit func(records, bytes int, sync time.Duration)
	// Progress, if set, is called during long scans at open with the bytes
	// done and the bytes in all.
	Progress func(done, total int64)
}

func (o *Options) setDefaults() {
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = 64 << 20
	}
	if o.MaxBatchEntries <= 0 {
		o.MaxBatchEntries = 16384
	}
	if o.MaxBatchBytes <= 0 {
		o.MaxBatchBytes = 8 << 20
	}
	if o.MaxEntryBytes <= 0 {
		o.MaxEntryBytes = 1 << 20
	}
	if o.CheckpointEvery == 0 {
		o.CheckpointEvery = 1_000_000
	}
	if o.CheckpointInterval <= 0 {
		o.CheckpointInterval = 10 * time.Second
	}
	if o.IndexMemTableBytes <= 0 {
		o.IndexMemTableBytes = 16 << 20
	}
	if o.DedupFilterBytes <= 0 {
		o.DedupFilterBytes = 64 << 20
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Holder == "" {
		o.Holder = "logline"
	}
	if o.CheckAtOpen == 0 {
		o.CheckAtOpen = DefaultCheckAtOpen
	}
}

// maxTornBytes bounds the unsynced bytes a crash can leave at the end of the
// last segment: one group commit is written and synced at a time.
func (o *Options) maxTornBytes() int64 {
	return max(16<<20, 2*int64(o.MaxBatchBytes+o.MaxEntryBytes+1024))
}

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
	opts   Options
	fs     vfs.FS
	dir    string // data directory
	segDir string
	signer *ledgerfmt.Signer
	log    *slog.Logger
	lock   *datadir.Lock // nil: the caller holds it, or nothing to hold
	// live, for a read-only ledger, is the writer running beside it: the
	// view then ends at the writer's latest signed checkpoint.
	live *datadir.Holder

	idx   *index
	hash  keyHasher
	tree  *treeStore
	segs  *segmentFiles
	jrnl  *journal
	state stateFile

	reqs     chan *appendReq
	toIndex  chan *commitBatch
	quit     chan struct{}
	wg       sync.WaitGroup
	closeMu  sync.Mutex
	closed   bool
	readOnly bool
	// roProblem is the first unreadable record a read-only open met.
	roProblem *CorruptError

	// Committer state: owned by the committer goroutine.
	nextSeq uint64
	lastTS  time.Time
	dedup   *dedupFilter // every stored or pending (tenant, id) hash
	pending pendingSet
	enc     encoder
	// fill remembers batch sizes, to size new batches: last is the batch
	// being filled, buf and recs a decaying maximum.
	fill struct {
		buf, recs int
		last      struct{ buf, recs int }
	}
	// Buffers of written batches, for new ones.
	freeBufs   chan []byte
	freeNodes  chan []treeNode
	freeLeaves chan []ledgerfmt.Hash
	sealWake   chan struct{} // committer -> sealer: lines to hash

	// Indexer state.
	spanHashes []spanHashes
	posBuf     []byte

	// The open batch, shared by committer and syncer.
	mu        sync.Mutex
	open      *commitBatch
	dataCond  *sync.Cond // the open batch has something
	spaceCond *sync.Cond // the open batch was taken
	stopping  bool

	// Syncer state.
	active *activeSegment
	// The tree as far as batches were sealed: extended by the syncer's
	// helpers, which run one at a time in commit order.
	rng compactRange

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
	ckptMu       sync.Mutex // one checkpoint at a time
	sinceCkpt    uint64     // records since the last checkpoint (indexer)
	ckptAt       time.Time  // when the last checkpoint was written (indexer)
	treeSaved    uint64     // the tree size the tree state file records

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

type appendReq struct {
	entries []Entry
	results []Result
	refs    []recRef // where each entry's receipt comes from
	done    chan struct{}
	err     error
	last    *commitBatch // the batch that completes this request
}

// pendingRec is a span placed in a batch and not yet indexed.
type pendingRec struct {
	h     uint64 // keyed hash of (tenant, id)
	seq   uint64
	batch *commitBatch
	i     int32 // index in batch.recs
}

func (r *pendingRec) is(tenant, id string) bool {
	br := &r.batch.recs[r.i]
	return br.tenant == tenant && br.id == id
}

// pendingSet holds the spans placed and not yet indexed, in seq order, for
// the committer alone. A direct-mapped table remembers where the newest
// span of each hash slot is; a span it lost track of (its slot taken by a
// later one) is found by a scan, which happens only for an id the dedup
// filter already flagged.
type pendingSet struct {
	recs []pendingRec
	head int    // recs[:head] are pruned
	base uint64 // number of records dropped from the front of recs
	slot []uint64
}

const pendingSlots = 1 << 14

func (p *pendingSet) add(r pendingRec) {
	if p.slot == nil {
		p.slot = make([]uint64, pendingSlots)
	}
	p.recs = append(p.recs, r)
	p.slot[r.h&(pendingSlots-1)] = p.base + uint64(len(p.recs))
}

// find returns the pending span stored under (tenant, id) with hash h.
func (p *pendingSet) find(h uint64, tenant, id string) (pendingRec, bool) {
	if len(p.recs) == p.head {
		return pendingRec{}, false
	}
	if j := p.slot[h&(pendingSlots-1)]; j > p.base+uint64(p.head) && j <= p.base+uint64(len(p.recs)) {
		if r := &p.recs[j-1-p.base]; r.h == h && r.is(tenant, id) {
			return *r, true
		}
	}
	for i := len(p.recs) - 1; i >= p.head; i-- {
		if r := &p.recs[i]; r.h == h && r.is(tenant, id) {
			return *r, true
		}
	}
	return pendingRec{}, false
}

// prune forgets the spans before seq indexed: the index holds them.
func (p *pendingSet) prune(indexed uint64) {
	for p.head < len(p.recs) && p.recs[p.head].seq < indexed {
		p.recs[p.head].batch = nil
		p.head++
	}
	if p.head >= 1024 && 2*p.head >= len(p.recs) {
		n := copy(p.recs, p.recs[p.head:])
		clear(p.recs[n:])
		p.recs = p.recs[:n]
		p.base += uint64(p.head)
		p.head = 0
	}
}

// commitBatch is one group commit.
type commitBatch struct {
	ts    time.Time
	tsb   [tsLen]byte
	first uint64
	buf   []byte // the records' lines, until written

	// The sealer hashes framed lines ahead of the syncer: leaves[:hashed]
	// are the leaf hashes of recs[:hashed]. Once taken by the syncer, the
	// sealer leaves the batch alone.
	sealMu sync.Mutex
	leaves []ledgerfmt.Hash // fixed capacity: it never moves
	hashed int
	taken  bool
	wakeAt int // the committer wakes the sealer when recs reach this

	size  int // len(buf), once written
	recs  []batchRec
	dups  []*appendReq // requests with duplicates of pending records here
	nodes []treeNode
	done  []*appendReq // requests completed by this batch

	// Set at seal and after sync.
	rootAfter ledgerfmt.Hash // tree root once this batch is in
	sizeAfter uint64
	seg       uint32
	segOff    int64
	receipt   ledgerfmt.BatchReceipt
	btree     *batchTree
}

type batchRec struct {
	req    *appendReq
	off    int32 // offset of the line in buf
	n      int32 // line length without newline
	leaf   ledgerfmt.Hash
	hid    uint64 // keyed hash of (tenant, id), for spans
	kind   string
	tenant string
	id     string
	this   string
}

// recRef says where an entry's receipt comes from: record i of batch b, as
// the entry itself or as the original it duplicates.
type recRef struct {
	b   *commitBatch // nil: the committer filled the result (a stored duplicate)
	i   int32
	dup bool
}

func (b *commitBatch) empty() bool { return len(b.recs) == 0 && len(b.dups) == 0 && len(b.done) == 0 }

// Open opens (creating if needed) the ledger in dir, the data directory:
// records go to dir/ledger, receipts to dir/receipts. Open repairs a torn
// tail, brings the indexes and the tree up to the segments, and checks the
// latest checkpoint against them.
func Open(dir string, opts Options) (*Ledger, error) {
	opts.setDefaults()
	l := &Ledger{
		opts:     opts,
		fs:       opts.FS,
		dir:      dir,
		segDir:   opts.FS.PathJoin(dir, "ledger", "segments"),
		log:      opts.Logger,
		readOnly: opts.ReadOnly,
		quit:     make(chan struct{}),
		notifyCh: make(chan struct{}),
	}
	l.segs = &segmentFiles{fs: l.fs, dir: l.segDir}
	l.dataCond = sync.NewCond(&l.mu)
	l.spaceCond = sync.NewCond(&l.mu)
	if opts.FS == vfs.Default {
		if !opts.ReadOnly && !opts.DirLocked {
			lk, err := datadir.Acquire(dir, opts.Holder)
			if err != nil {
				return nil, fmt.Errorf("ledger: %w", err)
			}
			l.lock = lk
		} else if opts.ReadOnly && !opts.DirLocked {
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
	l.reqs = make(chan *appendReq, 4096)
	l.freeBufs = make(chan []byte, 4)
	l.freeNodes = make(chan []treeNode, 4)
	l.freeLeaves = make(chan []ledgerfmt.Hash, 4)
	l.sealWake = make(chan struct{}, 1)
	l.toIndex = make(chan *commitBatch, 256)
	l.open = l.newBatch()
	l.idx.onDamage = func(err error) { l.indexDamaged("index", err) }
	l.idx.start()
	l.wg.Add(4)
	go l.sealer()
	go l.committer()
	go l.syncer()
	go l.indexer()
	return l, nil
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
		close(l.reqs)
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
	if l.active != nil {
		keep(l.active.f.Close())
		l.active = nil
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
	if errors.Is(err, ErrCorrupt) {
		msg = "ledger is read-only: its records are damaged"
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
	req := &appendReq{entries: entries, results: make([]Result, len(entries)), refs: make([]recRef, len(entries)), done: make(chan struct{})}
	l.closeMu.Lock()
	if l.closed {
		l.closeMu.Unlock()
		return nil, ErrClosed
	}
	if l.readOnly {
		l.closeMu.Unlock()
		return nil, fmt.Errorf("%w: opened read-only", ErrReadOnly)
	}
	select {
	case l.reqs <- req:
	case <-ctx.Done():
		l.closeMu.Unlock()
		return nil, ctx.Err()
	}
	l.closeMu.Unlock()
	// Once queued, the request is committed whatever happens to ctx: the
	// caller learns the outcome unless it stops waiting.
	select {
	case <-req.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if req.err != nil {
		return nil, req.err
	}
	if err := l.buildResults(req); err != nil {
		return nil, err
	}
	return req.results, nil
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
	if len(e.Body) > l.opts.MaxEntryBytes {
		return fmt.Errorf("%w: body of %d bytes exceeds %d", ErrInvalidEntry, len(e.Body), l.opts.MaxEntryBytes)
	}
	return nil
}

func (l *Ledger) newBatch() *commitBatch { return &commitBatch{} }

func (b *commitBatch) full(o *Options) bool {
	return len(b.recs) >= o.MaxBatchEntries || len(b.buf) >= o.MaxBatchBytes
}

// nextTS returns the ts of a new commit: now in microseconds, and always
// after the previous commit's.
func (l *Ledger) nextTS() time.Time {
	ts := l.opts.Now().UTC().Truncate(time.Microsecond)
	if !ts.After(l.lastTS) {
		ts = l.lastTS.Add(time.Microsecond)
	}
	l.lastTS = ts
	return ts
}

// committer takes requests in arrival order, resolves duplicates, assigns
// sequence numbers and encodes the records into the open batch.
//
// Duplicates. The filter holds the id hash of every span stored or placed,
// so a new id is told apart without I/O. When it answers "maybe", the span
// is looked for among the pending spans (placed, not yet indexed), then in
// the index. That is complete: pending is pruned only of spans before
// indexedBefore, which was read before the index was searched, so a span not
// in pending was indexed before the search began. A copy of a pending span
// (earlier in this request, or in a request not yet durable) is answered
// with the original's receipt when the batch holding the copy completes,
// which is no earlier than the original's.
func (l *Ledger) committer() {
	defer l.wg.Done()
	defer close(l.sealWake)
	defer func() {
		l.mu.Lock()
		l.stopping = true
		l.mu.Unlock()
		l.dataCond.Broadcast()
	}()
	const chunk = 16
	type placement struct {
		h        uint64 // id hash, for spans
		dupSeq   uint64 // duplicate of a stored record (when stored)
		span     bool
		maybe    bool // the dedup filter knows h
		stored   bool
		conflict bool // stored with another body
		pending  bool
		p        pendingRec
	}
	var places [chunk]placement
	for req := range l.reqs {
		if err := l.failed(); err != nil {
			req.err = err
			close(req.done)
			continue
		}
		indexedBefore := l.indexed.Load()
		l.pending.prune(indexedBefore)
		var last *commitBatch
		for start := 0; start < len(req.entries); start += chunk {
			end := min(start+chunk, len(req.entries))
			// Resolve duplicates outside the lock. The filter is probed in a
			// loop of its own, so that its cache misses overlap.
			for i := start; i < end; i++ {
				e := &req.entries[i]
				pl := &places[i-start]
				*pl = placement{}
				if e.Kind == ledgerfmt.KindSpan {
					pl.span, pl.h = true, l.hash.id(e.Tenant, e.ID)
				}
			}
			for i := range places[:end-start] {
				pl := &places[i]
				pl.maybe = pl.span && l.dedup.has(pl.h)
			}
			for i := start; i < end; i++ {
				e := &req.entries[i]
				pl := &places[i-start]
				if !pl.maybe {
					continue
				}
				if p, ok := l.pending.find(pl.h, e.Tenant, e.ID); ok {
					pl.pending, pl.p = true, p
					continue
				}
				seq, rec, ok, err := l.lookupID(pl.h, e.Tenant, e.ID)
				if err != nil {
					req.err = l.lookupFailed(fmt.Errorf("ledger: index lookup: %w", err))
					break
				}
				if ok {
					pl.stored, pl.dupSeq, pl.conflict = true, seq, !bytes.Equal(rec.Body, e.Body)
				}
			}
			if req.err != nil {
				break
			}
			for i := start; i < end; i++ {
				if pl := &places[i-start]; pl.stored {
					r, err := l.receiptBySeq(pl.dupSeq, req.entries[i].Tenant, req.entries[i].ID)
					if err != nil {
						req.err = l.lookupFailed(fmt.Errorf("ledger: receipt of seq %d: %w", pl.dupSeq, err))
						break
					}
					st := Duplicate
					if pl.conflict {
						st = Conflict
					}
					req.results[i] = Result{Status: st, Receipt: r}
					l.stats.duplicates.Add(1)
				}
			}
			if req.err != nil {
				break
			}
			l.mu.Lock()
			for l.open.full(&l.opts) {
				l.spaceCond.Wait()
			}
			b := l.open
			for i := start; i < end; i++ {
				pl := &places[i-start]
				if pl.stored {
					continue
				}
				if pl.pending {
					b.dups = append(b.dups, req)
					req.refs[i] = recRef{b: pl.p.batch, i: pl.p.i, dup: true}
					last = b
					continue
				}
				e := &req.entries[i]
				// A copy of a span placed since the check above: earlier in
				// this chunk.
				if pl.span && l.dedup.has(pl.h) {
					if p, ok := l.pending.find(pl.h, e.Tenant, e.ID); ok {
						b.dups = append(b.dups, req)
						req.refs[i] = recRef{b: p.batch, i: p.i, dup: true}
						last = b
						continue
					}
				}
				l.place(b, req, i, pl.h)
				last = b
			}
			if end == len(req.entries) && last != nil {
				// The request completes with the batch holding its last
				// entries, which is the open one.
				b.done = append(b.done, req)
				req.last = b
			}
			if len(b.recs) >= b.wakeAt {
				b.wakeAt = len(b.recs) + sealChunk
				select {
				case l.sealWake <- struct{}{}:
				default:
				}
			}
			l.mu.Unlock()
			l.dataCond.Signal()
		}
		if last == nil {
			// Failed, or every entry was a duplicate of a stored record. A
			// request partly placed in a batch is completed by a batch.
			close(req.done)
			continue
		}
		if req.last != nil {
			continue
		}
		l.mu.Lock()
		// The batch that took the last entries may be sealed already; the
		// request then completes with whatever batch is open now, which
		// completes after it.
		l.open.done = append(l.open.done, req)
		req.last = l.open
		l.mu.Unlock()
		l.dataCond.Signal()
	}
}

// sealChunk is how many framed lines the committer lets accumulate before
// it wakes the sealer, and how many the sealer hashes per lock.
const sealChunk = 32

// sealer hashes the framed lines of the open batch ahead of the syncer, on
// another core than the committer's. It reads lines the committer framed
// before it looked (an older backing array still holds them if the buffer
// grew since), and works under the batch's sealMu, a chunk at a time, so
// that once the syncer has taken the batch it touches neither its lines
// nor its leaves.
func (l *Ledger) sealer() {
	defer l.wg.Done()
	var enc encoder
	for range l.sealWake {
		l.mu.Lock()
		b := l.open
		recs, buf, leaves := b.recs, b.buf, b.leaves
		l.mu.Unlock()
		n := min(len(recs), len(leaves))
		for {
			b.sealMu.Lock()
			if b.taken || b.hashed >= n {
				b.sealMu.Unlock()
				break
			}
			end := min(b.hashed+sealChunk, n)
			for i := b.hashed; i < end; i++ {
				r := &recs[i]
				leaves[i] = enc.leafOf(buf[r.off : r.off+r.n])
			}
			b.hashed = end
			b.sealMu.Unlock()
		}
	}
}

// place encodes entry i of req as the next record of batch b. l.mu is held.
// h is the id hash of a span.
func (l *Ledger) place(b *commitBatch, req *appendReq, i int, h uint64) {
	e := &req.entries[i]
	if len(b.recs) == 0 {
		// Size the batch like the previous one, so that it rarely grows.
		l.fill.buf = max(l.fill.buf-l.fill.buf/8, l.fill.last.buf)
		l.fill.recs = max(l.fill.recs-l.fill.recs/8, l.fill.last.recs)
		select {
		case buf := <-l.freeBufs:
			b.buf = buf
		default:
			b.buf = make([]byte, 0, min(l.fill.buf+l.fill.buf/4+4096, l.opts.MaxBatchBytes+l.opts.MaxEntryBytes+4096))
		}
		b.recs = make([]batchRec, 0, min(l.fill.last.recs+l.fill.last.recs/8+16, l.opts.MaxBatchEntries+1))
		select {
		case lv := <-l.freeLeaves:
			b.leaves = lv
		default:
			b.leaves = make([]ledgerfmt.Hash, min(2*l.fill.recs+64, l.opts.MaxBatchEntries+64))
		}
		b.wakeAt = sealChunk
		b.ts = l.nextTS()
		var tmp [40]byte
		copy(b.tsb[:], b.ts.AppendFormat(tmp[:0], tsLayout))
		b.first = l.nextSeq
	}
	seq := l.nextSeq
	l.nextSeq++
	off := len(b.buf)
	// The leaf and the crc are filled in later (sealer, syncer).
	b.buf = appendFrame(b.buf, seq, b.tsb[:], e.Kind, e.Body)
	b.recs = append(b.recs, batchRec{
		req: req, off: int32(off), n: int32(len(b.buf) - off - 1),
		hid: h, kind: e.Kind, tenant: e.Tenant, id: e.ID, this: e.This,
	})
	l.fill.last.buf, l.fill.last.recs = len(b.buf), len(b.recs)
	req.refs[i] = recRef{b: b, i: int32(len(b.recs) - 1)}
	if e.Kind == ledgerfmt.KindSpan {
		l.dedup.add(h)
		l.pending.add(pendingRec{h: h, seq: seq, batch: b, i: int32(len(b.recs) - 1)})
	}
}

// syncer takes the open batch, writes it with one write and syncs it with
// one fdatasync, from its own goroutine so that nothing stands between the
// write and the sync, then takes the next batch. Each written batch gets a
// helper goroutine that builds the batch tree, signs the batch and extends
// the Merkle tree while the sync runs, then, once the sync has succeeded,
// completes the batch (wakes its waiting requests, whose receipts are now
// ready) and hands it to the indexer. A helper starts its work only when the
// one before it is done, so batches are sealed, completed and indexed one
// at a time in commit order, and a batch of duplicates alone completes only
// after the batches holding their originals. At most two helpers exist at a
// time.
func (l *Ledger) syncer() {
	defer l.wg.Done()
	defer close(l.toIndex)
	none := make(chan struct{})
	close(none)
	// The ends of the last helper and of the one before it. At most two
	// helpers run at a time: a new one waits for the one two batches back,
	// so that a slow indexer (a helper blocked handing it a batch) slows the
	// syncer, then the committer and Append, instead of piling up batches.
	var helped, older <-chan struct{} = none, none
	defer func() { <-helped }()
	help := func(b *commitBatch, synced <-chan error, err error) {
		<-older
		older, helped = helped, l.help(helped, b, synced, err)
	}
	for {
		l.mu.Lock()
		for l.open.empty() && !l.stopping {
			l.dataCond.Wait()
		}
		if l.open.empty() && l.stopping {
			l.mu.Unlock()
			return
		}
		if d := l.opts.MaxDelay; d > 0 && len(l.open.recs) > 0 && !l.open.full(&l.opts) && !l.stopping {
			if wait := d - l.opts.Now().Sub(l.open.ts); wait > 0 {
				l.mu.Unlock()
				time.Sleep(wait)
				l.mu.Lock()
			}
		}
		b := l.open
		l.open = l.newBatch()
		l.mu.Unlock()
		l.spaceCond.Broadcast()

		if err := l.failed(); err != nil {
			help(b, nil, err)
			continue
		}
		if len(b.recs) == 0 {
			// Only duplicates of records in earlier batches.
			help(b, nil, nil)
			continue
		}
		start := time.Now()
		if err := l.writeBatch(b); err != nil {
			l.fail(err)
			help(b, nil, l.failed())
			continue
		}
		synced := make(chan error, 1)
		help(b, synced, nil)
		if err := l.active.f.SyncData(); err != nil {
			l.fail(fmt.Errorf("ledger: sync %s: %w", segmentName(l.active.num), err))
			synced <- l.failed()
			continue
		}
		l.stats.commits.Add(1)
		l.stats.appended.Add(uint64(len(b.recs)))
		l.stats.bytes.Add(uint64(b.size))
		if l.opts.OnCommit != nil {
			l.opts.OnCommit(len(b.recs), b.size, time.Since(start))
		}
		// Durable before complete: a request that has its receipt finds its
		// record readable (waitIndexed reads l.durable).
		l.durable.Store(&durableEnd{next: b.first + uint64(len(b.recs)), end: pos{seg: b.seg, off: b.segOff + int64(b.size)}})
		l.notify()
		synced <- nil
	}
}

// help starts the helper of batch b, which begins when prev (the helper
// before it) has ended, and returns the channel closed when it ends. With
// err it fails b's requests; without synced (a batch of duplicates alone)
// it completes b; otherwise it seals b, waits for the sync's result on
// synced and completes b and hands it to the indexer, or fails it.
func (l *Ledger) help(prev <-chan struct{}, b *commitBatch, synced <-chan error, err error) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-prev
		switch {
		case err != nil:
			l.abort(b, err)
		case synced == nil:
			l.complete(b)
		default:
			l.sealBatch(b)
			if err := <-synced; err != nil {
				l.abort(b, err)
				return
			}
			l.complete(b)
			l.toIndex <- b
		}
	}()
	return done
}

// writeBatch rotates the segment if needed, seals the batch's lines and
// writes them with one write.
func (l *Ledger) writeBatch(b *commitBatch) error {
	if l.active.size > 0 && l.active.size+int64(len(b.buf)) > l.opts.SegmentBytes {
		next, err := createSegment(l.fs, l.segDir, l.active.num+1)
		if err != nil {
			return err
		}
		if err := l.active.f.Close(); err != nil {
			next.f.Close()
			return fmt.Errorf("ledger: close sealed segment: %w", err)
		}
		l.active = next
	}
	b.seg, b.segOff = l.active.num, l.active.size
	// Seal the lines: with the leaves the sealer computed, then the rest.
	b.sealMu.Lock()
	b.taken = true
	hashed := b.hashed
	b.sealMu.Unlock()
	for i := range b.recs {
		r := &b.recs[i]
		line := b.buf[r.off : r.off+r.n]
		if i < hashed {
			r.leaf = b.leaves[i]
			fillLine(line, &r.leaf)
		} else {
			r.leaf = l.enc.sealLine(line)
		}
	}
	if b.leaves != nil {
		select {
		case l.freeLeaves <- b.leaves:
		default:
		}
		b.leaves = nil
	}
	// WriteAt may scribble on b.buf (vfs.File allows it): nothing reads its
	// bytes after this. Once WriteAt returns the memory is free again
	// (io.WriterAt must not retain it), so it goes to a later batch, which
	// writes every byte before reading it.
	b.size = len(b.buf)
	n, err := l.active.f.WriteAt(b.buf, l.active.size)
	select {
	case l.freeBufs <- b.buf[:0]:
	default:
	}
	b.buf = nil
	l.active.size += int64(n)
	if err != nil {
		return fmt.Errorf("ledger: write %s: %w", segmentName(l.active.num), err)
	}
	return nil
}

// sealBatch computes the batch tree, the tree root after the batch and the
// signed batch receipt.
func (l *Ledger) sealBatch(b *commitBatch) {
	leaves := make([]ledgerfmt.Hash, len(b.recs))
	for i := range b.recs {
		leaves[i] = b.recs[i].leaf
	}
	b.btree = newBatchTree(leaves)
	// The tree: the helpers run one at a time, in commit order, so they
	// share l.rng.
	select {
	case nodes := <-l.freeNodes:
		b.nodes = nodes
	default:
		b.nodes = make([]treeNode, 0, 2*len(b.recs)+64)
	}
	for i := range b.recs {
		l.rng.append(b.recs[i].leaf, func(level uint, index uint64, h *ledgerfmt.Hash) {
			b.nodes = append(b.nodes, treeNode{level: level, index: index, hash: *h})
		})
	}
	b.sizeAfter = l.rng.size
	b.rootAfter = l.rng.root()
	root := b.btree.root()
	b.receipt = ledgerfmt.BatchReceipt{
		Op:    ledgerfmt.OpAppend,
		Batch: ledgerfmt.BatchRef{First: b.first, Size: uint64(len(b.recs)), Root: root},
		KID:   l.signer.KeyID(),
		Sig:   l.signer.Sign(ledgerfmt.BatchStatement(l.signer.Origin(), b.first, uint64(len(b.recs)), root, b.ts)),
		TS:    ledgerfmt.Timestamp{Time: b.ts},
	}
}

// complete wakes the requests a durable batch completes; each assembles
// its receipts (buildResults).
func (l *Ledger) complete(b *commitBatch) {
	for _, req := range b.done {
		if req.last == b {
			close(req.done)
		}
	}
}

// abort fails the requests of a batch that was not made durable: those it
// completes (whose last entries it holds). A request with entries here and
// its last ones in a later batch fails with that batch, which is aborted
// too (a failure is final), so the committer, which may still be placing
// such a request, is the only one touching its err until then.
func (l *Ledger) abort(b *commitBatch, err error) {
	for _, req := range b.done {
		if req.last != b {
			continue
		}
		if req.err == nil {
			req.err = err
		}
		close(req.done)
	}
}

func (l *Ledger) notify() {
	l.notifyMu.Lock()
	close(l.notifyCh)
	l.notifyCh = make(chan struct{})
	l.notifyMu.Unlock()
}

// changed returns a channel closed at the next commit or index advance.
func (l *Ledger) changed() <-chan struct{} {
	l.notifyMu.Lock()
	defer l.notifyMu.Unlock()
	return l.notifyCh
}

// indexer applies durable batches to the tree files, the indexes and the
// receipts journal, and writes checkpoints.
func (l *Ledger) indexer() {
	defer l.wg.Done()
	tick := time.NewTicker(min(l.opts.CheckpointInterval, time.Second))
	defer tick.Stop()
	for {
		select {
		case b, ok := <-l.toIndex:
			if !ok {
				return
			}
			if l.indexErr.Load() != nil {
				continue // the indexes stopped at an earlier batch
			}
			if err := l.indexBatch(b); err != nil {
				err = fmt.Errorf("ledger: index: %w", err)
				l.indexErr.Store(&err)
				l.fail(err)
				l.notify()
				continue
			}
			// The tree state first: a reader that sees indexed advance
			// must find the tree there (RootAt, Prove).
			l.lastIndexed.Store(&indexedBatch{size: b.sizeAfter, root: b.rootAfter, at: pos{seg: b.seg, off: b.segOff + int64(b.size)}})
			l.indexed.Store(b.first + uint64(len(b.recs)))
			l.notify()
			if l.failed() == nil && l.checkpointDue(uint64(len(b.recs))) {
				if err := l.checkpoint(); err != nil {
					l.fail(err)
				}
			}
		case <-tick.C:
			if l.indexErr.Load() == nil && l.failed() == nil && l.checkpointDue(0) {
				if err := l.checkpoint(); err != nil {
					l.fail(err)
				}
			}
		}
	}
}

// indexedBatch is the tree state after the last indexed batch.
type indexedBatch struct {
	size uint64
	root ledgerfmt.Hash
	at   pos
}

// indexBatch writes one batch's tree nodes, receipts journal line,
// positions and batch entry, and adds its spans to the lookup indexes.
func (l *Ledger) indexBatch(b *commitBatch) error {
	if err := l.tree.appendNodes(b.nodes); err != nil {
		return err
	}
	select {
	case l.freeNodes <- b.nodes[:0]:
	default:
	}
	b.nodes = nil
	line, err := json.Marshal(&b.receipt)
	if err != nil {
		return err
	}
	if _, _, err := l.jrnl.append(b.ts, line); err != nil {
		return err
	}
	x := l.idx
	// WriteAt may scribble on the buffer; nothing reads it afterwards, and
	// the next batch overwrites it.
	positions := l.posBuf[:0]
	hs := l.spanHashes[:0]
	var lastTenant string
	var tenantHash uint64
	for i := range b.recs {
		r := &b.recs[i]
		positions = appendPos(positions, pos{seg: b.seg, off: b.segOff + int64(r.off), n: uint32(r.n)})
		if r.kind != ledgerfmt.KindSpan {
			continue
		}
		if i == 0 || r.tenant != lastTenant {
			lastTenant, tenantHash = r.tenant, l.hash.tenant(r.tenant)
		}
		hs = append(hs, spanHashes{seq: b.first + uint64(i), id: r.hid, thing: l.hash.thing(r.tenant, r.this), tenant: tenantHash})
	}
	l.spanHashes, l.posBuf = hs, positions
	if err := x.writePositions(b.first, positions); err != nil {
		return err
	}
	nb := x.batN.Load()
	if err := x.writeBatch(nb, appendBatchEntry(make([]byte, 0, batchEntrySize), &b.receipt)); err != nil {
		return err
	}
	if x.add(hs, b.first+uint64(len(b.recs)), pos{seg: b.seg, off: b.segOff + int64(b.size)}, nb+1) {
		x.wakeCompactor()
	}
	return x.failed()
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
