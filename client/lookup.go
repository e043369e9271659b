package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"time"
)

// recordJSON is a record as the lookups answer it.
type recordJSON struct {
	Seq  uint64          `json:"seq"`
	TS   time.Time       `json:"ts"`
	Leaf Hash            `json:"leaf"`
	Span json.RawMessage `json:"span"`
}

func (r recordJSON) record() Record {
	return Record{Seq: r.Seq, TS: r.TS, Leaf: r.Leaf, Kind: "span", Body: r.Span}
}

func pathOf(segs ...string) string {
	var b []byte
	for _, s := range segs {
		b = append(b, '/')
		b = append(b, url.PathEscape(s)...)
	}
	return string(b)
}

// Span returns the stored span with this tenant and id. It is ErrNotFound
// (an *Error) when there is none.
func (c *Client) Span(ctx context.Context, tenant, id string) (*Record, error) {
	b, err := c.get(ctx, "/spans"+pathOf(tenant, id), nil)
	if err != nil {
		return nil, err
	}
	var r recordJSON
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("loglineos: span %s/%s: %w", tenant, id, err)
	}
	rec := r.record()
	return &rec, nil
}

// Thing returns every stored span of one thing (the spans whose "this" it
// is), in ledger order, following the server's pages. A thing with no spans
// is an empty list, not an error.
func (c *Client) Thing(ctx context.Context, tenant, this string) ([]Record, error) {
	var out []Record
	q := url.Values{}
	for {
		b, err := c.get(ctx, "/things"+pathOf(tenant, this), q)
		if err != nil {
			return nil, err
		}
		var page struct {
			Spans      []recordJSON `json:"spans"`
			NextCursor *uint64      `json:"next_cursor"`
		}
		if err := json.Unmarshal(b, &page); err != nil {
			return nil, fmt.Errorf("loglineos: thing %s/%s: %w", tenant, this, err)
		}
		for _, r := range page.Spans {
			out = append(out, r.record())
		}
		if page.NextCursor == nil {
			return out, nil
		}
		if len(page.Spans) == 0 || *page.NextCursor <= page.Spans[len(page.Spans)-1].Seq {
			return nil, fmt.Errorf("loglineos: thing %s/%s: next_cursor %d does not move on", tenant, this, *page.NextCursor)
		}
		q.Set("cursor", strconv.FormatUint(*page.NextCursor, 10))
	}
}

// Receipt returns the receipt of the stored span with this tenant and id.
func (c *Client) Receipt(ctx context.Context, tenant, id string) (*Receipt, error) {
	b, err := c.get(ctx, "/receipts"+pathOf(tenant, id), nil)
	if err != nil {
		return nil, err
	}
	var r Receipt
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("loglineos: receipt %s/%s: %w", tenant, id, err)
	}
	return &r, nil
}

// Checkpoint returns the latest signed checkpoint, the signed note as the
// server sent it; OpenCheckpoint verifies and reads it. It is ErrNotFound
// before the ledger's first checkpoint.
func (c *Client) Checkpoint(ctx context.Context) ([]byte, error) {
	return c.get(ctx, "/ledger/checkpoint", nil)
}

// Proof returns the inclusion proof of record seq in the tree of size
// records; size 0 means the size of the latest checkpoint, which may have
// moved on by the time the caller fetches it. To check a record against a
// checkpoint, prove it at that checkpoint's size:
//
//	note, _ := c.Checkpoint(ctx)
//	cp, _ := client.OpenCheckpoint(key, note)
//	p, _ := c.Proof(ctx, rec.Seq, cp.Size)
//	err := client.VerifyInclusion(key, *rec, *p, note)
func (c *Client) Proof(ctx context.Context, seq, size uint64) (*Proof, error) {
	q := url.Values{"seq": {strconv.FormatUint(seq, 10)}}
	if size > 0 {
		q.Set("size", strconv.FormatUint(size, 10))
	}
	b, err := c.get(ctx, "/ledger/proof", q)
	if err != nil {
		return nil, err
	}
	var p Proof
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("loglineos: proof of %d: %w", seq, err)
	}
	return &p, nil
}

// Key returns the ledger's verifier key, in signed-note form
// (origin+keyhash+base64 key). Verification is only as good as the key:
// get it from the ledger's operator once, out of band, and keep it, rather
// than trusting each answer of the server you are checking.
func (c *Client) Key(ctx context.Context) (string, error) {
	b, err := c.get(ctx, "/ledger/key", nil)
	if err != nil {
		return "", err
	}
	return string(bytes.TrimSpace(b)), nil
}
