package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
)

// The latest signed checkpoint (ledgerfmt.Checkpoint) is kept in
// ledger/checkpoint, written atomically, at least every
// Config.CheckpointEvery records and Config.CheckpointInterval, and at
// Close. It verifies with golang.org/x/mod/sumdb/note and the key printed by
// `logline ledger key`.

func (l *Ledger) checkpointPath() string { return l.fs.PathJoin(l.dir, "ledger", "checkpoint") }

// readCheckpoint reads and verifies ledger/checkpoint; nil when none exists.
func (l *Ledger) readCheckpoint() (*ledgerfmt.Checkpoint, error) {
	b, err := readFile(l.fs, l.checkpointPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ledger: read checkpoint: %w", err)
	}
	return openCheckpoint(l.signer, b)
}

// openCheckpoint verifies the checkpoint b with the key of signer.
func openCheckpoint(signer *ledgerfmt.Signer, b []byte) (*ledgerfmt.Checkpoint, error) {
	v, err := ledgerfmt.NewVerifier(signer.VerifierKey())
	if err != nil {
		return nil, err
	}
	c, err := v.OpenCheckpoint(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return c, nil
}

// checkpointer is the bookkeeping of checkpoints: the indexer writes them
// as they fall due, Close and WriteCheckpoint on demand, one at a time.
type checkpointer struct {
	mu        sync.Mutex
	since     uint64    // records indexed since the last checkpoint
	at        time.Time // when the last checkpoint was written
	treeSaved uint64    // the tree size the tree state file records
}

// checkpointDue counts n more indexed records and reports whether a
// checkpoint is due, by count or by time.
func (l *Ledger) checkpointDue(n uint64) bool {
	l.checkpoints.mu.Lock()
	defer l.checkpoints.mu.Unlock()
	l.checkpoints.since += n
	if l.checkpoints.since == 0 {
		return false
	}
	return l.checkpoints.since >= l.cfg.CheckpointEvery || l.cfg.Now().Sub(l.checkpoints.at) >= l.cfg.CheckpointInterval
}

// WriteCheckpoint waits until everything durable is indexed and writes a
// signed checkpoint for it, unless the latest already covers it.
func (l *Ledger) WriteCheckpoint(ctx context.Context) (*ledgerfmt.Checkpoint, error) {
	if err := l.checkClosed(); err != nil {
		return nil, err
	}
	if l.readOnly {
		return nil, fmt.Errorf("%w: opened read-only", ErrReadOnly)
	}
	if err := l.waitIndexed(ctx); err != nil {
		return nil, err
	}
	if err := l.checkpoint(); err != nil {
		return nil, err
	}
	return l.lastCkpt.Load(), nil
}

// checkpoint makes everything indexed so far durable and signs it: the tree
// files and the receipts journal are synced, the tree state recorded, and a
// checkpoint for the indexed size written.
func (l *Ledger) checkpoint() error {
	l.checkpoints.mu.Lock()
	defer l.checkpoints.mu.Unlock()
	ib := l.lastIndexed.Load()
	if ib == nil {
		return nil
	}
	if c := l.lastCkpt.Load(); c != nil && c.Size == ib.size && l.checkpoints.treeSaved == ib.size {
		return nil
	}
	if err := l.tree.sync(); err != nil {
		return err
	}
	if err := l.jrnl.sync(); err != nil {
		return err
	}
	if err := l.state.write(l.fs, treeState{size: ib.size, at: ib.at, journal: l.jrnl.name, jsize: l.jrnl.size}); err != nil {
		return err
	}
	c, err := l.signer.SignCheckpoint(ib.size, ib.root)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(l.fs, l.checkpointPath(), c.Note, 0o644); err != nil {
		return err
	}
	l.lastCkpt.Store(c)
	l.checkpoints.treeSaved = ib.size
	l.checkpoints.since = 0
	l.checkpoints.at = l.cfg.Now()
	return nil
}

// Checkpoint returns the latest signed checkpoint, or nil before the first.
func (l *Ledger) Checkpoint() *ledgerfmt.Checkpoint { return l.lastCkpt.Load() }

// treeState is what ledger/index/tree/state records at each checkpoint: the
// tree files hold every node of the tree of size leaves, record size starts
// at position at, and the receipts journal is synced up to jsize bytes of
// file journal ("-" when there is none yet).
type treeState struct {
	size    uint64
	at      pos
	journal string
	jsize   int64
}

type stateFile struct{ path string }

func (s stateFile) write(fs vfs.FS, t treeState) error {
	j := t.journal
	if j == "" {
		j = "-"
	}
	line := fmt.Sprintf("%d %d %d %s %d\n", t.size, t.at.seg, t.at.off, j, t.jsize)
	line += fmt.Sprintf("crc %08x\n", crc32.Checksum([]byte(line), castagnoli))
	return writeFileAtomic(fs, s.path, []byte(line), 0o644)
}

// read returns the recorded state; ok is false when there is none or it does
// not parse (the tree is then rebuilt from the start).
func (s stateFile) read(fs vfs.FS) (treeState, bool) {
	b, err := readFile(fs, s.path)
	if err != nil {
		return treeState{}, false
	}
	// The checksum line came later: a state without one is still read.
	if body, sum, ok := cutChecksumLine(b); ok {
		if crc32.Checksum(body, castagnoli) != sum {
			return treeState{}, false
		}
		b = body
	}
	f := bytes.Fields(b)
	if len(f) != 5 {
		return treeState{}, false
	}
	size, err1 := strconv.ParseUint(string(f[0]), 10, 64)
	seg, err2 := strconv.ParseUint(string(f[1]), 10, 32)
	off, err3 := strconv.ParseInt(string(f[2]), 10, 64)
	jsize, err4 := strconv.ParseInt(string(f[4]), 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
		return treeState{}, false
	}
	t := treeState{size: size, at: pos{seg: uint32(seg), off: off}, journal: string(f[3]), jsize: jsize}
	if t.journal == "-" {
		t.journal = ""
	}
	if t.journal != "" && !isJournalName(t.journal) {
		return treeState{}, false
	}
	return t, true
}
