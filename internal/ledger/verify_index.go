package ledger

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
)

// indexCheck checks the derived files under ledger/index against the
// records as Verify streams them: positions and batch entries one by one,
// tree nodes as the tree is recomputed, and lookup runs by count and by a
// sum of a hash of each entry, computed from the records' keys on one side
// and from the run files on the other.
type indexCheck struct {
	fs      vfs.FS
	dir     string // ledger/index
	hasher  *keyHasher
	problem *CorruptError
	note    string
	// vanished: a run the state lists was not there (beside a writer, it
	// may have been merged away meanwhile).
	vanished bool

	state   *indexState // nil: no index to check
	idxNext uint64      // positions and lookups are checked below this
	posR    *seqReader
	batR    *seqReader
	batches uint64 // batch entries checked
	runs    [numKinds][]*run
	want    [numKinds][]runSum // per run, from the records
	cur     [numKinds]int      // the run the next span falls in
	uncov   [numKinds]uint64   // spans below state.next in no run
	posN    uint64

	treeSize uint64 // stored nodes are checked for this tree size
	levels   []*seqReader
	nodes    uint64
	treeErr  *CorruptError
}

// runSum is the count and the sum of the entry hashes of one run.
type runSum struct {
	n   uint64
	sum uint64
}

func (s *runSum) add(kind int, e entry) {
	var b [17]byte
	b[0] = byte(kind)
	binary.BigEndian.PutUint64(b[1:], e.h)
	binary.BigEndian.PutUint64(b[9:], e.seq)
	s.n++
	s.sum += xxhash.Sum64(b[:])
}

// seqReader reads a file sequentially from its start.
type seqReader struct {
	f    vfs.File
	name string // relative to the data directory
	r    *bufio.Reader
	off  int64
}

func newSeqReader(f vfs.File, name string) *seqReader {
	return &seqReader{f: f, name: name, r: bufio.NewReaderSize(io.NewSectionReader(f, 0, 1<<62), 64<<10)}
}

func (s *seqReader) read(b []byte) error {
	n, err := io.ReadFull(s.r, b)
	s.off += int64(n)
	if err != nil {
		return fmt.Errorf("%s ends at %d bytes: %w", s.name, s.off, err)
	}
	return nil
}

func openIndexCheck(fs vfs.FS, ledgerDir string, hasher *keyHasher, limit uint64, live bool) (*indexCheck, error) {
	ix := &indexCheck{fs: fs, dir: fs.PathJoin(ledgerDir, "index"), hasher: hasher}
	err := ix.openLookups(limit)
	// Beside a running writer, a run the state lists may be merged away
	// before it is opened: read the state again.
	for try := 0; live && try < 20 && ix.vanished; try++ {
		ix.close()
		ix = &indexCheck{fs: fs, dir: fs.PathJoin(ledgerDir, "index"), hasher: hasher}
		err = ix.openLookups(limit)
	}
	if err != nil {
		ix.close()
		return nil, err
	}
	if ix.problem == nil {
		if err := ix.openTree(limit); err != nil {
			ix.close()
			return nil, err
		}
	}
	return ix, nil
}

func (ix *indexCheck) damaged(file string, off int64, format string, args ...any) *CorruptError {
	return &CorruptError{File: "ledger/index/" + file, Offset: off, Reason: fmt.Sprintf(format, args...), Derived: true}
}

func (ix *indexCheck) openLookups(limit uint64) error {
	fs := ix.fs
	b, err := readFile(fs, fs.PathJoin(ix.dir, indexStateName))
	if errors.Is(err, os.ErrNotExist) {
		ix.note = "no index yet (it is built at the next start)"
		return nil
	}
	if err != nil {
		return err
	}
	st, err := parseIndexState(b)
	if errors.Is(err, errOldIndexFormat) {
		ix.note = "the index is of an earlier format (rebuilt at the next start)"
		return nil
	}
	if err != nil {
		ix.problem = ix.damaged(indexStateName, 0, "%v", err)
		return nil
	}
	ix.state = &st
	ix.idxNext = min(st.next, limit)
	for _, c := range []struct {
		name string
		r    **seqReader
		want int64
	}{{"positions", &ix.posR, int64(st.next) * posEntrySize}, {"batches", &ix.batR, int64(st.batches) * batchEntrySize}} {
		f, err := fs.Open(fs.PathJoin(ix.dir, c.name), vfs.SequentialReadsOption)
		if errors.Is(err, os.ErrNotExist) {
			ix.problem = ix.damaged(c.name, 0, "missing, but the index state lists it")
			return nil
		}
		if err != nil {
			return err
		}
		*c.r = newSeqReader(f, "ledger/index/"+c.name)
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		if fi.Size() < c.want {
			ix.problem = ix.damaged(c.name, fi.Size(), "%d bytes, the index state says %d", fi.Size(), c.want)
			return nil
		}
	}
	if ix.hasher == nil {
		ix.note = "lookup runs not checked: this copy has no signing key (ledger/key), which keys their hashes"
		return nil
	}
	for k := range numKinds {
		for _, n := range st.runs[k] {
			r, err := openRun(fs, ix.dir, k, n)
			if err != nil {
				ix.vanished = errors.Is(err, os.ErrNotExist)
				ix.problem = ix.damaged(runName(k, n), 0, "%v", err)
				return nil
			}
			ix.runs[k] = append(ix.runs[k], r)
		}
		sort.Slice(ix.runs[k], func(i, j int) bool { return ix.runs[k][i].from < ix.runs[k][j].from })
		for i, r := range ix.runs[k] {
			if r.to > st.next || (i > 0 && r.from < ix.runs[k][i-1].to) {
				ix.problem = ix.damaged(runName(k, r.num), 0, "covers records [%d,%d), overlapping another run or past the index state's %d", r.from, r.to, st.next)
				return nil
			}
		}
		ix.want[k] = make([]runSum, len(ix.runs[k]))
	}
	return nil
}

func (ix *indexCheck) openTree(limit uint64) error {
	fs := ix.fs
	treeDir := fs.PathJoin(ix.dir, "tree")
	path := fs.PathJoin(treeDir, "state")
	if !fileExists(fs, path) {
		return nil
	}
	ts, ok := stateFile{path: path}.read(fs)
	if !ok {
		ix.problem = ix.damaged("tree/state", 0, "unreadable or fails its checksum")
		return nil
	}
	ix.treeSize = min(ts.size, limit)
	for l := 0; ix.treeSize>>uint(l) > 0; l++ {
		name := fmt.Sprintf("L%02d", l)
		f, err := fs.Open(fs.PathJoin(treeDir, name), vfs.SequentialReadsOption)
		if errors.Is(err, os.ErrNotExist) {
			ix.problem = ix.damaged("tree/"+name, 0, "missing, but the tree state says the tree has %d leaves", ts.size)
			return nil
		}
		if err != nil {
			return err
		}
		ix.levels = append(ix.levels, newSeqReader(f, "ledger/index/tree/"+name))
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		if want := int64(ix.treeSize>>uint(l)) * 32; fi.Size() < want {
			ix.problem = ix.damaged("tree/"+name, fi.Size(), "%d bytes, the tree state says %d", fi.Size(), want)
			return nil
		}
	}
	return nil
}

// record checks the position of a record and counts its lookup entries.
func (ix *indexCheck) record(r *Record, p pos) *CorruptError {
	if ix.state == nil || r.Seq >= ix.idxNext {
		return nil
	}
	var b [posEntrySize]byte
	if err := ix.posR.read(b[:]); err != nil {
		return ix.damaged("positions", ix.posR.off, "%v", err)
	}
	ix.posN++
	if got := decodePos(b[:]); got != p {
		return ix.damaged("positions", int64(r.Seq)*posEntrySize, "seq %d: entry says segment %d offset %d length %d, the record is at segment %d offset %d length %d",
			r.Seq, got.seg, got.off, got.n, p.seg, p.off, p.n)
	}
	if ix.hasher == nil || r.Kind != ledgerfmt.KindSpan {
		return nil
	}
	k, ok := keysOf(r)
	if !ok {
		return nil // the record check reports a body that does not decode
	}
	for kind, h := range [numKinds]uint64{ix.hasher.id(k.Tenant, k.ID), ix.hasher.thing(k.Tenant, k.This), ix.hasher.tenant(k.Tenant)} {
		rs := ix.runs[kind]
		i := ix.cur[kind]
		for i < len(rs) && rs[i].to <= r.Seq {
			i++
		}
		ix.cur[kind] = i
		if i < len(rs) && rs[i].from <= r.Seq {
			ix.want[kind][i].add(kind, entry{h: h, seq: r.Seq})
		} else {
			ix.uncov[kind]++
		}
	}
	return nil
}

// commit checks the batch entry of the next commit.
func (ix *indexCheck) commit(first, size uint64, ts time.Time, root ledgerfmt.Hash) *CorruptError {
	if ix.state == nil || ix.batches >= ix.state.batches || first+size > ix.idxNext {
		return nil
	}
	at := int64(ix.batches) * batchEntrySize
	b := make([]byte, batchEntrySize)
	if err := ix.batR.read(b); err != nil {
		return ix.damaged("batches", at, "%v", err)
	}
	ix.batches++
	br, err := decodeBatchEntry(b)
	switch {
	case err != nil:
		return ix.damaged("batches", at, "entry %d fails its checksum", ix.batches-1)
	case br.Batch.First != first || br.Batch.Size != size:
		return ix.damaged("batches", at, "entry %d says commit [%d,+%d), the records have [%d,+%d)", ix.batches-1, br.Batch.First, br.Batch.Size, first, size)
	case br.Batch.Root != root || br.TS.UnixMicro() != ts.UnixMicro():
		return ix.damaged("batches", at, "entry %d (commit %d) does not match the records' root or time", ix.batches-1, first)
	}
	return nil
}

// node checks a node of the tree recomputed from the records against the
// stored one (a compactRange visitor).
func (ix *indexCheck) node(level uint, index uint64, h *ledgerfmt.Hash) {
	if ix.treeErr != nil || int(level) >= len(ix.levels) || (index+1)<<level > ix.treeSize {
		return
	}
	lr := ix.levels[level]
	var got ledgerfmt.Hash
	if err := lr.read(got[:]); err != nil {
		ix.treeErr = ix.damaged(fmt.Sprintf("tree/L%02d", level), lr.off, "%v", err)
		return
	}
	ix.nodes++
	if got != *h {
		ix.treeErr = ix.damaged(fmt.Sprintf("tree/L%02d", level), int64(index)*32, "node %d is not the hash the records give", index)
	}
}

func (ix *indexCheck) treeProblem() *CorruptError { return ix.treeErr }

// finish checks what only the end tells: the files cover no more records
// than exist, and every lookup run holds exactly the entries of its records.
func (ix *indexCheck) finish(records uint64, rep *VerifyReport) *CorruptError {
	rep.IndexNote = ix.note
	if ix.state != nil && ix.idxNext > records {
		return &CorruptError{File: "ledger/index/" + indexStateName, Reason: fmt.Sprintf("the index covers %d records but the segments hold %d: acknowledged records are missing", ix.idxNext, records)}
	}
	if ix.treeSize > records {
		return &CorruptError{File: "ledger/index/tree/state", Reason: fmt.Sprintf("the tree covers %d records but the segments hold %d: acknowledged records are missing", ix.treeSize, records)}
	}
	rep.Index["positions"] = ix.posN
	rep.Index["batches"] = ix.batches
	rep.Index["tree"] = ix.nodes
	if ix.state == nil || ix.hasher == nil || ix.idxNext < ix.state.next {
		// Beside a writer whose index is ahead of its checkpoint, the runs
		// hold entries past what was read: they are not checked.
		if ix.state != nil && ix.hasher != nil && ix.note == "" {
			ix.note = "lookup runs not checked: the running server's index is ahead of its signed checkpoint"
			rep.IndexNote = ix.note
		}
		return nil
	}
	var entries uint64
	for k := range numKinds {
		if ix.uncov[k] > 0 {
			return ix.damaged(indexStateName, 0, "%d spans before seq %d are in no %s run", ix.uncov[k], ix.state.next, kindName(k))
		}
		for i, r := range ix.runs[k] {
			got, p := ix.sumRun(r)
			if p != nil {
				return p
			}
			if got != ix.want[k][i] {
				return ix.damaged(runName(k, r.num), 0, "holds %d entries that do not match the %d spans of records [%d,%d)", got.n, ix.want[k][i].n, r.from, r.to)
			}
			entries += got.n
		}
	}
	rep.Index["runs"] = entries
	return nil
}

// sumRun reads every entry of a run, checking its blocks, its order and its
// fence, and sums them.
func (ix *indexCheck) sumRun(r *run) (runSum, *CorruptError) {
	var s runSum
	var prev entry
	var bad string
	err := r.each(func(e entry) {
		i := s.n
		switch {
		case bad != "":
		case i > 0 && cmpEntry(prev, e) >= 0:
			bad = fmt.Sprintf("entry %d is out of order", i)
		case i%runBlock == 0 && e != r.fence[i/runBlock]:
			bad = fmt.Sprintf("the fence of block %d does not match its first entry", i/runBlock)
		case e.seq < r.from || e.seq >= r.to:
			bad = fmt.Sprintf("entry %d names seq %d, outside the run's records [%d,%d)", i, e.seq, r.from, r.to)
		}
		prev = e
		s.add(r.kind, e)
	})
	name := runName(r.kind, r.num)
	if err != nil {
		return s, ix.damaged(name, 0, "%v", err)
	}
	if bad != "" {
		return s, ix.damaged(name, 0, "%s", bad)
	}
	return s, nil
}

func (ix *indexCheck) close() {
	for _, r := range []*seqReader{ix.posR, ix.batR} {
		if r != nil {
			r.f.Close()
		}
	}
	for _, r := range ix.levels {
		r.f.Close()
	}
	for k := range ix.runs {
		for _, r := range ix.runs[k] {
			r.f.Close()
		}
	}
}
