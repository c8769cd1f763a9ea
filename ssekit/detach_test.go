package ssekit_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ssekit/sse/internal/ssetest"
	"github.com/ssekit/sse/sseclient"
	"github.com/ssekit/sse/ssekit"
)

// detachedHub serves a hub with DetachStreams behind a middleware that sets
// a header, as a CORS middleware would, and counts handler returns.
func detachedHub(t *testing.T) (*ssekit.Hub, *httptest.Server, chan struct{}) {
	t.Helper()
	hub := ssekit.NewHub(ssekit.Config{DetachStreams: true})
	returned := make(chan struct{}, 16)
	inner := hub.Handler(ssekit.HandlerOptions{Authenticate: headerUser})
	srv := ssetest.Serve(t, hub, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "https://app.example")
		inner.ServeHTTP(w, r)
		returned <- struct{}{}
	}))
	return hub, srv, returned
}

// rawGET opens a connection to srv and sends a stream request on it, as
// the user "u" (its X-User header), for reading the answer off the
// socket; the connection is closed at cleanup.
func rawGET(t *testing.T, srv *httptest.Server) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nX-User: u\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestDetachedStreamWire reads a detached stream off the socket: a 200
// with the event-stream headers and the middleware's, a body that ends
// with the connection (no chunk framing), the opening at once, and events
// after the handler has returned.
func TestDetachedStreamWire(t *testing.T) {
	t.Parallel()
	hub, srv, returned := detachedHub(t)
	c := rawGET(t, srv)
	r := bufio.NewReader(c)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" ||
		resp.Header.Get("Cache-Control") != "no-cache, no-store" || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Fatalf("status %d, headers %v", resp.StatusCode, resp.Header)
	}
	if len(resp.TransferEncoding) != 0 || resp.ContentLength != -1 || !resp.Close {
		t.Fatalf("body framing: transfer-encoding %v, length %d, close %v; want delimited by the close",
			resp.TransferEncoding, resp.ContentLength, resp.Close)
	}
	opening := rawUntil(t, resp.Body, "event: connected")
	if !strings.HasPrefix(opening, "retry: ") {
		t.Fatalf("opening %q", opening)
	}
	select { // the handler is done; the stream is not
	case <-returned:
	case <-time.After(ssetest.Patience):
		t.Fatal("the handler did not return while its stream runs")
	}
	if _, err := hub.Publish(t.Context(), ssekit.Target{Users: []string{"u"}}, ssekit.Event{Type: "n", Data: 1}); err != nil {
		t.Fatal(err)
	}
	if got := rawUntil(t, resp.Body, "event: n"); !strings.Contains(got, "data: 1\n") {
		t.Fatalf("event %q", got)
	}
}

// TestDetachedClientGoneIsUnregistered shows that a detached stream still
// notices its client leave, without a write to fail on: the counts are
// exact.
func TestDetachedClientGoneIsUnregistered(t *testing.T) {
	t.Parallel()
	hub, srv, _ := detachedHub(t)
	conns := make([]*ssetest.Conn, 5)
	for i := range conns {
		conns[i] = ssetest.DialOK(t, srv.URL, "u", "")
		conns[i].Connected()
	}
	if n := hub.GetTotalClientCount(); n != 5 {
		t.Fatalf("%d clients, want 5", n)
	}
	for _, c := range conns[:3] {
		c.Close()
	}
	ssetest.Eventually(t, "the closed streams unregistered", func() bool { return hub.GetTotalClientCount() == 2 })
	if got := hub.Stats().Disconnects[ssekit.ReasonClientGone]; got != 3 {
		t.Fatalf("client_gone = %d, want 3", got)
	}
}

// TestDetachedStreamsEndWithTheHub shows that Close ends detached streams
// cleanly (a retry hint, then the connection closes) and waits for them;
// TestMain's goleak check finds no goroutine left behind.
func TestDetachedStreamsEndWithTheHub(t *testing.T) {
	t.Parallel()
	hub, srv, _ := detachedHub(t)
	c := ssetest.DialOK(t, srv.URL, "u", "")
	c.Connected()
	if err := hub.Close(); err != nil {
		t.Fatal(err)
	}
	c.Ended()
	if got := hub.Stats().Disconnects[ssekit.ReasonShutdown]; got != 1 {
		t.Fatalf("shutdown disconnects = %d, want 1", got)
	}
}

// TestDetachOverTLS shows a detached stream over HTTP/1.1 with TLS, and
// that a stream that cannot be hijacked (HTTP/2) is served as usual.
func TestDetachOverTLS(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		http2    bool
		detached bool // the body ends with the connection
	}{
		{"HTTP/1.1 is detached", false, true},
		{"HTTP/2 falls back", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			hub := ssekit.NewHub(ssekit.Config{DetachStreams: true})
			srv := httptest.NewUnstartedServer(hub.Handler(ssekit.HandlerOptions{Authenticate: headerUser}))
			srv.EnableHTTP2 = tc.http2
			srv.StartTLS()
			t.Cleanup(func() {
				hub.Close()
				srv.Close()
			})
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"?user=u", nil)
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if wantMajor := map[bool]int{false: 1, true: 2}[tc.http2]; resp.ProtoMajor != wantMajor || resp.StatusCode != http.StatusOK {
				t.Fatalf("%s %d, want HTTP/%d 200", resp.Proto, resp.StatusCode, wantMajor)
			}
			if resp.Close != tc.detached {
				t.Fatalf("body delimited by the close: %v, want %v", resp.Close, tc.detached)
			}
			rawUntil(t, resp.Body, "event: connected")
			if err := hub.SendToAll(ssekit.Event{Type: "n", Data: 2}); err != nil {
				t.Fatal(err)
			}
			if got := rawUntil(t, resp.Body, "event: n"); !strings.Contains(got, "data: 2\n") {
				t.Fatalf("event %q", got)
			}
		})
	}
}

// gatedHead is a broker whose Head waits for release.
type gatedHead struct {
	ssekit.Broker
	release chan struct{}
}

func (b gatedHead) Head(ctx context.Context, channel string) (string, error) {
	<-b.release
	return b.Broker.Head(ctx, channel)
}

// TestDetachedStreamOpensWithItsPosition shows that a detached stream's
// response head goes out with its opening, once the stream knows where it
// starts: a client that saw the stream open and then had an event
// published must get it (a browser's onopen fires on the head).
func TestDetachedStreamOpensWithItsPosition(t *testing.T) {
	t.Parallel()
	broker := ssekit.NewMemoryBroker(100, time.Hour)
	defer broker.Close()
	gate := gatedHead{broker, make(chan struct{})}
	hub := ssekit.NewHub(ssekit.Config{DetachStreams: true, Broker: gate})
	srv := ssetest.Serve(t, hub, hub.Handler(ssekit.HandlerOptions{Authenticate: headerUser}))
	var release sync.Once
	open := func() { release.Do(func() { close(gate.release) }) }
	t.Cleanup(open) // before the hub's close, which waits for the stream
	c := rawGET(t, srv)
	ssetest.Eventually(t, "the stream registered", func() bool { return hub.GetTotalClientCount() == 1 })
	_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, err := c.Read(make([]byte, 1)); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read %d bytes (%v) before the stream had its position", n, err)
	}
	_ = c.SetReadDeadline(time.Time{})
	open()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	rawUntil(t, resp.Body, "event: connected")
	if _, err := hub.Publish(t.Context(), ssekit.Target{Users: []string{"u"}}, ssekit.Event{Type: "n", Data: 3}); err != nil {
		t.Fatal(err)
	}
	if got := rawUntil(t, resp.Body, "event: n"); !strings.Contains(got, "data: 3\n") {
		t.Fatalf("event %q", got)
	}
}

// TestDetachedStreamEndsWhenTheClientSends shows what a detached stream
// does with bytes after the GET — a pipelined request it could never
// answer: it ends, as for a client that left.
func TestDetachedStreamEndsWhenTheClientSends(t *testing.T) {
	t.Parallel()
	hub, srv, _ := detachedHub(t)
	c := rawGET(t, srv)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	rawUntil(t, resp.Body, "event: connected")
	if _, err := io.WriteString(c, "GET /again HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(ssetest.Patience))
	if _, err := io.Copy(io.Discard, resp.Body); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("the stream is still open")
	}
	ssetest.Eventually(t, "the stream unregistered", func() bool { return hub.GetTotalClientCount() == 0 })
	if got := hub.Stats().Disconnects[ssekit.ReasonClientGone]; got != 1 {
		t.Fatalf("client_gone = %d, want 1", got)
	}
}

// TestDetachedStalledClientHoldsNoPublisher publishes to a detached
// stream whose client stopped reading until far more than the sockets'
// buffers hold: every publish returns (a publisher writes a quiet
// stream's event itself, but only what the socket takes at once, and the
// stream's goroutine writes the rest), and once the client reads again it
// gets every event whole and in order — a write the publisher cut short
// is finished by the stream, not dropped or repeated.
func TestDetachedStalledClientHoldsNoPublisher(t *testing.T) {
	t.Parallel()
	for _, delay := range []time.Duration{-1, 0} { // every event at once; the default rounds
		t.Run(fmt.Sprintf("WriteDelay=%v", delay), func(t *testing.T) {
			t.Parallel()
			hub := ssekit.NewHub(ssekit.Config{DetachStreams: true, BufferSize: 4096, WriteDelay: delay})
			srv := ssetest.Serve(t, hub, hub.Handler(ssekit.HandlerOptions{Authenticate: headerUser}))
			c := rawGET(t, srv)
			r := bufio.NewReader(c)
			resp, err := http.ReadResponse(r, nil)
			if err != nil {
				t.Fatal(err)
			}
			dec := sseclient.NewDecoder(resp.Body)
			if ev, err := dec.Next(); err != nil || ev.Type != "connected" {
				t.Fatalf("opening: %+v, %v", ev, err)
			}
			const n, size = 1000, 16 << 10 // 16 MB: past any loopback socket's buffers
			pad := strings.Repeat("x", size)
			published := make(chan error, 1)
			go func() {
				for i := range n {
					if _, err := hub.Publish(context.Background(), ssekit.Target{Users: []string{"u"}},
						ssekit.Event{Type: "big", Data: fmt.Sprintf("%d:%s", i, pad)}); err != nil {
						published <- err
						return
					}
				}
				published <- nil
			}()
			select {
			case err := <-published:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(ssetest.Patience):
				t.Fatal("publishing to a client that does not read blocked the publisher")
			}
			dec.SetMaxEventSize(2 * size)
			for i := range n {
				ev, err := dec.Next()
				if err != nil {
					t.Fatalf("event %d: %v", i, err)
				}
				if want := fmt.Sprintf("%q", fmt.Sprintf("%d:%s", i, pad)); ev.Type != "big" || string(ev.Data) != want {
					t.Fatalf("event %d: type %q, data %.40q… (%d bytes), want %.40q… (%d bytes)", i, ev.Type, ev.Data, len(ev.Data), want, len(want))
				}
			}
		})
	}
}
