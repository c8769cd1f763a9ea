package main

// Tests of controls that SECURITY.md lists and that no other test
// asserted: what the logs never hold, the dev cookie's attributes, the
// headers of every answer, CORS beyond the allowed origin, the publish
// endpoint's refusal of ambient credentials, the demo page's HTML sinks,
// and the connection limits through ssehub's flags.

import (
	"context"
	"encoding/base64"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ssekit/sse/internal/ssetest"
)

// TestTokensAndKeysNeverLogged subscribes with tokens in ?access_token=
// and in the cookie — one accepted, the others refused (another secret,
// expired) — and publishes with the key and a wrong one, at log level
// debug: no log line holds a token, a token's signature, the secret or a
// key; the lines say only where the token came from.
func TestTokensAndKeysNeverLogged(t *testing.T) {
	t.Parallel()
	r := startRun(t, []string{"--log-level", "debug"}, testEnv)
	user := newUser()
	good := token(t, user)
	s := openStream(t, r.url+"/sse/stream?access_token="+url.QueryEscape(good), nil)
	s.nextOf(t, "connected")
	forged := signHS(t, jwt.SigningMethodHS256, testSecret+"-not-this-hubs", jwt.MapClaims{"sub": user, "exp": time.Now().Add(time.Hour).Unix()})
	expired := signHS(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": user, "exp": time.Now().Add(-time.Hour).Unix()})
	inCookie := signHS(t, jwt.SigningMethodHS256, testSecret+"-cookie", jwt.MapClaims{"sub": user, "exp": time.Now().Add(time.Hour).Unix()})
	for _, edit := range []func(*http.Request){
		func(r *http.Request) { r.URL.RawQuery = "access_token=" + url.QueryEscape(forged) },
		func(r *http.Request) { r.URL.RawQuery = "access_token=" + url.QueryEscape(expired) },
		func(r *http.Request) { r.AddCookie(&http.Cookie{Name: tokenCookie, Value: inCookie}) },
	} {
		req, _ := http.NewRequest(http.MethodGet, r.url+"/sse/stream", nil)
		edit(req)
		if status, body := doJSON(t, req); status != http.StatusUnauthorized {
			t.Fatalf("refused token: %d %v, want 401", status, body)
		}
	}
	const wrongKey = "wrong-publish-key-0000"
	if status, out := publish(t, r.url, testKey, `{"users":["`+user+`"],"type":"x"}`); status != http.StatusOK {
		t.Fatalf("publish: %d %v", status, out)
	}
	if status, _ := publish(t, r.url, wrongKey, `{"all":true,"type":"x"}`); status != http.StatusUnauthorized {
		t.Fatalf("publish with a wrong key: %d, want 401", status)
	}
	s.close()
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	logs := r.logs.String()
	secrets := map[string]string{"the secret": testSecret, "the publish key": testKey, "the wrong key": wrongKey}
	for name, tok := range map[string]string{"accepted token": good, "forged token": forged, "expired token": expired, "cookie token": inCookie} {
		secrets[name] = tok
		secrets[name+"'s signature"] = tok[strings.LastIndex(tok, ".")+1:]
	}
	for name, secret := range secrets {
		if strings.Contains(logs, secret) {
			t.Errorf("the logs hold %s:\n%s", name, logs)
		}
	}
	for _, want := range []string{`"msg":"stream authenticated"`, `"msg":"stream refused"`, `"source":"query"`, `"source":"cookie"`, `"msg":"publish refused"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("the logs lack %s:\n%s", want, logs)
		}
	}
}

// TestDemoCookieAttributes checks the sse_token cookie that POST
// /demo/token sets in dev mode: HttpOnly, SameSite=Strict, the prefix as
// its path, the token's expiry as its own, and Secure exactly when the
// request came over TLS — never over the plain HTTP the binary serves.
func TestDemoCookieAttributes(t *testing.T) {
	t.Parallel()
	for _, overTLS := range []bool{false, true} {
		cfg, err := parseConfig([]string{"--dev", "--addr", "127.0.0.1:0"}, noEnv, nil)
		if err != nil {
			t.Fatal(err)
		}
		cfg.fillDevSecrets()
		a, err := newApp(t.Context(), cfg, slog.New(slog.DiscardHandler), nil)
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewUnstartedServer(a.handler)
		if overTLS {
			srv.StartTLS()
		} else {
			srv.Start()
		}
		t.Cleanup(func() {
			_ = a.close(context.Background())
			srv.Close()
		})
		resp, err := srv.Client().Post(srv.URL+"/demo/token", "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		var c *http.Cookie
		for _, k := range resp.Cookies() {
			if k.Name == tokenCookie {
				c = k
			}
		}
		if resp.StatusCode != http.StatusOK || c == nil {
			t.Fatalf("TLS %v: %d, cookie %v", overTLS, resp.StatusCode, c)
		}
		exp, err := jwt.NewParser().ParseWithClaims(c.Value, &jwt.RegisteredClaims{}, func(*jwt.Token) (any, error) { return []byte(cfg.JWTSecret), nil })
		if err != nil {
			t.Fatalf("the cookie's token: %v", err)
		}
		tokenExp, _ := exp.Claims.GetExpirationTime()
		if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/sse" || c.Secure != overTLS || c.Expires.Unix() != tokenExp.Unix() {
			t.Errorf("TLS %v: cookie %q: want HttpOnly, SameSite=Strict, Path=/sse, Secure %v, Expires at the token's exp %v", overTLS, resp.Header.Get("Set-Cookie"), overTLS, tokenExp)
		}
	}
}

// TestSecurityHeadersOnEveryRoute checks that every answer — a stream, a
// refusal, a publish, the demo page, a 404 — carries nosniff and
// Referrer-Policy: no-referrer, so that a URL with a token in its query
// is never sent onward as a Referer.
func TestSecurityHeadersOnEveryRoute(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, testConfig(t), nil)
	check := func(what string, h http.Header) {
		t.Helper()
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("%s: X-Content-Type-Options %q, Referrer-Policy %q; want nosniff, no-referrer", what, h.Get("X-Content-Type-Options"), h.Get("Referrer-Policy"))
		}
	}
	s := openStream(t, ta.srv.URL+"/sse/stream?access_token="+token(t, newUser()), nil)
	check("a stream", s.resp.Header)
	for _, rt := range []struct{ method, path string }{
		{"GET", "/sse/stream"}, {"POST", "/sse/publish"}, {"GET", "/sse/status"}, {"GET", "/metrics"},
		{"GET", "/healthz"}, {"GET", "/"}, {"GET", "/assets/app.js"}, {"GET", "/demo/config"}, {"POST", "/demo/token"}, {"GET", "/nope"},
	} {
		req, _ := http.NewRequest(rt.method, ta.srv.URL+rt.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		check(rt.method+" "+rt.path, resp.Header)
	}
}

// TestCORSBeyondTheAllowedOrigin completes TestCORS: another origin's
// preflight gets no Access-Control-Allow-* header; every answer of the
// hub's routes varies by Origin; /metrics, /healthz and /demo/token never
// carry CORS headers, even for the allowed origin; a hub without
// --cors-origins allows none; and CORS binds browsers only: the hub
// serves a request from any origin that carries the credentials.
func TestCORSBeyondTheAllowedOrigin(t *testing.T) {
	t.Parallel()
	const allowed, evil = "https://app.example.com", "https://evil.example.com"
	cfg, err := parseConfig([]string{"--dev", "--addr", "127.0.0.1:0", "--cors-origins", allowed}, noEnv, nil)
	if err != nil {
		t.Fatal(err)
	}
	ta := newTestApp(t, cfg, nil)
	do := func(base, method, path, origin string, hdr ...string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(`{"all":true,"type":"x"}`))
		req.Header.Set("Origin", origin)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	noCORS := func(what string, resp *http.Response) {
		t.Helper()
		for name := range resp.Header {
			if strings.HasPrefix(name, "Access-Control-") {
				t.Errorf("%s: has %s: %q", what, name, resp.Header.Get(name))
			}
		}
	}
	pre := do(ta.srv.URL, http.MethodOptions, "/sse/publish", evil, "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization, content-type")
	if pre.StatusCode != http.StatusNoContent || pre.Header.Get("Vary") != "Origin" {
		t.Errorf("another origin's preflight: %d, Vary %q; want 204, Vary: Origin", pre.StatusCode, pre.Header.Get("Vary"))
	}
	noCORS("another origin's preflight", pre)
	for _, path := range []string{"/metrics", "/healthz"} {
		noCORS("GET "+path+" from the allowed origin", do(ta.srv.URL, http.MethodGet, path, allowed))
	}
	// The dev token is the demo page's own: another origin, even one
	// allowed to publish, gets no token and no cookie
	// (TestDemoTokenRefusesOtherSites), and no CORS header either.
	for _, origin := range []string{allowed, evil} {
		resp := do(ta.srv.URL, http.MethodPost, "/demo/token", origin, "Content-Type", "text/plain")
		if resp.StatusCode != http.StatusForbidden || len(resp.Cookies()) != 0 {
			t.Errorf("POST /demo/token from %s: %d, cookies %v; want 403 and no cookie", origin, resp.StatusCode, resp.Cookies())
		}
		noCORS("POST /demo/token from "+origin, resp)
	}
	// The publish is served: the key is the control, CORS only keeps
	// another origin's page from reading the answer.
	resp := do(ta.srv.URL, http.MethodPost, "/sse/publish", evil, "Authorization", "Bearer "+ta.cfg.PublishKey, "Content-Type", "application/json")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Vary") != "Origin" {
		t.Errorf("a publish with the key from another origin: %d, Vary %q; want 200, Vary: Origin", resp.StatusCode, resp.Header.Get("Vary"))
	}
	noCORS("a publish from another origin", resp)

	none := newTestApp(t, testConfig(t), nil)
	noCORS("a preflight to a hub without --cors-origins", do(none.srv.URL, http.MethodOptions, "/sse/stream", allowed, "Access-Control-Request-Method", "GET"))
}

// TestPublishTakesNoAmbientCredentials checks that nothing a browser
// attaches by itself publishes: not the subscriber cookie, not Basic
// credentials holding the key, not a form's content type even with the
// key. Only Authorization: Bearer <key> with a JSON body does, and only on
// the publish route: the stream route publishes nothing, whatever it is
// sent.
func TestPublishTakesNoAmbientCredentials(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, testConfig(t), nil)
	user := newUser()
	cases := []struct {
		name   string
		edit   func(*http.Request)
		status int
	}{
		{"the subscriber cookie", func(r *http.Request) { r.AddCookie(&http.Cookie{Name: tokenCookie, Value: token(t, user)}) }, 401},
		{"the key as a cookie", func(r *http.Request) { r.AddCookie(&http.Cookie{Name: "publish_key", Value: testKey}) }, 401},
		{"the key in Basic credentials", func(r *http.Request) {
			r.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(":"+testKey)))
		}, 401},
		{"the key in the query", func(r *http.Request) { r.URL.RawQuery = "access_token=" + testKey }, 401},
		{"text/plain with the key", func(r *http.Request) {
			r.Header.Set("Authorization", "Bearer "+testKey)
			r.Header.Set("Content-Type", "text/plain")
		}, 415},
		{"multipart with the key", func(r *http.Request) {
			r.Header.Set("Authorization", "Bearer "+testKey)
			r.Header.Set("Content-Type", "multipart/form-data; boundary=x")
		}, 415},
	}
	for _, tc := range cases {
		req, _ := http.NewRequest(http.MethodPost, ta.srv.URL+"/sse/publish", strings.NewReader(`{"all":true,"type":"x"}`))
		req.Header.Set("Content-Type", "application/json")
		tc.edit(req)
		if status, body := doJSON(t, req); status != tc.status {
			t.Errorf("%s: %d %v, want %d", tc.name, status, body, tc.status)
		}
	}
	for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodPut} {
		req, _ := http.NewRequest(method, ta.srv.URL+"/sse/stream?all=true&type=x", strings.NewReader(`{"all":true,"type":"x"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+testKey)
		if status, body := doJSON(t, req); status != http.StatusUnauthorized && status != http.StatusMethodNotAllowed {
			t.Errorf("%s /sse/stream with the key and a publish body: %d %v, want 401 or 405", method, status, body)
		}
	}
	if got := ta.hub.Stats().Published; got != 0 {
		t.Errorf("Published = %d, want 0", got)
	}
}

// TestDemoPageNeverRendersDataAsHTML checks the embedded demo page's
// code: no API that parses a string as HTML or runs it as code, no inline
// script or event-handler attribute, and a CSP that would refuse them
// anyway. Event data reaches the page only through textContent (app.js:
// addEntry, toast); a Chromium test that publishes markup would prove the
// rendering itself.
func TestDemoPageNeverRendersDataAsHTML(t *testing.T) {
	t.Parallel()
	sinks := regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML|document\.write|DOMParser|createContextualFragment|srcdoc|\beval\s*\(|new\s+Function|setTimeout\s*\(\s*["'\x60]|setInterval\s*\(\s*["'\x60]|javascript:`)
	err := fs.WalkDir(webFS, "web", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(webFS, path)
		if err != nil {
			return err
		}
		if m := sinks.Find(b); m != nil {
			t.Errorf("%s uses %s", path, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	page, err := fs.ReadFile(webFS, "web/index.html")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`(?i)<script[^>]*>`).FindAll(page, -1) {
		if !strings.Contains(string(m), ` src="`) {
			t.Errorf("index.html has an inline script: %s", m)
		}
	}
	if m := regexp.MustCompile(`(?i)\son[a-z]+\s*=`).Find(page); m != nil {
		t.Errorf("index.html has an event-handler attribute: %s", m)
	}
	if !strings.Contains(demoCSP, "script-src 'self'") || strings.Contains(demoCSP, "unsafe-") {
		t.Errorf("CSP %q: want script-src 'self' and nothing unsafe", demoCSP)
	}
}

// TestConnectionLimits checks --max-clients-per-user and --max-clients
// through ssehub: a user's next stream over the limit ends their oldest,
// and a stream over the node's limit is sent away with a retry hint and
// not registered.
func TestConnectionLimits(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, testConfig(t, "--max-clients", "2", "--max-clients-per-user", "1"), nil)
	alice := token(t, newUser())
	oldest := openStream(t, ta.srv.URL+"/sse/stream", bearerAuth(alice))
	oldest.nextOf(t, "connected")
	openStream(t, ta.srv.URL+"/sse/stream", bearerAuth(alice)).nextOf(t, "connected")
	for {
		_, err := oldest.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("alice's oldest stream: %v, want its end", err)
		}
	}
	ssetest.Eventually(t, "alice's oldest stream unregistered", func() bool { return ta.hub.GetTotalClientCount() == 1 })
	openStream(t, ta.srv.URL+"/sse/stream", bearerAuth(token(t, newUser()))).nextOf(t, "connected")
	req, _ := http.NewRequest(http.MethodGet, ta.srv.URL+"/sse/stream", nil)
	bearerAuth(token(t, newUser()))(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	refusal(t, resp, 0)
	if got := ta.hub.GetTotalClientCount(); got != 2 {
		t.Errorf("%d streams, want 2", got)
	}
}
