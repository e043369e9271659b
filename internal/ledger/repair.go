package ledger

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Everything under ledger/index is derived from the segments and is rebuilt
// from them when it is found damaged, never trusted blindly:
//
//   - At open, the index state and tree state files carry a checksum, the
//     run files a checksummed footer and a CRC-32C per 4 KiB block, and the
//     id runs are read whole (to fill the dedup filter) with every block
//     checked; the tree's stored range is checked against the signed
//     checkpoint. A damaged index is rebuilt from the segments, a tree
//     that disagrees with the checkpoint is recomputed from every record
//     before the ledger calls the records corrupt.
//   - While the ledger runs, every read checks what it reads: run blocks
//     against their CRCs, batch entries against theirs, positions against
//     the record they point at (its CRC and sequence number), and proofs
//     against a root the ledger trusts. Damage found then fails only the
//     request that met it, never turns into a wrong answer (a lookup that
//     cannot be trusted is an error, not a miss), and leaves the mark below
//     so that the next open rebuilds the indexes and the tree.
//
// The mark is the file ledger/index/REBUILD, holding the reason.
const rebuildMarkName = "REBUILD"

// ErrIndexDamaged is returned (wrapping a *CorruptError or a reason) by
// reads and appends that met damaged index or tree files. The segments are
// not affected; the next open rebuilds the indexes from them.
var ErrIndexDamaged = errors.New("ledger: index damaged")

func (l *Ledger) rebuildMarkPath() string {
	return l.fs.PathJoin(l.dir, "ledger", "index", rebuildMarkName)
}

// rebuildMark reports whether the mark is set, and why.
func (l *Ledger) rebuildMark() (string, bool) {
	b, err := readFile(l.fs, l.rebuildMarkPath())
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(string(b)), true
}

func (l *Ledger) dropRebuildMark() {
	if fileExists(l.fs, l.rebuildMarkPath()) {
		removeMark(l.fs, l.rebuildMarkPath(), l.log)
	}
}

// removeMark removes a mark file durably.
func removeMark(fs vfs.FS, path string, log *slog.Logger) {
	err := fs.Remove(path)
	if err == nil {
		err = syncDir(fs, fs.PathDir(path))
	}
	if err != nil {
		log.Warn("cannot remove "+fs.PathBase(path), "err", err)
	}
}

// repaired reports a rebuild (at open) or damage found (while running).
func (l *Ledger) repaired(what, reason string) {
	if l.cfg.OnRepair != nil {
		l.cfg.OnRepair(what, reason)
	}
}

// indexDamaged records damage met by a read while the ledger runs: it is
// logged, reported, and marked for a rebuild at the next open. It returns
// the error for the caller to fail its request with.
func (l *Ledger) indexDamaged(what string, err error) error {
	if l.damageOnce.CompareAndSwap(false, true) {
		l.log.Error("ledger: damaged "+what+" files; they will be rebuilt from the segments at the next start", "err", err)
		if !l.readOnly {
			if werr := writeFileAtomic(l.fs, l.rebuildMarkPath(), []byte(err.Error()+"\n"), 0o644); werr != nil {
				l.log.Error("cannot write the rebuild mark", "err", werr)
			}
		}
	}
	l.repaired(what, err.Error())
	if errors.Is(err, ErrIndexDamaged) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrIndexDamaged, err)
}

// IndexDamaged reports whether a read met damaged index or tree files since
// open (they are rebuilt at the next open).
func (l *Ledger) IndexDamaged() bool { return l.damageOnce.Load() }

// endOf returns the position after record n-1, from the positions index.
func (l *Ledger) endOf(n uint64) (pos, bool) {
	if n == 0 {
		return pos{seg: 1}, true
	}
	if l.idx == nil {
		return pos{}, false
	}
	p, ok, err := l.idx.position(n - 1)
	if err != nil || !ok {
		return pos{}, false
	}
	return pos{seg: p.seg, off: p.end()}, true
}

// lookupFailed handles an error of the duplicate check: damage to the
// index files fails the request alone (an unconfirmed miss must never
// become a second record), anything else (an I/O error) makes the ledger
// read-only.
func (l *Ledger) lookupFailed(err error) error {
	if inRecords(err) {
		return l.failed()
	}
	if errors.Is(err, ErrCorrupt) || errors.Is(err, ErrIndexDamaged) {
		return l.indexDamaged("index", err)
	}
	l.fail(err)
	return l.failed()
}

// checkRead passes a read's error through, noting damage to the index or
// tree files.
func (l *Ledger) checkRead(what string, err error) error {
	if err != nil && !inRecords(err) && (errors.Is(err, ErrCorrupt) || errors.Is(err, ErrIndexDamaged)) {
		return l.indexDamaged(what, err)
	}
	return err
}

// inRecords reports damage a read met in a record itself.
func inRecords(err error) bool {
	var ce *CorruptError
	return errors.As(err, &ce) && ce.inRecords
}
