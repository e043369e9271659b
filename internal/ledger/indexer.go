package ledger

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
)

// indexer applies durable batches to the tree files, the indexes and the
// receipts journal, and writes checkpoints as they fall due.
type indexer struct {
	l       *Ledger
	batches chan *commitBatch // durable batches in commit order, from the syncer's helpers
	// Buffers reused from one batch to the next.
	spanHashes []spanHashes
	posBuf     []byte
}

func (ir *indexer) run() {
	l := ir.l
	defer l.wg.Done()
	tick := time.NewTicker(min(l.cfg.CheckpointInterval, time.Second))
	defer tick.Stop()
	for {
		select {
		case b, ok := <-ir.batches:
			if !ok {
				return
			}
			if l.indexErr.Load() != nil {
				continue // the indexes stopped at an earlier batch
			}
			if err := ir.indexBatch(b); err != nil {
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
func (ir *indexer) indexBatch(b *commitBatch) error {
	l := ir.l
	if err := l.tree.appendNodes(b.nodes); err != nil {
		return err
	}
	select {
	case l.syncer.freeNodes <- b.nodes[:0]:
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
	hash := l.hash
	// WriteAt may scribble on the buffer; nothing reads it afterwards, and
	// the next batch overwrites it.
	positions := ir.posBuf[:0]
	hs := ir.spanHashes[:0]
	var lastTenant string
	var tenantHash uint64
	for i := range b.recs {
		r := &b.recs[i]
		positions = appendPos(positions, pos{seg: b.seg, off: b.segOff + int64(r.off), n: uint32(r.n)})
		if r.kind != ledgerfmt.KindSpan {
			continue
		}
		if i == 0 || r.tenant != lastTenant {
			lastTenant, tenantHash = r.tenant, hash.tenant(r.tenant)
		}
		hs = append(hs, spanHashes{seq: b.first + uint64(i), id: r.hid, thing: hash.thing(r.tenant, r.this), tenant: tenantHash})
	}
	ir.spanHashes, ir.posBuf = hs, positions
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
