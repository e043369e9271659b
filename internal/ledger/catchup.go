package ledger

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
)

// catchUp applies the records read at open to the tree, the index and the
// receipts journal, each from its own starting point.
type catchUp struct {
	l                                *Ledger
	rng                              compactRange
	treeFrom, indexFrom, journalFrom uint64
	next                             uint64 // the sequence number expected next
	nextPos                          pos    // and where it starts
	lastTS                           time.Time
	lines                            int // records read, for progress

	nodes   []treeNode
	scratch []byte

	// The index catch-up; idx is nil when read-only.
	idx      *index
	posFirst uint64
	posBuf   []byte
	spans    []spanHashes
	batches  uint64 // batch entries written

	// limit ends the scan at that sequence number (a read-only view).
	limit uint64
	// ckpt is the latest signed checkpoint: a bad record it covers is no
	// torn tail.
	ckpt *ledgerfmt.Checkpoint
	// leafFrom: the leaf hashes of records from this one on are checked.
	leafFrom uint64
	// When every record is checked at open, the positions and batch
	// entries before indexFrom are compared with them.
	posChk, batChk *seqReader
	batChecked     uint64

	// The current commit (run of records with the same ts).
	runTS     time.Time
	runFirst  uint64
	runLeaves []ledgerfmt.Hash
}

// scanFrom reads the segments segs, the first from start, to their end or
// to the view's limit, and returns where the records read end.
func (c *catchUp) scanFrom(segs []uint32, start pos) (pos, error) {
	l := c.l
	var total, done int64
	for _, n := range segs {
		if st, err := l.fs.Stat(l.segs.path(n)); err == nil {
			total += st.Size()
		}
	}
	total -= start.off
	end := start
	for i, n := range segs {
		last := i == len(segs)-1
		from := int64(0)
		if i == 0 {
			from = start.off
		}
		endOff, err := c.scanSegment(n, from, last, func(d int64) {
			if l.cfg.Progress != nil {
				l.cfg.Progress(done+d, total)
			}
		})
		if errors.Is(err, errStopScan) {
			return pos{seg: n, off: endOff}, nil
		}
		if err != nil {
			return end, err
		}
		done += endOff - from
		end = pos{seg: n, off: endOff}
	}
	return end, nil
}

func (c *catchUp) scanSegment(n uint32, from int64, last bool, progress func(int64)) (int64, error) {
	l := c.l
	f, err := l.fs.Open(l.segs.path(n))
	if err != nil {
		return 0, fmt.Errorf("ledger: open segment %s: %w", segmentName(n), err)
	}
	defer f.Close()
	size, err := recordsEnd(f)
	if err != nil {
		return 0, fmt.Errorf("ledger: read segment %s: %w", segmentName(n), err)
	}
	if from > size {
		if l.readOnly {
			l.roProblem = &CorruptError{Segment: segmentName(n), Offset: size, Seq: c.next, Reason: "segment shorter than the index says"}
			return size, errStopScan
		}
		return 0, &CorruptError{Segment: segmentName(n), Offset: size, Seq: c.next,
			Reason: fmt.Sprintf("the segment ends at %d but acknowledged records reach %d: acknowledged records are missing", size, from)}
	}
	sc := newLineScanner(f, from, size)
	for {
		if c.next >= c.limit {
			return sc.offset(), errStopScan
		}
		line, at, err := sc.next()
		if errors.Is(err, io.EOF) {
			if len(sc.partial()) == 0 {
				return at, nil
			}
			return c.torn(n, at, size, last, "partial record at the end of the segment")
		}
		if err != nil {
			return 0, fmt.Errorf("ledger: read segment %s: %w", segmentName(n), err)
		}
		// Records before the catch-up proper (checked in full at open) are
		// checked by their CRC; the leaf hashes of the rest are recomputed,
		// as the tree is built from them.
		r, err := decodeRecordCheck(line, &c.scratch, c.next >= c.leafFrom)
		switch {
		case err != nil:
			return c.torn(n, at, size, last, err.Error())
		case r.Seq != c.next:
			return c.torn(n, at, size, last, fmt.Sprintf("sequence %d where %d was expected", r.Seq, c.next))
		case r.TS.Before(c.lastTS):
			return c.torn(n, at, size, last, "ts goes backwards")
		}
		if err := c.apply(r, pos{seg: n, off: at, n: uint32(len(line))}); err != nil {
			return 0, err
		}
		if c.lines++; c.lines%progressEvery == 0 {
			progress(at - from)
		}
	}
}

// torn handles an invalid record at offset at of segment n.
func (c *catchUp) torn(n uint32, at, size int64, last bool, reason string) (int64, error) {
	l := c.l
	ckpt := c.ckpt
	cerr := &CorruptError{Segment: segmentName(n), Offset: at, Seq: c.next, Reason: reason}
	if l.readOnly {
		// Inspection reads up to the problem and reports it, nothing more.
		l.log.Warn("unreadable records left in place (read-only)", "err", cerr)
		l.roProblem = cerr
		return at, errStopScan
	}
	switch {
	case !last:
		return 0, cerr
	case size-at > l.cfg.maxTornBytes():
		cerr.Reason += fmt.Sprintf(" (%d bytes before the end: more than a crash can leave unsynced)", size-at)
		return 0, cerr
	case ckpt != nil && c.next < ckpt.Size:
		cerr.Reason += fmt.Sprintf(" (inside the signed checkpoint of size %d)", ckpt.Size)
		return 0, cerr
	case c.next < l.damagedBelow:
		cerr.Reason += fmt.Sprintf(" (among the %d records that were durable when damage was found)", l.damagedBelow)
		return 0, cerr
	}
	broken, err := cutTail(l.fs, l.segs.path(n), at, size, "broken")
	if err != nil {
		return 0, fmt.Errorf("ledger: move torn tail aside: %w", err)
	}
	l.segs.forget(n)
	l.log.Warn("torn tail moved aside", "segment", segmentName(n), "offset", at, "bytes", size-at,
		"kept_in", l.fs.PathBase(broken), "reason", reason)
	return at, nil
}

func (c *catchUp) apply(r Record, p pos) error {
	if r.TS != c.runTS || len(c.runLeaves) == 0 {
		if err := c.endRun(); err != nil {
			return err
		}
		c.runTS, c.runFirst = r.TS, r.Seq
	}
	c.runLeaves = append(c.runLeaves, r.Leaf)
	if r.Seq >= c.treeFrom {
		c.rng.append(r.Leaf, func(level uint, index uint64, h *ledgerfmt.Hash) {
			c.nodes = append(c.nodes, treeNode{level: level, index: index, hash: *h})
		})
		if len(c.nodes) >= 1<<16 {
			if err := c.flushNodes(); err != nil {
				return err
			}
		}
	}
	if c.posChk != nil && r.Seq < c.indexFrom {
		var b [posEntrySize]byte
		if err := c.posChk.read(b[:]); err != nil || decodePos(b[:]) != p {
			return &rebuildNeeded{what: rebuildIndex, reason: fmt.Sprintf("positions entry %d does not match the record", r.Seq),
				err: &CorruptError{File: "ledger/index/positions", Offset: int64(r.Seq) * posEntrySize, Reason: "does not match the records"}}
		}
	}
	if r.Seq >= c.indexFrom && c.idx != nil {
		if len(c.posBuf) == 0 {
			c.posFirst = r.Seq
		}
		c.posBuf = appendPos(c.posBuf, p)
		if r.Kind == ledgerfmt.KindSpan {
			var k spanKeys
			if err := json.Unmarshal(r.Body, &k); err != nil {
				return &CorruptError{Segment: segmentName(p.seg), Offset: p.off, Seq: r.Seq, Reason: "span body is not JSON: " + err.Error()}
			}
			h := c.l.hash
			c.spans = append(c.spans, spanHashes{seq: r.Seq, id: h.id(k.Tenant, k.ID), thing: h.thing(k.Tenant, k.This), tenant: h.tenant(k.Tenant)})
		}
	}
	c.next = r.Seq + 1
	c.nextPos = pos{seg: p.seg, off: p.end()}
	c.lastTS = r.TS
	return nil
}

// endRun finishes the commit being read: its batch receipt goes to the
// index and the journal where they need it, and its spans to the lookups.
func (c *catchUp) endRun() error {
	if len(c.runLeaves) == 0 {
		return nil
	}
	l := c.l
	needIndex := c.runFirst >= c.indexFrom && c.idx != nil
	needJournal := c.runFirst >= c.journalFrom && !l.readOnly
	if c.batChk != nil && c.runFirst < c.indexFrom && c.batChecked < c.batches {
		if err := c.checkBatchEntry(); err != nil {
			return err
		}
	}
	if needIndex || needJournal {
		bt := newBatchTree(c.runLeaves)
		n := uint64(len(c.runLeaves))
		br := ledgerfmt.BatchReceipt{
			Op:    ledgerfmt.OpAppend,
			Batch: ledgerfmt.BatchRef{First: c.runFirst, Size: n, Root: bt.root()},
			KID:   l.signer.KeyID(),
			Sig:   l.signer.Sign(ledgerfmt.BatchStatement(l.signer.Origin(), c.runFirst, n, bt.root(), c.runTS)),
			TS:    ledgerfmt.Timestamp{Time: c.runTS},
		}
		if needIndex {
			if err := c.idx.writeBatch(c.batches, appendBatchEntry(make([]byte, 0, batchEntrySize), &br)); err != nil {
				return err
			}
			c.batches++
		}
		if needJournal {
			line, err := json.Marshal(&br)
			if err != nil {
				return err
			}
			if _, _, err := l.jrnl.append(c.runTS, line); err != nil {
				return err
			}
		}
	}
	c.runLeaves = c.runLeaves[:0]
	if needIndex {
		full := c.idx.add(c.spans, c.next, c.nextPos, c.batches)
		c.spans = c.spans[:0]
		if full || len(c.posBuf) >= 1<<20 {
			if err := c.flushPositions(); err != nil {
				return err
			}
		}
		if full {
			// The compactor is not running yet: write the runs now. A
			// damaged run met by a merge rebuilds the index.
			if err := c.idx.compact(); err != nil {
				if errors.Is(err, ErrCorrupt) {
					return &rebuildNeeded{what: rebuildIndex, reason: err.Error(), err: err}
				}
				return err
			}
		}
	}
	return nil
}

func (c *catchUp) flushPositions() error {
	if len(c.posBuf) == 0 {
		return nil
	}
	err := c.idx.writePositions(c.posFirst, c.posBuf)
	c.posBuf = nil
	return err
}

func (c *catchUp) flushNodes() error {
	if len(c.nodes) == 0 {
		return nil
	}
	if c.l.readOnly {
		c.nodes = c.nodes[:0]
		return nil
	}
	err := c.l.tree.appendNodes(c.nodes)
	c.nodes = c.nodes[:0]
	return err
}

func (c *catchUp) finish() error {
	if err := c.endRun(); err != nil {
		return err
	}
	if err := c.flushNodes(); err != nil {
		return err
	}
	if c.idx != nil {
		return c.flushPositions()
	}
	return nil
}

// checkIndexFiles prepares the comparison of the index files with the
// records (every record is read at open) and checks every lookup run's
// blocks: damage to any of them rebuilds the index.
func (c *catchUp) checkIndexFiles() error {
	x := c.idx
	if c.indexFrom == 0 {
		return nil
	}
	c.posChk = newSeqReader(x.posF, "ledger/index/positions")
	c.batChk = newSeqReader(x.batF, "ledger/index/batches")
	for k := range numKinds {
		if k == kindID {
			continue // read whole by fillFilter
		}
		for _, r := range x.runs[k] {
			if err := r.each(func(entry) {}); err != nil {
				return &rebuildNeeded{what: rebuildIndex, reason: err.Error(), err: err}
			}
		}
	}
	return nil
}

// checkBatchEntry compares the next batch entry with the commit just read.
func (c *catchUp) checkBatchEntry() error {
	b := make([]byte, batchEntrySize)
	at := c.batChecked
	c.batChecked++
	bad := func(why string) error {
		return &rebuildNeeded{what: rebuildIndex, reason: fmt.Sprintf("batch entry %d %s", at, why),
			err: &CorruptError{File: "ledger/index/batches", Offset: int64(at) * batchEntrySize, Reason: why}}
	}
	if err := c.batChk.read(b); err != nil {
		return bad(err.Error())
	}
	br, err := decodeBatchEntry(b)
	if err != nil {
		return bad("fails its checksum")
	}
	if br.Batch.First != c.runFirst || br.Batch.Size != uint64(len(c.runLeaves)) || br.TS.UnixMicro() != c.runTS.UnixMicro() ||
		br.Batch.Root != newBatchTree(c.runLeaves).root() {
		return bad("does not match the records")
	}
	return nil
}
