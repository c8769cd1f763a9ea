package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ssekit/sse/sseclient"
)

// TestLimiterSetBurstThenWait checks the token bucket on a clock the test
// moves: a burst is allowed, the next request is refused with the wait
// until a token comes, a refused request does not use up that token, and
// keys do not share buckets.
func TestLimiterSetBurstThenWait(t *testing.T) {
	t.Parallel()
	s := newLimiterSet(2, 3) // 2/s, burst 3
	now := time.Unix(1_700_000_000, 0)
	for i := range 3 {
		if ok, _ := s.allow("a", now); !ok {
			t.Fatalf("request %d of the burst refused", i+1)
		}
	}
	for range 5 { // hammering while refused must not push the token back
		ok, wait := s.allow("a", now)
		if ok || wait != 500*time.Millisecond {
			t.Fatalf("after the burst: ok=%v wait=%v, want refused for 500ms", ok, wait)
		}
	}
	if ok, _ := s.allow("b", now); !ok {
		t.Fatalf("another key refused: keys share a bucket")
	}
	if ok, _ := s.allow("a", now.Add(500*time.Millisecond)); !ok {
		t.Fatalf("refused once the wait it announced had passed")
	}
	var unlimited *limiterSet // rate 0
	if newLimiterSet(0, 10) != nil {
		t.Fatalf("rate 0 built a limiter")
	}
	if ok, _ := unlimited.allow("a", now); !ok {
		t.Fatalf("no limit refused a request")
	}
}

// TestLimiterSetForgetsIdleKeys checks that memory is bounded with no
// goroutine: keys whose bucket is full again are swept on a later access,
// and past maxKeys new keys share one bucket instead of growing the map.
func TestLimiterSetForgetsIdleKeys(t *testing.T) {
	t.Parallel()
	s := newLimiterSet(10, 20) // refills in 2s
	now := time.Unix(1_700_000_000, 0)
	for i := range 1000 {
		s.allow(fmt.Sprint("10.0.", i/256, ".", i%256), now)
	}
	if got := s.size(); got != 1000 {
		t.Fatalf("size %d, want 1000", got)
	}
	s.allow("fresh", now.Add(time.Second)) // not idle long enough yet
	if got := s.size(); got != 1001 {
		t.Fatalf("size %d after 1s, want 1001: swept keys whose bucket was not full", got)
	}
	s.allow("fresh", now.Add(2500*time.Millisecond))
	if got := s.size(); got != 1 {
		t.Fatalf("size %d after the refill time, want 1 (the key just used)", got)
	}

	capped := newLimiterSet(1, 2)
	capped.maxKeys = 10
	for i := range 100 {
		capped.allow(fmt.Sprint("k", i), now)
	}
	if got := capped.size(); got != 10 {
		t.Fatalf("size %d, want the cap 10", got)
	}
	if ok, _ := capped.allow("one-more", now); ok {
		t.Fatalf("keys past the cap are not limited: their shared bucket should be empty")
	}
}

func TestClientIP(t *testing.T) {
	t.Parallel()
	proxies, err := parseTrustedProxies("10.0.0.0/8, 2001:db8:ffff::/48")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		trusted []netip.Prefix
		remote  string
		xff     []string
		want    string
	}{
		{"peer", nil, "203.0.113.5:4000", nil, "203.0.113.5"},
		{"untrusted peer's XFF ignored", nil, "203.0.113.5:4000", []string{"198.51.100.1"}, "203.0.113.5"},
		{"untrusted peer's XFF ignored with proxies set", proxies, "203.0.113.5:4000", []string{"198.51.100.1"}, "203.0.113.5"},
		{"behind one proxy", proxies, "10.1.2.3:80", []string{"198.51.100.1"}, "198.51.100.1"},
		{"spoofed left hops ignored", proxies, "10.1.2.3:80", []string{"1.1.1.1, 2.2.2.2, 198.51.100.1"}, "198.51.100.1"},
		{"two proxies", proxies, "10.1.2.3:80", []string{"1.1.1.1, 198.51.100.1, 10.9.9.9"}, "198.51.100.1"},
		{"several headers are one list", proxies, "10.1.2.3:80", []string{"1.1.1.1", "198.51.100.1, 10.9.9.9"}, "198.51.100.1"},
		{"hop with port", proxies, "10.1.2.3:80", []string{"198.51.100.1:5555"}, "198.51.100.1"},
		{"garbage hop: last trusted", proxies, "10.1.2.3:80", []string{"198.51.100.1, unknown, 10.9.9.9"}, "10.9.9.9"},
		{"no header: the proxy", proxies, "10.1.2.3:80", nil, "10.1.2.3"},
		{"all trusted: left-most", proxies, "10.1.2.3:80", []string{"10.7.7.7, 10.8.8.8"}, "10.7.7.7"},
		{"IPv6 keyed by /64", nil, "[2001:db8:1:2:3:4:5:6]:443", nil, "2001:db8:1:2::/64"},
		{"IPv6 hop in brackets", proxies, "[2001:db8:ffff::1]:443", []string{"[2001:db8:aa:bb::9]:1"}, "2001:db8:aa:bb::/64"},
		{"IPv4-mapped is IPv4", nil, "[::ffff:203.0.113.5]:4000", nil, "203.0.113.5"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tc.remote
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := (clientIP{trusted: tc.trusted}).key(r); got != tc.want {
				t.Errorf("key = %q, want %q", got, tc.want)
			}
		})
	}
}

// refusal checks that resp is the hub's refusal of a stream: 200
// text/event-stream, Retry-After of at least minWait, a retry field of at
// least minWait, and no event (no stream was registered).
func refusal(t *testing.T, resp *http.Response, minWait time.Duration) {
	t.Helper()
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("refusal is %s %q, want 200 text/event-stream (EventSource gives up on anything else)", resp.Status, resp.Header.Get("Content-Type"))
	}
	ra, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || time.Duration(ra)*time.Second < minWait {
		t.Fatalf("Retry-After %q, want at least %v", resp.Header.Get("Retry-After"), minWait)
	}
	dec := sseclient.NewDecoder(resp.Body)
	if ev, err := dec.Next(); err != io.EOF {
		t.Fatalf("refusal holds an event %q (%v)", ev.Type, err)
	}
	if retry, ok := dec.Retry(); !ok || retry < minWait {
		t.Fatalf("retry field %v (%v), want at least %v", retry, ok, minWait)
	}
}

// TestStreamRateLimits checks both stream limits through the server: a
// client address over its rate, and a user over theirs from several
// addresses (told apart by a trusted proxy's X-Forwarded-For), are turned
// away with a retry hint of at least the wait, are not registered, and
// are counted.
func TestStreamRateLimits(t *testing.T) {
	t.Parallel()
	// Rates so low that no token comes back during the test.
	ta := newTestApp(t, testConfig(t, "--stream-rate-ip", "0.001", "--stream-burst-ip", "2",
		"--stream-rate-user", "0.001", "--stream-burst-user", "3", "--trusted-proxies", "127.0.0.0/8"), nil)
	get := func(ip, tok string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, ta.srv.URL+"/sse/stream", nil)
		req.Header.Set("X-Forwarded-For", ip)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	alice := token(t, newUser())
	for range 2 {
		streamOf(t, get("198.51.100.1", token(t, newUser()))).nextOf(t, "connected")
	}
	refusal(t, get("198.51.100.1", alice), 500*time.Second) // third from that address

	for _, ip := range []string{"198.51.100.2", "198.51.100.3", "198.51.100.4"} {
		streamOf(t, get(ip, alice)).nextOf(t, "connected")
	}
	refusal(t, get("198.51.100.5", alice), 500*time.Second) // fourth of alice's, from a fresh address

	// An address over its limit is refused before its token is checked:
	// guessing tokens is throttled too, and costs no signature check.
	resp := get("198.51.100.1", "not-a-token")
	refusal(t, resp, time.Second)

	if got := ta.hub.Stats().Rejected; got != 3 {
		t.Errorf("hub counted %d refusals, want 3", got)
	}
	if got := metricValue(t, ta.srv.URL, `ssekit_rate_limited_total{endpoint="stream"}`); got != 3 {
		t.Errorf("ssekit_rate_limited_total{endpoint=stream} = %v, want 3", got)
	}
}

// TestPublishRateLimit checks that a publisher over its rate gets a real
// 429 with Retry-After and a JSON error, before its key is looked at, and
// that nothing is published.
func TestPublishRateLimit(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, testConfig(t, "--publish-rate-ip", "0.001", "--publish-burst-ip", "2"), nil)
	for range 2 {
		if status, out := publish(t, ta.srv.URL, testKey, `{"all":true,"type":"t"}`); status != http.StatusOK {
			t.Fatalf("publish within the burst: %d %v", status, out)
		}
	}
	for _, key := range []string{testKey, "wrong-key-wrong-key"} {
		req, _ := http.NewRequest(http.MethodPost, ta.srv.URL+"/sse/publish", strings.NewReader(`{"all":true,"type":"t"}`))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		ra, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		if resp.StatusCode != http.StatusTooManyRequests || ra < 500 || !strings.Contains(string(body), `"error":"rate_limited"`) {
			t.Fatalf("over the rate (key %q): %s Retry-After %q %s, want 429, Retry-After ≥ 500 and a JSON error", key, resp.Status, resp.Header.Get("Retry-After"), body)
		}
	}
	if got := ta.hub.Stats().ByType["t"].Published; got != 2 {
		t.Errorf("published %d, want the 2 within the burst", got)
	}
	if got := metricValue(t, ta.srv.URL, `ssekit_rate_limited_total{endpoint="publish"}`); got != 2 {
		t.Errorf("ssekit_rate_limited_total{endpoint=publish} = %v, want 2", got)
	}
	if got := metricValue(t, ta.srv.URL, `ssekit_auth_failures_total{endpoint="publish"}`); got != 0 {
		t.Errorf("the wrong key was checked (%v auth failures) although the address was over its rate", got)
	}
}

// TestRateLimitsOff checks that 0 turns every limit off.
func TestRateLimitsOff(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, testConfig(t, "--stream-rate-ip", "0", "--stream-rate-user", "0", "--publish-rate-ip", "0"), nil)
	user := token(t, newUser())
	for range 40 { // twice the default stream burst
		openStream(t, ta.srv.URL+"/sse/stream", bearerAuth(user)).nextOf(t, "connected")
	}
	if got := ta.hub.Stats().Rejected; got != 0 {
		t.Errorf("%d streams refused with the limits off", got)
	}
}

// streamOf reads an open stream's response, closed at cleanup.
func streamOf(t *testing.T, resp *http.Response) *stream {
	s := &stream{resp: resp, dec: sseclient.NewDecoder(resp.Body), cancel: func() {}}
	t.Cleanup(s.close)
	return s
}

// metricValue scrapes /metrics and returns the value of the sample whose
// line starts with name (with its labels), 0 when there is none.
func metricValue(t *testing.T, base, name string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	return 0
}
