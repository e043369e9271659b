package runtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/loglineos/loglineos/client/webhook"
	"github.com/loglineos/loglineos/internal/gateway/reply"
)

// Delivery states.
const (
	statePending   = "pending"
	stateDelivered = "delivered"
	stateDead      = "dead"
)

// delivery is one queued action and what became of it.
type delivery struct {
	q          *entry
	state      string
	attempts   int
	lastStatus int
	lastError  string
	lastAt     time.Time
	doneAt     time.Time
	next       time.Time // when it is due again
	durable    time.Time // when the record that caused it became durable (this run only)
	running    bool
}

// breaker is an endpoint's circuit breaker: after BreakerAfter consecutive
// failures it opens for BreakerCool, during which the endpoint's
// deliveries wait without spending attempts; then one is tried.
type breaker struct {
	failures  int
	openUntil time.Time
}

// enqueue adds a queued action unless one with its id exists already.
func (rt *Runtime) enqueue(e *entry, durable time.Time) string {
	e.At = rt.cfg.Now().UTC()
	rt.mu.Lock()
	if _, dup := rt.all[e.ID]; dup {
		rt.mu.Unlock()
		return OutcomeQueued
	}
	rt.mu.Unlock()
	if err := rt.ob.add(e); err != nil {
		rt.log.Error("outbox write failed", "id", e.ID, "err", err)
		return OutcomeError
	}
	rt.mu.Lock()
	d := &delivery{q: e, state: statePending, durable: durable}
	rt.all[e.ID] = d
	rt.queue(e.Tenant).pending++
	rt.ready = append(rt.ready, d)
	rt.cond.Signal()
	rt.mu.Unlock()
	rt.m.queued.Inc()
	return OutcomeQueued
}

// worker performs due deliveries until Run's context ends.
func (rt *Runtime) worker(ctx context.Context) {
	defer rt.wg.Done()
	for {
		rt.mu.Lock()
		for len(rt.ready) == 0 && !rt.closed {
			rt.cond.Wait()
		}
		if rt.closed {
			rt.mu.Unlock()
			return
		}
		d := rt.ready[0]
		rt.ready = rt.ready[1:]
		if d.state != statePending || d.running {
			rt.mu.Unlock()
			continue
		}
		if b := rt.breakers[d.q.URL]; d.q.URL != "" && b != nil && rt.cfg.Now().Before(b.openUntil) {
			rt.later(d, b.openUntil.Sub(rt.cfg.Now()))
			rt.mu.Unlock()
			continue
		}
		d.running = true
		rt.mu.Unlock()
		status, err := rt.attempt(ctx, d)
		rt.settle(d, status, err)
	}
}

// later makes d due again after wait. Called with mu held.
func (rt *Runtime) later(d *delivery, wait time.Duration) {
	if rt.closed {
		return
	}
	d.next = rt.cfg.Now().Add(wait)
	rt.timers[d] = time.AfterFunc(wait, func() {
		rt.mu.Lock()
		defer rt.mu.Unlock()
		delete(rt.timers, d)
		if rt.closed {
			return
		}
		rt.ready = append(rt.ready, d)
		rt.cond.Signal()
	})
}

// attempt performs d once.
func (rt *Runtime) attempt(ctx context.Context, d *delivery) (int, error) {
	start := time.Now()
	defer func() { rt.m.attemptSeconds.WithLabelValues(d.q.Call).Observe(time.Since(start).Seconds()) }()
	switch d.q.Call {
	case "ledger.append":
		if rt.cfg.Appender == nil {
			return 0, errors.New("no ledger here")
		}
		actx, cancel := context.WithTimeout(ctx, rt.cfg.Timeout)
		defer cancel()
		_, _, err := rt.cfg.Appender.AppendSpan(actx, d.q.Tenant, []byte(d.q.Body))
		if pr := (*reply.Problem)(nil); errors.As(err, &pr) && pr.Status/100 == 4 && pr.Status != http.StatusTooManyRequests {
			return pr.Status, errPermanent{err}
		}
		return 0, err
	case "http.request":
		return rt.post(ctx, d)
	}
	return 0, fmt.Errorf("unknown call %q", d.q.Call)
}

// post sends d as a Standard Webhooks request; a 2xx is success.
func (rt *Runtime) post(ctx context.Context, d *delivery) (int, error) {
	ep, ok := rt.cfg.Tenants.Runtime(d.q.Tenant).Endpoint(d.q.URL)
	if !ok {
		return 0, errPermanent{fmt.Errorf("%s is no longer a webhook endpoint of tenant %s", d.q.URL, d.q.Tenant)}
	}
	actx, cancel := context.WithTimeout(ctx, rt.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, d.q.URL, bytes.NewReader([]byte(d.q.Body)))
	if err != nil {
		return 0, errPermanent{err}
	}
	now := rt.cfg.Now()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "LogLineOS-Webhooks/1")
	body := []byte(d.q.Body)
	webhook.SetHeaders(req.Header, d.q.ID, now, webhook.Sign(ep.Key, d.q.ID, now, body), webhook.SignEd25519(rt.key, d.q.ID, now, body))
	resp, err := rt.cfg.Client(ep.AllowPrivate).Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("answered %s", resp.Status)
	}
	return resp.StatusCode, nil
}

// errPermanent is a failure retrying cannot mend.
type errPermanent struct{ error }

// settle records an attempt's outcome and decides what follows.
func (rt *Runtime) settle(d *delivery, status int, err error) {
	now := rt.cfg.Now().UTC()
	a := &entry{T: "a", ID: d.q.ID, Status: status, At: now}
	rt.mu.Lock()
	d.running = false
	d.attempts++
	a.N = d.attempts
	d.lastStatus, d.lastAt, d.lastError = status, now, ""
	if err != nil {
		d.lastError = err.Error()
		a.Error = d.lastError
	}
	var final *entry
	b := rt.breakers[d.q.URL]
	if b == nil && d.q.URL != "" {
		b = &breaker{}
		rt.breakers[d.q.URL] = b
	}
	switch {
	case err == nil:
		if b != nil {
			b.failures = 0
		}
		d.state, d.doneAt = stateDelivered, now
		final = &entry{T: "d", ID: d.q.ID, At: now}
	case errors.As(err, new(errPermanent)) || d.attempts >= rt.cfg.MaxAttempts:
		d.state, d.doneAt = stateDead, now
		final = &entry{T: "x", ID: d.q.ID, Error: d.lastError, At: now}
	default:
		if b != nil {
			b.failures++
			if b.failures >= rt.cfg.BreakerAfter {
				b.openUntil = now.Add(rt.cfg.BreakerCool)
				rt.m.breakerOpen.Inc()
			}
		}
		rt.later(d, rt.backoff(d.attempts))
	}
	if final != nil {
		rt.finish(d)
	}
	rt.mu.Unlock()

	outcome := "failed"
	switch {
	case final != nil && final.T == "d":
		outcome = stateDelivered
		from := d.durable
		if from.IsZero() {
			from = d.q.At // queued by an earlier run
		}
		rt.m.latency.WithLabelValues(d.q.Call).Observe(now.Sub(from).Seconds())
	case final != nil:
		outcome = stateDead
	}
	rt.m.attempts.WithLabelValues(rt.m.tenant(d.q.Tenant), d.q.Call, outcome).Inc()
	es := []*entry{a}
	if final != nil {
		es = append(es, final)
	}
	if err := rt.ob.add(es...); err != nil {
		rt.log.Error("outbox write failed", "id", d.q.ID, "err", err)
	}
	if final != nil && final.T == "x" {
		rt.log.Warn("delivery given up", "id", d.q.ID, "tenant", d.q.Tenant, "router", d.q.Router, "attempts", d.attempts, "err", d.lastError)
	}
}

// backoff is the wait after the n-th failed attempt: Backoff doubled n-1
// times, at most MaxBackoff, with jitter (between half and all of it).
func (rt *Runtime) backoff(n int) time.Duration {
	d := rt.cfg.Backoff
	for i := 1; i < n && d < rt.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, rt.cfg.MaxBackoff)
	return d/2 + rand.N(d/2+1)
}

// Redeliver queues a finished delivery of tenant again (same webhook-id,
// a new timestamp and signature).
func (rt *Runtime) Redeliver(tenant, id string) error {
	rt.mu.Lock()
	d, ok := rt.all[id]
	if !ok || d.q.Tenant != tenant {
		rt.mu.Unlock()
		return ErrNoDelivery
	}
	if d.state == statePending {
		rt.mu.Unlock()
		return nil
	}
	q := rt.queue(tenant)
	for i, x := range q.done {
		if x == d {
			q.done = append(q.done[:i], q.done[i+1:]...)
			break
		}
	}
	q.pending++
	d.state, d.attempts = statePending, 0
	rt.ready = append(rt.ready, d)
	rt.cond.Signal()
	rt.mu.Unlock()
	// A redelivery is queued again in the outbox, so that a restart
	// delivers it too: the same id, a new "q" after its final entry.
	return rt.ob.add(d.q)
}

// ErrNoDelivery is returned for an id the delivery log does not hold.
var ErrNoDelivery = errors.New("runtime: no such delivery")

// newClient returns the HTTP client of deliveries. Unless allowPrivate,
// its dialer refuses loopback, private, link-local and unspecified
// addresses, checked on the address actually dialled (after DNS), so a
// name that resolves to one is refused too.
func newClient(allowPrivate bool, timeout time.Duration) *http.Client {
	d := &net.Dialer{Timeout: timeout}
	if !allowPrivate {
		d.Control = func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return err
			}
			if a := ap.Addr().Unmap(); !publicAddr(a) {
				return fmt.Errorf("%w: %s", ErrPrivateAddress, a)
			}
			return nil
		}
	}
	tr := &http.Transport{DialContext: d.DialContext, TLSHandshakeTimeout: timeout, ResponseHeaderTimeout: timeout,
		MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second, ForceAttemptHTTP2: true}
	return &http.Client{Transport: tr, Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// ErrPrivateAddress is the error of a delivery to a private address.
var ErrPrivateAddress = errors.New("runtime: private address refused (set allow_private on the endpoint)")

func publicAddr(a netip.Addr) bool {
	return a.IsGlobalUnicast() && !a.IsPrivate() && !a.IsLoopback() && !a.IsLinkLocalUnicast()
}

// DeliveryInfo is one delivery as the log shows it.
type DeliveryInfo struct {
	ID         string    `json:"id"`
	Router     string    `json:"router"`
	Call       string    `json:"call"`
	URL        string    `json:"url,omitempty"`
	Seq        uint64    `json:"seq"`
	State      string    `json:"state"` // pending, delivered, dead
	Attempts   int       `json:"attempts"`
	LastStatus int       `json:"last_status,omitempty"`
	LastError  string    `json:"last_error,omitempty"`
	QueuedAt   time.Time `json:"queued_at"`
	LastAt     time.Time `json:"last_attempt_at,omitzero"`
	DoneAt     time.Time `json:"done_at,omitzero"`
	NextAt     time.Time `json:"next_attempt_at,omitzero"`
}

// Deliveries returns tenant's pending deliveries and the last finished
// ones, newest first.
func (rt *Runtime) Deliveries(tenant string) []DeliveryInfo {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	out := []DeliveryInfo{}
	for _, d := range rt.all {
		if d.q.Tenant != tenant {
			continue
		}
		info := DeliveryInfo{ID: d.q.ID, Router: d.q.Router, Call: d.q.Call, URL: d.q.URL, Seq: d.q.Seq,
			State: d.state, Attempts: d.attempts, LastStatus: d.lastStatus, LastError: d.lastError,
			QueuedAt: d.q.At, LastAt: d.lastAt, DoneAt: d.doneAt}
		if d.state == statePending && d.attempts > 0 {
			info.NextAt = d.next
		}
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b DeliveryInfo) int {
		if c := b.QueuedAt.Compare(a.QueuedAt); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	return out
}
