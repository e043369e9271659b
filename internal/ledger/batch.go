package ledger

import (
	"sync"
	"time"

	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
)

// The write path is a pipeline of stages, each a type with its own file and
// goroutine and the state it alone touches:
//
//	Append ──reqs──▶ committer ──open batch──▶ syncer ──helpers──▶ indexer
//	                 (commit.go)   ▲  (slot)   (syncer.go)         (indexer.go)
//	                               └── sealer (sealer.go)
//
// The committer resolves duplicates and frames records into the open batch
// (batchSlot), which the sealer hashes ahead of the syncer; the syncer takes
// the whole batch, writes and syncs it, and a helper per batch seals it
// (batch tree, signature, Merkle tree) and completes its requests; the
// indexer applies durable batches to the derived files. Buffers of written
// batches flow back to the stage that fills them (freeBufs, freeLeaves,
// freeNodes).

// appendReq is one call of Append, from the appender to the committer and
// back.
type appendReq struct {
	entries []Entry
	results []Result
	refs    []recRef // where each entry's receipt comes from
	done    chan struct{}
	err     error
	last    *commitBatch // the batch that completes this request
	// apply is the batch of a commit given to Apply, checked and whole;
	// entries, results and refs are then unused.
	apply *commitBatch
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

	// applied: the batch is a commit given to Apply. Its lines are sealed,
	// its leaves in recs and its receipt set; nothing is added to it.
	applied bool
	// lines is a copy of the written lines, kept for Config.Publish, and
	// took the time the write and sync took.
	lines []byte
	took  time.Duration

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

func (b *commitBatch) full(cfg *Config) bool {
	return b.applied || len(b.recs) >= cfg.MaxBatchEntries || len(b.buf) >= int(cfg.MaxBatchBytes)
}

// complete wakes the requests a durable batch completes; each assembles
// its receipts (Ledger.buildResults).
func (b *commitBatch) complete() {
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
func (b *commitBatch) abort(err error) {
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

// batchSlot holds the open batch: the committer fills it, the sealer hashes
// what is in it, the syncer takes it and leaves a new one.
type batchSlot struct {
	mu        sync.Mutex
	open      *commitBatch
	dataCond  *sync.Cond // the open batch has something
	spaceCond *sync.Cond // the open batch was taken
	stopping  bool       // the committer has stopped
}

func (s *batchSlot) init() {
	s.open = &commitBatch{}
	s.dataCond = sync.NewCond(&s.mu)
	s.spaceCond = sync.NewCond(&s.mu)
}
