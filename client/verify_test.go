package client_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loglineos/loglineos/client"
	"github.com/loglineos/loglineos/internal/ledger"
	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
	"github.com/loglineos/loglineos/internal/server"
)

// otherKey is a verifier key of another ledger with the same origin.
func otherKey(t *testing.T) string {
	t.Helper()
	_, vkey, err := ledgerfmt.GenerateKey(nil, ledger.DefaultOrigin)
	if err != nil {
		t.Fatal(err)
	}
	return vkey
}

func TestVerifyReceipt(t *testing.T) {
	ts := startServer(t, serverOpts{})
	c := newClient(t, ts.URL)
	ctx := testCtx(t)
	key, err := c.Key(ctx)
	if err != nil {
		t.Fatal(err)
	}
	spans := sales("t_a", 0, 5) // one batch: receipts with audit paths
	res := ingest(t, c, spans...)
	for i, lr := range res.Results {
		if err := client.VerifyReceipt(key, *lr.Receipt, mustMarshal(t, spans[i])); err != nil {
			t.Errorf("receipt of %s: %v", spans[i].ID, err)
		}
	}
	if len(res.Results[2].Receipt.Batch.Path) == 0 {
		t.Fatal("want receipts of a batch of several spans, with audit paths")
	}

	good := *res.Results[2].Receipt
	span := spans[2]
	tests := []struct {
		name    string
		key     string
		receipt func(r *client.Receipt)
		span    func(s *client.Span)
		json    []byte // instead of span
		ok      bool
	}{
		{name: "as sent", ok: true},
		{name: "as stored, canonical", json: mustStored(t, c, span), ok: true},
		{name: "other formatting, same span", json: reformat(t, mustMarshal(t, span)), ok: true},
		{name: "a forged span", span: func(s *client.Span) { s.Who = "mallory" }},
		{name: "forged data", span: func(s *client.Span) { s.Data = []byte(`{"gross":1999,"items":3}`) }},
		{name: "another span's receipt", receipt: func(r *client.Receipt) { *r = *res.Results[1].Receipt }},
		{name: "receipt renamed to another span", receipt: func(r *client.Receipt) { r.SpanID = "s_1" }},
		{name: "another seq", receipt: func(r *client.Receipt) { r.Seq++ }},
		{name: "forged signature", receipt: func(r *client.Receipt) { r.Sig = append([]byte(nil), r.Sig...); r.Sig[0] ^= 1 }},
		{name: "forged audit path", receipt: func(r *client.Receipt) {
			r.Batch.Path = append([]client.Hash(nil), r.Batch.Path...)
			r.Batch.Path[0][0] ^= 1
		}},
		{name: "forged batch root", receipt: func(r *client.Receipt) { r.Batch.Root[0] ^= 1 }},
		{name: "forged time", receipt: func(r *client.Receipt) { r.TS.Time = r.TS.Add(1000) }},
		{name: "forged jti", receipt: func(r *client.Receipt) { r.JTI = "r_01JD8X3K2M4N5P6Q7R8S9T0V1W" }},
		{name: "another ledger's key", key: otherKey(t)},
		{name: "not JSON", json: []byte(`{"id":`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := good
			r.Batch.Path = append([]client.Hash(nil), good.Batch.Path...)
			if tt.receipt != nil {
				tt.receipt(&r)
			}
			s := span
			if tt.span != nil {
				tt.span(&s)
			}
			b := tt.json
			if b == nil {
				b = mustMarshal(t, s)
			}
			k := key
			if tt.key != "" {
				k = tt.key
			}
			err := client.VerifyReceipt(k, r, b)
			if tt.ok {
				if err != nil {
					t.Errorf("VerifyReceipt: %v", err)
				}
				return
			}
			if !errors.Is(err, client.ErrBadReceipt) {
				t.Errorf("VerifyReceipt = %v, want ErrBadReceipt", err)
			}
		})
	}
	// A receipt survives its own JSON encoding.
	var back client.Receipt
	if err := json.Unmarshal(mustMarshal(t, good), &back); err != nil {
		t.Fatal(err)
	}
	if err := client.VerifyReceipt(key, back, mustMarshal(t, span)); err != nil {
		t.Errorf("receipt after a JSON round trip: %v", err)
	}
	if err := client.VerifyReceipt("not a key", good, mustMarshal(t, span)); err == nil || errors.Is(err, client.ErrBadReceipt) {
		t.Errorf("a malformed key: %v, want an error that is not ErrBadReceipt", err)
	}
}

func TestVerifyProof(t *testing.T) {
	ts := startServer(t, serverOpts{})
	c := newClient(t, ts.URL)
	ctx := testCtx(t)
	key, err := c.Key(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ { // several commits
		ingest(t, c, sales("t_a", 3*i, 3)...)
	}
	if _, err := ts.srv.Ledger().WriteCheckpoint(ctx); err != nil {
		t.Fatal(err)
	}
	note, err := c.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := client.OpenCheckpoint(key, note)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != 9 || cp.Origin != ledger.DefaultOrigin || !bytes.Equal(cp.Note, note) {
		t.Fatalf("checkpoint %+v", cp)
	}
	recs, err := c.Thing(ctx, "t_a", "order:1")
	if err != nil || len(recs) != 9 {
		t.Fatalf("Thing: %d records, %v", len(recs), err)
	}
	for _, rec := range recs {
		p, err := c.Proof(ctx, rec.Seq, cp.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := client.VerifyInclusion(key, rec, *p, note); err != nil {
			t.Errorf("record %d: %v", rec.Seq, err)
		}
	}

	rec := recs[4]
	good, err := c.Proof(ctx, rec.Seq, 0) // the latest checkpoint's size
	if err != nil {
		t.Fatal(err)
	}
	smaller, err := c.Proof(ctx, rec.Seq, 7)
	if err != nil {
		t.Fatal(err)
	}
	forgedNote := bytes.Replace(note, []byte("\n9\n"), []byte("\n10\n"), 1)
	tests := []struct {
		name   string
		key    string
		proof  func(p *client.Proof)
		record func(r *client.Record)
		note   []byte
		ok     bool
	}{
		{name: "as served", ok: true},
		{name: "forged path", proof: func(p *client.Proof) { p.Path[1][0] ^= 1 }},
		{name: "path cut short", proof: func(p *client.Proof) { p.Path = p.Path[:len(p.Path)-1] }},
		{name: "another index", proof: func(p *client.Proof) { p.Index++ }},
		{name: "another leaf", proof: func(p *client.Proof) { p.Leaf = recs[5].Leaf }},
		{name: "forged root", proof: func(p *client.Proof) { p.Root[0] ^= 1 }},
		{name: "proof for another tree size", proof: func(p *client.Proof) { *p = *smaller }},
		{name: "forged record", record: func(r *client.Record) { r.Body = bytes.Replace(r.Body, []byte("dan"), []byte("eve"), 1) }},
		{name: "another record", record: func(r *client.Record) { *r = recs[5] }},
		{name: "forged checkpoint", note: forgedNote},
		{name: "another ledger's key", key: otherKey(t)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := *good
			p.Path = append([]client.Hash(nil), good.Path...)
			if tt.proof != nil {
				tt.proof(&p)
			}
			r := rec
			if tt.record != nil {
				tt.record(&r)
			}
			n, k := note, key
			if tt.note != nil {
				n = tt.note
			}
			if tt.key != "" {
				k = tt.key
			}
			err := client.VerifyInclusion(k, r, p, n)
			if tt.ok {
				if err != nil {
					t.Errorf("VerifyInclusion: %v", err)
				}
				if err := client.VerifyProof(k, p, n); err != nil {
					t.Errorf("VerifyProof: %v", err)
				}
				return
			}
			if !errors.Is(err, client.ErrBadProof) {
				t.Errorf("VerifyInclusion = %v, want ErrBadProof", err)
			}
			if tt.record == nil {
				if err := client.VerifyProof(k, p, n); !errors.Is(err, client.ErrBadProof) {
					t.Errorf("VerifyProof = %v, want ErrBadProof", err)
				}
			}
		})
	}
	if _, err := client.OpenCheckpoint(key, forgedNote); !errors.Is(err, client.ErrBadProof) {
		t.Errorf("OpenCheckpoint of a forged note: %v, want ErrBadProof", err)
	}
}

func TestCheckpointOfEmptyLedger(t *testing.T) {
	ts := startServer(t, serverOpts{})
	c := newClient(t, ts.URL)
	key, err := c.Key(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	note, err := c.Checkpoint(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if cp, err := client.OpenCheckpoint(key, note); err != nil || cp.Size != 0 {
		t.Errorf("checkpoint of an empty ledger: %+v, %v; want size 0", cp, err)
	}
	if _, err := c.Proof(testCtx(t), 0, 0); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("Proof in an empty ledger: %v, want ErrNotFound", err)
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mustStored returns the span's body as the ledger stored it.
func mustStored(t *testing.T, c *client.Client, s client.Span) []byte {
	t.Helper()
	rec, err := c.Span(testCtx(t), s.Tenant, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	return rec.Body
}

// reformat indents b and reverses the order of its members.
func reformat(t *testing.T, b []byte) []byte {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	out.WriteString("{\n")
	keys := []string{"who", "when", "this", "tenant", "status", "id", "did", "data", "confirmed_by"}
	for i, k := range keys {
		if i > 0 {
			out.WriteString(",\n")
		}
		kb, _ := json.Marshal(k)
		out.WriteString("  " + string(kb) + " : " + string(m[k]))
	}
	out.WriteString("\n}")
	return out.Bytes()
}

// TestVerifyReceiptRedacted checks what VerifyReceipt says for a tenant
// that redacts fields: the receipt is for the span as stored, so against
// the span as sent it is ErrSpanMismatch, whose message says to verify
// against the span read back, and against that span it verifies.
func TestVerifyReceiptRedacted(t *testing.T) {
	ts := startServer(t, serverOpts{cfg: func(c *server.Config) {
		dir := filepath.Join(c.Data, "cfg", "tenants")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "t_pii.yaml"), []byte("redact: [who, data.customer_email]\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}})
	c := newClient(t, ts.URL)
	ctx := testCtx(t)
	key, err := c.Key(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s := sale("t_pii", "s_1", "order:1")
	s.Who, s.Data = "Alice Private", []byte(`{"customer_email":"alice@example.com","gross":19.9}`)
	other := sale("t_pii", "s_2", "order:1")
	res := ingest(t, c, s, other)
	r := *res.Results[0].Receipt

	err = client.VerifyReceipt(key, r, mustMarshal(t, s))
	if !errors.Is(err, client.ErrSpanMismatch) || !errors.Is(err, client.ErrBadReceipt) {
		t.Fatalf("against the span as sent: %v, want ErrSpanMismatch and ErrBadReceipt", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "redacts") || !strings.Contains(msg, "Client.Span") {
		t.Errorf("%q does not say that the receipt is for the span as stored, to read back with Client.Span", msg)
	}

	stored, err := c.Span(ctx, "t_pii", "s_1")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(stored.Body, []byte("Alice Private")) {
		t.Fatalf("the tenant does not redact who: %s", stored.Body)
	}
	if err := client.VerifyReceipt(key, r, stored.Body); err != nil {
		t.Errorf("against the span read back: %v", err)
	}

	// A receipt that does not verify, or is for another span, is not a
	// mismatch of content.
	forged := r
	forged.Sig = bytes.Clone(r.Sig)
	forged.Sig[0] ^= 1
	for name, err := range map[string]error{
		"a forged signature":   client.VerifyReceipt(key, forged, stored.Body),
		"another span":         client.VerifyReceipt(key, *res.Results[1].Receipt, stored.Body),
		"another ledger's key": client.VerifyReceipt(otherKey(t), r, stored.Body),
	} {
		if !errors.Is(err, client.ErrBadReceipt) || errors.Is(err, client.ErrSpanMismatch) {
			t.Errorf("%s: %v, want ErrBadReceipt and not ErrSpanMismatch", name, err)
		}
	}
}
