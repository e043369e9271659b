//go:build unix && !linux

package datadir

import (
	"errors"
	"os"
	"syscall"
	"time"
)

// Where open file description locks are missing, flock(2) serves: a probe
// then holds a shared lock for a moment, and a writer that meets one tries
// again for a while before it reports the holder.

// tryLock takes an exclusive (or shared) flock without waiting; false means
// another open file holds a conflicting one.
func tryLock(f *os.File, exclusive bool) (bool, error) {
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, syscall.EWOULDBLOCK):
			return false, nil
		case errors.Is(err, syscall.EINTR):
			continue
		}
		return false, err
	}
}

func unlock(f *os.File) { syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }

// lockHeld reports whether another open file holds the lock, by taking a
// shared one for a moment.
func lockHeld(f *os.File) (bool, error) {
	free, err := tryLock(f, false)
	if err != nil || !free {
		return !free, err
	}
	unlock(f)
	return false, nil
}

// probeGrace is how long a writer tries again when it meets a lock, which
// may be a probe's.
const probeGrace = 200 * time.Millisecond
