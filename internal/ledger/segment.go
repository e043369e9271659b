package ledger

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Segments are ledger/segments/NNNNNN.ndjson, numbered from 1 without gaps.

func segmentName(n uint32) string { return fmt.Sprintf("%06d.ndjson", n) }

func parseSegmentName(name string) (uint32, bool) {
	base, ok := strings.CutSuffix(name, ".ndjson")
	if !ok || len(base) < 6 {
		return 0, false
	}
	n, err := strconv.ParseUint(base, 10, 32)
	if err != nil || n == 0 {
		return 0, false
	}
	return uint32(n), true
}

// listSegments returns the segment numbers in dir, in order, and checks that
// they have no gaps.
func listSegments(fs vfs.FS, dir string) ([]uint32, error) {
	names, err := fs.List(dir)
	if err != nil {
		return nil, fmt.Errorf("ledger: list segments: %w", err)
	}
	var segs []uint32
	for _, name := range names {
		if n, ok := parseSegmentName(name); ok {
			segs = append(segs, n)
		}
	}
	slices.Sort(segs)
	for i, n := range segs {
		if n != segs[0]+uint32(i) {
			return nil, fmt.Errorf("%w: segment %s is missing", ErrCorrupt, segmentName(segs[0]+uint32(i)))
		}
	}
	if len(segs) > 0 && segs[0] != 1 {
		return nil, fmt.Errorf("%w: segment %s is missing", ErrCorrupt, segmentName(1))
	}
	return segs, nil
}

// segmentFiles hands out read handles to segments, kept open.
type segmentFiles struct {
	fs  vfs.FS
	dir string

	mu    sync.Mutex
	files map[uint32]vfs.File
}

func (s *segmentFiles) path(n uint32) string { return s.fs.PathJoin(s.dir, segmentName(n)) }

func (s *segmentFiles) get(n uint32) (vfs.File, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f, ok := s.files[n]; ok {
		return f, nil
	}
	f, err := s.fs.Open(s.path(n), vfs.RandomReadsOption)
	if err != nil {
		return nil, fmt.Errorf("ledger: open segment %s: %w", segmentName(n), err)
	}
	if s.files == nil {
		s.files = make(map[uint32]vfs.File)
	}
	s.files[n] = f
	return f, nil
}

// forget closes the read handle of a segment (after it was rewritten).
func (s *segmentFiles) forget(n uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f, ok := s.files[n]; ok {
		f.Close()
		delete(s.files, n)
	}
}

func (s *segmentFiles) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for n, f := range s.files {
		f.Close()
		delete(s.files, n)
	}
}

// readLine reads the record line at p (without its newline).
func (s *segmentFiles) readLine(p pos, buf []byte) ([]byte, error) {
	f, err := s.get(p.seg)
	if err != nil {
		return nil, err
	}
	buf = slices.Grow(buf[:0], int(p.n)+1)[:p.n+1]
	if _, err := f.ReadAt(buf, p.off); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("ledger: read %s at %d: %w", segmentName(p.seg), p.off, err)
	}
	if buf[p.n] != '\n' {
		return nil, fmt.Errorf("%w: %s offset %d: record does not end where the index says", ErrCorrupt, segmentName(p.seg), p.off)
	}
	return buf[:p.n], nil
}

// lineScanner reads the lines of one segment sequentially from an offset.
// Reaching the end is not final: a later call reads what was appended since.
type lineScanner struct {
	f    vfs.File
	off  int64 // file offset of buf[0]
	buf  []byte
	r, w int // unread bytes are buf[r:w]
	// limit, when not negative, is where reading stops: the records' end
	// in a segment whose padding (zeros) is being written over.
	limit int64
}

const scanChunk = 256 << 10

// newLineScanner reads f from off up to limit (no limit when negative).
func newLineScanner(f vfs.File, off, limit int64) *lineScanner {
	return &lineScanner{f: f, off: off, buf: make([]byte, scanChunk), limit: limit}
}

// next returns the next complete line (without newline) and its offset, or
// io.EOF with the offset where the unread bytes start; the bytes after the
// last newline are then available from partial().
func (s *lineScanner) next() ([]byte, int64, error) {
	for {
		if i := bytes.IndexByte(s.buf[s.r:s.w], '\n'); i >= 0 {
			line := s.buf[s.r : s.r+i]
			at := s.off + int64(s.r)
			s.r += i + 1
			return line, at, nil
		}
		// Move the unread tail to the front and read more.
		if s.r > 0 {
			n := copy(s.buf, s.buf[s.r:s.w])
			s.off += int64(s.r)
			s.r, s.w = 0, n
		}
		if s.w == len(s.buf) {
			s.buf = slices.Grow(s.buf, len(s.buf))[:2*len(s.buf)]
		}
		want := s.buf[s.w:]
		if s.limit >= 0 {
			left := s.limit - (s.off + int64(s.w))
			if left <= 0 {
				return nil, s.off + int64(s.r), io.EOF
			}
			want = want[:min(int64(len(want)), left)]
		}
		n, err := s.f.ReadAt(want, s.off+int64(s.w))
		s.w += n
		if n == 0 || errors.Is(err, io.EOF) {
			if n > 0 {
				continue
			}
			return nil, s.off + int64(s.r), io.EOF
		}
		if err != nil {
			return nil, s.off + int64(s.r), err
		}
	}
}

// partial returns the bytes after the last newline once next returned EOF.
func (s *lineScanner) partial() []byte { return s.buf[s.r:s.w] }

// offset returns the file offset of the next line.
func (s *lineScanner) offset() int64 { return s.off + int64(s.r) }

// activeSegment is the segment being appended to.
type activeSegment struct {
	num  uint32
	f    vfs.File
	size int64 // where its records end
	// alloc is where its padding ends (the file's size when it has
	// padding), prealloc whether it may have any (see prealloc.go).
	alloc    int64
	prealloc bool
}

// createSegment creates segment n safely: an empty file is created under a
// temporary name and synced, renamed into place, and the directory synced.
func createSegment(fs vfs.FS, dir string, n uint32) (*activeSegment, error) {
	final := fs.PathJoin(dir, segmentName(n))
	tmp := final + ".tmp"
	f, err := fs.Create(tmp, vfs.WriteCategoryUnspecified)
	if err != nil {
		return nil, fmt.Errorf("ledger: create segment %s: %w", segmentName(n), err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("ledger: sync new segment %s: %w", segmentName(n), err)
	}
	if err := fs.Rename(tmp, final); err != nil {
		f.Close()
		return nil, fmt.Errorf("ledger: rename new segment %s: %w", segmentName(n), err)
	}
	if err := syncDir(fs, dir); err != nil {
		f.Close()
		return nil, err
	}
	return &activeSegment{num: n, f: f, prealloc: canPreallocate(f)}, nil
}

// openActiveSegment opens the last segment for appending at size.
func openActiveSegment(fs vfs.FS, dir string, n uint32, size int64) (*activeSegment, error) {
	path := fs.PathJoin(dir, segmentName(n))
	f, err := fs.OpenReadWrite(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return nil, fmt.Errorf("ledger: open segment %s for append: %w", segmentName(n), err)
	}
	a := &activeSegment{num: n, f: f, size: size, alloc: size, prealloc: canPreallocate(f)}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("ledger: open segment %s for append: %w", segmentName(n), err)
	}
	switch {
	case st.Size() <= size:
	case a.prealloc:
		a.alloc = st.Size() // padding a crash left: written over as records come
	default:
		// Padding where none can be cut later: cut it now.
		f.Close()
		if err := rewritePrefix(fs, path, size); err != nil {
			return nil, fmt.Errorf("ledger: cut segment %s to its records: %w", segmentName(n), err)
		}
		return openActiveSegment(fs, dir, n, size)
	}
	return a, nil
}

// rewritePrefix replaces a file by its first n bytes, safely: the prefix is
// copied to a temporary file that is synced and renamed over the original.
func rewritePrefix(fs vfs.FS, name string, n int64) error {
	src, err := fs.Open(name)
	if err != nil {
		return err
	}
	defer src.Close()
	tmp := name + ".tmp"
	dst, err := fs.Create(tmp, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, io.LimitReader(src, n)); err != nil {
		dst.Close()
		return err
	}
	if err := dst.Sync(); err != nil {
		dst.Close()
		return err
	}
	if err := dst.Close(); err != nil {
		return err
	}
	if err := fs.Rename(tmp, name); err != nil {
		return err
	}
	return syncDir(fs, fs.PathDir(name))
}

// copyRange writes bytes [from, to) of name into a new file dst, synced.
func copyRange(fs vfs.FS, name, dst string, from, to int64) error {
	src, err := fs.Open(name)
	if err != nil {
		return err
	}
	defer src.Close()
	out, err := fs.Create(dst, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, io.NewSectionReader(src, from, to-from)); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
