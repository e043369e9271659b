package client

import (
	"errors"
	"fmt"

	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
	"github.com/loglineos/loglineos/internal/span"
)

// The verification functions need nothing but their arguments: no server,
// no network. verifierKey is the ledger's public key in signed-note form,
// as `logline ledger key` prints it and Client.Key returns it.

// VerifyReceipt checks, offline, that r proves the ledger stored spanJSON:
// that the receipt's leaf is in the batch tree whose root the batch
// statement gives, that the statement is signed by the key, that the jti is
// the one derived from seq and ts, that the receipt names the span's tenant
// and id, and that its leaf hash is the hash of the span's canonical form
// (RFC 8785) at r.Seq and r.TS. spanJSON is the span as sent or as stored,
// in any formatting: it is canonicalized first.
//
// A receipt that does not verify is ErrBadReceipt, wrapped with the reason.
// When the receipt verifies and names the span but the span has other
// content, the error is ErrSpanMismatch as well: the span was changed, or
// the tenant redacts fields and the receipt is for the span as stored, with
// the redacted values; verify it against the span read back (Client.Span).
// A verifier key that is not one is ErrBadKey.
func VerifyReceipt(verifierKey string, r Receipt, spanJSON []byte) error {
	v, err := verifier(verifierKey)
	if err != nil {
		return err
	}
	canon, err := span.Canonicalize(spanJSON)
	if err != nil {
		return fmt.Errorf("%w: the span is not valid JSON: %v", ErrBadReceipt, reason(err))
	}
	if len(canon) == 0 || canon[0] != '{' {
		return fmt.Errorf("%w: the span is not a JSON object", ErrBadReceipt)
	}
	err = v.VerifyReceipt(&r, ledgerfmt.KindSpan, canon)
	var fe *ledgerfmt.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &fe) && fe.OtherContent:
		return fmt.Errorf("%w: the span's leaf hash is %s, the receipt's %s", ErrSpanMismatch,
			ledgerfmt.LeafHash(r.Seq, r.TS.Time, ledgerfmt.KindSpan, canon), r.Leaf)
	default:
		return fmt.Errorf("%w: %s", ErrBadReceipt, reason(err))
	}
}

// verifier parses a verifier key; a key that is not one is ErrBadKey.
func verifier(key string) (*ledgerfmt.Verifier, error) {
	v, err := ledgerfmt.NewVerifier(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrBadKey, reason(err))
	}
	return v, nil
}

// reason is what an error of the formats says, without the format's own
// sentinel, for an error of the SDK that names its own.
func reason(err error) string {
	var fe *ledgerfmt.Error
	if errors.As(err, &fe) {
		return fe.Reason
	}
	return err.Error()
}

// OpenCheckpoint verifies a signed checkpoint note with the key and reads
// it. A note the key did not sign, or for another origin, is ErrBadProof; a
// verifier key that is not one is ErrBadKey.
func OpenCheckpoint(verifierKey string, note []byte) (*Checkpoint, error) {
	v, err := verifier(verifierKey)
	if err != nil {
		return nil, err
	}
	return openCheckpoint(v, note)
}

func openCheckpoint(v *ledgerfmt.Verifier, note []byte) (*Checkpoint, error) {
	c, err := v.OpenCheckpoint(note)
	if err != nil {
		return nil, fmt.Errorf("%w: checkpoint: %s", ErrBadProof, reason(err))
	}
	return c, nil
}

// VerifyProof checks, offline, that p proves leaf p.Leaf is record p.Index
// of the tree the signed checkpoint describes: the checkpoint must verify
// with the key and be of size p.TreeSize (fetch the proof at the
// checkpoint's size), and the audit path must lead from the leaf to the
// checkpoint's root (RFC 6962). It is ErrBadProof, wrapped with the reason,
// when any of that fails.
//
// VerifyProof says nothing about which record has that leaf hash;
// VerifyInclusion ties the proof to a record too.
func VerifyProof(verifierKey string, p Proof, checkpointNote []byte) error {
	v, err := verifier(verifierKey)
	if err != nil {
		return err
	}
	cp, err := openCheckpoint(v, checkpointNote)
	if err != nil {
		return err
	}
	if cp.Size != p.TreeSize {
		return fmt.Errorf("%w: the proof is for a tree of %d records, the checkpoint for %d", ErrBadProof, p.TreeSize, cp.Size)
	}
	if p.Root != (Hash{}) && p.Root != cp.Root {
		return fmt.Errorf("%w: the proof's root %s is not the checkpoint's %s", ErrBadProof, p.Root, cp.Root)
	}
	if err := ledgerfmt.VerifyInclusion(p.Index, p.TreeSize, p.Leaf, p.Path, cp.Root); err != nil {
		return fmt.Errorf("%w: record %d: %v", ErrBadProof, p.Index, err)
	}
	return nil
}

// VerifyInclusion checks, offline, that rec is in the ledger the signed
// checkpoint describes: that rec's leaf hash is the hash of its contents
// (see Record.VerifyLeaf), that p is the proof for that record and leaf,
// and that p verifies against the checkpoint (see VerifyProof).
func VerifyInclusion(verifierKey string, rec Record, p Proof, checkpointNote []byte) error {
	if err := rec.leafMismatch(); err != "" {
		return fmt.Errorf("%w: %s", ErrBadProof, err)
	}
	if p.Index != rec.Seq || p.Leaf != rec.Leaf {
		return fmt.Errorf("%w: the proof is for record %d with leaf %s, not record %d with leaf %s", ErrBadProof, p.Index, p.Leaf, rec.Seq, rec.Leaf)
	}
	return VerifyProof(verifierKey, p, checkpointNote)
}

// VerifyLeaf checks that r.Leaf is the RFC 6962 leaf hash of the record's
// sequence number, time, kind and body, as the ledger computes it:
// SHA-256(0x00 || {"seq":S,"ts":"T","KIND":BODY}).
func (r Record) VerifyLeaf() error {
	if m := r.leafMismatch(); m != "" {
		return errors.New("loglineos: " + m)
	}
	return nil
}

// leafMismatch says how r's leaf hash does not match its contents, or is
// "" when it does.
func (r Record) leafMismatch() string {
	if got := ledgerfmt.LeafHash(r.Seq, r.TS, r.Kind, r.Body); got != r.Leaf {
		return fmt.Sprintf("record %d: leaf hash %s does not match its contents (%s)", r.Seq, r.Leaf, got)
	}
	return ""
}
