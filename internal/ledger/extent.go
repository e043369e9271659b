package ledger

import (
	"fmt"
	"io"
)

// SegmentExtent is one segment file and how many of its bytes hold records
// of a tree size (Extent).
type SegmentExtent struct {
	Name  string // the file's name in ledger/segments, e.g. 000001.ndjson
	Path  string // the file's path
	Bytes int64  // its first Bytes bytes hold the records
	// Whole: the segment is sealed and every byte of it is wanted; it never
	// changes again.
	Whole bool
}

// Extent returns the segment files that hold exactly the first size
// records, in order, with the number of bytes of each that belong to them:
// the last one ends with the newline of record size-1 (and may go on,
// beside a writer). size must not pass Next. Copying those bytes gives the
// segments of a ledger of size records.
func (l *Ledger) Extent(size uint64) ([]SegmentExtent, error) {
	if size > l.Next() {
		return nil, fmt.Errorf("%w: %d records asked for, the ledger has %d", ErrNotFound, size, l.Next())
	}
	if size == 0 {
		return nil, nil
	}
	// Read record size-1: the reader then stands at its end.
	r, err := l.NewReader(size - 1)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	line, err := r.NextLine()
	if err == io.EOF {
		return nil, fmt.Errorf("%w: record %d not found", ErrCorrupt, size-1)
	}
	if err != nil {
		return nil, err
	}
	if seq, ok := lineSeq(line); !ok || seq != size-1 {
		return nil, &CorruptError{Segment: segmentName(r.seg), Seq: size - 1, Reason: "not the record the reader should have reached"}
	}
	last, end := r.seg, r.sc.offset()
	out := make([]SegmentExtent, 0, last)
	for n := uint32(1); n <= last; n++ {
		e := SegmentExtent{Name: segmentName(n), Path: l.segs.path(n), Bytes: end}
		if n < last {
			st, err := l.fs.Stat(e.Path)
			if err != nil {
				return nil, fmt.Errorf("ledger: segment %s: %w", e.Name, err)
			}
			e.Bytes, e.Whole = st.Size(), true
		}
		out = append(out, e)
	}
	return out, nil
}
