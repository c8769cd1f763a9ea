package ssekit

import (
	"context"
	"fmt"
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
// a publish apart, with Message.Also, live, as the Redis broker does, and
// whose Read gives a copy the positions of the publish in all its
// channels, as the Redis broker does from the publish's record (or, with
// noRecords, the copy alone, as when that record is missing). Live copies
// go out in channel order or the reverse, and hold keeps them back until
// release, so that a test can end a stream between two copies of one
// publish.
type copyingBroker struct {
	*MemoryBroker
	mu        sync.Mutex
	fn        func(Message)
	forward   bool // copies out in channel order, else the reverse
	noRecords bool
	hold      bool
	held      []Message
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
	b.mu.Lock()
	whole := !b.noRecords
	b.mu.Unlock()
	for i, m := range ms {
		if len(m.Channels) < 2 {
			continue
		}
		for _, c := range copies(m) {
			if c.Channels[0] != ch {
				continue
			}
			if whole {
				// The record's positions, and the mark that copies exist.
				c.Channels, c.Positions = m.Channels, m.Positions
			}
			ms[i] = c
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

// splitBroker stores each channel's copy of a publish on its own, one
// after the other, the way the Redis broker runs one script per channel
// (pipelined on one Redis, in parallel on a Cluster's masters); between,
// when set, runs after each copy but the last: the moment another client
// may read the heads.
type splitBroker struct {
	*MemoryBroker
	mu      sync.Mutex
	between func(i int)
}

func (b *splitBroker) Publish(ctx context.Context, m Message) (string, error) {
	if len(m.Channels) < 2 {
		return b.MemoryBroker.Publish(ctx, m)
	}
	var id string
	for i, ch := range m.Channels {
		c := m
		c.Channels, c.Positions = []string{ch}, nil
		c.Also = AlsoFollowed(m.Channels, ch)
		var err error
		if id, err = b.MemoryBroker.Publish(ctx, c); err != nil {
			return "", err
		}
		b.mu.Lock()
		f := b.between
		b.mu.Unlock()
		if f != nil && i < len(m.Channels)-1 {
			f(i)
		}
	}
	return id, nil
}

// copiesHub is a hub on b whose streams are user u's, topics public.
func copiesHub(t *testing.T, b Broker) (*Hub, *httptest.Server) {
	t.Helper()
	h, err := New(Config{Broker: b, HeartbeatInterval: -1, AuthorizeTopic: AllowAllTopics})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h.Handler(HandlerOptions{Authenticate: func(*http.Request) (string, error) { return "u", nil }}))
	t.Cleanup(func() { srv.Close(); h.Close() })
	return h, srv
}

// events reads the next events of type "n" and fails unless their data
// are want, in order; it returns the last one's id.
func events(t *testing.T, c *testStream, want ...int) string {
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

// publisher returns a function that publishes event n to a target.
func publisher(t *testing.T, h *Hub) func(to Target, n int) {
	return func(to Target, n int) {
		t.Helper()
		if _, err := h.Publish(t.Context(), to, Event{Type: "n", Data: n}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCopiesOfOnePublishAreWrittenOnce: a stream that follows its user's
// channel and two topics, on a broker that delivers each channel's copy
// apart, gets each event once — live, on a resume, when it disconnected
// between two copies of one event (whichever came first), and when it
// resumes with a topic it did not follow before.
func TestCopiesOfOnePublishAreWrittenOnce(t *testing.T) {
	b := &copyingBroker{MemoryBroker: NewMemoryBroker(100, 0)}
	defer b.Close()
	h, srv := copiesHub(t, b)
	publish := publisher(t, h)
	all3 := Target{Users: []string{"u"}, Topics: []string{"a", "b"}}

	c := dialStream(t, srv.URL+"?topic=a&topic=b", "")
	publish(all3, 1)
	publish(Target{Topics: []string{"b"}}, 2)
	publish(Target{Users: []string{"u"}, Topics: []string{"b"}}, 3)
	last := events(t, c, 1, 2, 3)
	c.Close()

	// Away: published to three channels, replayed once.
	publish(all3, 4)
	publish(all3, 5)
	c = dialStream(t, srv.URL+"?topic=a&topic=b", last)
	last = events(t, c, 4, 5)

	// Disconnected after one copy of an event, the first in name order or
	// the last: the first copy to arrive is written, and the resume does
	// not write it again.
	n := 5
	for _, forward := range []bool{false, true} {
		b.mu.Lock()
		b.forward = forward
		b.mu.Unlock()
		b.release(0, true)
		n++
		publish(all3, n)
		b.release(1, false)
		n++
		publish(Target{Users: []string{"u"}}, n)
		last = events(t, c, n-1, n)
		c.Close()
		b.release(-1, false)
		c = dialStream(t, srv.URL+"?topic=a&topic=b", last)
		n++
		publish(Target{Users: []string{"u"}}, n)
		last = events(t, c, n)
	}

	// A topic new to the stream ("0" sorts before the others): what was
	// published to it and to the stream's other channels while it was
	// away comes through those; live, through whichever copy is first.
	c.Close()
	n++
	publish(Target{Users: []string{"u"}, Topics: []string{"0"}}, n)
	c = dialStream(t, srv.URL+"?topic=a&topic=b&topic=0", last)
	events(t, c, n)
	n++
	publish(Target{Users: []string{"u"}, Topics: []string{"0", "a"}}, n)
	events(t, c, n)
	c.Close()
}

// TestCopiesAcrossConnectionsOnce: the copies of one publish split
// between two connections of one client, whatever the stream asked for
// (a topic added on the first, then the same request): each event comes
// once in all, never lost, never twice.
func TestCopiesAcrossConnectionsOnce(t *testing.T) {
	for _, forward := range []bool{false, true} {
		t.Run(fmt.Sprintf("forward=%v", forward), func(t *testing.T) {
			b := &copyingBroker{MemoryBroker: NewMemoryBroker(100, 0), forward: forward}
			defer b.Close()
			h, srv := copiesHub(t, b)
			publish := publisher(t, h)

			s0 := dialStream(t, srv.URL, "")
			publish(Target{Users: []string{"u"}}, 1)
			last := events(t, s0, 1)
			s0.Close()

			// S1 adds topic a (user:u resumed, topic:a new).
			s1 := dialStream(t, srv.URL+"?topic=a", last)
			b.release(0, true)
			publish(Target{Users: []string{"u"}, Topics: []string{"a"}}, 2)
			b.release(1, false)                       // one copy of 2
			publish(Target{Topics: []string{"a"}}, 3) // then 3, in full
			last = events(t, s1, 2, 3)                // 2 came with its first copy
			s1.Close()
			b.release(-1, false) // the other copy of 2, after S1 ended

			s2 := dialStream(t, srv.URL+"?topic=a", last)
			defer s2.Close()
			publish(Target{Users: []string{"u"}}, 4)
			events(t, s2, 4)
		})
	}
}

// TestFreshStreamBetweenTwoCopies: a stream that opens after a publish
// stored its first copy and before its second gets the event through the
// second, which is after its start.
func TestFreshStreamBetweenTwoCopies(t *testing.T) {
	b := &splitBroker{MemoryBroker: NewMemoryBroker(100, 0)}
	defer b.Close()
	h, srv := copiesHub(t, b)
	publish := publisher(t, h)
	var c *testStream
	b.mu.Lock()
	b.between = func(int) { c = dialStream(t, srv.URL+"?topic=a", "") }
	b.mu.Unlock()
	publish(Target{Users: []string{"u"}, Topics: []string{"a"}}, 1)
	b.mu.Lock()
	b.between = nil
	b.mu.Unlock()
	defer c.Close()
	publish(Target{Users: []string{"u"}}, 2)
	events(t, c, 1, 2)
}

// TestResyncOfOneCopysChannelLosesNotTheOther: a copy lost in a gap of
// its channel's history (announced by a resync of that channel) does not
// take the event from the stream's other channel, whose copy is intact.
func TestResyncOfOneCopysChannelLosesNotTheOther(t *testing.T) {
	b := &copyingBroker{MemoryBroker: NewMemoryBroker(100, 0), forward: true}
	defer b.Close()
	h, srv := copiesHub(t, b)
	publish := publisher(t, h)
	c := dialStream(t, srv.URL+"?topic=a", "")
	defer c.Close()

	b.release(0, true)
	publish(Target{Users: []string{"u"}, Topics: []string{"a"}}, 1)
	b.mu.Lock()
	held, fn := b.held, b.fn
	b.held, b.hold = nil, false
	b.mu.Unlock()
	if len(held) != 2 || held[0].Channels[0] != TopicChannel("a") {
		t.Fatalf("held %v", held)
	}
	head, _ := b.Head(t.Context(), TopicChannel("a"))
	fn(Message{Channels: []string{TopicChannel("a")}, Positions: []string{head}, Type: TypeResync})
	fn(held[1]) // the user's copy, intact
	publish(Target{Users: []string{"u"}}, 2)
	if ev := c.next(); ev.Type != TypeResync {
		t.Fatalf("got %s, want the resync first", ev.Type)
	}
	events(t, c, 1, 2)
}

// TestTagsDependOnTheChannelOnly: a topic's tag is the same whatever else
// the stream follows, so a resume that leaves one topic reads each other
// topic's own position; a tenant's is its own too, so a stream that moved
// to another tenant starts that tenant's channel at its head.
func TestTagsDependOnTheChannelOnly(t *testing.T) {
	b := NewMemoryBroker(100, 0)
	defer b.Close()
	tenant := "acme"
	h, err := New(Config{Broker: b, HeartbeatInterval: -1, AuthorizeTopic: AllowAllTopics})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	srv := httptest.NewServer(h.Handler(HandlerOptions{Identify: func(*http.Request) (Identity, error) {
		mu.Lock()
		defer mu.Unlock()
		return Identity{User: "u", Tenant: tenant}, nil
	}}))
	defer srv.Close()
	defer h.Close()
	publish := publisher(t, h)

	s1 := dialStream(t, srv.URL+"?topic=x&topic=y", "")
	publish(Target{Topics: []string{"x"}}, 1)
	publish(Target{Topics: []string{"y"}}, 2)
	last := events(t, s1, 1, 2)
	s1.Close()
	s2 := dialStream(t, srv.URL+"?topic=y", last) // left x
	publish(Target{Topics: []string{"y"}}, 3)
	last = events(t, s2, 3)
	s2.Close()

	publish(Target{Tenants: []string{"globex"}}, 4) // before u is in globex
	mu.Lock()
	tenant = "globex"
	mu.Unlock()
	s3 := dialStream(t, srv.URL+"?topic=y", last)
	defer s3.Close()
	publish(Target{Tenants: []string{"globex"}}, 5)
	events(t, s3, 5)
	for _, ch := range []string{TenantChannel("acme"), TenantChannel("globex"), TopicChannel("y")} {
		for _, other := range []string{BroadcastChannel, UserChannel("u"), TenantChannel("x"), TopicChannel("z")} {
			if channelTag(ch) == channelTag(other) {
				t.Fatalf("%s and %s share tag %s", ch, other, channelTag(ch))
			}
		}
	}
}
