package identity

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/loglineos/loglineos/internal/datadir"
)

// lockDir takes an exclusive lock on dir/.lock (package datadir's), held
// until released, so that two processes cannot both believe they own the
// key ring or the service accounts.
func lockDir(dir string) (*datadir.Lock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	l, err := datadir.LockFile(filepath.Join(dir, ".lock"))
	if errors.Is(err, datadir.ErrLocked) {
		return nil, fmt.Errorf("identity: %s is in use by another process (a running server?): %w", dir, ErrDirLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("identity: lock %s: %w", dir, err)
	}
	return l, nil
}
