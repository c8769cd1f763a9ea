package main

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ssekit/sse/internal/ssetest"
	"github.com/ssekit/sse/sseclient"
	"github.com/ssekit/sse/ssekit"
)

// TestStreamEndsWhenItsTokenExpires follows a stream whose token expires
// in about 2 s through the whole cycle a client goes through: at exp the
// stream's last event is session_ended, reason "expired", carrying the
// stream's position; nothing published after it reaches that stream; a
// reconnect with the old token is refused 401 credentials_expired; and a
// reconnect with a new token from that position gets every event
// published meanwhile, once. Every event published is seen exactly once
// over the two streams, in order, whenever the token happened to expire
// among them.
func TestStreamEndsWhenItsTokenExpires(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, testConfig(t), nil)
	// Pages act on session_ended: only the hub writes one.
	if status, out := publish(t, ta.srv.URL, testKey, `{"all":true,"type":"session_ended","data":{"reason":"expired"}}`); status != http.StatusBadRequest {
		t.Errorf("publishing a session_ended: %d %v, want 400", status, out)
	}

	user := newUser()
	// A NumericDate is whole seconds: this one is 2 to 3 s away.
	exp := time.Now().Add(2*time.Second).Unix() + 1
	short := signHS(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": user, "exp": exp})
	var published []string
	send := func(text string) string {
		t.Helper()
		status, out := publish(t, ta.srv.URL, testKey, mustJSON(map[string]any{"users": []string{user}, "type": "message", "data": text}))
		if status != http.StatusOK {
			t.Fatalf("publish %s: %d %v", text, status, out)
		}
		published = append(published, mustJSON(text))
		return out["id"].(string)
	}

	s1 := openStream(t, ta.srv.URL+"/sse/stream", bearerAuth(short))
	last := s1.nextOf(t, "connected").ID
	beforeID := send("before")
	// The stream until its end, which the hub writes at exp.
	var got []string
	var ended sseclient.Event
	for range 100 {
		ev, err := s1.next()
		if err != nil {
			t.Fatalf("stream ended without a %s event: %v", ssekit.TypeSessionEnded, err)
		}
		if ev.Type == ssekit.TypeSessionEnded {
			ended = ev
			break
		}
		if ev.Type == "message" {
			got = append(got, string(ev.Data))
			last = ev.ID
		}
	}
	var end struct {
		Reason      string `json:"reason"`
		LastEventID string `json:"last_event_id"`
	}
	if err := ended.Decode(&end); err != nil {
		t.Fatalf("%s data %q: %v", ssekit.TypeSessionEnded, ended.Data, err)
	}
	// Its id, and the one its data gives, are the stream's position: that
	// of the last event it got.
	if end.Reason != ssekit.ReasonExpired || end.LastEventID != ended.ID || ended.ID != last {
		t.Fatalf("%s: id %q, data %s; want reason %q and the id of the last event, %q, as both", ssekit.TypeSessionEnded, ended.ID, ended.Data, ssekit.ReasonExpired, last)
	}
	if len(got) == 1 && positionIn(t, ended.ID, "u") != beforeID {
		t.Errorf("%s at %q: position in the user's channel is not the last event's, %s", ssekit.TypeSessionEnded, ended.ID, beforeID)
	}

	// Published after the end: on the next stream, never on this one.
	send("meanwhile 1")
	send("meanwhile 2")
	if ev, err := s1.next(); err != io.EOF {
		t.Fatalf("after %s: got %+v, %v; want the stream's end", ssekit.TypeSessionEnded, ev, err)
	}
	waitMetric(t, ta.srv.URL, `ssekit_disconnects_total{reason="expired"}`, 1)

	// The old token: expired, which says "get a new one". One with the
	// same claims but a bad signature is not.
	for _, tc := range []struct{ name, tok, want string }{
		{"the expired token", short, ssekit.CodeCredentialsExpired},
		{"the expired token, signed with another secret", signHS(t, jwt.SigningMethodHS256, testSecret+"-other", jwt.MapClaims{"sub": user, "exp": exp}), "unauthorized"},
		{"a fresh token with a bad signature", signHS(t, jwt.SigningMethodHS256, testSecret+"-other", jwt.MapClaims{"sub": user, "exp": time.Now().Add(time.Hour).Unix()}), "unauthorized"},
	} {
		req, _ := http.NewRequest(http.MethodGet, ta.srv.URL+"/sse/stream", nil)
		req.Header.Set("Authorization", "Bearer "+tc.tok)
		req.Header.Set("Last-Event-ID", end.LastEventID)
		if status, body := doJSON(t, req); status != http.StatusUnauthorized || body["error"] != tc.want {
			t.Errorf("reconnect with %s: %d %v, want 401 %s", tc.name, status, body, tc.want)
		}
	}
	send("meanwhile 3")

	// A new token, from where the last stream ended.
	s2 := openStream(t, ta.srv.URL+"/sse/stream", func(r *http.Request) {
		bearerAuth(token(t, user))(r)
		r.Header.Set("Last-Event-ID", end.LastEventID)
	})
	send("after")
	for range 100 {
		ev, err := s2.next()
		if err != nil {
			t.Fatalf("resumed stream: %v (got %v)", err, got)
		}
		if ev.Type != "message" {
			continue
		}
		got = append(got, string(ev.Data))
		if string(ev.Data) == mustJSON("after") {
			break
		}
	}
	if !slices.Equal(got, published) {
		t.Errorf("events over the two streams:\n%s\nwant each published once, in order:\n%s", strings.Join(got, "\n"), strings.Join(published, "\n"))
	}
}

// waitMetric waits for the sample name of /metrics to reach want: a
// stream's end is counted once its handler returns, which may be after
// its client saw the end.
func waitMetric(t *testing.T, base, name string, want float64) {
	t.Helper()
	ssetest.EventuallyNil(t, name, func() error {
		if got := metricValue(t, base, name); got != want {
			return fmt.Errorf("%v, want %v", got, want)
		}
		return nil
	})
}

// TestDemoTokenTTL checks the dev-only ?ttl= of /demo/token: a token of
// that lifetime, within its bounds, and a 400 naming them otherwise.
func TestDemoTokenTTL(t *testing.T) {
	t.Parallel()
	devCfg, err := parseConfig([]string{"--dev", "--addr", "127.0.0.1:0", "--dev-token-ttl", "1h"}, noEnv, nil)
	if err != nil {
		t.Fatal(err)
	}
	dev := newTestApp(t, devCfg, nil)
	mint := func(query string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, dev.srv.URL+"/demo/token"+query, strings.NewReader(`{}`))
		return doJSON(t, req)
	}
	for query, want := range map[string]time.Duration{"": time.Hour, "?ttl=3s": 3 * time.Second, "?ttl=2s": 2 * time.Second, "?ttl=1h": time.Hour} {
		status, out := mint(query)
		if status != http.StatusOK {
			t.Fatalf("POST /demo/token%s: %d %v", query, status, out)
		}
		var claims jwt.RegisteredClaims
		if _, _, err := jwt.NewParser().ParseUnverified(out["token"].(string), &claims); err != nil {
			t.Fatal(err)
		}
		if got := claims.ExpiresAt.Sub(claims.IssuedAt.Time); got != want {
			t.Errorf("POST /demo/token%s: a token of %v, want %v", query, got, want)
		}
		if got, err := time.Parse(time.RFC3339, out["expires_at"].(string)); err != nil || !got.Equal(claims.ExpiresAt.Time) {
			t.Errorf("POST /demo/token%s: expires_at %v, want the token's exp %v", query, out["expires_at"], claims.ExpiresAt.UTC())
		}
	}
	for _, ttl := range []string{"1s", "0", "-3s", "2h", "soon", "3"} {
		status, out := mint("?ttl=" + ttl)
		if msg, _ := out["message"].(string); status != http.StatusBadRequest || !strings.Contains(msg, "from 2s to 1h") {
			t.Errorf("ttl=%s: %d %v, want 400 naming the bounds", ttl, status, out)
		}
	}
}
