package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/loglineos/loglineos/internal/cycle"
	"github.com/loglineos/loglineos/internal/datadir"
	"github.com/loglineos/loglineos/internal/derive"
	"github.com/loglineos/loglineos/internal/ledger"
	"github.com/loglineos/loglineos/internal/runtime"
	"github.com/loglineos/loglineos/internal/tenant"
)

// Reindex deletes everything derived from the segments (the ledger's
// indexes and tree, the receipts journal, the derived store) and rebuilds
// it: the ledger from its segments, the derived streams by replaying the
// ledger through the cycle with the bundle cfg names. It holds the data
// directory (package datadir) throughout, and fails at once naming the
// holder when a server, or another command, holds it. It returns the
// number of records and of derived events.
//
// Reindex moves derivation to the end of the ledger without running the
// bundle's routers, so it refuses (ErrUnrouted) while records past the
// runtime's routed mark have not been routed (after a crash, or a stop
// with derivation behind), unless unroutedOK: their router actions would
// never be performed.
func Reindex(ctx context.Context, cfg Config, log *slog.Logger, unroutedOK bool, progress func(stage string, done, total int64)) (uint64, uint64, error) {
	// Nothing is deleted unless this process holds the directory.
	lock, err := datadir.Acquire(cfg.Data, "logline ledger reindex")
	if err != nil {
		return 0, 0, err
	}
	defer lock.Release()
	if !unroutedOK {
		if err := checkRouted(cfg); err != nil {
			return 0, 0, err
		}
	}
	// runtime/kv.json is the fold of the ledger's kv records: the next
	// start rebuilds it.
	for _, dir := range []string{filepath.Join("ledger", "index"), "receipts", "derived", filepath.Join("runtime", "kv.json")} {
		if err := os.RemoveAll(filepath.Join(cfg.Data, dir)); err != nil {
			return 0, 0, err
		}
	}
	l, err := ledger.Open(cfg.Data, ledger.Config{Logger: log, DirLocked: true, Progress: func(done, total int64) {
		if progress != nil {
			progress("ledger", done, total)
		}
	}})
	if err != nil {
		return 0, 0, err
	}
	defer l.Close()
	b, err := LoadBundle(cfg)
	if err != nil {
		return 0, 0, err
	}
	def, err := tenant.ParseConfig(tenant.BasePolicies(b))
	if err != nil {
		return 0, 0, fmt.Errorf("the bundle's policies: %w", err)
	}
	r, err := cycle.Open(l, cycle.Config{Dir: filepath.Join(cfg.Data, "derived"), Default: def, Rules: derive.CompileRules(b.Program()), Fingerprint: b.Hash(), Logger: log})
	if err != nil {
		return 0, 0, err
	}
	defer r.Close()
	end := l.Next()
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	// Progress from the start to the end of derivation, both included.
	for {
		if progress != nil {
			progress("derived", int64(r.Cursor()), int64(end))
		}
		if r.Cursor() >= end || r.Err() != nil || ctx.Err() != nil {
			break
		}
		select {
		case <-r.Changed():
		case <-t.C:
		}
	}
	cancel()
	if err := <-done; err != nil {
		return 0, 0, err
	}
	if err := r.Err(); err != nil {
		return 0, 0, err
	}
	return end, r.EventsDerived(), ctx.Err()
}

// VerifyDerived compares the derived store of the server configured by cfg
// with a fresh derivation of its ledger l under the bundle's policies (see
// cycle.Verify). It changes no file, so the server may be running; open l
// read-only then. progress, if not nil, is called now and then with the
// records derived again and their total.
func VerifyDerived(cfg Config, l cycle.Source, live bool, progress func(done, total int64)) (*cycle.VerifyReport, error) {
	if cfg.Bundle.Path == "" {
		// The standard bundle is signed with a key of the data directory;
		// without one nothing was derived yet (and LoadBundle would make
		// one).
		if _, err := os.Stat(filepath.Join(cfg.Data, "bundle", "local.key")); errors.Is(err, fs.ErrNotExist) {
			return &cycle.VerifyReport{Stale: "no derived store (no server has run on this data directory)"}, nil
		}
	}
	b, err := LoadBundle(cfg)
	if err != nil {
		return nil, err
	}
	def, err := tenant.ParseConfig(tenant.BasePolicies(b))
	if err != nil {
		return nil, fmt.Errorf("the bundle's policies: %w", err)
	}
	return cycle.Verify(l, filepath.Join(cfg.Data, "derived"), def, derive.CompileRules(b.Program()), b.Hash(), live, progress)
}

// ErrUnrouted is returned by Reindex when records have not been routed.
var ErrUnrouted = errors.New("records not routed yet")

// checkRouted refuses when the bundle has routers and the runtime's routed
// mark is behind the end of the ledger.
func checkRouted(cfg Config) error {
	b, err := LoadBundle(cfg)
	if err != nil {
		return err
	}
	if len(b.Routers()) == 0 {
		return nil
	}
	routed, err := runtime.RoutedMark(filepath.Join(cfg.Data, "runtime"))
	if err != nil {
		return fmt.Errorf("runtime outbox: %w", err)
	}
	l, err := ledger.Open(cfg.Data, ledger.Config{ReadOnly: true, DirLocked: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer l.Close()
	// The runtime's own kv records, appended as it syncs, route nothing.
	first, n, err := unroutable(l, routed)
	if err != nil {
		return err
	}
	if n > 0 {
		return fmt.Errorf("%w: the bundle's routers have not seen the records from seq %d on (%d of them; the server stopped uncleanly, or before derivation caught up); "+
			"start the server once and stop it when /readyz is ready and logline_derive_backlog_records is 0, then reindex; "+
			"--unrouted-ok reindexes anyway, and those records' router actions are never performed", ErrUnrouted, first, n)
	}
	return nil
}

// unroutable counts the records from seq from on that routers could act
// on (any but the runtime's kv records), and returns the first one's seq.
func unroutable(l *ledger.Ledger, from uint64) (first uint64, n int, err error) {
	if from >= l.Next() {
		return 0, 0, nil
	}
	rd, err := l.NewReader(from)
	if err != nil {
		return 0, 0, err
	}
	defer rd.Close()
	rd.SkipLeafCheck()
	for {
		rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return first, n, nil
		}
		if err != nil {
			return 0, 0, err
		}
		if rec.Kind == runtime.KindKV {
			continue
		}
		if n == 0 {
			first = rec.Seq
		}
		n++
	}
}
