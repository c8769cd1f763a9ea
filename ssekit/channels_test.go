package ssekit_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/ssekit/sse/internal/ssetest"
	"github.com/ssekit/sse/sseclient"
	"github.com/ssekit/sse/ssekit"
)

// sendTo publishes ev to every connection of user.
func sendTo(t *testing.T, h *testHub, user string, ev ssekit.Event) {
	t.Helper()
	if _, err := h.Publish(t.Context(), ssekit.Target{Users: []string{user}}, ev); err != nil {
		t.Fatal(err)
	}
}

// resyncChannels returns the channels a resync event names.
func resyncChannels(t *testing.T, ev sseclient.Event) []string {
	t.Helper()
	var d struct{ Channels []string }
	if err := json.Unmarshal(ev.Data, &d); err != nil {
		t.Fatalf("resync data %s: %v", ev.Data, err)
	}
	return d.Channels
}

// missOne opens a stream of user, takes the position it starts at, hangs
// up, and sends user one event ("mine"), which the stream missed: a
// resume from the position returned must get it.
func missOne(t *testing.T, h *testHub, user string) (last string) {
	t.Helper()
	c := h.dial(t, user, "")
	last = c.Connected().ID
	c.Close()
	ssetest.Eventually(t, user+" gone", func() bool { return h.UserClientCount(user) == 0 })
	sendTo(t, h, user, ssekit.Event{Type: "mine", Data: 1})
	return last
}

// With the defaults, a user who misses one event while many more go to
// other users resumes with exactly that event: each user's channel keeps
// its own history, which other users' events never trim.
func TestResumeWindowIsPerUser(t *testing.T) {
	t.Parallel()
	h := newTestHub(t, ssekit.Config{})
	last := missOne(t, h, "alice")
	const others, events = 2000, 20_000 // 20× the per-channel history
	for i := range events {
		if _, err := h.Publish(t.Context(), ssekit.Target{Users: []string{fmt.Sprint("user", i%others)}}, ssekit.Event{Type: "other", Data: i}); err != nil {
			t.Fatal(err)
		}
	}
	r := h.dial(t, "alice", last)
	if d := r.Connected(); !d.Resumed {
		t.Fatal("connected.resumed = false")
	}
	if ev := r.NextOf(); ev.Type != "mine" {
		t.Fatalf("got %q (%s), want alice's one event", ev.Type, ev.Data)
	}
	h.SendToAll(ssekit.Event{Type: "end"})
	if ev := r.NextOf(); ev.Type != "end" {
		t.Fatalf("got %q after alice's event, want end: a second event or a resync came", ev.Type)
	}
	if got := h.Stats().Resyncs; got != 0 {
		t.Fatalf("Resyncs = %d, want 0", got)
	}
}

// A channel whose history is gone is announced by name, and the stream's
// other channels replay as usual after the resync.
func TestResyncNamesTheLostChannelAndTheOthersReplay(t *testing.T) {
	t.Parallel()
	h := newTestHub(t, ssekit.Config{HistorySize: 10})
	last := missOne(t, h, "alice")
	for i := range 15 { // more than the broadcast channel keeps
		h.SendToAll(ssekit.Event{Type: "news", Data: i})
	}
	r := h.dial(t, "alice", last)
	if d := r.Connected(); !d.Resumed {
		t.Fatal("connected.resumed = false, but alice's own channel resumes")
	}
	ev := r.NextOf()
	if ev.Type != ssekit.TypeResync || !slices.Equal(resyncChannels(t, ev), []string{"all"}) {
		t.Fatalf("got %q %s, want a resync of the broadcast channel only", ev.Type, ev.Data)
	}
	if ev := r.NextOf(); ev.Type != "mine" {
		t.Fatalf("after the resync got %q, want alice's own event replayed", ev.Type)
	}
	h.SendToAll(ssekit.Event{Type: "end"})
	if ev := r.NextOf(); ev.Type != "end" {
		t.Fatalf("got %q, want end: the lost broadcasts must not be replayed", ev.Type)
	}
}

// The in-memory history stays within HistoryBytes, counting what a
// publish to many users keeps; an event evicted for room is a loss like
// any other, announced with a resync.
func TestHistoryBytesBoundsTheHistoryAndEvictionIsAnnounced(t *testing.T) {
	t.Parallel()
	const bound = 1 << 20
	h := newTestHub(t, ssekit.Config{HistoryBytes: bound})
	mb := h.Broker().(*ssekit.MemoryBroker) // the hub's own, sized by Config
	last := missOne(t, h, "alice")
	// 300 publishes to 1000 users each: the addressee lists and a
	// position per channel are counted, not only the data.
	users := make([]string, 1000)
	for i := range users {
		users[i] = fmt.Sprintf("00000000-0000-0000-0000-%012d", i)
	}
	for i := range 300 {
		if _, err := h.Publish(t.Context(), ssekit.Target{Users: users}, ssekit.Event{Type: "fan", Data: i}); err != nil {
			t.Fatal(err)
		}
		if got := mb.Bytes(); got > bound {
			t.Fatalf("after publish %d the history holds %d bytes, over HistoryBytes %d", i, got, bound)
		}
	}
	r := h.dial(t, "alice", last)
	if d := r.Connected(); !d.Resumed {
		t.Fatal("connected.resumed = false, but the broadcast channel resumes")
	}
	ev := r.NextOf()
	if ev.Type != ssekit.TypeResync || !slices.Equal(resyncChannels(t, ev), []string{"user"}) {
		t.Fatalf("got %q %s, want a resync of alice's evicted channel", ev.Type, ev.Data)
	}
}

// An id from before channels (a bare broker position) gets one resync of
// every channel, and the stream goes on from there.
func TestEarlierFormatIDGetsOneResync(t *testing.T) {
	t.Parallel()
	h := newTestHub(t, ssekit.Config{})
	old, err := h.Publish(t.Context(), ssekit.Target{All: true}, ssekit.Event{Type: "n", Data: 1})
	if err != nil {
		t.Fatal(err)
	}
	c := h.dial(t, "alice", old)
	if d := c.Connected(); d.Resumed {
		t.Fatal("resumed from an earlier version's id")
	}
	ev := c.NextOf()
	if ev.Type != ssekit.TypeResync || !slices.Equal(resyncChannels(t, ev), []string{"all", "user"}) {
		t.Fatalf("got %q %s, want one resync of every channel", ev.Type, ev.Data)
	}
	if _, _, ok := ssetest.Positions(ev.ID); !ok {
		t.Fatalf("resync id %q, want a position of this version", ev.ID)
	}
	sendTo(t, h, "alice", ssekit.Event{Type: "next"})
	if ev := c.NextOf(); ev.Type != "next" {
		t.Fatalf("got %q, want the next event and no second resync", ev.Type)
	}
	// Resuming from the resync's id needs none.
	r := h.dial(t, "alice", ev.ID)
	if d := r.Connected(); !d.Resumed {
		t.Fatal("the new id does not resume")
	}
}
