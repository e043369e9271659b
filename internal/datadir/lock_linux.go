package datadir

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// On Linux the lock is an open file description lock (fcntl F_OFD_SETLK)
// on the whole file: like flock, it belongs to the open file and goes with
// it when the process ends; unlike flock, it can be tested without taking
// it (F_OFD_GETLK), so a reader's probe never stands in a writer's way.

// tryLock takes the write (or read) lock without waiting; false means
// another open file holds a conflicting one.
func tryLock(f *os.File, exclusive bool) (bool, error) {
	lk := unix.Flock_t{Type: unix.F_RDLCK, Whence: 0, Start: 0, Len: 0}
	if exclusive {
		lk.Type = unix.F_WRLCK
	}
	for {
		err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EACCES):
			return false, nil
		case errors.Is(err, unix.EINTR):
			continue
		}
		return false, err
	}
}

// lockHeld reports whether another open file holds the lock, without
// taking it.
func lockHeld(f *os.File) (bool, error) {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 0, Len: 0}
	if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_GETLK, &lk); err != nil {
		return false, err
	}
	return lk.Type != unix.F_UNLCK, nil
}

// probeGrace is how long a writer tries again when it meets a lock: probes
// take none here.
const probeGrace = 0
