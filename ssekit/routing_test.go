package ssekit_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/ssekit/sse/internal/ssetest"
	"github.com/ssekit/sse/ssekit"
)

func TestSendToUserReachesEveryConnectionOfThatUserOnly(t *testing.T) {
	t.Parallel()
	h := newTestHub(t, ssekit.Config{})
	alice, bob := uuid.New(), uuid.New()
	a1, a2 := h.dial(t, alice.String(), ""), h.dial(t, alice.String(), "")
	b1 := h.dial(t, bob.String(), "")
	anon := h.dial(t, "", "")
	for _, c := range []*conn{a1, a2, b1, anon} {
		c.Connected()
	}

	if err := h.SendToUser(alice, ssekit.Event{Type: "notification", Data: map[string]any{"title": "for alice"}}); err != nil {
		t.Fatal(err)
	}
	if err := h.SendToAll(ssekit.Event{Type: "announcement", Data: "all"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*conn{a1, a2} {
		if got := c.NextOf(); got.Type != "notification" || string(got.Data) != `{"title":"for alice"}` {
			t.Fatalf("alice got %q %s, want notification", got.Type, got.Data)
		}
	}
	// The broadcast is published after alice's event: when bob and the
	// anonymous client see it first, they never got hers.
	for _, c := range []*conn{a1, a2, b1, anon} {
		if got := c.NextOf(); got.Type != "announcement" {
			t.Fatalf("got %q, want announcement", got.Type)
		}
	}
}

func TestSendToUsersAndClient(t *testing.T) {
	t.Parallel()
	h := newTestHub(t, ssekit.Config{})
	u1, u2, u3 := uuid.New(), uuid.New(), uuid.New()
	c1, c2, c3 := h.dial(t, u1.String(), ""), h.dial(t, u2.String(), ""), h.dial(t, u3.String(), "")
	c1.Connected()
	c2.Connected()
	id3 := c3.Connected().ClientID

	// u1 listed twice still gets one copy.
	if err := h.SendToUsers([]uuid.UUID{u1, u2, u1}, ssekit.Event{Type: "update", Data: 1}); err != nil {
		t.Fatal(err)
	}
	if err := h.SendToClient(id3, ssekit.Event{Type: "direct", Data: 2}); err != nil {
		t.Fatal(err)
	}
	if err := h.SendToUsers(nil, ssekit.Event{Type: "nobody", Data: 0}); err != nil {
		t.Fatal(err)
	}
	h.SendToAll(ssekit.Event{Type: "end", Data: 3})
	for _, c := range []*conn{c1, c2} {
		if got := c.NextOf().Type; got != "update" {
			t.Fatalf("got %q, want update", got)
		}
		if got := c.NextOf().Type; got != "end" {
			t.Fatalf("got %q, want end (one copy of update only)", got)
		}
	}
	if got := c3.NextOf().Type; got != "direct" {
		t.Fatalf("client got %q, want direct", got)
	}
	if got := c3.NextOf().Type; got != "end" {
		t.Fatalf("client got %q, want end", got)
	}
	if err := h.SendToClient("", ssekit.Event{Type: "x"}); !errors.Is(err, ssekit.ErrInvalidTarget) {
		t.Fatalf("SendToClient(\"\"): %v, want ErrInvalidTarget", err)
	}
}

func TestPublishToUsersAndClientsDeliversOncePerConnection(t *testing.T) {
	t.Parallel()
	h := newTestHub(t, ssekit.Config{})
	c := h.dial(t, "u1", "")
	id := c.Connected().ClientID
	if _, err := h.Publish(t.Context(), ssekit.Target{Users: []string{"u1"}, Clients: []string{id}}, ssekit.Event{Type: "both"}); err != nil {
		t.Fatal(err)
	}
	h.SendToAll(ssekit.Event{Type: "end"})
	if got := c.NextOf().Type; got != "both" {
		t.Fatalf("got %q, want both", got)
	}
	if got := c.NextOf().Type; got != "end" {
		t.Fatalf("got %q, want end: the event addressed twice came twice", got)
	}
}

// An addressee list that is present but empty, or no addressee at all, is
// refused: only Target.All reaches everyone.
func TestTargetNeverBecomesEveryoneByAccident(t *testing.T) {
	t.Parallel()
	h := newTestHub(t, ssekit.Config{})
	c := h.dial(t, "u1", "")
	c.Connected()
	anon := h.dial(t, "", "")
	anon.Connected()
	for name, to := range map[string]ssekit.Target{
		"zero Target":             {},
		"empty Users":             {Users: []string{}},
		"empty Clients":           {Clients: []string{}},
		"both empty":              {Users: []string{}, Clients: []string{}},
		"empty Users with client": {Users: []string{}, Clients: []string{"c"}},
		"All with Users":          {All: true, Users: []string{"u1"}},
		"All with empty Clients":  {All: true, Clients: []string{}},
	} {
		if _, err := h.Publish(t.Context(), to, ssekit.Event{Type: "leak", Data: name}); !errors.Is(err, ssekit.ErrInvalidTarget) {
			t.Errorf("%s: err %v, want ErrInvalidTarget", name, err)
		}
	}
	if got := h.Stats().Published; got != 0 {
		t.Fatalf("Published = %d after refused sends", got)
	}
	if _, err := h.Publish(t.Context(), ssekit.Target{All: true}, ssekit.Event{Type: "end"}); err != nil {
		t.Fatal(err)
	}
	for _, conn := range []*conn{c, anon} {
		if got := conn.NextOf().Type; got != "end" {
			t.Fatalf("got %q before the explicit broadcast: a refused send was delivered", got)
		}
	}
}

func TestMaxRecipientsBoundsOneSend(t *testing.T) {
	t.Parallel()
	h := newTestHub(t, ssekit.Config{MaxRecipients: 3})
	c := h.dial(t, "u1", "")
	c.Connected()
	if _, err := h.Publish(t.Context(), ssekit.Target{Users: []string{"u1", "u2", "u3"}, Clients: []string{"x"}}, ssekit.Event{Type: "four"}); !errors.Is(err, ssekit.ErrTooManyRecipients) {
		t.Fatalf("4 addressees with MaxRecipients 3: err %v, want ErrTooManyRecipients", err)
	}
	if _, err := h.Publish(t.Context(), ssekit.Target{Users: []string{"u1", "u2", "u3"}}, ssekit.Event{Type: "three"}); err != nil {
		t.Fatalf("3 addressees: %v", err)
	}
	if got := c.NextOf().Type; got != "three" {
		t.Fatalf("got %q, want three (the refused send must not arrive)", got)
	}
	unlimited := newTestHub(t, ssekit.Config{MaxRecipients: -1})
	many := make([]string, 5000)
	for i := range many {
		many[i] = fmt.Sprint("u", i)
	}
	if _, err := unlimited.Publish(t.Context(), ssekit.Target{Users: many}, ssekit.Event{Type: "many"}); err != nil {
		t.Fatalf("5000 addressees with no limit: %v", err)
	}
}

// An event addressed to a user and to another user's connection reaches
// both: the connection by its id, though the event is in none of its
// channels (and moves none of its positions).
func TestPublishToAUserAndAnotherUsersConnection(t *testing.T) {
	t.Parallel()
	h := newTestHub(t, ssekit.Config{})
	alice, bob := h.dial(t, "alice", ""), h.dial(t, "bob", "")
	alice.Connected()
	bobID := bob.Connected().ClientID
	if _, err := h.Publish(t.Context(), ssekit.Target{Users: []string{"alice"}, Clients: []string{bobID}}, ssekit.Event{Type: "both"}); err != nil {
		t.Fatal(err)
	}
	h.SendToAll(ssekit.Event{Type: "end"})
	for who, c := range map[string]*conn{"alice": alice, "bob": bob} {
		if got := c.NextOf().Type; got != "both" {
			t.Fatalf("%s got %q, want both", who, got)
		}
		if got := c.NextOf().Type; got != "end" {
			t.Fatalf("%s got %q, want end", who, got)
		}
	}
}

func TestAnonymousGetsOnlyBroadcasts(t *testing.T) {
	t.Parallel()
	h := newTestHub(t, ssekit.Config{})
	anon := h.dial(t, "", "")
	anon.Connected()
	if got := h.GetTotalClientCount(); got != 1 {
		t.Fatalf("GetTotalClientCount = %d, want 1", got)
	}
	if got := len(h.GetConnectedUsers()); got != 0 {
		t.Fatalf("anonymous counted as %d users", got)
	}
	if _, err := h.Publish(t.Context(), ssekit.Target{Users: []string{""}}, ssekit.Event{Type: "empty-user"}); !errors.Is(err, ssekit.ErrInvalidTarget) {
		t.Fatalf("publish to user \"\": %v, want ErrInvalidTarget", err)
	}
	h.SendToUser(uuid.New(), ssekit.Event{Type: "someone"})
	h.SendToAll(ssekit.Event{Type: "all"})
	if got := anon.NextOf().Type; got != "all" {
		t.Fatalf("anonymous got %q, want only the broadcast", got)
	}
}

func TestCountsExactUnderConcurrentConnectsAndDisconnects(t *testing.T) {
	t.Parallel()
	h := newTestHub(t, ssekit.Config{MaxClients: -1, MaxClientsPerUser: -1})
	const users, perUser = 20, 3
	ids := make([]uuid.UUID, users)
	for i := range ids {
		ids[i] = uuid.New()
	}
	var mu sync.Mutex
	var kept []*conn
	var wg sync.WaitGroup
	for i := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range perUser * 2 {
				c := h.dial(t, ids[i].String(), "")
				c.Connected()
				if j%2 == 0 {
					mu.Lock()
					kept = append(kept, c)
					mu.Unlock()
				} else {
					c.Close() // a disconnect racing with the others' connects
				}
			}
		}()
	}
	wg.Wait()
	ssetest.Eventually(t, "counts settle", func() bool { return h.GetTotalClientCount() == users*perUser })
	if got := len(h.GetConnectedUsers()); got != users {
		t.Fatalf("GetConnectedUsers: %d, want %d", got, users)
	}
	for _, u := range ids {
		if got := h.GetUserClientCount(u); got != perUser {
			t.Fatalf("GetUserClientCount(%v) = %d, want %d", u, got, perUser)
		}
	}
	got := h.GetConnectedUsers()
	slices.SortFunc(got, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
	want := slices.Clone(ids)
	slices.SortFunc(want, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
	if !slices.Equal(got, want) {
		t.Fatalf("GetConnectedUsers = %v, want %v", got, want)
	}
	for _, c := range kept {
		c.Close()
	}
	// A disconnect is unregistered at once: no send is needed to notice it.
	ssetest.Eventually(t, "all unregistered", func() bool { return h.GetTotalClientCount() == 0 })
	if got := len(h.GetConnectedUsers()); got != 0 {
		t.Fatalf("GetConnectedUsers after disconnects: %d", got)
	}
}

func TestManyClientsManyEventsInOrder(t *testing.T) {
	t.Parallel()
	h := newTestHub(t, ssekit.Config{BufferSize: 256, MaxClientsPerUser: -1})
	const clients, events = 16, 128
	cs := make([]*conn, clients)
	for i := range cs {
		cs[i] = h.dial(t, fmt.Sprint("u", i%4), "")
		cs[i].Connected()
	}
	var wg sync.WaitGroup
	for p := range 4 { // four publishers, each to one user
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range events {
				if _, err := h.Publish(t.Context(), ssekit.Target{Users: []string{fmt.Sprint("u", p)}}, ssekit.Event{Type: "n", Data: i}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for i, c := range cs {
		last := ""
		for want := range events {
			ev := c.NextOf()
			if string(ev.Data) != fmt.Sprint(want) {
				t.Fatalf("client %d: data %s, want %d", i, ev.Data, want)
			}
			if last != "" && !ssetest.Moved(last, ev.ID) {
				t.Fatalf("client %d: id %s after %s", i, ev.ID, last)
			}
			last = ev.ID
		}
	}
}
