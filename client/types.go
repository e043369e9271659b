package client

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
)

// Span is one fact, in its wire form: who did what to which thing, when,
// confirmed by whom.
//
// It encodes to the JSON the server takes:
//
//	{"id":"s_1","tenant":"t_bakery","who":"dan","did":"sale.post","this":"order:12345",
//	 "when":"2025-10-05T22:18:07Z","status":"confirmed","confirmed_by":["pos://register-7"],
//	 "data":{"gross":19.9}}
//
// and decodes from it, so a Span survives encoding and decoding unchanged.
// Empty fields are left out, so the server's answer names a missing required
// field rather than complaining about an empty one. When is written in RFC
// 3339 with as many fractional digits as it needs (time.RFC3339Nano): a span
// sent with another spelling of the same instant ("22:18:07.500Z" rather
// than "22:18:07.5Z") is stored as sent, so check receipts and proofs
// against the bytes that were sent or stored (Record.Body), not against a
// Span re-encoded from them.
type Span struct {
	// ID is the client-chosen idempotency key: the server stores a span
	// once per (tenant, id).
	ID     string    `json:"id,omitempty"`
	Tenant string    `json:"tenant,omitempty"`
	Who    string    `json:"who,omitempty"`
	Did    string    `json:"did,omitempty"`
	This   string    `json:"this,omitempty"`
	When   time.Time `json:"when,omitzero"`
	// Status is the fact's state. The standard contract takes "confirmed",
	// "pending", "rejected" or "cancelled" and rejects any other value (an
	// operator's bundle may declare its own set).
	Status string `json:"status,omitempty"`
	// ConfirmedBy names who or what vouches for the fact.
	ConfirmedBy []string `json:"confirmed_by,omitempty"`
	// Data is the application's own fields, a JSON object. Build it with
	// json.Marshal from a struct or map; read it back with json.Unmarshal.
	Data json.RawMessage `json:"data,omitempty"`
}

// Hash is a SHA-256 hash: a record's leaf hash or a Merkle tree node. It is
// standard base64 on the wire.
type Hash = ledgerfmt.Hash

// Timestamp is a time as the ledger writes it: RFC 3339 in UTC with six
// fractional digits ("2025-10-05T22:18:07.214000Z"). It embeds a time.Time.
type Timestamp = ledgerfmt.Timestamp

// Receipt is the server's signed acknowledgement that a span was appended to
// the ledger:
//
//	{"op":"ledger.append","span_id":"s_1","tenant":"t_bakery","seq":41,"leaf":"…",
//	 "batch":{"first":40,"size":3,"root":"…","path":["…","…"]},
//	 "jti":"r_…","kid":"1a2b3c4d","sig":"…","ts":"2025-10-05T22:18:07.214000Z"}
//
// One ed25519 signature covers a whole group commit (the batch): it signs
// the batch's first sequence number, size, Merkle root and time. A span's
// receipt adds the span's place in the batch (Seq, Leaf and the audit Path of
// Leaf in the batch tree), so VerifyReceipt can check it alone, offline, with
// the span's bytes and the ledger's verifier key.
//
// Its fields: Op ("ledger.append"), SpanID and Tenant, Seq (the span's
// sequence number in the ledger), Leaf (the span record's RFC 6962 leaf
// hash), Batch, JTI (the receipt's unique id, derived from Seq and TS), KID
// (the key hash of the verifier key that signed it), Sig and TS (the
// commit's time).
type Receipt = ledgerfmt.Receipt

// Batch is a receipt's reference to the group commit that stored its span:
// First, Size, the batch tree's Root and the span's audit Path in it.
type Batch = ledgerfmt.BatchRef

// Record is one record of the ledger: a stored span (Kind "span") or, in a
// stream of every tenant, a record the server appends itself ("tick",
// "config"). A stream line holds it in this framing, the body last:
//
//	{"seq":41,"ts":"2025-10-05T22:18:07.214000Z","leaf":"…","crc":"a1b2c3d4","span":{…}}
//
// Lookups (Span, Thing) answer the same without crc.
type Record struct {
	// Seq is the record's sequence number, its leaf index in the ledger's
	// Merkle tree; the first record is 0.
	Seq uint64 `json:"seq"`
	// TS is the server's append time; all records of one group commit
	// share it.
	TS   time.Time `json:"ts"`
	Leaf Hash      `json:"leaf"`
	// CRC is the record line's CRC-32C in hex, as streamed ("" from
	// lookups).
	CRC  string `json:"crc,omitempty"`
	Kind string `json:"kind"`
	// Body is the record's body in canonical JSON (RFC 8785), exactly the
	// bytes the ledger stored and hashed.
	Body json.RawMessage `json:"body"`
}

// Span decodes the record's body as a span.
func (r Record) Span() (Span, error) {
	var s Span
	if r.Kind != "span" {
		return s, fmt.Errorf("loglineos: record %d is a %q record, not a span", r.Seq, r.Kind)
	}
	if err := json.Unmarshal(r.Body, &s); err != nil {
		return s, fmt.Errorf("loglineos: record %d: %w", r.Seq, err)
	}
	return s, nil
}

// Proof is an RFC 6962 inclusion proof: the audit path of record Index's
// leaf in the ledger's Merkle tree of TreeSize records, whose root a signed
// checkpoint of that size states.
type Proof struct {
	Index    uint64 `json:"leaf_index"`
	TreeSize uint64 `json:"tree_size"`
	Leaf     Hash   `json:"leaf_hash"`
	Path     []Hash `json:"path"`
	// Root is the root the server computed; VerifyProof relies on the
	// signed checkpoint's root, and only checks that this one agrees.
	Root Hash `json:"root"`
}

// Checkpoint is a signed tree head, as OpenCheckpoint reads it from a C2SP
// checkpoint note:
//
//	logline.local/ledger
//	42
//	uE5F…base64 root…=
//
//	— logline.local/ledger Az3gr…base64(keyid||sig)…
//
// Its fields are Origin, Size, Root and Note, the whole signed note.
type Checkpoint = ledgerfmt.Checkpoint
