package ledgerfmt

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/oklog/ulid/v2"
)

// Receipts. One ed25519 signature covers a whole group commit: it signs the
// batch statement
//
//	logline receipt v1
//	<origin>
//	ledger.append <first> <size> <root> <ts>
//
// where first is the sequence number of the commit's first record, size the
// number of records, root the standard base64 RFC 6962 root of the tree whose
// leaves are the commit's leaf hashes in order, and ts the commit's ts. A
// span's receipt adds its place in that commit (seq, leaf and the audit path
// of leaf seq-first in the batch tree), so it can be checked alone, with the
// span's bytes and the ledger's public key:
//
//	{"op":"ledger.append","span_id":"s_1","tenant":"t_a","seq":41,"leaf":"…",
//	 "batch":{"first":40,"size":3,"root":"…","path":["…","…"]},
//	 "jti":"r_…","kid":"1a2b3c4d","sig":"…","ts":"2025-10-05T22:18:07.214000Z"}
//
// The jti is "r_" and a ULID whose time is ts (milliseconds) and whose 80-bit
// entropy is the sequence number, so each receipt has a unique, derivable id.
//
// The server's receipts journal (receipts/YYYY-MM-DD.ndjson) keeps one line
// per commit, the batch receipt, with the same members but no span, seq,
// leaf or path; a span's receipt is assembled from it on request.

// OpAppend is the operation of a ledger append receipt.
const OpAppend = "ledger.append"

// BatchRef is a receipt's reference to the group commit that stored its
// record.
type BatchRef struct {
	// First is the sequence number of the commit's first record.
	First uint64 `json:"first"`
	// Size is the number of records in the commit.
	Size uint64 `json:"size"`
	// Root is the root of the batch tree, whose leaves are the commit's
	// leaf hashes in order.
	Root Hash `json:"root"`
	// Path is the audit path of the record's leaf in the batch tree (empty
	// in a batch receipt).
	Path []Hash `json:"path,omitempty"`
}

// Receipt is the signed acknowledgement of one appended record.
type Receipt struct {
	// Op is OpAppend.
	Op string `json:"op"`
	// SpanID and Tenant name the span (empty for other records).
	SpanID string `json:"span_id,omitempty"`
	Tenant string `json:"tenant,omitempty"`
	// Seq is the record's sequence number in the ledger.
	Seq uint64 `json:"seq"`
	// Leaf is the record's RFC 6962 leaf hash.
	Leaf  Hash     `json:"leaf"`
	Batch BatchRef `json:"batch"`
	// JTI is the receipt's unique id, derived from Seq and TS.
	JTI string `json:"jti"`
	// KID names the signing key: the key hash of the verifier key.
	KID string `json:"kid"`
	// Sig is the ed25519 signature of the batch statement.
	Sig []byte `json:"sig"`
	// TS is the commit's time, shared by all its records.
	TS Timestamp `json:"ts"`
}

// BatchReceipt is the signed statement of one group commit, as the receipts
// journal stores it.
type BatchReceipt struct {
	Op    string    `json:"op"`
	Batch BatchRef  `json:"batch"`
	KID   string    `json:"kid"`
	Sig   []byte    `json:"sig"`
	TS    Timestamp `json:"ts"`
}

// BatchStatement returns the bytes a batch receipt's signature covers.
func BatchStatement(origin string, first, size uint64, root Hash, ts time.Time) []byte {
	var b bytes.Buffer
	b.WriteString("logline receipt v1\n")
	b.WriteString(origin)
	b.WriteString("\n" + OpAppend + " ")
	b.WriteString(strconv.FormatUint(first, 10))
	b.WriteByte(' ')
	b.WriteString(strconv.FormatUint(size, 10))
	b.WriteByte(' ')
	b.WriteString(root.String())
	b.WriteByte(' ')
	b.Write(ts.UTC().AppendFormat(nil, TimeLayout))
	b.WriteByte('\n')
	return b.Bytes()
}

// ReceiptID returns the jti of the receipt of record seq appended at ts.
func ReceiptID(seq uint64, ts time.Time) string {
	return string(AppendReceiptID(make([]byte, 0, ReceiptIDLen), seq, ts))
}

// ReceiptIDLen is the length of a jti: "r_" and 26 characters of ULID.
const ReceiptIDLen = 2 + ulid.EncodedSize

// AppendReceiptID appends the jti of the receipt of record seq appended at
// ts to dst.
func AppendReceiptID(dst []byte, seq uint64, ts time.Time) []byte {
	var id ulid.ULID
	_ = id.SetTime(uint64(ts.UnixMilli()))
	var ent [10]byte
	binary.BigEndian.PutUint64(ent[2:], seq)
	_ = id.SetEntropy(ent[:])
	n := len(dst)
	dst = append(dst, "r_01234567890123456789012345"...)
	_ = id.MarshalTextTo(dst[n+2:])
	return dst
}

// receiptErr is the *Error (ErrBadReceipt) of a receipt that does not
// verify.
func receiptErr(format string, args ...any) error {
	return &Error{Err: ErrBadReceipt, Reason: fmt.Sprintf(format, args...)}
}

// VerifyBatch checks a batch receipt's signature against the key.
func (v *Verifier) VerifyBatch(b *BatchReceipt) error {
	if b.Op != OpAppend {
		return receiptErr("unknown op %q", b.Op)
	}
	if b.KID != v.kid {
		return receiptErr("signed by key %s, not %s", b.KID, v.kid)
	}
	if b.Batch.Size == 0 {
		return receiptErr("empty batch")
	}
	msg := BatchStatement(v.origin, b.Batch.First, b.Batch.Size, b.Batch.Root, b.TS.Time)
	if !ed25519.Verify(v.pub, msg, b.Sig) {
		return receiptErr("bad signature")
	}
	return nil
}

// VerifyReceipt checks a receipt against the record it acknowledges: kind
// and body are the record's kind ("span") and canonical JSON body. It checks
// the receipt itself first (the leaf is in the batch tree, the batch
// statement is signed by this key, the jti is the one derived from seq and
// ts), then that it names the span and that the leaf hash is the record's.
// A failure is an *Error (ErrBadReceipt); one of the record alone, for a
// receipt that verifies and names the span, has OtherContent set.
func (v *Verifier) VerifyReceipt(r *Receipt, kind string, body []byte) error {
	if r.KID != v.kid {
		return receiptErr("signed by key %s, not %s", r.KID, v.kid)
	}
	if r.Seq < r.Batch.First || r.Seq-r.Batch.First >= r.Batch.Size {
		return receiptErr("seq %d outside batch [%d,+%d)", r.Seq, r.Batch.First, r.Batch.Size)
	}
	if err := VerifyInclusion(r.Seq-r.Batch.First, r.Batch.Size, r.Leaf, r.Batch.Path, r.Batch.Root); err != nil {
		return receiptErr("leaf not in batch: %v", err)
	}
	if err := v.VerifyBatch(&BatchReceipt{Op: r.Op, Batch: r.Batch, KID: r.KID, Sig: r.Sig, TS: r.TS}); err != nil {
		return err
	}
	if want := ReceiptID(r.Seq, r.TS.Time); r.JTI != want {
		return receiptErr("jti %s, want %s", r.JTI, want)
	}
	if kind == KindSpan {
		var ids struct {
			ID     string `json:"id"`
			Tenant string `json:"tenant"`
		}
		if err := json.Unmarshal(body, &ids); err != nil {
			return receiptErr("span is not JSON: %v", err)
		}
		if ids.ID != r.SpanID || ids.Tenant != r.Tenant {
			return receiptErr("it is for span %s/%s, not %s/%s", r.Tenant, r.SpanID, ids.Tenant, ids.ID)
		}
	}
	if leaf := LeafHash(r.Seq, r.TS.Time, kind, body); leaf != r.Leaf {
		return &Error{Err: ErrBadReceipt, OtherContent: true,
			Reason: fmt.Sprintf("leaf hash %s does not match the record (%s)", r.Leaf, leaf)}
	}
	return nil
}
