package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/loglineos/loglineos/client"
)

// checkpointPoll is how often prove asks for a newer signed checkpoint.
const checkpointPoll = 200 * time.Millisecond

// till sells orders: it posts each order's spans and checks the server's
// answers against the ledger's verifier key.
type till struct {
	c      *client.Client
	key    string // the ledger's verifier key
	tenant string
	who    string
	run    string // this run's part of every id, so that a rerun stores new spans
	now    func() time.Time
}

func newTill(c *client.Client, key, tenant, who string) *till {
	b := make([]byte, 4)
	rand.Read(b)
	return &till{c: c, key: key, tenant: tenant, who: who, run: hex.EncodeToString(b), now: time.Now}
}

// sold is a stored span and its receipt, verified.
type sold struct {
	ID      string         `json:"id"`
	Did     string         `json:"did"`
	Seq     uint64         `json:"seq"`
	Receipt client.Receipt `json:"-"`
}

// spans returns the spans of order n: opened at the till, packed by the
// baker, closed when the customer paid.
func (t *till) spans(n int) []client.Span {
	order := fmt.Sprintf("order:%s-%d", t.run, n)
	at := t.now().UTC()
	gross, _ := json.Marshal(map[string]any{"gross": 4.5 * float64(n), "items": n})
	span := func(step, did string, by ...string) client.Span {
		return client.Span{ID: fmt.Sprintf("s_%s_%d_%s", t.run, n, step), Tenant: t.tenant, Who: t.who, Did: did,
			This: order, When: at, Status: "confirmed", ConfirmedBy: by, Data: gross}
	}
	return []client.Span{
		span("open", "sale.open"),
		span("pack", "sale.pack", "baker:ana"),
		span("close", "sale.close", "cashier:bo", "pos://"+t.who),
	}
}

// sell posts order n's spans in one request and verifies each receipt
// against the bytes sent: the server signed that it stored exactly them.
func (t *till) sell(ctx context.Context, n int) ([]sold, error) {
	spans := t.spans(n)
	res, err := t.c.Ingest(ctx, spans...)
	if err != nil {
		return nil, fmt.Errorf("order %d: %w", n, err)
	}
	out := make([]sold, len(spans))
	for i, r := range res.Results {
		if err := r.Err(); err != nil {
			return nil, fmt.Errorf("order %d: span %s: %w", n, spans[i].ID, err)
		}
		sent, err := json.Marshal(spans[i])
		if err != nil {
			return nil, err
		}
		if r.Receipt == nil {
			return nil, fmt.Errorf("order %d: span %s: stored without a receipt", n, spans[i].ID)
		}
		if err := client.VerifyReceipt(t.key, *r.Receipt, sent); err != nil {
			return nil, fmt.Errorf("order %d: span %s: %w", n, spans[i].ID, err)
		}
		out[i] = sold{ID: spans[i].ID, Did: spans[i].Did, Seq: r.Receipt.Seq, Receipt: *r.Receipt}
	}
	return out, nil
}

// prove waits for a signed checkpoint that covers every sale and checks
// each sale's inclusion proof against it: the spans are not only stored but
// part of the one ledger everybody else sees. It returns the checkpoint.
func (t *till) prove(ctx context.Context, sales []sold) (*client.Checkpoint, error) {
	var last uint64
	for _, s := range sales {
		last = max(last, s.Seq)
	}
	var note []byte
	var cp *client.Checkpoint
	for {
		var err error
		note, err = t.c.Checkpoint(ctx)
		switch {
		case errors.Is(err, client.ErrNotFound): // none yet
		case err != nil:
			return nil, err
		default:
			if cp, err = client.OpenCheckpoint(t.key, note); err != nil {
				return nil, err
			}
		}
		if cp != nil && cp.Size > last {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for a checkpoint past record %d: %w", last, ctx.Err())
		case <-time.After(checkpointPoll):
		}
	}
	for _, s := range sales {
		p, err := t.c.Proof(ctx, s.Seq, cp.Size)
		if err != nil {
			return nil, fmt.Errorf("span %s: %w", s.ID, err)
		}
		// The receipt tied the leaf to the span's bytes; the proof ties it to
		// the checkpoint.
		if p.Index != s.Seq || p.Leaf != s.Receipt.Leaf {
			return nil, fmt.Errorf("span %s: %w: the proof is for record %d, leaf %s; the receipt says %d, %s",
				s.ID, client.ErrBadProof, p.Index, p.Leaf, s.Seq, s.Receipt.Leaf)
		}
		if err := client.VerifyProof(t.key, *p, note); err != nil {
			return nil, fmt.Errorf("span %s: %w", s.ID, err)
		}
	}
	return cp, nil
}
