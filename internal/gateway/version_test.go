package gateway

import (
	"os"
	"strings"
	"testing"
	"time"
)

// Every route answers under /v1 as without it; without it, the answer says
// the path is deprecated, until when, and what to use instead.
func TestVersionPrefixAndDeprecations(t *testing.T) {
	g, _ := newTestGateway(t, nil)
	w := send(g, "GET", "/v1/healthz", "", "", nil)
	if w.Code != 200 || w.Header().Get("X-LogLine-Deprecation") != "" || w.Header().Get("Sunset") != "" {
		t.Fatalf("/v1/healthz: HTTP %d, deprecation %q", w.Code, w.Header().Get("X-LogLine-Deprecation"))
	}
	w = send(g, "GET", "/healthz", "", "", nil)
	if w.Code != 200 {
		t.Fatalf("/healthz: HTTP %d", w.Code)
	}
	h := w.Header()
	if got, want := h.Get("X-LogLine-Deprecation"), `2027-12-31; link="/v1/healthz"; info="unversioned paths: use /v1"`; got != want {
		t.Fatalf("X-LogLine-Deprecation %q, want %q", got, want)
	}
	if h.Get("Sunset") != "Fri, 31 Dec 2027 00:00:00 GMT" || h.Get("Deprecation") != "@1796428800" || h.Get("Link") != `</v1/healthz>; rel="successor-version"` {
		t.Fatalf("Sunset %q, Deprecation %q, Link %q", h.Get("Sunset"), h.Get("Deprecation"), h.Get("Link"))
	}
	// A name with an escaped slash keeps it under the prefix.
	if w := send(g, "GET", "/v1/spans/t_a/s_a%2Fb", "k", "", nil); w.Code != 404 || !strings.Contains(w.Body.String(), "s_a/b") {
		t.Fatalf("/v1/spans/t_a/s_a%%2Fb: HTTP %d %s", w.Code, w.Body)
	}
	// The console's pages are not API: no version, no deprecation.
	if w := send(g, "GET", "/console/", "", "", nil); w.Header().Get("X-LogLine-Deprecation") != "" {
		t.Fatalf("/console/ is said deprecated: %q", w.Header().Get("X-LogLine-Deprecation"))
	}
	// An unknown path under the prefix is the same 404 problem.
	if w := send(g, "GET", "/v1/nope", "", "", nil); w.Code != 404 || w.Header().Get("Content-Type") != "application/problem+json" {
		t.Fatalf("/v1/nope: HTTP %d %s", w.Code, w.Header().Get("Content-Type"))
	}
}

// The table's dates are dates, in order, and docs/versioning.md lists every
// entry with its dates.
func TestDeprecationsAreDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/versioning.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range Deprecations {
		since, err1 := time.Parse(time.DateOnly, d.Since)
		sunset, err2 := time.Parse(time.DateOnly, d.Sunset)
		if err1 != nil || err2 != nil || !since.Before(sunset) {
			t.Errorf("%q: since %q, sunset %q", d.What, d.Since, d.Sunset)
		}
		row := "| " + d.What + " | " + d.Since + " | " + d.Sunset + " |"
		if !strings.Contains(string(doc), row) {
			t.Errorf("docs/versioning.md has no row %q", row)
		}
	}
}
