package ssekit_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ssekit/sse/internal/ssetest"
	"github.com/ssekit/sse/ssekit"
)

func TestStreamHeadersAndOpening(t *testing.T) {
	t.Parallel()
	h := newTestHub(t, ssekit.Config{RetryInterval: 2500 * time.Millisecond})
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, h.srv.URL, nil)
	req.Header.Set("X-User", "u1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	for k, want := range map[string]string{
		"Content-Type":      "text/event-stream",
		"Cache-Control":     "no-cache, no-store",
		"X-Accel-Buffering": "no",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	// The opening arrives with no event published: it was flushed at once.
	raw := rawUntil(t, resp.Body, "event: connected")
	if !strings.HasPrefix(raw, "retry: 2500\n\n") {
		t.Fatalf("stream starts %q, want the retry line first", raw)
	}
	if strings.HasPrefix(raw, "\xef\xbb\xbf") {
		t.Fatal("stream starts with a BOM")
	}
	lines := strings.Split(strings.TrimSpace(strings.TrimPrefix(raw, "retry: 2500\n\n")), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "id: ") || lines[1] != "event: connected" || !strings.HasPrefix(lines[2], "data: ") {
		t.Fatalf("connected frame %q, want id, event and data lines", lines)
	}
	var d ssetest.Connected
	if err := json.Unmarshal([]byte(strings.TrimPrefix(lines[2], "data: ")), &d); err != nil {
		t.Fatal(err)
	}
	if d.ClientID == "" || d.Timestamp == "" || d.Resumed {
		t.Fatalf("connected data %+v, want client_id, timestamp, resumed=false", d)
	}

	id, err := h.Publish(t.Context(), ssekit.Target{Users: []string{"u1"}}, ssekit.Event{Type: "notification", Data: map[string]any{"title": "Hi", "n": 1}})
	if err != nil {
		t.Fatal(err)
	}
	frame := rawUntil(t, resp.Body, "event: notification")
	// The id is the stream's position: where it joined the broadcast
	// channel, and the event's in the user's.
	joined, _, _ := ssetest.Positions(strings.TrimPrefix(lines[0], "id: "))
	want := "id: a" + joined["a"] + ".u" + id + "\nevent: notification\ndata: {\"n\":1,\"title\":\"Hi\"}\n\n"
	if frame != want {
		t.Fatalf("frame %q, want %q", frame, want)
	}
}

func TestInvalidEventsAreRejectedAndNothingIsWritten(t *testing.T) {
	t.Parallel()
	h := newTestHub(t, ssekit.Config{MaxEventSize: 100})
	c := h.dial(t, "u1", "")
	c.Connected()
	cases := []struct {
		name string
		ev   ssekit.Event
		want error
	}{
		{"LF in type", ssekit.Event{Type: "a\nb"}, ssekit.ErrInvalidEvent},
		{"CR in type", ssekit.Event{Type: "a\rdata: x"}, ssekit.ErrInvalidEvent},
		{"NUL in type", ssekit.Event{Type: "a\x00"}, ssekit.ErrInvalidEvent},
		{"LF in id", ssekit.Event{ID: "1\n2", Type: "t"}, ssekit.ErrInvalidEvent},
		{"caller id", ssekit.Event{ID: "42", Type: "t"}, ssekit.ErrInvalidEvent},
		{"unmarshallable data", ssekit.Event{Type: "t", Data: make(chan int)}, ssekit.ErrInvalidEvent},
		{"NaN data", ssekit.Event{Type: "t", Data: math.NaN()}, ssekit.ErrInvalidEvent},
		{"invalid raw JSON", ssekit.Event{Type: "t", Data: json.RawMessage(`{"a":`)}, ssekit.ErrInvalidEvent},
		{"too large", ssekit.Event{Type: "t", Data: strings.Repeat("x", 200)}, ssekit.ErrEventTooLarge},
	}
	for _, tc := range cases {
		_, err := h.Publish(context.Background(), ssekit.Target{All: true}, tc.ev)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.want)
		}
		if err := h.SendToAll(tc.ev); !errors.Is(err, tc.want) {
			t.Errorf("%s: SendToAll err %v, want %v", tc.name, err, tc.want)
		}
	}
	if got := h.Stats().Published; got != 0 {
		t.Fatalf("Published = %d after rejected sends", got)
	}
	// A refusal quotes a little of what it refuses, not all of it.
	if err := h.SendToAll(ssekit.Event{Type: strings.Repeat("x", 40<<10) + "\n"}); err == nil || len(err.Error()) > 200 {
		t.Fatalf("refusal of a 40 KB type: %d-byte error, want a short one", len(fmt.Sprint(err)))
	}
	// Raw JSON with line breaks is compacted onto one data line.
	h.SendToAll(ssekit.Event{Type: "ok", Data: json.RawMessage("{\n  \"a\": 1\n}")})
	if ev := c.NextOf(); ev.Type != "ok" || string(ev.Data) != `{"a":1}` {
		t.Fatalf("first event after the rejected ones: %q %s, want ok {\"a\":1}", ev.Type, ev.Data)
	}
}

func TestEmptyTypeIsAMessageEvent(t *testing.T) {
	t.Parallel()
	h := newTestHub(t, ssekit.Config{})
	c := h.dial(t, "", "")
	c.Connected()
	h.SendToAll(ssekit.Event{Data: "plain"})
	if ev := c.NextOf(); ev.Type != "message" || string(ev.Data) != `"plain"` {
		t.Fatalf("got %q %s, want message \"plain\"", ev.Type, ev.Data)
	}
}

// The hub's own types, and the names an EventSource dispatches for itself
// ("error" fires onerror, "open" fires onopen), cannot be sent.
func TestTheHubsOwnTypesCannotBeSent(t *testing.T) {
	t.Parallel()
	h := newTestHub(t, ssekit.Config{})
	for _, typ := range []string{ssekit.TypeConnected, ssekit.TypeHeartbeat, ssekit.TypeResync, "error", "open"} {
		if err := h.SendToAll(ssekit.Event{Type: typ}); !errors.Is(err, ssekit.ErrInvalidEvent) {
			t.Errorf("send of type %q: %v, want ErrInvalidEvent", typ, err)
		}
	}
	// Types are case-sensitive, as EventSource's listeners are.
	for _, typ := range []string{"Error", "OPEN", "message", "errors"} {
		if err := h.SendToAll(ssekit.Event{Type: typ}); err != nil {
			t.Errorf("send of type %q: %v, want it sent", typ, err)
		}
	}
}
