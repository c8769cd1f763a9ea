package sse_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ssekit/sse"
	"github.com/ssekit/sse/sseclient"
)

// patience bounds every wait in these tests. It is a safety net against a
// hang on a loaded machine, never a performance assertion.
const patience = 15 * time.Second

// testHub is a hub behind a real HTTP server. Requests name their user in
// the X-User header (or ?user=), a stand-in for the app's auth middleware.
type testHub struct {
	*sse.Hub
	srv *httptest.Server
}

func newTestHub(t *testing.T, cfg sse.Config) *testHub {
	t.Helper()
	hub, err := sse.New(cfg)
	if err != nil {
		t.Fatalf("sse.New: %v", err)
	}
	h := hub.Handler(sse.HandlerOptions{Authenticate: headerUser})
	srv := httptest.NewServer(h)
	// The hub first: httptest.Server.Close waits for open streams.
	t.Cleanup(func() {
		hub.Close()
		srv.Close()
	})
	return &testHub{Hub: hub, srv: srv}
}

func headerUser(r *http.Request) (string, error) {
	if u := r.Header.Get("X-User"); u != "" {
		if u == "bad" {
			return "", errors.New("bad credentials")
		}
		return u, nil
	}
	return r.URL.Query().Get("user"), nil
}

// conn is one client stream read by the sseclient decoder on its own
// goroutine, which ends when the response body closes.
type conn struct {
	t      *testing.T
	resp   *http.Response
	events chan sseclient.Event
	done   chan struct{} // closed when the stream has ended
	err    error         // why it ended; read after done
	cancel context.CancelFunc
}

// dial opens a stream for user ("" for anonymous), resuming after lastID
// when it is not empty.
func (h *testHub) dial(t *testing.T, user, lastID string) *conn {
	t.Helper()
	c := dialURL(t, h.srv.URL, user, lastID)
	if c.resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", c.resp.StatusCode)
	}
	return c
}

func dialURL(t *testing.T, url, user, lastID string) *conn {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if user != "" {
		req.Header.Set("X-User", user)
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("dial: %v", err)
	}
	c := &conn{t: t, resp: resp, events: make(chan sseclient.Event, 4096), done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(c.done)
		defer close(c.events)
		dec := sseclient.NewDecoder(resp.Body)
		for {
			ev, err := dec.Next()
			if err != nil {
				c.err = err
				return
			}
			c.events <- ev
		}
	}()
	t.Cleanup(c.close)
	return c
}

// close hangs up, as a browser tab closing.
func (c *conn) close() {
	c.cancel()
	c.resp.Body.Close()
	<-c.done
}

// next returns the next event, failing the test if none comes.
func (c *conn) next() sseclient.Event {
	c.t.Helper()
	select {
	case ev, ok := <-c.events:
		if !ok {
			c.t.Fatalf("stream ended (%v), want an event", c.err)
		}
		return ev
	case <-time.After(patience):
		c.t.Fatalf("no event within %v", patience)
	}
	return sseclient.Event{}
}

// nextOf skips heartbeats and returns the next event.
func (c *conn) nextOf() sseclient.Event {
	c.t.Helper()
	for {
		if ev := c.next(); ev.Type != sse.TypeHeartbeat {
			return ev
		}
	}
}

// connected reads the opening event and returns its data.
func (c *conn) connected() connectedData {
	c.t.Helper()
	ev := c.next()
	if ev.Type != sse.TypeConnected {
		c.t.Fatalf("first event %q, want connected", ev.Type)
	}
	var d connectedData
	if err := ev.Decode(&d); err != nil {
		c.t.Fatalf("connected data %q: %v", ev.Data, err)
	}
	return d
}

type connectedData struct {
	ClientID  string `json:"client_id"`
	Timestamp string `json:"timestamp"`
	Resumed   bool   `json:"resumed"`
}

// ended waits for the server to end the stream.
func (c *conn) ended() {
	c.t.Helper()
	deadline := time.After(patience)
	for {
		select {
		case _, ok := <-c.events:
			if !ok {
				return
			}
		case <-deadline:
			c.t.Fatalf("stream still open after %v", patience)
		}
	}
}

// quiet reports that no event other than heartbeats arrives within d. It
// can only prove an absence for that long; tests use it after a later
// event has been seen on another stream, so the window is not a guess.
func (c *conn) quiet(d time.Duration) bool {
	deadline := time.After(d)
	for {
		select {
		case ev, ok := <-c.events:
			if ok && ev.Type == sse.TypeHeartbeat {
				continue
			}
			return !ok
		case <-deadline:
			return true
		}
	}
}

// eventually polls cond until it holds, failing the test after patience.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true within %v", what, patience)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// rawStream reads the raw bytes of a stream up to and including the first
// blank line after want appears, for wire-format assertions.
func rawUntil(t *testing.T, body io.Reader, want string) string {
	t.Helper()
	var b strings.Builder
	r := bufio.NewReader(body)
	found := false
	for {
		line, err := r.ReadString('\n')
		b.WriteString(line)
		if strings.Contains(line, want) {
			found = true
		}
		if found && line == "\n" {
			return b.String()
		}
		if err != nil {
			t.Fatalf("stream ended before %q: %v; got %q", want, err, b.String())
		}
	}
}

func jsonDecode(resp *http.Response, v any) error { return json.NewDecoder(resp.Body).Decode(v) }

// newServer serves h on a real loopback server, closing the hub first.
func newServer(t *testing.T, hub *sse.Hub, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		hub.Close()
		srv.Close()
	})
	return srv
}
