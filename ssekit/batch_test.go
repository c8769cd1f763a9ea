package ssekit_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/ssekit/sse/internal/ssetest"
	"github.com/ssekit/sse/ssekit"
)

func TestPublishBatchAnswersEachPublication(t *testing.T) {
	t.Parallel()
	h := newTestHub(t, ssekit.Config{})
	alice, bob := h.dial(t, "alice", ""), h.dial(t, "bob", "")
	alice.Connected()
	bob.Connected()

	results, err := h.PublishBatch(t.Context(), []ssekit.Publication{
		{To: ssekit.Target{Users: []string{"alice"}}, Event: ssekit.Event{Type: "for_alice"}, Key: "k-1"},
		{To: ssekit.Target{Users: []string{}}, Event: ssekit.Event{Type: "for_nobody"}},
		{To: ssekit.Target{Users: []string{"bob"}}, Event: ssekit.Event{Type: "for_bob"}},
		{To: ssekit.Target{Users: []string{"bob"}}, Event: ssekit.Event{Type: "bad", Data: make(chan int)}},
		{To: ssekit.Target{Users: []string{"alice"}}, Event: ssekit.Event{Type: "for_alice"}, Key: "k-1"},
		{To: ssekit.Target{Users: []string{"bob"}}, Event: ssekit.Event{Type: "end"}},
		{To: ssekit.Target{Users: []string{"alice"}}, Event: ssekit.Event{Type: "end"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 7 {
		t.Fatalf("%d results for 7 publications", len(results))
	}
	for i, want := range []error{nil, ssekit.ErrInvalidTarget, nil, ssekit.ErrInvalidEvent, nil, nil, nil} {
		if r := results[i]; !errors.Is(r.Err, want) || (want == nil) != (r.ID != "") {
			t.Errorf("result %d = %+v, want error %v and an id only without one", i, r, want)
		}
	}
	if r := results[4]; !r.Replayed || r.ID != results[0].ID {
		t.Errorf("the key's repeat = %+v, want a replay of %q", r, results[0].ID)
	}
	if results[0].Replayed {
		t.Error("the key's first use reported as a replay")
	}
	// Each gets its own, once, in order: the failed and replayed ones
	// sent nothing.
	ssetest.ExpectNext(t, map[string]*ssetest.Conn{"alice": alice}, "for_alice", "end")
	ssetest.ExpectNext(t, map[string]*ssetest.Conn{"bob": bob}, "for_bob", "end")
}

func TestPublishBatchTooLargeSendsNothing(t *testing.T) {
	t.Parallel()
	h := newTestHub(t, ssekit.Config{})
	pubs := make([]ssekit.Publication, ssekit.MaxBatch+1)
	for i := range pubs {
		pubs[i] = ssekit.Publication{To: ssekit.Target{All: true}, Event: ssekit.Event{Type: "n", Data: i}}
	}
	if _, err := h.PublishBatch(t.Context(), pubs); !errors.Is(err, ssekit.ErrBatchTooLarge) {
		t.Fatalf("PublishBatch of %d = %v, want ErrBatchTooLarge", len(pubs), err)
	}
	if n := h.Stats().Published; n != 0 {
		t.Fatalf("%d published, want none", n)
	}
	results, err := h.PublishBatch(t.Context(), pubs[:ssekit.MaxBatch])
	if err != nil || len(results) != ssekit.MaxBatch {
		t.Fatalf("PublishBatch of MaxBatch = %d results, %v", len(results), err)
	}
}

func TestPublishBatchStopsWithItsContext(t *testing.T) {
	t.Parallel()
	h := newTestHub(t, ssekit.Config{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	results, err := h.PublishBatch(ctx, []ssekit.Publication{{To: ssekit.Target{All: true}, Event: ssekit.Event{Type: "n"}}})
	if err != nil || !errors.Is(results[0].Err, context.Canceled) {
		t.Fatalf("PublishBatch with a done context = %+v, %v; want the publication failed with its error", results, err)
	}
	if n := h.Stats().Published; n != 0 {
		t.Fatalf("%d published, want none", n)
	}
}

// A backend with different news for different users sends them in one
// call, and learns what became of each.
func ExampleHub_PublishBatch() {
	hub := ssekit.NewHub(ssekit.DefaultConfig())
	defer hub.Close()
	results, err := hub.PublishBatch(context.Background(), []ssekit.Publication{
		{To: ssekit.Target{Users: []string{"alice"}}, Event: ssekit.BadgeUpdateEvent(3)},
		{To: ssekit.Target{Users: []string{"bob"}}, Event: ssekit.NewItemEvent("invoice", "in_42", nil)},
		{To: ssekit.Target{Users: nil}, Event: ssekit.BadgeUpdateEvent(1)}, // nobody: refused alone
	})
	if err != nil {
		panic(err)
	}
	for i, r := range results {
		fmt.Println(i, r.ID != "", r.Err)
	}
	// Output:
	// 0 true <nil>
	// 1 true <nil>
	// 2 false sse: invalid target: no addressee (set All to send to everyone)
}
