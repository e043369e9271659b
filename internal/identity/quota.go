package identity

import (
	"container/list"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Limiter holds the token buckets of the quotas: one per tenant, and one
// per (tenant, role) for the roles a tenant gives a quota of their own. A
// request must find tokens in every bucket that applies.
//
// The registry is bounded: buckets live in an LRU split in shards, each
// with its own lock held for a map lookup, so there is no global lock on
// the hot path; each bucket has its own lock inside rate.Limiter. A flood
// on one tenant contends only on that tenant's bucket. A bucket evicted
// for room comes back full, which only favours a tenant idle long enough
// to be the least recently used.
type Limiter struct {
	now      func() time.Time
	seed     maphash.Seed
	perShard int
	shards   [limiterShards]limShard
	table    atomic.Pointer[quotaTable]
}

const limiterShards = 64

// LimiterConfig configures a Limiter.
type LimiterConfig struct {
	// Max bounds the number of buckets kept (10000).
	Max int
	// Default is the quota of tenants that set none.
	Default Quota
	// Tenants holds each tenant's quota and role quotas.
	Tenants map[string]TenantConfig
	// Now is the clock (time.Now).
	Now func() time.Time
}

type limShard struct {
	mu  sync.Mutex
	m   map[limKey]*list.Element
	lru list.List // of *limEntry, most recent first
}

type limKey struct{ tenant, role string } // role "" is the tenant's bucket

type limEntry struct {
	key limKey
	lim *rate.Limiter
	gen uint64 // table generation the limits were set from
}

// quotaTable is an immutable snapshot of the configured quotas.
type quotaTable struct {
	gen     uint64
	def     Quota
	tenants map[string]Quota
	roles   map[string]map[string]Quota
}

func (t *quotaTable) quota(k limKey) Quota {
	if k.role != "" {
		return t.roles[k.tenant][k.role]
	}
	if q, ok := t.tenants[k.tenant]; ok {
		return q
	}
	return t.def
}

// NewLimiter returns a Limiter.
func NewLimiter(c LimiterConfig) *Limiter {
	if c.Max <= 0 {
		c.Max = DefaultLimiters
	}
	if c.Default == (Quota{}) {
		c.Default = DefaultTenantQuota()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	l := &Limiter{now: c.Now, seed: maphash.MakeSeed(), perShard: max(c.Max/limiterShards, 1)}
	for i := range l.shards {
		l.shards[i].m = map[limKey]*list.Element{}
	}
	l.table.Store(&quotaTable{def: c.Default})
	l.setTenants(c.Tenants)
	return l
}

// setTenants installs new quotas and applies them to the buckets held, as
// of now (a bucket keeps the tokens it has, up to the new burst).
func (l *Limiter) setTenants(tenants map[string]TenantConfig) {
	old := l.table.Load()
	t := &quotaTable{gen: old.gen + 1, def: old.def, tenants: map[string]Quota{}, roles: map[string]map[string]Quota{}}
	for name, tc := range tenants {
		if tc.Quota != (Quota{}) {
			t.tenants[name] = tc.Quota
		}
		if len(tc.RoleQuotas) > 0 {
			rq := map[string]Quota{}
			for role, q := range tc.RoleQuotas {
				if role != "" && q != (Quota{}) {
					rq[role] = q
				}
			}
			t.roles[name] = rq
		}
	}
	l.table.Store(t)
	now := l.now()
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		for el := sh.lru.Front(); el != nil; el = el.Next() {
			e := el.Value.(*limEntry)
			if e.gen != t.gen {
				q := t.quota(e.key)
				e.lim.SetLimitAt(now, rate.Limit(q.IngestPerSecond))
				e.lim.SetBurstAt(now, q.Burst)
				e.gen = t.gen
			}
		}
		sh.mu.Unlock()
	}
}

// Allow takes n tokens (n spans, say) from tenant's bucket and from the
// bucket of each of roles that has a quota in tenant. It returns nil, or
// an *Error of KindQuota with RetryAfter set when the caller may retry;
// when n is more than a bucket can ever hold, an *Error of KindBadRequest
// (ReasonBatchTooBig): retrying cannot help, splitting can. Nothing is
// taken from any bucket unless every bucket allows.
func (l *Limiter) Allow(tenant string, roles []string, n int) error {
	now := l.now()
	t := l.table.Load()
	var keysArr [4]limKey
	keys := append(keysArr[:0], limKey{tenant: tenant})
	if rq := t.roles[tenant]; len(rq) > 0 {
		for _, role := range roles {
			if _, ok := rq[role]; ok {
				keys = append(keys, limKey{tenant, role})
			}
		}
	}
	for _, k := range keys {
		if b := t.quota(k).Burst; n > b {
			return &Error{Kind: KindBadRequest, Reason: ReasonBatchTooBig,
				Detail: fmt.Sprintf("%d exceeds the burst of %d", n, b)}
		}
	}
	if len(keys) == 1 { // the common case, without allocation
		lim := l.bucket(keys[0], t, now)
		if lim.AllowN(now, n) {
			return nil
		}
		return l.over(tenant, lim.Limit(), float64(n)-lim.TokensAt(now))
	}
	var wait time.Duration
	rs := make([]*rate.Reservation, 0, len(keys))
	for _, k := range keys {
		r := l.bucket(k, t, now).ReserveN(now, n)
		rs = append(rs, r)
		wait = max(wait, r.DelayFrom(now))
	}
	if wait <= 0 {
		return nil
	}
	for _, r := range rs {
		r.CancelAt(now)
	}
	return &Error{Kind: KindQuota, Reason: ReasonQuota, RetryAfter: wait,
		Detail: "tenant " + tenant + " is over its quota"}
}

// over builds the quota error for a bucket of rate r missing tokens.
func (l *Limiter) over(tenant string, r rate.Limit, missing float64) error {
	wait := time.Second
	if r > 0 && missing > 0 {
		wait = time.Duration(missing / float64(r) * float64(time.Second))
	}
	return &Error{Kind: KindQuota, Reason: ReasonQuota, RetryAfter: wait,
		Detail: "tenant " + tenant + " is over its quota"}
}

// AllowPrincipal is Allow for p's tenant and roles.
func (l *Limiter) AllowPrincipal(p *Principal, n int) error {
	return l.Allow(p.Tenant, p.Roles, n)
}

// AllowCost charges a request's cost n to p's tenant and roles, as
// AllowPrincipal, except that a cost above a bucket's burst takes the whole
// burst (an expensive request stays possible under a small quota).
func (l *Limiter) AllowCost(p *Principal, n int) error {
	t := l.table.Load()
	n = min(n, t.quota(limKey{tenant: p.Tenant}).Burst)
	if rq := t.roles[p.Tenant]; len(rq) > 0 {
		for _, role := range p.Roles {
			if q, ok := rq[role]; ok {
				n = min(n, q.Burst)
			}
		}
	}
	return l.Allow(p.Tenant, p.Roles, max(n, 1))
}

// bucket returns the limiter of k, creating it (and evicting the least
// recently used of the shard) if needed.
func (l *Limiter) bucket(k limKey, t *quotaTable, now time.Time) *rate.Limiter {
	// A tenant's buckets share a shard; tenants spread over the shards.
	sh := &l.shards[maphash.String(l.seed, k.tenant)%limiterShards]
	sh.mu.Lock()
	el, ok := sh.m[k]
	var e *limEntry
	if ok {
		sh.lru.MoveToFront(el)
		e = el.Value.(*limEntry)
	} else {
		q := t.quota(k)
		e = &limEntry{key: k, lim: rate.NewLimiter(rate.Limit(q.IngestPerSecond), q.Burst), gen: t.gen}
		// A new bucket starts full.
		if sh.lru.Len() >= l.perShard {
			old := sh.lru.Remove(sh.lru.Back()).(*limEntry)
			delete(sh.m, old.key)
		}
		sh.m[k] = sh.lru.PushFront(e)
	}
	if e.gen < t.gen { // created from an older table while setTenants ran
		q := t.quota(k)
		e.lim.SetLimitAt(now, rate.Limit(q.IngestPerSecond))
		e.lim.SetBurstAt(now, q.Burst)
		e.gen = t.gen
	}
	sh.mu.Unlock()
	return e.lim
}

// Len is the number of buckets held.
func (l *Limiter) Len() int {
	n := 0
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		n += sh.lru.Len()
		sh.mu.Unlock()
	}
	return n
}
