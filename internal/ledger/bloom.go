package ledger

import "math/bits"

// dedupFilter answers "was this (tenant, id) ever stored?" without I/O for
// the ids that were not: a blocked Bloom filter over the 64-bit keyed hashes
// of every stored and pending (tenant, id). Each hash selects one 64-byte
// block (one cache line) and sets one bit in each of its eight words, so a
// test or an insert touches one cache line.
//
// Its size is fixed (Config.DedupFilterBytes, default 64 MiB), so memory
// stays flat as the ledger grows and the false-positive rate rises instead.
// With n ids and m bytes, λ = 64n/m ids share a block and the rate is about
// (1 - (63/64)^λ)^8: for 64 MiB, 2e-7 at 10 million ids, 1e-4 at 25 million,
// 0.8% at 50 million, 15% at 100 million. A false positive costs a lookup in
// the index (a few page-cache reads), never a wrong answer.
//
// The filter is rebuilt at open from the id runs and the in-memory part of
// the index (a sequential read of 16 bytes per span). It is owned by the
// committer goroutine: no locks, no atomics.
type dedupFilter struct {
	words   []uint64
	nblocks uint64
}

// minDedupFilterBytes keeps a tiny configured filter useful.
const minDedupFilterBytes = 4 << 10

func newDedupFilter(size int) *dedupFilter {
	size = max(size, minDedupFilterBytes)
	n := uint64(size / 64)
	f := &dedupFilter{words: make([]uint64, n*8), nblocks: n}
	// Touch every page now: the operating system hands the memory out
	// lazily, and a new page faulting in on an append's hot path (adds land
	// on random pages) costs more than the add.
	for i := 0; i < len(f.words); i += 512 {
		f.words[i] = 0
	}
	return f
}

// locate returns the block of h and the bit pattern: word i gets bit
// (x >> 6i) & 63. The block comes from the high half of h·nblocks, the bits
// from a remix of h, so the two are independent.
func (f *dedupFilter) locate(h uint64) (uint64, uint64) {
	hi, _ := bits.Mul64(h, f.nblocks)
	x := bits.RotateLeft64(h, 29) * 0x9e3779b97f4a7c15
	return hi * 8, x >> 16
}

func (f *dedupFilter) add(h uint64) {
	at, x := f.locate(h)
	w := f.words[at : at+8 : at+8]
	w[0] |= 1 << (x & 63)
	w[1] |= 1 << ((x >> 6) & 63)
	w[2] |= 1 << ((x >> 12) & 63)
	w[3] |= 1 << ((x >> 18) & 63)
	w[4] |= 1 << ((x >> 24) & 63)
	w[5] |= 1 << ((x >> 30) & 63)
	w[6] |= 1 << ((x >> 36) & 63)
	w[7] |= 1 << ((x >> 42) & 63)
}

// has reports whether h may have been added. False means it was not.
func (f *dedupFilter) has(h uint64) bool {
	at, x := f.locate(h)
	w := f.words[at : at+8 : at+8]
	return w[0]&(1<<(x&63)) != 0 &&
		w[1]&(1<<((x>>6)&63)) != 0 &&
		w[2]&(1<<((x>>12)&63)) != 0 &&
		w[3]&(1<<((x>>18)&63)) != 0 &&
		w[4]&(1<<((x>>24)&63)) != 0 &&
		w[5]&(1<<((x>>30)&63)) != 0 &&
		w[6]&(1<<((x>>36)&63)) != 0 &&
		w[7]&(1<<((x>>42)&63)) != 0
}
