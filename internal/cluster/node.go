package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/loglineos/loglineos/internal/bytesize"
	"github.com/loglineos/loglineos/internal/ledger"
)

// HeaderInDone is a batch message's count of LEDGER_IN messages wholly
// integrated when it was appended: every LEDGER_IN message up to this
// sequence has its spans in this batch or an earlier one. A new
// integrator resumes LEDGER_IN after the last batch's value; messages it
// then takes again are answered by the idempotency check with their
// original receipts.
const HeaderInDone = "Logline-In-Done"

// NodeConfig configures a Node.
type NodeConfig struct {
	// Name is the node's name, the lease's holder when it integrates.
	Name string
	// Dir is the node's data directory (its own ledger).
	Dir string
	// Ledger is the ledger's configuration; Publish is the node's own.
	// Every node of a cluster uses the same signing key.
	Ledger ledger.Config
	// LeaseTTL is the lease's time to live (DefaultLeaseTTL when zero).
	LeaseTTL time.Duration
	// InFlight is how many LEDGER_IN messages the integrator appends at
	// once, so that the ledger's group commit can join them (32 when
	// zero).
	InFlight int
	// Log receives the node's events (slog.Default when nil).
	Log *slog.Logger
	// Follower, if set, never tries for the lease: the node only follows
	// (a gateway's copy of the ledger, for reads).
	Follower bool
	// Ticks, if set, runs while the node integrates, with the ledger it
	// integrates into, until its context is done: it appends the
	// cluster's clock ticks (cycle.AppendTicks), written by the cluster's
	// one writer and read from the log by every node's derivation, so that
	// idle trajectories close everywhere alike.
	Ticks func(ctx context.Context, l *ledger.Ledger)
}

// Node is one ledger node of a cluster: it follows LEDGER_INTEGRATED into
// its own ledger, and integrates LEDGER_IN while it holds the lease.
//
//	start ─▶ reconcile (move aside what the log does not hold) ─▶ follow ◀──┐
//	                                                               │ lease  │ lost, fenced
//	                                                               ▼        │
//	                                 reopen publishing, fence, integrate ───┘
type Node struct {
	cfg NodeConfig
	nc  *nats.Conn
	js  jetstream.JetStream
	log *Log

	mu  sync.Mutex
	led *ledger.Ledger // the open ledger, for reads; swapped on role changes

	// The follower's place: the integrated log's sequence read last.
	logSeq uint64
	// inDone is the last batch's HeaderInDone.
	inDone uint64

	stats nodeStats
}

// NodeStats are a node's counters since it started.
type NodeStats struct {
	// Integrating is whether the node holds the lease and integrates now,
	// under the lease's Epoch (0 before the node first integrated).
	Integrating bool
	Epoch       uint64
	// LogSeq is the integrated log's last message the node applied or
	// wrote.
	LogSeq uint64
	// Leases counts the times the node won the lease; Applied the
	// commits it applied from the log; Published those it published;
	// Stepdowns the integrations that ended (lease lost, fenced, NATS).
	Leases, Applied, Published, Stepdowns uint64
}

type nodeStats struct {
	integrating                           atomic.Bool
	epoch, logSeq                         atomic.Uint64
	leases, applied, published, stepdowns atomic.Uint64
}

// Stats returns the node's counters; safe to call while it runs.
func (n *Node) Stats() NodeStats {
	st := &n.stats
	return NodeStats{Integrating: st.integrating.Load(), Epoch: st.epoch.Load(), LogSeq: st.logSeq.Load(),
		Leases: st.leases.Load(), Applied: st.applied.Load(), Published: st.published.Load(), Stepdowns: st.stepdowns.Load()}
}

// NewNode returns a node on nc's JetStream (Setup must have run).
func NewNode(ctx context.Context, nc *nats.Conn, cfg NodeConfig) (*Node, error) {
	if cfg.Name == "" || cfg.Dir == "" {
		return nil, errors.New("cluster: a node needs a name and a data directory")
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.InFlight <= 0 {
		cfg.InFlight = 32
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	cfg.Ledger.Publish = nil
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	return &Node{cfg: cfg, nc: nc, js: js, log: &Log{js: js}}, nil
}

// Ledger returns the node's open ledger (nil between role changes). Read
// from it; never append.
func (n *Node) Ledger() *ledger.Ledger {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.led
}

func (n *Node) setLedger(l *ledger.Ledger) {
	n.mu.Lock()
	n.led = l
	n.mu.Unlock()
}

// errLedger marks failures of the node's own ledger: Run stops on them,
// while it rides out NATS's (a leader election, a node down, a cut).
var errLedger = errors.New("cluster: the node's ledger")

// permanent reports whether Run must stop on err rather than retry.
func permanent(err error) bool {
	return errors.Is(err, errLedger) || errors.Is(err, ledger.ErrBadCommit) || errors.Is(err, ledger.ErrCorrupt)
}

// Run runs the node until ctx is done: reconcile, then follow, and
// integrate whenever it wins the lease. NATS's failures are retried; it
// returns the ledger's (it closes the ledger on return).
func (n *Node) Run(ctx context.Context) error {
	var l *ledger.Ledger
	defer func() {
		n.setLedger(nil)
		if l != nil {
			l.Close()
		}
	}()
	// retry says whether to go on after err, waiting a little first.
	retry := func(what string, err error) bool {
		if ctx.Err() != nil || permanent(err) {
			return false
		}
		n.cfg.Log.Warn(what, "node", n.cfg.Name, "err", err)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(n.cfg.LeaseTTL / 4):
			return true
		}
	}
	for l == nil {
		var err error
		if l, err = n.reconcile(ctx); err != nil && !retry("reconciling with the integrated log", err) {
			return quiet(ctx, err)
		}
	}
	for {
		n.setLedger(l)
		lease, err := n.follow(ctx, l)
		if err != nil {
			if retry("following the integrated log", err) {
				continue
			}
			return quiet(ctx, err)
		}
		// Won the lease, and applied the whole log: integrate, renewing
		// the lease from now on.
		pub := &publisher{n: n, lease: lease}
		stopKeeping := n.keepLease(ctx, lease, pub)
		n.setLedger(nil)
		err = l.Close()
		l = nil
		if err != nil {
			stopKeeping()
			return fmt.Errorf("%w: node %s: closing the follower's ledger: %w", errLedger, n.cfg.Name, err)
		}
		published, err := n.integrate(ctx, pub)
		stopKeeping()
		if ctx.Err() == nil {
			n.cfg.Log.Warn("stopped integrating", "node", n.cfg.Name, "epoch", lease.Epoch(), "published", published, "err", err)
		}
		if permanent(err) {
			return err
		}
		// Whatever was written and not published goes aside.
		if err := ledger.TruncateAfter(n.cfg.Dir, published, n.cfg.Ledger); err != nil {
			return fmt.Errorf("%w: node %s: moving the unpublished tail aside: %w", errLedger, n.cfg.Name, err)
		}
		if ctx.Err() != nil {
			return nil
		}
		if l, err = ledger.Open(n.cfg.Dir, n.cfg.Ledger); err != nil {
			return fmt.Errorf("%w: node %s: %w", errLedger, n.cfg.Name, err)
		}
	}
}

// quiet is err, or nil when ctx is done (the node was stopped).
func quiet(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// batch is one batch message of the integrated log.
type batch struct {
	seq    uint64 // in the integrated log
	inDone uint64
	commit ledger.Commit
	size   uint64 // records
}

func decodeBatch(seq uint64, h nats.Header, data []byte) (*batch, error) {
	if h.Get(HeaderKind) != "batch" {
		return nil, nil
	}
	b := &batch{seq: seq}
	if v := h.Get(HeaderInDone); v != "" {
		d, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("cluster: %s message %d: header %s: %w", StreamIntegrated, seq, HeaderInDone, err)
		}
		b.inDone = d
	}
	if err := b.commit.UnmarshalBinary(data); err != nil {
		return nil, fmt.Errorf("cluster: %s message %d: %w", StreamIntegrated, seq, err)
	}
	b.size = b.commit.Receipt.Batch.Size
	return b, nil
}

// reconcile opens the ledger and brings it to a prefix of the integrated
// log: records of a commit the log does not hold (written by this node
// while it integrated, never published) are moved aside.
func (n *Node) reconcile(ctx context.Context) (*ledger.Ledger, error) {
	if n.log.s == nil {
		s, err := n.js.Stream(ctx, StreamIntegrated)
		if err != nil {
			return nil, fmt.Errorf("cluster: %s: %w", StreamIntegrated, err)
		}
		n.log.s = s
	}
	// A new node makes its ledger (its key, if none was put there).
	if _, err := os.Stat(filepath.Join(n.cfg.Dir, "ledger", "segments")); errors.Is(err, fs.ErrNotExist) {
		l, err := ledger.Open(n.cfg.Dir, n.cfg.Ledger)
		if err != nil {
			return nil, fmt.Errorf("%w: node %s: %w", errLedger, n.cfg.Name, err)
		}
		if err := l.Close(); err != nil {
			return nil, fmt.Errorf("%w: node %s: %w", errLedger, n.cfg.Name, err)
		}
	}
	// Read-only first: a writable open signs a checkpoint over every
	// record, published or not.
	ro := n.cfg.Ledger
	ro.ReadOnly = true
	l, err := ledger.Open(n.cfg.Dir, ro)
	if err != nil {
		return nil, fmt.Errorf("%w: node %s: %w", errLedger, n.cfg.Name, err)
	}
	local := l.Next()
	last, err := n.log.Last(ctx)
	if err != nil {
		l.Close()
		return nil, err
	}
	// keep: the records the log holds, byte for byte. The ledger differs
	// from the log only in a tail (what this node wrote integrating and
	// never published): a binary search finds the last batch it holds.
	var keep uint64
	if local > 0 {
		b, err := n.lastHeld(ctx, l, last)
		if err != nil {
			l.Close()
			return nil, err
		}
		if b != nil {
			keep = b.commit.First + b.size
			n.logSeq, n.inDone = b.seq, b.inDone
		}
	}
	if err := l.Close(); err != nil {
		return nil, fmt.Errorf("%w: node %s: %w", errLedger, n.cfg.Name, err)
	}
	if keep < local {
		n.cfg.Log.Warn("moving aside records the integrated log does not hold", "node", n.cfg.Name, "from", keep, "to", local)
		if err := ledger.TruncateAfter(n.cfg.Dir, keep, n.cfg.Ledger); err != nil {
			return nil, fmt.Errorf("%w: node %s: %w", errLedger, n.cfg.Name, err)
		}
	}
	if l, err = ledger.Open(n.cfg.Dir, n.cfg.Ledger); err != nil {
		return nil, fmt.Errorf("%w: node %s: %w", errLedger, n.cfg.Name, err)
	}
	return l, nil
}

// lastHeld returns the last batch of the integrated log up to its message
// last whose records l holds byte for byte, nil if none. The batches l
// holds are a prefix of the log's: a binary search over the messages,
// each probe the last batch at or before it (markers hold no records).
func (n *Node) lastHeld(ctx context.Context, l *ledger.Ledger, last uint64) (*batch, error) {
	// batchAt returns the last batch at or before seq, nil if none.
	batchAt := func(seq uint64) (*batch, error) {
		for ; seq >= 1; seq-- {
			raw, err := n.log.s.GetMsg(ctx, seq)
			if err != nil {
				return nil, fmt.Errorf("cluster: node %s: reading %s message %d: %w", n.cfg.Name, StreamIntegrated, seq, err)
			}
			b, err := decodeBatch(seq, raw.Header, raw.Data)
			if b != nil || err != nil {
				return b, err
			}
		}
		return nil, nil
	}
	// held(seq): l holds the last batch at or before seq (true for none).
	var found *batch
	lo, hi := uint64(0), last // held(lo); !held(hi+1)
	for lo < hi {
		mid := lo + (hi-lo+1)/2
		b, err := batchAt(mid)
		if err != nil {
			return nil, err
		}
		same := true
		if b != nil {
			if same, err = sameLines(l, b); err != nil {
				return nil, err
			}
		}
		if same {
			lo = mid
			if b != nil {
				found = b
			}
		} else {
			hi = mid - 1
		}
	}
	return found, nil // the last batch at or before lo, probed when lo was
}

// sameLines reports whether the ledger holds b's records byte for byte
// (false when it holds fewer).
func sameLines(l *ledger.Ledger, b *batch) (bool, error) {
	if b.commit.First+b.size > l.Next() {
		return false, nil
	}
	r, err := l.NewReader(b.commit.First)
	if err != nil {
		return false, fmt.Errorf("cluster: reading record %d: %w", b.commit.First, err)
	}
	defer r.Close()
	rest := b.commit.Lines
	for range b.size {
		line, err := r.NextLine()
		if err != nil {
			return false, fmt.Errorf("cluster: reading record %d: %w", r.Cursor(), err)
		}
		if !bytes.HasPrefix(rest, line) || len(rest) == len(line) || rest[len(line)] != '\n' {
			return false, nil
		}
		rest = rest[len(line)+1:]
	}
	return len(rest) == 0, nil
}

// pullExpiry is how long each pull of the nodes' ordered consumers waits
// for messages (JetStream's default is 30 s). An ordered consumer's first
// pull can go unanswered (sent as the consumer is being placed on its
// server); the client notices it only by missed heartbeats, two of them,
// and an ordered consumer's heartbeat is half the expiry up to 5 s: with
// the default, a node that just started (a gateway's copy, the
// integrator's read of LEDGER_IN) could sit 10 s before its first message
// (seen: a first request on a new gateway answered after 9.7 s). Two
// seconds makes that 2 s, for one pull a second per idle consumer.
const pullExpiry = jetstream.PullExpiry(2 * time.Second)

// follow applies the integrated log to l from n.logSeq on, and tries for
// the lease every half TTL. It returns the lease once won, with every
// batch up to the log's end at that moment applied.
func (n *Node) follow(ctx context.Context, l *ledger.Ledger) (*Lease, error) {
	cons, err := n.log.s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: n.logSeq + 1,
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: node %s: following %s: %w", n.cfg.Name, StreamIntegrated, err)
	}
	it, err := cons.Messages(pullExpiry)
	if err != nil {
		return nil, fmt.Errorf("cluster: node %s: following %s: %w", n.cfg.Name, StreamIntegrated, err)
	}
	defer it.Stop()
	defer context.AfterFunc(ctx, it.Stop)()
	won := make(chan *Lease, 1)
	lctx, stopTrying := context.WithCancel(ctx)
	defer stopTrying()
	go func() {
		if n.cfg.Follower {
			return
		}
		t := time.NewTicker(n.cfg.LeaseTTL / 2)
		defer t.Stop()
		for {
			lease, err := Acquire(lctx, n.js, n.cfg.Name, LeaseOptions{TTL: n.cfg.LeaseTTL})
			if err == nil {
				won <- lease
				it.Stop()
				return
			}
			if !errors.Is(err, ErrLeaseHeld) && lctx.Err() == nil {
				n.cfg.Log.Warn("lease", "node", n.cfg.Name, "err", err)
			}
			select {
			case <-lctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	for {
		m, err := it.Next()
		if err != nil {
			select {
			case lease := <-won:
				// Apply the log to its end before integrating.
				if err := n.catchUp(ctx, l); err != nil {
					return nil, err
				}
				return lease, nil
			default:
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("cluster: node %s: following %s: %w", n.cfg.Name, StreamIntegrated, err)
		}
		md, err := m.Metadata()
		if err != nil {
			return nil, fmt.Errorf("cluster: %s: %w", StreamIntegrated, err)
		}
		if err := n.applyMsg(ctx, l, md.Sequence.Stream, m.Headers(), m.Data()); err != nil {
			return nil, err
		}
	}
}

// catchUp applies the log up to its last sequence now.
func (n *Node) catchUp(ctx context.Context, l *ledger.Ledger) error {
	last, err := n.log.Last(ctx)
	if err != nil {
		return err
	}
	for seq := n.logSeq + 1; seq <= last; seq++ {
		raw, err := n.log.s.GetMsg(ctx, seq)
		if err != nil {
			return fmt.Errorf("cluster: node %s: reading %s message %d of %d: %w", n.cfg.Name, StreamIntegrated, seq, last, err)
		}
		if err := n.applyMsg(ctx, l, seq, raw.Header, raw.Data); err != nil {
			return err
		}
	}
	return nil
}

func (n *Node) applyMsg(ctx context.Context, l *ledger.Ledger, seq uint64, h nats.Header, data []byte) error {
	b, err := decodeBatch(seq, h, data)
	if err != nil {
		return err
	}
	if b != nil {
		switch end := b.commit.First + b.size; {
		case end <= l.Next():
			// Held already (reconcile checked it).
		case b.commit.First != l.Next():
			return fmt.Errorf("%w: node %s: %s message %d begins at record %d; the ledger is at %d", errLedger, n.cfg.Name, StreamIntegrated, seq, b.commit.First, l.Next())
		default:
			if err := l.Apply(ctx, b.commit); err != nil {
				return fmt.Errorf("%w: node %s: applying %s message %d: %w", errLedger, n.cfg.Name, StreamIntegrated, seq, err)
			}
			n.stats.applied.Add(1)
		}
		n.inDone = b.inDone
	}
	n.logSeq = seq
	n.stats.logSeq.Store(seq)
	return nil
}

// keepLease renews lease every third of its TTL until the returned stop
// is called; losing it fails pub, which stops the integration.
func (n *Node) keepLease(ctx context.Context, lease *Lease, pub *publisher) (stop func()) {
	return background(ctx, func(ctx context.Context) {
		t := time.NewTicker(n.cfg.LeaseTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if err := lease.Renew(ctx); err != nil && ctx.Err() == nil {
				pub.fail(err)
				return
			}
		}
	})
}

// background runs f in a goroutine until stop is called: stop ends f's
// context and waits for f to return.
func background(ctx context.Context, f func(context.Context)) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(ctx)
	}()
	return func() { cancel(); <-done }
}

// integrate runs the integrator while lease holds: it reopens the ledger
// publishing to the integrated log, fences the log, and appends LEDGER_IN
// from after the last batch's HeaderInDone. It returns the number of
// records published (what the ledger may keep) and why it stopped.
func (n *Node) integrate(ctx context.Context, pub *publisher) (uint64, error) {
	lease := pub.lease
	cfg := commitBound(n.cfg.Ledger, n.nc.MaxPayload())
	cfg.Publish = pub.publish
	l, err := ledger.Open(n.cfg.Dir, cfg)
	if err != nil {
		return 0, fmt.Errorf("%w: node %s: %w", errLedger, n.cfg.Name, err)
	}
	pub.published = l.Next()
	pub.last = n.logSeq
	defer func() {
		n.setLedger(nil)
		l.Close()
		n.logSeq = pub.last
	}()
	fseq, err := n.log.Fence(ctx, lease, n.logSeq)
	if err != nil {
		return pub.published, err
	}
	pub.last = fseq
	n.logSeq = fseq
	n.stats.logSeq.Store(fseq)
	n.stats.epoch.Store(lease.Epoch())
	n.stats.leases.Add(1)
	n.stats.integrating.Store(true)
	defer func() {
		n.stats.integrating.Store(false)
		n.stats.stepdowns.Add(1)
	}()
	n.cfg.Log.Info("integrating", "node", n.cfg.Name, "epoch", lease.Epoch(), "records", l.Next(), "in_from", n.inDone+1)
	n.setLedger(l)
	if n.cfg.Ticks != nil {
		defer background(ctx, func(ctx context.Context) { n.cfg.Ticks(ctx, l) })() // stopped before the ledger closes
	}

	in, err := n.js.Stream(ctx, StreamIn)
	if err != nil {
		return pub.published, fmt.Errorf("cluster: %s: %w", StreamIn, err)
	}
	cons, err := in.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: n.inDone + 1,
	})
	if err != nil {
		return pub.published, fmt.Errorf("cluster: %s: %w", StreamIn, err)
	}
	it, err := cons.Messages(pullExpiry)
	if err != nil {
		return pub.published, fmt.Errorf("cluster: %s: %w", StreamIn, err)
	}
	defer it.Stop()
	defer context.AfterFunc(ctx, it.Stop)()
	if err := pub.setStop(it.Stop); err != nil {
		return pub.done(), err
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	sem := make(chan struct{}, n.cfg.InFlight)
	for {
		m, err := it.Next()
		if err != nil {
			if perr := pub.failed(); perr != nil {
				return pub.done(), perr
			}
			if ctx.Err() != nil {
				return pub.done(), nil
			}
			return pub.done(), fmt.Errorf("cluster: %s: %w", StreamIn, err)
		}
		md, err := m.Metadata()
		if err != nil {
			return pub.done(), fmt.Errorf("cluster: %s: %w", StreamIn, err)
		}
		inSeq := md.Sequence.Stream
		entries, derr := decodeEntries(m.Data())
		replyTo := m.Headers().Get(HeaderReply)
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return pub.done(), nil
		}
		pub.begin(inSeq)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			var res []ledger.Result
			err := derr
			if err == nil {
				res, err = l.Append(ctx, entries)
			}
			pub.end(inSeq)
			if replyTo != "" && !errors.Is(err, context.Canceled) {
				for _, part := range encodeReply(res, err, replyBytes(n.nc.MaxPayload())) {
					if perr := n.nc.Publish(replyTo, part); perr != nil {
						// The gateway answers ErrNoAnswer; the client's retry
						// is answered by the idempotency check.
						n.cfg.Log.Warn("answering a gateway", "node", n.cfg.Name, "in_seq", inSeq, "err", perr)
						break
					}
				}
			}
		}()
	}
}

// commitBound bounds the commits of an integrating ledger of cfg so that
// each fits one NATS message of maxPayload bytes (the server's limit, 1
// MiB by default): a record's body at most an eighth of it, a commit's
// lines the rest less one record and room for the receipt and headers.
func commitBound(cfg ledger.Config, maxPayload int64) ledger.Config {
	const room = 32 << 10 // the receipt, the headers, a record's framing
	entry := int(maxPayload / 8)
	if cfg.MaxEntryBytes <= 0 || cfg.MaxEntryBytes > entry {
		cfg.MaxEntryBytes = entry
	}
	batch := bytesize.Size(maxPayload - int64(cfg.MaxEntryBytes) - room)
	if cfg.MaxBatchBytes <= 0 || cfg.MaxBatchBytes > batch {
		cfg.MaxBatchBytes = batch
	}
	return cfg
}

// publisher is the integrating ledger's Config.Publish: each commit goes
// to the integrated log, fenced, in order.
type publisher struct {
	n     *Node
	lease *Lease

	mu        sync.Mutex
	last      uint64 // the integrated log's last sequence, written by us
	published uint64 // records published
	err       error
	stop      func() // stops taking LEDGER_IN messages
	// The LEDGER_IN messages being appended, and the highest begun.
	inflight map[uint64]struct{}
	maxIn    uint64
}

func (p *publisher) begin(seq uint64) {
	p.mu.Lock()
	if p.inflight == nil {
		p.inflight = map[uint64]struct{}{}
	}
	p.inflight[seq] = struct{}{}
	p.maxIn = max(p.maxIn, seq)
	p.mu.Unlock()
}

func (p *publisher) end(seq uint64) {
	p.mu.Lock()
	delete(p.inflight, seq)
	p.mu.Unlock()
}

// inDone is HeaderInDone's value now: the messages before the lowest one
// in flight (those in this commit are still in flight: counted not done,
// to be taken again by a successor, harmlessly).
func (p *publisher) inDone() uint64 {
	done := p.maxIn
	for s := range p.inflight {
		done = min(done, s-1)
	}
	return max(done, p.n.inDone)
}

func (p *publisher) publish(ctx context.Context, c ledger.Commit) error {
	data, err := c.MarshalBinary()
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return p.err
	}
	done := p.inDone()
	// The ledger never cancels ctx: bound the wait here. A publish that
	// lands after this gives up is found in the log by the follower.
	ctx, cancel := context.WithTimeout(ctx, p.n.cfg.LeaseTTL)
	defer cancel()
	seq, err := p.n.log.AppendWith(ctx, p.lease, p.last, data, nats.Header{HeaderInDone: []string{strconv.FormatUint(done, 10)}})
	if err != nil {
		p.err = err
		if p.stop != nil {
			go p.stop()
		}
		return err
	}
	p.last = seq
	p.published = c.First + c.Receipt.Batch.Size
	p.n.inDone = done
	p.n.stats.logSeq.Store(seq)
	p.n.stats.published.Add(1)
	return nil
}

// setStop sets what stops taking LEDGER_IN messages, or returns the
// failure that came first.
func (p *publisher) setStop(stop func()) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stop = stop
	return p.err
}

// fail stops the integration for err (the first error counts).
func (p *publisher) fail(err error) {
	p.mu.Lock()
	if p.err == nil {
		p.err = err
	}
	stop := p.stop
	p.mu.Unlock()
	if stop != nil {
		stop()
	}
}

func (p *publisher) failed() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

func (p *publisher) done() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.published
}
