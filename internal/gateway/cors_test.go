package gateway

import (
	"net/http/httptest"
	"testing"
)

func TestCORS(t *testing.T) {
	g, _ := newTestGateway(t, func(c *Config) { c.CORSOrigins = []string{"https://app.example"} })
	for _, tc := range []struct {
		origin, method string
		status         int
		allow          string
	}{
		{"https://app.example", "GET", 200, "https://app.example"},
		{"https://evil.example", "GET", 200, ""},
		{"https://app.example", "OPTIONS", 204, "https://app.example"},
		{"https://evil.example", "OPTIONS", 403, ""},
	} {
		r := httptest.NewRequest(tc.method, "/healthz", nil)
		r.Header.Set("Origin", tc.origin)
		if tc.method == "OPTIONS" {
			r.Header.Set("Access-Control-Request-Method", "POST")
		}
		w := httptest.NewRecorder()
		g.ServeHTTP(w, r)
		if w.Code != tc.status || w.Header().Get("Access-Control-Allow-Origin") != tc.allow {
			t.Errorf("%s from %s: %d, allow-origin %q; want %d, %q", tc.method, tc.origin, w.Code, w.Header().Get("Access-Control-Allow-Origin"), tc.status, tc.allow)
		}
	}
}
