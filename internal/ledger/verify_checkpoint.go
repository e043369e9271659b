package ledger

import (
	"errors"
	"os"
)

// openCheckpoint reads ledger/checkpoint, if there is one, and checks its
// signature.
func (v *verification) openCheckpoint(ledgerDir string) error {
	b, err := readFile(v.fs, v.fs.PathJoin(ledgerDir, "checkpoint"))
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return err
	}
	c, err := v.key.OpenCheckpoint(b)
	if err != nil {
		v.rep.Problem = &CorruptError{File: "ledger/checkpoint", Reason: err.Error()}
		return nil
	}
	v.rep.Checkpoint = c
	return nil
}

// checkCheckpoint checks, once the records checked reach the signed
// checkpoint's size, that their root is the checkpoint's.
func (v *verification) checkCheckpoint(seg string, off int64) {
	if c := v.rep.Checkpoint; c != nil && c.Size == v.rng.size && v.problem == nil && v.rng.root() != c.Root {
		v.fail(seg, off, c.Size, "the records do not match the signed checkpoint of size %d", c.Size)
	}
}

// checkCheckpointCovered checks, after the last record, that the signed
// checkpoint covers no more records than there are.
func (v *verification) checkCheckpointCovered() {
	if c := v.rep.Checkpoint; c != nil && c.Size > v.next {
		v.fail(segmentName(uint32(len(v.segs))), 0, v.next, "the signed checkpoint covers %d records but the segments hold %d", c.Size, v.next)
	}
}
