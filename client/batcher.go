package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// BatchOptions tune a Batcher. Zero fields take the defaults.
type BatchOptions struct {
	// MaxSpans is the most spans one request carries. Default 1000.
	MaxSpans int
	// MaxBytes is the most body bytes one request carries; a span larger
	// than this goes alone. Default 4 MiB (the server takes 16 MiB).
	MaxBytes int
	// MaxDelay is the longest a span waits for its batch to fill before the
	// batch is sent anyway. Default 100ms.
	MaxDelay time.Duration
	// Concurrency is the most requests in flight at once. Default 2.
	Concurrency int
}

func (o BatchOptions) withDefaults() BatchOptions {
	if o.MaxSpans <= 0 {
		o.MaxSpans = 1000
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 4 << 20
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = 100 * time.Millisecond
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 2
	}
	return o
}

// A Batcher gathers spans from many goroutines into ingest requests: a
// batch is sent when it holds MaxSpans spans or MaxBytes bytes, or MaxDelay
// after its first span, whichever comes first, with at most Concurrency
// requests in flight. Each Add returns a Pending that resolves to that
// span's own result.
//
// Memory is bounded: at most one filling batch and Concurrency batches in
// flight are held; when every request slot is busy and the filling batch is
// full, Add blocks until a request returns (or its context ends). That is
// the backpressure a slow or throttled server puts on the app.
//
// Requests are retried as the client's RetryPolicy says: one that fails in
// transport or is answered 429, 502, 503 or 504 is sent again after a
// backoff (at least the server's Retry-After), which is safe because the
// server stores a span once per (tenant, id): a span an earlier try stored
// is answered as a Duplicate with its original receipt. A request refused with any other
// problem (401, 403, 413, ...) is not retried; its error is every span's
// result. Spans without an id make their batch unsafe to retry, so such a
// batch is sent once.
type Batcher struct {
	c    *Client
	opts BatchOptions

	in        chan item
	closing   chan struct{}
	closeOnce sync.Once
	done      chan struct{} // closed when every request has returned
	slots     chan struct{}
	ctx       context.Context // for the requests; canceled by an expired Close
	cancel    context.CancelFunc
}

// item is one span waiting for its batch.
type item struct {
	line  []byte
	hasID bool
	p     *Pending
}

// Pending is the future result of one span added to a Batcher.
type Pending struct {
	done chan struct{}
	res  LineResult
	err  error
}

// Done is closed once the result is known.
func (p *Pending) Done() <-chan struct{} { return p.done }

// Wait blocks until the span's request is answered, or ctx ends, and
// returns its result. The error is the *Error of the span's problem when
// the span was rejected (see LineResult.Err), the request's error when the
// request as a whole failed (the result is then zero), or ctx's error.
func (p *Pending) Wait(ctx context.Context) (LineResult, error) {
	select {
	case <-p.done:
		return p.res, p.err
	case <-ctx.Done():
		return LineResult{}, ctx.Err()
	}
}

func (p *Pending) resolve(res LineResult, err error) {
	p.res, p.err = res, err
	close(p.done)
}

// NewBatcher starts a batcher that sends spans through c. Call Close to
// send what remains and stop it.
func NewBatcher(c *Client, opts BatchOptions) *Batcher {
	ctx, cancel := context.WithCancel(context.Background())
	b := &Batcher{
		c:       c,
		opts:    opts.withDefaults(),
		in:      make(chan item), // unbuffered: an item is either taken by run or refused
		closing: make(chan struct{}),
		done:    make(chan struct{}),
		ctx:     ctx,
		cancel:  cancel,
	}
	b.slots = make(chan struct{}, b.opts.Concurrency)
	go b.run()
	return b
}

// Add queues a span. It blocks only while the batcher is at its memory
// bound; ctx bounds that wait, not the request, which carries other spans
// too (bound the request with Pending.Wait's context, or Close's). After
// Close it returns ErrClosed.
func (b *Batcher) Add(ctx context.Context, s Span) (*Pending, error) {
	line, err := appendSpan(nil, &s)
	if err != nil {
		return nil, fmt.Errorf("loglineos: batcher: %w", err)
	}
	return b.add(ctx, item{line: line[:len(line)-1], hasID: s.ID != ""})
}

// AddRaw is Add for a span the caller has as JSON already (see IngestRaw).
func (b *Batcher) AddRaw(ctx context.Context, span []byte) (*Pending, error) {
	line, err := rawLine(span)
	if err != nil {
		return nil, fmt.Errorf("loglineos: batcher: %w", err)
	}
	return b.add(ctx, item{line: line, hasID: allHaveIDs([][]byte{line})})
}

func (b *Batcher) add(ctx context.Context, it item) (*Pending, error) {
	it.p = &Pending{done: make(chan struct{})}
	select {
	case <-b.closing:
		return nil, ErrClosed
	default:
	}
	select {
	case b.in <- it:
		return it.p, nil
	case <-b.closing:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close sends the spans queued so far, waits for every request to be
// answered and stops the batcher. If ctx ends first, the requests still in
// flight are canceled (their spans' results are the cancellation error) and
// Close returns ctx's error. Close may be called more than once.
func (b *Batcher) Close(ctx context.Context) error {
	b.closeOnce.Do(func() { close(b.closing) })
	select {
	case <-b.done:
		return nil
	case <-ctx.Done():
		b.cancel()
		return ctx.Err()
	}
}

// run gathers items into batches and sends them.
func (b *Batcher) run() {
	var (
		batch   []item
		size    int
		wg      sync.WaitGroup
		timer   = time.NewTimer(time.Hour)
		timeout <-chan time.Time
	)
	timer.Stop()
	flush := func() {
		timer.Stop()
		timeout = nil
		if len(batch) == 0 {
			return
		}
		b.slots <- struct{}{} // wait for a request slot: the memory bound
		items := batch
		batch, size = nil, 0
		wg.Go(func() {
			defer func() { <-b.slots }()
			b.send(items)
		})
	}
	defer func() {
		wg.Wait()
		b.cancel()
		close(b.done)
	}()
	for {
		select {
		case it := <-b.in:
			if len(batch) > 0 && size+len(it.line)+1 > b.opts.MaxBytes {
				flush()
			}
			batch = append(batch, it)
			size += len(it.line) + 1
			if len(batch) == 1 {
				timer.Reset(b.opts.MaxDelay)
				timeout = timer.C
			}
			if len(batch) >= b.opts.MaxSpans || size >= b.opts.MaxBytes {
				flush()
			}
		case <-timeout:
			flush()
		case <-b.closing:
			flush()
			return
		}
	}
}

// send posts one batch and hands each span its result.
func (b *Batcher) send(items []item) {
	lines := make([][]byte, len(items))
	withIDs := true
	for i, it := range items {
		lines[i] = it.line
		withIDs = withIDs && it.hasID
	}
	body, err := ndjson(lines)
	var res *IngestResult
	if err == nil {
		res, err = b.c.ingest(b.ctx, body, len(items), func() bool { return withIDs })
	}
	if err != nil {
		if errors.Is(err, context.Canceled) && b.ctx.Err() != nil {
			err = after("loglineos: batcher closed before the request was answered", err)
		}
		for _, it := range items {
			it.p.resolve(LineResult{}, err)
		}
		return
	}
	for i, it := range items {
		lr := res.Results[i]
		it.p.resolve(lr, lr.Err())
	}
}
