package cycle

import (
	"bytes"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
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
//	                 the length of every file above, written atomically
//
// <h> is the first 16 bytes of SHA-256(tenant) in hex, so any tenant name
// makes a safe file name. The files only grow, and nothing is synced between
// snapshots: a snapshot syncs them and records their lengths; at open they
// are cut back to those lengths and the records after the snapshot's cursor
// are derived again, giving the same bytes.

type tenantFiles struct {
	tenant string
	hash   [8]byte
	base   string // path without extension
	ev     *os.File
	idx    *os.File
	n      uint64 // events written
	evLen  int64  // bytes written
	// committed: what readers may see
	cn    uint64
	cLen  int64
	evBuf []byte
	ixBuf []byte
	dirty bool
}

type store struct {
	dir     string
	mu      sync.RWMutex // guards the committed lengths and the maps
	tenants map[string]*tenantFiles
	buckets [256]*os.File
	bLen    [256]int64 // written
	bCLen   [256]int64 // committed
	bBuf    [256][]byte
	bDirty  [256]bool
}

func tenantHash(t string) [8]byte {
	s := sha256.Sum256([]byte(t))
	return [8]byte(s[:8])
}

func openStoreFiles(dir string) (*store, error) {
	for _, d := range []string{"t", "j"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	s := &store{dir: dir, tenants: map[string]*tenantFiles{}}
	for i := range s.buckets {
		f, err := os.OpenFile(filepath.Join(dir, "j", fmt.Sprintf("%02x.idx", i)), os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			s.close()
			return nil, err
		}
		s.buckets[i] = f
	}
	return s, nil
}

// restoreLengths cuts every file back to the lengths a snapshot recorded
// and removes tenant files the snapshot does not know.
func (s *store) restoreLengths(tenants []snapTenant, buckets [256]int64) error {
	known := map[string]bool{}
	for _, st := range tenants {
		tf, err := s.tenant(st.tenant)
		if err != nil {
			return err
		}
		if err := tf.ev.Truncate(st.evLen); err != nil {
			return err
		}
		if err := tf.idx.Truncate(int64(st.n) * 8); err != nil {
			return err
		}
		tf.n, tf.evLen, tf.cn, tf.cLen = st.n, st.evLen, st.n, st.evLen
		known[filepath.Base(tf.base)] = true
	}
	for i := range s.buckets {
		if err := s.buckets[i].Truncate(buckets[i]); err != nil {
			return err
		}
		s.bLen[i], s.bCLen[i] = buckets[i], buckets[i]
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

// tenant returns (opening or creating) a tenant's files.
func (s *store) tenant(t string) (*tenantFiles, error) {
	s.mu.RLock()
	tf := s.tenants[t]
	s.mu.RUnlock()
	if tf != nil {
		return tf, nil
	}
	h := tenantHash(t)
	full := sha256.Sum256([]byte(t))
	base := filepath.Join(s.dir, "t", hex.EncodeToString(full[:16]))
	ev, err := os.OpenFile(base+".ndjson", os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	idx, err := os.OpenFile(base+".idx", os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		ev.Close()
		return nil, err
	}
	tf = &tenantFiles{tenant: t, hash: h, base: base, ev: ev, idx: idx}
	s.mu.Lock()
	s.tenants[t] = tf
	s.mu.Unlock()
	return tf, nil
}

// add buffers one event of a tenant.
func (s *store) add(tf *tenantFiles, line []byte, traj derive.TrajectoryID, hasTraj bool) {
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
	tf.dirty = true
}

// flush writes what add buffered and makes it visible to readers.
func (s *store) flush() error {
	s.mu.RLock()
	tfs := make([]*tenantFiles, 0, len(s.tenants))
	for _, tf := range s.tenants {
		if len(tf.evBuf) > 0 {
			tfs = append(tfs, tf)
		}
	}
	s.mu.RUnlock()
	for _, tf := range tfs {
		if _, err := tf.ev.WriteAt(tf.evBuf, tf.evLen); err != nil {
			return err
		}
		if _, err := tf.idx.WriteAt(tf.ixBuf, int64(tf.n)*8); err != nil {
			return err
		}
		tf.evLen += int64(len(tf.evBuf))
		tf.n += uint64(len(tf.ixBuf) / 8)
		tf.evBuf, tf.ixBuf = tf.evBuf[:0], tf.ixBuf[:0]
	}
	for i := range s.bBuf {
		if len(s.bBuf[i]) == 0 {
			continue
		}
		if _, err := s.buckets[i].WriteAt(s.bBuf[i], s.bLen[i]); err != nil {
			return err
		}
		s.bLen[i] += int64(len(s.bBuf[i]))
		s.bBuf[i] = s.bBuf[i][:0]
		s.bDirty[i] = true
	}
	s.mu.Lock()
	for _, tf := range tfs {
		tf.cn, tf.cLen = tf.n, tf.evLen
	}
	s.bCLen = s.bLen
	s.mu.Unlock()
	return nil
}

// sync makes every file written since the last sync durable.
func (s *store) sync() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, tf := range s.tenants {
		if !tf.dirty {
			continue
		}
		if err := tf.ev.Sync(); err != nil {
			return err
		}
		if err := tf.idx.Sync(); err != nil {
			return err
		}
		tf.dirty = false
	}
	for i := range s.buckets {
		if s.bDirty[i] {
			if err := s.buckets[i].Sync(); err != nil {
				return err
			}
			s.bDirty[i] = false
		}
	}
	return atomicfile.SyncDir(filepath.Join(s.dir, "t"))
}

type snapTenant struct {
	tenant string
	n      uint64
	evLen  int64
}

// lengths returns the written lengths (for a snapshot).
func (s *store) lengths() ([]snapTenant, [256]int64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]snapTenant, 0, len(s.tenants))
	for t, tf := range s.tenants {
		out = append(out, snapTenant{tenant: t, n: tf.n, evLen: tf.evLen})
	}
	slices.SortFunc(out, func(a, b snapTenant) int { return strings.Compare(a.tenant, b.tenant) })
	return out, s.bLen
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
	var ob [8]byte
	if _, err := tf.idx.ReadAt(ob[:], int64(from)*8); err != nil {
		return from, err
	}
	off := int64(binary.BigEndian.Uint64(ob[:]))
	r := io.NewSectionReader(tf.ev, off, endOff-off)
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
	f, blen := s.buckets[id[0]], s.bCLen[id[0]]
	s.mu.RUnlock()
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
	var out [][]byte
	for _, n := range ns {
		var ob [16]byte
		k, err := tf.idx.ReadAt(ob[:], int64(n)*8)
		if k < 8 {
			return nil, fmt.Errorf("cycle: event index of %s: %w", t, err)
		}
		start, stop := int64(binary.BigEndian.Uint64(ob[:8])), endOff
		if n+1 < end && k == 16 {
			stop = int64(binary.BigEndian.Uint64(ob[8:]))
		}
		line := make([]byte, stop-start)
		if _, err := tf.ev.ReadAt(line, start); err != nil && !errors.Is(err, io.EOF) {
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
	for _, tf := range s.tenants {
		keep(tf.ev.Close())
		keep(tf.idx.Close())
	}
	for _, f := range s.buckets {
		if f != nil {
			keep(f.Close())
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
