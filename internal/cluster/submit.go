package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"github.com/loglineos/loglineos/internal/ledger"
)

// ErrIntegrator is wrapped by Submitter.Append's error when the integrator
// refused a message (its ledger failed); nothing of it was acknowledged.
var ErrIntegrator = errors.New("cluster: the integrator refused the spans")

// ErrNoAnswer is wrapped by Submitter.Append's error when no integrator
// answered in time. The spans may or may not be in the ledger: a client
// retries with the same span ids, and the retry is answered with the
// original receipts.
var ErrNoAnswer = errors.New("cluster: no answer from the integrator in time")

// DefaultSubmitTimeout bounds how long a gateway waits for the integrator's
// answer: longer than a lease's time to live, so that a standby taking
// over answers requests published while the integrator died.
const DefaultSubmitTimeout = 3 * DefaultLeaseTTL

// DefaultMessageBytes bounds the entries' bytes one LEDGER_IN message
// carries (NATS's default maximum payload is 1 MiB; a server configured
// with less bounds a message to half its maximum payload).
const DefaultMessageBytes = 512 << 10

// PublishInFlight is how many LEDGER_IN messages a Submitter publishes at
// once when requests are waiting (each waits for its replicas' fsyncs).
const PublishInFlight = 4

// messageBytes is the bound of a LEDGER_IN message's entries on a server
// whose maximum payload is maxPayload.
func messageBytes(maxPayload int64) int {
	return int(min(DefaultMessageBytes, maxPayload/2))
}

// Submitter is a gateway's side of the cluster: it publishes requests'
// entries to LEDGER_IN and waits for the integrator's answer, which carries
// the receipts once the spans are in LEDGER_INTEGRATED. It has the shape of
// the single-node ledger's Append.
//
// JetStream with sync_interval: always makes every message an fsync on
// each replica, so the Submitter is a group commit of its own: while one
// message is being published, the requests that arrive wait and go
// together in the next (up to DefaultMessageBytes), and the integrator's
// answer is split back among them. A request larger than a message goes
// in several.
type Submitter struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	timeout time.Duration
	max     int    // a message's entries' bytes (messageBytes)
	prefix  string // of the reply subjects, ending in "."
	sub     *nats.Subscription

	mu      sync.Mutex
	waiting map[string]*message // by reply subject
	queue   []*request
	closed  bool
	wake    chan struct{} // a request was queued
	done    chan struct{} // closed by Close
	stopped chan struct{} // closed when the publishing goroutine returns

	stats struct{ requests, messages, noAnswer, failed atomic.Uint64 }
}

// SubmitterStats are a Submitter's counters since it started.
type SubmitterStats struct {
	// Requests counts the Append calls; Messages the LEDGER_IN messages
	// published; NoAnswer the calls that failed with ErrNoAnswer; Failed
	// those that failed otherwise (the integrator refused them, a
	// publish failed).
	Requests, Messages, NoAnswer, Failed uint64
}

// Stats returns the Submitter's counters.
func (s *Submitter) Stats() SubmitterStats {
	return SubmitterStats{Requests: s.stats.requests.Load(), Messages: s.stats.messages.Load(),
		NoAnswer: s.stats.noAnswer.Load(), Failed: s.stats.failed.Load()}
}

// request is one Append call.
type request struct {
	entries []ledger.Entry
	answer  chan answer // buffered: never blocks
}

type answer struct {
	res []ledger.Result
	err error
}

// message is one LEDGER_IN message: the requests it carries, in order,
// and the results of the answer's parts received so far (got of them).
type message struct {
	reqs []*request
	res  []ledger.Result
	got  int
}

// NewSubmitter returns a Submitter publishing over nc; timeout 0 means
// DefaultSubmitTimeout. Close it to stop.
func NewSubmitter(nc *nats.Conn, timeout time.Duration) (*Submitter, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	if timeout <= 0 {
		timeout = DefaultSubmitTimeout
	}
	s := &Submitter{nc: nc, js: js, timeout: timeout, max: messageBytes(nc.MaxPayload()), prefix: nc.NewRespInbox() + ".",
		waiting: map[string]*message{}, wake: make(chan struct{}, 1), done: make(chan struct{}), stopped: make(chan struct{})}
	s.sub, err = nc.Subscribe(s.prefix+"*", s.onAnswer)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	go s.publishLoop()
	return s, nil
}

// Close stops receiving answers; requests waiting for one fail with
// ErrNoAnswer.
func (s *Submitter) Close() error {
	err := s.sub.Unsubscribe()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return err
	}
	s.closed = true
	close(s.done)
	queued := s.queue
	s.queue = nil
	for subject, m := range s.waiting {
		delete(s.waiting, subject)
		for _, r := range m.reqs {
			r.answer <- answer{err: fmt.Errorf("%w: the submitter closed", ErrNoAnswer)}
		}
	}
	s.mu.Unlock()
	for _, r := range queued {
		r.answer <- answer{err: errors.New("cluster: the submitter is closed")}
	}
	<-s.stopped
	return err
}

// onAnswer takes one part of the integrator's answer to a message and,
// once the parts hold every result, splits them among its requests.
func (s *Submitter) onAnswer(m *nats.Msg) {
	s.mu.Lock()
	defer s.mu.Unlock()
	msg := s.waiting[m.Subject]
	if msg == nil {
		return // answered already, or given up
	}
	n := 0
	for _, r := range msg.reqs {
		n += len(r.entries)
	}
	from, res, err := decodeReply(m.Data, n)
	if err == nil && from != msg.got {
		// Parts come in order from one connection: one went missing.
		err = fmt.Errorf("%w: the answer's part from result %d came after %d results", ErrNoAnswer, from, msg.got)
	}
	if err == nil {
		if msg.res == nil {
			msg.res = make([]ledger.Result, n)
		}
		msg.got += copy(msg.res[from:], res)
		if msg.got < n {
			return // more parts to come
		}
		res = msg.res
	}
	delete(s.waiting, m.Subject)
	for _, r := range msg.reqs {
		if err != nil {
			r.answer <- answer{err: err}
			continue
		}
		k := len(r.entries)
		r.answer <- answer{res: res[:k:k]}
		res = res[k:]
	}
}

// Append publishes entries to LEDGER_IN (with other requests' entries
// arriving meanwhile) and returns the integrator's results, one per entry
// as ledger.Append returns them. Entries larger than a message go in
// several, each answered on its own (as a single ledger's Append, a
// failed call may have stored some of them). An error means nothing was
// acknowledged to this caller (ErrNoAnswer: the spans may still be
// integrated; a retry with the same ids is safe, answered with the
// original receipts).
func (s *Submitter) Append(ctx context.Context, entries []ledger.Entry) ([]ledger.Result, error) {
	s.stats.requests.Add(1)
	res, err := s.append(ctx, entries)
	switch {
	case errors.Is(err, ErrNoAnswer):
		s.stats.noAnswer.Add(1)
	case err != nil:
		s.stats.failed.Add(1)
	}
	return res, err
}

func (s *Submitter) append(ctx context.Context, entries []ledger.Entry) ([]ledger.Result, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	var reqs []*request
	for from, size, i := 0, 0, 0; i <= len(entries); i++ {
		var n int
		if i < len(entries) {
			n = entriesSize(entries[i : i+1])
			if n > s.max {
				return nil, fmt.Errorf("cluster: entry %d (%s/%s) of about %d bytes exceeds a message's %d", i, entries[i].Tenant, entries[i].ID, n, s.max)
			}
		}
		if i == len(entries) || size+n > s.max {
			reqs = append(reqs, &request{entries: entries[from:i:i], answer: make(chan answer, 1)})
			from, size = i, 0
		}
		size += n
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errors.New("cluster: the submitter is closed")
	}
	s.queue = append(s.queue, reqs...)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	t := time.NewTimer(s.timeout)
	defer t.Stop()
	var out []ledger.Result
	var first error
	for _, r := range reqs {
		select {
		case a := <-r.answer:
			if a.err != nil && first == nil {
				first = a.err
			}
			out = append(out, a.res...)
		case <-t.C:
			return nil, fmt.Errorf("%w (%s)", ErrNoAnswer, s.timeout)
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", ErrNoAnswer, ctx.Err())
		}
	}
	if first != nil {
		return nil, first
	}
	return out, nil
}

// publishLoop publishes the queued requests: one message when none is in
// flight, so that the requests arriving while it is published go together
// in the next; more (up to PublishInFlight) only while a quarter of a
// message or more is waiting, so that large messages overlap their
// replicas' writes while small requests still wait to be grouped.
func (s *Submitter) publishLoop() {
	defer close(s.stopped)
	var wg sync.WaitGroup
	defer wg.Wait()
	freed := make(chan struct{}, PublishInFlight)
	inflight := 0
	for {
		for inflight < PublishInFlight {
			reqs := s.take(inflight == 0)
			if len(reqs) == 0 {
				break
			}
			inflight++
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.publish(reqs)
				freed <- struct{}{}
			}()
		}
		select {
		case <-s.done:
			return
		case <-s.wake:
		case <-freed:
			inflight--
		}
	}
}

// take takes the queued requests that fit in one message: any, when
// force, else only once they make a quarter of a message or more.
func (s *Submitter) take(force bool) []*request {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, bytes, more := 0, 0, false
	for _, r := range s.queue {
		size := entriesSize(r.entries)
		if n > 0 && bytes+size > s.max {
			more = true
			break
		}
		n, bytes = n+1, bytes+size
	}
	if !force && !more && bytes < s.max/4 {
		return nil
	}
	reqs := s.queue[:n:n]
	s.queue = s.queue[n:]
	return reqs
}

// entriesSize is about the bytes entries take in a message.
func entriesSize(entries []ledger.Entry) int {
	n := 0
	for _, e := range entries {
		n += len(e.Body) + len(e.Tenant) + len(e.ID) + len(e.This) + 64
	}
	return n
}

// publish publishes reqs as one message, retrying what may go away by
// itself, and leaves them waiting for the integrator's answer.
func (s *Submitter) publish(reqs []*request) {
	var all []ledger.Entry
	for _, r := range reqs {
		all = append(all, r.entries...)
	}
	fail := func(err error) {
		for _, r := range reqs {
			r.answer <- answer{err: err}
		}
	}
	data, err := encodeEntries(all)
	if err != nil {
		fail(err)
		return
	}
	id := ulid.Make().String()
	subject := s.prefix + id
	msg := &message{reqs: reqs}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		fail(errors.New("cluster: the submitter is closed"))
		return
	}
	s.waiting[subject] = msg
	s.mu.Unlock()
	m := nats.NewMsg(SubjectIn)
	m.Data = data
	m.Header.Set(HeaderReply, subject)
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	// The message id makes this gateway's own retries of the publish (a
	// lost acknowledgement, a leader change) one message in LEDGER_IN.
	for {
		_, err = s.js.PublishMsg(ctx, m, jetstream.WithMsgID(id))
		if err == nil || !retryable(err) || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-s.done:
			return // Close answered them
		case <-time.After(50 * time.Millisecond):
		}
	}
	if err == nil {
		s.stats.messages.Add(1)
		return // the answer comes to onAnswer
	}
	s.mu.Lock()
	_, still := s.waiting[subject]
	delete(s.waiting, subject)
	s.mu.Unlock()
	if !still {
		return // answered (the publish did land) or closed
	}
	if ctx.Err() != nil {
		fail(fmt.Errorf("%w: publishing to %s: %v", ErrNoAnswer, StreamIn, err))
		return
	}
	fail(fmt.Errorf("cluster: publishing to %s: %w", StreamIn, err))
}

// retryable reports whether a publish error may go away by itself: no
// responders while a stream leader is elected, timeouts.
func retryable(err error) bool {
	return errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) ||
		strings.Contains(err.Error(), "timeout")
}
