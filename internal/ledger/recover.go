package ledger

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
)

// recover brings the ledger to a consistent state at open.
//
//  1. The last segment's tail is checked from the earliest point anything
//     must be caught up from. An invalid or partial record there is a torn
//     tail when it lies within the last bytes a crash can leave unsynced
//     (one group commit) and after the latest checkpoint: its bytes are
//     copied to NNNNNN.ndjson.<offset>.broken and the segment is cut before
//     it. Anywhere else it is corruption (ErrCorrupt).
//  2. The records after the tree state, the index state and the receipts
//     journal's last line are read once and applied to each.
//  3. Anything derived that claims more records than the segments hold, and
//     a checkpoint that does not match the tree, is corruption: acknowledged
//     records are missing or changed.
func (l *Ledger) recover() error {
	var drop rebuildSet
	for {
		err := l.recoverOnce(drop)
		var rb *rebuildNeeded
		if !errors.As(err, &rb) {
			if err == nil && !l.readOnly {
				l.dropRebuildMark()
				if why, _, ok := l.damageMark(); ok && l.checkedAtOpen {
					l.log.Warn("every record checked: the damage found before is no longer there", "was", why)
					removeMark(l.fs, l.damageMarkPath(), l.log)
				}
			}
			return err
		}
		if l.readOnly || drop&rb.what != 0 {
			return rb.err
		}
		// The derived files, not the records, may be what is wrong:
		// rebuild them from the segments and check again.
		l.log.Warn("rebuilding from the segments: "+rb.what.String()+" damaged", "reason", rb.reason)
		l.repaired(rb.what.String(), rb.reason)
		l.closeFiles(false)
		drop |= rb.what
	}
}

// rebuildSet names derived structures to rebuild from the segments.
type rebuildSet uint8

const (
	rebuildTree rebuildSet = 1 << iota
	rebuildIndex
)

func (s rebuildSet) String() string {
	switch s {
	case rebuildTree:
		return "tree"
	case rebuildIndex:
		return "index"
	}
	return "index and tree"
}

// rebuildNeeded is returned by recoverOnce when derived files disagree with
// the records or the signed checkpoint, or fail their checksums: the
// records may still be intact. err is what to report if the rebuilt files
// disagree too.
type rebuildNeeded struct {
	what   rebuildSet
	reason string
	err    error
}

func (e *rebuildNeeded) Error() string { return e.err.Error() }

// recoverOnce is one attempt at recovery; drop names the derived files to
// start afresh, recomputed from every record.
func (l *Ledger) recoverOnce(drop rebuildSet) error {
	r := &recovery{l: l, drop: drop, ledgerDir: l.fs.PathJoin(l.dir, "ledger")}
	if err := r.openKeyAndSegments(); err != nil {
		return err
	}
	r.decideFullCheck()
	if err := r.applyRebuildMark(); err != nil {
		return err
	}
	if err := r.openIndex(); err != nil {
		return err
	}
	if err := r.openTree(); err != nil {
		return err
	}
	ckpt, err := l.readCheckpoint()
	if err != nil {
		return err
	}
	r.ckpt = ckpt
	r.limitToLiveView()
	r.treeFrom = r.ts.size
	if r.fullCheck {
		// Every record is read: the tree is recomputed from them too, and
		// written again (the same bytes, unless the files were damaged).
		r.treeFrom, r.rng = 0, compactRange{}
		l.tree.setSize(0)
	}
	l.checkpoints.treeSaved = r.treeFrom
	// The journal is trusted as far as the checkpoint that wrote the tree
	// state; the rest is written again from the segments.
	if l.jrnl, err = openJournal(l.fs, l.fs.PathJoin(l.dir, "receipts"), r.ts.journal, r.ts.jsize, l.readOnly); err != nil {
		return err
	}
	return r.catchUp()
}

// recovery is what one attempt at recovery found and decided, in the order
// of its steps.
type recovery struct {
	l         *Ledger
	ledgerDir string
	drop      rebuildSet // derived files started afresh
	segs      []uint32
	// fullCheck: every record is checked before serving.
	fullCheck bool
	wm        indexState            // how far the index files are complete
	ts        treeState             // how far the tree files (and the journal) are
	rng       compactRange          // the tree of ts.size leaves
	ckpt      *ledgerfmt.Checkpoint // the latest signed checkpoint
	// limit: a read-only view beside a running writer ends at its signed
	// checkpoint, since what follows may be half written.
	limit uint64
	// treeFrom: the tree is recomputed from this record on; from the
	// first, a mismatch with the checkpoint can only be the records'.
	treeFrom uint64
}

// openKeyAndSegments creates the directories and the signing key of a new
// ledger, reads the key and lists the segments, creating the first.
func (r *recovery) openKeyAndSegments() error {
	l := r.l
	fs := l.fs
	ro := l.readOnly
	if !ro {
		if err := mkdirAllSynced(fs, l.segDir); err != nil {
			return fmt.Errorf("ledger: create %s: %w", l.segDir, err)
		}
		if err := mkdirAllSynced(fs, fs.PathJoin(r.ledgerDir, "index")); err != nil {
			return fmt.Errorf("ledger: create index dir: %w", err)
		}
		// A crash in the middle of a whole-file write leaves its temporary
		// file (atomicfile's ".NAME.<random>.tmp").
		for _, dir := range []string{r.ledgerDir, fs.PathJoin(r.ledgerDir, "index", "tree")} {
			removeTemps(fs, dir, l.log)
		}
	}
	signer, err := loadOrCreateKey(fs, r.ledgerDir, l.cfg.Origin, l.cfg.Rand, !ro)
	if err != nil {
		return err
	}
	l.signer = signer
	r.segs, err = listSegments(fs, l.segDir)
	if err != nil && !(ro && errors.Is(err, os.ErrNotExist)) {
		return err
	}
	if len(r.segs) == 0 && !ro {
		a, err := createSegment(fs, l.segDir, 1)
		if err != nil {
			return err
		}
		a.f.Close()
		r.segs = []uint32{1}
	}
	return nil
}

// decideFullCheck: every record is checked before serving when the ledger
// is small enough, or when damage was found in its records before; the
// tree is then recomputed from them, and the index files compared with
// them.
func (r *recovery) decideFullCheck() {
	l := r.l
	if l.readOnly {
		return
	}
	var all int64
	for _, n := range r.segs {
		if st, err := l.fs.Stat(l.segs.path(n)); err == nil {
			all += st.Size()
		}
	}
	why, durable, damaged := l.damageMark()
	if damaged {
		l.log.Warn("checking every record before serving: damage was found in the records before", "reason", why)
		l.damagedBelow = durable
	}
	r.fullCheck = damaged || all <= int64(l.cfg.CheckAtOpen)
}

// applyRebuildMark: damage found while the ledger last ran asks for the
// derived files to be rebuilt.
func (r *recovery) applyRebuildMark() error {
	l := r.l
	if l.readOnly {
		return nil
	}
	if why, ok := l.rebuildMark(); ok {
		l.log.Warn("rebuilding the indexes and the tree from the segments: damage was found while the ledger ran", "reason", why)
		l.repaired("index", why)
		l.repaired("tree", why)
		r.drop |= rebuildTree | rebuildIndex
	}
	if r.drop&rebuildIndex != 0 {
		return dropIndexState(l.fs, l.fs.PathJoin(r.ledgerDir, "index"))
	}
	return nil
}

// openIndex opens the index files (none, read-only, when they cannot be
// read) and notes how far they are complete.
func (r *recovery) openIndex() error {
	l := r.l
	idxDir := l.fs.PathJoin(r.ledgerDir, "index")
	l.hash = newKeyHasher(l.signer)
	r.wm = indexState{at: pos{seg: 1}}
	var err error
	l.idx, err = openIndex(l.fs, idxDir, l.hash, l.cfg.IndexMemTableBytes, l.readOnly, l.log, l.repaired)
	switch {
	case err != nil && l.readOnly:
		l.log.Warn("no readable index: lookups will find nothing", "dir", idxDir, "err", err)
		l.idx = nil
	case err != nil:
		return fmt.Errorf("ledger: open index: %w", err)
	default:
		r.wm = l.idx.state
	}
	return nil
}

// openTree opens the tree files and loads the tree their state file
// records, or starts the tree afresh when that cannot be trusted.
func (r *recovery) openTree() error {
	l := r.l
	fs := l.fs
	treeDir := fs.PathJoin(r.ledgerDir, "index", "tree")
	l.state = stateFile{path: fs.PathJoin(treeDir, "state")}
	ts, ok := l.state.read(fs)
	switch {
	case r.drop&rebuildTree != 0:
		ts = treeState{at: pos{seg: 1}}
	case !ok && fileExists(fs, l.state.path):
		l.log.Warn("tree state unreadable; rebuilding the tree from the segments")
		l.repaired("tree", "state file unreadable")
		ts = treeState{at: pos{seg: 1}}
	case !ok:
		ts = treeState{at: pos{seg: 1}}
	}
	var err error
	if l.readOnly && !fileExists(fs, treeDir) {
		l.tree = &treeStore{fs: fs, dir: treeDir}
	} else if l.tree, err = openTreeStore(fs, treeDir, l.readOnly); err != nil {
		return err
	}
	l.tree.setSize(ts.size)
	rng, err := l.tree.loadRange(ts.size)
	if err != nil {
		l.log.Warn("tree files incomplete; rebuilding the tree from the segments", "err", err)
		l.repaired("tree", "files incomplete")
		ts = treeState{at: pos{seg: 1}}
		l.tree.setSize(0)
		rng = compactRange{}
	}
	r.ts, r.rng = ts, rng
	return nil
}

// limitToLiveView ends a read-only view beside a running writer at the
// writer's signed checkpoint: what follows may be half written.
func (r *recovery) limitToLiveView() {
	l := r.l
	r.limit = ^uint64(0)
	if l.live == nil {
		return
	}
	r.limit = 0
	if r.ckpt != nil {
		r.limit = r.ckpt.Size
	}
	if r.ts.size > r.limit {
		if rng, err := l.tree.loadRange(r.limit); err == nil {
			// Start at the view's end: the tree is known there.
			at, ok := l.endOf(r.limit)
			if ok {
				r.ts, r.rng = treeState{size: r.limit, at: at}, rng
			}
		}
		if r.ts.size > r.limit {
			r.ts, r.rng = treeState{at: pos{seg: 1}}, compactRange{}
		}
	}
	if r.wm.next > r.limit {
		r.wm = indexState{next: r.ts.size, at: r.ts.at}
	}
}

// catchUp reads the records from the earlier of the tree state (which the
// journal follows) and the index state, or from the first when every
// record is checked, applies them to what lags, and finishes recovery.
func (r *recovery) catchUp() error {
	l := r.l
	start, startSeq := r.ts.at, r.ts.size
	if r.wm.next < startSeq {
		start, startSeq = r.wm.at, r.wm.next
	}
	if l.readOnly {
		// Beside a running writer (detected or not) the states read since
		// the listing may name a segment begun after it: list again
		// (segments only grow).
		if segs, err := listSegments(l.fs, l.segDir); err == nil {
			r.segs = segs
		}
	}
	if len(r.segs) == 0 {
		return r.finish(r.rng, 0, time.Time{}, pos{seg: 1})
	}
	segs := r.segs
	if start.seg < segs[0] || start.seg > segs[len(segs)-1] {
		return &CorruptError{Segment: segmentName(start.seg), Offset: start.off, Seq: startSeq, Reason: "segment named by the index or tree state is missing"}
	}
	c := catchUp{l: l, rng: r.rng, treeFrom: r.treeFrom, indexFrom: r.wm.next, journalFrom: r.ts.size, next: startSeq, nextPos: start, batches: r.wm.batches, limit: r.limit, ckpt: r.ckpt, leafFrom: startSeq}
	if !l.readOnly {
		c.idx = l.idx
		if r.fullCheck {
			start = pos{seg: segs[0]}
			c.next, c.nextPos = 0, start
			if err := c.checkIndexFiles(); err != nil {
				return err
			}
			l.checkedAtOpen = true
		}
	}
	end, err := c.scanFrom(segs[start.seg-segs[0]:], start)
	if err != nil {
		return err
	}
	if err := c.finish(); err != nil {
		return err
	}
	if !l.readOnly {
		l.committer.dedup = newDedupFilter(l.cfg.DedupFilterBytes)
		if err := l.idx.fillFilter(l.committer.dedup); err != nil {
			if errors.Is(err, ErrCorrupt) {
				return &rebuildNeeded{what: rebuildIndex, reason: err.Error(), err: err}
			}
			return err
		}
	}
	return r.finish(c.rng, c.next, c.lastTS, end)
}

// errStopScan ends a read-only scan at the first unreadable record.
var errStopScan = errors.New("ledger: stop scan")

// finish checks what was caught up (the tree rng, the records before next,
// the last at lastTS, ending at end) against the checkpoint and sets the
// ledger's running state.
func (r *recovery) finish(rng compactRange, next uint64, lastTS time.Time, end pos) error {
	l := r.l
	ckpt := r.ckpt
	missing := func(what string, n uint64) error {
		return &CorruptError{Segment: segmentName(end.seg), Offset: end.off, Seq: next,
			Reason: fmt.Sprintf("%s covers %d records but the segments hold %d: acknowledged records are missing", what, n, next)}
	}
	if !l.readOnly {
		switch {
		case r.wm.next > next:
			return missing("the index", r.wm.next)
		case r.ts.size > next:
			return missing("the receipts journal", r.ts.size)
		case rng.size != next:
			return missing("the tree", rng.size)
		}
	}
	if ckpt != nil {
		if ckpt.Size > next {
			if !l.readOnly {
				return missing("the signed checkpoint", ckpt.Size)
			}
		} else if err := r.checkCheckpoint(rng, end); err != nil {
			return err
		}
		l.lastCkpt.Store(ckpt)
	}
	l.committer.nextSeq = next
	l.committer.lastTS = lastTS
	l.syncer.rng = rng
	l.durable.Store(&durableEnd{next: next, end: end})
	l.indexed.Store(next)
	root := rng.root()
	if rng.size != next {
		// A read-only view that stopped short of the tree it loaded.
		if r, err := l.tree.rootAt(next); err == nil {
			root = r
		}
	}
	l.lastIndexed.Store(&indexedBatch{size: next, root: root, at: end})
	l.checkpoints.at = l.cfg.Now()
	if l.readOnly {
		return nil
	}
	a, err := openActiveSegment(l.fs, l.segDir, end.seg, end.off)
	if err != nil {
		return err
	}
	l.syncer.active = a
	if ckpt == nil || ckpt.Size != next || l.checkpoints.treeSaved != next {
		return l.checkpoint()
	}
	return nil
}

// checkCheckpoint checks the signed checkpoint, of at most as many records
// as were read, against the tree: a mismatch is the records' when the tree
// was recomputed from them all, else the stored tree is rebuilt first.
func (r *recovery) checkCheckpoint(rng compactRange, end pos) error {
	l := r.l
	ckpt := r.ckpt
	var root ledgerfmt.Hash
	var err error
	if ckpt.Size == rng.size {
		root = rng.root()
	} else {
		root, err = l.tree.rootAt(ckpt.Size)
	}
	if err != nil || root == ckpt.Root {
		return nil
	}
	cerr := &CorruptError{Segment: segmentName(end.seg), Offset: end.off, Seq: ckpt.Size,
		Reason: "the records do not match the signed checkpoint"}
	if r.treeFrom == 0 || l.readOnly {
		return cerr
	}
	return &rebuildNeeded{what: rebuildTree, reason: fmt.Sprintf("the stored tree's root at size %d differs from the signed checkpoint's", ckpt.Size), err: cerr}
}
