package derive

// The open trajectories of one tenant live in a table built for a small,
// pointer-light footprint with a million or more entries:
//
//   - slots are fixed-size traj structs (120 bytes each) in chunks of
//     chunkSlots (the first chunk grows like a slice, so that a tenant with
//     few trajectories holds little); growing never copies the table nor
//     leaves a slice's spare capacity behind; a closed trajectory's slot goes
//     on a free list threaded through the slots and is reused, so the table
//     never holds holes for long;
//   - index maps the trajectory key to its slot (map[string]uint32); the key
//     string is shared by the map and the slot, and when key_fields is a
//     single field the key is that field's value itself (no copy);
//   - two intrusive doubly-linked lists thread the slots with uint32 links:
//     the LRU list in order of last activity and the open list in order of
//     opening. Because a tenant's clock never decreases, each list is sorted
//     by its own deadline component (last+close_timeout, opened+window), so
//     finding the expired trajectories costs only the ones that expire; no
//     heap, no per-entry pointers, O(1) work per linked span.
//
// Nothing observable depends on slot numbers or map order: expired
// trajectories are closed in (deadline, trajectory id, key) order and
// snapshots list trajectories sorted by (id, key).

const noSlot = ^uint32(0)

// Lists threaded through the slots.
const (
	lruList  = 0 // by last activity (lastClock)
	openList = 1 // by opening (openClock)
)

// markBit in traj.flags marks a slot already collected for expiry.
const markBit = 0x80

type traj struct {
	id         TrajectoryID // 15 bytes
	flags      uint8        // low bits: len(confirmers) in use; markBit
	key        string
	openClock  int64 // tenant clock when it opened
	lastClock  int64 // tenant clock when its last span was linked
	minWhen    int64 // earliest "when" of its spans
	maxWhen    int64 // latest "when" of its spans
	count      uint32
	confirmed  uint32
	link       [2][2]uint32 // [list][0 prev, 1 next]
	confirmers [MaxConfirmerSaturation]uint64
}

func (s *traj) nconf() int { return int(s.flags &^ markBit) }

// chunkSlots is the number of slots of a full chunk: 512 x 120 bytes is 15
// pages.
const (
	chunkBits  = 9
	chunkSlots = 1 << chunkBits
)

type trajTable struct {
	index      map[string]uint32
	chunks     [][]traj // slot i is chunks[i>>chunkBits][i&(chunkSlots-1)]
	used       uint32   // slots handed out (free ones included)
	free       uint32
	head, tail [2]uint32
	n          int
}

// at returns slot i.
func (t *trajTable) at(i uint32) *traj { return &t.chunks[i>>chunkBits][i&(chunkSlots-1)] }

// grow adds a slot and returns its number.
func (t *trajTable) grow() uint32 {
	i := t.used
	c := int(i >> chunkBits)
	if c == len(t.chunks) {
		var chunk []traj
		if c > 0 {
			chunk = make([]traj, 0, chunkSlots)
		}
		t.chunks = append(t.chunks, chunk)
	}
	t.chunks[c] = append(t.chunks[c], traj{})
	t.used++
	return i
}

func (t *trajTable) init() {
	if t.index == nil {
		t.index = make(map[string]uint32)
		t.free = noSlot
		t.head = [2]uint32{noSlot, noSlot}
		t.tail = [2]uint32{noSlot, noSlot}
	}
}

func (t *trajTable) alloc() uint32 {
	if i := t.free; i != noSlot {
		s := t.at(i)
		t.free = s.link[lruList][1]
		*s = traj{}
		return i
	}
	return t.grow()
}

// remove unlinks slot i from both lists and the index and frees it.
func (t *trajTable) remove(i uint32) {
	t.unlink(lruList, i)
	t.unlink(openList, i)
	s := t.at(i)
	delete(t.index, s.key)
	*s = traj{}
	s.link[lruList][1] = t.free
	t.free = i
	t.n--
}

func (t *trajTable) pushBack(l int, i uint32) {
	s := t.at(i)
	s.link[l] = [2]uint32{t.tail[l], noSlot}
	if t.tail[l] != noSlot {
		t.at(t.tail[l]).link[l][1] = i
	} else {
		t.head[l] = i
	}
	t.tail[l] = i
}

func (t *trajTable) unlink(l int, i uint32) {
	s := t.at(i)
	prev, next := s.link[l][0], s.link[l][1]
	if prev != noSlot {
		t.at(prev).link[l][1] = next
	} else {
		t.head[l] = next
	}
	if next != noSlot {
		t.at(next).link[l][0] = prev
	} else {
		t.tail[l] = prev
	}
	s.link[l] = [2]uint32{noSlot, noSlot}
}

func (t *trajTable) moveToBack(l int, i uint32) {
	if t.tail[l] == i {
		return
	}
	t.unlink(l, i)
	t.pushBack(l, i)
}
