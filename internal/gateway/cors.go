package gateway

import (
	"net/http"
	"slices"
)

// CORS: browsers may call the API only from the configured origins. Other
// origins get no CORS headers, so the browser refuses the response; preflight
// requests from them are answered 403.

func (g *Gateway) allowedOrigin(origin string) bool {
	return origin != "" && (slices.Contains(g.cfg.CORSOrigins, origin) || slices.Contains(g.cfg.CORSOrigins, "*"))
}

func (g *Gateway) cors(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if !g.allowedOrigin(origin) {
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
	h.Set("Access-Control-Expose-Headers", "X-Request-Id, Retry-After, X-LogLine-Deprecation, Deprecation, Sunset, Link")
}

// corsPreflight answers OPTIONS preflight requests; it reports whether it did.
func (g *Gateway) corsPreflight(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodOptions || r.Header.Get("Access-Control-Request-Method") == "" {
		return false
	}
	origin := r.Header.Get("Origin")
	if !g.allowedOrigin(origin) {
		w.WriteHeader(http.StatusForbidden)
		return true
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
	h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
	return true
}
