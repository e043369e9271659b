package snapshot

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/loglineos/loglineos/internal/ledger"
	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
	"github.com/loglineos/loglineos/internal/server"
)

// RestoreConfig configures Restore.
type RestoreConfig struct {
	From string // the snapshot directory
	// Server is the configuration of the server that will run on the
	// restored directory: Server.Data is that directory (it must not exist
	// or be empty), and its bundle derives the streams again.
	Server server.Config
	// Key, if set, is the verifier key the snapshot's ledger must have
	// (signed-note form); empty trusts the snapshot's ledger/key.pub.
	Key string
	// Logger logs the rebuild; nil discards.
	Logger *slog.Logger
	// Progress, if set, is called now and then with the stage ("copy", then
	// Reindex's, then "verify"), the bytes or records done and their total.
	Progress func(stage string, done, total int64)
}

// Restored is what Restore did.
type Restored struct {
	Manifest *Manifest
	Events   uint64 // derived events rebuilt
}

// Restore checks the snapshot in cfg.From (its checkpoint's signature, with
// cfg.Key if set; the manifest's hashes, while copying), copies it into
// cfg.Server.Data, rebuilds what derives from the records (as
// server.Reindex does), and checks the result with ledger.Verify: it must
// be intact and hold the checkpoint's tree. A snapshot it refuses fails
// with ErrBad, and nothing is left in the target.
func Restore(ctx context.Context, cfg RestoreConfig) (_ *Restored, err error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, vkey, err := checkSnapshot(cfg.From, cfg.Key)
	if err != nil {
		return nil, err
	}
	dst := cfg.Server.Data
	cleanup, err := prepareTarget(dst, "--data")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			cleanup()
		}
	}()
	var total, done int64
	for _, f := range m.Files {
		total += f.Size
	}
	cp := newCopier(dst, func(n int64) {
		done += n
		if cfg.Progress != nil && total > 0 {
			cfg.Progress("copy", min(done, total), total)
		}
	})
	for _, want := range m.Files {
		got, err := cp.copy(filepath.Join(cfg.From, filepath.FromSlash(want.Path)), want.Path, -1)
		if err != nil {
			return nil, err
		}
		if got.SHA256 != want.SHA256 || got.Size != want.Size {
			return nil, fmt.Errorf("%w: %s: %d bytes of SHA-256 %s, the manifest says %d bytes of %s", ErrBad, want.Path, got.Size, got.SHA256, want.Size, want.SHA256)
		}
		if err := os.Chmod(filepath.Join(dst, filepath.FromSlash(want.Path)), os.FileMode(want.Mode).Perm()); err != nil {
			return nil, fmt.Errorf("snapshot: %w", err)
		}
	}
	if err := cp.syncDirs(); err != nil {
		return nil, err
	}
	// A snapshot is a point in time: records its server had not routed yet
	// when it was taken stay unrouted here (routing is the live server's;
	// docs/backups.md).
	_, events, err := server.Reindex(ctx, cfg.Server, log, true, cfg.Progress)
	if err != nil {
		return nil, fmt.Errorf("snapshot: rebuild: %w", err)
	}
	vcfg := ledger.VerifyConfig{VerifierKey: vkey}
	if cfg.Progress != nil {
		vcfg.Progress = func(done, total int64) { cfg.Progress("verify", done, total) }
	}
	rep, err := ledger.Verify(dst, vcfg)
	if err != nil {
		return nil, fmt.Errorf("snapshot: verify: %w", err)
	}
	switch c := rep.Checkpoint; {
	case rep.Problem != nil:
		return nil, fmt.Errorf("%w: the restored ledger does not verify: %s: %s", ErrBad, rep.Problem.Where(), rep.Problem.Reason)
	case c == nil || c.Size != m.Size || c.Root != m.Root || rep.Records != m.Size:
		return nil, fmt.Errorf("%w: the restored ledger holds %d records of root %s, the snapshot's checkpoint %d of root %s", ErrBad, rep.Records, rep.Root, m.Size, m.Root)
	}
	return &Restored{Manifest: m, Events: events}, nil
}

// checkSnapshot reads the manifest of the snapshot in dir and checks its
// checkpoint: signed by the snapshot's key (which must be pin when pin is
// set), and the one the manifest names. It returns the manifest and the
// verifier key.
func checkSnapshot(dir, pin string) (*Manifest, string, error) {
	b, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		return nil, "", fmt.Errorf("%w: no snapshot in %s: %v", ErrBad, dir, err)
	}
	m, err := parseManifest(b)
	if err != nil {
		return nil, "", err
	}
	seen := map[string]bool{}
	for _, f := range m.Files {
		if !filepath.IsLocal(filepath.FromSlash(f.Path)) || f.Path == ManifestName || seen[f.Path] {
			return nil, "", fmt.Errorf("%w: %s: bad file path %q", ErrBad, ManifestName, f.Path)
		}
		seen[f.Path] = true
	}
	for _, p := range []string{"ledger/checkpoint", "ledger/key", "ledger/key.pub"} {
		if !seen[p] {
			return nil, "", fmt.Errorf("%w: %s lists no %s", ErrBad, ManifestName, p)
		}
	}
	kb, err := os.ReadFile(filepath.Join(dir, "ledger", "key.pub"))
	if err != nil {
		return nil, "", fmt.Errorf("%w: %v", ErrBad, err)
	}
	vkey := strings.TrimSpace(string(kb))
	if pin != "" && pin != vkey {
		return nil, "", fmt.Errorf("%w: the snapshot's ledger key is %s, not the key given", ErrBad, vkey)
	}
	v, err := ledgerfmt.NewVerifier(vkey)
	if err != nil {
		return nil, "", fmt.Errorf("%w: ledger/key.pub: %v", ErrBad, err)
	}
	cb, err := os.ReadFile(filepath.Join(dir, "ledger", "checkpoint"))
	if err != nil {
		return nil, "", fmt.Errorf("%w: %v", ErrBad, err)
	}
	c, err := v.OpenCheckpoint(cb)
	if err != nil {
		return nil, "", fmt.Errorf("%w: ledger/checkpoint does not verify: %v", ErrBad, err)
	}
	if c.Size != m.Size || c.Root != m.Root {
		return nil, "", fmt.Errorf("%w: %s names the tree of %d records of root %s, the checkpoint %d of root %s", ErrBad, ManifestName, m.Size, m.Root, c.Size, c.Root)
	}
	return m, vkey, nil
}
