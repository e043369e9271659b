package cluster

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Log is the integrated log, LEDGER_INTEGRATED, as an integrator writes
// it: fenced appends only.
type Log struct {
	js jetstream.JetStream
	s  jetstream.Stream
}

// OpenLog opens the integrated log (Setup made it).
func OpenLog(ctx context.Context, js jetstream.JetStream) (*Log, error) {
	s, err := js.Stream(ctx, StreamIntegrated)
	if err != nil {
		return nil, fmt.Errorf("cluster: %s: %w", StreamIntegrated, err)
	}
	return &Log{js: js, s: s}, nil
}

// Last returns the log's last sequence (0 when empty).
func (g *Log) Last(ctx context.Context) (uint64, error) {
	info, err := g.s.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("cluster: %s: %w", StreamIntegrated, err)
	}
	return info.State.LastSeq, nil
}

// Fence appends the epoch marker of lease l after the log's sequence
// last, which its writer has read and applied: from then on, appends that
// name an earlier sequence are refused. It returns the marker's sequence.
func (g *Log) Fence(ctx context.Context, l *Lease, last uint64) (uint64, error) {
	return g.append(ctx, l, "epoch", last, []byte(l.Holder()), nil)
}

// Append appends payload after the sequence last, for lease l; it returns
// the new message's sequence, or an error wrapping ErrFenced when last is
// no longer the log's last sequence.
func (g *Log) Append(ctx context.Context, l *Lease, last uint64, payload []byte) (uint64, error) {
	return g.append(ctx, l, "batch", last, payload, nil)
}

// AppendWith is Append with headers h added to the message.
func (g *Log) AppendWith(ctx context.Context, l *Lease, last uint64, payload []byte, h nats.Header) (uint64, error) {
	return g.append(ctx, l, "batch", last, payload, h)
}

func (g *Log) append(ctx context.Context, l *Lease, kind string, last uint64, payload []byte, h nats.Header) (uint64, error) {
	m := nats.NewMsg(SubjectIntegrated)
	for k, v := range h {
		m.Header[k] = v
	}
	m.Data = payload
	m.Header.Set(HeaderEpoch, strconv.FormatUint(l.Epoch(), 10))
	m.Header.Set(HeaderKind, kind)
	// The message id makes a retry after an unanswered publish idempotent:
	// JetStream answers a duplicate id with the first message's sequence
	// (within the stream's duplicate window) before it checks the expected
	// last sequence, so a publish that landed is not mistaken for fencing.
	id := fmt.Sprintf("%d/%d", l.Epoch(), last)
	for try := 0; ; try++ {
		ack, err := g.js.PublishMsg(ctx, m, jetstream.WithExpectLastSequence(last), jetstream.WithMsgID(id))
		if err == nil {
			return ack.Sequence, nil
		}
		if !wrongLastSequence(err) {
			return 0, fmt.Errorf("cluster: %s: %w", StreamIntegrated, err)
		}
		// Fenced means the log moved past last. Two answers say so
		// wrongly, around a leader change: the client's own retry of a
		// publish that did land (its duplicate id not recognized yet), and
		// a replica that led before a partition healed answering from its
		// stale state. Ask the stream before believing it.
		// Right after a heal the stream may not answer at once: ask a few
		// times.
		for ask := 0; g.s != nil && ask < 20 && ctx.Err() == nil; ask++ {
			m, gerr := g.s.GetMsg(ctx, last+1)
			if gerr == nil {
				if m.Header.Get(nats.MsgIdHdr) == id {
					return last + 1, nil // ours
				}
				return 0, fmt.Errorf("%w (appending after %d, epoch %d)", ErrFenced, last, l.Epoch())
			}
			if errors.Is(gerr, jetstream.ErrMsgNotFound) {
				if info, ierr := g.s.Info(ctx); ierr == nil && info.State.LastSeq == last {
					break // nothing after last: a stale answer; publish again
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		if ctx.Err() != nil {
			return 0, fmt.Errorf("cluster: %s: appending after %d: %w (the stream did not say whether the log moved)", StreamIntegrated, last, ctx.Err())
		}
		if try < 3 {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		return 0, fmt.Errorf("%w (appending after %d, epoch %d)", ErrFenced, last, l.Epoch())
	}
}
