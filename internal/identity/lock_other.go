//go:build !unix

package identity

import "os"

// lockDir does nothing where flock is not available.
func lockDir(dir string) (*os.File, error) { return nil, os.MkdirAll(dir, 0o700) }
