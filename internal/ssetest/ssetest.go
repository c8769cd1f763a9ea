// Package ssetest holds what the module's tests share: a real client
// stream, read by the sseclient decoder, and a bounded wait. Requests name
// their user in the X-User header, the tests' stand-in for authentication.
package ssetest

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ssekit/sse/sseclient"
	"github.com/ssekit/sse/ssekit"
)

// Patience bounds every wait of the tests: a net for a hang on a loaded
// machine, never a performance assertion. It is long enough for the
// tests that start Redis servers and ssehub processes.
const Patience = 30 * time.Second

// Conn is one client stream, read on its own goroutine, which ends when the
// response body closes.
type Conn struct {
	// Resp is the stream's response; its body belongs to the reader.
	Resp *http.Response

	t      testing.TB
	events chan sseclient.Event
	done   chan struct{} // closed when the stream has ended
	err    error         // why it ended; read after done
	cancel context.CancelFunc
}

// Dial opens the stream at url for user ("" for none, else sent as
// X-User), resuming after lastID when it is not empty. It fails t if the
// request fails, not on the status: check Resp. The stream is closed at
// cleanup.
func Dial(t testing.TB, url, user, lastID string) *Conn {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if user != "" {
		req.Header.Set("X-User", user)
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("dial %s: %v", url, err)
	}
	c := &Conn{Resp: resp, t: t, events: make(chan sseclient.Event, 1<<14), done: make(chan struct{}), cancel: cancel}
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
	t.Cleanup(c.Close)
	return c
}

// DialOK is Dial that also fails t unless the status is 200.
func DialOK(t testing.TB, url, user, lastID string) *Conn {
	t.Helper()
	c := Dial(t, url, user, lastID)
	if c.Resp.StatusCode != http.StatusOK {
		t.Fatalf("dial %s: status %d, want 200", url, c.Resp.StatusCode)
	}
	return c
}

// Close hangs up, as a closing browser tab does, and waits for the reader.
func (c *Conn) Close() {
	c.cancel()
	c.Resp.Body.Close()
	<-c.done
}

// Next returns the next event, heartbeats included, failing the test if
// none comes.
func (c *Conn) Next() sseclient.Event {
	c.t.Helper()
	ev, ok := c.NextOrEnd()
	if !ok {
		c.t.Fatalf("stream ended (%v), want an event", c.err)
	}
	return ev
}

// NextOrEnd returns the next event, heartbeats included, or false when the
// server ended the stream first, as it does to a connection whose queue
// overflowed. It fails the test if neither comes.
func (c *Conn) NextOrEnd() (sseclient.Event, bool) {
	c.t.Helper()
	return c.nextBy(time.Now().Add(Patience))
}

// nextBy is NextOrEnd with a deadline.
func (c *Conn) nextBy(deadline time.Time) (sseclient.Event, bool) {
	c.t.Helper()
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case ev, ok := <-c.events:
		return ev, ok
	case <-t.C:
		c.t.Fatalf("no event within %v", Patience)
	}
	return sseclient.Event{}, false
}

// NextOf returns the next event that is not a heartbeat, within Patience
// in all: heartbeats do not extend the wait, so a stream that only beats
// fails the test rather than hanging it.
func (c *Conn) NextOf() sseclient.Event {
	c.t.Helper()
	deadline := time.Now().Add(Patience)
	for {
		ev, ok := c.nextBy(deadline)
		if !ok {
			c.t.Fatalf("stream ended (%v), want an event", c.err)
		}
		if ev.Type != "heartbeat" {
			return ev
		}
	}
}

// Take returns the next n events that are not heartbeats.
func (c *Conn) Take(n int) []sseclient.Event {
	c.t.Helper()
	out := make([]sseclient.Event, 0, n)
	for len(out) < n {
		out = append(out, c.NextOf())
	}
	return out
}

// Connected is the data of the hub's connected event.
type Connected struct {
	ClientID  string `json:"client_id"`
	Timestamp string `json:"timestamp"`
	Resumed   bool   `json:"resumed"`
	// ID is the event's id: a fresh stream's position ("" on a resume).
	ID string `json:"-"`
}

// Connected reads the opening event and returns its data.
func (c *Conn) Connected() Connected {
	c.t.Helper()
	ev := c.Next()
	if ev.Type != "connected" {
		c.t.Fatalf("first event %q, want connected", ev.Type)
	}
	var d Connected
	if err := ev.Decode(&d); err != nil {
		c.t.Fatalf("connected data %q: %v", ev.Data, err)
	}
	d.ID = ev.ID
	return d
}

// Ended waits for the server to end the stream, discarding what comes
// before the end.
func (c *Conn) Ended() {
	c.t.Helper()
	t := time.NewTimer(Patience)
	defer t.Stop()
	for {
		select {
		case _, ok := <-c.events:
			if !ok {
				return
			}
		case <-t.C:
			c.t.Fatalf("stream still open after %v", Patience)
		}
	}
}

// Events returns the stream's events as they are read; the channel closes
// when the stream ends.
func (c *Conn) Events() <-chan sseclient.Event { return c.events }

// Eventually polls cond until it holds, failing t after Patience.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	EventuallyNil(t, what, func() error {
		if cond() {
			return nil
		}
		return errors.New("not true")
	})
}

// EventuallyNil calls f until it returns nil, failing t with f's last
// error after Patience.
func EventuallyNil(t testing.TB, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(Patience)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v within %v", what, err, Patience)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Positions takes an event id of the hub apart: its position in each
// channel, by the channel's tag ("a" everyone, "u" the user), and the key
// of the cursor it refers to, if any. ok is false for anything else.
func Positions(id string) (pos map[string]string, cursor string, ok bool) {
	if id == "" || len(id) > 128 {
		return nil, "", false
	}
	pos = make(map[string]string)
	for i, comp := range strings.Split(id, ".") {
		if i == 0 && strings.HasPrefix(comp, "c") {
			cursor = comp[1:]
			if cursor == "" || len(cursor) > 13 || strings.IndexFunc(cursor, func(r rune) bool {
				return !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z')
			}) >= 0 {
				return nil, "", false
			}
			continue
		}
		j := strings.IndexFunc(comp, func(r rune) bool { return r < 'a' || r > 'z' })
		if j <= 0 || !ssekit.ValidID(comp[j:]) {
			return nil, "", false
		}
		if _, dup := pos[comp[:j]]; dup {
			return nil, "", false
		}
		pos[comp[:j]] = comp[j:]
	}
	return pos, cursor, true
}

// Moved compares two inline event ids of one stream: it reports whether
// next is at or after prev in every channel both carry and strictly after
// in at least one, as the ids of a stream's successive events must be.
func Moved(prev, next string) bool {
	a, _, okA := Positions(prev)
	b, _, okB := Positions(next)
	if !okA || !okB {
		return false
	}
	moved := false
	for tag, p := range b {
		q, ok := a[tag]
		switch {
		case !ok:
			moved = true
		case ssekit.CompareIDs(p, q) < 0:
			return false
		case ssekit.CompareIDs(p, q) > 0:
			moved = true
		}
	}
	return moved
}

// Get requests url as user (the X-User header, when not ""), failing the
// test if the request fails.
func Get(t testing.TB, url, user string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.Header.Set("X-User", user)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// ExpectNext fails unless each connection's next events are of the types
// want, in order.
func ExpectNext(t testing.TB, conns map[string]*Conn, want ...string) {
	t.Helper()
	for who, c := range conns {
		for _, w := range want {
			if ev := c.NextOf(); ev.Type != w {
				t.Fatalf("%s got %q (%s), want %q", who, ev.Type, ev.Data, w)
			}
		}
	}
}

// Detach is whether the suites run every stream detached from net/http
// (Config.DetachStreams): SSEKIT_TEST_DETACH=1, which make test sets for a
// second run of the hub's packages.
var Detach = os.Getenv("SSEKIT_TEST_DETACH") == "1"

// Serve serves h on a real loopback server until the test ends, closing
// hub first: httptest.Server.Close waits for open streams.
func Serve(t testing.TB, hub io.Closer, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		hub.Close()
		srv.Close()
	})
	return srv
}
