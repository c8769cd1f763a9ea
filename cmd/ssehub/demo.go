package main

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/ssekit/sse/internal/httpjson"
)

// webFS is the demo page: plain HTML, CSS and JavaScript, nothing from a
// CDN, so the binary alone serves it. Its one built file,
// ssekit-client.js, is the browser client's build (js/dist/index.js),
// committed here because go:embed cannot reach js/: go run needs no npm
// step, and webclient_test.go fails when the copy no longer matches.
//
//go:embed web
var webFS embed.FS

// demoCSP confines the demo page to its own origin: it loads nothing from
// elsewhere, talks only to this hub, and no page may frame it.
const demoCSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; " +
	"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// pageHeaders sets the headers of the demo page and of each of its files:
// the CSP, and X-Frame-Options for browsers that predate frame-ancestors.
// The files get them too, since a file opened on its own (the SVG, say)
// is a document that could otherwise be framed for clickjacking.
func pageHeaders(h http.Header) {
	h.Set("Content-Security-Policy", demoCSP)
	h.Set("X-Frame-Options", "DENY")
}

// demoConfig is what the page asks the server first.
type demoConfig struct {
	Dev    bool   `json:"dev"`
	Prefix string `json:"prefix"`
	// TenantClaim is --tenant-claim, so that the page shows the tenant of
	// a pasted token.
	TenantClaim string `json:"tenant_claim"`
}

// The tenant and the topic grants of the tokens dev mode mints: the demo
// page may join any topic under "demo:", and is refused any other, so
// that a person sees both.
const demoTenant = "demo"

var demoAllowedTopics = []string{"demo:*"}

// demoToken is the answer of POST /demo/token in dev mode.
type demoToken struct {
	User          string    `json:"user"`
	Tenant        string    `json:"tenant"`
	AllowedTopics []string  `json:"allowed_topics"`
	Token         string    `json:"token"`
	PublishKey    string    `json:"publish_key"`
	ExpiresAt     time.Time `json:"expires_at"`
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
		pageHeaders(h)
		h.Set("Cache-Control", "no-cache")
		_, _ = w.Write(index)
	})
	assets := http.StripPrefix("/assets/", http.FileServerFS(files))
	mux.HandleFunc("GET /assets/", func(w http.ResponseWriter, r *http.Request) {
		pageHeaders(w.Header())
		assets.ServeHTTP(w, r)
	})
	mux.HandleFunc("GET /demo/config", func(w http.ResponseWriter, r *http.Request) {
		httpjson.Write(w, http.StatusOK, demoConfig{Dev: a.cfg.Dev, Prefix: a.cfg.Prefix, TenantClaim: a.cfg.TenantClaim})
	})
	mux.Handle("/demo/token", only(http.MethodPost, http.HandlerFunc(a.demoToken)))
}

// minDemoTTL is the shortest lifetime ?ttl= may ask of a dev token. A
// NumericDate is whole seconds, so a token of 2s lives 1 to 2 s: shorter,
// it could expire before the page opens its stream, and the page would
// fetch tokens in a loop.
const minDemoTTL = 2 * time.Second

// demoToken mints a subscriber token in dev mode, for the user the page
// chose (or a new one), in demoTenant with demoAllowedTopics, sets it as
// the sse_token cookie for the EventSource, and hands the page the
// publish key. Outside dev mode the server never mints tokens: the page
// asks the person to paste one.
//
// The token lives --dev-token-ttl, or ?ttl= (from minDemoTTL to
// --dev-token-ttl): a dev-only knob, for tests and for a person to watch a
// stream end with session_ended and the page resume with a new token
// without waiting hours.
//
// Only a request for a loopback Host is answered. A dev hub listens on
// loopback, but a page from anywhere can still reach it through DNS
// rebinding: evil.example.com is re-pointed at 127.0.0.1 after the page
// loaded, and its scripts then talk to the hub as same-origin. The Host
// header of those requests still names evil.example.com.
func (a *app) demoToken(w http.ResponseWriter, r *http.Request) {
	if !a.cfg.Dev {
		writeError(w, http.StatusNotFound, "not_found", "dev mode is off: this hub never mints tokens; paste one signed by your backend")
		return
	}
	if !loopbackHost(r.Host) {
		a.log.Info("dev mode: token refused", "reason", "Host is not loopback", "host", capInput(r.Host), "remote", r.RemoteAddr)
		writeError(w, http.StatusForbidden, "forbidden", "dev mode mints tokens only for a loopback Host: open the demo page at http://localhost:<port>/ or http://127.0.0.1:<port>/")
		return
	}
	if why := crossSite(r); why != "" {
		a.log.Info("dev mode: token refused", "reason", why, "remote", r.RemoteAddr)
		writeError(w, http.StatusForbidden, "forbidden", "dev mode mints tokens only for the demo page itself: "+why)
		return
	}
	var req struct {
		User string `json:"user"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 4<<10)).Decode(&req); err != nil && !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, "bad_request", "malformed JSON body: "+err.Error())
		return
	}
	user := uuid.New()
	if req.User != "" {
		u, err := uuid.Parse(req.User)
		if err != nil || u == uuid.Nil {
			writeError(w, http.StatusBadRequest, "bad_request", "user must be a uuid")
			return
		}
		user = u
	}
	ttl := a.cfg.DevTokenTTL
	if q := r.URL.Query().Get("ttl"); q != "" {
		d, err := time.ParseDuration(q)
		if err != nil || d < minDemoTTL || d > a.cfg.DevTokenTTL {
			writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("ttl %s: want a duration from %s to %s (--dev-token-ttl), such as 5s",
				quoteInput(q), shortDuration(minDemoTTL), shortDuration(a.cfg.DevTokenTTL)))
			return
		}
		ttl = d
	}
	token, exp, err := a.verify.mint(user.String(), demoTenant, demoAllowedTopics, ttl)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
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
	a.log.Info("dev mode: minted a token", "user", user.String(), "tenant", demoTenant, "ttl", ttl.String())
	httpjson.Write(w, http.StatusOK, demoToken{User: user.String(), Tenant: demoTenant, AllowedTopics: demoAllowedTopics,
		Token: token, PublishKey: a.cfg.PublishKey, ExpiresAt: exp})
}

// crossSite says why r comes from another site's page, or "": a browser
// names where a request comes from (Sec-Fetch-Site, and Origin on a
// POST), and another site's page could otherwise make it mint a token,
// set as the cookie of the person's demo page, for a user of the other
// site's choosing. Requests that name no origin (curl, the tests) are
// not a browser's, and are answered.
func crossSite(r *http.Request) string {
	switch site := r.Header.Get("Sec-Fetch-Site"); site {
	case "", "same-origin", "none":
	default:
		return "Sec-Fetch-Site is " + quoteInput(site)
	}
	if origin := r.Header.Get("Origin"); origin != "" {
		u, err := url.Parse(origin)
		if err != nil || !strings.EqualFold(u.Host, r.Host) {
			return "Origin " + quoteInput(origin) + " is not this page's"
		}
	}
	return ""
}

// loopbackHost reports whether a Host header names this machine:
// localhost or a name under .localhost (which RFC 6761 keeps on loopback,
// and browsers resolve so themselves), an address in 127.0.0.0/8, or
// [::1]; with or without a port.
func loopbackHost(host string) bool {
	if h, port, err := net.SplitHostPort(host); err == nil {
		if !allDigits(port) {
			return false
		}
		host = h
	} else {
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	}
	host = strings.ToLower(host)
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	addr, err := netip.ParseAddr(host)
	return err == nil && addr.Zone() == "" && addr.IsLoopback()
}

// allDigits reports whether s is a non-empty run of ASCII digits.
func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
