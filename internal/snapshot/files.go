package snapshot

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/loglineos/loglineos/internal/atomicfile"
)

// copier copies files into a directory tree, hashing what it copies, and
// notes the directories it made, to sync them at the end.
type copier struct {
	root     string
	dirs     map[string]bool
	progress func(n int64) // bytes copied or hashed
}

func newCopier(root string, progress func(int64)) *copier {
	if progress == nil {
		progress = func(int64) {}
	}
	return &copier{root: root, dirs: map[string]bool{root: true}, progress: progress}
}

// countingWriter reports the bytes that pass to progress.
type countingWriter struct{ progress func(int64) }

func (w countingWriter) Write(p []byte) (int, error) {
	w.progress(int64(len(p)))
	return len(p), nil
}

func (c *copier) mkdir(rel string) (string, error) {
	dst := filepath.Join(c.root, filepath.FromSlash(rel))
	dir := filepath.Dir(dst)
	if !c.dirs[dir] {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", fmt.Errorf("snapshot: %w", err)
		}
		for d := dir; d != c.root && !c.dirs[d]; d = filepath.Dir(d) {
			c.dirs[d] = true
		}
	}
	return dst, nil
}

// copy copies the first n bytes of src (all of it when n < 0) to rel,
// synced, with src's permission bits.
func (c *copier) copy(src, rel string, n int64) (File, error) {
	in, err := os.Open(src)
	if err != nil {
		return File{}, fmt.Errorf("snapshot: %w", err)
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return File{}, fmt.Errorf("snapshot: %w", err)
	}
	return c.write(in, rel, n, st.Mode().Perm())
}

// write copies the first n bytes of r (all when n < 0) to rel, synced,
// with mode perm.
func (c *copier) write(r io.Reader, rel string, n int64, perm fs.FileMode) (File, error) {
	dst, err := c.mkdir(rel)
	if err != nil {
		return File{}, err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return File{}, fmt.Errorf("snapshot: %w", err)
	}
	if n >= 0 {
		r = io.LimitReader(r, n)
	}
	h := sha256.New()
	size, err := io.Copy(io.MultiWriter(out, h, countingWriter{c.progress}), r)
	if err == nil && n >= 0 && size != n {
		err = fmt.Errorf("%s ends after %d bytes, want %d", rel, size, n)
	}
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return File{}, fmt.Errorf("snapshot: write %s: %w", rel, err)
	}
	return File{Path: rel, Size: size, Mode: uint32(perm), SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// link hard-links src as rel, copying it when it cannot (another file
// system), and hashes it. linked says which.
func (c *copier) link(src, rel string) (f File, linked bool, err error) {
	dst, err := c.mkdir(rel)
	if err != nil {
		return File{}, false, err
	}
	if os.Link(src, dst) != nil {
		f, err := c.copy(src, rel, -1)
		return f, false, err
	}
	f, err = hashFile(dst, c.progress)
	if err != nil {
		return File{}, false, err
	}
	f.Path = rel
	return f, true, nil
}

// syncDirs makes the directories the copier made durable.
func (c *copier) syncDirs() error {
	for d := range c.dirs {
		if err := atomicfile.SyncDir(d); err != nil {
			return fmt.Errorf("snapshot: sync %s: %w", d, err)
		}
	}
	return nil
}

// hashFile returns a file's size, permission bits and SHA-256 (Path is
// left empty).
func hashFile(path string, progress func(int64)) (File, error) {
	f, err := os.Open(path)
	if err != nil {
		return File{}, fmt.Errorf("snapshot: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return File{}, fmt.Errorf("snapshot: %w", err)
	}
	h := sha256.New()
	var w io.Writer = h
	if progress != nil {
		w = io.MultiWriter(h, countingWriter{progress})
	}
	n, err := io.Copy(w, f)
	if err != nil {
		return File{}, fmt.Errorf("snapshot: read %s: %w", path, err)
	}
	return File{Size: n, Mode: uint32(st.Mode().Perm()), SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// prepareTarget makes dir, which must not exist or be empty. The cleanup it
// returns removes what was put there since.
func prepareTarget(dir, flag string) (cleanup func(), err error) {
	ents, err := os.ReadDir(dir)
	switch {
	case os.IsNotExist(err):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("snapshot: %w", err)
		}
		return func() { os.RemoveAll(dir) }, nil
	case err != nil:
		return nil, fmt.Errorf("snapshot: %s %s: %w", flag, dir, err)
	case len(ents) > 0:
		return nil, fmt.Errorf("%w: %s %s is not empty", ErrBad, flag, dir)
	}
	return func() {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}, nil
}

// stateRoots are the parts of a data directory besides the ledger that a
// snapshot holds (see the package comment); skipState names the files in
// them it leaves out.
func stateRoots() []string {
	return []string{"bundle", "identity", "jwks", "cfg/tenants", "runtime", "billing.json"}
}

func skipState(rel string) bool {
	name := filepath.Base(rel)
	switch {
	case rel == "runtime/kv.json": // the fold of the kv records: rebuilt
		return true
	case name == ".lock" || name == "LOCK":
		return true
	case strings.HasPrefix(name, ".") && strings.HasSuffix(name, ".tmp"): // an atomic write under way
		return true
	}
	return false
}

// listState returns the state files under data, slash-separated relative
// paths in lexical order.
func listState(data string) ([]string, error) {
	var out []string
	for _, root := range stateRoots() {
		err := filepath.WalkDir(filepath.Join(data, filepath.FromSlash(root)), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				if os.IsNotExist(err) {
					return nil
				}
				return err
			}
			if !d.Type().IsRegular() {
				return nil
			}
			rel, err := filepath.Rel(data, path)
			if err != nil {
				return err
			}
			if rel = filepath.ToSlash(rel); !skipState(rel) {
				out = append(out, rel)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("snapshot: %w", err)
		}
	}
	return out, nil
}
