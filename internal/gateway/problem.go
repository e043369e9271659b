package gateway

import (
	"errors"
	"fmt"
	"html"
	"net/http"
	"strings"
	"time"

	"github.com/loglineos/loglineos/internal/gateway/reply"
	"github.com/loglineos/loglineos/internal/ledger"
)

// handlerFunc is an HTTP handler that returns an error; errors become
// problem+json in one place (serve).
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// asProblem turns any error into a problem: a *reply.Problem as it is,
// damage to the ledger as 503, anything else as an internal error whose
// detail is not shown to the client.
func asProblem(err error) *reply.Problem {
	var p *reply.Problem
	if errors.As(err, &p) {
		return p
	}
	if errors.Is(err, ledger.ErrIndexDamaged) {
		return reply.NewProblem("index-damaged", "the ledger's index files are damaged (the records are not); the server rebuilds them from the records at its next start")
	}
	if errors.Is(err, ledger.ErrCorrupt) {
		return reply.NewProblem("unavailable", "the ledger's records are damaged; it takes no appends until they are restored")
	}
	return reply.NewProblem("internal", "")
}

// problemPages serves GET /problems/{name}: a short human page per type.
func problemPages(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	t, ok := reply.LookupProblemType(name)
	if !ok {
		return reply.NewProblem("not-found", "no problem type %q", name)
	}
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		return reply.JSON(w, http.StatusOK, map[string]any{"type": "/problems/" + t.Name, "title": t.Title, "status": t.Status, "description": t.Doc})
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=86400")
	fmt.Fprintf(w, "<!doctype html><title>%s</title><h1>%d %s</h1><p><code>/problems/%s</code></p><p>%s</p>\n",
		html.EscapeString(t.Title), t.Status, html.EscapeString(t.Title), t.Name, html.EscapeString(t.Doc))
	return nil
}

// BacklogProblem is the answer to ingest while derivation is too far behind.
func BacklogProblem(backlog, max uint64, retry time.Duration) *reply.Problem {
	p := reply.NewProblem("derivation-behind", "derivation is %d records behind the ledger; this server holds ingest back past %d", backlog, max)
	p.RetryAfter = retry
	return p
}
