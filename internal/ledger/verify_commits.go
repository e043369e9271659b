package ledger

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"slices"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
)

// endCommit checks the commit just read (the run of records of one ts)
// against its batch entry in the index and its line in the receipts
// journal: first, size, ts, root and signature.
func (v *verification) endCommit(seg string, off int64) {
	if len(v.runLeaves) == 0 || v.problem != nil {
		return
	}
	v.rep.Commits++
	root := newBatchTree(v.runLeaves).root()
	if p := v.ix.commit(v.runFirst, uint64(len(v.runLeaves)), v.runTS, root); p != nil {
		v.problem = p
		return
	}
	v.checkJournalLine(seg, off, root)
	v.runLeaves = v.runLeaves[:0]
}

// checkJournalLine checks the next line of the receipts journal against
// the commit just read, whose batch tree has root root.
func (v *verification) checkJournalLine(seg string, off int64, root ledgerfmt.Hash) {
	first, size := v.runFirst, uint64(len(v.runLeaves))
	line, ok, err := v.jr.next()
	switch {
	case err != nil:
		v.fail("receipts", 0, first, "%v", err)
		return
	case !ok:
		// The journal may trail the segments; the rest is unchecked.
		return
	}
	v.rep.Journal++
	var br ledgerfmt.BatchReceipt
	switch {
	case json.Unmarshal(line, &br) != nil:
		v.fail("receipts", 0, first, "journal line is not a batch receipt: %.80s", line)
	case br.Batch.First != first || br.Batch.Size != size:
		v.fail(seg, off, first, "journal has commit [%d,+%d), segments have [%d,+%d)", br.Batch.First, br.Batch.Size, first, size)
	case br.Batch.Root != root:
		v.fail(seg, off, first, "commit %d: journal root does not match the records", first)
	case !br.TS.Equal(v.runTS):
		v.fail(seg, off, first, "commit %d: journal ts does not match the records", first)
	default:
		if err := v.key.VerifyBatch(&br); err != nil {
			v.fail(seg, off, first, "commit %d: %v", first, err)
		}
	}
}

// checkJournalEnd checks that the receipts journal lists no commit past
// the last record.
func (v *verification) checkJournalEnd() {
	if line, ok, err := v.jr.next(); err != nil || ok {
		v.fail("receipts", 0, v.next, "the receipts journal lists commits past the last record: %.80s", line)
	}
}

// journalReader reads the receipts journal's lines in order across files.
type journalReader struct {
	fs    vfs.FS
	dir   string
	names []string
	data  []byte
}

func newJournalReader(fs vfs.FS, dir string) (*journalReader, error) {
	names, err := fs.List(dir)
	if errors.Is(err, os.ErrNotExist) {
		return &journalReader{fs: fs, dir: dir}, nil
	}
	if err != nil {
		return nil, err
	}
	names = slices.DeleteFunc(names, func(n string) bool { return !isJournalName(n) })
	slices.Sort(names)
	return &journalReader{fs: fs, dir: dir, names: names}, nil
}

func (j *journalReader) next() ([]byte, bool, error) {
	for len(j.data) == 0 {
		if len(j.names) == 0 {
			return nil, false, nil
		}
		b, err := readFile(j.fs, j.fs.PathJoin(j.dir, j.names[0]))
		if err != nil {
			return nil, false, err
		}
		j.names = j.names[1:]
		j.data = b
	}
	i := bytes.IndexByte(j.data, '\n')
	if i < 0 {
		line := j.data
		j.data = nil
		return line, true, nil
	}
	line := j.data[:i]
	j.data = j.data[i+1:]
	return line, true, nil
}
