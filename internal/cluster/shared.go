package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
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
// a holder that stopped renewing it (a node that died mid-change), on the
// waiting node's clock: the lock is taken over when its revision has not
// moved for that long (its holder renews it every third of it).
const DefaultSharedLockTTL = 10 * time.Second

// ErrSharedBusy is wrapped by Change's error when another node held the
// lock for as long as the caller would wait.
var ErrSharedBusy = errors.New("cluster: another node is changing the shared files")

// ErrNotPublished is wrapped by Change's error when fn ran (its change is
// on this node's disk, and whatever it recorded is recorded) but could not
// be handed to the other nodes: the lock was lost, or the bucket did not
// take the files. This node publishes it again in the background and at
// its next start; a conflicting change made meanwhile by another node wins
// (and is logged).
var ErrNotPublished = errors.New("cluster: the change is made on this node but not yet shared")

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
	// Wait bounds how long Change waits for the lock when its context has
	// no deadline (3 × LockTTL when zero).
	Wait time.Duration
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
// inside Change, a turn: it takes the bucket's lock (one node at a time in
// the cluster), waits until its files hold everything the bucket held when
// it took it and reloads them, runs the change, and puts in the bucket the
// files the change wrote (deletes those it removed) before releasing the
// lock. So two nodes never change the files at once from different
// starting points, and a change recorded in the ledger (a key rotation, a
// new service account) is made once, by one node, and seen by all.
//
// A change that could not be put in the bucket (the node died, the lock
// was lost, NATS did not answer) is remembered in a marker file with the
// digests of its files before it; it is published again in the background
// and at the node's next start, file by file, unless the bucket's value
// moved meanwhile (another node's later change wins). A file this node
// could not write (a full disk) stops its changes until it can: a change
// made from a copy behind the cluster's would undo others'.
type SharedFiles struct {
	cfg SharedConfig
	kv  jetstream.KeyValue
	w   jetstream.KeyWatcher
	log *slog.Logger

	mu      sync.Mutex
	cond    *sync.Cond
	seen    uint64            // the highest revision the watcher applied
	pending map[string]string // files of a change not yet published: path -> digest before it ("" absent)
	failed  map[string]error  // files the watcher could not write
	reload  func() error
	err     error         // the watcher's end
	delay   time.Duration // tests: how late the watcher applies each entry, and reloads

	stop chan struct{} // closed by Close: the retry loop ends
	done chan struct{} // closed when the watcher ended
	wg   sync.WaitGroup
}

// pendingFile is the marker, in Dir, of a change not yet published: the
// digests of the shared files before it.
const pendingFile = ".shared-change"

// OpenShared opens (or creates) the bucket, writes the bucket's files to
// this node's directory and keeps them up to date until Close. A change
// this node had made but not published before it stopped is published
// first.
func OpenShared(ctx context.Context, js jetstream.JetStream, cfg SharedConfig) (*SharedFiles, error) {
	if cfg.LockTTL <= 0 {
		cfg.LockTTL = DefaultSharedLockTTL
	}
	if cfg.Wait <= 0 {
		cfg.Wait = 3 * cfg.LockTTL
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
	s := &SharedFiles{cfg: cfg, kv: kv, log: cfg.Log, failed: map[string]error{},
		stop: make(chan struct{}), done: make(chan struct{})}
	s.cond = sync.NewCond(&s.mu)
	// The files a change of this node's wrote and had not published win
	// over the bucket's values they started from: the watcher must not
	// overwrite them.
	if s.pending, err = s.readMarker(); err != nil {
		return nil, err
	}
	s.w, err = kv.WatchAll(context.Background())
	if err != nil {
		return nil, fmt.Errorf("cluster: watch %s: %w", IdentityBucket, err)
	}
	first := make(chan error, 1)
	go s.watch(first)
	select {
	case err = <-first:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("cluster: read %s: %w", IdentityBucket, err)
	}
	s.mu.Lock()
	marker, pending := s.pending != nil, len(s.pending) > 0
	if marker && !pending {
		s.pending = nil // a marker, and nothing changed since it: the change never began
	}
	s.mu.Unlock()
	switch {
	case pending:
		s.log.Warn("publishing the shared files' change this node made before it stopped", "dir", cfg.Dir)
		s.publishPending(ctx)
	case marker:
		_ = os.Remove(filepath.Join(cfg.Dir, pendingFile))
	}
	s.wg.Add(1)
	go s.retry()
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

// SetReload sets the function called after the watcher changed a file and
// at the start of each change (nil: none), and calls it once, for what the
// watcher wrote before.
func (s *SharedFiles) SetReload(f func() error) error {
	s.mu.Lock()
	s.reload = f
	s.mu.Unlock()
	if f == nil {
		return nil
	}
	return f()
}

// Close stops the watcher and the background publication. It does not
// touch the files.
func (s *SharedFiles) Close() error {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	s.wg.Wait()
	if s.w != nil {
		_ = s.w.Stop()
		<-s.done
	}
	return nil
}

// hasPending reports whether a change waits to be published.
func (s *SharedFiles) hasPending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending) > 0
}

// publishPending publishes the pending change in a turn of its own.
func (s *SharedFiles) publishPending(ctx context.Context) {
	err := s.Change(ctx, func(context.Context) error { return nil })
	if err != nil {
		s.log.Warn("shared files: a change of this node's is still not shared; trying again", "err", err)
	}
}

// retry publishes a pending change every half lock TTL until Close.
func (s *SharedFiles) retry() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.LockTTL / 2)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		if s.hasPending() {
			ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Wait)
			s.publishPending(ctx)
			cancel()
		}
	}
}

// watch applies the bucket's entries to the files until the watcher stops.
// first receives nil once the bucket's values at the start are applied.
func (s *SharedFiles) watch(first chan<- error) {
	defer close(s.done)
	started := false
	changed := false
	for e := range s.w.Updates() {
		if e == nil { // the initial values are all delivered
			if !started {
				started = true
				first <- nil
			}
			changed = false
			continue
		}
		s.mu.Lock()
		delay := s.delay
		s.mu.Unlock()
		time.Sleep(delay)
		changed = s.apply(e) || changed
		s.mu.Lock()
		s.seen = max(s.seen, e.Revision())
		reload := s.reload
		s.cond.Broadcast()
		s.mu.Unlock()
		// Reload once the entries delivered so far are applied: a change
		// of several files is read whole (if its puts were not spread out).
		if started && changed && reload != nil && e.Delta() == 0 {
			time.Sleep(delay)
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
	} else {
		select {
		case <-s.stop:
		default:
			s.log.Error("shared files: the watcher stopped; this node no longer follows the cluster's identity")
		}
	}
}

// apply writes one entry to its file and reports whether the file changed.
// A file of a pending change is left as it is while the bucket still holds
// what the change started from; once the bucket moved on, the bucket's
// value wins.
func (s *SharedFiles) apply(e jetstream.KeyValueEntry) bool {
	key := e.Key()
	if key == sharedLockKey {
		return false
	}
	if !s.shared(key) {
		s.log.Warn("shared files: a key that is not a shared file's path ignored", "key", key)
		return false
	}
	deleted := e.Operation() == jetstream.KeyValueDelete || e.Operation() == jetstream.KeyValuePurge
	d := ""
	if !deleted {
		d = digest(e.Value())
	}
	s.mu.Lock()
	before, isPending := s.pending[key]
	s.mu.Unlock()
	if isPending {
		if before == d {
			return false // the bucket still holds what the change started from
		}
		local := ""
		if data, err := os.ReadFile(filepath.Join(s.cfg.Dir, filepath.FromSlash(key))); err == nil {
			local = digest(data)
		}
		s.mu.Lock()
		delete(s.pending, key)
		s.mu.Unlock()
		if local != d { // not this node's own value coming back
			s.log.Warn("shared files: another node changed a file this node's unpublished change had changed too; the other node's value is kept", "key", key)
		}
	}
	changed, err := s.write(key, e.Value(), deleted)
	s.mu.Lock()
	if err != nil {
		s.failed[key] = err
	} else {
		delete(s.failed, key)
	}
	s.mu.Unlock()
	if err != nil {
		s.log.Error("shared file not written; this node's changes wait until it is", "key", key, "err", err)
	}
	return changed
}

// write makes key's file hold data (or removes it) and reports whether it
// changed.
func (s *SharedFiles) write(key string, data []byte, remove bool) (bool, error) {
	name := filepath.Join(s.cfg.Dir, filepath.FromSlash(key))
	cur, err := os.ReadFile(name)
	exists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	if remove {
		if !exists {
			return false, nil
		}
		return true, os.Remove(name)
	}
	if exists && string(cur) == string(data) {
		return false, nil
	}
	if err := os.MkdirAll(filepath.Dir(name), 0o700); err != nil {
		return false, err
	}
	return true, atomicfile.Write(name, data, 0o600)
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

// sharedCtxKey marks a context inside a turn (its value: the *turn).
type sharedCtxKey struct{}

// turn is one Change's hold of the lock; a Change given a context of an
// open turn of the same SharedFiles runs inside it.
type turn struct {
	s    *SharedFiles
	open atomic.Bool
}

// lockValue is the lock key's value (for the people reading the bucket:
// the takeover goes by the revision, not by this clock).
type lockValue struct {
	Holder string    `json:"holder"`
	Until  time.Time `json:"until"`
}

// Change runs fn while this node holds the cluster's lock on the shared
// files, with the files up to date and reloaded (fn reads what the last
// change wrote), then puts in the bucket the files fn changed. It waits
// for a lock another node holds until ctx ends or, without a deadline,
// for SharedConfig.Wait (the error then wraps ErrSharedBusy). fn's context
// ends if the lock is lost. If fn ran but its change could not be
// published, the error wraps ErrNotPublished (and fn's error, if any). A
// Change inside fn (ctx is fn's) runs its fn at once, in the same turn.
func (s *SharedFiles) Change(ctx context.Context, fn func(ctx context.Context) error) error {
	if t, ok := ctx.Value(sharedCtxKey{}).(*turn); ok && t.s == s && t.open.Load() {
		return fn(ctx)
	}
	lctx := ctx
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		lctx, cancel = context.WithTimeout(ctx, s.cfg.Wait)
		defer cancel()
	}
	h, err := s.lock(lctx)
	if err != nil {
		return err
	}
	fctx, lost := context.WithCancelCause(ctx)
	defer lost(nil)
	stop := make(chan struct{})
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		s.renew(stop, h, func() { lost(errLockLost) })
	}()
	defer func() {
		close(stop)
		<-renewed
		s.unlock(h)
	}()
	if err := s.ready(ctx, h.rev); err != nil {
		return err
	}
	before, err := s.list()
	if err != nil {
		return err
	}
	// The digests the change starts from; a change still unpublished
	// started from older ones for its files.
	from := digests(before)
	s.mu.Lock()
	for k, d := range s.pending {
		from[k] = d
	}
	s.mu.Unlock()
	if err := s.writeMarker(from); err != nil {
		return err
	}
	t := &turn{s: s}
	t.open.Store(true)
	ferr := fn(context.WithValue(fctx, sharedCtxKey{}, t))
	t.open.Store(false)
	// Publish whatever fn left on disk, even after an error: fn may have
	// changed a file and failed after (its own undo, if any, is on disk
	// too); and even when the caller has gone (a request's context).
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
	defer cancel()
	perr := s.confirm(pctx, h)
	if perr == nil {
		perr = s.publish(pctx, from)
	}
	if perr != nil {
		s.mu.Lock()
		s.pending = s.changedSince(from)
		s.mu.Unlock()
		s.log.Warn("shared files: a change was made on this node and not shared; it will be", "err", perr)
		return errors.Join(ferr, fmt.Errorf("%w: %w", ErrNotPublished, perr))
	}
	s.mu.Lock()
	s.pending = nil
	s.mu.Unlock()
	if err := os.Remove(filepath.Join(s.cfg.Dir, pendingFile)); err != nil {
		s.log.Warn("shared files: marker not removed", "err", err)
	}
	return ferr
}

// errLockLost is the cause of a turn's context ended by the lock's loss.
var errLockLost = errors.New("cluster: the shared files' lock was taken over")

// publishTimeout bounds the publication of a change.
const publishTimeout = 10 * time.Second

// digest is the hex SHA-256 of data.
func digest(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// digests maps each file to its digest.
func digests(files map[string][]byte) map[string]string {
	out := make(map[string]string, len(files))
	for k, v := range files {
		out[k] = digest(v)
	}
	return out
}

// changedSince returns the files that differ from the digests from (""
// for a file that was absent), with their digest in from. Files it cannot
// read count as changed.
func (s *SharedFiles) changedSince(from map[string]string) map[string]string {
	files, err := s.list()
	if err != nil {
		return from
	}
	changed := map[string]string{}
	for k, data := range files {
		if from[k] != digest(data) {
			changed[k] = from[k]
		}
	}
	for k, d := range from {
		if _, ok := files[k]; !ok && d != "" {
			changed[k] = d
		}
	}
	return changed
}

// writeMarker writes the digests a change starts from.
func (s *SharedFiles) writeMarker(from map[string]string) error {
	m, err := json.Marshal(from)
	if err == nil {
		err = atomicfile.Write(filepath.Join(s.cfg.Dir, pendingFile), m, 0o600)
	}
	if err != nil {
		return fmt.Errorf("cluster: shared files: marker: %w", err)
	}
	return nil
}

// readMarker reads the marker a change leaves until it is published: nil
// if there is none, else the files that differ from the digests it holds
// (the change's files, written or removed), with those digests.
func (s *SharedFiles) readMarker() (map[string]string, error) {
	data, err := os.ReadFile(filepath.Join(s.cfg.Dir, pendingFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: shared files: %w", err)
	}
	var from map[string]string
	if err := json.Unmarshal(data, &from); err != nil {
		// A marker torn by a crash: the change had not begun.
		s.log.Warn("shared files: unreadable change marker ignored", "err", err)
		return nil, nil
	}
	return s.changedSince(from), nil
}

// heldLock is the lock's revision, updated by each renewal.
type heldLock struct {
	mu  sync.Mutex
	rev uint64
}

func (s *SharedFiles) lockValue() []byte {
	b, _ := json.Marshal(lockValue{Holder: s.cfg.Node, Until: time.Now().Add(s.cfg.LockTTL)})
	return b
}

// lock takes the cluster's lock. A lock whose revision has not moved for
// LockTTL on this node's clock is taken over: its holder stopped renewing
// it.
func (s *SharedFiles) lock(ctx context.Context) (*heldLock, error) {
	wait := 5 * time.Millisecond
	holder := ""
	var seenRev uint64
	var seenAt time.Time
	for {
		rev, err := s.kv.Create(ctx, sharedLockKey, s.lockValue())
		if err == nil {
			return &heldLock{rev: rev}, nil
		}
		if !contended(err) {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%w: %w", ErrSharedBusy, ctx.Err())
			}
			return nil, fmt.Errorf("cluster: shared files' lock: %w", err)
		}
		e, err := s.kv.Get(ctx, sharedLockKey)
		if err == nil {
			var cur lockValue
			_ = json.Unmarshal(e.Value(), &cur)
			holder = cur.Holder
			switch {
			case e.Revision() != seenRev:
				seenRev, seenAt = e.Revision(), time.Now()
			case time.Since(seenAt) >= s.cfg.LockTTL:
				rev, err := s.kv.Update(ctx, sharedLockKey, s.lockValue(), seenRev)
				if err == nil {
					s.log.Warn("shared files: took over a lock its holder stopped renewing", "holder", cur.Holder)
					return &heldLock{rev: rev}, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (%s holds the lock): %w", ErrSharedBusy, holder, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, 200*time.Millisecond)
	}
}

// renew extends the held lock every third of its TTL until stop is
// closed; lost is called (and renewal ends) when another node took it.
// Each renewal finishes before stop is looked at, so h.rev is the lock's.
func (s *SharedFiles) renew(stop <-chan struct{}, h *heldLock, lost func()) {
	t := time.NewTicker(s.cfg.LockTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if err := s.renewOnce(context.Background(), h); err != nil {
			if errors.Is(err, errLockLost) {
				lost()
				return
			}
			s.log.Warn("shared files: lock not renewed", "err", err)
		}
	}
}

// renewOnce extends the held lock by its TTL; errLockLost if another node
// took it.
func (s *SharedFiles) renewOnce(ctx context.Context, h *heldLock) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.LockTTL/3)
	defer cancel()
	h.mu.Lock()
	defer h.mu.Unlock()
	rev, err := s.kv.Update(ctx, sharedLockKey, s.lockValue(), h.rev)
	switch {
	case err == nil:
		h.rev = rev
		return nil
	case contended(err):
		return errLockLost
	}
	return err
}

// confirm checks, by renewing it, that the lock is still this node's
// before a change is published.
func (s *SharedFiles) confirm(ctx context.Context, h *heldLock) error {
	return s.renewOnce(ctx, h)
}

// unlock deletes the lock if it is still this node's.
func (s *SharedFiles) unlock(h *heldLock) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := s.kv.Delete(ctx, sharedLockKey, jetstream.LastRevision(h.rev)); err != nil {
		s.log.Warn("shared files: lock not released (it is taken over once it stops moving)", "err", err)
	}
}

// ready waits until the watcher applied every entry up to rev (within a
// lock TTL), writes again the files it could not write, and reloads.
func (s *SharedFiles) ready(ctx context.Context, rev uint64) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.LockTTL)
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		s.cond.Broadcast()
		s.mu.Unlock()
	})
	defer stop()
	s.mu.Lock()
	for s.seen < rev {
		if s.err != nil {
			s.mu.Unlock()
			return s.err
		}
		if err := ctx.Err(); err != nil {
			s.mu.Unlock()
			return fmt.Errorf("cluster: shared files: waiting for the bucket: %w", err)
		}
		s.cond.Wait()
	}
	var failed []string
	for k := range s.failed {
		failed = append(failed, k)
	}
	reload := s.reload
	s.mu.Unlock()
	for _, key := range failed {
		e, err := s.kv.Get(ctx, key)
		var werr error
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted):
			_, werr = s.write(key, nil, true)
		case err != nil:
			werr = err
		default:
			_, werr = s.write(key, e.Value(), false)
		}
		if werr != nil {
			return fmt.Errorf("cluster: shared files: this node's copy of %s cannot be brought up to date: %w", key, werr)
		}
		s.mu.Lock()
		delete(s.failed, key)
		s.mu.Unlock()
	}
	if reload != nil {
		if err := reload(); err != nil {
			return fmt.Errorf("cluster: shared files: this node's copy does not load: %w", err)
		}
	}
	return nil
}

// publish puts in the bucket each shared file whose digest differs from
// from (the Last ones after the others) and then deletes the keys of the
// files from held that are gone.
func (s *SharedFiles) publish(ctx context.Context, from map[string]string) error {
	files, err := s.list()
	if err != nil {
		return err
	}
	var puts, last, dels []string
	for k, data := range files {
		switch {
		case from[k] == digest(data):
		case slices.Contains(s.cfg.Last, k):
			last = append(last, k)
		default:
			puts = append(puts, k)
		}
	}
	for k, d := range from {
		if _, ok := files[k]; !ok && d != "" {
			dels = append(dels, k)
		}
	}
	slices.Sort(puts)
	slices.Sort(last)
	slices.Sort(dels)
	for _, k := range append(puts, last...) {
		if _, err := s.kv.Put(ctx, k, files[k]); err != nil {
			return fmt.Errorf("put %s: %w", k, err)
		}
	}
	for _, k := range dels {
		if err := s.kv.Delete(ctx, k); err != nil {
			return fmt.Errorf("delete %s: %w", k, err)
		}
	}
	return nil
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
