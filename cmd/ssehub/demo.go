package main

import (
	"embed"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"time"

	"github.com/google/uuid"

	sse "github.com/ssekit/sse"
)

// webFS is the demo page: plain HTML, CSS and JavaScript, no build step and
// nothing from a CDN, so the binary alone serves it.
//
//go:embed web
var webFS embed.FS

// demoCSP confines the demo page to its own origin: it loads nothing from
// elsewhere and talks only to this hub.
const demoCSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; " +
	"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// demoConfig is what the page asks the server first.
type demoConfig struct {
	Dev    bool   `json:"dev"`
	Prefix string `json:"prefix"`
}

// demoToken is the answer of POST /demo/token in dev mode.
type demoToken struct {
	User       string    `json:"user"`
	Token      string    `json:"token"`
	PublishKey string    `json:"publish_key"`
	ExpiresAt  time.Time `json:"expires_at"`
}

// demoRoutes mounts the page at /, its files under /assets/, and its two
// endpoints under /demo/.
func (a *app) demoRoutes(mux *http.ServeMux) {
	files, err := fs.Sub(webFS, "web")
	if err != nil {
		panic(err) // the embed pattern above guarantees the folder
	}
	index, err := fs.ReadFile(files, "index.html")
	if err != nil {
		panic(err)
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", demoCSP)
		h.Set("Cache-Control", "no-cache")
		_, _ = w.Write(index)
	})
	mux.Handle("GET /assets/", http.StripPrefix("/assets/", http.FileServerFS(files)))
	mux.HandleFunc("GET /demo/config", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, demoConfig{Dev: a.cfg.Dev, Prefix: a.cfg.Prefix})
	})
	mux.Handle("/demo/token", only(http.MethodPost, http.HandlerFunc(a.demoToken)))
}

// demoToken mints a subscriber token in dev mode, for the user the page
// chose (or a new one), sets it as the sse_token cookie for the
// EventSource, and hands the page the publish key. Outside dev mode the
// server never mints tokens: the page asks the person to paste one.
func (a *app) demoToken(w http.ResponseWriter, r *http.Request) {
	if !a.cfg.Dev {
		sse.WriteError(w, http.StatusNotFound, "not_found", "dev mode is off: this hub never mints tokens; paste one signed by your backend")
		return
	}
	var req struct {
		User string `json:"user"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 4<<10)).Decode(&req); err != nil && !errors.Is(err, io.EOF) {
		sse.WriteError(w, http.StatusBadRequest, "bad_request", "malformed JSON body: "+err.Error())
		return
	}
	user := uuid.New()
	if req.User != "" {
		u, err := uuid.Parse(req.User)
		if err != nil || u == uuid.Nil {
			sse.WriteError(w, http.StatusBadRequest, "bad_request", "user must be a uuid")
			return
		}
		user = u
	}
	token, exp, err := a.verify.mint(user.String(), a.cfg.DevTokenTTL)
	if err != nil {
		sse.WriteError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	path := a.cfg.Prefix
	if path == "" {
		path = "/"
	}
	http.SetCookie(w, &http.Cookie{
		Name:     tokenCookie,
		Value:    token,
		Path:     path,
		Expires:  exp,
		HttpOnly: true, // scripts never need it: the EventSource sends it
		Secure:   r.TLS != nil,
		SameSite: http.SameSiteStrictMode,
	})
	a.log.Info("dev mode: minted a token", "user", user.String())
	writeJSON(w, http.StatusOK, demoToken{User: user.String(), Token: token, PublishKey: a.cfg.PublishKey, ExpiresAt: exp})
}
