package ssekit

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/ssekit/sse/sseclient"
)

// laggingBroker is a memory broker whose live delivery waits for release,
// as a Redis subscription's XREAD loop trails the XADD that an XRANGE
// replay already sees.
type laggingBroker struct {
	*MemoryBroker
	mu   sync.Mutex
	fn   func(Message)
	held []Message
}

func (b *laggingBroker) Subscribe(ctx context.Context, fn func(Message)) (Subscription, error) {
	b.mu.Lock()
	b.fn = fn
	b.mu.Unlock()
	return b.MemoryBroker.Subscribe(ctx, func(m Message) {
		b.mu.Lock()
		b.held = append(b.held, m)
		b.mu.Unlock()
	})
}

// release delivers the held messages live.
func (b *laggingBroker) release() {
	b.mu.Lock()
	held, fn := b.held, b.fn
	b.held = nil
	b.mu.Unlock()
	for _, m := range held {
		fn(m)
	}
}

// TestLiveDeliveryLaggingTheReplayIsNotDuplicated resumes a stream whose
// replay writes an event that the broker has not delivered live yet; when
// the live delivery comes, the stream must not write the event again.
func TestLiveDeliveryLaggingTheReplayIsNotDuplicated(t *testing.T) {
	b := &laggingBroker{MemoryBroker: NewMemoryBroker(100, 0)}
	defer b.Close()
	h, err := New(Config{Broker: b, HeartbeatInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h.Handler(HandlerOptions{}))
	defer srv.Close()
	defer h.Close()
	ctx := t.Context()
	id1, err := h.Publish(ctx, Target{All: true}, Event{Type: "n", Data: 1})
	if err != nil {
		t.Fatal(err)
	}
	b.release()
	if _, err := h.Publish(ctx, Target{All: true}, Event{Type: "n", Data: 2}); err != nil { // held: only the history has it
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	req.Header.Set("Last-Event-ID", "a"+id1) // the broadcast channel's position

	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	dec := sseclient.NewDecoder(resp.Body)
	next := func() sseclient.Event {
		t.Helper()
		ev, err := dec.Next()
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
	if ev := next(); ev.Type != TypeConnected {
		t.Fatalf("got %q, want connected", ev.Type)
	}
	if ev := next(); string(ev.Data) != "2" {
		t.Fatalf("replay gave %s, want 2", ev.Data)
	}
	b.release() // event 2 arrives live, after the replay wrote it
	if _, err := h.Publish(ctx, Target{All: true}, Event{Type: "n", Data: 3}); err != nil {
		t.Fatal(err)
	}
	b.release()
	if ev := next(); string(ev.Data) != "3" {
		t.Fatalf("after the replay got %s, want 3 (2 written twice)", ev.Data)
	}
}
