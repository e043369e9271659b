package ledger

import (
	"bytes"
	"fmt"
	"time"

	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
)

// committer takes requests in arrival order, resolves duplicates, assigns
// sequence numbers and frames the records into the open batch. Its state
// is its goroutine's alone (recovery sets it before the goroutine starts).
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
type committer struct {
	l    *Ledger
	reqs chan *appendReq // from Append; closed by Close

	nextSeq uint64
	lastTS  time.Time
	dedup   *dedupFilter // every stored or pending (tenant, id) hash
	pending pendingSet
	// fill remembers batch sizes, to size new batches: last is the batch
	// being filled, buf and recs a decaying maximum.
	fill struct {
		buf, recs int
		last      struct{ buf, recs int }
	}
	// Buffers of written batches, given back by the syncer.
	freeBufs   chan []byte
	freeLeaves chan []ledgerfmt.Hash

	places [commitChunk]placement // the chunk being resolved
}

// commitChunk is how many entries of a request are resolved at a time,
// outside the lock, then placed under it.
const commitChunk = 16

// placement is what the duplicate check found for one entry.
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

func (c *committer) run() {
	l := c.l
	defer l.wg.Done()
	defer close(l.sealer.wake)
	defer func() {
		l.slot.mu.Lock()
		l.slot.stopping = true
		l.slot.mu.Unlock()
		l.slot.dataCond.Broadcast()
	}()
	for req := range c.reqs {
		if req.apply != nil {
			c.applyBatch(req)
			continue
		}
		c.commit(req)
	}
}

// commit resolves and places the entries of one request, a chunk at a
// time, and hands the request to the batch that completes it.
func (c *committer) commit(req *appendReq) {
	if err := c.l.failed(); err != nil {
		req.err = err
		close(req.done)
		return
	}
	indexedBefore := c.l.indexed.Load()
	c.pending.prune(indexedBefore)
	var last *commitBatch
	for start := 0; start < len(req.entries); start += commitChunk {
		places := c.places[:min(commitChunk, len(req.entries)-start)]
		if err := c.resolveDuplicates(req, start, places); err != nil {
			req.err = err
			break
		}
		if err := c.answerStored(req, start, places); err != nil {
			req.err = err
			break
		}
		last = c.placeChunk(req, start, places, last)
	}
	c.completeWith(req, last)
}

// resolveDuplicates fills places for entries [start, start+len(places)) of
// req, outside the lock. The filter is probed in a loop of its own, so that
// its cache misses overlap.
func (c *committer) resolveDuplicates(req *appendReq, start int, places []placement) error {
	hash := c.l.hash
	for i := range places {
		e := &req.entries[start+i]
		pl := &places[i]
		*pl = placement{}
		if e.Kind == ledgerfmt.KindSpan {
			pl.span, pl.h = true, hash.id(e.Tenant, e.ID)
		}
	}
	for i := range places {
		pl := &places[i]
		pl.maybe = pl.span && c.dedup.has(pl.h)
	}
	for i := range places {
		e := &req.entries[start+i]
		pl := &places[i]
		if !pl.maybe {
			continue
		}
		if p, ok := c.pending.find(pl.h, e.Tenant, e.ID); ok {
			pl.pending, pl.p = true, p
			continue
		}
		seq, rec, ok, err := c.l.lookupID(pl.h, e.Tenant, e.ID)
		if err != nil {
			return c.l.lookupFailed(fmt.Errorf("ledger: index lookup: %w", err))
		}
		if ok {
			pl.stored, pl.dupSeq, pl.conflict = true, seq, !bytes.Equal(rec.Body, e.Body)
		}
	}
	return nil
}

// answerStored gives the entries that duplicate a stored record that
// record's receipt.
func (c *committer) answerStored(req *appendReq, start int, places []placement) error {
	l := c.l
	for i := range places {
		pl := &places[i]
		if !pl.stored {
			continue
		}
		e := &req.entries[start+i]
		r, err := l.receiptBySeq(pl.dupSeq, e.Tenant, e.ID)
		if err != nil {
			return l.lookupFailed(fmt.Errorf("ledger: receipt of seq %d: %w", pl.dupSeq, err))
		}
		st := Duplicate
		if pl.conflict {
			st = Conflict
		}
		req.results[start+i] = Result{Status: st, Receipt: r}
		l.stats.duplicates.Add(1)
	}
	return nil
}

// placeChunk places the resolved entries [start, start+len(places)) of req
// in the open batch, waiting for room: new records are framed, copies of
// pending spans refer to their original. last is the batch holding the
// request's entries so far; placeChunk returns it updated.
func (c *committer) placeChunk(req *appendReq, start int, places []placement, last *commitBatch) *commitBatch {
	slot := &c.l.slot
	slot.mu.Lock()
	for slot.open.full(&c.l.cfg) {
		slot.spaceCond.Wait()
	}
	b := slot.open
	for i := range places {
		pl := &places[i]
		if pl.stored {
			continue
		}
		if pl.pending {
			b.dups = append(b.dups, req)
			req.refs[start+i] = recRef{b: pl.p.batch, i: pl.p.i, dup: true}
			last = b
			continue
		}
		e := &req.entries[start+i]
		// A copy of a span placed since the check above: earlier in this
		// chunk.
		if pl.span && c.dedup.has(pl.h) {
			if p, ok := c.pending.find(pl.h, e.Tenant, e.ID); ok {
				b.dups = append(b.dups, req)
				req.refs[start+i] = recRef{b: p.batch, i: p.i, dup: true}
				last = b
				continue
			}
		}
		if b.full(&c.l.cfg) {
			// Filled within the chunk: the rest go to the next batch, so
			// that a commit exceeds MaxBatchBytes by one record at most.
			slot.dataCond.Signal()
			for slot.open.full(&c.l.cfg) {
				slot.spaceCond.Wait()
			}
			b = slot.open
		}
		c.place(b, req, start+i, pl.h)
		last = b
	}
	if start+len(places) == len(req.entries) && last != nil {
		// The request completes with the batch holding its last entries,
		// which is the open one.
		b.done = append(b.done, req)
		req.last = b
	}
	if len(b.recs) >= b.wakeAt {
		b.wakeAt = len(b.recs) + sealChunk
		c.l.sealer.nudge()
	}
	slot.mu.Unlock()
	slot.dataCond.Signal()
	return last
}

// completeWith hands req, whose entries are all resolved or placed, to the
// batch that completes it; last is the batch holding its last placed
// entries, nil when none was placed.
func (c *committer) completeWith(req *appendReq, last *commitBatch) {
	if last == nil {
		// Failed, or every entry was a duplicate of a stored record. A
		// request partly placed in a batch is completed by a batch.
		close(req.done)
		return
	}
	if req.last != nil {
		return
	}
	slot := &c.l.slot
	slot.mu.Lock()
	// The batch that took the last entries may be sealed already; the
	// request then completes with whatever batch is open now, which
	// completes after it.
	slot.open.done = append(slot.open.done, req)
	req.last = slot.open
	slot.mu.Unlock()
	slot.dataCond.Signal()
}

// place encodes entry i of req as the next record of batch b. The slot's
// lock is held. h is the id hash of a span.
func (c *committer) place(b *commitBatch, req *appendReq, i int, h uint64) {
	e := &req.entries[i]
	if len(b.recs) == 0 {
		c.startBatch(b)
	}
	seq := c.nextSeq
	c.nextSeq++
	off := len(b.buf)
	// The leaf and the crc are filled in later (sealer, syncer).
	b.buf = appendFrame(b.buf, seq, b.tsb[:], e.Kind, e.Body)
	b.recs = append(b.recs, batchRec{
		req: req, off: int32(off), n: int32(len(b.buf) - off - 1),
		hid: h, kind: e.Kind, tenant: e.Tenant, id: e.ID, this: e.This,
	})
	c.fill.last.buf, c.fill.last.recs = len(b.buf), len(b.recs)
	req.refs[i] = recRef{b: b, i: int32(len(b.recs) - 1)}
	if e.Kind == ledgerfmt.KindSpan {
		c.dedup.add(h)
		c.pending.add(pendingRec{h: h, seq: seq, batch: b, i: int32(len(b.recs) - 1)})
	}
}

// startBatch readies an empty batch for its first record: buffers sized
// like the previous batch's, so that they rarely grow, its ts and its first
// sequence number.
func (c *committer) startBatch(b *commitBatch) {
	cfg := &c.l.cfg
	c.fill.buf = max(c.fill.buf-c.fill.buf/8, c.fill.last.buf)
	c.fill.recs = max(c.fill.recs-c.fill.recs/8, c.fill.last.recs)
	select {
	case buf := <-c.freeBufs:
		b.buf = buf
	default:
		b.buf = make([]byte, 0, min(c.fill.buf+c.fill.buf/4+4096, int(cfg.MaxBatchBytes)+cfg.MaxEntryBytes+4096))
	}
	b.recs = make([]batchRec, 0, min(c.fill.last.recs+c.fill.last.recs/8+16, cfg.MaxBatchEntries+1))
	select {
	case lv := <-c.freeLeaves:
		b.leaves = lv
	default:
		b.leaves = make([]ledgerfmt.Hash, min(2*c.fill.recs+64, cfg.MaxBatchEntries+64))
	}
	b.wakeAt = sealChunk
	b.ts = c.nextTS()
	var tmp [40]byte
	copy(b.tsb[:], b.ts.AppendFormat(tmp[:0], tsLayout))
	b.first = c.nextSeq
}

// nextTS returns the ts of a new commit: now in microseconds, and always
// after the previous commit's.
func (c *committer) nextTS() time.Time {
	ts := c.l.cfg.Now().UTC().Truncate(time.Microsecond)
	if !ts.After(c.lastTS) {
		ts = c.lastTS.Add(time.Microsecond)
	}
	c.lastTS = ts
	return ts
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
