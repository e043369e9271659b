package ledger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
)

// Reads see durable records only. Lookups by key go through the indexes,
// which trail the commits by a few milliseconds at most; a lookup first waits
// until the indexes hold everything durable when it started.

// waitIndexed waits until every record durable now is indexed.
func (l *Ledger) waitIndexed(ctx context.Context) error {
	d := l.durable.Load()
	if d == nil {
		return nil
	}
	for l.indexed.Load() < d.next {
		ch := l.changed()
		if p := l.indexErr.Load(); p != nil && l.indexed.Load() < d.next {
			return *p
		}
		if l.indexed.Load() >= d.next {
			break
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (l *Ledger) readRecord(p pos, seq uint64) (Record, error) {
	line, err := l.segs.readLine(p, nil)
	if err != nil {
		return Record{}, err
	}
	var scratch []byte
	r, err := decodeRecord(line, &scratch)
	if err != nil {
		cerr := &CorruptError{Segment: segmentName(p.seg), Offset: p.off, Seq: seq, Reason: err.Error()}
		// The index found the right record, whole (its seq, and a line
		// ending where the next begins; records hold no newline): the
		// record itself is damaged, not the index.
		if s, ok := lineSeq(line); ok && s == seq && bytes.IndexByte(line, '\n') < 0 {
			cerr.inRecords = true
			l.recordsDamaged(cerr)
		}
		return Record{}, cerr
	}
	if r.Seq != seq {
		return Record{}, &CorruptError{Segment: segmentName(p.seg), Offset: p.off, Seq: seq, Reason: fmt.Sprintf("index points at seq %d", r.Seq)}
	}
	return r, nil
}

func (l *Ledger) checkReadable() error {
	l.closeMu.Lock()
	defer l.closeMu.Unlock()
	if l.closed {
		return ErrClosed
	}
	if l.idx == nil {
		return fmt.Errorf("%w: no index", ErrNotFound)
	}
	return nil
}

// readIndexed reads the record the positions index places at seq.
func (l *Ledger) readIndexed(seq uint64) (Record, pos, error) {
	p, ok, err := l.idx.position(seq)
	if err != nil {
		return Record{}, pos{}, err
	}
	if !ok {
		return Record{}, pos{}, fmt.Errorf("%w: index: no position for seq %d", ErrCorrupt, seq)
	}
	if err := l.checkPos(p, seq); err != nil {
		return Record{}, pos{}, err
	}
	r, err := l.readRecord(p, seq)
	return r, p, err
}

// checkPos checks that a position read from the index can be one of a
// durable record, before anything is read or allocated by it.
func (l *Ledger) checkPos(p pos, seq uint64) error {
	d := l.durable.Load()
	ok := p.seg >= 1 && p.off >= 0 && int64(p.n) <= int64(l.cfg.MaxEntryBytes)+maxFrameBytes &&
		(p.seg < d.end.seg || (p.seg == d.end.seg && p.end() <= d.end.off))
	if !ok {
		return &CorruptError{File: "ledger/index/positions", Offset: int64(seq) * posEntrySize, Derived: true,
			Reason: fmt.Sprintf("seq %d: segment %d offset %d length %d is not where a durable record can be", seq, p.seg, p.off, p.n)}
	}
	return nil
}

// keysOf returns the lookup keys of a span record: its members tenant, id
// and this, as encoding/json decodes them (scanKeys reads a canonical body
// without decoding the rest of it).
func keysOf(r *Record) (spanKeys, bool) {
	if r.Kind != ledgerfmt.KindSpan {
		return spanKeys{}, false
	}
	if k, ok := scanKeys(r.Body); ok {
		return k, true
	}
	var k spanKeys
	if json.Unmarshal(r.Body, &k) != nil {
		return k, false
	}
	return k, true
}

// lookupID finds the span stored under (tenant, id), whose id hash is h:
// the candidates of the hash, each confirmed against its record.
func (l *Ledger) lookupID(h uint64, tenant, id string) (uint64, Record, bool, error) {
	var buf [4]uint64
	cands, err := l.idx.candidates(kindID, h, 0, 0, buf[:0])
	if err != nil {
		return 0, Record{}, false, err
	}
	for _, seq := range cands {
		r, _, err := l.readIndexed(seq)
		if err != nil {
			return 0, Record{}, false, err
		}
		if k, ok := keysOf(&r); ok && k.Tenant == tenant && k.ID == id {
			return seq, r, true, nil
		}
	}
	return 0, Record{}, false, nil
}

// Get returns the span stored under (tenant, id).
func (l *Ledger) Get(ctx context.Context, tenant, id string) (Record, error) {
	if err := l.checkReadable(); err != nil {
		return Record{}, err
	}
	if err := l.waitIndexed(ctx); err != nil {
		return Record{}, err
	}
	_, r, ok, err := l.lookupID(l.hash.id(tenant, id), tenant, id)
	if err != nil {
		return Record{}, l.checkRead("index", err)
	}
	if !ok {
		return Record{}, ErrNotFound
	}
	return r, nil
}

// Thing returns up to limit spans of tenant whose "this" is this, in ledger
// order, starting at sequence number from.
func (l *Ledger) Thing(ctx context.Context, tenant, this string, from uint64, limit int) ([]Record, error) {
	return l.scanIndex(ctx, kindThing, l.hash.thing(tenant, this), func(k spanKeys) bool {
		return k.Tenant == tenant && k.This == this
	}, from, limit)
}

// Tenant returns up to limit spans of a tenant in ledger order, starting at
// sequence number from.
func (l *Ledger) Tenant(ctx context.Context, tenant string, from uint64, limit int) ([]Record, error) {
	return l.scanIndex(ctx, kindTenant, l.hash.tenant(tenant), func(k spanKeys) bool {
		return k.Tenant == tenant
	}, from, limit)
}

// scanIndex returns the records of the entries of kind k with hash h that
// match, in seq order, from seq from on, at most limit (0: all).
func (l *Ledger) scanIndex(ctx context.Context, k int, h uint64, match func(spanKeys) bool, from uint64, limit int) ([]Record, error) {
	if err := l.checkReadable(); err != nil {
		return nil, err
	}
	if err := l.waitIndexed(ctx); err != nil {
		return nil, err
	}
	var out []Record
	var cands []uint64
	for {
		want := 0
		if limit > 0 {
			want = limit - len(out)
		}
		var err error
		if cands, err = l.idx.candidates(k, h, from, want, cands[:0]); err != nil {
			return out, l.checkRead("index", err)
		}
		for _, seq := range cands {
			r, _, err := l.readIndexed(seq)
			if err != nil {
				return out, l.checkRead("index", err)
			}
			if keys, ok := keysOf(&r); ok && match(keys) {
				out = append(out, r)
			}
		}
		// Done when the index has no more, or when none were collisions.
		if limit <= 0 || len(cands) < want || len(out) >= limit {
			return out, nil
		}
		from = cands[len(cands)-1] + 1
	}
}

// Receipt returns the receipt of the span stored under (tenant, id).
func (l *Ledger) Receipt(ctx context.Context, tenant, id string) (ledgerfmt.Receipt, error) {
	if err := l.checkReadable(); err != nil {
		return ledgerfmt.Receipt{}, err
	}
	if err := l.waitIndexed(ctx); err != nil {
		return ledgerfmt.Receipt{}, err
	}
	seq, _, ok, err := l.lookupID(l.hash.id(tenant, id), tenant, id)
	if err != nil {
		return ledgerfmt.Receipt{}, l.checkRead("index", err)
	}
	if !ok {
		return ledgerfmt.Receipt{}, ErrNotFound
	}
	r, err := l.receiptBySeq(seq, tenant, id)
	return r, l.checkRead("index", err)
}

// receiptBySeq assembles the receipt of an indexed record from its batch
// receipt and the batch's leaves.
func (l *Ledger) receiptBySeq(seq uint64, tenant, id string) (ledgerfmt.Receipt, error) {
	br, err := l.idx.batchFor(seq)
	if err != nil {
		return ledgerfmt.Receipt{}, err
	}
	leaves, err := l.tree.leaves(br.Batch.First, br.Batch.Size)
	var bt *batchTree
	if err == nil {
		bt = newBatchTree(leaves)
	}
	if err != nil || bt.root() != br.Batch.Root {
		// The stored leaves are damaged or missing: the records hold
		// their own leaf hashes (under their CRCs), and the commit's signed
		// root says whether they are the right ones.
		werr := fmt.Errorf("%w: the stored leaves of commit %d do not match its receipt", ErrCorrupt, br.Batch.First)
		if leaves, err = l.leavesOfRecords(br.Batch.First, br.Batch.Size); err != nil {
			return ledgerfmt.Receipt{}, fmt.Errorf("%w (nor can the records be read: %w)", werr, err)
		}
		if bt = newBatchTree(leaves); bt.root() != br.Batch.Root {
			return ledgerfmt.Receipt{}, fmt.Errorf("%w, nor do the records' leaves", werr)
		}
		l.indexDamaged("tree", werr)
	}
	i := int(seq - br.Batch.First)
	return receiptFor(&br, seq, leaves[i], bt.path(i), id, tenant), nil
}

// receiptFor assembles the receipt of one record of a batch.
func receiptFor(b *ledgerfmt.BatchReceipt, seq uint64, leaf ledgerfmt.Hash, path []ledgerfmt.Hash, spanID, tenant string) ledgerfmt.Receipt {
	ref := b.Batch
	ref.Path = path
	return ledgerfmt.Receipt{
		Op:     b.Op,
		SpanID: spanID,
		Tenant: tenant,
		Seq:    seq,
		Leaf:   leaf,
		Batch:  ref,
		JTI:    ledgerfmt.ReceiptID(seq, b.TS.Time),
		KID:    b.KID,
		Sig:    b.Sig,
		TS:     b.TS,
	}
}

// leavesOfRecords reads the leaf hashes of records [first, first+n) from
// the records themselves.
func (l *Ledger) leavesOfRecords(first, n uint64) ([]ledgerfmt.Hash, error) {
	out := make([]ledgerfmt.Hash, 0, n)
	for seq := first; seq < first+n; seq++ {
		r, _, err := l.readIndexed(seq)
		if err != nil {
			return nil, err
		}
		out = append(out, r.Leaf)
	}
	return out, nil
}

// Prove returns the inclusion proof of record seq in the tree of the given
// size. Size 0 means the latest checkpoint's size.
//
// The proof is read from the tree files and checked before it is returned:
// against the root of that size, itself checked by a consistency proof
// against the root of the indexed tree, which the ledger computed as it
// appended (or checked against the signed checkpoint at open). Damaged
// tree files give an ErrIndexDamaged error, never a wrong proof.
func (l *Ledger) Prove(ctx context.Context, seq, size uint64) (ledgerfmt.Proof, error) {
	if err := l.waitIndexed(ctx); err != nil {
		return ledgerfmt.Proof{}, err
	}
	if size == 0 {
		c := l.lastCkpt.Load()
		if c == nil {
			return ledgerfmt.Proof{}, fmt.Errorf("%w: no checkpoint yet", ErrNotFound)
		}
		size = c.Size
	}
	if n := l.indexed.Load(); size > n {
		return ledgerfmt.Proof{}, fmt.Errorf("%w: tree size %d is beyond the ledger's %d", ErrNotFound, size, n)
	}
	if seq >= size {
		return ledgerfmt.Proof{}, fmt.Errorf("%w: seq %d is not in a tree of size %d", ErrNotFound, seq, size)
	}
	leaf, err := l.tree.node(0, seq)
	if err != nil {
		return ledgerfmt.Proof{}, err
	}
	path, err := l.tree.inclusion(seq, size)
	if err != nil {
		return ledgerfmt.Proof{}, err
	}
	root, err := l.trustedRootAt(size)
	if err != nil {
		return ledgerfmt.Proof{}, err
	}
	if err := ledgerfmt.VerifyInclusion(seq, size, leaf, path, root); err != nil {
		return ledgerfmt.Proof{}, l.indexDamaged("tree", fmt.Errorf("%w: the stored tree gives a proof of seq %d in size %d that does not verify: %w", ErrCorrupt, seq, size, err))
	}
	return ledgerfmt.Proof{Index: seq, TreeSize: size, Leaf: leaf, Path: path}, nil
}

// trustedRootAt returns the root of the tree of size leaves, read from the
// tree files and checked against the root of the indexed tree, which the
// ledger holds in memory.
func (l *Ledger) trustedRootAt(size uint64) (ledgerfmt.Hash, error) {
	ib := l.lastIndexed.Load()
	if size > ib.size {
		return ledgerfmt.Hash{}, fmt.Errorf("%w: tree size %d is beyond the ledger's %d", ErrNotFound, size, ib.size)
	}
	if size == ib.size {
		return ib.root, nil
	}
	// The anchor: the indexed tree, whose nodes are stored, or (a
	// read-only view past the stored tree) the signed checkpoint, checked
	// against the stored tree at open.
	anchor, anchorRoot := ib.size, ib.root
	if stored := l.tree.storedLeaves(); anchor > stored {
		c := l.lastCkpt.Load()
		if c == nil || c.Size < size || c.Size > stored {
			return ledgerfmt.Hash{}, fmt.Errorf("%w: this read-only view holds the tree up to size %d only", ErrNotFound, stored)
		}
		anchor, anchorRoot = c.Size, c.Root
		if size == anchor {
			return anchorRoot, nil
		}
	}
	root, err := l.tree.rootAt(size)
	if err != nil {
		return ledgerfmt.Hash{}, err
	}
	cons, err := l.tree.consistency(size, anchor)
	if err != nil {
		return ledgerfmt.Hash{}, err
	}
	if err := ledgerfmt.VerifyConsistency(size, anchor, root, anchorRoot, cons); err != nil {
		return ledgerfmt.Hash{}, l.indexDamaged("tree", fmt.Errorf("%w: the stored tree's root at size %d is not consistent with the trusted root at size %d: %w", ErrCorrupt, size, anchor, err))
	}
	return root, nil
}

// ProveConsistency returns the RFC 6962 consistency proof between two tree
// sizes, checked like Prove's.
func (l *Ledger) ProveConsistency(ctx context.Context, size1, size2 uint64) ([]ledgerfmt.Hash, error) {
	if err := l.waitIndexed(ctx); err != nil {
		return nil, err
	}
	if n := l.indexed.Load(); size2 > n || size1 > size2 {
		return nil, fmt.Errorf("%w: sizes %d..%d not within the ledger's %d", ErrNotFound, size1, size2, n)
	}
	cons, err := l.tree.consistency(size1, size2)
	if err != nil {
		return nil, err
	}
	root1, err := l.trustedRootAt(size1)
	if err != nil {
		return nil, err
	}
	root2, err := l.trustedRootAt(size2)
	if err != nil {
		return nil, err
	}
	if err := ledgerfmt.VerifyConsistency(size1, size2, root1, root2, cons); err != nil {
		return nil, l.indexDamaged("tree", fmt.Errorf("%w: the stored tree gives a consistency proof %d..%d that does not verify: %w", ErrCorrupt, size1, size2, err))
	}
	return cons, nil
}

// RootAt returns the tree root at a size the ledger has reached.
func (l *Ledger) RootAt(ctx context.Context, size uint64) (ledgerfmt.Hash, error) {
	if err := l.waitIndexed(ctx); err != nil {
		return ledgerfmt.Hash{}, err
	}
	if n := l.indexed.Load(); size > n {
		return ledgerfmt.Hash{}, fmt.Errorf("%w: tree size %d is beyond the ledger's %d", ErrNotFound, size, n)
	}
	return l.trustedRootAt(size)
}

// Next returns the sequence number the next record will get: the number of
// durable records.
func (l *Ledger) Next() uint64 {
	if d := l.durable.Load(); d != nil {
		return d.next
	}
	return 0
}

// seqPosition finds the position of seq or, when seq is not indexed yet,
// of the first record not indexed: the seq and position to read from.
func (l *Ledger) seqPosition(seq uint64) (uint64, pos, error) {
	if l.idx == nil {
		return 0, pos{seg: 1}, nil
	}
	n := l.idx.posN.Load()
	if seq < n {
		p, _, err := l.idx.position(seq)
		if err == nil {
			err = l.checkRead("index", l.checkPos(p, seq))
		}
		return seq, p, err
	}
	if n == 0 {
		return 0, pos{seg: 1}, nil
	}
	p, _, err := l.idx.position(n - 1)
	if err == nil {
		err = l.checkRead("index", l.checkPos(p, n-1))
	}
	return n, pos{seg: p.seg, off: p.end()}, err
}

// Reader reads records in sequence order from a cursor, never past the
// durable end. It is not safe for concurrent use.
type Reader struct {
	l       *Ledger
	next    uint64
	seg     uint32
	f       vfs.File
	sc      *lineScanner
	scratch []byte
	// skipLeaf: see SkipLeafCheck.
	skipLeaf bool
	// checkSeq: the next line was found through the positions index, so
	// its sequence number is checked before it is believed.
	checkSeq bool
}

// NewReader returns a reader positioned at sequence number from. A cursor
// past the end waits at the end.
func (l *Ledger) NewReader(from uint64) (*Reader, error) {
	if err := l.checkClosed(); err != nil {
		return nil, err
	}
	d := l.durable.Load()
	r := &Reader{l: l}
	if from >= d.next {
		r.next, r.seg = d.next, d.end.seg
		return r, r.open(d.end.seg, d.end.off)
	}
	seq, p, err := l.seqPosition(from)
	if err != nil {
		return nil, err
	}
	r.next = seq
	if err := r.open(p.seg, p.off); err != nil {
		return nil, err
	}
	r.checkSeq = true
	for r.next < from {
		if _, err := r.NextLine(); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func (l *Ledger) checkClosed() error {
	l.closeMu.Lock()
	defer l.closeMu.Unlock()
	if l.closed {
		return ErrClosed
	}
	return nil
}

func (r *Reader) open(seg uint32, off int64) error {
	if r.f != nil {
		r.f.Close()
	}
	f, err := r.l.fs.Open(r.l.segs.path(seg), vfs.SequentialReadsOption)
	if err != nil {
		return fmt.Errorf("ledger: open segment %s: %w", segmentName(seg), err)
	}
	r.f, r.seg = f, seg
	r.sc = newLineScanner(f, off, -1)
	return nil
}

// Cursor returns the sequence number of the record Next would return.
func (r *Reader) Cursor() uint64 { return r.next }

// NextLine returns the next record's line as stored (without newline), or
// io.EOF at the durable end. The line is valid until the next call.
func (r *Reader) NextLine() ([]byte, error) {
	d := r.l.durable.Load()
	if r.next >= d.next {
		return nil, io.EOF
	}
	for {
		// Never past the durable end of the segment being written: its
		// padding is zeros, to be written over.
		r.sc.limit = -1
		if r.seg == d.end.seg {
			r.sc.limit = d.end.off
		}
		line, at, err := r.sc.next()
		if errors.Is(err, io.EOF) {
			if r.seg < d.end.seg {
				if err := r.open(r.seg+1, 0); err != nil {
					return nil, err
				}
				continue
			}
			return nil, fmt.Errorf("%w: %s ends at %d before seq %d", ErrCorrupt, segmentName(r.seg), at, r.next)
		}
		if err != nil {
			return nil, err
		}
		if r.checkSeq {
			r.checkSeq = false
			if seq, ok := lineSeq(line); !ok || seq != r.next {
				return nil, r.l.indexDamaged("index", &CorruptError{Segment: segmentName(r.seg), Offset: at, Seq: r.next,
					Reason: "the positions index does not point at this record"})
			}
		}
		r.next++
		return line, nil
	}
}

// Next returns the next record, decoded and checked, or io.EOF at the
// durable end. The record's Body is valid until the next call.
func (r *Reader) Next() (Record, error) {
	line, err := r.NextLine()
	if err != nil {
		return Record{}, err
	}
	rec, err := decodeRecordCheck(line, &r.scratch, !r.skipLeaf)
	switch {
	case err != nil:
		return Record{}, &CorruptError{Segment: segmentName(r.seg), Seq: r.next - 1, Reason: fmt.Sprintf("unreadable record: %v", err)}
	case rec.Seq != r.next-1:
		return Record{}, &CorruptError{Segment: segmentName(r.seg), Seq: r.next - 1, Reason: fmt.Sprintf("sequence %d where %d was expected", rec.Seq, r.next-1)}
	}
	return rec, nil
}

// SkipLeafCheck makes Next check each record's CRC but not recompute its
// leaf hash: for readers that trust the ledger's own files and need speed
// (derivation). Verify and the proofs still check every leaf.
func (r *Reader) SkipLeafCheck() { r.skipLeaf = true }

// Wait blocks until a record past the cursor is durable, or ctx ends.
func (r *Reader) Wait(ctx context.Context) error {
	for {
		ch := r.l.changed()
		if r.next < r.l.durable.Load().next {
			return nil
		}
		if err := r.l.checkClosed(); err != nil {
			return err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close releases the reader's file.
func (r *Reader) Close() error {
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}
