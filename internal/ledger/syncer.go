package ledger

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
)

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
// time. With Config.Publish, a helper publishes its batch once it is durable
// and only then makes it visible, completes it and indexes it; the syncer
// meanwhile writes and syncs the next.
type syncer struct {
	l      *Ledger
	active *activeSegment // the segment appended to
	enc    encoder        // seals the lines the sealer did not reach
	// The tree as far as batches were sealed: extended by the helpers,
	// which run one at a time in commit order.
	rng compactRange
	// Node buffers of indexed batches, given back by the indexer.
	freeNodes chan []treeNode
}

func (s *syncer) run() {
	l := s.l
	defer l.wg.Done()
	defer close(l.indexer.batches)
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
		older, helped = helped, s.help(helped, b, synced, err)
	}
	for {
		b := s.takeBatch()
		if b == nil {
			return
		}
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
		if err := s.writeBatch(b); err != nil {
			l.fail(err)
			help(b, nil, l.failed())
			continue
		}
		synced := make(chan error, 1)
		help(b, synced, nil)
		if err := s.active.f.SyncData(); err != nil {
			l.fail(fmt.Errorf("ledger: sync %s: %w", segmentName(s.active.num), err))
			synced <- l.failed()
			continue
		}
		if l.cfg.Publish == nil {
			s.published(b, time.Since(start))
		} else {
			b.took = time.Since(start) // published by its helper
		}
		synced <- nil
	}
}

// takeBatch waits for the open batch to hold something (or, with MaxDelay,
// to fill for a while) and takes it, leaving a new one open. It returns nil
// once the committer has stopped and nothing is left.
func (s *syncer) takeBatch() *commitBatch {
	cfg := &s.l.cfg
	slot := &s.l.slot
	slot.mu.Lock()
	for slot.open.empty() && !slot.stopping {
		slot.dataCond.Wait()
	}
	if slot.open.empty() && slot.stopping {
		slot.mu.Unlock()
		return nil
	}
	if d := cfg.MaxDelay; d > 0 && len(slot.open.recs) > 0 && !slot.open.full(cfg) && !slot.stopping {
		if wait := d - cfg.Now().Sub(slot.open.ts); wait > 0 {
			slot.mu.Unlock()
			time.Sleep(wait)
			slot.mu.Lock()
		}
	}
	b := slot.open
	slot.open = &commitBatch{}
	slot.mu.Unlock()
	slot.spaceCond.Broadcast()
	return b
}

// published counts a durable batch and publishes its end to readers.
func (s *syncer) published(b *commitBatch, took time.Duration) {
	l := s.l
	l.stats.commits.Add(1)
	l.stats.appended.Add(uint64(len(b.recs)))
	l.stats.bytes.Add(uint64(b.size))
	if l.cfg.OnCommit != nil {
		l.cfg.OnCommit(len(b.recs), b.size, took)
	}
	// Durable before complete: a request that has its receipt finds its
	// record readable (waitIndexed reads l.durable).
	l.durable.Store(&durableEnd{next: b.first + uint64(len(b.recs)), end: pos{seg: b.seg, off: b.segOff + int64(b.size)}})
	l.notify()
}

// help starts the helper of batch b, which begins when prev (the helper
// before it) has ended, and returns the channel closed when it ends (see
// sealAndComplete).
func (s *syncer) help(prev <-chan struct{}, b *commitBatch, synced <-chan error, err error) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-prev
		s.sealAndComplete(b, synced, err)
	}()
	return done
}

// sealAndComplete is a helper's work. With err it fails b's requests;
// without synced (a batch of duplicates alone) it completes b; otherwise it
// seals b, waits for the sync's result on synced, publishes b (with
// Config.Publish) and completes b and hands it to the indexer, or fails it.
// A publishing ledger fails every batch after a failure: the helpers run
// in commit order, so none completes after one that was not published.
func (s *syncer) sealAndComplete(b *commitBatch, synced <-chan error, err error) {
	publishing := s.l.cfg.Publish != nil
	if err == nil && publishing {
		err = s.l.failed()
	}
	switch {
	case err != nil:
		b.abort(err)
	case synced == nil:
		b.complete()
	default:
		s.sealBatch(b)
		if err := <-synced; err != nil {
			b.abort(err)
			return
		}
		if publishing {
			if err := s.publish(b); err != nil {
				b.abort(err)
				return
			}
		}
		b.complete()
		s.l.indexer.batches <- b
	}
}

// publish hands a durable batch to Config.Publish and, once that returned
// nil, makes the batch visible to readers. A failure is final: the ledger
// turns read-only.
func (s *syncer) publish(b *commitBatch) error {
	l := s.l
	if err := l.failed(); err != nil {
		return err // since the helper began (the indexer's)
	}
	c := Commit{First: b.first, Lines: b.lines, Receipt: b.receipt}
	b.lines = nil
	if err := l.cfg.Publish(context.Background(), c); err != nil {
		l.fail(fmt.Errorf("%w: commit [%d,+%d): %w", ErrPublish, b.first, len(b.recs), err))
		return l.failed()
	}
	s.published(b, b.took)
	return nil
}

// writeBatch rotates the segment if needed, seals the batch's lines and
// writes them with one write.
func (s *syncer) writeBatch(b *commitBatch) error {
	l := s.l
	if s.active.size > 0 && s.active.size+int64(len(b.buf)) > int64(l.cfg.SegmentBytes) {
		// A sealed segment holds its records and nothing after them.
		if err := s.active.cut(); err != nil {
			return err
		}
		next, err := createSegment(l.fs, l.segDir, s.active.num+1)
		if err != nil {
			return err
		}
		if err := s.active.f.Close(); err != nil {
			next.f.Close()
			return fmt.Errorf("ledger: close sealed segment: %w", err)
		}
		s.active = next
	}
	b.seg, b.segOff = s.active.num, s.active.size
	if !b.applied {
		s.sealLines(b)
	}
	if l.cfg.Publish != nil {
		// WriteAt may scribble on b.buf; Publish gets the lines as written.
		b.lines = bytes.Clone(b.buf)
	}
	// WriteAt may scribble on b.buf (vfs.File allows it): nothing reads its
	// bytes after this. Once WriteAt returns the memory is free again
	// (io.WriterAt must not retain it), so it goes to a later batch, which
	// writes every byte before reading it.
	b.size = len(b.buf)
	n, err := s.active.f.WriteAt(b.buf, s.active.size)
	select {
	case l.committer.freeBufs <- b.buf[:0]:
	default:
	}
	b.buf = nil
	s.active.size += int64(n)
	if err != nil {
		return fmt.Errorf("ledger: write %s: %w", segmentName(s.active.num), err)
	}
	return s.active.pad(int64(n), int64(l.cfg.Preallocate))
}

// sealLines fills in the leaves and CRCs of the batch's lines: with the
// leaves the sealer computed, then the rest. Taking the batch stops the
// sealer.
func (s *syncer) sealLines(b *commitBatch) {
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
			r.leaf = s.enc.sealLine(line)
		}
	}
	if b.leaves != nil {
		select {
		case s.l.committer.freeLeaves <- b.leaves:
		default:
		}
		b.leaves = nil
	}
}

// sealBatch computes the batch tree, the tree root after the batch and the
// signed batch receipt. An applied batch came with its receipt, which Apply
// checked against its leaves.
func (s *syncer) sealBatch(b *commitBatch) {
	if !b.applied {
		leaves := make([]ledgerfmt.Hash, len(b.recs))
		for i := range b.recs {
			leaves[i] = b.recs[i].leaf
		}
		b.btree = newBatchTree(leaves)
	}
	// The tree: the helpers run one at a time, in commit order, so they
	// share s.rng.
	select {
	case nodes := <-s.freeNodes:
		b.nodes = nodes
	default:
		b.nodes = make([]treeNode, 0, 2*len(b.recs)+64)
	}
	for i := range b.recs {
		s.rng.append(b.recs[i].leaf, func(level uint, index uint64, h *ledgerfmt.Hash) {
			b.nodes = append(b.nodes, treeNode{level: level, index: index, hash: *h})
		})
	}
	b.sizeAfter = s.rng.size
	b.rootAfter = s.rng.root()
	if b.applied {
		return
	}
	root := b.btree.root()
	signer := s.l.signer
	b.receipt = ledgerfmt.BatchReceipt{
		Op:    ledgerfmt.OpAppend,
		Batch: ledgerfmt.BatchRef{First: b.first, Size: uint64(len(b.recs)), Root: root},
		KID:   signer.KeyID(),
		Sig:   signer.Sign(ledgerfmt.BatchStatement(signer.Origin(), b.first, uint64(len(b.recs)), root, b.ts)),
		TS:    ledgerfmt.Timestamp{Time: b.ts},
	}
}
