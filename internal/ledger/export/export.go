// Package export writes signed per-tenant exports of the ledger: one
// tenant's span records over a range of sequence numbers, each with its
// inclusion proof in the tree of the ledger's latest signed checkpoint, and
// a manifest signed with the ledger's key, so that anyone verifies the file
// offline with the verifier key and nothing of other tenants is in it but
// hashes inside the proofs. The format is drawn in package ledgerfmt
// (export.go), which verifies it too; docs/exports.md describes it for
// third parties.
//
// The writer streams: it reads the records of the range in order, keeps
// the tenant's spans and writes each line as it goes, hashing the bytes for
// the manifest. It reads the segments rather than the tenant index, which a
// read-only view beside a running server does not hold whole: an export
// reads every record of its range, its tenant's or not.
package export

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/loglineos/loglineos/internal/jsonstr"
	"github.com/loglineos/loglineos/internal/ledger"
	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
)

// Source is what an export reads of the ledger; *ledger.Ledger is one.
type Source interface {
	// NewReader returns a reader of the records in order from seq from.
	NewReader(from uint64) (*ledger.Reader, error)
	// Prove returns the inclusion proof of seq in the tree of size records.
	Prove(ctx context.Context, seq, size uint64) (ledgerfmt.Proof, error)
	// Checkpoint returns the latest signed checkpoint, nil before the first.
	Checkpoint() *ledgerfmt.Checkpoint
	// Signer signs the manifest.
	Signer() *ledgerfmt.Signer
}

// Errors of New, before anything is written.
var (
	// ErrRange: from or to is outside the signed ledger.
	ErrRange = errors.New("export: bad range")
	// ErrNoCheckpoint: the ledger has signed no checkpoint yet.
	ErrNoCheckpoint = errors.New("export: no signed checkpoint yet")
	// ErrTenant: the tenant cannot be named in a manifest.
	ErrTenant = errors.New("export: bad tenant")
)

// progressEvery is how many records the writer reads between calls of its
// progress function.
const progressEvery = 4096

// Export is one export, its range fixed against the checkpoint it is
// proved in.
type Export struct {
	src      Source
	tenant   string
	from, to uint64
	ckpt     *ledgerfmt.Checkpoint
}

// New prepares the export of tenant's spans with from <= seq < to, proved in
// the ledger's latest signed checkpoint. to 0 means the checkpoint's size.
// A range past the checkpoint is ErrRange: an export holds only what the
// ledger has signed.
func New(src Source, tenant string, from, to uint64) (*Export, error) {
	if err := ledgerfmt.CheckExportTenant(tenant); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTenant, err)
	}
	c := src.Checkpoint()
	if c == nil {
		return nil, ErrNoCheckpoint
	}
	if to == 0 {
		to = c.Size
	}
	switch {
	case to > c.Size:
		return nil, fmt.Errorf("%w: to=%d is past the latest signed checkpoint (%d records)", ErrRange, to, c.Size)
	case from > to:
		return nil, fmt.Errorf("%w: from=%d is past to=%d", ErrRange, from, to)
	}
	return &Export{src: src, tenant: tenant, from: from, to: to, ckpt: c}, nil
}

// Range returns the export's range [from, to).
func (e *Export) Range() (from, to uint64) { return e.from, e.to }

// Checkpoint returns the checkpoint the records are proved in.
func (e *Export) Checkpoint() *ledgerfmt.Checkpoint { return e.ckpt }

// Summary says what an export wrote.
type Summary struct {
	Records uint64
	Bytes   int64
}

// spanTenant returns the tenant of a span body, as the ledger's tenant
// index reads it. The caller has checked that the body holds the tenant's
// member in canonical form ("tenant":"T"), which a span of another tenant
// can hold too, in its data.
func spanTenant(body []byte) string {
	var k struct {
		Tenant string `json:"tenant"`
	}
	if json.Unmarshal(body, &k) != nil {
		return ""
	}
	return k.Tenant
}

// hashWriter counts and hashes what it writes through.
type hashWriter struct {
	w   io.Writer
	sum hash.Hash
	n   int64
}

func (h *hashWriter) Write(b []byte) (int, error) {
	n, err := h.w.Write(b)
	h.sum.Write(b[:n])
	h.n += int64(n)
	return n, err
}

// Write writes the export to w. progress, when not nil, is called every
// few thousand records with the sequence number the export has reached. A failure
// after the first byte leaves w holding an export without its manifest,
// which no verifier accepts.
func (e *Export) Write(ctx context.Context, w io.Writer, progress func(seq uint64)) (Summary, error) {
	hw := &hashWriter{w: w, sum: sha256.New()}
	bw := bufio.NewWriterSize(hw, 64<<10)
	buf := ledgerfmt.AppendExportHeader(make([]byte, 0, 4<<10), e.tenant, e.from, e.to, e.ckpt.Note)
	var n uint64
	rd, err := e.src.NewReader(e.from)
	if err != nil {
		return Summary{}, fmt.Errorf("export: read from %d: %w", e.from, err)
	}
	defer rd.Close()
	mark := []byte(`"tenant":`)
	mark = jsonstr.AppendCanonical(mark, e.tenant)
	for seq := e.from; seq < e.to; seq++ {
		if seq%progressEvery == 0 {
			if err := ctx.Err(); err != nil {
				return Summary{}, err
			}
			if progress != nil {
				progress(seq)
			}
		}
		r, err := rd.Next()
		if err != nil {
			return Summary{}, fmt.Errorf("export: read seq %d: %w", seq, err)
		}
		if r.Kind != ledgerfmt.KindSpan || !bytes.Contains(r.Body, mark) || spanTenant(r.Body) != e.tenant {
			continue
		}
		p, err := e.src.Prove(ctx, r.Seq, e.ckpt.Size)
		if err != nil {
			return Summary{}, fmt.Errorf("export: prove seq %d: %w", r.Seq, err)
		}
		if p.Leaf != r.Leaf {
			return Summary{}, fmt.Errorf("export: seq %d: the tree's leaf %s is not the record's %s", r.Seq, p.Leaf, r.Leaf)
		}
		buf = ledgerfmt.AppendExportRecord(buf, r.Seq, r.TS, r.Leaf, r.Body, p.Path)
		n++
		if len(buf) >= 32<<10 {
			if _, err := bw.Write(buf); err != nil {
				return Summary{}, fmt.Errorf("export: write: %w", err)
			}
			buf = buf[:0]
		}
	}
	if _, err := bw.Write(buf); err != nil {
		return Summary{}, fmt.Errorf("export: write: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return Summary{}, fmt.Errorf("export: write: %w", err)
	}
	m := ledgerfmt.ExportManifest{Tenant: e.tenant, From: e.from, To: e.to, Records: n,
		Size: e.ckpt.Size, Root: e.ckpt.Root, SHA256: [sha256.Size]byte(hw.sum.Sum(nil))}
	note, err := e.src.Signer().SignExportManifest(m)
	if err != nil {
		return Summary{}, fmt.Errorf("export: %w", err)
	}
	if _, err := hw.Write(ledgerfmt.AppendExportTrailer(nil, note)); err != nil {
		return Summary{}, fmt.Errorf("export: write: %w", err)
	}
	if progress != nil {
		progress(e.to)
	}
	return Summary{Records: n, Bytes: hw.n}, nil
}
