// Package runtime is the host of .lll programs on the server: it performs
// the host calls of ABI v1 under the capabilities a bundle, the server and
// a tenant allow, runs the bundle's routers over every durable span and
// derived event, and delivers their effects.
//
// Routers run in the derivation's pass over the ledger (the runtime is the
// cycle's Sink): each record, and each event derived from it, is offered to
// the routers whose input it is, and the actions of the routes whose guard
// holds are performed:
//
//	ws.send(channel, payload)    published at once to the subscribers of
//	                             GET /channels/{tenant}/{channel}
//	http.request(url, payload)   queued in the outbox, delivered as a
//	                             Standard Webhooks POST (signed, retried)
//	ledger.append(payload)       queued in the outbox, appended as a span of
//	                             the tenant through the path of POST /ingest
//
// kv.get, env.get and crypto.verify are called inside expressions (Host).
// Nothing of this runs on the acknowledgement path: a span is acknowledged
// when it is durable in the ledger, and its routing is a deterministic
// function of the ledger, performed after, at least once (see outbox.go).
//
// Effects are identified by a deterministic id, "msg_" + 26 characters of
// sha256(seq, action index): the webhook-id of a delivery, the same on every
// retry and after a restart. A span appended by a router gets the id
// "rt<depth>_…" and is routed again only while depth < MaxDepth.
package runtime

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/loglineos/loglineos/client/webhook"
	"github.com/loglineos/loglineos/internal/atomicfile"
	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
	"github.com/loglineos/loglineos/internal/lll/abi"
	"github.com/loglineos/loglineos/internal/lll/eval"
	"github.com/loglineos/loglineos/internal/metrics"
	"github.com/loglineos/loglineos/internal/tenant"
)

// MaxDepth bounds how many times spans appended by routers are routed
// again: a span appended while routing a span of depth MaxDepth is not
// appended (outcome "depth"), so routers cannot loop.
const MaxDepth = 4

// Defaults of Config.
const (
	DefaultWorkers        = 8
	DefaultTimeout        = 10 * time.Second
	DefaultMaxAttempts    = 12
	DefaultBackoff        = time.Second
	DefaultMaxBackoff     = 15 * time.Minute
	DefaultQueuePerTenant = 10_000
	DefaultBreakerAfter   = 5
	DefaultBreakerCool    = 30 * time.Second
	DefaultKeepDone       = 1000
)

// Tenants gives the runtime section of a tenant's file (nil: none).
type Tenants interface {
	Runtime(tenant string) *tenant.Runtime
}

// Appender appends a span of tenant through the validation and ledger path
// of ingest, and returns its receipt and whether it was stored already. A
// span the contract refuses is an error that retrying cannot mend
// (*reply.Problem).
type Appender interface {
	AppendSpan(ctx context.Context, tenant string, body []byte) (rc ledgerfmt.Receipt, duplicate bool, err error)
}

// Config configures a Runtime.
type Config struct {
	// Dir is the runtime's directory, normally <data>/runtime.
	Dir string
	// Routers are the bundle's compiled routers.
	Routers []*eval.Router
	// Route runs a router's evaluation (nil: r.Route, the interpreter);
	// a server sets it to run routers on its backend (backend.Spans.Route).
	Route func(ctx context.Context, r *eval.Router, in eval.Input, env *eval.Env) ([]eval.Action, error)
	// BundleCaps are the bundle's caps_allow; ServerCaps what the server's
	// configuration allows (runtime.caps). A bundle needing more than the
	// server allows is refused by CheckCaps before Open.
	BundleCaps, ServerCaps []string
	Tenants                Tenants
	Appender               Appender
	// Ledger records the kv.set of routers (kind "kv"); nil: kv.get and
	// kv.set fail.
	Ledger Ledger
	// KVQuota bounds the bytes of keys and values of a tenant's store
	// (DefaultKVQuota when zero).
	KVQuota int
	// EvalTimeout is the wall-clock deadline of one router evaluation
	// (eval.DefaultTimeout when zero): one that runs past it fails alone.
	EvalTimeout time.Duration
	// Metrics is the server's metric set (nil: none registered).
	Metrics *metrics.Set
	Logger  *slog.Logger

	// Delivery. Zero fields take the defaults above.
	Workers        int
	Timeout        time.Duration // one attempt
	MaxAttempts    int           // then the delivery is given up ("dead")
	Backoff        time.Duration // before the second attempt; doubles, with jitter
	MaxBackoff     time.Duration
	QueuePerTenant int           // pending deliveries past which the tenant's ingest is refused
	BreakerAfter   int           // consecutive failures that open an endpoint's breaker
	BreakerCool    time.Duration // how long it stays open
	KeepDone       int           // finished deliveries kept per tenant for the log
	// Client sends the deliveries; nil: one that refuses private addresses
	// unless the endpoint allows them.
	Client func(allowPrivate bool) *http.Client
	// Now is the clock (time.Now).
	Now func() time.Time
	// Trace, if set, receives a trace of every router evaluation (see
	// TraceLine); BundleHash names the bundle in its header.
	Trace      io.Writer
	BundleHash string
}

// fill sets *v to d when it is not positive.
func fill[T int | time.Duration](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}

func (c *Config) defaults() {
	fill(&c.Workers, DefaultWorkers)
	fill(&c.MaxAttempts, DefaultMaxAttempts)
	fill(&c.QueuePerTenant, DefaultQueuePerTenant)
	fill(&c.BreakerAfter, DefaultBreakerAfter)
	fill(&c.KeepDone, DefaultKeepDone)
	fill(&c.KVQuota, DefaultKVQuota)
	fill(&c.Timeout, DefaultTimeout)
	fill(&c.Backoff, DefaultBackoff)
	fill(&c.MaxBackoff, DefaultMaxBackoff)
	fill(&c.BreakerCool, DefaultBreakerCool)
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Client == nil {
		// Two clients for the life of the runtime (connections are reused).
		strict, open := newClient(false, c.Timeout), newClient(true, c.Timeout)
		c.Client = func(allowPrivate bool) *http.Client {
			if allowPrivate {
				return open
			}
			return strict
		}
	}
}

// ErrCapNotAllowed is returned by CheckCaps.
var ErrCapNotAllowed = errors.New("runtime: capability not allowed")

// CheckCaps refuses a bundle whose caps_allow asks for a capability the
// server does not allow, naming it and the key that grants it.
func CheckCaps(bundleCaps, serverCaps []string) error {
	for _, c := range bundleCaps {
		if !slices.Contains(serverCaps, c) {
			allowed := "none"
			if len(serverCaps) > 0 {
				allowed = strings.Join(serverCaps, ", ")
			}
			return fmt.Errorf("%w: the bundle needs %q, which this server does not allow (allowed: %s); add it to runtime.caps in the server's configuration, and to runtime.caps of the tenants that may use it", ErrCapNotAllowed, c, allowed)
		}
	}
	return nil
}

// Runtime is the host of one server.
type Runtime struct {
	cfg     Config
	log     *slog.Logger
	m       *runtimeMetrics
	ob      *outbox
	hub     *hub
	byInput map[string][]*eval.Router

	mu       sync.Mutex
	cond     *sync.Cond
	ready    []*delivery // due now, in order
	all      map[string]*delivery
	tenants  map[string]*tenantQueue
	breakers map[string]*breaker
	closed   bool
	wg       sync.WaitGroup
	timers   map[*delivery]*time.Timer
	seen     seenIDs
	trace    *tracer
	kv       *kvStore
	txn      kvTxn              // the kv writes of the record being routed (Record)
	key      ed25519.PrivateKey // signs deliveries ("v1a,"), beside each endpoint's secret
}

// tenantQueue is a tenant's deliveries: how many are pending, and the
// finished ones kept for the log, oldest first.
type tenantQueue struct {
	pending int
	done    []*delivery
}

// Open opens the runtime's outbox under cfg.Dir and queues again every
// delivery a previous run left pending. Run starts delivering.
func Open(cfg Config) (*Runtime, error) {
	cfg.defaults()
	if err := CheckCaps(cfg.BundleCaps, cfg.ServerCaps); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, err
	}
	rt := &Runtime{cfg: cfg, log: cfg.Logger, hub: newHub(), byInput: map[string][]*eval.Router{},
		all: map[string]*delivery{}, tenants: map[string]*tenantQueue{}, breakers: map[string]*breaker{},
		timers: map[*delivery]*time.Timer{}}
	rt.cond = sync.NewCond(&rt.mu)
	if cfg.Trace != nil {
		t, err := newTracer(cfg.Trace, cfg.BundleHash)
		if err != nil {
			return nil, fmt.Errorf("runtime: trace: %w", err)
		}
		rt.trace = t
	}
	for _, r := range cfg.Routers {
		in := r.IR.Input
		if len(in) == 0 {
			in = []string{abi.InputSpan}
		}
		for _, name := range in {
			rt.byInput[name] = append(rt.byInput[name], r)
		}
	}
	m, err := newMetrics(cfg.Metrics)
	if err != nil {
		return nil, err
	}
	rt.m = m
	var entries []*entry
	ob, err := openOutbox(filepath.Join(cfg.Dir, "outbox"), func(e *entry) { entries = append(entries, e) })
	if err != nil {
		return nil, fmt.Errorf("runtime: outbox: %w", err)
	}
	rt.ob = ob
	if rt.key, err = loadKey(filepath.Join(cfg.Dir, "webhook.key")); err != nil {
		ob.close()
		return nil, fmt.Errorf("runtime: webhook signing key: %w", err)
	}
	for _, e := range entries {
		rt.replay(e)
	}
	if err := rt.openStore(entries); err != nil {
		ob.close()
		return nil, err
	}
	if ob.size > compactAt {
		if err := ob.rewrite(rt.keep()); err != nil {
			ob.close()
			return nil, fmt.Errorf("runtime: compacting the outbox: %w", err)
		}
	}
	return rt, nil
}

// openStore rebuilds the key-value store, records in the ledger the writes
// the outbox holds that it does not, and marks routed the records whose
// writes are all in the ledger.
func (rt *Runtime) openStore(entries []*entry) error {
	// Each record with actions is followed by a mark: the records below
	// the last are routed whole; the actions after it belong to a record
	// routed again (those already queued are known by their ids).
	routed, _ := rt.ob.marks()
	routed, err := rt.openKV(routed, entries)
	if err != nil {
		return err
	}
	if err := rt.kv.syncKV(context.Background()); err != nil {
		return err
	}
	if err := rt.markRouted(routed); err != nil {
		return err
	}
	return nil
}

// syncOutbox makes the outbox durable, the trace's lines written first: a
// record the outbox marks routed is not evaluated again after a crash, so
// its evaluations' lines must be in the trace file by then (written, for
// a crash of the process; the trace is not fsynced).
func (rt *Runtime) syncOutbox() error {
	if rt.trace != nil {
		if err := rt.trace.flush(); err != nil {
			return fmt.Errorf("trace: %w", err)
		}
	}
	return rt.ob.sync()
}

// markRouted marks every record below next routed (durably) and writes
// kv.json as of that mark. The kv writes of those records must be in the
// ledger already.
func (rt *Runtime) markRouted(next uint64) error {
	if routed, _ := rt.ob.marks(); next > routed {
		if err := rt.ob.add(&entry{T: "r", Seq: next}); err != nil {
			return err
		}
	}
	if err := rt.syncOutbox(); err != nil {
		return err
	}
	if err := rt.kv.save(next); err != nil {
		return fmt.Errorf("runtime: kv.json: %w", err)
	}
	return nil
}

// replay applies an outbox entry read at open.
func (rt *Runtime) replay(e *entry) {
	switch e.T {
	case "q":
		if d := rt.all[e.ID]; d != nil {
			// Queued again (a redelivery).
			if d.state != statePending {
				q := rt.queue(e.Tenant)
				q.done = slices.DeleteFunc(q.done, func(x *delivery) bool { return x == d })
				q.pending++
				d.state, d.attempts = statePending, 0
			}
			return
		}
		rt.all[e.ID] = &delivery{q: e, state: statePending}
		rt.queue(e.Tenant).pending++
	case "a":
		if d := rt.all[e.ID]; d != nil {
			d.attempts, d.lastStatus, d.lastError, d.lastAt = e.N, e.Status, e.Error, e.At
		}
	case "d", "x":
		if d := rt.all[e.ID]; d != nil && d.state == statePending {
			d.state, d.doneAt = stateDelivered, e.At
			if e.T == "x" {
				d.state, d.lastError = stateDead, e.Error
			}
			rt.finish(d)
		}
	}
}

// keep returns the entries a compacted outbox holds: the routed mark, and
// every delivery still pending or kept for the log, with its last attempt.
func (rt *Runtime) keep() []*entry {
	// openStore moved the mark to the last record with an action queued
	// (routed again, its actions known by their ids); kv writes ("k")
	// below it are in the ledger.
	routed, _ := rt.ob.marks()
	out := []*entry{{T: "r", Seq: routed}}
	for _, d := range rt.all {
		out = append(out, d.q)
		if d.attempts > 0 {
			out = append(out, &entry{T: "a", ID: d.q.ID, N: d.attempts, Status: d.lastStatus, Error: d.lastError, At: d.lastAt})
		}
		switch d.state {
		case stateDelivered:
			out = append(out, &entry{T: "d", ID: d.q.ID, At: d.doneAt})
		case stateDead:
			out = append(out, &entry{T: "x", ID: d.q.ID, Error: d.lastError, At: d.doneAt})
		}
	}
	slices.SortStableFunc(out[1:], func(a, b *entry) int {
		da, db := rt.all[a.ID], rt.all[b.ID]
		if da.q.Seq != db.q.Seq {
			return int(da.q.Seq) - int(db.q.Seq)
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

func (rt *Runtime) queue(tenant string) *tenantQueue {
	q := rt.tenants[tenant]
	if q == nil {
		q = &tenantQueue{}
		rt.tenants[tenant] = q
	}
	return q
}

// finish moves a finished delivery to its tenant's log, dropping the oldest
// past KeepDone. Called with mu held (or before Run).
func (rt *Runtime) finish(d *delivery) {
	q := rt.queue(d.q.Tenant)
	q.pending--
	q.done = append(q.done, d)
	if len(q.done) > rt.cfg.KeepDone {
		old := q.done[0]
		q.done = q.done[1:]
		delete(rt.all, old.q.ID)
	}
}

// Full reports whether tenant's pending deliveries reached QueuePerTenant:
// the server then refuses the tenant's ingest until they drain.
func (rt *Runtime) Full(tenant string) bool {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	q := rt.tenants[tenant]
	return q != nil && q.pending >= rt.cfg.QueuePerTenant
}

// Pending returns the deliveries not yet finished, all tenants.
func (rt *Runtime) Pending() int {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	n := 0
	for _, q := range rt.tenants {
		n += q.pending
	}
	return n
}

// Run delivers until ctx ends, then waits for the attempts in flight.
func (rt *Runtime) Run(ctx context.Context) {
	rt.mu.Lock()
	for _, d := range rt.all {
		if d.state == statePending {
			rt.ready = append(rt.ready, d)
		}
	}
	slices.SortFunc(rt.ready, func(a, b *delivery) int { return int(a.q.Seq) - int(b.q.Seq) })
	rt.mu.Unlock()
	for range rt.cfg.Workers {
		rt.wg.Add(1)
		go rt.worker(ctx)
	}
	// Attempts' outcomes are made durable every second (the actions
	// themselves are, before the cycle moves past their records).
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-tick.C:
			if err := rt.syncOutbox(); err != nil && !errors.Is(err, errClosed) {
				rt.log.Error("outbox sync failed", "err", err)
			}
		}
	}
	rt.mu.Lock()
	rt.closed = true
	for d, t := range rt.timers {
		t.Stop()
		delete(rt.timers, d)
	}
	rt.cond.Broadcast()
	rt.mu.Unlock()
	rt.wg.Wait()
}

// Close syncs and closes the outbox. Call it after Run returned.
func (rt *Runtime) Close() error {
	rt.hub.closeAll()
	err := rt.ob.close()
	if rt.trace != nil {
		err = errors.Join(err, rt.trace.flush())
	}
	return err
}

// msgID is the deterministic id of the i-th action of record seq.
func msgID(seq uint64, i int) string {
	return idOf(strconv.FormatUint(seq, 10) + "/" + strconv.Itoa(i))
}

// idOf is "msg_" and 26 base32 characters of sha256(key).
func idOf(key string) string {
	h := sha256.Sum256([]byte(key))
	return "msg_" + strings.ToLower(b32.EncodeToString(h[:])[:26])
}

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// PublicKey returns the key that verifies the "v1a," signatures of this
// server's deliveries, as "whpk_<base64>".
func (rt *Runtime) PublicKey() string {
	return webhook.FormatPublicKey(rt.key.Public().(ed25519.PublicKey))
}

// loadKey reads the server's webhook signing key ("whsk_…"), creating it
// at the first start.
func loadKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		return webhook.ParsePrivateKey(strings.TrimSpace(string(b)))
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	_, k, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.Write(path, []byte(webhook.FormatPrivateKey(k)+"\n"), 0o600); err != nil {
		return nil, err
	}
	return k, nil
}
