package ledger

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Damage to the records themselves (acknowledged data) is never repaired:
// the ledger stops taking appends, says where, and leaves the mark
// ledger/DAMAGED, holding the error, so that every later open checks every
// record and refuses to start while the damage is there (a read-only open
// still serves what comes before it). Restoring the segment from a copy
// clears it: the next open finds every record intact and removes the mark.
const damageMarkName = "DAMAGED"

func (l *Ledger) damageMarkPath() string { return l.fs.PathJoin(l.dir, "ledger", damageMarkName) }

// The damage mark holds the error, and the number of records that were
// durable (acknowledged) when it was found:
//
//	ledger: corrupt: segment 000003.ndjson offset 1024 seq 211: …
//	durable 215
//
// A bad record below that number is never taken for a torn tail.
func damageMarkText(cerr error, durable uint64) []byte {
	return fmt.Appendf(nil, "%s\ndurable %d\n", cerr, durable)
}

// damageMark reports whether the records were found damaged before, where,
// and how many records were durable then.
func (l *Ledger) damageMark() (string, uint64, bool) {
	return readDamageMark(l.fs, l.damageMarkPath())
}

func readDamageMark(fs vfs.FS, path string) (string, uint64, bool) {
	b, err := readFile(fs, path)
	if err != nil {
		return "", 0, false
	}
	var durable uint64
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "durable "); ok {
			durable, _ = strconv.ParseUint(v, 10, 64)
		}
	}
	why, _, _ := strings.Cut(string(b), "\n")
	return why, durable, true
}

// CheckedAtOpen reports whether Open checked every record (see
// Config.CheckAtOpen); Scrub need not run right away then.
func (l *Ledger) CheckedAtOpen() bool { return l.checkedAtOpen }

// recordsDamaged handles damage found in the records while the ledger
// runs: the mark is written and the ledger turns read-only.
func (l *Ledger) recordsDamaged(cerr *CorruptError) {
	if !l.readOnly {
		if err := writeFileAtomic(l.fs, l.damageMarkPath(), damageMarkText(cerr, l.Next()), 0o644); err != nil {
			l.log.Error("cannot write the damage mark", "err", err)
		}
	}
	l.fail(cerr)
}

// Scrub reads every record that is durable when it starts, at most rate
// bytes a second (0: as fast as it can), and checks its framing, CRC,
// sequence number and time, as Open does with CheckAtOpen. Damage turns
// the ledger read-only (Err then says where, and the next open refuses to
// start until the records are restored) and is returned as a
// *CorruptError. Scrub only reads; it is safe beside appends and readers.
func (l *Ledger) Scrub(ctx context.Context, rate int64) error {
	if err := l.checkClosed(); err != nil {
		return err
	}
	d := l.durable.Load()
	end := d.end
	var (
		next    uint64
		lastTS  time.Time
		scratch []byte
		done    int64
	)
	start := time.Now()
	// Pace about 64 times a second, sleeping off what ran ahead.
	step := max(4<<10, rate/64)
	nextPause := step
	for seg := uint32(1); seg <= end.seg; seg++ {
		f, err := l.fs.Open(l.segs.path(seg), vfs.SequentialReadsOption)
		if err != nil {
			return fmt.Errorf("ledger: scrub: open segment %s: %w", segmentName(seg), err)
		}
		limit := int64(-1)
		if seg == end.seg {
			limit = end.off // not into padding
		}
		sc := newLineScanner(f, 0, limit)
		var cerr *CorruptError
		for cerr == nil {
			if seg == end.seg && sc.offset() >= end.off {
				break
			}
			line, at, err := sc.next()
			if errors.Is(err, io.EOF) {
				if seg == end.seg || len(sc.partial()) > 0 {
					cerr = &CorruptError{Segment: segmentName(seg), Offset: at, Seq: next, Reason: "the segment ends inside or before durable records"}
				}
				break
			}
			if err != nil {
				f.Close()
				return fmt.Errorf("ledger: scrub: read segment %s: %w", segmentName(seg), err)
			}
			r, err := decodeRecordCheck(line, &scratch, false)
			switch {
			case err != nil:
				cerr = &CorruptError{Segment: segmentName(seg), Offset: at, Seq: next, Reason: err.Error()}
			case r.Seq != next:
				cerr = &CorruptError{Segment: segmentName(seg), Offset: at, Seq: next, Reason: fmt.Sprintf("sequence %d where %d was expected", r.Seq, next)}
			case r.TS.Before(lastTS):
				cerr = &CorruptError{Segment: segmentName(seg), Offset: at, Seq: next, Reason: "ts goes backwards"}
			}
			next++
			lastTS = r.TS
			done += int64(len(line)) + 1
			if rate > 0 && done >= nextPause {
				nextPause = done + step
				if err := pace(ctx, start, done, rate); err != nil {
					f.Close()
					return err
				}
			}
			if ctx.Err() != nil {
				f.Close()
				return ctx.Err()
			}
		}
		f.Close()
		if cerr != nil {
			l.recordsDamaged(cerr)
			return cerr
		}
	}
	if rate > 0 {
		if err := pace(ctx, start, done, rate); err != nil {
			return err
		}
	}
	if next != d.next {
		cerr := &CorruptError{Segment: segmentName(end.seg), Offset: end.off, Seq: next, Reason: fmt.Sprintf("the segments hold %d records where %d are durable", next, d.next)}
		l.recordsDamaged(cerr)
		return cerr
	}
	return nil
}

// pace sleeps until done bytes since start are within rate.
func pace(ctx context.Context, start time.Time, done, rate int64) error {
	ahead := time.Duration(float64(done)/float64(rate)*float64(time.Second)) - time.Since(start)
	if ahead <= 0 {
		return nil
	}
	t := time.NewTimer(ahead)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
