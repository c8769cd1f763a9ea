package ssekit

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestIdempotencyKeyStoresOnce: a repeat of a keyed publish, from the same
// hub or from another node on the same broker, at the same time or later,
// stores and sends nothing and answers the first's id; a repeat with a
// different target or event is refused; a key is forgotten after the
// window, and the table never holds more than MaxKeys.
func TestIdempotencyKeyStoresOnce(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	var clock sync.Mutex
	b := NewMemoryBrokerLimits(MemoryLimits{PerChannel: 100, KeyWindow: time.Minute, MaxKeys: 50})
	b.now = func() time.Time { clock.Lock(); defer clock.Unlock(); return now }
	defer b.Close()
	var hubs [2]*Hub
	for i := range hubs {
		h, err := New(Config{Broker: b, HeartbeatInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		hubs[i] = h
	}
	to := Target{Users: []string{"u"}}
	ev := Event{Type: "n", Data: 1}
	stored := func() int {
		t.Helper()
		ms, err := b.Read(t.Context(), UserChannel("u"), b.id(0), 1000)
		if err != nil {
			t.Fatal(err)
		}
		return len(ms)
	}

	// Two nodes at once, eight times each: one event, one id, one answer
	// that is not a replay.
	var wg sync.WaitGroup
	ids := make(chan string, 16)
	fresh := make(chan bool, 16)
	for i := range 16 {
		wg.Go(func() {
			var replayed bool
			id, err := hubs[i%2].Publish(t.Context(), to, ev, IdempotencyKey("order-42"), Replayed(&replayed))
			if err != nil {
				t.Error(err)
			}
			ids <- id
			fresh <- !replayed
		})
	}
	wg.Wait()
	close(ids)
	close(fresh)
	first := <-ids
	for id := range ids {
		if id != first {
			t.Fatalf("ids %q and %q for one key", first, id)
		}
	}
	n := 0
	for f := range fresh {
		if f {
			n++
		}
	}
	if n != 1 || stored() != 1 {
		t.Fatalf("%d answers not replayed and %d events stored, want 1 and 1", n, stored())
	}

	// The same key for something else: refused, nothing stored.
	for _, other := range []struct {
		to Target
		ev Event
	}{
		{Target{Users: []string{"v"}}, ev},
		{to, Event{Type: "n", Data: 2}},
		{to, Event{Type: "m", Data: 1}},
		{Target{Users: []string{"u"}, Clients: []string{"c"}}, ev},
	} {
		if _, err := hubs[1].Publish(t.Context(), other.to, other.ev, IdempotencyKey("order-42")); !errors.Is(err, ErrKeyConflict) {
			t.Fatalf("a different publish under the key: err = %v, want ErrKeyConflict", err)
		}
	}
	if stored() != 1 {
		t.Fatalf("%d events stored after conflicts, want 1", stored())
	}

	// Malformed keys are refused before anything happens.
	for _, key := range []string{"a b", "é", string(make([]byte, MaxKeyLen+1))} {
		if _, err := hubs[0].Publish(t.Context(), to, ev, IdempotencyKey(key)); !errors.Is(err, ErrInvalidKey) {
			t.Fatalf("key %q: err = %v, want ErrInvalidKey", key, err)
		}
	}

	// Past the window, the key is new again.
	clock.Lock()
	now = now.Add(time.Minute + time.Second)
	clock.Unlock()
	if id, err := hubs[0].Publish(t.Context(), to, ev, IdempotencyKey("order-42")); err != nil || id == first {
		t.Fatalf("after the window: id %q, err %v; want a new publish", id, err)
	}
	if stored() != 2 {
		t.Fatalf("%d events stored, want 2", stored())
	}

	// A flood of distinct keys: the table stays within MaxKeys, the
	// oldest forgotten first, the newest remembered.
	for i := range 500 {
		if _, err := hubs[i%2].Publish(t.Context(), Target{Users: []string{"flood"}}, ev, IdempotencyKey(fmt.Sprint("k", i))); err != nil {
			t.Fatal(err)
		}
		if k := b.Keys(); k > 50 {
			t.Fatalf("%d keys remembered, MaxKeys 50", k)
		}
	}
	var replayed bool
	if _, err := hubs[0].Publish(t.Context(), Target{Users: []string{"flood"}}, ev, IdempotencyKey("k499"), Replayed(&replayed)); err != nil || !replayed {
		t.Fatalf("the newest key: replayed %v, err %v; want a replay", replayed, err)
	}
	if _, err := hubs[0].Publish(t.Context(), Target{Users: []string{"flood"}}, ev, IdempotencyKey("k0"), Replayed(&replayed)); err != nil || replayed {
		t.Fatalf("the oldest key, forgotten: replayed %v, err %v; want a new publish", replayed, err)
	}
}
