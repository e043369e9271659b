// Package console is the web console's static side: one HTML page, its
// script and its style sheet, embedded in the binary and served at
// /console/ by `logline serve`. No Node toolchain builds it and it uses no
// framework: the page reads the HTTP API with the caller's token, as any
// other client does, and checks receipts and checkpoints itself with the
// browser's WebCrypto (Ed25519, SHA-256), so the check does not rest on
// trusting the server that sent the page.
//
// Layout of assets/:
//
//	index.html    the page: login, tenant view, operator view
//	console.css   the style (laptop and phone widths, visible focus)
//	console.js    the views: fetches, the live stream, the histogram
//	verify.js     receipt, checkpoint and proof checks (no DOM), the same
//	              rules as package ledgerfmt
//
// The handler serves them with a strict Content-Security-Policy (scripts
// and connections to this origin only), no-cache with a content ETag, and
// nosniff.
package console

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
)

//go:embed assets
var assets embed.FS

// Prefix is where the console is served.
const Prefix = "/console/"

// csp allows what the page needs and nothing else: its own scripts,
// styles and images (the histogram is inline SVG), and fetches to its own
// origin.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// file is one asset with its content type and ETag.
type file struct {
	data  []byte
	ctype string
	etag  string
}

// Handler serves the console's assets under Prefix; Prefix itself is
// index.html. Anything else under it is 404.
func Handler() http.Handler {
	files := map[string]file{}
	err := fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := assets.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ctype := mime.TypeByExtension(path.Ext(p))
		if ctype == "" {
			ctype = "application/octet-stream"
		}
		files[strings.TrimPrefix(p, "assets/")] = file{data: b, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		// The assets are compiled in: a walk error is a build defect.
		panic("console: embedded assets: " + err.Error())
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, _ := strings.CutPrefix(r.URL.Path, Prefix)
		if name == "" {
			name = "index.html"
		}
		f, ok := files[name]
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		if !ok {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		h.Set("Content-Security-Policy", csp)
		h.Set("Content-Type", f.ctype)
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", f.etag)
		if r.Header.Get("If-None-Match") == f.etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		_, _ = w.Write(f.data)
	})
}
