package ledger

import (
	"fmt"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// journal appends batch receipts to receipts/YYYY-MM-DD.ndjson, one file per
// UTC day of the commits' ts. It is synced at every checkpoint, and the tree
// state records its file and length then; at open anything after that is cut
// off and written again from the segments (signatures are deterministic, so
// the lines come out the same).
type journal struct {
	fs    vfs.FS
	dir   string
	name  string // base name of the current file, "" before the first line
	f     vfs.File
	size  int64
	dirty bool
	fresh bool // the current file was created since the last sync
}

func journalName(ts time.Time) string { return ts.UTC().Format("2006-01-02") + ".ndjson" }

func isJournalName(s string) bool {
	base, ok := strings.CutSuffix(s, ".ndjson")
	if !ok {
		return false
	}
	_, err := time.Parse("2006-01-02", base)
	return err == nil
}

// openJournal opens the journal for appending at file name, offset size:
// where it stood, synced, at the last checkpoint. Bytes past that, and later
// files, are dropped; an empty name drops every file. The missing lines are
// then written again from the segments.
func openJournal(fs vfs.FS, dir, name string, size int64, readOnly bool) (*journal, error) {
	j := &journal{fs: fs, dir: dir}
	if readOnly {
		return j, nil
	}
	if err := mkdirAllSynced(fs, dir); err != nil {
		return nil, fmt.Errorf("ledger: receipts dir: %w", err)
	}
	names, err := fs.List(dir)
	if err != nil {
		return nil, fmt.Errorf("ledger: list receipts: %w", err)
	}
	removed := false
	for _, n := range names {
		if isJournalName(n) && (name == "" || n > name) {
			if err := fs.Remove(fs.PathJoin(dir, n)); err != nil {
				return nil, fmt.Errorf("ledger: drop receipts past the checkpoint: %w", err)
			}
			removed = true
		}
	}
	if removed {
		if err := syncDir(fs, dir); err != nil {
			return nil, err
		}
	}
	if name == "" {
		return j, nil
	}
	path := fs.PathJoin(dir, name)
	st, err := fs.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%w: receipts journal %s: %w", ErrCorrupt, name, err)
	}
	switch {
	case st.Size() < size:
		return nil, fmt.Errorf("%w: receipts journal %s is %d bytes, the checkpoint saw %d", ErrCorrupt, name, st.Size(), size)
	case st.Size() > size:
		if err := rewritePrefix(fs, path, size); err != nil {
			return nil, fmt.Errorf("ledger: cut receipts journal %s: %w", name, err)
		}
	}
	f, err := fs.OpenReadWrite(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return nil, err
	}
	j.name, j.f, j.size = name, f, size
	return j, nil
}

// append writes one line (without newline) and returns the file and its new
// length.
func (j *journal) append(ts time.Time, line []byte) (string, int64, error) {
	name := journalName(ts)
	if name != j.name {
		if j.f != nil {
			if err := j.f.SyncData(); err != nil {
				return "", 0, err
			}
			if err := j.f.Close(); err != nil {
				return "", 0, err
			}
			j.f = nil
		}
		f, err := j.fs.Create(j.fs.PathJoin(j.dir, name), vfs.WriteCategoryUnspecified)
		if err != nil {
			return "", 0, fmt.Errorf("ledger: create receipts journal: %w", err)
		}
		j.name, j.f, j.size, j.fresh = name, f, 0, true
	}
	buf := make([]byte, 0, len(line)+1)
	buf = append(append(buf, line...), '\n')
	n, err := j.f.WriteAt(buf, j.size)
	j.size += int64(n)
	j.dirty = true
	if err != nil {
		return "", 0, fmt.Errorf("ledger: write receipts journal: %w", err)
	}
	return j.name, j.size, nil
}

func (j *journal) sync() error {
	if j.f == nil || !j.dirty {
		return nil
	}
	if err := j.f.SyncData(); err != nil {
		return fmt.Errorf("ledger: sync receipts journal: %w", err)
	}
	j.dirty = false
	if j.fresh {
		j.fresh = false
		return syncDir(j.fs, j.dir)
	}
	return nil
}

func (j *journal) close() error {
	if j.f == nil {
		return nil
	}
	err := j.sync()
	if cerr := j.f.Close(); err == nil {
		err = cerr
	}
	j.f = nil
	return err
}
