package ledger

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
)

// The indexes are files under ledger/index, all derived from the segments.
// The workload is append-only, so each index is a file that only grows or a
// set of immutable sorted runs; no general-purpose database is involved.
//
//	positions            seq -> position: 16 bytes at offset 16*seq, the
//	                     segment number (4, big-endian), byte offset (8) and
//	                     line length without the newline (4)
//	batches              one 128-byte entry per group commit, in order: its
//	                     batch receipt (below); the commit of a seq is found
//	                     by binary search on first
//	id-NNNNNNNN.run      (tenant, id) -> seq    \
//	thing-NNNNNNNN.run   (tenant, this) -> seq   } lookup runs (lookup.go)
//	tenant-NNNNNNNN.run  tenant -> seq          /
//	state                how far the files above are complete
//	tree/                the Merkle tree's nodes (tree.go)
//
// A batches entry:
//
//	first (8) size (8) ts in Unix microseconds (8) root (32) signature (64)
//	key id (4) CRC-32C of the 124 bytes before (4)
//
// The state file is written atomically after a run is written and synced:
//
//	logline index v2
//	next <seq> <segment> <offset> <batches>
//	nextrun <number>
//	run <kind> <number>
//	…
//	crc <CRC-32C of the lines above, 8 hex digits>
//
// It says that every record before seq (which starts at that segment and
// offset) has its position, its commit's entry (the first <batches> entries)
// and its lookup entries (in the listed runs) on disk, synced. Appends write
// positions and batch entries as they index each commit and keep lookup
// entries in memory until a delta fills; at open, the records from next on
// are read from the segments and indexed again, which rewrites the same
// bytes. Deleting ledger/index rebuilds all of it.
const (
	posEntrySize   = 16
	batchEntrySize = 128
	indexStateName = "state"
	indexStateHead = "logline index v2"

	// mergeFanIn runs of one size class are merged into one.
	mergeFanIn = 4
)

// pos is where a record's line is: segment number, byte offset, length
// without the newline.
type pos struct {
	seg uint32
	off int64
	n   uint32
}

func (p pos) end() int64 { return p.off + int64(p.n) + 1 }

func appendPos(b []byte, p pos) []byte {
	b = binary.BigEndian.AppendUint32(b, p.seg)
	b = binary.BigEndian.AppendUint64(b, uint64(p.off))
	return binary.BigEndian.AppendUint32(b, p.n)
}

func decodePos(b []byte) pos {
	return pos{
		seg: binary.BigEndian.Uint32(b),
		off: int64(binary.BigEndian.Uint64(b[4:])),
		n:   binary.BigEndian.Uint32(b[12:]),
	}
}

// appendBatchEntry appends the batches-file entry of a batch receipt.
func appendBatchEntry(b []byte, br *ledgerfmt.BatchReceipt) []byte {
	start := len(b)
	b = binary.BigEndian.AppendUint64(b, br.Batch.First)
	b = binary.BigEndian.AppendUint64(b, br.Batch.Size)
	b = binary.BigEndian.AppendUint64(b, uint64(br.TS.UnixMicro()))
	b = append(b, br.Batch.Root[:]...)
	var sig [64]byte
	copy(sig[:], br.Sig)
	b = append(b, sig[:]...)
	kid, _ := strconv.ParseUint(br.KID, 16, 32)
	b = binary.BigEndian.AppendUint32(b, uint32(kid))
	return binary.BigEndian.AppendUint32(b, crc32.Update(0, castagnoli, b[start:]))
}

func decodeBatchEntry(b []byte) (ledgerfmt.BatchReceipt, error) {
	if len(b) != batchEntrySize || crc32.Update(0, castagnoli, b[:124]) != binary.BigEndian.Uint32(b[124:]) {
		return ledgerfmt.BatchReceipt{}, fmt.Errorf("%w: index: bad batch entry", ErrCorrupt)
	}
	br := ledgerfmt.BatchReceipt{
		Op: ledgerfmt.OpAppend,
		Batch: ledgerfmt.BatchRef{
			First: binary.BigEndian.Uint64(b),
			Size:  binary.BigEndian.Uint64(b[8:]),
		},
		TS:  ledgerfmt.Timestamp{Time: time.UnixMicro(int64(binary.BigEndian.Uint64(b[16:]))).UTC()},
		Sig: append([]byte(nil), b[56:120]...),
		KID: fmt.Sprintf("%08x", binary.BigEndian.Uint32(b[120:])),
	}
	copy(br.Batch.Root[:], b[24:56])
	return br, nil
}

// indexState is what the state file records.
type indexState struct {
	next    uint64
	at      pos
	batches uint64
	nextRun uint64
	runs    [numKinds][]uint64
}

func (s *indexState) encode() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s\nnext %d %d %d %d\nnextrun %d\n", indexStateHead, s.next, s.at.seg, s.at.off, s.batches, s.nextRun)
	for k := range numKinds {
		for _, n := range s.runs[k] {
			fmt.Fprintf(&b, "run %s %d\n", kindName(k), n)
		}
	}
	fmt.Fprintf(&b, "crc %08x\n", crc32.Checksum(b.Bytes(), castagnoli))
	return b.Bytes()
}

func parseIndexState(b []byte) (indexState, error) {
	s := indexState{}
	if bytes.HasPrefix(b, []byte("logline index v1\n")) {
		return s, errOldIndexFormat
	}
	body, sum, ok := cutChecksumLine(b)
	if !ok {
		return s, errors.New("index state has no checksum line")
	}
	if crc32.Checksum(body, castagnoli) != sum {
		return s, errors.New("index state checksum mismatch")
	}
	lines := bytes.Split(bytes.TrimSuffix(body, []byte("\n")), []byte("\n"))
	if len(lines) < 3 || string(lines[0]) != indexStateHead {
		return s, errors.New("not an index state")
	}
	var seg uint32
	if _, err := fmt.Sscanf(string(lines[1]), "next %d %d %d %d", &s.next, &seg, &s.at.off, &s.batches); err != nil {
		return s, fmt.Errorf("bad next line: %w", err)
	}
	s.at.seg = seg
	if _, err := fmt.Sscanf(string(lines[2]), "nextrun %d", &s.nextRun); err != nil {
		return s, fmt.Errorf("bad nextrun line: %w", err)
	}
	for _, line := range lines[3:] {
		var kind string
		var n uint64
		if _, err := fmt.Sscanf(string(line), "run %s %d", &kind, &n); err != nil {
			return s, fmt.Errorf("bad run line %q", line)
		}
		k, ok := parseKind(kind)
		if !ok || n >= s.nextRun {
			return s, fmt.Errorf("bad run line %q", line)
		}
		s.runs[k] = append(s.runs[k], n)
	}
	return s, nil
}

// deltaSet is the in-memory part of the lookup indexes: the entries of the
// records [from, to).
type deltaSet struct {
	k       [numKinds]*delta
	spans   int
	from    uint64
	to      uint64
	at      pos    // where record to starts
	batches uint64 // batch entries for the commits before to
}

// index is the open index files.
type index struct {
	fs       vfs.FS
	dir      string
	readOnly bool
	log      *slog.Logger
	hash     keyHasher
	capacity int // spans per delta

	posF vfs.File
	batF vfs.File
	posN atomic.Uint64 // positions are written for the seqs before this
	batN atomic.Uint64 // batch entries written

	mu     sync.RWMutex
	cond   *sync.Cond // signalled (with mu) when frozen is taken
	active *deltaSet
	frozen *deltaSet // full, being written to runs
	spare  *deltaSet
	runs   [numKinds][]*run // in seq order
	state  indexState       // as last written; changed by the compactor only

	sortBuf []entry // the compactor's

	blocks sync.Pool // *[runBlock * runEntrySize]byte: scratch for lookups

	wake     chan struct{} // a delta was frozen
	stop     chan struct{}
	done     chan struct{}
	stopping atomic.Bool
	err      atomic.Pointer[error]

	// onDamage is told of a damaged run met by a merge; merges then stop
	// (new runs are still written) until the next open rebuilds the index.
	onDamage func(error)
	noMerge  atomic.Bool
}

// deltaCapacity is the number of spans a delta holds: about 96 bytes each
// (three kinds of 16-byte entries, their links and table slots).
func deltaCapacity(memBytes int64) int {
	return int(max(64, min(memBytes/96, 1<<28)))
}

// openIndex opens the index files of dir. A missing or unreadable index is
// started afresh (and rebuilt by the caller from the segments) unless
// read-only, where it is reported as nil.
func openIndex(fs vfs.FS, dir string, hash keyHasher, memBytes int64, readOnly bool, log *slog.Logger, repaired func(what, reason string)) (*index, error) {
	x := &index{fs: fs, dir: dir, readOnly: readOnly, log: log, hash: hash, capacity: deltaCapacity(memBytes)}
	x.init()
	if !readOnly {
		// A ledger written before the index files kept them in pebble.
		if old := fs.PathJoin(dir, "db"); fileExists(fs, old) {
			log.Info("removing the old index database; the index is rebuilt from the segments")
			if err := fs.RemoveAll(old); err != nil {
				return nil, fmt.Errorf("ledger: drop old index: %w", err)
			}
		}
	}
	err := x.load()
	// Beside a running writer, a run the state lists may be merged away
	// before it is opened: read the state again.
	for try := 0; readOnly && errors.Is(err, os.ErrNotExist) && try < 20 && fileExists(fs, fs.PathJoin(dir, indexStateName)); try++ {
		x.closeFiles()
		x = &index{fs: fs, dir: dir, readOnly: readOnly, log: log, hash: hash, capacity: x.capacity}
		x.init()
		err = x.load()
	}
	if err != nil {
		x.closeFiles()
		if readOnly {
			return nil, err
		}
		switch {
		case errors.Is(err, errOldIndexFormat):
			log.Info("the index is of an earlier format; rebuilding it from the segments")
		case !errors.Is(err, os.ErrNotExist):
			log.Warn("index unreadable; rebuilding it from the segments", "err", err)
			repaired("index", err.Error())
		}
		x = &index{fs: fs, dir: dir, log: log, hash: hash, capacity: x.capacity}
		x.init()
		if err := x.fresh(); err != nil {
			x.closeFiles()
			return nil, err
		}
	}
	x.active = x.newDeltaSet(x.state.next, x.state.at, x.state.batches)
	x.posN.Store(x.state.next)
	x.batN.Store(x.state.batches)
	return x, nil
}

func (x *index) init() {
	x.cond = sync.NewCond(&x.mu)
	x.blocks.New = func() any { return new([runBlock * runEntrySize]byte) }
}

// load opens the files the state file lists and checks them.
func (x *index) load() error {
	fs := x.fs
	b, err := readFile(fs, fs.PathJoin(x.dir, indexStateName))
	if err != nil {
		return err
	}
	st, err := parseIndexState(b)
	if err != nil {
		return err
	}
	open := fs.Open
	if !x.readOnly {
		open = func(name string, _ ...vfs.OpenOption) (vfs.File, error) {
			return fs.OpenReadWrite(name, vfs.WriteCategoryUnspecified)
		}
	}
	if x.posF, err = open(fs.PathJoin(x.dir, "positions")); err != nil {
		return err
	}
	if x.batF, err = open(fs.PathJoin(x.dir, "batches")); err != nil {
		return err
	}
	for _, c := range []struct {
		f    vfs.File
		want int64
	}{{x.posF, int64(st.next) * posEntrySize}, {x.batF, int64(st.batches) * batchEntrySize}} {
		fi, err := c.f.Stat()
		if err != nil {
			return err
		}
		if fi.Size() < c.want {
			return fmt.Errorf("%s is %d bytes, the state says %d", fi.Name(), fi.Size(), c.want)
		}
	}
	for k := range numKinds {
		var last uint64
		for _, n := range st.runs[k] {
			r, err := openRun(fs, x.dir, k, n)
			if err != nil {
				return err
			}
			x.runs[k] = append(x.runs[k], r)
			if r.from < last || r.to > st.next {
				return fmt.Errorf("run %s covers [%d,%d), out of order", runName(k, n), r.from, r.to)
			}
			last = r.to
		}
	}
	x.state = st
	if !x.readOnly {
		return x.removeStray()
	}
	return nil
}

// fresh starts an empty index.
func (x *index) fresh() error {
	fs := x.fs
	names, err := fs.List(x.dir)
	if err != nil {
		return fmt.Errorf("ledger: list index: %w", err)
	}
	for _, n := range names {
		if _, _, ok := parseRunName(n); ok || n == indexStateName {
			if err := fs.Remove(fs.PathJoin(x.dir, n)); err != nil {
				return fmt.Errorf("ledger: drop index file: %w", err)
			}
		}
	}
	if x.posF, err = fs.Create(fs.PathJoin(x.dir, "positions"), vfs.WriteCategoryUnspecified); err != nil {
		return fmt.Errorf("ledger: create index: %w", err)
	}
	if x.batF, err = fs.Create(fs.PathJoin(x.dir, "batches"), vfs.WriteCategoryUnspecified); err != nil {
		return fmt.Errorf("ledger: create index: %w", err)
	}
	x.state = indexState{at: pos{seg: 1}, nextRun: 1}
	if err := syncDir(fs, x.dir); err != nil {
		return err
	}
	return x.writeState(x.state)
}

// removeStray deletes run files the state does not list: leftovers of a
// crash while a run was written or merged.
func (x *index) removeStray() error {
	fs := x.fs
	names, err := fs.List(x.dir)
	if err != nil {
		return err
	}
	for _, n := range names {
		k, num, ok := parseRunName(n)
		if (ok && !slices.Contains(x.state.runs[k], num)) || (!ok && len(n) > 4 && n[len(n)-4:] == ".tmp") {
			if err := fs.Remove(fs.PathJoin(x.dir, n)); err != nil {
				return fmt.Errorf("ledger: drop stray index file: %w", err)
			}
		}
	}
	return nil
}

// errOldIndexFormat: the index was written by an earlier version; it is
// rebuilt, which is not damage.
var errOldIndexFormat = errors.New("ledger: index of an earlier format")

// cutChecksumLine splits a state file into its body and the value of its
// last line, "crc <8 hex digits>".
func cutChecksumLine(b []byte) ([]byte, uint32, bool) {
	b, ok := bytes.CutSuffix(b, []byte("\n"))
	if !ok {
		return nil, 0, false
	}
	i := bytes.LastIndexByte(b, '\n') + 1
	hex, ok := bytes.CutPrefix(b[i:], []byte("crc "))
	if !ok || len(hex) != 8 {
		return nil, 0, false
	}
	v, err := strconv.ParseUint(string(hex), 16, 32)
	if err != nil {
		return nil, 0, false
	}
	return b[:i], uint32(v), true
}

// dropIndexState removes the index state file, so that the next
// openIndex starts the index afresh.
func dropIndexState(fs vfs.FS, dir string) error {
	name := fs.PathJoin(dir, indexStateName)
	if !fileExists(fs, name) {
		return nil
	}
	if err := fs.Remove(name); err != nil {
		return fmt.Errorf("ledger: drop index state: %w", err)
	}
	return syncDir(fs, dir)
}

func (x *index) writeState(s indexState) error {
	return writeFileAtomic(x.fs, x.fs.PathJoin(x.dir, indexStateName), s.encode(), 0o644)
}

func (x *index) newDeltaSet(from uint64, at pos, batches uint64) *deltaSet {
	d := x.spare
	x.spare = nil
	if d == nil {
		d = &deltaSet{}
		for k := range numKinds {
			d.k[k] = newDelta(x.capacity)
		}
	} else {
		for k := range numKinds {
			d.k[k].reset()
		}
	}
	d.spans, d.from, d.to, d.at, d.batches = 0, from, from, at, batches
	return d
}

// start runs the compactor: it writes frozen deltas to runs and merges runs.
func (x *index) start() {
	x.wake = make(chan struct{}, 1)
	x.stop = make(chan struct{})
	x.done = make(chan struct{})
	go x.compactor()
}

func (x *index) failed() error {
	if p := x.err.Load(); p != nil {
		return *p
	}
	return nil
}

func (x *index) compactor() {
	defer close(x.done)
	for {
		select {
		case <-x.wake:
		case <-x.stop:
			return
		}
		if err := x.compact(); err != nil {
			err = fmt.Errorf("ledger: index: %w", err)
			x.err.CompareAndSwap(nil, &err)
			x.mu.Lock()
			x.cond.Broadcast()
			x.mu.Unlock()
			return
		}
	}
}

// compact writes the frozen delta, if any, then merges runs while some
// size class has enough.
func (x *index) compact() error {
	if err := x.flushFrozen(); err != nil {
		return err
	}
	for !x.stopping.Load() && !x.noMerge.Load() {
		k, i, ok := x.pickMerge()
		if !ok {
			return nil
		}
		if err := x.merge(k, i); err != nil {
			if errors.Is(err, ErrCorrupt) && x.onDamage != nil {
				x.noMerge.Store(true)
				x.onDamage(err)
				return nil
			}
			return err
		}
	}
	return nil
}

// add indexes the span records of one commit (hashes computed by the
// caller) and moves the delta's end to the commit's end. It returns true
// when the delta filled and was frozen: the caller starts the compactor or,
// at open, runs it.
func (x *index) add(spans []spanHashes, to uint64, at pos, batches uint64) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	a := x.active
	for i := range spans {
		s := &spans[i]
		a.k[kindID].add(s.id, s.seq)
		a.k[kindThing].add(s.thing, s.seq)
		a.k[kindTenant].add(s.tenant, s.seq)
	}
	a.spans += len(spans)
	a.to, a.at, a.batches = to, at, batches
	if a.spans < x.capacity {
		return false
	}
	for x.frozen != nil && x.failed() == nil {
		x.cond.Wait()
	}
	if x.failed() != nil {
		// The ledger fails with the index: keep what is in memory readable.
		return false
	}
	x.freezeLocked()
	return true
}

func (x *index) freezeLocked() {
	a := x.active
	x.frozen = a
	x.active = x.newDeltaSet(a.to, a.at, a.batches)
}

// spanHashes are the lookup hashes of one span record.
type spanHashes struct {
	seq               uint64
	id, thing, tenant uint64
}

func (x *index) wakeCompactor() {
	select {
	case x.wake <- struct{}{}:
	default:
	}
}

// flushFrozen writes the frozen delta as one run per kind, syncs the
// positions and batches files, and records the new state.
func (x *index) flushFrozen() error {
	x.mu.RLock()
	fz := x.frozen
	x.mu.RUnlock()
	if fz == nil {
		return nil
	}
	st := x.state
	var made [numKinds]*run
	abandon := func() {
		for _, r := range made {
			if r != nil {
				r.f.Close()
				x.fs.Remove(x.fs.PathJoin(x.dir, runName(r.kind, r.num)))
			}
		}
	}
	for k := range numKinds {
		if len(fz.k[k].ents) == 0 {
			continue
		}
		num := st.nextRun
		st.nextRun++
		w, err := createRun(x.fs, x.dir, k, num)
		if err != nil {
			abandon()
			return err
		}
		x.sortBuf = fz.k[k].sorted(x.sortBuf)
		for _, e := range x.sortBuf {
			if err = w.add(e); err != nil {
				break
			}
		}
		var r *run
		if err == nil {
			r, err = w.finish(k, num, fz.from, fz.to)
		}
		if err != nil {
			w.abandon(x.fs)
			abandon()
			return err
		}
		made[k] = r
	}
	if err := x.syncData(); err != nil {
		abandon()
		return err
	}
	if err := syncDir(x.fs, x.dir); err != nil {
		abandon()
		return err
	}
	x.mu.Lock()
	for k, r := range made {
		if r != nil {
			x.runs[k] = append(x.runs[k], r)
			st.runs[k] = append(slices.Clip(st.runs[k]), r.num)
		}
	}
	st.next, st.at, st.batches = fz.to, fz.at, fz.batches
	x.state = st
	x.frozen = nil
	x.spare = fz
	x.cond.Broadcast()
	x.mu.Unlock()
	return x.writeState(st)
}

func (x *index) syncData() error {
	if err := x.posF.SyncData(); err != nil {
		return fmt.Errorf("ledger: sync index positions: %w", err)
	}
	if err := x.batF.SyncData(); err != nil {
		return fmt.Errorf("ledger: sync index batches: %w", err)
	}
	return nil
}

func (x *index) frozenWaiting() bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.frozen != nil
}

// pickMerge finds mergeFanIn adjacent runs of one kind in one size class.
// Only the compactor changes the runs, so it reads them without the lock.
func (x *index) pickMerge() (int, int, bool) {
	for k := range numKinds {
		rs := x.runs[k]
		for i := 0; i+mergeFanIn <= len(rs); i++ {
			t := rs[i].tier()
			same := true
			for _, r := range rs[i+1 : i+mergeFanIn] {
				if r.tier() != t {
					same = false
					break
				}
			}
			if same {
				return k, i, true
			}
		}
	}
	return 0, 0, false
}

// merge replaces runs [i, i+mergeFanIn) of kind k by their merge. A delta
// frozen meanwhile is written first.
func (x *index) merge(k, i int) error {
	ins := slices.Clone(x.runs[k][i : i+mergeFanIn])
	num := x.state.nextRun
	x.state.nextRun++ // the number is used once, whatever happens
	w, err := createRun(x.fs, x.dir, k, num)
	if err != nil {
		return err
	}
	readers := make([]runReader, len(ins))
	for j := range ins {
		readers[j].r = ins[j]
	}
	var n int
	for {
		best := -1
		var be entry
		for j := range readers {
			e, ok, err := readers[j].peek()
			if err != nil {
				w.abandon(x.fs)
				return err
			}
			if ok && (best < 0 || cmpEntry(e, be) < 0) {
				best, be = j, e
			}
		}
		if best < 0 {
			break
		}
		readers[best].p += runEntrySize
		if err := w.add(be); err != nil {
			w.abandon(x.fs)
			return err
		}
		if n++; n%(1<<16) == 0 {
			if x.stopping.Load() {
				w.abandon(x.fs)
				return nil
			}
			if x.frozenWaiting() {
				if err := x.flushFrozen(); err != nil {
					w.abandon(x.fs)
					return err
				}
			}
		}
	}
	out, err := w.finish(k, num, ins[0].from, ins[len(ins)-1].to)
	if err != nil {
		w.abandon(x.fs)
		return err
	}
	if err := syncDir(x.fs, x.dir); err != nil {
		out.f.Close()
		return err
	}
	x.mu.Lock()
	rs := x.runs[k]
	at := slices.Index(rs, ins[0])
	x.runs[k] = slices.Concat(rs[:at], []*run{out}, rs[at+mergeFanIn:])
	st := x.state
	st.runs[k] = make([]uint64, 0, len(x.runs[k]))
	for _, r := range x.runs[k] {
		st.runs[k] = append(st.runs[k], r.num)
	}
	x.state = st
	x.mu.Unlock()
	if err := x.writeState(st); err != nil {
		return err
	}
	for _, r := range ins {
		r.f.Close()
		if err := x.fs.Remove(x.fs.PathJoin(x.dir, runName(r.kind, r.num))); err != nil {
			return fmt.Errorf("ledger: drop merged index run: %w", err)
		}
	}
	return nil
}

// writePositions writes the positions of the records first, first+1, …
// (buf holds 16 bytes each). buf must not be used afterwards.
func (x *index) writePositions(first uint64, buf []byte) error {
	if len(buf) == 0 {
		return nil
	}
	if _, err := x.posF.WriteAt(buf, int64(first)*posEntrySize); err != nil {
		return fmt.Errorf("ledger: write index positions: %w", err)
	}
	x.posN.Store(first + uint64(len(buf)/posEntrySize))
	return nil
}

// writeBatch writes batch entry n. b must not be used afterwards.
func (x *index) writeBatch(n uint64, b []byte) error {
	if _, err := x.batF.WriteAt(b, int64(n)*batchEntrySize); err != nil {
		return fmt.Errorf("ledger: write index batches: %w", err)
	}
	x.batN.Store(n + 1)
	return nil
}

// position returns the position of record seq, if indexed.
func (x *index) position(seq uint64) (pos, bool, error) {
	if seq >= x.posN.Load() {
		return pos{}, false, nil
	}
	var b [posEntrySize]byte
	if _, err := x.posF.ReadAt(b[:], int64(seq)*posEntrySize); err != nil && !errors.Is(err, io.EOF) {
		return pos{}, false, fmt.Errorf("ledger: read index positions: %w", err)
	}
	return decodePos(b[:]), true, nil
}

// batchFor returns the batch receipt of the commit holding seq. The
// entries' first seqs grow with their index, so the search guesses by
// interpolation, every other step, and halves the range otherwise: a few
// reads usually, O(log n) at worst.
func (x *index) batchFor(seq uint64) (ledgerfmt.BatchReceipt, error) {
	n := x.batN.Load()
	if n == 0 {
		return ledgerfmt.BatchReceipt{}, fmt.Errorf("%w: no commit holds seq %d", ErrCorrupt, seq)
	}
	var b [8]byte
	first := func(i uint64) (uint64, error) {
		if _, err := x.batF.ReadAt(b[:], int64(i)*batchEntrySize); err != nil && !errors.Is(err, io.EOF) {
			return 0, fmt.Errorf("ledger: read index batches: %w", err)
		}
		return binary.BigEndian.Uint64(b[:]), nil
	}
	// Entry lo starts at or before seq; entries from hi on start after it.
	// Entry 0 starts at seq 0; entry n would start at the end, past seq.
	lo, hi := uint64(0), n
	fLo, fHi := uint64(0), max(x.posN.Load(), seq+1)
	for step := 0; hi-lo > 1; step++ {
		mid := lo + (hi-lo)/2
		if step%2 == 0 && fHi > fLo {
			guess := lo + uint64(float64(seq-fLo)/float64(fHi-fLo)*float64(hi-lo))
			mid = min(max(guess, lo+1), hi-1)
		}
		f, err := first(mid)
		if err != nil {
			return ledgerfmt.BatchReceipt{}, err
		}
		if f <= seq {
			lo, fLo = mid, f
		} else {
			hi, fHi = mid, f
		}
	}
	e := make([]byte, batchEntrySize)
	if _, err := x.batF.ReadAt(e, int64(lo)*batchEntrySize); err != nil && !errors.Is(err, io.EOF) {
		return ledgerfmt.BatchReceipt{}, fmt.Errorf("ledger: read index batches: %w", err)
	}
	br, err := decodeBatchEntry(e)
	if err != nil {
		return ledgerfmt.BatchReceipt{}, err
	}
	if seq < br.Batch.First || seq >= br.Batch.First+br.Batch.Size {
		return ledgerfmt.BatchReceipt{}, fmt.Errorf("%w: no commit holds seq %d", ErrCorrupt, seq)
	}
	return br, nil
}

// candidates appends the seqs ≥ from of the entries of kind k with hash h,
// in increasing order, at most limit of them (0: all). They are only
// candidates: the caller confirms each against its record.
func (x *index) candidates(k int, h, from uint64, limit int, out []uint64) ([]uint64, error) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	start := len(out)
	buf := x.blocks.Get().(*[runBlock * runEntrySize]byte)
	defer x.blocks.Put(buf)
	left := func() int {
		if limit <= 0 {
			return 0
		}
		return limit - (len(out) - start)
	}
	var err error
	for _, r := range x.runs[k] {
		if out, err = r.find(h, from, left(), out, buf); err != nil {
			return out, err
		}
		if limit > 0 && left() <= 0 {
			return out, nil
		}
	}
	for _, d := range []*deltaSet{x.frozen, x.active} {
		if d == nil {
			continue
		}
		out = d.k[k].find(h, from, left(), out)
		if limit > 0 && left() <= 0 {
			return out, nil
		}
	}
	return out, nil
}

// fillFilter adds every id hash of the index to f.
func (x *index) fillFilter(f *dedupFilter) error {
	x.mu.RLock()
	defer x.mu.RUnlock()
	for _, r := range x.runs[kindID] {
		if err := r.each(func(e entry) { f.add(e.h) }); err != nil {
			return err
		}
	}
	for _, d := range []*deltaSet{x.frozen, x.active} {
		if d != nil {
			for _, e := range d.k[kindID].ents {
				f.add(e.h)
			}
		}
	}
	return nil
}

// close stops the compactor; with flush, it first writes what is in memory
// to runs so that the next open has nothing to catch up.
func (x *index) close(flush bool) error {
	var err error
	if x.stop != nil {
		x.stopping.Store(true)
		close(x.stop)
		<-x.done
		x.stop = nil
		err = x.failed()
	}
	if flush && err == nil && !x.readOnly {
		err = x.flushAll()
	}
	if cerr := x.closeFiles(); err == nil {
		err = cerr
	}
	return err
}

// flushAll writes the frozen and the active delta to runs (the compactor
// is not running).
func (x *index) flushAll() error {
	if err := x.flushFrozen(); err != nil {
		return err
	}
	x.mu.Lock()
	changed := x.active.to > x.state.next
	if changed {
		x.freezeLocked()
	}
	x.mu.Unlock()
	if !changed {
		return nil
	}
	return x.flushFrozen()
}

func (x *index) closeFiles() error {
	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	if x.posF != nil {
		keep(x.posF.Close())
		x.posF = nil
	}
	if x.batF != nil {
		keep(x.batF.Close())
		x.batF = nil
	}
	for k := range x.runs {
		for _, r := range x.runs[k] {
			keep(r.f.Close())
		}
		x.runs[k] = nil
	}
	return first
}
