package cycle

import (
	"os"

	"golang.org/x/sys/unix"
)

// syncFS makes every file of the file system dir is on durable with one
// syncfs(2), which costs one journal commit however many tenant files were
// written, whether or not they are still open (one fsync per file would
// cost one each, and need the closed ones opened again). It also writes
// back whatever else is dirty on that file system, so a snapshot may wait
// for other writers there; it blocks derivation only, never ingest. It
// reports false where the system has no such call.
func syncFS(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return true, err
	}
	defer f.Close()
	return true, unix.Syncfs(int(f.Fd()))
}
