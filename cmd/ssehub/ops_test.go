package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssekit/sse/internal/ssetest"
	"github.com/ssekit/sse/ssekit"
)

// TestMetricsAfterTraffic checks that the Prometheus endpoint has the
// hub's metrics, with the counts of the traffic sent.
func TestMetricsAfterTraffic(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, testConfig(t), nil)
	user := newUser()
	s := openStream(t, ta.srv.URL+"/sse/stream", bearerAuth(token(t, user)))
	s.nextOf(t, "connected")
	for range 3 {
		if status, out := publish(t, ta.srv.URL, testKey, `{"users":["`+user+`"],"type":"notification","data":{}}`); status != 200 {
			t.Fatalf("publish: %d %v", status, out)
		}
		s.nextOf(t, "notification")
	}
	publish(t, ta.srv.URL, "wrong-key-wrong-key", `{"type":"x"}`)
	publish(t, ta.srv.URL, testKey, `{"all":true,"type":"bad type"}`)
	// A resume from an id the hub never issued gets a resync.
	r := openStream(t, ta.srv.URL+"/sse/stream?lastEventId=1-1", bearerAuth(token(t, user)))
	r.nextOf(t, "resync")
	r.close()

	resp, err := http.Get(ta.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q, want the Prometheus text format", ct)
	}
	for _, want := range []string{
		"ssekit_connected_clients ",
		"ssekit_connected_users ",
		`ssekit_events_published_total{type="notification"} 3`,
		`ssekit_events_delivered_total{type="notification"} 3`,
		`ssekit_events_dropped_total{reason="overflow"} 0`,
		"ssekit_events_replayed_total ",
		"ssekit_resyncs_total 1",
		"ssekit_streams_rejected_total ",
		`ssekit_auth_failures_total{endpoint="publish"} 1`,
		`ssekit_publish_rejected_total{code="400"} 1`,
		"go_goroutines ",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// The resync stream ended when the test closed it: wait for the hub to
	// count it, without asserting when.
	ssetest.Eventually(t, "the closed stream counted", func() bool { return ta.hub.Stats().Disconnects[ssekit.ReasonClientGone] > 0 })
	resp, err = http.Get(ta.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := `ssekit_disconnects_total{reason="client_gone"}`; !strings.Contains(string(body), want) {
		t.Errorf("metrics lack %q", want)
	}
}

// fakeCluster is a cluster on an in-memory broker whose Ping fails on
// demand.
type fakeCluster struct {
	broker  *ssekit.MemoryBroker
	failing atomic.Bool
	started atomic.Bool
	closed  atomic.Bool
}

func newFakeCluster() *fakeCluster {
	return &fakeCluster{broker: ssekit.NewMemoryBroker(100, time.Minute)}
}

func (f *fakeCluster) Broker() ssekit.Broker { return f.broker }
func (f *fakeCluster) Start(hub *ssekit.Hub) { f.started.Store(true) }
func (f *fakeCluster) Ping(ctx context.Context) error {
	if f.failing.Load() {
		return errors.New("dial tcp 127.0.0.1:6379: connection refused")
	}
	return nil
}
func (f *fakeCluster) Status(ctx context.Context) (any, error) {
	return map[string]any{"nodes": 3}, nil
}
func (f *fakeCluster) Close() error {
	f.closed.Store(true)
	return f.broker.Close()
}

func TestHealthz(t *testing.T) {
	t.Parallel()
	t.Run("memory", func(t *testing.T) {
		ta := newTestApp(t, testConfig(t), nil)
		req, _ := http.NewRequest(http.MethodGet, ta.srv.URL+"/healthz", nil)
		if status, out := doJSON(t, req); status != 200 || out["status"] != "ok" {
			t.Errorf("got %d %v, want 200 ok", status, out)
		}
		_ = ta.hub.Shutdown(t.Context())
		if status, out := doJSON(t, req); status != 503 || out["failing"] != "hub" {
			t.Errorf("after shutdown got %d %v, want 503 failing hub", status, out)
		}
	})
	t.Run("cluster", func(t *testing.T) {
		fc := newFakeCluster()
		ta := newTestApp(t, testConfig(t), fc)
		if !fc.started.Load() {
			t.Errorf("cluster not started with the hub")
		}
		req, _ := http.NewRequest(http.MethodGet, ta.srv.URL+"/healthz", nil)
		if status, out := doJSON(t, req); status != 200 {
			t.Errorf("got %d %v, want 200", status, out)
		}
		fc.failing.Store(true)
		status, out := doJSON(t, req)
		if status != 503 || out["failing"] != "cluster" || !strings.Contains(out["error"].(string), "refused") {
			t.Errorf("got %d %v, want 503 naming the cluster", status, out)
		}
		req, _ = http.NewRequest(http.MethodGet, ta.srv.URL+"/sse/status?scope=cluster", nil)
		if status, out := doJSON(t, req); status != 200 || out["nodes"] != float64(3) {
			t.Errorf("cluster status: got %d %v", status, out)
		}
		_ = ta.close(t.Context())
		if !fc.closed.Load() {
			t.Errorf("cluster not closed with the app")
		}
	})
}

func TestStatus(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, testConfig(t), nil)
	user := newUser()
	openStream(t, ta.srv.URL+"/sse/stream", bearerAuth(token(t, user))).nextOf(t, "connected")
	req, _ := http.NewRequest(http.MethodGet, ta.srv.URL+"/sse/status", nil)
	status, out := doJSON(t, req)
	if status != 200 || out["total_clients"] != float64(1) || out["connected_users"] != float64(1) {
		t.Errorf("got %d %v, want 1 client of 1 user", status, out)
	}
	req, _ = http.NewRequest(http.MethodGet, ta.srv.URL+"/sse/status?scope=cluster", nil)
	if status, out := doJSON(t, req); status != 404 {
		t.Errorf("cluster scope without a cluster: got %d %v, want 404", status, out)
	}
	req, _ = http.NewRequest(http.MethodGet, ta.srv.URL+"/sse/status?scope=galaxy", nil)
	if status, out := doJSON(t, req); status != 400 {
		t.Errorf("unknown scope: got %d %v, want 400", status, out)
	}
}

func TestCORS(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, testConfig(t, "--cors-origins", "https://app.example.com"), nil)
	user := newUser()
	s := openStream(t, ta.srv.URL+"/sse/stream", func(r *http.Request) {
		bearerAuth(token(t, user))(r)
		r.Header.Set("Origin", "https://app.example.com")
	})
	h := s.resp.Header
	if h.Get("Access-Control-Allow-Origin") != "https://app.example.com" || h.Get("Access-Control-Allow-Credentials") != "true" {
		t.Errorf("allowed origin got ACAO %q ACAC %q", h.Get("Access-Control-Allow-Origin"), h.Get("Access-Control-Allow-Credentials"))
	}
	other := openStream(t, ta.srv.URL+"/sse/stream", func(r *http.Request) {
		bearerAuth(token(t, user))(r)
		r.Header.Set("Origin", "https://evil.example.com")
	})
	if got := other.resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("other origin got ACAO %q, want none", got)
	}
	req, _ := http.NewRequest(http.MethodOptions, ta.srv.URL+"/sse/publish", nil)
	req.Header.Set("Origin", "https://app.example.com")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if allow := resp.Header.Get("Access-Control-Allow-Headers"); resp.StatusCode != 204 || !strings.Contains(allow, "Authorization") || !strings.Contains(allow, "Idempotency-Key") {
		t.Errorf("preflight got %d %v", resp.StatusCode, resp.Header)
	}
}

// TestDemoPage checks the embedded page and its files, served with the
// right content types, and every one of them with the page's CSP (whose
// frame-ancestors 'none' forbids framing) and X-Frame-Options: DENY for
// browsers that predate CSP: a page or file that may be framed can be
// used for clickjacking.
func TestDemoPage(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, testConfig(t), nil)
	for path, want := range map[string]string{
		"/":                   "text/html; charset=utf-8",
		"/assets/app.js":      "text/javascript; charset=utf-8",
		"/assets/style.css":   "text/css; charset=utf-8",
		"/assets/favicon.svg": "image/svg+xml",
	} {
		resp, err := http.Get(ta.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != want || len(body) == 0 {
			t.Errorf("GET %s: %d %q (%d bytes), want 200 %q", path, resp.StatusCode, resp.Header.Get("Content-Type"), len(body), want)
		}
		if got := resp.Header.Get("Content-Security-Policy"); got != demoCSP {
			t.Errorf("GET %s: Content-Security-Policy %q, want %q", path, got, demoCSP)
		}
		if got := resp.Header.Get("X-Frame-Options"); got != "DENY" {
			t.Errorf("GET %s: X-Frame-Options %q, want DENY", path, got)
		}
		if path == "/" {
			if !strings.Contains(string(body), `src="/assets/app.js"`) {
				t.Errorf("GET /: page does not load app.js")
			}
		}
	}
	req, _ := http.NewRequest(http.MethodGet, ta.srv.URL+"/no/such/page", nil)
	if status, _ := doJSON(t, req); status != 404 {
		t.Errorf("unknown path: %d, want 404", status)
	}
}

// TestDemoTokenDevOnly checks that only a dev-mode hub mints tokens, and
// that the cookie it sets opens a stream.
func TestDemoTokenDevOnly(t *testing.T) {
	t.Parallel()
	prod := newTestApp(t, testConfig(t), nil)
	req, _ := http.NewRequest(http.MethodPost, prod.srv.URL+"/demo/token", strings.NewReader(`{}`))
	if status, out := doJSON(t, req); status != 404 {
		t.Errorf("non-dev hub minted a token: %d %v", status, out)
	}
	req, _ = http.NewRequest(http.MethodGet, prod.srv.URL+"/demo/config", nil)
	if _, out := doJSON(t, req); out["dev"] != false || out["prefix"] != "/sse" {
		t.Errorf("config %v, want dev false", out)
	}

	devCfg, err := parseConfig([]string{"--dev", "--addr", "127.0.0.1:0"}, noEnv, nil)
	if err != nil {
		t.Fatal(err)
	}
	dev := newTestApp(t, devCfg, nil)
	user := newUser()
	req, _ = http.NewRequest(http.MethodPost, dev.srv.URL+"/demo/token", strings.NewReader(`{"user":"`+user+`"}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == tokenCookie {
			cookie = c
		}
	}
	if resp.StatusCode != 200 || cookie == nil || !cookie.HttpOnly || cookie.Path != "/sse" {
		t.Fatalf("dev token: %d cookie %+v", resp.StatusCode, cookie)
	}
	s := openStream(t, dev.srv.URL+"/sse/stream", func(r *http.Request) { r.AddCookie(cookie) })
	s.nextOf(t, "connected")
	if got := dev.hub.UserClientCount(user); got != 1 {
		t.Errorf("user has %d streams, want 1", got)
	}
}

// TestPrefixes checks that the routes follow --prefix, including none.
func TestPrefixes(t *testing.T) {
	t.Parallel()
	for prefix, want := range map[string]string{"/": "", "/api/sse/": "/api/sse"} {
		ta := newTestApp(t, testConfig(t, "--prefix", prefix), nil)
		user := newUser()
		s := openStream(t, ta.srv.URL+want+"/stream", bearerAuth(token(t, user)))
		s.nextOf(t, "connected")
		req, _ := http.NewRequest(http.MethodPost, ta.srv.URL+want+"/publish", strings.NewReader(`{"users":["`+user+`"],"type":"x"}`))
		req.Header.Set("Authorization", "Bearer "+testKey)
		req.Header.Set("Content-Type", "application/json")
		if status, out := doJSON(t, req); status != 200 {
			t.Fatalf("prefix %q: publish %d %v", prefix, status, out)
		}
		s.nextOf(t, "x")
		req, _ = http.NewRequest(http.MethodGet, ta.srv.URL+want+"/status", nil)
		if status, _ := doJSON(t, req); status != 200 {
			t.Errorf("prefix %q: status %d", prefix, status)
		}
	}
}

// TestDemoTokenLoopbackHostOnly checks that a dev hub mints tokens only
// for requests whose Host is a loopback name or address. A page on
// evil.example.com whose name the attacker re-points at 127.0.0.1 (DNS
// rebinding) reaches a dev hub on this machine as same-origin, but its
// requests still carry Host: evil.example.com, and get a 403.
func TestDemoTokenLoopbackHostOnly(t *testing.T) {
	t.Parallel()
	devCfg, err := parseConfig([]string{"--dev"}, noEnv, nil)
	if err != nil {
		t.Fatal(err)
	}
	dev := newTestApp(t, devCfg, nil)
	port := dev.srv.Listener.Addr().(*net.TCPAddr).Port
	allowed := []string{
		"localhost", "localhost:8080", "LocalHost", "app.localhost", "app.localhost:3000",
		"127.0.0.1", fmt.Sprintf("127.0.0.1:%d", port), "127.1.2.3:80", "[::1]", "[::1]:8080",
	}
	refused := []string{
		"evil.example.com", "evil.example.com:8080", "localhost.evil.example.com", "localhostx",
		"10.0.0.1", "192.168.1.2:8080", "0.0.0.0", "[::]", "[::2]:8080", "[fe80::1]", "127.0.0.1.nip.io",
		"localhost:8080@evil.example.com",
	}
	mint := func(host string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, dev.srv.URL+"/demo/token", strings.NewReader(`{}`))
		req.Host = host
		return doJSON(t, req)
	}
	for _, host := range allowed {
		if status, out := mint(host); status != http.StatusOK || out["token"] == nil {
			t.Errorf("Host %q: %d %v, want a token", host, status, out)
		}
	}
	for _, host := range refused {
		status, out := mint(host)
		if status != http.StatusForbidden || out["error"] != "forbidden" || out["message"] == "" {
			t.Errorf("Host %q: %d %v, want 403 with a JSON error", host, status, out)
		}
		if out["token"] != nil || out["publish_key"] != nil {
			t.Errorf("Host %q got a token or the key", host)
		}
	}
}

// TestDemoTokenRefusesOtherSites: another site's page cannot make the
// person's browser mint a dev token (and set it as the demo page's
// cookie): a browser names where its request comes from, and only the
// demo page itself, or a request that names no origin (curl), is answered.
func TestDemoTokenRefusesOtherSites(t *testing.T) {
	t.Parallel()
	devCfg, err := parseConfig([]string{"--dev"}, noEnv, nil)
	if err != nil {
		t.Fatal(err)
	}
	dev := newTestApp(t, devCfg, nil)
	host := dev.srv.Listener.Addr().String()
	mint := func(headers map[string]string) (int, map[string]any, *http.Cookie) {
		req, _ := http.NewRequest(http.MethodPost, dev.srv.URL+"/demo/token", strings.NewReader(`{}`))
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		var cookie *http.Cookie
		for _, c := range resp.Cookies() {
			if c.Name == tokenCookie {
				cookie = c
			}
		}
		return resp.StatusCode, out, cookie
	}
	for _, h := range []map[string]string{
		nil, // curl
		{"Sec-Fetch-Site": "same-origin", "Origin": "http://" + host},
		{"Sec-Fetch-Site": "none"},
	} {
		if status, out, cookie := mint(h); status != http.StatusOK || out["token"] == nil || cookie == nil {
			t.Errorf("headers %v: %d %v, want a token and its cookie", h, status, out)
		}
	}
	for _, h := range []map[string]string{
		{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example.com"},
		{"Sec-Fetch-Site": "same-site", "Origin": "http://localhost:9999"},
		{"Origin": "https://evil.example.com"},
		{"Origin": "null"},
	} {
		status, out, cookie := mint(h)
		if status != http.StatusForbidden || out["error"] != "forbidden" || out["token"] != nil || cookie != nil {
			t.Errorf("headers %v: %d %v (cookie %v), want 403 and no token, no cookie", h, status, out, cookie)
		}
	}
}
