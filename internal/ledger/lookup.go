package ledger

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/bits"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/cespare/xxhash/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
)

// The lookup indexes map a key to the sequence numbers of the records that
// hold it. There are three kinds, each its own set of files:
//
//	id      (tenant, id)    the span stored under an id; idempotency
//	thing   (tenant, this)  the spans of one thing, in order
//	tenant  tenant          the spans of one tenant, in order
//
// An entry is 16 bytes: the key's 64-bit keyed hash and the record's seq.
// The hash is XXH64 of a secret derived from the ledger's signing key (so
// outsiders cannot aim collisions at it, and a rebuilt index hashes the
// same), the kind, the first string's length and the strings. Entries
// say only "maybe": every hit is confirmed by reading the record and
// comparing its tenant and id (or this), so a collision costs a read, never
// a wrong answer.
//
// Recent entries live in memory, in a delta: entries in seq order, and an
// open-addressing table from hash to the newest entry with that hash, each
// entry linking to the previous one with the same hash (no Go pointers).
// When a delta holds Config.IndexMemTableBytes worth of spans it is frozen
// (still searchable) and a background goroutine sorts it by (hash, seq) and
// writes it as one immutable run file per kind, <kind>-NNNNNNNN.run:
//
//	entries   count × 16 bytes: hash (8, big-endian), seq (8), sorted
//	fence     one entry per block of 256 entries: the block's first
//	crcs      one CRC-32C per block of entries (4 bytes, big-endian)
//	footer    48 bytes: "LLIXRUN2", kind (8), count (8), from (8), to (8),
//	          CRC-32C of the fence, the crcs and the footer before it (4),
//	          zero (4)
//
// A run holds the entries of the records [from, to), so the runs of a kind
// are ordered by seq; the fence and the block CRCs (20 bytes per 4 KiB
// block) are kept in memory and a lookup reads one 4 KiB block per run,
// which it checks against its CRC before believing it: a damaged block is
// an error, never a missing entry. Runs of the first format, without block
// CRCs, are not read: the index is rebuilt from the segments. Runs merge tiered: four
// adjacent runs of the same size class (half the bit length of their entry
// count, about log4) become one, whose class is higher; so each entry is
// rewritten once per class it climbs, O(log n) times, and there are at most
// three runs per class, O(log n) runs. The goroutine that writes new runs
// merges them too, and writes a waiting delta first.

// entry is one lookup index entry.
type entry struct{ h, seq uint64 }

func cmpEntry(a, b entry) int {
	if c := cmp.Compare(a.h, b.h); c != 0 {
		return c
	}
	return cmp.Compare(a.seq, b.seq)
}

// Lookup kinds.
const (
	kindID = iota
	kindThing
	kindTenant
	numKinds
)

func kindName(k int) string {
	switch k {
	case kindID:
		return "id"
	case kindThing:
		return "thing"
	case kindTenant:
		return "tenant"
	}
	return "kind" + strconv.Itoa(k)
}

func parseKind(s string) (int, bool) {
	for k := range numKinds {
		if kindName(k) == s {
			return k, true
		}
	}
	return 0, false
}

// keyHasher computes the keyed hashes of the lookup keys.
type keyHasher struct{ seed uint64 }

// newKeyHasher derives the hash seed from the signing key: secret, and the
// same for an index rebuilt from the segments.
func newKeyHasher(s *ledgerfmt.Signer) keyHasher {
	secret := s.DeriveSecret("logline ledger index seed v1\n")
	return keyHasher{seed: binary.LittleEndian.Uint64(secret[:])}
}

// sum hashes the seed (8 bytes, little-endian), the kind (1), three zero
// bytes, len(a) (4, little-endian), a and b with XXH64.
func (k keyHasher) sum(kind int, a, b string) uint64 {
	const hdr = 16
	if n := hdr + len(a) + len(b); n <= 128 {
		var buf [128]byte
		binary.LittleEndian.PutUint64(buf[:], k.seed)
		buf[8] = byte(kind)
		binary.LittleEndian.PutUint32(buf[12:], uint32(len(a)))
		copy(buf[hdr:], a)
		copy(buf[hdr+len(a):], b)
		return xxhash.Sum64(buf[:n])
	}
	var h [hdr]byte
	binary.LittleEndian.PutUint64(h[:], k.seed)
	h[8] = byte(kind)
	binary.LittleEndian.PutUint32(h[12:], uint32(len(a)))
	var d xxhash.Digest
	d.Reset()
	d.Write(h[:])
	d.WriteString(a)
	d.WriteString(b)
	return d.Sum64()
}

func (k keyHasher) id(tenant, id string) uint64      { return k.sum(kindID, tenant, id) }
func (k keyHasher) thing(tenant, this string) uint64 { return k.sum(kindThing, tenant, this) }
func (k keyHasher) tenant(tenant string) uint64      { return k.sum(kindTenant, tenant, "") }

// delta is the in-memory part of one lookup kind.
type delta struct {
	ents  []entry  // in seq order
	prev  []uint32 // 1 + index of the previous entry with the same hash; 0 none
	table []uint32 // 1 + index of the newest entry of a hash; 0 empty
}

func newDelta(capacity int) *delta {
	n := 64
	for n < 2*capacity {
		n <<= 1
	}
	return &delta{ents: make([]entry, 0, capacity), prev: make([]uint32, 0, capacity), table: make([]uint32, n)}
}

func (d *delta) reset() {
	clear(d.table)
	d.ents = d.ents[:0]
	d.prev = d.prev[:0]
}

func (d *delta) add(h, seq uint64) {
	if 2*(len(d.ents)+1) > len(d.table) {
		d.grow()
	}
	i := uint32(len(d.ents)) + 1
	d.ents = append(d.ents, entry{h, seq})
	mask := uint64(len(d.table) - 1)
	for s := h & mask; ; s = (s + 1) & mask {
		j := d.table[s]
		if j == 0 {
			d.table[s] = i
			d.prev = append(d.prev, 0)
			return
		}
		if d.ents[j-1].h == h {
			d.table[s] = i
			d.prev = append(d.prev, j)
			return
		}
	}
}

func (d *delta) grow() {
	old := d.table
	d.table = make([]uint32, 2*len(old))
	mask := uint64(len(d.table) - 1)
	for _, j := range old {
		if j == 0 {
			continue
		}
		s := d.ents[j-1].h & mask
		for d.table[s] != 0 {
			s = (s + 1) & mask
		}
		d.table[s] = j
	}
}

func (d *delta) head(h uint64) uint32 {
	mask := uint64(len(d.table) - 1)
	for s := h & mask; ; s = (s + 1) & mask {
		j := d.table[s]
		if j == 0 || d.ents[j-1].h == h {
			return j
		}
	}
}

// find appends the seqs ≥ from of the entries with hash h, in increasing
// order, at most limit of them (0: all).
func (d *delta) find(h, from uint64, limit int, out []uint64) []uint64 {
	start := len(out)
	for j := d.head(h); j != 0; j = d.prev[j-1] {
		s := d.ents[j-1].seq
		if s < from {
			break
		}
		out = append(out, s)
	}
	slices.Reverse(out[start:])
	if limit > 0 && len(out)-start > limit {
		out = out[:start+limit]
	}
	return out
}

// sorted returns a copy of the entries sorted by (hash, seq), in out's
// memory: a counting sort on the top 16 bits of the hash, then each bucket
// sorted.
func (d *delta) sorted(out []entry) []entry {
	n := len(d.ents)
	out = slices.Grow(out[:0], n)[:n]
	if n < 4096 {
		copy(out, d.ents)
		slices.SortFunc(out, cmpEntry)
		return out
	}
	var counts [1<<16 + 1]int32
	for _, e := range d.ents {
		counts[e.h>>48+1]++
	}
	for i := 1; i < len(counts); i++ {
		counts[i] += counts[i-1]
	}
	starts := counts
	for _, e := range d.ents {
		b := e.h >> 48
		out[starts[b]] = e
		starts[b]++
	}
	for b := range 1 << 16 {
		bucket := out[counts[b]:counts[b+1]]
		if len(bucket) > 1 {
			// Entries of one bucket arrive in seq order; equal hashes stay so.
			slices.SortStableFunc(bucket, func(a, b entry) int { return cmp.Compare(a.h, b.h) })
		}
	}
	return out
}

// Run files.
const (
	runBlock      = 256 // entries per block: one 4 KiB read
	runEntrySize  = 16
	runFooterSize = 48
	runMagic      = "LLIXRUN2"
)

func runName(kind int, num uint64) string { return fmt.Sprintf("%s-%08d.run", kindName(kind), num) }

func parseRunName(name string) (int, uint64, bool) {
	base, ok := strings.CutSuffix(name, ".run")
	if !ok {
		return 0, 0, false
	}
	k, n, ok := strings.Cut(base, "-")
	if !ok {
		return 0, 0, false
	}
	kind, ok := parseKind(k)
	if !ok {
		return 0, 0, false
	}
	num, err := strconv.ParseUint(n, 10, 64)
	if err != nil || len(n) != 8 {
		return 0, 0, false
	}
	return kind, num, true
}

// run is one immutable sorted run of a lookup kind.
type run struct {
	kind     int
	num      uint64
	f        vfs.File
	count    uint64
	from, to uint64 // the records it indexes
	fence    []entry
	crcs     []uint32 // of each block's entries
}

// checkBlock checks block b's entries (blk) against their CRC.
func (r *run) checkBlock(b uint64, blk []byte) error {
	if crc32.Checksum(blk, castagnoli) != r.crcs[b] {
		return fmt.Errorf("%w: index run %s: block %d (bytes %d-%d) fails its checksum", ErrCorrupt, runName(r.kind, r.num), b, b*runBlock*runEntrySize, b*runBlock*runEntrySize+uint64(len(blk)))
	}
	return nil
}

// checkBlocks checks the entries buf read from entry first on, which
// starts a block, block by block.
func (r *run) checkBlocks(first uint64, buf []byte) error {
	const blockBytes = runBlock * runEntrySize
	for i := 0; i < len(buf); i += blockBytes {
		if err := r.checkBlock(first/runBlock+uint64(i/blockBytes), buf[i:min(i+blockBytes, len(buf))]); err != nil {
			return err
		}
	}
	return nil
}

func (r *run) tier() int { return bits.Len64(r.count) / 2 }

func decodeEntry(b []byte) entry {
	return entry{h: binary.BigEndian.Uint64(b), seq: binary.BigEndian.Uint64(b[8:])}
}

// openRun opens a run file and reads its fence.
func openRun(fs vfs.FS, dir string, kind int, num uint64) (*run, error) {
	name := runName(kind, num)
	f, err := fs.Open(fs.PathJoin(dir, name), vfs.RandomReadsOption)
	if err != nil {
		return nil, err
	}
	r, err := readRunMeta(f, kind, num)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("run %s: %w", name, err)
	}
	return r, nil
}

func readRunMeta(f vfs.File, kind int, num uint64) (*run, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
	if size < runFooterSize {
		return nil, errors.New("too short")
	}
	var foot [runFooterSize]byte
	if _, err := f.ReadAt(foot[:], size-runFooterSize); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if string(foot[:8]) != runMagic || binary.BigEndian.Uint64(foot[8:]) != uint64(kind) {
		return nil, errors.New("bad footer")
	}
	r := &run{kind: kind, num: num, f: f,
		count: binary.BigEndian.Uint64(foot[16:]),
		from:  binary.BigEndian.Uint64(foot[24:]),
		to:    binary.BigEndian.Uint64(foot[32:]),
	}
	nblocks := (r.count + runBlock - 1) / runBlock
	if r.count > uint64(size) || uint64(size) != r.count*runEntrySize+nblocks*(runEntrySize+4)+runFooterSize || r.from > r.to {
		return nil, errors.New("size does not match the footer")
	}
	meta := make([]byte, nblocks*(runEntrySize+4))
	if _, err := f.ReadAt(meta, int64(r.count*runEntrySize)); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	c := crc32.Update(crc32.Update(0, castagnoli, meta), castagnoli, foot[:40])
	if c != binary.BigEndian.Uint32(foot[40:]) {
		return nil, errors.New("fence checksum mismatch")
	}
	fence, crcs := meta[:nblocks*runEntrySize], meta[nblocks*runEntrySize:]
	r.fence = make([]entry, nblocks)
	r.crcs = make([]uint32, nblocks)
	for i := range r.fence {
		r.fence[i] = decodeEntry(fence[i*runEntrySize:])
		r.crcs[i] = binary.BigEndian.Uint32(crcs[i*4:])
	}
	// The fence must be the first entry of each block, and the blocks in
	// order: the entries themselves are checked when read.
	for i := 1; i < len(r.fence); i++ {
		if cmpEntry(r.fence[i-1], r.fence[i]) >= 0 {
			return nil, errors.New("fence out of order")
		}
	}
	return r, nil
}

// find appends the seqs ≥ from of the entries with hash h, in increasing
// order, at most limit of them (0: all). buf is scratch space of one block.
func (r *run) find(h, from uint64, limit int, out []uint64, buf *[runBlock * runEntrySize]byte) ([]uint64, error) {
	if r.to <= from || r.count == 0 {
		return out, nil
	}
	key := entry{h, from}
	b, _ := slices.BinarySearchFunc(r.fence, key, cmpEntry)
	// b is the first block starting at or after key; the key's entries may
	// begin in the block before.
	if b > 0 && (b == len(r.fence) || cmpEntry(r.fence[b], key) > 0) {
		b--
	}
	n := 0
	for first := uint64(b) * runBlock; first < r.count; first += runBlock {
		cnt := min(runBlock, r.count-first)
		blk := buf[:cnt*runEntrySize]
		if _, err := r.f.ReadAt(blk, int64(first*runEntrySize)); err != nil && !errors.Is(err, io.EOF) {
			return out, fmt.Errorf("ledger: read index run %s: %w", runName(r.kind, r.num), err)
		}
		if err := r.checkBlock(first/runBlock, blk); err != nil {
			return out, err
		}
		// The first entry at or after key.
		i0 := sort.Search(int(cnt), func(i int) bool { return cmpEntry(decodeEntry(blk[i*runEntrySize:]), key) >= 0 })
		for i := i0 * runEntrySize; i < len(blk); i += runEntrySize {
			e := decodeEntry(blk[i:])
			if e.h > h {
				return out, nil
			}
			out = append(out, e.seq)
			if n++; limit > 0 && n >= limit {
				return out, nil
			}
		}
	}
	return out, nil
}

// each calls fn with every entry of the run, in order, reading big chunks.
func (r *run) each(fn func(e entry)) error {
	const chunk = 1 << 16 // entries
	buf := make([]byte, chunk*runEntrySize)
	for first := uint64(0); first < r.count; first += chunk {
		b := buf[:min(chunk, r.count-first)*runEntrySize]
		if _, err := r.f.ReadAt(b, int64(first*runEntrySize)); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("ledger: read index run %s: %w", runName(r.kind, r.num), err)
		}
		if err := r.checkBlocks(first, b); err != nil {
			return err
		}
		for i := 0; i < len(b); i += runEntrySize {
			fn(decodeEntry(b[i:]))
		}
	}
	return nil
}

// runWriter writes a run file sequentially.
type runWriter struct {
	f     vfs.File
	name  string
	off   int64
	buf   []byte
	count uint64
	fence []entry
	crcs  []uint32 // of the blocks completed so far
}

const runWriteChunk = 256 << 10 // a whole number of blocks

func createRun(fs vfs.FS, dir string, kind int, num uint64) (*runWriter, error) {
	name := fs.PathJoin(dir, runName(kind, num))
	f, err := fs.Create(name, vfs.WriteCategoryUnspecified)
	if err != nil {
		return nil, fmt.Errorf("ledger: create index run: %w", err)
	}
	return &runWriter{f: f, name: name, buf: make([]byte, 0, runWriteChunk)}, nil
}

func (w *runWriter) add(e entry) error {
	if w.count%runBlock == 0 {
		w.fence = append(w.fence, e)
	}
	w.buf = binary.BigEndian.AppendUint64(w.buf, e.h)
	w.buf = binary.BigEndian.AppendUint64(w.buf, e.seq)
	w.count++
	if w.count%runBlock == 0 {
		w.sumBlock()
	}
	if len(w.buf) >= runWriteChunk {
		return w.flush()
	}
	return nil
}

// sumBlock records the CRC of the block the last entry ends. Blocks never
// straddle a flush: runWriteChunk is a whole number of blocks.
func (w *runWriter) sumBlock() {
	n := int(w.count-uint64(len(w.crcs))*runBlock) * runEntrySize
	w.crcs = append(w.crcs, crc32.Checksum(w.buf[len(w.buf)-n:], castagnoli))
}

func (w *runWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	// WriteAt may scribble on the buffer, so nothing reads it afterwards;
	// the next chunk overwrites it from the start.
	n, err := w.f.WriteAt(w.buf, w.off)
	w.off += int64(n)
	w.buf = w.buf[:0]
	if err != nil {
		return fmt.Errorf("ledger: write index run: %w", err)
	}
	return nil
}

// finish writes the fence and footer, syncs the file and returns the run,
// open for reading.
func (w *runWriter) finish(kind int, num, from, to uint64) (*run, error) {
	if w.count%runBlock != 0 {
		w.sumBlock()
	}
	if err := w.flush(); err != nil {
		return nil, err
	}
	tail := make([]byte, 0, len(w.fence)*(runEntrySize+4)+runFooterSize)
	for _, e := range w.fence {
		tail = binary.BigEndian.AppendUint64(tail, e.h)
		tail = binary.BigEndian.AppendUint64(tail, e.seq)
	}
	for _, c := range w.crcs {
		tail = binary.BigEndian.AppendUint32(tail, c)
	}
	tail = append(tail, runMagic...)
	tail = binary.BigEndian.AppendUint64(tail, uint64(kind))
	tail = binary.BigEndian.AppendUint64(tail, w.count)
	tail = binary.BigEndian.AppendUint64(tail, from)
	tail = binary.BigEndian.AppendUint64(tail, to)
	c := crc32.Update(0, castagnoli, tail)
	tail = binary.BigEndian.AppendUint32(tail, c)
	tail = append(tail, 0, 0, 0, 0)
	if _, err := w.f.WriteAt(tail, w.off); err != nil {
		return nil, fmt.Errorf("ledger: write index run: %w", err)
	}
	if err := w.f.SyncData(); err != nil {
		return nil, fmt.Errorf("ledger: sync index run: %w", err)
	}
	return &run{kind: kind, num: num, f: w.f, count: w.count, from: from, to: to, fence: w.fence, crcs: w.crcs}, nil
}

func (w *runWriter) abandon(fs vfs.FS) {
	w.f.Close()
	fs.Remove(w.name)
}

// runReader reads a run's entries sequentially.
type runReader struct {
	r    *run
	next uint64 // index of the first entry not yet read into buf
	buf  []byte
	p    int
}

func (rr *runReader) peek() (entry, bool, error) {
	if rr.p >= len(rr.buf) {
		if rr.next >= rr.r.count {
			return entry{}, false, nil
		}
		const chunk = 1 << 14
		n := min(chunk, rr.r.count-rr.next)
		if cap(rr.buf) < int(n*runEntrySize) {
			rr.buf = make([]byte, chunk*runEntrySize)
		}
		rr.buf = rr.buf[:n*runEntrySize]
		if _, err := rr.r.f.ReadAt(rr.buf, int64(rr.next*runEntrySize)); err != nil && !errors.Is(err, io.EOF) {
			return entry{}, false, fmt.Errorf("ledger: read index run %s: %w", runName(rr.r.kind, rr.r.num), err)
		}
		if err := rr.r.checkBlocks(rr.next, rr.buf); err != nil {
			return entry{}, false, err
		}
		rr.next += n
		rr.p = 0
	}
	return decodeEntry(rr.buf[rr.p:]), true, nil
}

// spanKeys are the members of a span body the lookups are keyed on.
type spanKeys struct {
	Tenant string `json:"tenant"`
	ID     string `json:"id"`
	This   string `json:"this"`
}
