package ledger

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
)

// Replication. A ledger that publishes (Config.Publish) hands out each group
// commit once it is durable and before it answers any of its requests;
// another ledger with the same signing key takes the commits, in order,
// with Apply and writes the same bytes, so both hold the same records,
// receipts journal and Merkle roots at the same sizes:
//
//	writer:   Append ─▶ commit ─▶ write, fdatasync ─▶ Publish(Commit) ─▶ receipts, index, checkpoint
//	                                                         │
//	follower:                             Apply(Commit) ◀────┘ check ─▶ write, fdatasync ─▶ index, journal, checkpoint
//
// The rules:
//
//   - A ledger takes its records from Append or from Apply, whichever is
//     called first, until it is reopened (ErrRole); one opened with
//     Config.Publish takes no Apply. Switching roles is a reopen.
//   - A follower never decides duplicates: the writer did. Apply refuses
//     a commit holding a span whose (tenant, id) it already stores.
//   - Apply takes the commits one at a time, in order, and returns once
//     its commit is durable.
//   - The segment files are the same bytes on both when both have the same
//     Config.SegmentBytes (a segment is begun where a commit would not fit
//     in the last); the records are the same bytes regardless.
//   - A writer whose Publish failed holds commits it wrote and never
//     published: TruncateAfter moves them aside before it opens again.

// Commit is one group commit in the form a follower applies it: its records'
// lines exactly as written to the segment and its signed batch receipt. Its
// wire form (MarshalBinary) is the receipt's line as in the receipts
// journal, then the lines:
//
//	{"op":"ledger.append","batch":{"first":40,"size":2,"root":"…"},"kid":"1a2b3c4d","sig":"…","ts":"2025-10-05T22:18:07.214000Z"}
//	{"seq":40,"ts":"2025-10-05T22:18:07.214000Z","leaf":"…","crc":"…","span":{…}}
//	{"seq":41,"ts":"2025-10-05T22:18:07.214000Z","leaf":"…","crc":"…","span":{…}}
type Commit struct {
	// First is the sequence number of the commit's first record.
	First uint64
	// Lines are the commit's records framed as in a segment (record.go),
	// each with its newline.
	Lines []byte
	// Receipt is the commit's signed batch receipt, as the receipts journal
	// holds it.
	Receipt ledgerfmt.BatchReceipt
}

// MarshalBinary returns the commit's wire form.
func (c Commit) MarshalBinary() ([]byte, error) {
	line, err := json.Marshal(&c.Receipt)
	if err != nil {
		return nil, fmt.Errorf("ledger: encode commit: %w", err)
	}
	b := make([]byte, 0, len(line)+1+len(c.Lines))
	b = append(append(b, line...), '\n')
	return append(b, c.Lines...), nil
}

// UnmarshalBinary reads a commit's wire form. It checks only its shape:
// Apply checks the rest.
func (c *Commit) UnmarshalBinary(b []byte) error {
	line, lines, ok := bytes.Cut(b, []byte{'\n'})
	if !ok {
		return fmt.Errorf("%w: no batch receipt line", ErrBadCommit)
	}
	var br ledgerfmt.BatchReceipt
	if err := json.Unmarshal(line, &br); err != nil {
		return fmt.Errorf("%w: batch receipt: %w", ErrBadCommit, err)
	}
	*c = Commit{First: br.Batch.First, Lines: bytes.Clone(lines), Receipt: br}
	return nil
}

// Roles: where a ledger takes its records from.
const (
	roleNone   uint32 = iota
	roleAppend        // Append (and Publish)
	roleApply         // Apply
)

// takeRole gives the ledger role want unless it has the other one.
func (l *Ledger) takeRole(want uint32) error {
	if l.role.Load() == want || l.role.CompareAndSwap(roleNone, want) || l.role.Load() == want {
		return nil
	}
	if want == roleAppend {
		return fmt.Errorf("%w: this ledger applies another's commits; it takes appends once reopened", ErrRole)
	}
	return fmt.Errorf("%w: this ledger appends or publishes its own commits; it applies another's once reopened without Publish", ErrRole)
}

// Apply appends a commit that another ledger with the same signing key
// wrote and published, byte for byte, and returns once it is durable
// (written and fdatasync'ed); it is then read, proved, indexed, journaled
// and checkpointed as if this ledger had written it. Before anything is
// written, Apply checks that
//
//   - the commit is the next: its First is Next() and its ts is after the
//     last commit's;
//   - every line is framed as the ledger frames records, with a good CRC
//     and leaf hash, the sequence number of its place and the commit's ts;
//   - the batch tree of the lines' leaves has the receipt's root, and the
//     receipt is signed by this ledger's key;
//   - none of its spans' (tenant, id) is stored already, nor twice in it.
//
// A commit refused (ErrBadCommit) leaves the ledger as it was. A failure to
// write makes it read-only, as for Append. See the rules above Commit.
func (l *Ledger) Apply(ctx context.Context, c Commit) error {
	if err := l.takeRole(roleApply); err != nil {
		return err
	}
	if err := l.failed(); err != nil {
		return err
	}
	b, err := l.checkCommit(&c)
	if err != nil {
		return err
	}
	return l.submit(ctx, &appendReq{apply: b, done: make(chan struct{})})
}

// commitVerifier checks the receipts of applied commits: this ledger's key.
type commitVerifier struct {
	once sync.Once
	v    *ledgerfmt.Verifier
	err  error
}

func (l *Ledger) commitKey() (*ledgerfmt.Verifier, error) {
	cv := &l.applyKey
	cv.once.Do(func() { cv.v, cv.err = ledgerfmt.NewVerifier(l.signer.VerifierKey()) })
	return cv.v, cv.err
}

// checkCommit checks what can be checked of a commit alone and builds its
// batch: a copy of its lines, and its records with their leaves and lookup
// keys. The committer checks the rest (checkApplied).
func (l *Ledger) checkCommit(c *Commit) (*commitBatch, error) {
	br := c.Receipt
	refuse := func(format string, args ...any) error {
		return fmt.Errorf("%w: commit [%d,+%d): "+format, append([]any{ErrBadCommit, c.First, br.Batch.Size}, args...)...)
	}
	key, err := l.commitKey()
	if err != nil {
		return nil, err
	}
	switch {
	case br.Batch.First != c.First:
		return nil, refuse("its receipt is for the commit at seq %d", br.Batch.First)
	case len(br.Batch.Path) > 0:
		return nil, refuse("its receipt has an audit path: not a batch receipt")
	case br.TS.Nanosecond()%1000 != 0:
		return nil, refuse("its receipt's ts is finer than a microsecond")
	}
	if err := key.VerifyBatch(&br); err != nil {
		return nil, refuse("receipt: %w", err)
	}
	ts := br.TS.UTC()
	tsb := ts.AppendFormat(make([]byte, 0, tsLen), tsLayout)
	if n := bytes.Count(c.Lines, []byte{'\n'}); uint64(n) != br.Batch.Size || c.Lines[len(c.Lines)-1] != '\n' {
		return nil, refuse("its %d bytes of lines hold %d whole records, its receipt says %d", len(c.Lines), n, br.Batch.Size)
	}
	br.TS = ledgerfmt.Timestamp{Time: ts}
	b := &commitBatch{applied: true, first: c.First, ts: ts, buf: bytes.Clone(c.Lines), receipt: br,
		recs: make([]batchRec, 0, br.Batch.Size)}
	leaves := make([]ledgerfmt.Hash, 0, br.Batch.Size)
	var enc encoder
	var scratch, frame []byte
	var seen map[[2]string]bool
	for off := 0; off < len(b.buf); {
		i := len(b.recs)
		seq := c.First + uint64(i)
		line := b.buf[off : off+bytes.IndexByte(b.buf[off:], '\n')]
		r, err := decodeRecordCheck(line, &scratch, false)
		if err != nil {
			return nil, refuse("record %d (seq %d): %w", i, seq, err)
		}
		if r.Seq != seq || !r.TS.Equal(ts) {
			return nil, refuse("record %d has seq %d and ts %s, not seq %d and the receipt's ts %s", i, r.Seq, r.TS.Format(tsLayout), seq, tsb)
		}
		var leaf ledgerfmt.Hash
		frame, leaf = enc.appendRecord(frame[:0], seq, tsb, r.Kind, r.Body)
		switch {
		case leaf != r.Leaf:
			return nil, refuse("record %d (seq %d): leaf hash mismatch", i, seq)
		case !bytes.Equal(frame[:len(frame)-1], line):
			return nil, refuse("record %d (seq %d) is not framed as the ledger frames records", i, seq)
		}
		rec := batchRec{off: int32(off), n: int32(len(line)), leaf: leaf, kind: r.Kind}
		if r.Kind == ledgerfmt.KindSpan {
			k, ok := keysOf(&r)
			if !ok || k.Tenant == "" || k.ID == "" {
				return nil, refuse("record %d (seq %d): a span without a tenant and an id", i, seq)
			}
			if seen == nil {
				seen = make(map[[2]string]bool, br.Batch.Size)
			}
			if seen[[2]string{k.Tenant, k.ID}] {
				return nil, refuse("span %s/%s is in it twice", k.Tenant, k.ID)
			}
			seen[[2]string{k.Tenant, k.ID}] = true
			rec.tenant, rec.id, rec.this, rec.hid = k.Tenant, k.ID, k.This, l.hash.id(k.Tenant, k.ID)
		}
		b.recs = append(b.recs, rec)
		leaves = append(leaves, leaf)
		off += len(line) + 1
	}
	if newBatchTree(leaves).root() != br.Batch.Root {
		return nil, refuse("its records do not match its receipt's batch root")
	}
	return b, nil
}

// applyBatch places the batch of a commit given to Apply, whole, as the open
// batch once the open one is taken, after the checks only the committer can
// make (checkApplied).
func (c *committer) applyBatch(req *appendReq) {
	b := req.apply
	if err := c.checkApplied(b); err != nil {
		req.err = err
		close(req.done)
		return
	}
	for i := range b.recs {
		if r := &b.recs[i]; r.kind == ledgerfmt.KindSpan {
			c.dedup.add(r.hid)
			c.pending.add(pendingRec{h: r.hid, seq: b.first + uint64(i), batch: b, i: int32(i)})
		}
	}
	c.nextSeq = b.first + uint64(len(b.recs))
	c.lastTS = b.ts
	slot := &c.l.slot
	slot.mu.Lock()
	for !slot.open.empty() {
		slot.spaceCond.Wait()
	}
	b.done = append(b.done, req)
	req.last = b
	slot.open = b
	slot.mu.Unlock()
	slot.dataCond.Signal()
}

// checkApplied checks that an applied commit is the next one and that none
// of its spans is stored or pending (see committer for why that is
// complete).
func (c *committer) checkApplied(b *commitBatch) error {
	l := c.l
	if err := l.failed(); err != nil {
		return err
	}
	n := uint64(len(b.recs))
	switch {
	case b.first < c.nextSeq:
		return fmt.Errorf("%w: commit [%d,+%d) starts before the ledger's next record, %d: it was applied already", ErrBadCommit, b.first, n, c.nextSeq)
	case b.first > c.nextSeq:
		return fmt.Errorf("%w: commit [%d,+%d) leaves a gap: the ledger's next record is %d", ErrBadCommit, b.first, n, c.nextSeq)
	case !b.ts.After(c.lastTS):
		return fmt.Errorf("%w: commit [%d,+%d) has ts %s, not after the last commit's %s", ErrBadCommit, b.first, n,
			b.ts.Format(tsLayout), c.lastTS.Format(tsLayout))
	}
	c.pending.prune(l.indexed.Load())
	for i := range b.recs {
		r := &b.recs[i]
		if r.kind != ledgerfmt.KindSpan || !c.dedup.has(r.hid) {
			continue
		}
		if p, ok := c.pending.find(r.hid, r.tenant, r.id); ok {
			return storedErr(b, i, p.seq)
		}
		seq, _, ok, err := l.lookupID(r.hid, r.tenant, r.id)
		if err != nil {
			return l.lookupFailed(fmt.Errorf("ledger: index lookup: %w", err))
		}
		if ok {
			return storedErr(b, i, seq)
		}
	}
	return nil
}

// storedErr refuses commit b, whose record i is a span stored as seq.
func storedErr(b *commitBatch, i int, seq uint64) error {
	r := &b.recs[i]
	return fmt.Errorf("%w: commit [%d,+%d): span %s/%s (seq %d) is stored already as seq %d", ErrBadCommit,
		b.first, len(b.recs), r.tenant, r.id, b.first+uint64(i), seq)
}
