package history

import (
	"fmt"
	"sync"

	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
)

// Outcome is how an operation completed.
type Outcome uint8

// The outcomes of an operation.
const (
	// Pending: invoked, not completed yet. Check counts it indeterminate.
	Pending Outcome = iota
	// Ok: acknowledged with a receipt; the span must be in the ledger.
	Ok
	// Fail: definitely refused; this operation appended nothing.
	Fail
	// Info: indeterminate; the span may or may not be in the ledger.
	Info
)

func (o Outcome) String() string {
	switch o {
	case Pending:
		return "pending"
	case Ok:
		return "ok"
	case Fail:
		return "fail"
	case Info:
		return "info"
	}
	return fmt.Sprintf("Outcome(%d)", uint8(o))
}

// History is the record of a test's client operations. It is safe for
// concurrent use; the zero value is an empty history.
type History struct {
	mu sync.Mutex
	// tick is the clock: the last tick handed out.
	tick uint64
	ops  []*Op
}

// Op is one operation: its handle for the client that invoked it and its
// record in the history. A client completes it exactly once, with Ok, Fail
// or Info; completing it twice panics, as that is a fault of the test.
type Op struct {
	h *History
	// ev is written under h.mu.
	ev event
}

// Invoke records that client is about to send the span (tenant, spanID)
// with the given canonical body, and returns the operation's handle. The
// history keeps body; the caller must not change it afterwards.
func (h *History) Invoke(client, tenant, spanID string, body []byte) *Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.tick++
	op := &Op{h: h, ev: event{client: client, tenant: tenant, spanID: spanID, body: body, invoked: h.tick}}
	h.ops = append(h.ops, op)
	return op
}

// Ok records that the operation was acknowledged with receipt r: the span
// is in the ledger at r.Seq.
func (op *Op) Ok(r ledgerfmt.Receipt) {
	op.complete(Ok, r, "")
}

// Fail records a definite refusal (the server answered that it did not
// append the span: rejected, 4xx), with the reason given.
func (op *Op) Fail(reason string) {
	op.complete(Fail, ledgerfmt.Receipt{}, reason)
}

// Info records an indeterminate outcome (a timeout, a reset connection, a
// 5xx answer, the server killed): the span may or may not be in the ledger.
func (op *Op) Info(reason string) {
	op.complete(Info, ledgerfmt.Receipt{}, reason)
}

func (op *Op) complete(o Outcome, r ledgerfmt.Receipt, reason string) {
	h := op.h
	h.mu.Lock()
	defer h.mu.Unlock()
	e := &op.ev
	if e.outcome != Pending {
		panic(fmt.Sprintf("history: operation of %s on %s/%s completed twice (%s, then %s)", e.client, e.tenant, e.spanID, e.outcome, o))
	}
	h.tick++
	e.outcome, e.receipt, e.reason, e.done = o, r, reason, h.tick
}

// event is what the history knows of an operation: its invocation and
// outcome, each stamped with a tick (done is 0 while pending).
type event struct {
	client, tenant, spanID string
	body                   []byte
	invoked, done          uint64
	outcome                Outcome
	receipt                ledgerfmt.Receipt
	reason                 string
}

// events returns a copy of the operations in invocation order.
func (h *History) events() []event {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]event, len(h.ops))
	for i, op := range h.ops {
		out[i] = op.ev
	}
	return out
}
