package ssekit_test

import (
	"bufio"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ssekit/sse/internal/ssetest"
	"github.com/ssekit/sse/sseclient"
	"github.com/ssekit/sse/ssekit"
)

func TestDefaults(t *testing.T) {
	t.Parallel()
	d := ssekit.DefaultConfig()
	if d.BufferSize != 10 || d.ClientTimeout != 5*time.Minute || d.HeartbeatInterval != 30*time.Second ||
		d.MaxClients != 1000 || d.MaxClientsPerUser != 5 {
		t.Fatalf("DefaultConfig = %+v, want the seed's defaults", d)
	}
	for _, bad := range []ssekit.Config{{BufferSize: -1}, {ClientTimeout: -1}, {Overflow: 7}, {MaxEventSize: -1}} {
		if _, err := ssekit.New(bad); err == nil {
			t.Errorf("New(%+v): no error", bad)
		}
	}
}

func TestMaxClientsTurnsAwayWithRetryAndNoRegistration(t *testing.T) {
	t.Parallel()
	h := newTestHub(t, ssekit.Config{MaxClients: 2, RetryInterval: time.Second})
	h.dial(t, "a", "").Connected()
	h.dial(t, "b", "").Connected()

	resp, err := http.Get(h.srv.URL + "?user=c")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("refused stream: %d %q; a browser gives up for good on anything but 200 text/event-stream", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(resp.Body) // the stream ends by itself
	if err != nil {
		t.Fatal(err)
	}
	retry, ok := strings.CutPrefix(string(body), "retry: ")
	if !ok || strings.Contains(string(body), "connected") {
		t.Fatalf("refused stream body %q, want only a retry line", body)
	}
	ms, err := strconv.Atoi(strings.TrimSpace(retry))
	if err != nil || ms < 1000 || ms > 2000 {
		t.Fatalf("retry %q, want 1000–2000 ms (jittered RetryInterval)", retry)
	}
	if got := h.GetTotalClientCount(); got != 2 {
		t.Fatalf("GetTotalClientCount = %d, want 2", got)
	}
	if got := h.Stats().Rejected; got != 1 {
		t.Fatalf("Rejected = %d, want 1", got)
	}
}

func TestMaxClientsPerUserClosesTheOldest(t *testing.T) {
	t.Parallel()
	h := newTestHub(t, ssekit.Config{MaxClientsPerUser: 2})
	oldest := h.dial(t, "u", "")
	oldest.Connected()
	second := h.dial(t, "u", "")
	second.Connected()
	third := h.dial(t, "u", "")
	third.Connected()

	oldest.Ended() // its HTTP response really ends
	if got := h.UserClientCount("u"); got != 2 {
		t.Fatalf("UserClientCount = %d, want 2", got)
	}
	h.SendToAll(ssekit.Event{Type: "after"})
	for _, c := range []*conn{second, third} {
		if got := c.NextOf().Type; got != "after" {
			t.Fatalf("got %q, want after", got)
		}
	}
	if got := h.Stats().Disconnects[ssekit.ReasonEvicted]; got != 1 {
		t.Fatalf("evictions = %d, want 1", got)
	}
}

// stalledReader opens a stream and does not read it, so that the server's
// writes block once the socket buffers are full.
func stalledReader(t *testing.T, h *testHub, user string) *http.Response {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, h.srv.URL+"?user="+user, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// flood publishes big events to user until cond holds, at most max events.
func flood(t *testing.T, h *testHub, user string, max int, cond func() bool) int {
	t.Helper()
	big := strings.Repeat("x", 200<<10)
	for i := 1; i <= max; i++ {
		if _, err := h.Publish(t.Context(), ssekit.Target{Users: []string{user}}, ssekit.Event{Type: "big", Data: map[string]any{"n": i, "pad": big}}); err != nil {
			t.Fatal(err)
		}
		if cond() {
			return i
		}
		if i > 40 {
			// Past what the socket buffers hold: give the writer's deadline
			// time to pass rather than piling up memory.
			time.Sleep(time.Millisecond)
		}
	}
	t.Fatalf("condition not reached after %d events", max)
	return 0
}

func TestFullBufferDisconnectsAndTheClientResumes(t *testing.T) {
	t.Parallel()
	h := newTestHub(t, ssekit.Config{BufferSize: 2, MaxEventSize: 1 << 20, HistorySize: 200})
	resp := stalledReader(t, h, "slow")
	ssetest.Eventually(t, "registered", func() bool { return h.GetTotalClientCount() == 1 })
	sent := flood(t, h, "slow", 600, func() bool { return h.Stats().Disconnects[ssekit.ReasonOverflow] == 1 })
	ssetest.Eventually(t, "unregistered", func() bool { return h.GetTotalClientCount() == 0 })

	// What reached the socket before the cut is read, then the stream ends.
	dec := sseclient.NewDecoder(bufio.NewReaderSize(resp.Body, 1<<20))
	dec.SetMaxEventSize(1 << 20)
	n := 0
	for {
		ev, err := dec.Next()
		if err != nil {
			break
		}
		if ev.Type == "big" {
			n++
		}
	}
	if n >= sent {
		t.Fatalf("read all %d events before the cut; the buffer never overflowed", n)
	}
	// Resuming from the last id read (the connected event's, if the cut
	// came before any event) yields the rest, in order.
	last := dec.LastEventID()
	c := h.dial(t, "slow", last)
	if d := c.Connected(); !d.Resumed {
		t.Fatalf("resumed = false (read %d of %d, last %q)", n, sent, last)
	}
	for want := n + 1; want <= sent; want++ {
		ev := c.NextOf()
		var d struct{ N int }
		if err := ev.Decode(&d); err != nil || d.N != want {
			t.Fatalf("resumed event n=%d (%v), want %d", d.N, err, want)
		}
	}
}

func TestDropPolicyKeepsTheStreamAndCounts(t *testing.T) {
	t.Parallel()
	h := newTestHub(t, ssekit.Config{BufferSize: 2, MaxEventSize: 1 << 20, HistorySize: 50, Overflow: ssekit.OverflowDrop})
	stalledReader(t, h, "slow")
	ssetest.Eventually(t, "registered", func() bool { return h.GetTotalClientCount() == 1 })
	flood(t, h, "slow", 600, func() bool { return h.Stats().Dropped > 0 })
	if got := h.GetTotalClientCount(); got != 1 {
		t.Fatalf("clients = %d, want the stream kept open", got)
	}
	if got := h.Stats().Disconnects[ssekit.ReasonOverflow]; got != 0 {
		t.Fatalf("overflow disconnects = %d under OverflowDrop", got)
	}
}

func TestClientTimeoutClosesAStalledConnection(t *testing.T) {
	t.Parallel()
	// A big buffer, so that the stall, not an overflow, ends the stream.
	h := newTestHub(t, ssekit.Config{BufferSize: 1000, MaxEventSize: 1 << 20, HistorySize: 50, ClientTimeout: 200 * time.Millisecond})
	stalledReader(t, h, "stuck")
	ssetest.Eventually(t, "registered", func() bool { return h.GetTotalClientCount() == 1 })
	flood(t, h, "stuck", 5000, func() bool { return h.Stats().Disconnects[ssekit.ReasonWriteError] == 1 })
	ssetest.Eventually(t, "unregistered", func() bool { return h.GetTotalClientCount() == 0 })
}
