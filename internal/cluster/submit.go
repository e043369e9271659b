package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
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

// Submitter is a gateway's side of the cluster: it publishes each
// request's accepted spans as one LEDGER_IN message and waits for the
// integrator's answer, which carries the receipts once the spans are in
// LEDGER_INTEGRATED. It has the shape of the single-node ledger's Append.
type Submitter struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	timeout time.Duration
	prefix  string // of the reply subjects, ending in "."
	sub     *nats.Subscription

	mu      sync.Mutex
	waiting map[string]chan *nats.Msg
	closed  bool
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
	s := &Submitter{nc: nc, js: js, timeout: timeout, prefix: nc.NewRespInbox() + ".", waiting: map[string]chan *nats.Msg{}}
	s.sub, err = nc.Subscribe(s.prefix+"*", s.answer)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	return s, nil
}

// Close stops receiving answers; requests waiting for one fail with
// ErrNoAnswer.
func (s *Submitter) Close() error {
	err := s.sub.Unsubscribe()
	s.mu.Lock()
	for subject, ch := range s.waiting {
		close(ch)
		delete(s.waiting, subject)
	}
	s.closed = true
	s.mu.Unlock()
	return err
}

func (s *Submitter) answer(m *nats.Msg) {
	s.mu.Lock()
	ch := s.waiting[m.Subject]
	delete(s.waiting, m.Subject)
	s.mu.Unlock()
	if ch != nil {
		ch <- m // buffered: never blocks
	}
}

// Append publishes entries as one LEDGER_IN message and returns the
// integrator's results, one per entry as ledger.Append returns them. An
// error means nothing was acknowledged to this caller (ErrNoAnswer: the
// spans may still be integrated; a retry with the same ids is safe).
func (s *Submitter) Append(ctx context.Context, entries []ledger.Entry) ([]ledger.Result, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	data, err := encodeEntries(entries)
	if err != nil {
		return nil, err
	}
	id := ulid.Make().String()
	subject := s.prefix + id
	ch := make(chan *nats.Msg, 1)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errors.New("cluster: the submitter is closed")
	}
	s.waiting[subject] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.waiting[subject] == ch {
			delete(s.waiting, subject)
		}
		s.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	m := nats.NewMsg(SubjectIn)
	m.Data = data
	m.Header.Set(HeaderReply, subject)
	// The message id makes this gateway's own retries of the publish (a
	// lost acknowledgement, a leader change) one message in LEDGER_IN.
	for {
		_, err = s.js.PublishMsg(ctx, m, jetstream.WithMsgID(id))
		if err == nil || !retryable(err) || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w: publishing to %s: %v", ErrNoAnswer, StreamIn, err)
		}
		return nil, fmt.Errorf("cluster: publishing to %s: %w", StreamIn, err)
	}
	select {
	case a, ok := <-ch:
		if !ok {
			return nil, fmt.Errorf("%w: the submitter closed", ErrNoAnswer)
		}
		return decodeReply(a.Data, len(entries))
	case <-ctx.Done():
		return nil, fmt.Errorf("%w (%s)", ErrNoAnswer, s.timeout)
	}
}

// retryable reports whether a publish error may go away by itself: no
// responders while a stream leader is elected, timeouts.
func retryable(err error) bool {
	return errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) ||
		strings.Contains(err.Error(), "timeout")
}
