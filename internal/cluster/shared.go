package cluster

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/loglineos/loglineos/internal/atomicfile"
)

// IdentityBucket is the KV bucket that holds the files every node of a
// cluster shares: the identity's key ring, service accounts, users and
// redaction key (see SharedFiles).
const IdentityBucket = "LOGLINE_IDENTITY"

// sharedLockKey is the bucket's key of the lock held while a node changes
// the shared files. The files' keys are their paths and always hold a
// slash, so they never meet it.
const sharedLockKey = "lock"

// DefaultSharedLockTTL is how long the lock on the shared files outlives
// a holder that stopped renewing it (a node that died mid-change).
const DefaultSharedLockTTL = 10 * time.Second

// ErrSharedBusy is wrapped by Change's error when another node held the
// lock for as long as the caller would wait.
var ErrSharedBusy = errors.New("cluster: another node is changing the shared files")

// SharedConfig configures OpenShared.
type SharedConfig struct {
	// Dir is the data directory the files' paths are relative to.
	Dir string
	// Node names this node in the lock (the holder a waiting node is told).
	Node string
	// Match reports whether a path relative to Dir, with forward slashes,
	// is one of the shared files. Paths are listed under Roots only.
	Match func(rel string) bool
	// Roots are the directories under Dir that hold the shared files.
	Roots []string
	// Last are files put in the bucket after the others of a change (an
	// index naming the others: a node reading it finds them there).
	// Removed files are deleted from the bucket after every put.
	Last []string
	// LockTTL is DefaultSharedLockTTL when zero.
	LockTTL time.Duration
	// Replicas of the bucket when this node creates it (DefaultReplicas
	// when zero).
	Replicas int
	Log      *slog.Logger
}

// SharedFiles keeps a set of a data directory's files the same on every
// node of a cluster, through the IdentityBucket: each file is a key (its
// path) whose value is its content.
//
// Every node watches the bucket and writes each value to its own file (a
// key deleted: the file removed), then calls the reload function so that
// what reads the files reads them again. A node changes the files only
// inside Change: it takes the bucket's lock (one node at a time in the
// cluster), waits until its files hold everything the bucket held when it
// took it, runs the change, and puts in the bucket each shared file that
// now differs from it (deletes those that are gone) before releasing the
// lock. So two nodes never change the files at once from different
// starting points, and a change recorded in the ledger (a key rotation, a
// new service account) is made once, by one node, and seen by all.
//
// A node that dies inside a change leaves the lock to expire (LockTTL) and
// may leave a change made on its disk but not put in the bucket; it puts
// it there when it starts again (a marker file says a change was under
// way).
type SharedFiles struct {
	cfg SharedConfig
	kv  jetstream.KeyValue
	w   jetstream.KeyWatcher
	log *slog.Logger

	mu     sync.Mutex
	cond   *sync.Cond
	seen   uint64              // the highest revision the watcher applied
	known  map[string][32]byte // key -> SHA-256 of the bucket's value
	reload func() error
	err    error         // the watcher's end
	delay  time.Duration // tests: how late the watcher applies each entry

	done chan struct{}
}

// pendingFile marks, in Dir, a change under way: its files may be ahead of
// the bucket.
const pendingFile = ".shared-change"

// OpenShared opens (or creates) the bucket, writes the bucket's files to
// this node's directory and keeps them up to date until Close. A change
// this node had made but not published before it stopped is published
// first.
func OpenShared(ctx context.Context, js jetstream.JetStream, cfg SharedConfig) (*SharedFiles, error) {
	if cfg.LockTTL <= 0 {
		cfg.LockTTL = DefaultSharedLockTTL
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = DefaultReplicas
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	kv, err := openBucket(ctx, js, jetstream.KeyValueConfig{Bucket: IdentityBucket, Storage: jetstream.FileStorage, Replicas: cfg.Replicas, History: 1})
	if err != nil {
		return nil, err
	}
	s := &SharedFiles{cfg: cfg, kv: kv, log: cfg.Log, known: map[string][32]byte{}, done: make(chan struct{})}
	s.cond = sync.NewCond(&s.mu)
	// The files a change of this node's wrote and had not finished
	// publishing win over the bucket's older values: the watcher must not
	// overwrite them.
	pending, err := s.pendingChange()
	if err != nil {
		return nil, err
	}
	s.w, err = kv.WatchAll(context.Background())
	if err != nil {
		return nil, fmt.Errorf("cluster: watch %s: %w", IdentityBucket, err)
	}
	first := make(chan error, 1)
	go s.watch(first, pending)
	select {
	case err = <-first:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("cluster: read %s: %w", IdentityBucket, err)
	}
	if pending != nil {
		s.log.Warn("publishing the shared files' change this node made before it stopped", "dir", cfg.Dir, "files", len(pending))
		if err := s.Change(ctx, func(context.Context) error { return nil }); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// openBucket returns the bucket, creating it if it is missing; it retries
// until ctx ends while JetStream does not answer (a cluster starting
// together elects its meta leader first).
func openBucket(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	for {
		tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		kv, err := js.KeyValue(tctx, cfg.Bucket)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			kv, err = js.CreateKeyValue(tctx, cfg)
			if errors.Is(err, jetstream.ErrBucketExists) {
				kv, err = js.KeyValue(tctx, cfg.Bucket)
			}
		}
		cancel()
		if err == nil {
			return kv, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("cluster: bucket %s: %w", cfg.Bucket, err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// SetReload sets the function called after the watcher changed a file
// (nil: none), and calls it once, for what the watcher wrote before.
func (s *SharedFiles) SetReload(f func() error) error {
	s.mu.Lock()
	s.reload = f
	s.mu.Unlock()
	if f == nil {
		return nil
	}
	return f()
}

// Close stops the watcher. It does not touch the files.
func (s *SharedFiles) Close() error {
	if s.w != nil {
		_ = s.w.Stop()
		<-s.done
	}
	return nil
}

// watch applies the bucket's entries to the files until the watcher stops.
// first receives nil once the bucket's values at the start are applied.
// The files of keep are left as they are until then.
func (s *SharedFiles) watch(first chan<- error, keep map[string]bool) {
	defer close(s.done)
	started := false
	changed := false
	for e := range s.w.Updates() {
		if e == nil { // the initial values are all delivered
			started = true
			first <- nil
			changed = false
			continue
		}
		s.mu.Lock()
		delay := s.delay
		s.mu.Unlock()
		time.Sleep(delay)
		c, err := s.apply(e, !started && keep[e.Key()])
		if err != nil {
			s.log.Error("shared file not written; this node's copy is behind the cluster's", "key", e.Key(), "err", err)
		}
		changed = changed || c
		s.mu.Lock()
		s.seen = max(s.seen, e.Revision())
		reload := s.reload
		s.cond.Broadcast()
		s.mu.Unlock()
		// Reload once the entries delivered so far are applied: a change
		// of several files is read whole (if its puts were not spread out).
		if started && changed && reload != nil && e.Delta() == 0 {
			if err := reload(); err != nil {
				s.log.Error("shared files changed, and reading them again failed", "err", err)
			}
			changed = false
		}
	}
	s.mu.Lock()
	s.err = errors.New("cluster: the shared files' watcher stopped")
	s.cond.Broadcast()
	s.mu.Unlock()
	if !started {
		first <- errors.New("the watcher stopped before the bucket was read")
	}
}

// apply writes one entry to its file. keepLocal leaves the file as it is
// (a change of this node's not yet published). It reports whether a file
// changed.
func (s *SharedFiles) apply(e jetstream.KeyValueEntry, keepLocal bool) (bool, error) {
	key := e.Key()
	if key == sharedLockKey {
		return false, nil
	}
	if !s.shared(key) {
		return false, fmt.Errorf("not a shared file's path")
	}
	name := filepath.Join(s.cfg.Dir, filepath.FromSlash(key))
	s.mu.Lock()
	if op := e.Operation(); op == jetstream.KeyValueDelete || op == jetstream.KeyValuePurge {
		delete(s.known, key)
	} else {
		s.known[key] = sha256.Sum256(e.Value())
	}
	s.mu.Unlock()
	if keepLocal {
		return false, nil
	}
	cur, err := os.ReadFile(name)
	exists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	if op := e.Operation(); op == jetstream.KeyValueDelete || op == jetstream.KeyValuePurge {
		if !exists {
			return false, nil
		}
		return true, os.Remove(name)
	}
	if exists && bytes.Equal(cur, e.Value()) {
		return false, nil
	}
	if err := os.MkdirAll(filepath.Dir(name), 0o700); err != nil {
		return false, err
	}
	return true, atomicfile.Write(name, e.Value(), 0o600)
}

// keyPattern is what a NATS KV key may be; a shared file's path must be
// one.
var keyPattern = regexp.MustCompile(`^[-/_=a-zA-Z0-9]+(\.[-/_=a-zA-Z0-9]+)*$`)

// shared reports whether key names a shared file.
func (s *SharedFiles) shared(key string) bool {
	if !keyPattern.MatchString(key) || !strings.Contains(key, "/") || strings.Contains(key, "..") || strings.HasPrefix(key, "/") {
		return false
	}
	for part := range strings.SplitSeq(key, "/") {
		if part == "" || strings.HasPrefix(part, ".") {
			return false
		}
	}
	return s.cfg.Match(key)
}

// sharedCtxKey marks a context inside Change.
type sharedCtxKey struct{}

// lockValue is the lock key's value.
type lockValue struct {
	Holder string    `json:"holder"`
	Until  time.Time `json:"until"`
}

// Change runs fn while this node holds the cluster's lock on the shared
// files, with the files up to date (fn reads what the last change wrote),
// then puts in the bucket what fn changed. It waits for a lock another
// node holds until ctx ends (the error then wraps ErrSharedBusy). A Change
// inside fn (ctx is fn's) runs its fn at once, in the same lock.
func (s *SharedFiles) Change(ctx context.Context, fn func(ctx context.Context) error) error {
	if ctx.Value(sharedCtxKey{}) == s {
		return fn(ctx)
	}
	rev, err := s.lock(ctx)
	if err != nil {
		return err
	}
	held := &heldLock{rev: rev}
	rctx, stopRenew := context.WithCancel(context.Background())
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		s.renew(rctx, held)
	}()
	defer func() {
		stopRenew()
		<-renewed
		s.unlock(held)
	}()
	if err := s.caughtUp(ctx, rev); err != nil {
		return err
	}
	// The marker holds the files' digests before fn: what differs from
	// them at a start after a crash is fn's change.
	before, err := s.list()
	if err != nil {
		return err
	}
	marker := filepath.Join(s.cfg.Dir, pendingFile)
	m, _ := json.Marshal(digests(before))
	if err := atomicfile.Write(marker, m, 0o600); err != nil {
		return fmt.Errorf("cluster: shared files: %w", err)
	}
	ferr := fn(context.WithValue(ctx, sharedCtxKey{}, s))
	// Publish whatever fn left on disk, even after an error: fn may have
	// changed a file and failed after (its own undo, if any, is on disk
	// too); and even when the caller has gone (a request's context).
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
	defer cancel()
	if err := s.publish(pctx); err != nil {
		return errors.Join(ferr, fmt.Errorf("cluster: shared files not published (they will be at this node's next change or start): %w", err))
	}
	if err := os.Remove(marker); err != nil {
		s.log.Warn("shared files: marker not removed", "err", err)
	}
	return ferr
}

// publishTimeout bounds the publication of a change.
const publishTimeout = 10 * time.Second

// digests maps each file to the hex SHA-256 of its content.
func digests(files map[string][]byte) map[string]string {
	out := make(map[string]string, len(files))
	for k, v := range files {
		sum := sha256.Sum256(v)
		out[k] = hex.EncodeToString(sum[:])
	}
	return out
}

// pendingChange reads the marker a change leaves until it is published:
// nil if there is none, else the files that differ from the digests it
// holds (the change's files, written or removed).
func (s *SharedFiles) pendingChange() (map[string]bool, error) {
	data, err := os.ReadFile(filepath.Join(s.cfg.Dir, pendingFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: shared files: %w", err)
	}
	var before map[string]string
	if err := json.Unmarshal(data, &before); err != nil {
		// A marker torn by a crash: the change had not begun.
		s.log.Warn("shared files: unreadable change marker ignored", "err", err)
		return nil, nil
	}
	files, err := s.list()
	if err != nil {
		return nil, err
	}
	now := digests(files)
	changed := map[string]bool{}
	for k, d := range now {
		if before[k] != d {
			changed[k] = true
		}
	}
	for k := range before {
		if _, ok := now[k]; !ok {
			changed[k] = true
		}
	}
	return changed, nil
}

// heldLock is the lock's revision, updated by each renewal.
type heldLock struct {
	mu  sync.Mutex
	rev uint64
}

// lock takes the cluster's lock and returns its revision.
func (s *SharedFiles) lock(ctx context.Context) (uint64, error) {
	value := func() []byte {
		b, _ := json.Marshal(lockValue{Holder: s.cfg.Node, Until: time.Now().Add(s.cfg.LockTTL)})
		return b
	}
	ctx, cancel := context.WithTimeout(ctx, 3*s.cfg.LockTTL)
	defer cancel()
	wait := 5 * time.Millisecond
	holder := ""
	for {
		rev, err := s.kv.Create(ctx, sharedLockKey, value())
		if err == nil {
			return rev, nil
		}
		if !contended(err) {
			if ctx.Err() != nil {
				return 0, fmt.Errorf("cluster: shared files' lock: %w", ctx.Err())
			}
			return 0, fmt.Errorf("cluster: shared files' lock: %w", err)
		}
		e, err := s.kv.Get(ctx, sharedLockKey)
		if err == nil {
			var cur lockValue
			if json.Unmarshal(e.Value(), &cur) != nil || time.Now().After(cur.Until) {
				// Its holder stopped renewing it: take it over.
				rev, err := s.kv.Update(ctx, sharedLockKey, value(), e.Revision())
				if err == nil {
					s.log.Warn("shared files: took over a lock that had run out", "holder", cur.Holder)
					return rev, nil
				}
			}
			holder = cur.Holder
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("%w (%s holds the lock): %w", ErrSharedBusy, holder, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, 200*time.Millisecond)
	}
}

// contended reports whether err is a write refused because another
// writer moved the key first (over a deleted key, Create's second step
// reports it as a wrong last sequence, not as ErrKeyExists).
func contended(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) ||
		errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// renew extends the held lock every third of its TTL until ctx ends.
func (s *SharedFiles) renew(ctx context.Context, h *heldLock) {
	t := time.NewTicker(s.cfg.LockTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		b, _ := json.Marshal(lockValue{Holder: s.cfg.Node, Until: time.Now().Add(s.cfg.LockTTL)})
		h.mu.Lock()
		rev, err := s.kv.Update(ctx, sharedLockKey, b, h.rev)
		if err == nil {
			h.rev = rev
		}
		h.mu.Unlock()
		if err != nil && ctx.Err() == nil {
			s.log.Warn("shared files: lock not renewed", "err", err)
		}
	}
}

// unlock deletes the lock if it is still this node's.
func (s *SharedFiles) unlock(h *heldLock) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := s.kv.Delete(ctx, sharedLockKey, jetstream.LastRevision(h.rev)); err != nil {
		s.log.Warn("shared files: lock not released (it runs out by itself)", "err", err)
	}
}

// caughtUp waits until the watcher applied every entry up to rev.
func (s *SharedFiles) caughtUp(ctx context.Context, rev uint64) error {
	stop := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		s.cond.Broadcast()
		s.mu.Unlock()
	})
	defer stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.seen < rev {
		if s.err != nil {
			return s.err
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("cluster: shared files: waiting for the bucket: %w", err)
		}
		s.cond.Wait()
	}
	return nil
}

// publish puts each shared file that differs from the bucket and deletes
// the keys whose file is gone.
func (s *SharedFiles) publish(ctx context.Context) error {
	files, err := s.list()
	if err != nil {
		return err
	}
	s.mu.Lock()
	known := maps.Clone(s.known)
	s.mu.Unlock()
	var errs []error
	keys := slices.Sorted(maps.Keys(files))
	slices.SortStableFunc(keys, func(a, b string) int {
		return cmp.Compare(b2i(slices.Contains(s.cfg.Last, a)), b2i(slices.Contains(s.cfg.Last, b)))
	})
	for _, key := range keys {
		data := files[key]
		sum := sha256.Sum256(data)
		if h, ok := known[key]; ok && h == sum {
			continue
		}
		if _, err := s.kv.Put(ctx, key, data); err != nil {
			errs = append(errs, fmt.Errorf("put %s: %w", key, err))
			continue
		}
		s.mu.Lock()
		s.known[key] = sum
		s.mu.Unlock()
	}
	for key := range known {
		if _, ok := files[key]; ok {
			continue
		}
		if err := s.kv.Delete(ctx, key); err != nil {
			errs = append(errs, fmt.Errorf("delete %s: %w", key, err))
			continue
		}
		s.mu.Lock()
		delete(s.known, key)
		s.mu.Unlock()
	}
	return errors.Join(errs...)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// list reads every shared file under the roots: path -> content.
func (s *SharedFiles) list() (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, root := range s.cfg.Roots {
		err := filepath.WalkDir(filepath.Join(s.cfg.Dir, root), func(path string, d fs.DirEntry, err error) error {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil {
				return err
			}
			if !d.Type().IsRegular() {
				return nil
			}
			rel, err := filepath.Rel(s.cfg.Dir, path)
			if err != nil {
				return err
			}
			key := filepath.ToSlash(rel)
			if !s.shared(key) {
				return nil
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			out[key] = data
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("cluster: shared files: %w", err)
		}
	}
	return out, nil
}
