package ssekit_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ssekit/sse/internal/ssetest"
	"github.com/ssekit/sse/sseclient"
	"github.com/ssekit/sse/ssekit"
)

// sessionEnded is the data of a session_ended event.
type sessionEnded struct {
	Reason      string `json:"reason"`
	LastEventID string `json:"last_event_id"`
}

// TestStreamEndsWhenItsCredentialsExpire, on the hub's fake clock: the
// stream is told at its credentials' expiry, not a moment later or
// sooner, with its position, and ends; what is published after that is
// not on it.
func TestStreamEndsWhenItsCredentialsExpire(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub := ssekit.NewHub(ssekit.Config{HeartbeatInterval: -1, MaxStreamAge: -1})
		defer hub.Close()
		rec := newRecorder()
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		done := make(chan struct{})
		go func() {
			defer close(done)
			hub.ServeIdentity(rec, req, ssekit.Identity{User: "u", Expires: time.Now().Add(2 * time.Second)})
		}()
		synctest.Wait()
		hub.Publish(t.Context(), ssekit.Target{Users: []string{"u"}}, ssekit.Event{Type: "before"})
		time.Sleep(2*time.Second - time.Millisecond)
		synctest.Wait()
		select {
		case <-done:
			t.Fatal("the stream ended before its credentials expired")
		default:
		}
		if strings.Contains(rec.String(), ssekit.TypeSessionEnded) {
			t.Fatal("session_ended before the expiry")
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		<-done // ended at the expiry itself
		hub.Publish(t.Context(), ssekit.Target{Users: []string{"u"}}, ssekit.Event{Type: "after"})
		synctest.Wait()

		evs := decodeAll(t, rec.String())
		last := evs[len(evs)-1]
		if last.Type != ssekit.TypeSessionEnded {
			t.Fatalf("last event %q, want %s; stream:\n%s", last.Type, ssekit.TypeSessionEnded, rec)
		}
		var d sessionEnded
		if err := json.Unmarshal(last.Data, &d); err != nil || d.Reason != ssekit.ReasonExpired || d.LastEventID != last.ID || last.ID == "" {
			t.Fatalf("session_ended %s (id %q): want reason expired and its own id as last_event_id", last.Data, last.ID)
		}
		if before := evs[len(evs)-2]; before.Type != "before" || before.ID != last.ID {
			t.Fatalf("before the end: %q at %q; want the last event, at the position session_ended gives", before.Type, before.ID)
		}
		if strings.Contains(rec.String(), "event: after") {
			t.Fatal("an event published after the expiry reached the stream")
		}
		if got := hub.Stats().Disconnects[ssekit.ReasonExpired]; got != 1 {
			t.Fatalf("Disconnects[expired] = %d, want 1", got)
		}
	})
}

// decodeAll parses a recorded stream with the client's decoder.
func decodeAll(t *testing.T, raw string) []sseclient.Event {
	t.Helper()
	dec := sseclient.NewDecoder(strings.NewReader(raw))
	var out []sseclient.Event
	for {
		ev, err := dec.Next()
		if err != nil {
			return out
		}
		out = append(out, ev)
	}
}

// sessionHub is a hub behind a real server whose streams are identified
// by the X-User header, with credentials valid until the X-Expires header
// (RFC 3339), and whose sessions are checked against a revocation list.
type sessionHub struct {
	*ssekit.Hub
	srv *httptest.Server

	mu      sync.Mutex
	revoked map[string]bool
	broken  bool // the session store is down: checks fail
}

func newSessionHub(t *testing.T, b ssekit.Broker, interval time.Duration) *sessionHub {
	t.Helper()
	sh := &sessionHub{revoked: map[string]bool{}}
	hub, err := ssekit.New(ssekit.Config{
		Broker: b, DetachStreams: detachAll, Logger: slog.New(slog.DiscardHandler),
		SessionCheckInterval: interval,
		CheckSession: func(ctx context.Context, who ssekit.Identity) error {
			sh.mu.Lock()
			defer sh.mu.Unlock()
			switch {
			case sh.broken:
				return errors.New("session store unreachable")
			case sh.revoked[who.User]:
				return fmt.Errorf("%w: %s logged out", ssekit.ErrSessionRevoked, who.User)
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	sh.Hub = hub
	sh.srv = ssetest.Serve(t, hub, hub.Handler(ssekit.HandlerOptions{Identify: func(r *http.Request) (ssekit.Identity, error) {
		who := ssekit.Identity{User: r.Header.Get("X-User")}
		if v := r.Header.Get("X-Expires"); v != "" {
			exp, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return who, err
			}
			if !time.Now().Before(exp) {
				return who, fmt.Errorf("%w: token expired at %s", ssekit.ErrCredentialsExpired, v)
			}
			who.Expires = exp
		}
		return who, nil
	}}))
	return sh
}

func (sh *sessionHub) set(f func()) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	f()
}

// dialAs opens a stream of user with credentials valid until exp (zero:
// no expiry), resuming after lastID.
func (sh *sessionHub) dialAs(t *testing.T, user string, exp time.Time, lastID string) *http.Response {
	t.Helper()
	// Bounded, so that a stream that should end but does not fails the
	// test rather than hanging it.
	ctx, cancel := context.WithTimeout(t.Context(), ssetest.Patience)
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, sh.srv.URL, nil)
	req.Header.Set("X-User", user)
	if !exp.IsZero() {
		req.Header.Set("X-Expires", exp.Format(time.RFC3339Nano))
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// untilEnd reads a stream to its end and returns its events but
// heartbeats.
func untilEnd(t *testing.T, resp *http.Response) []sseclient.Event {
	t.Helper()
	dec := sseclient.NewDecoder(resp.Body)
	var out []sseclient.Event
	for {
		ev, err := dec.Next()
		if err != nil {
			return out
		}
		if ev.Type != ssekit.TypeHeartbeat {
			out = append(out, ev)
		}
	}
}

// TestExpiredStreamResumesWithNewCredentials: a stream whose token
// expires is told so with its position and ends; a reconnect with the old
// token is refused with credentials_expired, not as a bad token; one with
// a fresh token from that position gets what was published meanwhile,
// with no gap and no duplicate.
func TestExpiredStreamResumesWithNewCredentials(t *testing.T) {
	t.Parallel()
	sh := newSessionHub(t, nil, 0)
	exp := time.Now().Add(1500 * time.Millisecond)
	resp := sh.dialAs(t, "alice", exp, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	ssetest.Eventually(t, "alice connected", func() bool { return sh.UserClientCount("alice") == 1 })
	sh.Publish(t.Context(), ssekit.Target{Users: []string{"alice"}}, ssekit.Event{Type: "n", Data: 1})
	evs := untilEnd(t, resp)
	last := evs[len(evs)-1]
	var d sessionEnded
	if err := json.Unmarshal(last.Data, &d); last.Type != ssekit.TypeSessionEnded || err != nil || d.Reason != ssekit.ReasonExpired {
		t.Fatalf("the stream ended with %q %s, want session_ended (expired)", last.Type, last.Data)
	}
	for i := 2; i <= 4; i++ { // while alice has no valid token
		sh.Publish(t.Context(), ssekit.Target{Users: []string{"alice"}}, ssekit.Event{Type: "n", Data: i})
	}

	// The old token again: 401, and a code that says "refresh", not "bad".
	old := sh.dialAs(t, "alice", exp, d.LastEventID)
	var body ssekit.ErrorBody
	if err := json.NewDecoder(old.Body).Decode(&body); err != nil || old.StatusCode != http.StatusUnauthorized || body.Error != ssekit.CodeCredentialsExpired {
		t.Fatalf("a reconnect with the expired token: %d %+v, want 401 %s", old.StatusCode, body, ssekit.CodeCredentialsExpired)
	}

	fresh := sh.dialAs(t, "alice", time.Now().Add(time.Hour), d.LastEventID)
	dec := sseclient.NewDecoder(fresh.Body)
	var got []string
	for len(got) < 3 {
		ev, err := dec.Next()
		if err != nil {
			t.Fatal(err)
		}
		if ev.Type == "n" {
			got = append(got, string(ev.Data))
		}
	}
	if strings.Join(got, ",") != "2,3,4" {
		t.Fatalf("the resume with a fresh token got %v, want 2,3,4", got)
	}
}

// TestRecheckSessionsEndsAUsersStreamsEverywhere: "log out everywhere" on
// two nodes: every stream of the user ends with session_ended (revoked),
// nobody else's does, and the user's next connection is refused.
func TestRecheckSessionsEndsAUsersStreamsEverywhere(t *testing.T) {
	t.Parallel()
	b := ssekit.NewMemoryBroker(100, 0)
	t.Cleanup(func() { b.Close() })
	a, c := newSessionHub(t, b, 0), newSessionHub(t, b, 0)
	var alice []*http.Response
	for _, node := range []*sessionHub{a, c, a} {
		alice = append(alice, node.dialAs(t, "alice", time.Time{}, ""))
	}
	bobStream := c.dialAs(t, "bob", time.Time{}, "")
	ssetest.Eventually(t, "streams open", func() bool {
		return a.UserClientCount("alice") == 2 && c.UserClientCount("alice") == 1 && c.UserClientCount("bob") == 1
	})
	for _, node := range []*sessionHub{a, c} {
		node.set(func() { node.revoked["alice"] = true })
	}
	if err := a.RecheckSessions(t.Context(), "alice"); err != nil {
		t.Fatal(err)
	}
	for i, resp := range alice {
		evs := untilEnd(t, resp)
		var d sessionEnded
		if last := evs[len(evs)-1]; last.Type != ssekit.TypeSessionEnded || json.Unmarshal(last.Data, &d) != nil || d.Reason != ssekit.ReasonRevoked {
			t.Fatalf("alice's stream %d ended with %q %s, want session_ended (revoked)", i, last.Type, last.Data)
		}
	}
	c.Publish(t.Context(), ssekit.Target{Users: []string{"bob"}}, ssekit.Event{Type: "still-here"})
	dec := sseclient.NewDecoder(bobStream.Body)
	for {
		ev, err := dec.Next()
		if err != nil {
			t.Fatalf("bob's stream ended: %v", err)
		}
		if ev.Type == "still-here" {
			break
		}
		if ev.Type == ssekit.TypeSessionEnded {
			t.Fatal("bob's session was ended")
		}
	}
	next := a.dialAs(t, "alice", time.Time{}, "")
	var body ssekit.ErrorBody
	if err := json.NewDecoder(next.Body).Decode(&body); err != nil || next.StatusCode != http.StatusUnauthorized || body.Error != ssekit.CodeSessionRevoked {
		t.Fatalf("alice's next connection: %d %+v, want 401 %s", next.StatusCode, body, ssekit.CodeSessionRevoked)
	}
	plain := ssekit.NewHub(ssekit.Config{})
	defer plain.Close()
	if err := plain.RecheckSessions(t.Context(), "alice"); !errors.Is(err, ssekit.ErrInvalidConfig) {
		t.Fatalf("RecheckSessions without CheckSession: %v, want ErrInvalidConfig", err)
	}
}

// TestSessionCheckedOnAnInterval: the periodic check ends a revoked
// session; a check that cannot decide keeps an open stream and sends a
// new one away to retry (200 with a retry hint, nothing registered).
func TestSessionCheckedOnAnInterval(t *testing.T) {
	t.Parallel()
	sh := newSessionHub(t, nil, 50*time.Millisecond)
	resp := sh.dialAs(t, "carol", time.Time{}, "")
	ssetest.Eventually(t, "carol connected", func() bool { return sh.UserClientCount("carol") == 1 })

	sh.set(func() { sh.broken = true })
	refused := sh.dialAs(t, "dave", time.Time{}, "")
	raw := new(strings.Builder)
	if _, err := io.Copy(raw, refused.Body); err != nil || refused.StatusCode != http.StatusOK || !strings.HasPrefix(raw.String(), "retry:") || strings.Contains(raw.String(), "connected") {
		t.Fatalf("a new stream while checks fail: %d %q, want 200 with a retry hint and no stream", refused.StatusCode, raw)
	}
	sh.Publish(t.Context(), ssekit.Target{Users: []string{"carol"}}, ssekit.Event{Type: "ping"})
	dec := sseclient.NewDecoder(resp.Body)
	for ev, err := dec.Next(); ev.Type != "ping"; ev, err = dec.Next() {
		if err != nil {
			t.Fatalf("carol's stream ended while her checks could not decide: %v", err)
		}
	}

	sh.set(func() { sh.broken, sh.revoked["carol"] = false, true })
	evs := untilEnd(t, resp)
	if last := evs[len(evs)-1]; last.Type != ssekit.TypeSessionEnded {
		t.Fatalf("carol's stream ended with %q, want session_ended", last.Type)
	}
	if n := sh.UserClientCount("dave"); n != 0 {
		t.Fatalf("dave registered %d times while refused", n)
	}
}

// TestRecheckOfAStreamWithNoTimer: a RecheckSessions reaches a stream
// that has nothing scheduled (no heartbeat, rotation, check interval or
// expiry), which then goes on.
func TestRecheckOfAStreamWithNoTimer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub := ssekit.NewHub(ssekit.Config{HeartbeatInterval: -1, MaxStreamAge: -1,
			CheckSession: func(context.Context, ssekit.Identity) error { return nil }})
		defer hub.Close()
		rec := newRecorder()
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		done := make(chan any, 1)
		go func() {
			defer func() { done <- recover() }()
			hub.ServeIdentity(rec, req, ssekit.Identity{User: "u"})
		}()
		synctest.Wait()
		if err := hub.RecheckSessions(t.Context(), "u"); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		select {
		case p := <-done:
			t.Fatalf("stream goroutine ended after RecheckSessions; panic: %v; clients still registered: %d", p, hub.Stats().Clients)
		default:
		}
	})
}

// blockingWriter blocks each Write while gate is held.
type blockingWriter struct {
	*recorder
	mu   sync.Mutex
	gate chan struct{}
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	g := w.gate
	w.mu.Unlock()
	if g != nil {
		<-g
	}
	return w.recorder.Write(p)
}

// TestNothingAfterExpiryReachesASlowStream: a stream busy writing (a slow
// reader) when its credentials expire writes nothing published after the
// expiry before its session_ended.
func TestNothingAfterExpiryReachesASlowStream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub := ssekit.NewHub(ssekit.Config{HeartbeatInterval: -1, MaxStreamAge: -1})
		defer hub.Close()
		w := &blockingWriter{recorder: newRecorder()}
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		done := make(chan struct{})
		go func() {
			defer close(done)
			hub.ServeIdentity(w, req, ssekit.Identity{User: "u", Expires: time.Now().Add(2 * time.Second)})
		}()
		synctest.Wait()
		gate := make(chan struct{})
		w.mu.Lock()
		w.gate = gate
		w.mu.Unlock()
		time.Sleep(time.Second)
		hub.Publish(t.Context(), ssekit.Target{Users: []string{"u"}}, ssekit.Event{Type: "before"})
		synctest.Wait()             // the stream is blocked writing "before"
		time.Sleep(2 * time.Second) // now 1s past expiry
		hub.Publish(t.Context(), ssekit.Target{Users: []string{"u"}}, ssekit.Event{Type: "after"})
		synctest.Wait()
		w.mu.Lock()
		w.gate = nil
		w.mu.Unlock()
		close(gate)
		<-done
		out := w.String()
		if strings.Contains(out, "event: after") {
			i := strings.Index(out, "event: before")
			t.Fatalf("event published 1s after the credentials expired was written:\n%s", out[i:])
		}
		if !strings.Contains(out, "event: "+ssekit.TypeSessionEnded) {
			t.Fatalf("no session_ended:\n%s", out)
		}
	})
}

// TestRecheckSessionsTakesNoHistory: RecheckSessions goes to the nodes
// live only: it pushes no event out of a user's history.
func TestRecheckSessionsTakesNoHistory(t *testing.T) {
	broker := ssekit.NewMemoryBroker(2, 10*time.Minute)
	defer broker.Close()
	hub := ssekit.NewHub(ssekit.Config{Broker: broker, CheckSession: func(context.Context, ssekit.Identity) error { return nil }})
	defer hub.Close()
	id1, _ := hub.Publish(t.Context(), ssekit.Target{Users: []string{"u"}}, ssekit.Event{Type: "e1"})
	hub.Publish(t.Context(), ssekit.Target{Users: []string{"u"}}, ssekit.Event{Type: "e2"})
	for i := 0; i < 2; i++ {
		if err := hub.RecheckSessions(t.Context(), "u"); err != nil {
			t.Fatal(err)
		}
	}
	ms, err := broker.Read(t.Context(), ssekit.UserChannel("u"), id1, 10)
	var types []string
	for _, m := range ms {
		types = append(types, m.Type)
	}
	if err != nil || len(types) == 0 || types[0] != "e2" {
		t.Fatalf("a client that saw e1 and resumes after 2 RecheckSessions (HistorySize 2): Read after e1 = %v, err=%v; want e2", types, err)
	}
}
