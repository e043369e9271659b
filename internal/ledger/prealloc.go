package ledger

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Preallocation. The active segment is extended with zeros ahead of its
// records (Config.Preallocate bytes at a time), so that a commit's
// fdatasync overwrites blocks the file already has: it flushes data only,
// while an append also commits the file's new size to the file system's
// journal, a second device flush on most disks. A record never holds a
// zero byte (it is JSON text and a newline), so the records of a segment
// end where its trailing run of zeros begins (dataEnd); a crash leaves
// that run, which the next open finds as padding, not as a torn record.
// A sealed segment is cut to its records before the next one is started,
// and Close cuts the active one, so only a segment being written, or left
// by a crash, carries padding.

// zeroChunk is the size of the zero buffer padding is written from.
const zeroChunk = 256 << 10

var zeros [zeroChunk]byte

// errNoTruncate is returned by truncateFile on a file system without file
// descriptors (an in-memory one): the ledger does not preallocate there.
var errNoTruncate = errors.New("ledger: file cannot be truncated in place")

// canPreallocate reports whether the segment file f can carry padding:
// cutting it back needs an OS file descriptor.
func canPreallocate(f vfs.File) bool { return f.Fd() != vfs.InvalidFd && truncateSupported }

// pad is called after a commit of n bytes was written (the records now end
// at a.size): when they went past the padding, it writes ahead bytes of
// zeros after them. A large commit (over ahead/8) pads nothing: its
// fdatasync is mostly its own data, and zeros written ahead of large
// commits would mostly be written twice. The zeros are made durable by the
// fdatasync of the commit that wrote them.
func (a *activeSegment) pad(n, ahead int64) error {
	if a.size <= a.alloc {
		return nil
	}
	if ahead <= 0 || !a.prealloc || n > ahead/8 {
		a.alloc = a.size
		return nil
	}
	to := a.size + ahead
	for off := a.size; off < to; {
		k := min(int64(len(zeros)), to-off)
		if _, err := a.f.WriteAt(zeros[:k], off); err != nil {
			return fmt.Errorf("ledger: pad %s: %w", segmentName(a.num), err)
		}
		off += k
	}
	a.alloc = to
	return nil
}

// cut truncates the active segment to its records, durably, when it
// carries padding.
func (a *activeSegment) cut() error {
	if a.alloc <= a.size {
		return nil
	}
	if err := truncateFile(a.f, a.size); err != nil {
		return fmt.Errorf("ledger: cut %s to its records: %w", segmentName(a.num), err)
	}
	if err := a.f.Sync(); err != nil {
		return fmt.Errorf("ledger: sync %s: %w", segmentName(a.num), err)
	}
	a.alloc = a.size
	return nil
}

// dataEnd returns where the records of a segment file of the given size
// end: before its trailing run of zero bytes (padding), if any.
func dataEnd(f io.ReaderAt, size int64) (int64, error) {
	var buf [64 << 10]byte
	end := size
	for end > 0 {
		k := min(int64(len(buf)), end)
		b := buf[:k]
		if _, err := f.ReadAt(b, end-k); err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		t := bytes.TrimRight(b, "\x00")
		if len(t) > 0 {
			return end - k + int64(len(t)), nil
		}
		end -= k
	}
	return 0, nil
}

// recordsEnd returns where the records of segment file f end: its size
// less any padding.
func recordsEnd(f vfs.File) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return dataEnd(f, st.Size())
}

// SegmentDataEnd returns where the records of the segment file at path end
// (its size less any padding): what a copy of the segment must hold.
func SegmentDataEnd(path string) (int64, error) {
	f, err := vfs.Default.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return recordsEnd(f)
}
