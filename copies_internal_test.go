package sse

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ssekit/sse/sseclient"
)

// stream is a client stream of the package's internal tests.
type testStream struct {
	t    *testing.T
	dec  *sseclient.Decoder
	stop func()
}

// dialStream opens url, resuming after lastID when not empty, and reads
// its connected event. A stream that stays silent fails the test after
// a while, rather than hanging it: that bounds the wait, not the speed.
func dialStream(t *testing.T, url, lastID string) *testStream {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		cancel()
		t.Fatalf("status %d", resp.StatusCode)
	}
	s := &testStream{t: t, dec: sseclient.NewDecoder(resp.Body), stop: func() { cancel(); resp.Body.Close() }}
	if ev := s.next(); ev.Type != TypeConnected {
		t.Fatalf("first event %q, want connected", ev.Type)
	}
	return s
}

func (s *testStream) next() sseclient.Event {
	s.t.Helper()
	ev, err := s.dec.Next()
	if err != nil {
		s.t.Fatal(err)
	}
	return ev
}

func (s *testStream) Close() { s.stop() }

// copyingBroker is a memory broker that hands over each channel's copy of
// a publish apart, with Message.Also, live and in Read, as the Redis
// broker does. Live copies go out in channel order or the reverse, and
// hold keeps them back until release, so that a test can end a stream
// between two copies of one publish.
type copyingBroker struct {
	*MemoryBroker
	mu      sync.Mutex
	fn      func(Message)
	forward bool // copies out in channel order, else the reverse
	hold    bool
	held    []Message
}

func (b *copyingBroker) Subscribe(ctx context.Context, fn func(Message)) (Subscription, error) {
	b.mu.Lock()
	b.fn = fn
	b.mu.Unlock()
	return b.MemoryBroker.Subscribe(ctx, func(m Message) {
		cs := copies(m)
		b.mu.Lock()
		if !b.forward {
			slices.Reverse(cs)
		}
		if b.hold {
			b.held = append(b.held, cs...)
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		for _, c := range cs {
			fn(c)
		}
	})
}

// release delivers the first n held copies (all when n < 0) and holds
// what comes next only if holdOn.
func (b *copyingBroker) release(n int, holdOn bool) {
	b.mu.Lock()
	if n < 0 || n > len(b.held) {
		n = len(b.held)
	}
	out := b.held[:n:n]
	b.held = b.held[n:]
	b.hold = holdOn
	fn := b.fn
	b.mu.Unlock()
	for _, m := range out {
		fn(m)
	}
}

func (b *copyingBroker) Read(ctx context.Context, ch, after string, limit int) ([]Message, error) {
	ms, err := b.MemoryBroker.Read(ctx, ch, after, limit)
	for i, m := range ms {
		for _, c := range copies(m) {
			if c.Channels[0] == ch {
				ms[i] = c
			}
		}
	}
	return ms, err
}

// copies splits m into one message per channel, as a per-channel broker
// stores it.
func copies(m Message) []Message {
	if len(m.Channels) < 2 || len(m.Positions) != len(m.Channels) {
		return []Message{m}
	}
	out := make([]Message, len(m.Channels))
	for i, ch := range m.Channels {
		c := m
		c.Channels, c.Positions = []string{ch}, []string{m.Positions[i]}
		c.Also = AlsoFollowed(m.Channels, ch)
		out[i] = c
	}
	return out
}

// TestCopiesOfOnePublishAreWrittenOnce: a stream that follows its user's
// channel and two topics, on a broker that delivers each channel's copy
// apart, gets each event once — live, on a resume, when it disconnected
// between two copies of one event (whichever came first), and when it
// resumes with a topic it did not follow before.
func TestCopiesOfOnePublishAreWrittenOnce(t *testing.T) {
	b := &copyingBroker{MemoryBroker: NewMemoryBroker(100, 0)}
	defer b.Close()
	h, err := New(Config{Broker: b, HeartbeatInterval: -1, AuthorizeTopic: AllowAllTopics})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h.Handler(HandlerOptions{Authenticate: func(*http.Request) (string, error) { return "u", nil }}))
	defer srv.Close()
	defer h.Close()
	n := 0
	publish := func(to Target) {
		t.Helper()
		n++
		if _, err := h.Publish(t.Context(), to, Event{Type: "n", Data: n}); err != nil {
			t.Fatal(err)
		}
	}
	all3 := Target{Users: []string{"u"}, Topics: []string{"a", "b"}}
	// expect reads the events numbered want, in order, and returns the
	// last one's id.
	expect := func(c *testStream, want ...int) string {
		t.Helper()
		id := ""
		for _, w := range want {
			ev := c.next()
			if ev.Type != "n" || string(ev.Data) != strconv.Itoa(w) {
				t.Fatalf("got %s %s, want event %d", ev.Type, ev.Data, w)
			}
			id = ev.ID
		}
		return id
	}

	c := dialStream(t, srv.URL+"?topic=a&topic=b", "")
	publish(all3)                                                // 1
	publish(Target{Topics: []string{"b"}})                       // 2
	publish(Target{Users: []string{"u"}, Topics: []string{"b"}}) // 3
	last := expect(c, 1, 2, 3)
	c.Close()

	// Away: published to three channels, replayed once.
	publish(all3) // 4
	publish(all3) // 5
	c = dialStream(t, srv.URL+"?topic=a&topic=b", last)
	last = expect(c, 4, 5)

	// Disconnected after one copy of an event: the first in name order
	// (topic a's, which writes it) or the last (the user's, which only
	// moves the position). Either way, the event comes once.
	for _, forward := range []bool{false, true} {
		b.mu.Lock()
		b.forward = forward
		b.mu.Unlock()
		b.release(0, true)
		publish(all3)
		e := n
		b.release(1, false)
		publish(Target{Users: []string{"u"}}) // written once all before it is
		if forward {
			last = expect(c, e, n)
		} else {
			last = expect(c, n)
		}
		c.Close()
		b.release(-1, false)
		c = dialStream(t, srv.URL+"?topic=a&topic=b", last)
		publish(Target{Users: []string{"u"}})
		if forward {
			last = expect(c, n)
		} else {
			last = expect(c, e, n)
		}
	}

	// A topic new to the stream ("0" sorts before the others) does not
	// claim what was published to it and the stream's other channels
	// while it was away: the replay of those brings it.
	c.Close()
	publish(Target{Users: []string{"u"}, Topics: []string{"0"}})
	c = dialStream(t, srv.URL+"?topic=a&topic=b&topic=0", last)
	expect(c, n)
	publish(Target{Users: []string{"u"}, Topics: []string{"0", "a"}})
	expect(c, n)
}
