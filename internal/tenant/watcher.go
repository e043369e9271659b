package tenant

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"time"

	"github.com/loglineos/loglineos/internal/atomicfile"
	"github.com/loglineos/loglineos/internal/ledger"
)

// Appender appends records to the ledger.
type Appender interface {
	Append(ctx context.Context, entries []ledger.Entry) ([]ledger.Result, error)
}

// Watcher applies the tenant files of a directory (cfg/tenants), at start
// and whenever one changes: a new or changed file that Parse accepts is
// recorded in the ledger as a config record, then handed to Apply; a
// removed file returns its tenant to the defaults (a config record with
// null); a refused file is logged once and changes nothing, so the
// configuration last recorded stays in force. Which file content was last
// recorded is kept in AppliedFile, so a restart records only what changed.
//
// A Watcher is used by one goroutine (Run, or the caller of Scan).
type Watcher struct {
	Dir    string         // cfg/tenants
	Base   map[string]any // the bundle's features and policies (Parse's base)
	Ledger Appender
	// Apply gives a tenant's file to the rest of the server (identity:
	// quotas, members and roles; redaction); f is nil when the file was
	// removed. It is called for every file at the first Scan, and for each
	// file recorded later. Nil: nothing else to apply.
	Apply func(tenant string, f *File) error
	// Logger gets what the watcher applies and refuses. Nil: discarded.
	Logger *slog.Logger
	// Settle is how long a changed file must have been left alone before a
	// scan after the first reads it (DefaultSettle when zero): a file being
	// written (most editors and os.WriteFile truncate it first) is not
	// taken half-written, an empty one recorded as the tenant's defaults.
	// A changed file is also recorded only when two scans in a row read
	// the same bytes, so that a writer stalled between its truncation and
	// its write for longer than Settle is not taken either.
	Settle time.Duration

	applied  map[string]string // tenant -> hash of the file content last applied
	problems map[string]string // tenant -> hash of a file last refused (not logged again)
	pending  map[string]string // tenant -> hash of a changed file read once, not recorded yet
	started  bool              // Apply has been given every file once
}

// DefaultSettle is Watcher.Settle's default.
const DefaultSettle = 250 * time.Millisecond

var tenantName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// ValidName reports whether a tenant file may be called name.yaml; the
// watcher ignores other files.
func ValidName(name string) bool { return tenantName.MatchString(name) }

func (w *Watcher) log() *slog.Logger {
	if w.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return w.Logger
}

func (w *Watcher) statePath() string { return filepath.Join(w.Dir, AppliedFile) }

func (w *Watcher) load() {
	if w.applied != nil {
		return
	}
	w.applied = map[string]string{}
	w.problems = map[string]string{}
	w.pending = map[string]string{}
	b, err := os.ReadFile(w.statePath())
	if err != nil {
		return
	}
	m, _, err := ReadApplied(b)
	if err != nil {
		w.log().Warn("tenant configuration state damaged; every tenant file is applied again", "file", w.statePath(), "err", err)
		return
	}
	w.applied = m
}

func (w *Watcher) save() error {
	return atomicfile.Write(w.statePath(), encodeApplied(w.applied), 0o644)
}

// Scan applies every changed, new or removed tenant file once.
func (w *Watcher) Scan(ctx context.Context) error {
	w.load()
	entries, err := os.ReadDir(w.Dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	seen := map[string]bool{}
	changed := false
	for _, e := range entries {
		name, ok := NameOf(e.Name())
		if !ok || e.IsDir() {
			continue
		}
		if !ValidName(name) {
			w.log().Warn("tenant file ignored: bad tenant name", "file", e.Name())
			continue
		}
		if seen[name] {
			// Read in name order: <tenant>.lll before <tenant>.yaml.
			w.log().Error("tenant file ignored: the tenant has a .lll file too, which is in force; keep one", "file", e.Name())
			continue
		}
		seen[name] = true
		recorded, err := w.scanFile(ctx, name, filepath.Join(w.Dir, e.Name()))
		if err != nil {
			return err
		}
		changed = changed || recorded
	}
	// Removed files return their tenants to the defaults.
	for _, name := range slices.Sorted(maps.Keys(w.applied)) {
		if seen[name] {
			continue
		}
		if err := w.remove(ctx, name); err != nil {
			return err
		}
		changed = true
	}
	w.started = true
	if changed {
		return w.save()
	}
	return nil
}

// scanFile records and applies the tenant file at path if it changed since
// it was last recorded, and reports whether it did. An error is the
// ledger's: a file that is unreadable or refused is logged.
func (w *Watcher) scanFile(ctx context.Context, name, path string) (bool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		w.log().Warn("tenant file unreadable", "file", path, "err", err)
		return false, nil
	}
	sum := sha256.Sum256(data)
	h := hex.EncodeToString(sum[:])
	if w.applied[name] == h {
		if !w.started && w.Apply != nil {
			// Already in the ledger; the rest of the server keeps its part
			// in memory.
			f, err := ParseFile(path, data, w.Base)
			if err != nil {
				// Recorded once, refused now (a stricter parse): say so,
				// the tenant's quotas, members and redaction are missing.
				w.log().Error("tenant file recorded before is refused now; its quotas, members and redaction are not in force until it is fixed", "file", path, "err", err)
			} else if err := w.Apply(name, f); err != nil {
				w.log().Error("tenant quotas/members not applied", "tenant", name, "err", err)
			}
		}
		return false, nil
	}
	if w.started {
		settle := w.Settle
		if settle <= 0 {
			settle = DefaultSettle
		}
		if fi, err := os.Stat(path); err == nil && time.Since(fi.ModTime()) < settle {
			delete(w.pending, name)
			return false, nil // being written, perhaps: the next scan
		}
		if w.pending[name] != h {
			w.pending[name] = h // read once: recorded if the next scan reads the same
			return false, nil
		}
	}
	delete(w.pending, name)
	f, err := ParseFile(path, data, w.Base)
	if err != nil {
		if w.problems[name] != h {
			w.log().Error("tenant file refused; the previous configuration stays in force", "file", path, "err", err)
			w.problems[name] = h
		}
		return false, nil
	}
	entry, err := ConfigEntry(name, f.Doc)
	if err != nil {
		return false, err
	}
	res, err := w.Ledger.Append(ctx, []ledger.Entry{entry})
	if err != nil {
		return false, fmt.Errorf("tenant: record %s configuration: %w", name, err)
	}
	if w.Apply != nil {
		if err := w.Apply(name, f); err != nil {
			w.log().Error("tenant quotas/members not applied", "tenant", name, "err", err)
		}
	}
	w.applied[name] = h
	delete(w.problems, name)
	w.log().Info("tenant configuration applied", "tenant", name, "seq", res[0].Receipt.Seq)
	return true, nil
}

// remove records that a tenant's file is gone: its tenant returns to the
// defaults.
func (w *Watcher) remove(ctx context.Context, name string) error {
	entry, err := ConfigEntry(name, nil)
	if err != nil {
		return err
	}
	if _, err := w.Ledger.Append(ctx, []ledger.Entry{entry}); err != nil {
		return fmt.Errorf("tenant: record %s removal: %w", name, err)
	}
	if w.Apply != nil {
		w.Apply(name, nil)
	}
	delete(w.applied, name)
	w.log().Info("tenant configuration removed; defaults apply", "tenant", name)
	return nil
}

// DefaultScanInterval is how often Run scans when given no interval: a
// changed file is applied within a second.
const DefaultScanInterval = time.Second

// Run scans every interval (DefaultScanInterval if not positive) until ctx
// ends.
func (w *Watcher) Run(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = DefaultScanInterval
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := w.Scan(ctx); err != nil && ctx.Err() == nil {
				w.log().Error("tenant configuration scan", "err", err)
			}
		}
	}
}
