package ledger

import (
	"errors"
	"fmt"
	"io"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// progressEvery is how many records the scans of every segment (Verify,
// and the catch-up at open) read between calls of their progress
// function: some tens a second at their speed.
const progressEvery = 4096

// checkSegments reads the records of every segment in order, up to the
// limit, and checks each and the commits, checkpoint and derived files as
// it goes.
func (v *verification) checkSegments() error {
	v.checkCheckpoint(segmentName(1), 0)
	for i, n := range v.segs {
		if err := v.checkSegment(n, i == len(v.segs)-1); err != nil {
			return err
		}
		if v.stopped() || v.next >= v.limit {
			break
		}
	}
	v.endCommit("end", 0)
	return nil
}

// stopped reports whether the records checked end here: at a problem or
// at a torn tail.
func (v *verification) stopped() bool { return v.problem != nil || v.rep.TornTail != nil }

// checkSegment checks the records of segment n, the last segment or not.
func (v *verification) checkSegment(n uint32, last bool) error {
	name := segmentName(n)
	f, err := v.fs.Open(v.fs.PathJoin(v.segDir, name), vfs.SequentialReadsOption)
	if err != nil {
		return fmt.Errorf("ledger: open %s: %w", name, err)
	}
	defer f.Close()
	size, err := recordsEnd(f)
	if err != nil {
		return fmt.Errorf("ledger: read %s: %w", name, err)
	}
	sc := newLineScanner(f, 0, size)
	for !v.stopped() && v.next < v.limit {
		line, at, err := sc.next()
		if errors.Is(err, io.EOF) {
			if p := sc.partial(); len(p) > 0 {
				v.bad(last, name, at, size, "partial record of %d bytes", len(p))
			}
			v.done += at
			return nil
		}
		if err != nil {
			return fmt.Errorf("ledger: read %s: %w", name, err)
		}
		if !v.checkRecord(n, line, at, last, size) {
			return nil
		}
		if v.lines++; v.lines%progressEvery == 0 && v.cfg.Progress != nil {
			v.cfg.Progress(v.done+at, v.total)
		}
	}
	return nil
}

// checkRecord checks the record line at offset at of segment n (of size
// bytes; the last segment or not): its framing, CRC, leaf hash, sequence
// number, time and body, and its entries in the derived files. It reports
// whether to go on.
func (v *verification) checkRecord(n uint32, line []byte, at int64, last bool, size int64) bool {
	name := segmentName(n)
	r, err := decodeRecord(line, &v.scratch)
	switch {
	case err != nil:
		v.bad(last, name, at, size, "%v", err)
	case r.Seq != v.next:
		v.bad(last, name, at, size, "sequence %d where %d was expected", r.Seq, v.next)
	case r.TS.Before(v.lastTS):
		v.bad(last, name, at, size, "ts %s before the previous record's", r.TS.Format(tsLayout))
	}
	if v.stopped() {
		return false
	}
	if v.cfg.CheckBody != nil {
		if err := v.cfg.CheckBody(r.Kind, r.Body); err != nil {
			v.fail(name, at, v.next, "%s body: %v", r.Kind, err)
			return false
		}
	}
	if !r.TS.Equal(v.runTS) {
		v.endCommit(name, at)
		v.runTS, v.runFirst = r.TS, r.Seq
	}
	if v.problem != nil {
		return false
	}
	if p := v.ix.record(&r, pos{seg: n, off: at, n: uint32(len(line))}); p != nil {
		v.problem = p
		return false
	}
	v.runLeaves = append(v.runLeaves, r.Leaf)
	v.rng.append(r.Leaf, v.ix.node)
	if p := v.ix.treeProblem(); p != nil {
		v.problem = p
		return false
	}
	v.checkCheckpoint(name, at)
	v.next++
	v.lastTS = r.TS
	v.rep.Bytes += int64(len(line)) + 1
	return true
}

// fail records the first problem.
func (v *verification) fail(seg string, off int64, seq uint64, format string, args ...any) {
	if v.problem == nil {
		v.problem = &CorruptError{Segment: seg, Offset: off, Seq: seq, Reason: fmt.Sprintf(format, args...)}
	}
}

// bad handles an unreadable record at offset at of a segment of size
// bytes. It is a torn tail when it lies where a crash can leave an
// unsynced write: the last segment's last bytes, after the checkpoint, and
// past what was durable when the server found damage, if it did.
func (v *verification) bad(last bool, name string, at, size int64, format string, args ...any) {
	if v.problem != nil {
		return
	}
	reason := fmt.Sprintf(format, args...)
	c := v.rep.Checkpoint
	torn := last && size-at <= v.cfg.MaxTornBytes && (c == nil || v.next >= c.Size) && v.next >= v.damagedBelow
	if torn {
		v.rep.TornTail = &CorruptError{Segment: name, Offset: at, Seq: v.next, Reason: reason + "; a write cut short before it was acknowledged: the next open moves it aside"}
		return
	}
	v.fail(name, at, v.next, "%s", reason)
}

// finish makes the checks only the end allows and fills in the report.
func (v *verification) finish() {
	if v.problem == nil {
		v.checkCheckpointCovered()
	}
	if v.problem == nil && !v.cfg.Live {
		v.checkJournalEnd()
	}
	if v.problem == nil {
		v.problem = v.ix.finish(v.next, v.rep)
	}
	if v.cfg.Progress != nil {
		v.cfg.Progress(v.total, v.total)
	}
	v.rep.Records = v.next
	v.rep.Root = v.rng.root()
	v.rep.Problem = v.problem
}
