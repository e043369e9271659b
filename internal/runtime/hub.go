package runtime

import "sync"

// hub delivers ws.send payloads to the live subscribers of a tenant's
// channel. Delivery is best effort and live: a subscriber too slow to
// keep up (its buffer full) is dropped, and nothing is kept for later.
type hub struct {
	mu   sync.Mutex
	subs map[string]map[*Subscription]bool // tenant + "\x00" + channel
}

// Subscription is one subscriber of a channel.
type Subscription struct {
	C   chan []byte // payloads, in order; closed when dropped
	key string
}

// subBuffer is how many payloads a subscriber may fall behind.
const subBuffer = 1024

func newHub() *hub { return &hub{subs: map[string]map[*Subscription]bool{}} }

// Subscribe subscribes to tenant's channel; call Unsubscribe when done.
func (rt *Runtime) Subscribe(tenant, channel string) *Subscription {
	h := rt.hub
	s := &Subscription{C: make(chan []byte, subBuffer), key: tenant + "\x00" + channel}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.subs[s.key] == nil {
		h.subs[s.key] = map[*Subscription]bool{}
	}
	h.subs[s.key][s] = true
	return s
}

// Unsubscribe ends s (idempotent).
func (rt *Runtime) Unsubscribe(s *Subscription) { rt.hub.drop(s) }

func (h *hub) drop(s *Subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if m := h.subs[s.key]; m[s] {
		delete(m, s)
		close(s.C)
		if len(m) == 0 {
			delete(h.subs, s.key)
		}
	}
}

func (h *hub) publish(tenant, channel string, payload []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs[tenant+"\x00"+channel] {
		select {
		case s.C <- payload:
		default: // too slow: dropped
			delete(h.subs[s.key], s)
			close(s.C)
		}
	}
}

func (h *hub) closeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for k, m := range h.subs {
		for s := range m {
			close(s.C)
		}
		delete(h.subs, k)
	}
}
