package ledger

import (
	"fmt"
	"io"
	"os"

	"github.com/cockroachdb/pebble/v2/vfs"
)

func readFile(fs vfs.FS, name string) ([]byte, error) {
	f, err := fs.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// writeFileAtomic writes a whole file safely: a temporary file is written and
// synced, renamed over name, and the directory synced. On a real file system
// the file gets mode perm before any byte is written.
func writeFileAtomic(fs vfs.FS, name string, data []byte, perm os.FileMode) error {
	tmp := name + ".tmp"
	f, err := fs.Create(tmp, vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("ledger: create %s: %w", tmp, err)
	}
	if vfs.Root(fs) == vfs.Default {
		if err := os.Chmod(tmp, perm); err != nil {
			f.Close()
			return fmt.Errorf("ledger: chmod %s: %w", tmp, err)
		}
	}
	// vfs.File.Write may modify the buffer it is given; the caller keeps data.
	if _, err := f.Write(append([]byte(nil), data...)); err != nil {
		f.Close()
		return fmt.Errorf("ledger: write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("ledger: sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("ledger: close %s: %w", tmp, err)
	}
	if err := fs.Rename(tmp, name); err != nil {
		return fmt.Errorf("ledger: rename %s: %w", tmp, err)
	}
	return syncDir(fs, fs.PathDir(name))
}

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
