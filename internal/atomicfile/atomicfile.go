// Package atomicfile writes whole files so that a crash leaves either the
// old content or the new, never a mix or an empty file, and makes the
// change durable before it returns.
//
// WriteFS does it over any file system with the few operations of FS: the
// ledger passes its file-system seam (pebble's vfs), where faults are
// injected in tests; Write is WriteFS on the operating system's.
package atomicfile

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
)

// FS is what WriteFS needs of a file system.
type FS interface {
	// CreateExcl creates name, which must not exist, for writing, with
	// mode perm where the file system has modes.
	CreateExcl(name string, perm os.FileMode) (File, error)
	Rename(oldname, newname string) error
	Remove(name string) error
	// SyncDir makes the entries of dir durable.
	SyncDir(dir string) error
}

// File is a file being written by WriteFS.
type File interface {
	Write(p []byte) (int, error)
	Sync() error
	Close() error
}

// Write replaces name with data on the operating system's file system (see
// WriteFS).
func Write(name string, data []byte, perm os.FileMode) error {
	return WriteFS(OS{}, name, data, perm)
}

// WriteFS replaces name with data: a temporary file in the same directory,
// named
//
//	.<base of name>.<16 random hex digits>.tmp
//
// is created with mode perm, written, synced and renamed over name, and the
// directory is synced. The temporary file is removed if any step before the
// rename fails; a crash can leave one behind, never a partial name.
func WriteFS(fs FS, name string, data []byte, perm os.FileMode) error {
	dir, base := filepath.Split(name)
	tmp := fmt.Sprintf("%s.%s.%016x.tmp", dir, base, rand.Uint64())
	f, err := fs.CreateExcl(tmp, perm)
	if err != nil {
		return err
	}
	err = writeSync(f, data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fs.Rename(tmp, name)
	}
	if err != nil {
		fs.Remove(tmp)
		return err
	}
	return fs.SyncDir(filepath.Dir(name))
}

func writeSync(f File, data []byte) error {
	if _, err := f.Write(data); err != nil {
		return err
	}
	return f.Sync()
}

// SyncDir makes the entries of dir (files created, renamed or removed in
// it) durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// OS is the operating system's file system.
type OS struct{}

// CreateExcl implements FS. The file is created with mode 0600 and then
// given mode perm, whatever the umask, before anything is written to it.
func (OS) CreateExcl(name string, perm os.FileMode) (File, error) {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		os.Remove(name)
		return nil, err
	}
	return f, nil
}

// Rename implements FS.
func (OS) Rename(oldname, newname string) error { return os.Rename(oldname, newname) }

// Remove implements FS.
func (OS) Remove(name string) error { return os.Remove(name) }

// SyncDir implements FS.
func (OS) SyncDir(dir string) error { return SyncDir(dir) }
