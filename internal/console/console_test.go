package console

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	h := Handler()
	tests := []struct {
		path   string
		status int
		ctype  string
		body   string
	}{
		{"/console/", 200, "text/html", `<script type="module" src="console.js">`},
		{"/console/index.html", 200, "text/html", "<title>LogLineOS console</title>"},
		{"/console/console.js", 200, "javascript", "from \"./verify.js\""},
		{"/console/verify.js", 200, "javascript", "export async function verifyReceipt"},
		{"/console/console.css", 200, "text/css", ":root"},
		{"/console/nope.js", 404, "", ""},
		{"/console/../server.go", 404, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("GET", tt.path, nil))
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d", w.Code, tt.status)
			}
			if w.Header().Get("X-Content-Type-Options") != "nosniff" {
				t.Error("no nosniff")
			}
			if tt.status != 200 {
				return
			}
			if ct := w.Header().Get("Content-Type"); !strings.Contains(ct, tt.ctype) {
				t.Errorf("Content-Type %q, want %q", ct, tt.ctype)
			}
			if !strings.Contains(w.Body.String(), tt.body) {
				t.Errorf("body lacks %q", tt.body)
			}
			if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
				t.Errorf("CSP %q", csp)
			}
			// A revalidation with the ETag is answered 304.
			r := httptest.NewRequest("GET", tt.path, nil)
			r.Header.Set("If-None-Match", w.Header().Get("ETag"))
			w2 := httptest.NewRecorder()
			h.ServeHTTP(w2, r)
			if w2.Code != http.StatusNotModified || w2.Body.Len() != 0 {
				t.Errorf("revalidation: %d, %d bytes", w2.Code, w2.Body.Len())
			}
		})
	}
}
