package gateway

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The API is versioned by a path prefix: /v1/ingest is POST /ingest of
// version 1, and every route is reachable so. The unprefixed paths are the
// same routes, kept for the clients written before the prefix; they are
// deprecated (see deprecations), and a response to a deprecated request
// says so in X-LogLine-Deprecation, with the date the use ends and where to
// read about it:
//
//	X-LogLine-Deprecation: 2027-12-31; link="/v1/ingest"; info="unversioned paths: use /v1"
//
// and, for HTTP tooling, Deprecation (RFC 9745, the date it was
// deprecated), Sunset (RFC 8594) and Link rel="successor-version".

// APIVersion is the path prefix of the current API version.
const APIVersion = "/v1"

// A Deprecation is one deprecated use of the API, with its dates.
type Deprecation struct {
	// What is deprecated and what to use instead, as the header's info.
	What string
	// Since is the day it was deprecated; Sunset the last day it works.
	Since, Sunset string
	// Match reports whether request r (as sent, before the version prefix
	// is taken off) uses it, and the successor to link to.
	Match func(r *http.Request) (successor string, ok bool)
}

// Deprecations is the table of every deprecated use of the API: the
// header, the docs (docs/versioning.md) and the tests are driven by it.
var Deprecations = []Deprecation{
	{
		What:  "unversioned paths: use /v1",
		Since: "2026-12-05", Sunset: "2027-12-31",
		Match: func(r *http.Request) (string, bool) {
			p := r.URL.Path
			// The web console's pages are not API: they have no /v1 form.
			if strings.HasPrefix(p, APIVersion+"/") || p == "/" || !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "/console/") {
				return "", false
			}
			return APIVersion + p, true
		},
	},
}

// version takes the version prefix off r's path, or marks w's response
// with the deprecations r uses.
func version(w http.ResponseWriter, r *http.Request) {
	if p, ok := strings.CutPrefix(r.URL.Path, APIVersion+"/"); ok {
		r.URL.Path = "/" + p
		// Keep escaped slashes in names (/spans/t/s_a%2Fb) escaped.
		if rp, ok := strings.CutPrefix(r.URL.RawPath, APIVersion+"/"); ok {
			r.URL.RawPath = "/" + rp
		} else {
			r.URL.RawPath = ""
		}
		return
	}
	for _, d := range Deprecations {
		if succ, ok := d.Match(r); ok {
			h := w.Header()
			h.Add("X-LogLine-Deprecation", d.Sunset+`; link="`+succ+`"; info="`+d.What+`"`)
			h.Set("Deprecation", "@"+unixDay(d.Since))
			h.Set("Sunset", httpDate(d.Sunset))
			h.Add("Link", "<"+succ+`>; rel="successor-version"`)
		}
	}
}

// unixDay is an ISO date's midnight UTC in Unix seconds (RFC 9745's form).
func unixDay(date string) string {
	t, err := time.Parse(time.DateOnly, date)
	if err != nil {
		return "0"
	}
	return strconv.FormatInt(t.Unix(), 10)
}

// httpDate is an ISO date's midnight UTC as an HTTP date (RFC 8594).
func httpDate(date string) string {
	t, err := time.Parse(time.DateOnly, date)
	if err != nil {
		return ""
	}
	return t.UTC().Format(http.TimeFormat)
}
