//go:build !unix

package datadir

import "os"

// tryLock always succeeds where flock is not available: one writer per
// directory is then the operator's responsibility.
func tryLock(f *os.File, exclusive bool) (bool, error) { return true, nil }

func lockHeld(f *os.File) (bool, error) { return false, nil }

const probeGrace = 0
