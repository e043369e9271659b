package history

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
)

// sim runs clients against a simulated sequential ledger, recording a
// correct history: a request is applied (or refused) by the server at one
// moment between its invocation and whenever it is handled, a client is
// acknowledged only after its request was applied, and a client whose
// request is still in flight gives up with Info (the request may still be
// applied later). After Info a client may retry the same span.
type sim struct {
	rng *rand.Rand
	h   *History
	// next is the next seq; hole, when reorder is set, is a seq kept free
	// for the injected reordering (see reorder).
	next    uint64
	hole    uint64
	reorder bool
	// wrongReceipt: the first acknowledgement gets a receipt with another
	// leaf.
	wrongReceipt bool
	injected     bool
	recs         []Record
	stored       map[key]int // index in recs
	inflight     []*request
	// acked counts the acknowledgements per tenant so far.
	acked map[string]int
}

type request struct {
	op          *Op
	k           key
	body        []byte
	handled     bool
	applied     bool
	seq         uint64
	ackedBefore bool // the tenant had an acknowledgement when it was invoked
}

type simClient struct {
	name  string
	cur   *request
	retry *request // the last indeterminate request, for a retry
}

var simTenants = []string{"t_a", "t_b", "t_c"}

func newSim(seed uint64) *sim {
	return &sim{rng: rand.New(rand.NewPCG(seed, 1)), h: &History{}, stored: map[key]int{}, acked: map[string]int{}}
}

func (s *sim) run(clients, steps int) {
	if s.reorder {
		s.hole, s.next = 0, 1
	}
	cs := make([]*simClient, clients)
	for i := range cs {
		cs[i] = &simClient{name: fmt.Sprintf("c%d", i)}
	}
	for n := range steps {
		switch s.rng.IntN(3) {
		case 0: // a client invokes or completes
			c := cs[s.rng.IntN(len(cs))]
			if c.cur == nil {
				s.invoke(c, n)
			} else {
				s.complete(c)
			}
		default: // the server handles a request
			if len(s.inflight) > 0 {
				i := s.rng.IntN(len(s.inflight))
				r := s.inflight[i]
				s.inflight = slices.Delete(s.inflight, i, i+1)
				s.handle(r)
			}
		}
	}
}

func (s *sim) invoke(c *simClient, n int) {
	r := &request{}
	if c.retry != nil && s.rng.IntN(2) == 0 {
		r.k, r.body = c.retry.k, c.retry.body
	} else {
		r.k = key{simTenants[s.rng.IntN(len(simTenants))], fmt.Sprintf("%s_%d", c.name, n)}
		r.body = body(r.k.tenant, r.k.spanID)
	}
	r.ackedBefore = s.acked[r.k.tenant] > 0
	r.op = s.h.Invoke(c.name, r.k.tenant, r.k.spanID, r.body)
	c.cur, c.retry = r, nil
	s.inflight = append(s.inflight, r)
}

// handle applies or refuses a request.
func (s *sim) handle(r *request) {
	r.handled = true
	if i, ok := s.stored[r.k]; ok { // a duplicate
		r.applied, r.seq = true, s.recs[i].Seq
		return
	}
	if s.rng.IntN(8) == 0 {
		return // refused
	}
	seq := s.next
	if s.reorder && !s.injected && r.ackedBefore {
		// Placed below what was acknowledged before it was invoked.
		seq, s.injected = s.hole, true
	} else {
		s.next++
	}
	r.applied, r.seq = true, seq
	s.stored[r.k] = len(s.recs)
	s.recs = append(s.recs, Record{Seq: seq, Tenant: r.k.tenant, SpanID: r.k.spanID, Body: r.body, Leaf: leafOf(seq, r.body)})
}

func (s *sim) complete(c *simClient) {
	r := c.cur
	c.cur = nil
	switch {
	case r.applied && s.rng.IntN(10) > 0:
		rc := ledgerfmt.Receipt{Op: ledgerfmt.OpAppend, Tenant: r.k.tenant, SpanID: r.k.spanID, Seq: r.seq, Leaf: leafOf(r.seq, r.body)}
		if s.wrongReceipt && !s.injected {
			rc.Leaf[31] ^= 1
			s.injected = true
		}
		r.op.Ok(rc)
		s.acked[r.k.tenant]++
	case r.handled && !r.applied && s.rng.IntN(10) > 0:
		r.op.Fail("refused")
	default:
		r.op.Info("no answer")
		c.retry = r
	}
}

// inject changes the final ledger to hold one anomaly of kind k, and says
// whether this history allowed it.
func (s *sim) inject(k Kind) bool {
	evs := s.h.events()
	sentBy := map[key][]event{}
	for _, e := range evs {
		kk := key{e.tenant, e.spanID}
		sentBy[kk] = append(sentBy[kk], e)
	}
	has := func(kk key, o ...Outcome) bool {
		return slices.ContainsFunc(sentBy[kk], func(e event) bool { return slices.Contains(o, e.outcome) })
	}
	// candidates returns the stored records' indexes whose key is so.
	candidates := func(ok func(key) bool) []int {
		var out []int
		for i, r := range s.recs {
			if ok(key{r.Tenant, r.SpanID}) {
				out = append(out, i)
			}
		}
		return out
	}
	pick := func(is []int) (int, bool) {
		if len(is) == 0 {
			return 0, false
		}
		return is[s.rng.IntN(len(is))], true
	}
	acked := func(kk key) bool { return has(kk, Ok) }
	switch k {
	case Lost:
		i, ok := pick(candidates(acked))
		if ok {
			s.recs = slices.Delete(s.recs, i, i+1)
		}
		return ok
	case Duplicated:
		i, ok := pick(candidates(func(key) bool { return true }))
		if ok {
			r := s.recs[i]
			r.Seq = s.next
			s.recs = append(s.recs, r)
		}
		return ok
	case Corrupted:
		i, ok := pick(candidates(acked))
		if ok {
			s.recs[i].Body = []byte(`{"corrupted":true}`)
		}
		return ok
	case FailedPresent:
		var failed []key
		for kk := range sentBy {
			if has(kk, Fail) && !has(kk, Ok, Info, Pending) {
				failed = append(failed, kk)
			}
		}
		slices.SortFunc(failed, compareKeys)
		if len(failed) == 0 {
			return false
		}
		kk := failed[s.rng.IntN(len(failed))]
		s.recs = append(s.recs, Record{Seq: s.next, Tenant: kk.tenant, SpanID: kk.spanID, Body: body(kk.tenant, kk.spanID)})
		return true
	case Phantom:
		s.recs = append(s.recs, Record{Seq: s.next, Tenant: "t_a", SpanID: "never", Body: body("t_a", "never")})
		return true
	case Reordered, WrongReceipt:
		return s.injected
	}
	panic(k)
}

func compareKeys(a, b key) int {
	return cmp.Or(strings.Compare(a.tenant, b.tenant), strings.Compare(a.spanID, b.spanID))
}

// TestCheckRandom checks simulated correct histories (clean), then the same
// with one anomaly of a random kind injected (found, and nothing else).
func TestCheckRandom(t *testing.T) {
	const histories = 400
	var tried [numKinds]int
	for seed := range uint64(histories) {
		k := Kind(seed % uint64(numKinds))
		s := newSim(seed)
		s.reorder = k == Reordered
		s.wrongReceipt = k == WrongReceipt
		s.run(1+s.rng.IntN(6), 50+s.rng.IntN(400))
		if k != Reordered && k != WrongReceipt {
			if rep := Check(s.h, s.recs); !rep.Clean() {
				t.Fatalf("seed %d: a correct history found wrong:\n%s", seed, rep)
			}
		}
		if !s.inject(k) {
			continue
		}
		tried[k]++
		rep := Check(s.h, s.recs)
		if got := counts(rep); len(got) != 1 || got[k] != 1 {
			t.Fatalf("seed %d: %s injected, found %v:\n%s", seed, k, got, rep)
		}
	}
	for k, n := range tried {
		if n < histories/int(numKinds)/4 {
			t.Errorf("%s injected in only %d histories", Kind(k), n)
		}
	}
	t.Logf("injected: %v", tried)
}
