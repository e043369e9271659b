//go:build unix

package ledger

import (
	"syscall"

	"github.com/cockroachdb/pebble/v2/vfs"
)

const truncateSupported = true

// truncateFile sets the size of f, which must have an OS file descriptor.
func truncateFile(f vfs.File, size int64) error {
	fd := f.Fd()
	if fd == vfs.InvalidFd {
		return errNoTruncate
	}
	return syscall.Ftruncate(int(fd), size)
}
