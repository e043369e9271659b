package gateway

import (
	"errors"
	"net/http"
	"time"

	"github.com/loglineos/loglineos/internal/gateway/reply"
	"github.com/loglineos/loglineos/internal/identity"
	"github.com/loglineos/loglineos/internal/ledger/export"
)

// GET /exports/{tenant}?from=F&to=E: the signed export of the tenant's spans
// with F <= seq < E (docs/exports.md; package export), streamed as it is
// written. to defaults to the latest signed checkpoint's size. It needs the
// export capability on the tenant. An export cut short (the connection, the
// token's end) lacks its manifest, which every verifier refuses.
func (g *Gateway) export(w http.ResponseWriter, r *http.Request) error {
	tenant := r.PathValue("tenant")
	if err := g.can(r, tenant, identity.CapExport); err != nil {
		return err
	}
	var from, to uint64
	var err error
	for _, q := range []struct {
		name string
		v    *uint64
	}{{"from", &from}, {"to", &to}} {
		if *q.v, err = uintParam(r, q.name, 0); err != nil {
			return reply.NewProblem("bad-range", "%s=%q is not a sequence number", q.name, r.URL.Query().Get(q.name))
		}
	}
	e, err := export.New(g.cfg.Ledger, tenant, from, to)
	switch {
	case errors.Is(err, export.ErrRange):
		return reply.NewProblem("bad-range", "%v", err)
	case errors.Is(err, export.ErrTenant):
		return reply.NewProblem("bad-request", "%v", err)
	case errors.Is(err, export.ErrNoCheckpoint):
		return reply.NewProblem("not-found", "no checkpoint yet: the ledger has signed nothing to export")
	case err != nil:
		return err
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	dw := &deadlineWriter{w: w, rc: rc}
	if _, err := e.Write(r.Context(), dw, nil); err != nil {
		// The status line is gone; the export ends without its manifest.
		g.log.Warn("export ended", "request_id", reply.RequestID(r), "tenant", tenant, "err", err)
	}
	if g.cfg.OnExport != nil {
		g.cfg.OnExport(tenant, dw.n)
	}
	return nil
}

// deadlineWriter gives each write of a long response its own deadline, and
// counts the bytes written.
type deadlineWriter struct {
	w  http.ResponseWriter
	rc *http.ResponseController
	n  int64
}

func (d *deadlineWriter) Write(b []byte) (int, error) {
	d.rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
	n, err := d.w.Write(b)
	d.n += int64(n)
	return n, err
}
