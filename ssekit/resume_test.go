package ssekit_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ssekit/sse/ssekit"
)

// seqOf returns the sequence number in an event's data.
func seqOf(t *testing.T, data []byte) int {
	t.Helper()
	n, err := strconv.Atoi(string(data))
	if err != nil {
		t.Fatalf("data %q is not a sequence number", data)
	}
	return n
}

func TestResumeReplaysWhatWasMissedThenLive(t *testing.T) {
	t.Parallel()
	for _, via := range []string{"header", "query"} {
		t.Run(via, func(t *testing.T) {
			t.Parallel()
			h := newTestHub(t, ssekit.Config{})
			c := h.dial(t, "u", "")
			c.Connected()
			h.Publish(t.Context(), ssekit.Target{Users: []string{"u"}}, ssekit.Event{Type: "n", Data: 1})
			last := c.NextOf().ID
			c.Close()

			// While away: two events for u, one for someone else, one for all.
			h.Publish(t.Context(), ssekit.Target{Users: []string{"u"}}, ssekit.Event{Type: "n", Data: 2})
			h.Publish(t.Context(), ssekit.Target{Users: []string{"other"}}, ssekit.Event{Type: "n", Data: 99})
			h.Publish(t.Context(), ssekit.Target{Users: []string{"u"}}, ssekit.Event{Type: "n", Data: 3})
			h.SendToAll(ssekit.Event{Type: "n", Data: 4})

			var r *conn
			if via == "header" {
				r = h.dial(t, "u", last)
			} else {
				r = dialURL(t, h.srv.URL+"?user=u&lastEventId="+last, "", "")
			}
			if d := r.Connected(); !d.Resumed {
				t.Fatal("connected.resumed = false on a known id")
			}
			for _, want := range []int{2, 3, 4} {
				if got := seqOf(t, r.NextOf().Data); got != want {
					t.Fatalf("replayed %d, want %d", got, want)
				}
			}
			h.Publish(t.Context(), ssekit.Target{Users: []string{"u"}}, ssekit.Event{Type: "n", Data: 5})
			if got := seqOf(t, r.NextOf().Data); got != 5 {
				t.Fatalf("live %d, want 5", got)
			}
			if got := h.Stats().Replayed; got != 3 {
				t.Fatalf("Replayed = %d, want 3", got)
			}
		})
	}
}

func TestFreshStreamResumesFromItsConnectedID(t *testing.T) {
	t.Parallel()
	// A client that disconnects before any event arrived still resumes:
	// the connected event's id is where it joined.
	h := newTestHub(t, ssekit.Config{})
	h.SendToAll(ssekit.Event{Type: "n", Data: 0}) // before the client: not for it
	c := h.dial(t, "u", "")
	opening := c.Next()
	if opening.Type != ssekit.TypeConnected || opening.ID == "" {
		t.Fatalf("opening %q with id %q, want connected with an id", opening.Type, opening.ID)
	}
	c.Close()
	h.Publish(t.Context(), ssekit.Target{Users: []string{"u"}}, ssekit.Event{Type: "n", Data: 1})
	r := h.dial(t, "u", opening.ID)
	r.Connected()
	if got := seqOf(t, r.NextOf().Data); got != 1 {
		t.Fatalf("got %d, want the event published while away, and only it", got)
	}
}

func TestUnknownOrExpiredIDGetsResync(t *testing.T) {
	t.Parallel()
	h := newTestHub(t, ssekit.Config{HistorySize: 3})
	var ids []string
	for i := range 5 {
		id, err := h.Publish(t.Context(), ssekit.Target{All: true}, ssekit.Event{Type: "n", Data: i})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	epoch, _, _ := strings.Cut(ids[0], "-")
	// Broadcast positions are "a" + the broker's; the memory broker's head
	// is the same in every channel.
	head := "a" + ids[4] + ".u" + ids[4]
	cases := map[string]string{
		"trimmed":        "a" + ids[0], // ids[1] is gone from the history of 3
		"earlier format": ids[1],       // a bare position, as ssekit wrote before channels
		"malformed":      "not-an-id",
		"other process":  "a1-1",
		"future":         "a" + epoch + "-99",
		"oversized":      strings.Repeat("1", 4096),
		"empty field":    "a1--1",
		"negative":       "-5",
		"repeated tag":   "a" + ids[3] + ".a" + ids[4],
		"unknown cursor": "c1z2y3",
	}
	for name, last := range cases {
		t.Run(name, func(t *testing.T) {
			c := h.dial(t, "u", last)
			if d := c.Connected(); d.Resumed {
				t.Fatal("resumed = true on an unknown id")
			}
			ev := c.NextOf()
			if ev.Type != ssekit.TypeResync || ev.ID != head {
				t.Fatalf("got %q id %q, want resync with the head id %q", ev.Type, ev.ID, head)
			}
			var d struct {
				Reason      string `json:"reason"`
				LastEventID string `json:"last_event_id"`
			}
			if err := ev.Decode(&d); err != nil || d.Reason == "" {
				t.Fatalf("resync data %s (%v), want a reason", ev.Data, err)
			}
		})
	}
	// The oldest kept position still resumes without a resync.
	c := h.dial(t, "u", "a"+ids[1])
	if d := c.Connected(); !d.Resumed {
		t.Fatal("resumed = false from the oldest kept position")
	}
	for _, want := range []int{2, 3, 4} {
		if got := seqOf(t, c.NextOf().Data); got != want {
			t.Fatalf("replayed %d, want %d", got, want)
		}
	}
	if got := h.Stats().Resyncs; got != uint64(len(cases)) {
		t.Fatalf("Resyncs = %d, want %d", got, len(cases))
	}
}

func TestNoGapNoDuplicateWhilePublishingDuringReconnects(t *testing.T) {
	t.Parallel()
	h := newTestHub(t, ssekit.Config{HistorySize: 10000, BufferSize: 64})
	const total = 3000
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	first := h.dial(t, "u", "")
	first.Connected()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; i <= total && ctx.Err() == nil; i++ {
			if _, err := h.Publish(ctx, ssekit.Target{Users: []string{"u"}}, ssekit.Event{Type: "n", Data: i}); err != nil {
				t.Error(err)
				return
			}
			if i%50 == 0 {
				time.Sleep(time.Millisecond) // let reconnects interleave with publishing
			}
		}
	}()

	// Read a few events, hang up, reconnect with the last id, again and
	// again, while the publisher runs. The small queue may overflow under
	// the publisher's burst; the hub then ends the stream, and the client
	// resumes from its last id just the same.
	want, last, ended := 1, "", 0
	for reconnects := 0; want <= total; reconnects++ {
		c := first
		if reconnects > 0 {
			c = h.dial(t, "u", last)
			c.Connected()
		}
		for range 1 + reconnects%40 {
			if want > total {
				break
			}
			ev, ok := c.NextOrEnd()
			if !ok {
				ended++
				break
			}
			if ev.Type == "heartbeat" {
				continue
			}
			if got := seqOf(t, ev.Data); got != want {
				t.Fatalf("after %d reconnects: got %d, want %d (gap or duplicate)", reconnects, got, want)
			}
			last = ev.ID
			want++
		}
		c.Close()
	}
	wg.Wait()
	// A stream the hub ended must have ended for overflow, nothing else.
	if n := h.Stats().Disconnects[ssekit.ReasonOverflow]; uint64(ended) > n {
		t.Fatalf("the hub ended %d streams, %d of them for overflow", ended, n)
	}
}

func TestClientIDsAreNeverWrittenBack(t *testing.T) {
	t.Parallel()
	// The query parameter, unlike a header, can carry line breaks: an id
	// the hub did not issue must not reach the wire, or a crafted link
	// could inject events into a victim's stream.
	broker := ssekit.NewMemoryBroker(1000, 10*time.Minute) // the hub's default history
	t.Cleanup(func() { broker.Close() })
	h := newTestHub(t, ssekit.Config{Broker: broker})
	pos, _ := broker.Head(t.Context(), ssekit.BroadcastChannel)
	head := "a" + pos + ".u" + pos
	c := dialURL(t, h.srv.URL+"?user=u&lastEventId=x%0Aevent:%20evil%0Adata:%20pwned%0A%0A", "", "")
	var types []string
	for range 2 {
		ev := c.Next()
		types = append(types, ev.Type)
		if ev.Type == ssekit.TypeResync && ev.ID != head {
			t.Fatalf("resync id %q, want the head %q", ev.ID, head)
		}
		if ev.Type == ssekit.TypeResync && strings.Contains(string(ev.Data), "evil") {
			t.Fatalf("resync data echoes the bogus id: %s", ev.Data)
		}
	}
	if types[0] != ssekit.TypeConnected || types[1] != ssekit.TypeResync {
		t.Fatalf("events %q, want connected then resync", types)
	}
}
