package ledger

// sealer hashes the framed lines of the open batch ahead of the syncer, on
// another core than the committer's. It reads lines the committer framed
// before it looked (an older backing array still holds them if the buffer
// grew since), and works under the batch's sealMu, a chunk at a time, so
// that once the syncer has taken the batch it touches neither its lines
// nor its leaves.
type sealer struct {
	l    *Ledger
	wake chan struct{} // committer -> sealer: lines to hash; closed when the committer stops
}

// sealChunk is how many framed lines the committer lets accumulate before
// it wakes the sealer, and how many the sealer hashes per lock.
const sealChunk = 32

// nudge wakes the sealer unless it is already due to wake.
func (s *sealer) nudge() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *sealer) run() {
	defer s.l.wg.Done()
	slot := &s.l.slot
	var enc encoder
	for range s.wake {
		slot.mu.Lock()
		b := slot.open
		recs, buf, leaves := b.recs, b.buf, b.leaves
		slot.mu.Unlock()
		n := min(len(recs), len(leaves))
		for {
			b.sealMu.Lock()
			if b.taken || b.hashed >= n {
				b.sealMu.Unlock()
				break
			}
			end := min(b.hashed+sealChunk, n)
			for i := b.hashed; i < end; i++ {
				r := &recs[i]
				leaves[i] = enc.leafOf(buf[r.off : r.off+r.n])
			}
			b.hashed = end
			b.sealMu.Unlock()
		}
	}
}
