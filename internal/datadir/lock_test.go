//go:build unix

package datadir

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func TestSecondWriterIsRefusedAndNamesTheHolder(t *testing.T) {
	dir := t.TempDir()
	if h, err := Probe(dir); err != nil || h != nil {
		t.Fatalf("Probe of a fresh directory = %v, %v; want nil, nil", h, err)
	}
	first, err := Acquire(dir, "logline serve")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Acquire(dir, "logline ledger reindex")
	var le *LockedError
	if !errors.As(err, &le) || !errors.Is(err, ErrLocked) {
		t.Fatalf("second Acquire: err = %v, want a *LockedError", err)
	}
	if le.Holder.PID != os.Getpid() || le.Holder.Command != "logline serve" || time.Since(le.Holder.Started) > time.Minute {
		t.Errorf("holder = %+v, want this process's pid, its command and a recent start", le.Holder)
	}
	if msg := err.Error(); !strings.Contains(msg, "in use by logline serve (pid ") || !strings.Contains(msg, dir) {
		t.Errorf("message %q does not name the directory and the holder", msg)
	}
	h, err := Probe(dir)
	if err != nil || h == nil || h.Command != "logline serve" {
		t.Fatalf("Probe while held = %+v, %v; want the holder", h, err)
	}
	if err := first.Release(); err != nil {
		t.Fatal(err)
	}
	if h, err := Probe(dir); err != nil || h != nil {
		t.Fatalf("Probe after Release = %+v, %v; want free", h, err)
	}
	second, err := Acquire(dir, "logline ledger reindex")
	if err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}
	second.Release()
}

func TestProbeDoesNotTakeTheLock(t *testing.T) {
	dir := t.TempDir()
	l, err := Acquire(dir, "a")
	if err != nil {
		t.Fatal(err)
	}
	l.Release()
	// A probe of a free directory must leave it free for a writer.
	if _, err := Probe(dir); err != nil {
		t.Fatal(err)
	}
	l, err = Acquire(dir, "b")
	if err != nil {
		t.Fatalf("Acquire after Probe: %v", err)
	}
	l.Release()
}

// Readers probing all the time never stand in a writer's way.
func TestProbesDoNotBlockAWriter(t *testing.T) {
	dir := t.TempDir()
	l, err := Acquire(dir, "old")
	if err != nil {
		t.Fatal(err)
	}
	l.Release()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
				Probe(dir)
			}
		}
	}()
	for i := range 200 {
		l, err := Acquire(dir, "logline serve")
		if err != nil {
			close(stop)
			<-done
			t.Fatalf("Acquire %d beside probes: %v", i, err)
		}
		l.Release()
	}
	close(stop)
	<-done
}

// LockFile guards one file, writes nothing into it, and says when another
// open file holds it.
func TestLockFile(t *testing.T) {
	path := t.TempDir() + "/.lock"
	a, err := LockFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LockFile(path); !errors.Is(err, ErrLocked) {
		t.Fatalf("second LockFile: %v, want ErrLocked", err)
	}
	if b, _ := os.ReadFile(path); len(b) != 0 {
		t.Errorf("LockFile wrote %q", b)
	}
	a.Release()
	b, err := LockFile(path)
	if err != nil {
		t.Fatalf("LockFile after Release: %v", err)
	}
	b.Release()
}
