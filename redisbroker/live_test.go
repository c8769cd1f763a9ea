package redisbroker_test

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ssekit/sse/internal/ssetest"
	"github.com/ssekit/sse/redisbroker"
	"github.com/ssekit/sse/ssekit"
)

// TestLingerAfterTheLastUnfollow: a channel nobody follows stays
// subscribed for Linger (a client coming straight back costs no new
// SSUBSCRIBE), then is let go, and following it again subscribes anew.
func TestLingerAfterTheLastUnfollow(t *testing.T) {
	rdb := sharedRedis(t)
	b := newBroker(t, rdb, redisbroker.Options{Linger: 300 * time.Millisecond})
	sub, err := b.Subscribe(t.Context(), func(ssekit.Message) {})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Follow(t.Context(), "user:a"); err != nil {
		t.Fatal(err)
	}
	subscribed := b.Ops().Subscribes
	sub.Unfollow("user:a")
	if err := sub.Follow(t.Context(), "user:a"); err != nil { // straight back
		t.Fatal(err)
	}
	if got := b.Ops().Subscribes; got != subscribed {
		t.Fatalf("following a lingering channel sent %d SSUBSCRIBEs, want none", got-subscribed)
	}
	sub.Unfollow("user:a")
	ssetest.Eventually(t, "the channel to be let go after Linger", func() bool {
		return !slices.Contains(redisbroker.Followed(sub), "user:a")
	})
	if err := sub.Follow(t.Context(), "user:a"); err != nil {
		t.Fatal(err)
	}
	if got := b.Ops().Subscribes; got != subscribed+1 {
		t.Fatalf("following a channel let go sent %d SSUBSCRIBEs, want 1", got-subscribed)
	}
}

// TestSilentResubscribeReadsWhatWasMissed: when go-redis re-dials a
// Pub/Sub connection it subscribes again by itself, and what was published
// meanwhile never comes live. The subscription sees its channel confirmed
// a second time and reads the stream from the last event it delivered, so
// the event is delivered, once, without waiting for a later one.
func TestSilentResubscribeReadsWhatWasMissed(t *testing.T) {
	rdb := sharedRedis(t)
	b := newBroker(t, rdb, redisbroker.Options{})
	var mu sync.Mutex
	var got []string
	sub, err := b.Subscribe(t.Context(), func(m ssekit.Message) {
		mu.Lock()
		got = append(got, m.Type)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Follow(t.Context(), "user:a"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Publish(t.Context(), ssekit.Message{Channels: []string{"user:a"}, Type: "first"}); err != nil {
		t.Fatal(err)
	}
	// Published while "the connection was down": in the stream, never
	// announced to this subscription.
	if _, err := redisbroker.PublishUnannounced(t.Context(), b, "user:a", "missed"); err != nil {
		t.Fatal(err)
	}
	if err := redisbroker.Resubscribe(t.Context(), sub, "user:a"); err != nil {
		t.Fatal(err)
	}
	ssetest.Eventually(t, "the missed event", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(got, "missed")
	})
	if _, err := b.Publish(t.Context(), ssekit.Message{Channels: []string{"user:a"}, Type: "last"}); err != nil {
		t.Fatal(err)
	}
	ssetest.Eventually(t, "the last event", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(got, "last")
	})
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"first", "missed", "last"}; !slices.Equal(got, want) {
		t.Fatalf("delivered %v, want %v: each once, in order", got, want)
	}
}
