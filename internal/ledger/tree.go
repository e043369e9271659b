package ledger

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"

	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
)

// The Merkle tree is the RFC 6962 tree whose leaves are the records' leaf
// hashes in sequence order. Interior node hash: SHA-256(0x01 || left || right).
//
// Every node that roots a perfect subtree is stored, level by level, in
// ledger/index/tree/LNN: level NN's node i is the 32 bytes at offset 32*i.
// A tree of n leaves has floor(n / 2^l) nodes at level l, so the files only
// grow and about 2n hashes are stored in all. Inclusion and consistency
// proofs read O(log n) of them. The files are derived data: they are synced
// at every checkpoint, and the state file next to them records the tree size
// they are known to hold; anything after that is recomputed from the
// segments at open.

func hashChildren(l, r *ledgerfmt.Hash) ledgerfmt.Hash {
	var buf [65]byte
	buf[0] = 1
	copy(buf[1:], l[:])
	copy(buf[33:], r[:])
	return sha256.Sum256(buf[:])
}

// compactRange is the minimal set of perfect subtree roots covering leaves
// [0, size), left to right (highest level first).
type compactRange struct {
	size   uint64
	hashes []ledgerfmt.Hash
}

// append adds a leaf and calls visit for the leaf and for each node it
// completes, bottom-up.
func (c *compactRange) append(leaf ledgerfmt.Hash, visit func(level uint, index uint64, h *ledgerfmt.Hash)) {
	h := leaf
	idx := c.size
	if visit != nil {
		visit(0, idx, &h)
	}
	// Each trailing one bit of size merges a subtree with the new node.
	level := uint(0)
	for s := c.size; s&1 == 1; s >>= 1 {
		left := &c.hashes[len(c.hashes)-1]
		h = hashChildren(left, &h)
		c.hashes = c.hashes[:len(c.hashes)-1]
		level++
		idx >>= 1
		if visit != nil {
			visit(level, idx, &h)
		}
	}
	c.hashes = append(c.hashes, h)
	c.size++
}

// root returns the tree head of the range. The root of the empty tree is
// SHA-256 of the empty string.
func (c *compactRange) root() ledgerfmt.Hash {
	if len(c.hashes) == 0 {
		return sha256.Sum256(nil)
	}
	h := c.hashes[len(c.hashes)-1]
	for i := len(c.hashes) - 2; i >= 0; i-- {
		h = hashChildren(&c.hashes[i], &h)
	}
	return h
}

// rangeNodes lists the perfect subtree roots that make up the compact range
// of [0, size), left to right.
func rangeNodes(size uint64) []compact.NodeID {
	var ids []compact.NodeID
	var begin uint64
	for l := 63; l >= 0; l-- {
		if size&(1<<uint(l)) != 0 {
			ids = append(ids, compact.NewNodeID(uint(l), begin>>uint(l)))
			begin += 1 << uint(l)
		}
	}
	return ids
}

// treeStore keeps the stored nodes of the tree in per-level files.
type treeStore struct {
	fs  vfs.FS
	dir string

	mu     sync.Mutex
	files  [64]vfs.File
	sizes  [64]int64 // bytes written to each level file
	dirty  [64]bool
	levels int    // number of level files open
	buf    []byte // appendNodes' write buffer
}

// openTreeStore opens the level files of dir (for reading only, when
// readOnly). The store's logical size is
// set by the caller (setSize) from the tree state it trusts; bytes past it
// are stale and get overwritten.
func openTreeStore(fs vfs.FS, dir string, readOnly bool) (*treeStore, error) {
	if !readOnly {
		if err := mkdirAllSynced(fs, dir); err != nil {
			return nil, err
		}
	}
	t := &treeStore{fs: fs, dir: dir}
	for l := 0; l < 64; l++ {
		name := fs.PathJoin(dir, fmt.Sprintf("L%02d", l))
		if _, err := fs.Stat(name); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				break
			}
			return nil, fmt.Errorf("ledger: tree level %d: %w", l, err)
		}
		var f vfs.File
		var err error
		if readOnly {
			f, err = fs.Open(name, vfs.RandomReadsOption)
		} else {
			f, err = fs.OpenReadWrite(name, vfs.WriteCategoryUnspecified)
		}
		if err != nil {
			return nil, fmt.Errorf("ledger: tree level %d: %w", l, err)
		}
		t.files[l] = f
		t.levels = l + 1
	}
	return t, nil
}

// storedLeaves returns the size of the tree whose nodes the store holds.
func (t *treeStore) storedLeaves() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return uint64(t.sizes[0] / 32)
}

// setSize declares that the store holds the nodes of a tree of n leaves.
func (t *treeStore) setSize(n uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for l := range t.sizes {
		t.sizes[l] = int64(n>>uint(l)) * 32
	}
}

// appendNodes writes nodes, which must be the next nodes of their levels:
// one write per level, from one buffer.
func (t *treeStore) appendNodes(nodes []treeNode) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	var count, at [64]int
	for i := range nodes {
		count[nodes[i].level]++
	}
	for l := 1; l < 64; l++ {
		at[l] = at[l-1] + count[l-1]*32
	}
	// WriteAt may scribble on buf; nothing reads it afterwards, and the next
	// call overwrites what it uses.
	if cap(t.buf) < len(nodes)*32 {
		t.buf = make([]byte, len(nodes)*32*5/4)
	}
	buf := t.buf[:len(nodes)*32]
	var n [64]int // nodes placed per level
	for i := range nodes {
		nd := &nodes[i]
		if want := t.sizes[nd.level]/32 + int64(n[nd.level]); int64(nd.index) != want {
			return fmt.Errorf("ledger: tree level %d: node %d out of order (want %d)", nd.level, nd.index, want)
		}
		copy(buf[at[nd.level]+32*n[nd.level]:], nd.hash[:])
		n[nd.level]++
	}
	for l := range count {
		if count[l] == 0 {
			continue
		}
		if err := t.ensureLevel(l); err != nil {
			return err
		}
		b := buf[at[l] : at[l]+32*count[l] : at[l]+32*count[l]]
		if _, err := t.files[l].WriteAt(b, t.sizes[l]); err != nil {
			return fmt.Errorf("ledger: write tree level %d: %w", l, err)
		}
		t.sizes[l] += int64(len(b))
		t.dirty[l] = true
	}
	return nil
}

func (t *treeStore) ensureLevel(l int) error {
	for t.levels <= l {
		name := t.fs.PathJoin(t.dir, fmt.Sprintf("L%02d", t.levels))
		f, err := t.fs.Create(name, vfs.WriteCategoryUnspecified)
		if err != nil {
			return fmt.Errorf("ledger: create tree level: %w", err)
		}
		t.files[t.levels] = f
		t.sizes[t.levels] = 0
		t.levels++
	}
	return nil
}

// sync makes every level written since the last sync durable.
func (t *treeStore) sync() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	created := false
	for l := 0; l < t.levels; l++ {
		if !t.dirty[l] {
			continue
		}
		if err := t.files[l].SyncData(); err != nil {
			return fmt.Errorf("ledger: sync tree level %d: %w", l, err)
		}
		t.dirty[l] = false
		created = true
	}
	if created {
		return syncDir(t.fs, t.dir)
	}
	return nil
}

// node reads one stored node.
func (t *treeStore) node(level uint, index uint64) (ledgerfmt.Hash, error) {
	var h ledgerfmt.Hash
	t.mu.Lock()
	if int(level) >= t.levels || int64(index+1)*32 > t.sizes[level] {
		t.mu.Unlock()
		return h, fmt.Errorf("ledger: tree node %d/%d not stored", level, index)
	}
	f := t.files[level]
	t.mu.Unlock()
	if _, err := f.ReadAt(h[:], int64(index)*32); err != nil && !errors.Is(err, io.EOF) {
		return h, fmt.Errorf("ledger: read tree node %d/%d: %w", level, index, err)
	}
	return h, nil
}

// leaves reads the leaf hashes [first, first+n).
func (t *treeStore) leaves(first, n uint64) ([]ledgerfmt.Hash, error) {
	t.mu.Lock()
	if t.levels == 0 || int64(first+n)*32 > t.sizes[0] {
		t.mu.Unlock()
		return nil, fmt.Errorf("ledger: leaves [%d,%d) not stored", first, first+n)
	}
	f := t.files[0]
	t.mu.Unlock()
	buf := make([]byte, n*32)
	if _, err := f.ReadAt(buf, int64(first)*32); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("ledger: read leaves: %w", err)
	}
	out := make([]ledgerfmt.Hash, n)
	for i := range out {
		copy(out[i][:], buf[i*32:])
	}
	return out, nil
}

// loadRange rebuilds the compact range of a tree of n leaves from the stored
// nodes.
func (t *treeStore) loadRange(n uint64) (compactRange, error) {
	c := compactRange{size: n}
	for _, id := range rangeNodes(n) {
		h, err := t.node(id.Level, id.Index)
		if err != nil {
			return compactRange{}, err
		}
		c.hashes = append(c.hashes, h)
	}
	return c, nil
}

// rootAt computes the root of the tree of n leaves from the stored nodes.
func (t *treeStore) rootAt(n uint64) (ledgerfmt.Hash, error) {
	c, err := t.loadRange(n)
	if err != nil {
		return ledgerfmt.Hash{}, err
	}
	return c.root(), nil
}

func (t *treeStore) fetch(nodes proof.Nodes) ([][]byte, error) {
	hashes := make([][]byte, len(nodes.IDs))
	for i, id := range nodes.IDs {
		h, err := t.node(id.Level, id.Index)
		if err != nil {
			return nil, err
		}
		hashes[i] = h[:]
	}
	return nodes.Rehash(hashes, func(l, r []byte) []byte {
		h := hashChildren((*ledgerfmt.Hash)(l), (*ledgerfmt.Hash)(r))
		return h[:]
	})
}

// inclusion returns the RFC 6962 inclusion proof of leaf index in the tree of
// the given size.
func (t *treeStore) inclusion(index, size uint64) ([]ledgerfmt.Hash, error) {
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, err
	}
	p, err := t.fetch(nodes)
	return toHashes(p), err
}

// consistency returns the RFC 6962 consistency proof between two sizes.
func (t *treeStore) consistency(size1, size2 uint64) ([]ledgerfmt.Hash, error) {
	nodes, err := proof.Consistency(size1, size2)
	if err != nil {
		return nil, err
	}
	p, err := t.fetch(nodes)
	return toHashes(p), err
}

func toHashes(p [][]byte) []ledgerfmt.Hash {
	out := make([]ledgerfmt.Hash, len(p))
	for i := range p {
		copy(out[i][:], p[i])
	}
	return out
}

func (t *treeStore) close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	var first error
	for l := 0; l < t.levels; l++ {
		if err := t.files[l].Close(); err != nil && first == nil {
			first = err
		}
		t.files[l] = nil
	}
	t.levels = 0
	return first
}

type treeNode struct {
	level uint
	index uint64
	hash  ledgerfmt.Hash
}

// batchTree is the RFC 6962 tree over the leaves of one group commit. Level 0
// holds the leaves; an odd last node is carried up unchanged, which gives the
// same tree as RFC 6962's split at the largest power of two.
type batchTree struct {
	levels [][]ledgerfmt.Hash
}

func newBatchTree(leaves []ledgerfmt.Hash) *batchTree {
	t := &batchTree{levels: [][]ledgerfmt.Hash{leaves}}
	// The levels above the leaves share one allocation.
	var above int
	for n := len(leaves); n > 1; n = (n + 1) / 2 {
		above += (n + 1) / 2
	}
	slab := make([]ledgerfmt.Hash, above)
	cur := leaves
	for len(cur) > 1 {
		next := slab[: (len(cur)+1)/2 : (len(cur)+1)/2]
		slab = slab[len(next):]
		for i := 0; i+1 < len(cur); i += 2 {
			next[i/2] = hashChildren(&cur[i], &cur[i+1])
		}
		if len(cur)%2 == 1 {
			next[len(next)-1] = cur[len(cur)-1]
		}
		t.levels = append(t.levels, next)
		cur = next
	}
	return t
}

func (t *batchTree) root() ledgerfmt.Hash { return t.levels[len(t.levels)-1][0] }

// path returns the audit path of leaf i, bottom-up.
func (t *batchTree) path(i int) []ledgerfmt.Hash {
	if len(t.levels) == 1 {
		return nil
	}
	return t.appendPath(make([]ledgerfmt.Hash, 0, len(t.levels)-1), i)
}

// appendPath appends the audit path of leaf i to dst.
func (t *batchTree) appendPath(dst []ledgerfmt.Hash, i int) []ledgerfmt.Hash {
	for _, lv := range t.levels[:len(t.levels)-1] {
		if s := i ^ 1; s < len(lv) {
			dst = append(dst, lv[s])
		}
		i >>= 1
	}
	return dst
}
