package cycle

import (
	"bytes"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/loglineos/loglineos/internal/atomicfile"
	"github.com/loglineos/loglineos/internal/derive"
)

// The derived store, under <data>/derived:
//
//	t/<h>.ndjson     a tenant's events, one canonical JSON object per line
//	t/<h>.idx        the byte offset of each of its events, 8 bytes each
//	j/<bb>.idx       the trajectory index, in 256 buckets by the first byte of
//	                 the trajectory id: 32-byte entries
//	                 (tenant hash 8, trajectory id 15, 0, event number 8)
//	snapshot         the engine state, the cursor, the policy fingerprint and
//	                 the length and CRC-32C of every file above, written
//	                 atomically
//
// <h> is the first 16 bytes of SHA-256(tenant) in hex, so any tenant name
// makes a safe file name. The files only grow, and nothing is synced between
// snapshots: a snapshot syncs them and records their lengths and checksums
// (computed as the bytes are written, never by reading them back); at open
// the files are checked against those checksums and cut back to those
// lengths, and the records after the snapshot's cursor are derived again,
// giving the same bytes.
//
// A trajectory index file is created when first written and then stays
// open (256 at most); of the tenant files, a fileCache keeps a bounded
// number open.

type tenantFiles struct {
	tenant string
	hash   [8]byte
	base   string  // path without extension
	h      *handle // open files; guarded by fileCache.mu
	n      uint64  // events written
	evLen  int64   // bytes written
	evSum  uint32  // CRC-32C of the evLen bytes
	ixSum  uint32  // CRC-32C of the n*8 index bytes
	// committed: what readers may see
	cn      uint64
	cLen    int64
	evBuf   []byte
	ixBuf   []byte
	pending bool // in store.pending
	dirty   bool // in store.dirty
}

type store struct {
	dir     string
	files   fileCache
	mu      sync.RWMutex // guards the committed lengths and the maps
	tenants map[string]*tenantFiles
	bmu     sync.Mutex    // guards buckets
	buckets [256]*os.File // opened when first needed
	bLen    [256]int64    // written
	bSum    [256]uint32   // CRC-32C of the bLen bytes
	bCLen   [256]int64    // committed
	bBuf    [256][]byte
	bDirty  [256]bool
	// Tenants with buffered events, and tenants written since the last
	// sync; the writer's alone.
	pending []*tenantFiles
	dirty   []*tenantFiles
	// cmp, when set, makes the store a verifier: it opens files read-only
	// and flush compares what it would write with what the files hold.
	cmp *comparison
}

// crcTable is CRC-32C's (Castagnoli), which the hardware computes.
var crcTable = crc32.MakeTable(crc32.Castagnoli)

func tenantHash(t string) [8]byte {
	s := sha256.Sum256([]byte(t))
	return [8]byte(s[:8])
}

// tenantBase returns the path of a tenant's files, without extension.
func tenantBase(dir, tenant string) string {
	full := sha256.Sum256([]byte(tenant))
	return filepath.Join(dir, "t", hex.EncodeToString(full[:16]))
}

func bucketPath(dir string, i int) string {
	return filepath.Join(dir, "j", fmt.Sprintf("%02x.idx", i))
}

// openStoreFiles opens the store in dir, keeping at most maxOpen tenant files
// open. A verifier (cmp set) opens everything read-only and creates nothing.
func openStoreFiles(dir string, maxOpen int, cmp *comparison) (*store, error) {
	s := &store{dir: dir, tenants: map[string]*tenantFiles{}, cmp: cmp}
	s.files.max = max(maxOpen/2, 1)
	if cmp != nil {
		s.files.readOnly = true
		return s, nil
	}
	for _, d := range []string{"t", "j"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// bucket returns trajectory index file i, opening (or creating) it the first
// time; it then stays open. A bucket that was never written has no file.
func (s *store) bucket(i int) (*os.File, error) {
	s.bmu.Lock()
	defer s.bmu.Unlock()
	if f := s.buckets[i]; f != nil {
		return f, nil
	}
	flag := os.O_RDWR | os.O_CREATE
	if s.cmp != nil {
		flag = os.O_RDONLY
	}
	f, err := os.OpenFile(bucketPath(s.dir, i), flag, 0o644)
	if err != nil {
		return nil, err
	}
	s.buckets[i] = f
	return f, nil
}

// checkFiles reads every file the snapshot knows up to the length it
// records and compares its CRC-32C with the recorded one. It returns nil, or
// an error naming the first file that differs.
func checkFiles(dir string, sn *snapshot) error {
	buf := make([]byte, 256<<10)
	check := func(path string, length int64, sum uint32) error {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		h := crc32.New(crcTable)
		n, err := io.CopyBuffer(h, io.LimitReader(f, length), buf)
		switch {
		case err != nil:
			return fmt.Errorf("%s: %w", path, err)
		case n < length:
			return fmt.Errorf("%s: %d bytes, the snapshot records %d", path, n, length)
		case h.Sum32() != sum:
			return fmt.Errorf("%s: checksum of the first %d bytes differs from the snapshot's", path, length)
		}
		return nil
	}
	for _, t := range sn.tenants {
		base := tenantBase(dir, t.tenant)
		if err := check(base+".ndjson", t.evLen, t.evSum); err != nil {
			return err
		}
		if err := check(base+".idx", int64(t.n)*8, t.ixSum); err != nil {
			return err
		}
	}
	for i, b := range sn.buckets {
		if b.length == 0 {
			continue
		}
		if err := check(bucketPath(dir, i), b.length, b.sum); err != nil {
			return err
		}
	}
	return nil
}

// restoreLengths cuts every file back to the lengths a snapshot recorded
// and removes tenant files the snapshot does not know.
func (s *store) restoreLengths(tenants []snapTenant, buckets [256]snapFile) error {
	known := map[string]bool{}
	for _, st := range tenants {
		tf := s.tenant(st.tenant)
		if err := os.Truncate(tf.base+".ndjson", st.evLen); err != nil {
			return err
		}
		if err := os.Truncate(tf.base+".idx", int64(st.n)*8); err != nil {
			return err
		}
		tf.n, tf.evLen, tf.cn, tf.cLen = st.n, st.evLen, st.n, st.evLen
		tf.evSum, tf.ixSum = st.evSum, st.ixSum
		known[filepath.Base(tf.base)] = true
	}
	for i := range s.buckets {
		if err := os.Truncate(bucketPath(s.dir, i), buckets[i].length); err != nil && (buckets[i].length > 0 || !errors.Is(err, fs.ErrNotExist)) {
			return err
		}
		s.bLen[i], s.bCLen[i], s.bSum[i] = buckets[i].length, buckets[i].length, buckets[i].sum
	}
	names, err := os.ReadDir(filepath.Join(s.dir, "t"))
	if err != nil {
		return err
	}
	for _, e := range names {
		base := strings.TrimSuffix(strings.TrimSuffix(e.Name(), ".ndjson"), ".idx")
		if !known[base] {
			os.Remove(filepath.Join(s.dir, "t", e.Name()))
		}
	}
	return nil
}

// tenant returns a tenant's files, adding an entry for a new tenant; the
// files themselves are opened (and created) when first written or read.
func (s *store) tenant(t string) *tenantFiles {
	s.mu.RLock()
	tf := s.tenants[t]
	s.mu.RUnlock()
	if tf != nil {
		return tf
	}
	tf = &tenantFiles{tenant: t, hash: tenantHash(t), base: tenantBase(s.dir, t)}
	s.mu.Lock()
	s.tenants[t] = tf
	s.mu.Unlock()
	return tf
}

// addEvents buffers derived events; line is a scratch buffer, returned for
// reuse.
func (s *store) addEvents(evs []derive.Event, line []byte) []byte {
	for i := range evs {
		ev := &evs[i]
		line = ev.AppendJSON(line[:0])
		s.add(s.tenant(ev.Tenant), line, ev.Trajectory, ev.Trajectory != (derive.TrajectoryID{}))
	}
	return line
}

// add buffers one event of a tenant.
func (s *store) add(tf *tenantFiles, line []byte, traj derive.TrajectoryID, hasTraj bool) {
	if !tf.pending {
		tf.pending = true
		s.pending = append(s.pending, tf)
	}
	tf.ixBuf = binary.BigEndian.AppendUint64(tf.ixBuf, uint64(tf.evLen+int64(len(tf.evBuf))))
	tf.evBuf = append(append(tf.evBuf, line...), '\n')
	n := tf.n + uint64(len(tf.ixBuf)/8) - 1
	if hasTraj {
		b := traj[0]
		s.bBuf[b] = append(s.bBuf[b], tf.hash[:]...)
		s.bBuf[b] = append(s.bBuf[b], traj[:]...)
		s.bBuf[b] = append(s.bBuf[b], 0)
		s.bBuf[b] = binary.BigEndian.AppendUint64(s.bBuf[b], n)
	}
}

// maxKeptBuffer is the capacity past which a tenant's write buffers are
// dropped after a flush rather than kept for the next batch, so that a burst
// of one tenant does not hold memory for good.
const maxKeptBuffer = 64 << 10

// flush writes what add buffered and makes it visible to readers (a
// verifier compares it instead).
func (s *store) flush() error {
	for _, tf := range s.pending {
		if err := s.writeTenant(tf); err != nil {
			return err
		}
		tf.evSum = crc32.Update(tf.evSum, crcTable, tf.evBuf)
		tf.ixSum = crc32.Update(tf.ixSum, crcTable, tf.ixBuf)
		tf.evLen += int64(len(tf.evBuf))
		tf.n += uint64(len(tf.ixBuf) / 8)
		tf.evBuf, tf.ixBuf = tf.evBuf[:0], tf.ixBuf[:0]
		if cap(tf.evBuf) > maxKeptBuffer {
			tf.evBuf, tf.ixBuf = nil, nil
		}
		if !tf.dirty {
			tf.dirty = true
			s.dirty = append(s.dirty, tf)
		}
	}
	for i := range s.bBuf {
		if len(s.bBuf[i]) == 0 {
			continue
		}
		f, err := s.bucket(i)
		if err != nil {
			return err
		}
		if err := s.writeAt(f, s.bBuf[i], s.bLen[i], kindBucket, 0, ""); err != nil {
			return err
		}
		s.bSum[i] = crc32.Update(s.bSum[i], crcTable, s.bBuf[i])
		s.bLen[i] += int64(len(s.bBuf[i]))
		s.bBuf[i] = s.bBuf[i][:0]
		s.bDirty[i] = true
	}
	s.mu.Lock()
	for _, tf := range s.pending {
		tf.cn, tf.cLen = tf.n, tf.evLen
		tf.pending = false
	}
	s.bCLen = s.bLen
	s.mu.Unlock()
	clear(s.pending)
	s.pending = s.pending[:0]
	return nil
}

// writeTenant writes (or compares) a tenant's buffered events and index.
func (s *store) writeTenant(tf *tenantFiles) error {
	h, err := s.files.acquire(tf)
	if err != nil {
		return err
	}
	defer s.files.release(h)
	if err := s.writeAt(h.ev, tf.evBuf, tf.evLen, kindEvents, tf.n, tf.tenant); err != nil {
		return err
	}
	return s.writeAt(h.idx, tf.ixBuf, int64(tf.n)*8, kindIndex, tf.n, tf.tenant)
}

// writeAt writes b at off in f, or, in a verifier, compares it with what f
// holds there; kind, first (the number of the first event in b) and tenant
// describe a difference.
func (s *store) writeAt(f *os.File, b []byte, off int64, kind fileKind, first uint64, tenant string) error {
	if s.cmp == nil {
		_, err := f.WriteAt(b, off)
		return err
	}
	return s.cmp.compare(s.dir, f, b, off, kind, first, tenant)
}

// sync makes every file written since the last sync durable.
func (s *store) sync() error {
	if ok, err := syncFS(s.dir); ok {
		if err != nil {
			return err
		}
	} else {
		for _, tf := range s.dirty {
			for _, p := range []string{tf.base + ".ndjson", tf.base + ".idx"} {
				if err := syncPath(p); err != nil {
					return err
				}
			}
		}
		for i := range s.buckets {
			if s.bDirty[i] {
				if err := s.buckets[i].Sync(); err != nil {
					return err
				}
			}
		}
		if err := atomicfile.SyncDir(filepath.Join(s.dir, "t")); err != nil {
			return err
		}
	}
	for _, tf := range s.dirty {
		tf.dirty = false
	}
	clear(s.dirty)
	s.dirty = s.dirty[:0]
	s.bDirty = [256]bool{}
	return nil
}

func syncPath(p string) error {
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

type snapTenant struct {
	tenant string
	n      uint64
	evLen  int64
	evSum  uint32
	ixSum  uint32
}

// snapFile is a trajectory index file's length and checksum.
type snapFile struct {
	length int64
	sum    uint32
}

// lengths returns the written lengths and checksums (for a snapshot).
func (s *store) lengths() ([]snapTenant, [256]snapFile) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]snapTenant, 0, len(s.tenants))
	for t, tf := range s.tenants {
		out = append(out, snapTenant{tenant: t, n: tf.n, evLen: tf.evLen, evSum: tf.evSum, ixSum: tf.ixSum})
	}
	slices.SortFunc(out, func(a, b snapTenant) int { return strings.Compare(a.tenant, b.tenant) })
	var bs [256]snapFile
	for i := range bs {
		bs[i] = snapFile{length: s.bLen[i], sum: s.bSum[i]}
	}
	return out, bs
}

// committed returns a tenant's visible event count and bytes.
func (s *store) committed(t string) (*tenantFiles, uint64, int64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	tf := s.tenants[t]
	if tf == nil {
		return nil, 0, 0
	}
	return tf, tf.cn, tf.cLen
}

// events calls fn for the visible events from number from on.
func (s *store) events(t string, from uint64, fn func(n uint64, ev []byte) bool) (uint64, error) {
	tf, end, endOff := s.committed(t)
	if tf == nil || from >= end {
		return from, nil
	}
	h, err := s.files.acquire(tf)
	if err != nil {
		return from, err
	}
	defer s.files.release(h)
	var ob [8]byte
	if _, err := h.idx.ReadAt(ob[:], int64(from)*8); err != nil {
		return from, err
	}
	off := int64(binary.BigEndian.Uint64(ob[:]))
	r := io.NewSectionReader(h.ev, off, endOff-off)
	buf := make([]byte, 256<<10)
	var carry []byte
	n := from
	for n < end {
		k, err := r.Read(buf)
		if k == 0 && err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return n, err
		}
		data := buf[:k]
		if len(carry) > 0 {
			data = append(carry, data...)
		}
		for {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				break
			}
			if !fn(n, data[:i]) {
				return n + 1, nil
			}
			n++
			data = data[i+1:]
		}
		carry = append(carry[:0], data...)
	}
	return n, nil
}

// trajectory returns the visible events of one trajectory, in order.
func (s *store) trajectory(t string, id derive.TrajectoryID) ([][]byte, error) {
	tf, end, endOff := s.committed(t)
	if tf == nil {
		return nil, nil
	}
	s.mu.RLock()
	blen := s.bCLen[id[0]]
	s.mu.RUnlock()
	if blen == 0 {
		return nil, nil
	}
	f, err := s.bucket(int(id[0]))
	if err != nil {
		return nil, err
	}
	data := make([]byte, blen)
	if _, err := f.ReadAt(data, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	var ns []uint64
	for i := 0; i+32 <= len(data); i += 32 {
		e := data[i : i+32]
		if [8]byte(e[:8]) == tf.hash && derive.TrajectoryID(e[8:23]) == id {
			if n := binary.BigEndian.Uint64(e[24:]); n < end {
				ns = append(ns, n)
			}
		}
	}
	if len(ns) == 0 {
		return nil, nil
	}
	h, err := s.files.acquire(tf)
	if err != nil {
		return nil, err
	}
	defer s.files.release(h)
	var out [][]byte
	for _, n := range ns {
		var ob [16]byte
		k, err := h.idx.ReadAt(ob[:], int64(n)*8)
		if k < 8 {
			return nil, fmt.Errorf("cycle: event index of %s: %w", t, err)
		}
		start, stop := int64(binary.BigEndian.Uint64(ob[:8])), endOff
		if n+1 < end && k == 16 {
			stop = int64(binary.BigEndian.Uint64(ob[8:]))
		}
		if start < 0 || stop < start || stop > endOff {
			return nil, fmt.Errorf("cycle: event index of %s: event %d at bytes %d..%d of %d: the index is damaged", t, n, start, stop, endOff)
		}
		line := make([]byte, stop-start)
		if _, err := h.ev.ReadAt(line, start); err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		out = append(out, bytes.TrimSuffix(line, []byte{'\n'}))
	}
	return out, nil
}

func (s *store) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	s.files.closeAll()
	s.bmu.Lock()
	defer s.bmu.Unlock()
	for i, f := range s.buckets {
		if f != nil {
			keep(f.Close())
			s.buckets[i] = nil
		}
	}
	return first
}

// parseTrajectoryID reads the text form "t_" + 24 base32hex characters.
func parseTrajectoryID(s string) (derive.TrajectoryID, bool) {
	var id derive.TrajectoryID
	rest, ok := strings.CutPrefix(s, "t_")
	if !ok || len(rest) != 24 {
		return id, false
	}
	b, err := base32.HexEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ToUpper(rest))
	if err != nil || len(b) != len(id) {
		return id, false
	}
	copy(id[:], b)
	return id, id.String() == s
}
