package snapshot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/loglineos/loglineos/internal/atomicfile"
	"github.com/loglineos/loglineos/internal/datadir"
	"github.com/loglineos/loglineos/internal/ledger"
	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
)

// DefaultWait is how long Take waits, beside a running server, for a
// signed checkpoint that covers the records written when it copied the
// state files: the ledger's default checkpoint interval, and some.
const DefaultWait = ledger.DefaultCheckpointInterval + 5*time.Second

// stateAttempts is how many times Take copies the state files when one
// changes while it waits for the checkpoint.
const stateAttempts = 3

// pollEvery is how often Take looks for a new checkpoint.
const pollEvery = 100 * time.Millisecond

// TakeConfig configures Take.
type TakeConfig struct {
	Data string // the data directory
	Out  string // the snapshot directory: must not exist or be empty
	// Wait bounds the wait for a checkpoint (see the package comment).
	// Default DefaultWait.
	Wait time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Progress, if set, is called now and then with the segment bytes done
	// and their total.
	Progress func(done, total int64)
}

// Taken is what Take did.
type Taken struct {
	Manifest *Manifest
	Linked   int   // segments hard-linked
	Copied   int64 // segment bytes copied
	// Notes say what the snapshot may not hold consistently.
	Notes []string
}

// Take writes a snapshot of the data directory cfg.Data into cfg.Out,
// cut at the latest signed checkpoint, reading only: a server may run on
// the directory meanwhile, and keeps its lock.
func Take(ctx context.Context, cfg TakeConfig) (_ *Taken, err error) {
	if cfg.Wait <= 0 {
		cfg.Wait = DefaultWait
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if _, err := os.Stat(filepath.Join(cfg.Data, "ledger", "key.pub")); err != nil {
		return nil, fmt.Errorf("snapshot: no ledger in %s", cfg.Data)
	}
	cleanup, err := prepareTarget(cfg.Out, "--out")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			cleanup()
		}
	}()
	t := &taking{cfg: cfg, out: &Taken{}}
	var l *ledger.Ledger
	for attempt := 1; ; attempt++ {
		if l, err = t.stateAndCheckpoint(ctx); err != nil {
			return nil, err
		}
		same, err := t.stateUnchanged()
		if err != nil {
			l.Close()
			return nil, err
		}
		if same {
			break
		}
		if attempt == stateAttempts {
			t.out.Notes = append(t.out.Notes, fmt.Sprintf("the state files changed while the snapshot was taken, %d times: they may be newer than the checkpoint", attempt))
			break
		}
		l.Close()
	}
	defer l.Close()
	if err := t.ledger(l); err != nil {
		return nil, err
	}
	if err := t.copier.syncDirs(); err != nil {
		return nil, err
	}
	m := t.manifest(l.Checkpoint())
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := atomicfile.Write(filepath.Join(cfg.Out, ManifestName), append(b, '\n'), 0o600); err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	t.out.Manifest = m
	return t.out, nil
}

// taking is one Take under way.
type taking struct {
	cfg    TakeConfig
	out    *Taken
	copier *copier
	files  map[string]File // path -> file copied
	total  int64           // segment bytes to copy or hash
	done   int64
}

// stateAndCheckpoint copies the state files into a fresh snapshot
// directory and opens the ledger read-only at a signed checkpoint that
// covers every record written by then, waiting for one (up to cfg.Wait)
// beside a running server.
func (t *taking) stateAndCheckpoint(ctx context.Context) (*ledger.Ledger, error) {
	for _, root := range stateRoots() {
		if err := os.RemoveAll(filepath.Join(t.cfg.Out, filepath.FromSlash(root))); err != nil {
			return nil, fmt.Errorf("snapshot: %w", err)
		}
	}
	t.copier = newCopier(t.cfg.Out, t.progress)
	t.files = map[string]File{}
	state, err := listState(t.cfg.Data)
	if err != nil {
		return nil, err
	}
	for _, rel := range state {
		f, err := t.copier.copy(filepath.Join(t.cfg.Data, filepath.FromSlash(rel)), rel, -1)
		if errors.Is(err, os.ErrNotExist) {
			continue // removed since it was listed: the check after sees it
		}
		if err != nil {
			return nil, err
		}
		t.files[rel] = f
	}
	mark, err := segmentsEnd(t.cfg.Data)
	if err != nil {
		return nil, err
	}
	// A state file is written just before its record is appended: beside a
	// running server, a checkpoint signed after the mark covers that
	// record too (unless it was signed within the record's commit), and so
	// does one older when nothing was appended for a poll after the mark.
	atMark, _ := os.ReadFile(filepath.Join(t.cfg.Data, "ledger", "checkpoint"))
	markedAt := t.cfg.Now()
	deadline := t.cfg.Now().Add(t.cfg.Wait)
	live, err := datadir.Probe(t.cfg.Data)
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	var l *ledger.Ledger
	var c *ledgerfmt.Checkpoint
	var ext []ledger.SegmentExtent
	for {
		if l == nil {
			if l, err = ledger.Open(t.cfg.Data, ledger.Config{ReadOnly: true}); err != nil {
				return nil, err
			}
			if c = l.Checkpoint(); c != nil {
				if ext, err = l.Extent(c.Size); err != nil {
					l.Close()
					return nil, err
				}
			}
		}
		covered := c != nil && mark.coveredBy(ext)
		if covered && live != nil && bytes.Equal(c.Note, atMark) {
			now, err := segmentsEnd(t.cfg.Data)
			if err != nil {
				l.Close()
				return nil, err
			}
			covered = now == mark && t.cfg.Now().Sub(markedAt) >= pollEvery
		}
		late := !t.cfg.Now().Before(deadline)
		switch {
		case covered:
			return l, nil
		case c != nil && live == nil:
			t.out.Notes = append(t.out.Notes, fmt.Sprintf("the records after the signed checkpoint of size %d (not signed: the server stopped without closing) are left out", c.Size))
			return l, nil
		case c != nil && late:
			t.out.Notes = append(t.out.Notes, fmt.Sprintf("no signed checkpoint covered the records written while the state files were copied within %s: they may be newer than the checkpoint of size %d", t.cfg.Wait, c.Size))
			return l, nil
		case c == nil && (live == nil || late):
			l.Close()
			return nil, fmt.Errorf("snapshot: no signed checkpoint yet in %s", t.cfg.Data)
		}
		select {
		case <-ctx.Done():
			l.Close()
			return nil, ctx.Err()
		case <-time.After(pollEvery):
		}
		// Open again only for a new checkpoint.
		if b, err := os.ReadFile(filepath.Join(t.cfg.Data, "ledger", "checkpoint")); err != nil || c == nil || !bytes.Equal(b, c.Note) {
			l.Close()
			l = nil
		}
	}
}

// stateUnchanged reports whether the state files of the data directory are
// still the ones copied.
func (t *taking) stateUnchanged() (bool, error) {
	state, err := listState(t.cfg.Data)
	if err != nil {
		return false, err
	}
	if len(state) != len(t.files) {
		return false, nil
	}
	for _, rel := range state {
		f, err := hashFile(filepath.Join(t.cfg.Data, filepath.FromSlash(rel)), nil)
		if errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if c, ok := t.files[rel]; !ok || c.SHA256 != f.SHA256 {
			return false, nil
		}
	}
	return true, nil
}

// ledger copies the checkpoint l opened at, the keys and the segments that
// hold exactly its tree.
func (t *taking) ledger(l *ledger.Ledger) error {
	c := l.Checkpoint()
	ext, err := l.Extent(c.Size)
	if err != nil {
		return err
	}
	t.done = 0
	for _, e := range ext {
		t.total += e.Bytes
	}
	f, err := t.copier.write(bytes.NewReader(c.Note), "ledger/checkpoint", -1, 0o644)
	if err != nil {
		return err
	}
	t.files[f.Path] = f
	for _, name := range []string{"key", "key.pub"} {
		rel := "ledger/" + name
		f, err := t.copier.copy(filepath.Join(t.cfg.Data, "ledger", name), rel, -1)
		if err != nil {
			return err
		}
		t.files[rel] = f
	}
	for _, e := range ext {
		rel := "ledger/segments/" + e.Name
		var f File
		if e.Whole {
			var linked bool
			if f, linked, err = t.copier.link(e.Path, rel); linked {
				t.out.Linked++
			} else if err == nil {
				t.out.Copied += f.Size
			}
		} else {
			f, err = t.copier.copy(e.Path, rel, e.Bytes)
			t.out.Copied += f.Size
		}
		if err != nil {
			return err
		}
		if f.Size != e.Bytes {
			return fmt.Errorf("snapshot: segment %s holds %d bytes, want %d", e.Name, f.Size, e.Bytes)
		}
		t.files[rel] = f
	}
	return nil
}

func (t *taking) progress(n int64) {
	t.done += n
	if t.cfg.Progress != nil && t.total > 0 {
		t.cfg.Progress(min(t.done, t.total), t.total)
	}
}

func (t *taking) manifest(c *ledgerfmt.Checkpoint) *Manifest {
	m := &Manifest{Format: Format, Origin: c.Origin, Size: c.Size, Root: c.Root, Time: t.cfg.Now().UTC()}
	for _, p := range slices.Sorted(maps.Keys(t.files)) {
		m.Files = append(m.Files, t.files[p])
	}
	return m
}

// segmentMark is where the segments ended at a moment: the last segment's
// name and size.
type segmentMark struct {
	name string
	size int64
}

// segmentsEnd returns where the segments of data end now.
func segmentsEnd(data string) (segmentMark, error) {
	dir := filepath.Join(data, "ledger", "segments")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return segmentMark{}, fmt.Errorf("snapshot: %w", err)
	}
	var m segmentMark
	for _, e := range ents {
		// Names are fixed-width numbers: the last in order is the newest.
		if filepath.Ext(e.Name()) == ".ndjson" && e.Name() > m.name {
			m.name = e.Name()
		}
	}
	if m.name == "" {
		return m, nil
	}
	// Not the file's size: the segment being written may carry padding.
	if m.size, err = ledger.SegmentDataEnd(filepath.Join(dir, m.name)); err != nil {
		return segmentMark{}, fmt.Errorf("snapshot: %w", err)
	}
	return m, nil
}

// coveredBy reports whether the extent reaches the mark.
func (m segmentMark) coveredBy(ext []ledger.SegmentExtent) bool {
	if len(ext) == 0 {
		return m.size == 0
	}
	last := ext[len(ext)-1]
	return last.Name > m.name || (last.Name == m.name && last.Bytes >= m.size)
}
