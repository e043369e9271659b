// Package datadir guards a LogLineOS data directory: at most one process at
// a time changes it.
//
// A process that writes to the directory (`logline serve`, `logline ledger
// reindex`) holds an exclusive advisory lock on the file LOCK at its top (an
// open file description lock on Linux, flock elsewhere), for as long as it
// runs; the kernel drops the lock when the process
// ends, however it ends, so a crash never leaves a stale lock behind. The
// holder writes who it is into the file, so that a second writer can say
// whom it collided with:
//
//	logline data directory lock
//	pid 41207
//	started 2026-12-05T12:50:50Z
//	command logline serve
//
// Readers (`logline ledger verify`, `tail`, `proof`, `checkpoint`, `key`)
// take no lock; they Probe it (testing, not taking, the lock) to learn
// whether a writer is running, and if so they confine themselves to what
// that writer has made durable and signed.
package datadir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// FileName is the lock file's name inside the data directory.
const FileName = "LOCK"

const header = "logline data directory lock"

// ErrLocked is returned (as a *LockedError) when another process holds the
// data directory.
var ErrLocked = errors.New("datadir: in use by another process")

// Holder describes the process holding a data directory.
type Holder struct {
	PID     int
	Started time.Time
	Command string
}

func (h Holder) String() string {
	var b strings.Builder
	if h.Command != "" {
		b.WriteString(h.Command)
	} else {
		b.WriteString("another process")
	}
	var parts []string
	if h.PID > 0 {
		parts = append(parts, "pid "+strconv.Itoa(h.PID))
	}
	if !h.Started.IsZero() {
		parts = append(parts, "started "+h.Started.UTC().Format(time.RFC3339))
	}
	if len(parts) > 0 {
		b.WriteString(" (" + strings.Join(parts, ", ") + ")")
	}
	return b.String()
}

// LockedError says which process holds a data directory.
type LockedError struct {
	Dir    string
	Holder Holder
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("data directory %s is in use by %s", e.Dir, e.Holder)
}

// Is makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// Lock is an exclusive hold on a data directory.
type Lock struct {
	dir string
	f   *os.File
}

// Dir returns the directory the lock holds.
func (l *Lock) Dir() string { return l.dir }

// Acquire takes the data directory dir for this process, creating dir if
// needed; command names the holder for others ("logline serve"). It fails at
// once with a *LockedError when another process holds it.
func Acquire(dir, command string) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("datadir: %w", err)
	}
	path := filepath.Join(dir, FileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("datadir: %w", err)
	}
	held, err := tryLock(f, true)
	for deadline := time.Now().Add(probeGrace); err == nil && !held && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
		held, err = tryLock(f, true)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("datadir: lock %s: %w", path, err)
	}
	if !held {
		h := readHolder(f)
		f.Close()
		return nil, &LockedError{Dir: dir, Holder: h}
	}
	rec := fmt.Sprintf("%s\npid %d\nstarted %s\ncommand %s\n", header, os.Getpid(),
		time.Now().UTC().Format(time.RFC3339), strings.ReplaceAll(command, "\n", " "))
	err = f.Truncate(0)
	if err == nil {
		_, err = f.WriteAt([]byte(rec), 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("datadir: write %s: %w", path, err)
	}
	return &Lock{dir: dir, f: f}, nil
}

// LockFile takes an exclusive lock on the file at path (created if
// needed, mode 0600) and writes nothing into it: for a part of a data
// directory that guards itself (the identity's key ring and state). It
// fails at once with a *LockedError when another open file holds it.
func LockFile(path string) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("datadir: %w", err)
	}
	held, err := tryLock(f, true)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("datadir: lock %s: %w", path, err)
	}
	if !held {
		f.Close()
		return nil, &LockedError{Dir: filepath.Dir(path)}
	}
	return &Lock{dir: filepath.Dir(path), f: f}, nil
}

// Release gives the directory up. The file stays; its content no longer
// matters once it is not locked.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// Probe reports whether another process holds dir, and who. It changes
// nothing: a directory without a lock file is free.
func Probe(dir string) (*Holder, error) {
	f, err := os.Open(filepath.Join(dir, FileName))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("datadir: %w", err)
	}
	defer f.Close()
	held, err := lockHeld(f)
	if err != nil {
		return nil, fmt.Errorf("datadir: probe %s: %w", dir, err)
	}
	if !held {
		return nil, nil
	}
	h := readHolder(f)
	return &h, nil
}

// readHolder parses what the holder wrote; missing parts stay zero.
func readHolder(f *os.File) Holder {
	var h Holder
	b := make([]byte, 4096)
	n, _ := f.ReadAt(b, 0)
	lines := strings.Split(string(b[:n]), "\n")
	if len(lines) == 0 || lines[0] != header {
		return h
	}
	for _, line := range lines[1:] {
		k, v, _ := strings.Cut(line, " ")
		switch k {
		case "pid":
			h.PID, _ = strconv.Atoi(v)
		case "started":
			h.Started, _ = time.Parse(time.RFC3339, v)
		case "command":
			h.Command = v
		}
	}
	return h
}
