package client

import (
	"fmt"

	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
	"github.com/loglineos/loglineos/internal/span"
)

// The verification functions need nothing but their arguments: no server,
// no network. verifierKey is the ledger's public key in signed-note form,
// as `logline ledger key` prints it and Client.Key returns it.

// VerifyReceipt checks, offline, that r proves the ledger stored spanJSON:
// that the receipt names the span's tenant and id, that its leaf hash is
// the hash of the span's canonical form (RFC 8785) at r.Seq and r.TS, that
// the leaf is in the batch tree whose root the batch statement gives, that
// the statement is signed by the key, and that the jti is the one derived
// from seq and ts. spanJSON is the span as sent or as stored, in any
// formatting: it is canonicalized first. A receipt that does not verify is
// ErrBadReceipt, wrapped with the reason.
func VerifyReceipt(verifierKey string, r Receipt, spanJSON []byte) error {
	v, err := ledgerfmt.NewVerifier(verifierKey)
	if err != nil {
		return fmt.Errorf("loglineos: %w", err)
	}
	canon, err := span.Canonicalize(spanJSON)
	if err != nil {
		return fmt.Errorf("%w: the span is not valid JSON: %v", ErrBadReceipt, err)
	}
	if len(canon) == 0 || canon[0] != '{' {
		return fmt.Errorf("%w: the span is not a JSON object", ErrBadReceipt)
	}
	if err := v.VerifyReceipt(&r, ledgerfmt.KindSpan, canon); err != nil {
		return fmt.Errorf("%w: %v", ErrBadReceipt, err)
	}
	return nil
}

// OpenCheckpoint verifies a signed checkpoint note with the key and reads
// it. A note the key did not sign, or for another origin, is ErrBadProof.
func OpenCheckpoint(verifierKey string, note []byte) (*Checkpoint, error) {
	v, err := ledgerfmt.NewVerifier(verifierKey)
	if err != nil {
		return nil, fmt.Errorf("loglineos: %w", err)
	}
	return openCheckpoint(v, note)
}

func openCheckpoint(v *ledgerfmt.Verifier, note []byte) (*Checkpoint, error) {
	c, err := v.OpenCheckpoint(note)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadProof, err)
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
	v, err := ledgerfmt.NewVerifier(verifierKey)
	if err != nil {
		return fmt.Errorf("loglineos: %w", err)
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
	if err := rec.VerifyLeaf(); err != nil {
		return fmt.Errorf("%w: %v", ErrBadProof, err)
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
	if got := ledgerfmt.LeafHash(r.Seq, r.TS, r.Kind, r.Body); got != r.Leaf {
		return fmt.Errorf("loglineos: record %d: leaf hash %s does not match its contents (%s)", r.Seq, r.Leaf, got)
	}
	return nil
}
