package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/loglineos/loglineos/internal/gateway/reply"
	"github.com/loglineos/loglineos/internal/identity"
	"github.com/loglineos/loglineos/internal/ledger"
	"github.com/loglineos/loglineos/internal/ledger/ledgerfmt"
)

// recordJSON is a stored record as the API shows it: the span (or other
// body) with its place in the ledger.
type recordJSON struct {
	Seq  uint64              `json:"seq"`
	TS   ledgerfmt.Timestamp `json:"ts"`
	Leaf ledgerfmt.Hash      `json:"leaf"`
	Span json.RawMessage     `json:"span"`
}

func toRecordJSON(r ledger.Record) recordJSON {
	return recordJSON{Seq: r.Seq, TS: ledgerfmt.Timestamp{Time: r.TS}, Leaf: r.Leaf, Span: r.Body}
}

func notFoundErr(err error, what string, args ...any) error {
	if errors.Is(err, ledger.ErrNotFound) {
		return reply.NewProblem("not-found", what, args...)
	}
	return err
}

// GET /spans/{tenant}/{id}
func (g *Gateway) getSpan(w http.ResponseWriter, r *http.Request) error {
	tenant, id := r.PathValue("tenant"), r.PathValue("id")
	if err := g.can(r, tenant, identity.CapStreamRead); err != nil {
		return err
	}
	rec, err := g.cfg.Ledger.Get(r.Context(), tenant, id)
	if err != nil {
		return notFoundErr(err, "no span %q in tenant %q", id, tenant)
	}
	return reply.JSON(w, http.StatusOK, toRecordJSON(rec))
}

// GET /things/{tenant}/{this}?cursor=&limit= lists the spans of one thing in
// ledger order, a page at a time; next_cursor continues.
func (g *Gateway) getThing(w http.ResponseWriter, r *http.Request) error {
	tenant, this := r.PathValue("tenant"), r.PathValue("this")
	if err := g.can(r, tenant, identity.CapStreamRead); err != nil {
		return err
	}
	cursor, err := uintParam(r, "cursor", 0)
	if err != nil {
		return err
	}
	limit, err := uintParam(r, "limit", 1000)
	if err != nil {
		return err
	}
	if limit == 0 || limit > 10000 {
		return reply.NewProblem("bad-request", "limit must be between 1 and 10000")
	}
	recs, err := g.cfg.Ledger.Thing(r.Context(), tenant, this, cursor, int(limit)+1)
	if err != nil {
		return err
	}
	out := struct {
		Tenant     string       `json:"tenant"`
		This       string       `json:"this"`
		Spans      []recordJSON `json:"spans"`
		NextCursor *uint64      `json:"next_cursor,omitempty"`
	}{Tenant: tenant, This: this, Spans: []recordJSON{}}
	for i, rec := range recs {
		if i == int(limit) {
			next := rec.Seq
			out.NextCursor = &next
			break
		}
		out.Spans = append(out.Spans, toRecordJSON(rec))
	}
	return reply.JSON(w, http.StatusOK, out)
}

// GET /receipts/{tenant}/{id}
func (g *Gateway) getReceipt(w http.ResponseWriter, r *http.Request) error {
	tenant, id := r.PathValue("tenant"), r.PathValue("id")
	if err := g.can(r, tenant, identity.CapReceiptsRead); err != nil {
		return err
	}
	rc, err := g.cfg.Ledger.Receipt(r.Context(), tenant, id)
	if err != nil {
		return notFoundErr(err, "no span %q in tenant %q", id, tenant)
	}
	return reply.JSON(w, http.StatusOK, rc)
}

// GET /ledger/checkpoint: the latest signed checkpoint, a C2SP signed note.
func (g *Gateway) checkpoint(w http.ResponseWriter, r *http.Request) error {
	c := g.cfg.Ledger.Checkpoint()
	if c == nil {
		return reply.NewProblem("not-found", "no checkpoint yet")
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	_, err := w.Write(c.Note)
	return err
}

// GET /ledger/key: the verifier key of checkpoints and receipts.
func (g *Gateway) key(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, err := fmt.Fprintln(w, g.cfg.Ledger.VerifierKey())
	return err
}

// GET /ledger/proof?seq=&size= is the inclusion proof of record seq in the
// tree of size records (default: the latest checkpoint's size);
// GET /ledger/proof?from=&size= is the consistency proof between two sizes.
func (g *Gateway) proof(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	size, err := uintParam(r, "size", 0)
	if err != nil {
		return err
	}
	if size == 0 {
		c := g.cfg.Ledger.Checkpoint()
		if c == nil || c.Size == 0 {
			return reply.NewProblem("not-found", "no checkpoint yet")
		}
		size = c.Size
	}
	if q.Has("from") {
		from, err := uintParam(r, "from", 0)
		if err != nil {
			return err
		}
		path, err := g.cfg.Ledger.ProveConsistency(r.Context(), from, size)
		if err != nil {
			return notFoundErr(err, "%v", err)
		}
		root1, err := g.cfg.Ledger.RootAt(r.Context(), from)
		if err != nil {
			return notFoundErr(err, "%v", err)
		}
		root2, err := g.cfg.Ledger.RootAt(r.Context(), size)
		if err != nil {
			return notFoundErr(err, "%v", err)
		}
		return reply.JSON(w, http.StatusOK, map[string]any{"from": from, "tree_size": size, "from_root": root1, "root": root2, "path": path})
	}
	if !q.Has("seq") {
		return reply.NewProblem("bad-request", "give seq= for an inclusion proof or from= for a consistency proof")
	}
	seq, err := uintParam(r, "seq", 0)
	if err != nil {
		return err
	}
	p, err := g.cfg.Ledger.Prove(r.Context(), seq, size)
	if err != nil {
		return notFoundErr(err, "%v", err)
	}
	root, err := g.cfg.Ledger.RootAt(r.Context(), p.TreeSize)
	if err != nil {
		return err
	}
	return reply.JSON(w, http.StatusOK, struct {
		ledgerfmt.Proof
		Root ledgerfmt.Hash `json:"root"`
	}{p, root})
}

// uintParam reads a non-negative integer query parameter.
func uintParam(r *http.Request, name string, def uint64) (uint64, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		if name == "cursor" {
			return 0, reply.NewProblem("bad-cursor", "cursor %q is not a sequence number", s)
		}
		return 0, reply.NewProblem("bad-request", "%s=%q is not a non-negative integer", name, s)
	}
	return v, nil
}
