//go:build linux

package ssekit

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestPublisherWritesAQuietDetachedStream checks that a publish to a quiet
// detached stream has written the event to its socket by the time Publish
// returns, on the publisher's goroutine (stepHere), with no step goroutine
// to hand it to; and that a publish to a stream whose goroutine is
// stepping leaves the event to that goroutine.
func TestPublisherWritesAQuietDetachedStream(t *testing.T) {
	hub := NewHub(Config{DetachStreams: true})
	defer hub.Close()
	conn, r, es := idleDetachedStream(t, hub)
	// What has reached the client's socket and is not read yet, besides
	// what r buffered.
	pending := func() int {
		raw, err := conn.(syscall.Conn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		_ = raw.Control(func(fd uintptr) { n, err = unix.IoctlGetInt(int(fd), unix.SIOCINQ) })
		if err != nil {
			t.Fatal(err)
		}
		return n + r.Buffered()
	}
	if n := pending(); n != 0 {
		t.Fatalf("%d bytes pending before the publish", n)
	}
	if _, err := hub.Publish(context.Background(), Target{Users: []string{"u"}}, Event{Type: "one", Data: 1}); err != nil {
		t.Fatal(err)
	}
	if n := pending(); n == 0 {
		t.Fatal("Publish returned before the quiet stream's event was written: it was handed to another goroutine")
	}
	if state := es.state.Load(); state != stepIdle {
		t.Fatalf("after the publisher's step, state %d; want idle (no goroutine)", state)
	}

	// A stream whose goroutine steps it, or is parked (the stream is
	// busy): the publisher only queues, and that goroutine writes.
	for _, state := range []uint32{stepRunning, stepAgain, stepParked, stepDone} {
		es.state.Store(state)
		if es.stepHere() {
			t.Fatalf("stepHere ran a step in state %d", state)
		}
	}
	es.state.Store(stepIdle)
}

// TestIDsFitWithoutACursor checks the bound stepHere takes a stream's
// queue by: a publisher's step may not save a cursor, so it takes none
// whose ids could need one.
func TestIDsFitWithoutACursor(t *testing.T) {
	c, err := newFollower("c", "u", []string{"topic:a", "topic:b"}, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := &stream{c: c, pos: []string{"1764460800000-0", "1764460800000-0", "1764460800000-0", "1764460800000-0"}}
	at := func(p string) *queuedEvent {
		return &queuedEvent{msg: &Message{Channels: []string{UserChannel("u")}, Positions: []string{p}}}
	}
	if !s.idsFit([]*queuedEvent{at("1764460800001-7")}) {
		t.Fatal("a short id does not fit")
	}
	if s.idsFit([]*queuedEvent{at("1764460800001-7"), at(strings.Repeat("9", maxIDLen))}) {
		t.Fatal("a position longer than an id fits")
	}
	s.cursor = "k"
	if s.idsFit([]*queuedEvent{at("1764460800001-7")}) {
		t.Fatal("a stream on a cursor fits: its next id may need a new one")
	}
}

// TestPublisherStepThatFailsEndsTheStreamOnce has a publisher's step find
// the client gone (the connection reset, and the hang-up watch told
// nothing, so that the write is what finds out): the stream ends with a
// write error, on its own goroutine, with one OnDisconnect.
func TestPublisherStepThatFailsEndsTheStreamOnce(t *testing.T) {
	ended := make(chan ConnInfo, 2)
	hub := NewHub(Config{DetachStreams: true, OnDisconnect: func(ci ConnInfo) { ended <- ci }})
	defer hub.Close()
	conn, _, es := idleDetachedStream(t, hub)
	hub.hangups.forget(es)
	if err := conn.(*net.TCPConn).SetLinger(0); err != nil { // close with a reset
		t.Fatal(err)
	}
	conn.Close()
	for i := 0; len(ended) == 0 && i < 10; i++ { // the first write after a reset may still succeed
		if _, err := hub.Publish(context.Background(), Target{Users: []string{"u"}}, Event{Type: "one", Data: i}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case ci := <-ended:
		if ci.Reason != ReasonWriteError {
			t.Fatalf("ended for %q; want %q", ci.Reason, ReasonWriteError)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the stream did not end")
	}
	if n := hub.GetTotalClientCount(); n != 0 {
		t.Fatalf("%d streams registered after the end", n)
	}
	select {
	case ci := <-ended:
		t.Fatalf("a second OnDisconnect: %+v", ci)
	default:
	}
}

// idleDetachedStream opens a detached stream of user "u" on hub, reads
// its opening, and returns once no goroutine steps it.
func idleDetachedStream(t *testing.T, hub *Hub) (net.Conn, *bufio.Reader, *eventStream) {
	t.Helper()
	srv := httptest.NewServer(hub.Handler(HandlerOptions{Authenticate: func(*http.Request) (string, error) { return "u", nil }}))
	t.Cleanup(srv.Close)
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	for connected, line := false, ""; !connected || line != "\n"; { // to the connected event's end
		if line, err = r.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		connected = connected || strings.HasPrefix(line, "event: connected")
	}
	var es *eventStream
	deadline := time.Now().Add(30 * time.Second)
	for es == nil || es.state.Load() != stepIdle {
		if time.Now().After(deadline) {
			t.Fatal("the stream never went idle")
		}
		time.Sleep(time.Millisecond)
		if cs := hub.reg.snapshot(); len(cs) == 1 {
			es = cs[0].steps.Load()
		}
	}
	return conn, r, es
}
