// Package web is multihome's dashboard: plain HTML, CSS and JavaScript
// embedded in the binary, with no front-end build step.
//
// The page reads everything from the HTTP API of package api, which
// serves it at /: it polls /api/v1/links for RTT, loss and utilisation,
// follows /api/v1/events/stream for state changes and the decision log,
// and posts the drain, down and up actions. When the API wants a token,
// the page asks for it once and keeps it in the browser's localStorage.
package web

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// Assets returns the dashboard's files.
func Assets() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return sub
}

// Handler serves the dashboard. Every answer forbids framing (the page
// has action buttons) and loading scripts from elsewhere.
func Handler() http.Handler {
	files := http.FileServerFS(Assets())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data: blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}
