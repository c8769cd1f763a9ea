package ssekit_test

import (
	"bufio"
	"encoding/json"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssekit/sse/internal/ssetest"
	"github.com/ssekit/sse/ssekit"
)

// TestIdleDetachedStreamsHoldNoGoroutine opens detached streams and
// leaves them idle: on Linux they hold no goroutine (the hub has one for
// all of them, watching for hang-ups), yet an event still reaches each,
// and each client's hang-up is noticed, with OnDisconnect once per
// stream.
func TestIdleDetachedStreamsHoldNoGoroutine(t *testing.T) {
	const n = 40
	var disconnected atomic.Int64
	hub := ssekit.NewHub(ssekit.Config{
		DetachStreams: true, MaxClientsPerUser: -1,
		OnDisconnect: func(info ssekit.ConnInfo) {
			if info.Reason == ssekit.ReasonClientGone {
				disconnected.Add(1)
			}
		},
	})
	srv := ssetest.Serve(t, hub, hub.Handler(ssekit.HandlerOptions{Authenticate: headerUser}))
	before := runtime.NumGoroutine()
	readers := make([]*bufio.Reader, n)
	conns := make([]net.Conn, n)
	for i := range n {
		conns[i] = rawGET(t, srv)
		readers[i] = bufio.NewReader(conns[i])
		rawUntil(t, readers[i], "event: connected")
	}
	// net/http's connection goroutines return once their streams are
	// detached, and the streams' opening goroutines once they are live.
	ssetest.Eventually(t, "idle streams without goroutines", func() bool {
		return runtime.NumGoroutine() <= before+2 // the hang-up watch, and slack
	})
	if err := hub.SendToAll(ssekit.Event{Type: "hello", Data: "{}"}); err != nil {
		t.Fatal(err)
	}
	for _, r := range readers {
		rawUntil(t, r, "event: hello")
	}
	for _, c := range conns {
		c.Close()
	}
	ssetest.Eventually(t, "every hang-up noticed", func() bool {
		return hub.GetTotalClientCount() == 0 && disconnected.Load() == n
	})
}

// TestDetachedStreamsLoseNoWakeUp publishes from several goroutines at
// once to detached streams woken per event (WriteDelay off), so that
// wake-ups land while steps run: every stream gets every event, each
// publisher's in order.
func TestDetachedStreamsLoseNoWakeUp(t *testing.T) {
	const streams, publishers, events = 8, 4, 300
	hub := ssekit.NewHub(ssekit.Config{DetachStreams: true, WriteDelay: -1, BufferSize: 4 * publishers * events, MaxClientsPerUser: -1})
	srv := ssetest.Serve(t, hub, hub.Handler(ssekit.HandlerOptions{Authenticate: headerUser}))
	conns := make([]*ssetest.Conn, streams)
	for i := range conns {
		conns[i] = ssetest.DialOK(t, srv.URL, "u", "")
		conns[i].Connected()
	}
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range events {
				if err := hub.SendToAll(ssekit.Event{Type: "n", Data: map[string]int{"p": p, "s": s}}); err != nil {
					t.Error(err)
					return
				}
				if s%50 == 0 {
					time.Sleep(time.Millisecond) // let streams go idle now and then
				}
			}
		}()
	}
	wg.Wait()
	for i, c := range conns {
		next := make([]int, publishers)
		for got := 0; got < publishers*events; {
			ev := c.NextOf()
			if ev.Type != "n" {
				continue
			}
			var d struct{ P, S int }
			if err := json.Unmarshal(ev.Data, &d); err != nil {
				t.Fatal(err)
			}
			if d.S != next[d.P] {
				t.Fatalf("stream %d: publisher %d's event %d, want %d", i, d.P, d.S, next[d.P])
			}
			next[d.P]++
			got++
		}
	}
	if d := hub.Stats().Disconnects; len(d) != 0 {
		t.Fatalf("disconnects %v", d)
	}
}

// TestDetachedStreamIsQuietOnceOpen shows that a detached stream that
// just opened counts as quiet: its first event is written at once, not in
// the waker's round (an hour away here), though its opening was a write.
func TestDetachedStreamIsQuietOnceOpen(t *testing.T) {
	hub := ssekit.NewHub(ssekit.Config{DetachStreams: true, WriteDelay: time.Hour})
	srv := ssetest.Serve(t, hub, hub.Handler(ssekit.HandlerOptions{Authenticate: headerUser}))
	c := rawGET(t, srv)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second)) // not the hour
	r := bufio.NewReader(c)
	rawUntil(t, r, "event: connected")
	time.Sleep(10 * time.Millisecond) // let the opening's goroutine hand over
	if err := hub.SendToAll(ssekit.Event{Type: "first", Data: "{}"}); err != nil {
		t.Fatal(err)
	}
	rawUntil(t, r, "event: first")
}
