package ssekit_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/ssekit/sse/internal/ssetest"
	"github.com/ssekit/sse/ssekit"
)

// A resume that asks for a topic it did not follow before starts that
// topic at its head; the channels it did follow replay what it missed,
// including events addressed to one of them and to the new topic.
func TestResumeWithANewTopicReplaysTheOldChannels(t *testing.T) {
	t.Parallel()
	h := newIDHub(t, ssekit.Config{AuthorizeTopic: ssekit.AllowAllTopics})
	c := h.dialQ(t, "alice", "tenant=acme", "")
	last := c.Connected().ID
	c.Close()
	ssetest.Eventually(t, "alice gone", func() bool { return h.GetTotalClientCount() == 0 })
	h.SendToTopic("new", ssekit.Event{Type: "new-only"}) // before she followed it
	h.SendToTenant("acme", ssekit.Event{Type: "tenant", Data: 1})
	h.Publish(t.Context(), ssekit.Target{Tenants: []string{"acme"}, Topics: []string{"new"}}, ssekit.Event{Type: "tenant", Data: 2})
	h.Publish(t.Context(), ssekit.Target{Users: []string{"alice"}, Topics: []string{"new"}}, ssekit.Event{Type: "tenant", Data: 3})
	r := h.dialQ(t, "alice", "tenant=acme&topic=new", last)
	if d := r.Connected(); !d.Resumed {
		t.Fatal("resumed = false")
	}
	h.SendToTopic("new", ssekit.Event{Type: "live"})
	var got []string
	for ev := r.NextOf(); ev.Type != "live"; ev = r.NextOf() {
		got = append(got, fmt.Sprintf("%s %s", ev.Type, ev.Data))
	}
	if want := []string{"tenant 1", "tenant 2", "tenant 3"}; !slices.Equal(got, want) {
		t.Fatalf("the resume replayed %q, want %q", got, want)
	}
}

// readHook is a memory broker that calls onRead before each Read.
type readHook struct {
	*ssekit.MemoryBroker
	mu     sync.Mutex
	onRead func(channel string)
}

func (b *readHook) Read(ctx context.Context, channel, after string, limit int) ([]ssekit.Message, error) {
	b.mu.Lock()
	f := b.onRead
	b.mu.Unlock()
	if f != nil {
		f(channel)
	}
	return b.MemoryBroker.Read(ctx, channel, after, limit)
}

// Live events that arrive while a resume replays: one for the user only
// once the replay has read the user's whole channel, then one for the
// user and the tenant, whose channel the replay is still reading. The
// replay reaches the second through the tenant's channel, past the
// first's position in the user's; the first must still arrive, once, and
// not be taken for one the replay wrote.
func TestLiveEventDuringAReplayThatPassedItsChannel(t *testing.T) {
	t.Parallel()
	b := &readHook{MemoryBroker: ssekit.NewMemoryBroker(10_000, 0)}
	t.Cleanup(func() { b.Close() })
	hub, err := ssekit.New(ssekit.Config{Broker: b, DetachStreams: detachAll})
	if err != nil {
		t.Fatal(err)
	}
	h := &testHub{Hub: hub, srv: ssetest.Serve(t, hub, hub.Handler(ssekit.HandlerOptions{Identify: queryIdentity}))}
	c := ssetest.DialOK(t, h.srv.URL+"?tenant=acme", "alice", "")
	last := c.Connected().ID
	c.Close()
	ssetest.Eventually(t, "alice gone", func() bool { return h.GetTotalClientCount() == 0 })

	// Enough for two pages of the tenant's channel, and nothing for the
	// user's: the user's first page is its last.
	const missed = 300
	for i := range missed {
		if _, err := h.Publish(t.Context(), ssekit.Target{Tenants: []string{"acme"}}, ssekit.Event{Type: "n", Data: i}); err != nil {
			t.Fatal(err)
		}
	}
	tenantReads := 0
	b.mu.Lock()
	b.onRead = func(channel string) {
		if channel != ssekit.TenantChannel("acme") {
			return
		}
		if tenantReads++; tenantReads == 2 { // the tenant's second page
			h.Publish(context.Background(), ssekit.Target{Users: []string{"alice"}}, ssekit.Event{Type: "user-only"})
			h.Publish(context.Background(), ssekit.Target{Users: []string{"alice"}, Tenants: []string{"acme"}}, ssekit.Event{Type: "both"})
		}
	}
	b.mu.Unlock()

	r := ssetest.DialOK(t, h.srv.URL+"?tenant=acme", "alice", last)
	if d := r.Connected(); !d.Resumed {
		t.Fatal("resumed = false")
	}
	h.SendToAll(ssekit.Event{Type: "end"})
	n, got := 0, map[string]int{}
	for ev := r.NextOf(); ev.Type != "end"; ev = r.NextOf() {
		if ev.Type == "n" {
			if seqOf(t, ev.Data) != n {
				t.Fatalf("replayed %s, want %d", ev.Data, n)
			}
			n++
			continue
		}
		got[ev.Type]++
	}
	if n != missed || got["user-only"] != 1 || got["both"] != 1 {
		t.Fatalf("replayed %d of %d, then user-only ×%d and both ×%d; want each once", n, missed, got["user-only"], got["both"])
	}
}
