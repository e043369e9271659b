package ledger

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/loglineos/loglineos/internal/atomicfile"
)

func readFile(fs vfs.FS, name string) ([]byte, error) {
	f, err := fs.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// writeFileAtomic replaces name with data safely (atomicfile.WriteFS): a
// temporary file is written and synced, renamed over name, and the
// directory synced. On the operating system's file system the file has
// mode perm before any byte is written.
func writeFileAtomic(fs vfs.FS, name string, data []byte, perm os.FileMode) error {
	if err := atomicfile.WriteFS(atomicFS{fs}, name, data, perm); err != nil {
		return fmt.Errorf("ledger: write %s: %w", name, err)
	}
	return nil
}

// atomicFS is the ledger's file system as atomicfile.FS.
type atomicFS struct{ fs vfs.FS }

// CreateExcl creates name; vfs has no exclusive create, but atomicfile's
// temporary names are unique.
func (a atomicFS) CreateExcl(name string, perm os.FileMode) (atomicfile.File, error) {
	f, err := a.fs.Create(name, vfs.WriteCategoryUnspecified)
	if err != nil {
		return nil, err
	}
	if vfs.Root(a.fs) == vfs.Default {
		if err := os.Chmod(name, perm); err != nil {
			f.Close()
			return nil, err
		}
	}
	return copyingFile{f}, nil
}

func (a atomicFS) Rename(oldname, newname string) error { return a.fs.Rename(oldname, newname) }
func (a atomicFS) Remove(name string) error             { return a.fs.Remove(name) }
func (a atomicFS) SyncDir(dir string) error             { return syncDir(a.fs, dir) }

// copyingFile writes a copy of what it is given: vfs.File.Write may modify
// the buffer, which the caller keeps.
type copyingFile struct{ vfs.File }

func (f copyingFile) Write(p []byte) (int, error) { return f.File.Write(append([]byte(nil), p...)) }

func syncDir(fs vfs.FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return fmt.Errorf("ledger: open dir %s: %w", dir, err)
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return fmt.Errorf("ledger: sync dir %s: %w", dir, err)
	}
	return d.Close()
}

func fileExists(fs vfs.FS, name string) bool {
	_, err := fs.Stat(name)
	return err == nil
}

// mkdirAllSynced creates dir and its missing parents and syncs the parent of
// each directory it creates, so the new entries survive a crash.
func mkdirAllSynced(fs vfs.FS, dir string) error {
	var created []string
	for p := dir; ; {
		if _, err := fs.Stat(p); err == nil {
			break
		}
		created = append(created, p)
		parent := fs.PathDir(p)
		if parent == p || parent == "." || parent == "" {
			break
		}
		p = parent
	}
	if len(created) == 0 {
		return nil
	}
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, p := range created {
		if err := syncDir(fs, fs.PathDir(p)); err != nil {
			return err
		}
	}
	return nil
}

// removeTemps removes the temporary files a crash left in dir: names
// starting with a dot and ending in ".tmp".
func removeTemps(fs vfs.FS, dir string, log *slog.Logger) {
	names, err := fs.List(dir)
	if err != nil {
		return
	}
	for _, n := range names {
		if strings.HasPrefix(n, ".") && strings.HasSuffix(n, ".tmp") {
			if err := fs.Remove(fs.PathJoin(dir, n)); err != nil {
				log.Warn("cannot remove a temporary file", "file", n, "err", err)
			}
		}
	}
}
