package ssekit

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssekit/sse/sseclient"
)

// The publisher writing its own event to a quiet stream (publisherWrites,
// eventStream.stepHere) must not make anyone wait for that publisher, nor
// lose a wake-up when its Publish goes wrong, nor go around a connection's
// own Write. A review found each of these broken in a first version.

// hangOn is a guard against a test that would hang, not a timing
// assertion.
const hangOn = 30 * time.Second

// serveHub serves h's streams of user "u" on srv (a new server if nil);
// at cleanup the hub closes, ending its streams, before the server does.
func serveHub(t *testing.T, h *Hub, srv *httptest.Server) *httptest.Server {
	t.Helper()
	handler := h.Handler(HandlerOptions{Authenticate: func(*http.Request) (string, error) { return "u", nil }})
	if srv == nil {
		srv = httptest.NewServer(handler)
	} else {
		srv.Config.Handler = handler
		srv.Start()
	}
	t.Cleanup(srv.Close)
	t.Cleanup(func() { h.Close() })
	return srv
}

// openStream opens a stream of user "u" on srv, read past its connected
// event; the stream is closed at cleanup.
func openStream(t *testing.T, srv *httptest.Server) *sseclient.Decoder {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); resp.Body.Close() })
	dec := sseclient.NewDecoder(resp.Body)
	if ev, err := dec.Next(); err != nil || ev.Type != TypeConnected {
		t.Fatalf("opening: %+v, %v", ev, err)
	}
	return dec
}

// nextOf returns the next event of dec that is not a heartbeat, or fails
// the test after hangOn.
func nextOf(t *testing.T, dec *sseclient.Decoder) sseclient.Event {
	t.Helper()
	got := make(chan sseclient.Event, 1)
	errc := make(chan error, 1)
	go func() {
		for {
			ev, err := dec.Next()
			if err != nil {
				errc <- err
				return
			}
			if ev.Type != TypeHeartbeat {
				got <- ev
				return
			}
		}
	}()
	select {
	case ev := <-got:
		return ev
	case err := <-errc:
		t.Fatal(err)
	case <-time.After(hangOn):
		t.Fatal("no event")
	}
	return sseclient.Event{}
}

// holdingBroker is the memory broker wrapped by one that does more work
// after the inner Publish returns (metrics, an audit log, replication):
// a publish of type "slow" waits on hold there.
type holdingBroker struct {
	*MemoryBroker
	hold chan struct{}
}

func (b *holdingBroker) Publish(ctx context.Context, m Message) (string, error) {
	id, err := b.MemoryBroker.Publish(ctx, m)
	if m.Type == "slow" {
		<-b.hold
	}
	return id, err
}

// TestAPublisherHeldInItsBrokerHoldsNoOtherEvent: a publisher still inside
// a wrapping broker's Publish, after the memory broker delivered its event,
// holds up neither its own event nor another publisher's to the same
// stream: the memory broker writes its quiet streams as it returns.
func TestAPublisherHeldInItsBrokerHoldsNoOtherEvent(t *testing.T) {
	for _, detach := range []bool{false, true} {
		t.Run(fmt.Sprint("detach=", detach), func(t *testing.T) {
			b := &holdingBroker{MemoryBroker: NewMemoryBroker(100, 0), hold: make(chan struct{})}
			t.Cleanup(func() { b.Close() })
			h, err := New(Config{Broker: b, HeartbeatInterval: -1, WriteDelay: -1, DetachStreams: detach})
			if err != nil {
				t.Fatal(err)
			}
			dec := openStream(t, serveHub(t, h, nil))
			t.Cleanup(func() { close(b.hold) })
			go func() {
				_, _ = h.Publish(context.Background(), Target{Users: []string{"u"}}, Event{Type: "slow", Data: 1})
			}()
			if ev := nextOf(t, dec); ev.Type != "slow" {
				t.Fatalf("got %q; want the held publisher's own event", ev.Type)
			}
			if _, err := h.Publish(context.Background(), Target{Users: []string{"u"}}, Event{Type: "fast", Data: 2}); err != nil {
				t.Fatal(err)
			}
			if ev := nextOf(t, dec); ev.Type != "fast" {
				t.Fatalf("got %q; want the other publisher's event", ev.Type)
			}
		})
	}
}

// TestAPanicInPublishStrandsNoStream: another subscriber of the memory
// broker panics on a message (the app recovers, as net/http recovers a
// handler): the stream still writes what the hub was delivered, and the
// next event, with no heartbeat to wake it later. The broker calls its
// subscribers in no set order, so a few attempts make it likely that the
// hub got the message before the panic, the case that stranded a stream.
func TestAPanicInPublishStrandsNoStream(t *testing.T) {
	for _, detach := range []bool{false, true} {
		t.Run(fmt.Sprint("detach=", detach), func(t *testing.T) {
			for range 8 {
				panicOnce(t, detach)
			}
		})
	}
}

func panicOnce(t *testing.T, detach bool) {
	b := NewMemoryBroker(100, 0)
	defer b.Close()
	h, err := New(Config{Broker: b, HeartbeatInterval: -1, WriteDelay: -1, DetachStreams: detach})
	if err != nil {
		t.Fatal(err)
	}
	handler := h.Handler(HandlerOptions{Authenticate: func(*http.Request) (string, error) { return "u", nil }})
	srv := httptest.NewServer(handler)
	defer srv.Close()
	defer h.Close()
	ctx, cancel := context.WithCancel(t.Context())
	if _, err := b.Subscribe(ctx, func(m Message) {
		if m.Type == "boom" {
			panic("a subscriber's bug")
		}
	}); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	defer cancel()
	dec := sseclient.NewDecoder(resp.Body)
	if ev, err := dec.Next(); err != nil || ev.Type != TypeConnected {
		t.Fatalf("opening: %+v, %v", ev, err)
	}
	func() {
		defer func() { _ = recover() }()
		_, _ = h.Publish(context.Background(), Target{Users: []string{"u"}}, Event{Type: "boom", Data: 1})
	}()
	if _, err := h.Publish(context.Background(), Target{Users: []string{"u"}}, Event{Type: "after", Data: 2}); err != nil {
		t.Fatal(err)
	}
	for ev := nextOf(t, dec); ev.Type != "after"; ev = nextOf(t, dec) {
		if ev.Type != "boom" {
			t.Fatalf("got %q", ev.Type)
		}
	}
}

// countingConn is a listener's connection that counts what is written
// through it, as metrics or a bandwidth cap would; it embeds
// *net.TCPConn, so it is a syscall.Conn too.
type countingConn struct {
	*net.TCPConn
	n *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	n, err := c.TCPConn.Write(p)
	c.n.Add(int64(n))
	return n, err
}

type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{c.(*net.TCPConn), l.n}, nil
}

// TestEventsGoThroughAWrappedConnsWrite: a detached stream on a
// connection of the app's own type writes every event through its Write,
// never to the descriptor behind it.
func TestEventsGoThroughAWrappedConnsWrite(t *testing.T) {
	h, err := New(Config{DetachStreams: true, HeartbeatInterval: -1, WriteDelay: -1})
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	srv := httptest.NewUnstartedServer(nil)
	srv.Listener = countingListener{srv.Listener, &n}
	dec := openStream(t, serveHub(t, h, srv))
	written := n.Load()
	for i := range 5 {
		if _, err := h.Publish(context.Background(), Target{Users: []string{"u"}}, Event{Type: "x", Data: i}); err != nil {
			t.Fatal(err)
		}
		nextOf(t, dec)
		// The count follows the write, which the client may read first.
		for deadline := time.Now().Add(hangOn); n.Load() <= written; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("event %d reached the client without the connection's Write (%d bytes written through it, as before)", i, written)
			}
		}
		written = n.Load()
	}
}

// TestPublishersAndTicksRacingOnTwoStreams has four publishers race on a
// user's two detached streams whose heartbeats fire every few
// milliseconds (steps on publishers' goroutines, on woken ones, and
// parked ones, all at once): each stream gets every event once, and each
// publisher's in the order published.
func TestPublishersAndTicksRacingOnTwoStreams(t *testing.T) {
	for _, delay := range []time.Duration{-1, 2 * time.Millisecond} {
		t.Run(fmt.Sprint("WriteDelay=", delay), func(t *testing.T) {
			h, err := New(Config{DetachStreams: true, HeartbeatInterval: 3 * time.Millisecond, WriteDelay: delay, BufferSize: 100000})
			if err != nil {
				t.Fatal(err)
			}
			srv := serveHub(t, h, nil)
			const pubs, per = 4, 400
			decs := []*sseclient.Decoder{openStream(t, srv), openStream(t, srv)}
			done := make(chan error, len(decs))
			for _, d := range decs {
				go func() {
					seen := map[string]bool{}
					next := make([]int, pubs) // each publisher's next event
					for len(seen) < pubs*per {
						ev, err := d.Next()
						if err != nil {
							done <- err
							return
						}
						if ev.Type != "n" {
							continue
						}
						k := string(ev.Data)
						if seen[k] {
							done <- fmt.Errorf("%s twice", k)
							return
						}
						seen[k] = true
						var p, i int
						if _, err := fmt.Sscanf(k, "\"%d-%d\"", &p, &i); err != nil || i != next[p] {
							done <- fmt.Errorf("%s: want publisher %d's event %d next (%v)", k, p, next[p], err)
							return
						}
						next[p]++
					}
					done <- nil
				}()
			}
			for p := range pubs {
				go func() {
					for i := range per {
						_, _ = h.Publish(context.Background(), Target{Users: []string{"u"}}, Event{Type: "n", Data: fmt.Sprintf("%d-%d", p, i)})
						if i%50 == 0 {
							time.Sleep(time.Millisecond) // let streams go quiet now and then
						}
					}
				}()
			}
			for range decs {
				select {
				case err := <-done:
					if err != nil {
						t.Fatal(err)
					}
				case <-time.After(hangOn):
					t.Fatal("a stream stopped getting events")
				}
			}
		})
	}
}
