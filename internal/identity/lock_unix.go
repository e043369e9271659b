//go:build unix

package identity

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockDir takes an exclusive advisory lock on dir/.lock, held until the
// file is closed, so two processes (a server and an offline CLI) cannot
// both believe they own the key ring or the service accounts.
func lockDir(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("identity: %s is in use by another process (a running server?): %w", dir, ErrDirLocked)
		}
		return nil, fmt.Errorf("identity: lock %s: %w", dir, err)
	}
	return f, nil
}
