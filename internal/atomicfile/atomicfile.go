// Package atomicfile writes whole files so that a crash leaves either the
// old content or the new, never a mix or an empty file, and makes the
// change durable before it returns.
//
// The ledger has its own copy of these steps over its file-system seam
// (pebble's vfs), where faults are injected in tests; everything else that
// keeps state in the data directory writes through this package.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write replaces name with data: a temporary file in the same directory is
// given mode perm, written, synced and renamed over name, and the directory
// is synced. The temporary file is removed if any step fails.
func Write(name string, data []byte, perm os.FileMode) error {
	dir, base := filepath.Split(name)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // fails harmlessly after the rename
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, name); err != nil {
		return err
	}
	return SyncDir(dir)
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
