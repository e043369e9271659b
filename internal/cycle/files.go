package cycle

import (
	"os"
	"sync"
)

// fileCache keeps the event and index files of at most max tenants open,
// closing the least recently used pair when another tenant's files are
// needed, so that the number of open files does not grow with the number of
// tenants. A pair in use (acquired and not yet released) is never closed
// under its user: an evicted pair leaves the cache at once and is closed by
// its last release, so the cache may briefly hold more pairs than max, by
// the number of readers of evicted pairs.
type fileCache struct {
	mu       sync.Mutex
	max      int // pairs
	n        int // pairs in the cache
	readOnly bool
	// LRU list of the cached pairs, most recently used at head.
	head, tail *handle
}

// handle is one tenant's open event and index files.
type handle struct {
	tf      *tenantFiles
	ev, idx *os.File
	// refs counts the holders: each acquire, plus one while in the cache.
	refs       int
	prev, next *handle
}

// acquire returns tf's open files, opening them (and creating them unless
// the cache is read-only) if needed. Call release when done.
func (c *fileCache) acquire(tf *tenantFiles) (*handle, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if h := tf.h; h != nil {
		h.refs++
		c.unlink(h)
		c.pushFront(h)
		return h, nil
	}
	flag := os.O_RDWR | os.O_CREATE
	if c.readOnly {
		flag = os.O_RDONLY
	}
	ev, err := os.OpenFile(tf.base+".ndjson", flag, 0o644)
	if err != nil {
		return nil, err
	}
	idx, err := os.OpenFile(tf.base+".idx", flag, 0o644)
	if err != nil {
		ev.Close()
		return nil, err
	}
	h := &handle{tf: tf, ev: ev, idx: idx, refs: 2}
	tf.h = h
	c.pushFront(h)
	c.n++
	for c.n > c.max && c.tail != h {
		c.evict(c.tail)
	}
	return h, nil
}

// release gives back a handle acquire returned.
func (c *fileCache) release(h *handle) {
	c.mu.Lock()
	c.unref(h)
	c.mu.Unlock()
}

func (c *fileCache) evict(h *handle) {
	c.unlink(h)
	h.tf.h = nil
	c.n--
	c.unref(h)
}

func (c *fileCache) unref(h *handle) {
	if h.refs--; h.refs == 0 {
		// Nothing is lost by closing without a sync: a snapshot syncs the
		// whole file system the store lives on (see store.sync).
		h.ev.Close()
		h.idx.Close()
	}
}

func (c *fileCache) pushFront(h *handle) {
	h.prev, h.next = nil, c.head
	if c.head != nil {
		c.head.prev = h
	} else {
		c.tail = h
	}
	c.head = h
}

func (c *fileCache) unlink(h *handle) {
	if h.prev != nil {
		h.prev.next = h.next
	} else {
		c.head = h.next
	}
	if h.next != nil {
		h.next.prev = h.prev
	} else {
		c.tail = h.prev
	}
	h.prev, h.next = nil, nil
}

// open returns the number of pairs the cache holds.
func (c *fileCache) open() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// closeAll closes every cached pair (pairs still held close on release).
func (c *fileCache) closeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.tail != nil {
		c.evict(c.tail)
	}
}
