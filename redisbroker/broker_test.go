package redisbroker_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	sse "github.com/ssekit/sse"
	"github.com/ssekit/sse/redisbroker"
)

// TestReplayExactAfterTrim: Redis keeps no trace of where trimming
// stopped; the recorded predecessor ids still tell "nothing after this id
// was lost" (replay) from "something was" (sse.ErrUnknownID), even for an
// id that is itself trimmed.
func TestReplayExactAfterTrim(t *testing.T) {
	rdb := sharedRedis(t)
	b := newBroker(t, rdb, redisbroker.Options{})
	ctx := t.Context()
	var ids []string
	for range 4 {
		id, err := b.Publish(ctx, sse.Message{Type: "x"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	// Exact trim to the newest two: ids[0] and ids[1] are gone.
	if err := rdb.XTrimMaxLen(ctx, b.Stream(), 2).Err(); err != nil {
		t.Fatal(err)
	}
	got := replayIDs(t, b, ids[1])
	if want := ids[2:]; !slices.Equal(got, want) {
		t.Fatalf("Replay(trimmed id whose successor is kept) = %v, want %v", got, want)
	}
	if _, err := replayErr(b, ids[0]); !errors.Is(err, sse.ErrUnknownID) {
		t.Fatalf("Replay(id followed by trimmed entries) = %v, want ErrUnknownID", err)
	}
	// An id in range that was never issued is unknown too.
	if _, err := replayErr(b, ids[2][:len(ids[2])-1]+"9"); !errors.Is(err, sse.ErrUnknownID) {
		t.Fatalf("Replay(never-issued id) = %v, want ErrUnknownID", err)
	}
	// Everything trimmed: only the head itself still replays (empty).
	if err := rdb.XTrimMaxLen(ctx, b.Stream(), 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got := replayIDs(t, b, ids[3]); len(got) != 0 {
		t.Fatalf("Replay(head of an emptied stream) = %v, want nothing", got)
	}
	if _, err := replayErr(b, ids[2]); !errors.Is(err, sse.ErrUnknownID) {
		t.Fatalf("Replay(before the head of an emptied stream) = %v, want ErrUnknownID", err)
	}
}

func replayErr(b sse.Broker, after string) ([]string, error) {
	var got []string
	err := b.Replay(context.Background(), after, func(m sse.Message) error {
		got = append(got, m.ID)
		return nil
	})
	return got, err
}

func replayIDs(t *testing.T, b sse.Broker, after string) []string {
	t.Helper()
	got, err := replayErr(b, after)
	if err != nil {
		t.Fatalf("Replay(%q): %v", after, err)
	}
	return got
}

// TestReplayPages: a replay longer than one XRANGE page is whole, and
// stops at the head it started with.
func TestReplayPages(t *testing.T) {
	rdb := sharedRedis(t)
	b := newBroker(t, rdb, redisbroker.Options{ReadCount: 7})
	start, _ := b.Head(t.Context())
	var want []string
	for range 50 {
		id, err := b.Publish(t.Context(), sse.Message{Type: "x"})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, id)
	}
	var got []string
	err := b.Replay(t.Context(), start, func(m sse.Message) error {
		got = append(got, m.ID)
		if len(got) == 10 {
			// Published during the replay: after its head, so not part of it.
			if _, err := b.Publish(t.Context(), sse.Message{Type: "late"}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("paged replay handed %d ids, want %d", len(got), len(want))
	}
}

// TestPublishRetryStoredOnce: a send that the Redis client repeats (same
// nonce) is stored and delivered once, and both calls get its id.
func TestPublishRetryStoredOnce(t *testing.T) {
	rdb := sharedRedis(t)
	b := newBroker(t, rdb, redisbroker.Options{})
	var mu sync.Mutex
	var got []string
	if err := b.Subscribe(t.Context(), func(m sse.Message) {
		mu.Lock()
		got = append(got, m.Type)
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	m := sse.Message{Type: "once"}
	id1, err := redisbroker.PublishWithNonce(t.Context(), b, m, "n1")
	if err != nil {
		t.Fatal(err)
	}
	id2, err := redisbroker.PublishWithNonce(t.Context(), b, m, "n1")
	if err != nil {
		t.Fatal(err)
	}
	if id1 != id2 {
		t.Fatalf("retried publish got id %q, first %q", id2, id1)
	}
	if _, err := b.Publish(t.Context(), sse.Message{Type: "marker"}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "marker delivered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(got, "marker")
	})
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"once", "marker"}; !slices.Equal(got, want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
	if n := rdb.XLen(t.Context(), b.Stream()).Val(); n != 2 {
		t.Fatalf("stream holds %d entries, want 2", n)
	}
}

// waitUntil polls cond for up to 15s, then fails: a bound for a broken
// implementation, never a timing assertion.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fakeNode is a PresenceSource with fixed connections.
type fakeNode struct {
	users   []string
	clients int
}

func (f fakeNode) ConnectedUserIDs() []string { return f.users }
func (f fakeNode) GetTotalClientCount() int   { return f.clients }

// TestPresence: nodes report their connections; the cluster status counts
// distinct users and every client; a node that stops cleanly drops out at
// once and one that dies drops out when its report expires.
func TestPresence(t *testing.T) {
	rdb := sharedRedis(t)
	prefix := uniquePrefix(t, rdb)
	opts := func(node string) redisbroker.Options {
		return redisbroker.Options{Prefix: prefix, Node: node, PresenceInterval: 100 * time.Millisecond, PresenceTTL: 2 * time.Second}
	}
	a, b, dead := newBroker(t, rdb, opts("a")), newBroker(t, rdb, opts("b")), newBroker(t, rdb, opts("dead"))
	if err := a.StartPresence(t.Context(), fakeNode{users: []string{"u1", "u2"}, clients: 3}); err != nil {
		t.Fatal(err)
	}
	if err := a.StartPresence(t.Context(), fakeNode{}); err == nil {
		t.Fatal("a second StartPresence on one broker succeeded")
	}
	bctx, stopB := context.WithCancel(t.Context())
	defer stopB()
	if err := b.StartPresence(bctx, fakeNode{users: []string{"u2", "u3"}, clients: 2}); err != nil {
		t.Fatal(err)
	}
	if err := redisbroker.RefreshPresenceOnce(t.Context(), dead, fakeNode{users: []string{"u9"}, clients: 1}); err != nil {
		t.Fatal(err)
	}
	var st redisbroker.ClusterStatus
	status := func() redisbroker.ClusterStatus {
		var err error
		if st, err = a.ClusterStatus(t.Context()); err != nil {
			t.Fatal(err)
		}
		return st
	}
	// Three nodes, four distinct users (u2 is on two), six clients.
	waitUntil(t, "three nodes", func() bool { return len(status().Nodes) == 3 })
	if st.Users != 4 || st.Clients != 6 {
		t.Fatalf("cluster of three: users=%d clients=%d, want 4 distinct users, 6 clients: %+v", st.Users, st.Clients, st)
	}
	// The dead node stopped refreshing: it expires.
	waitUntil(t, "the dead node to expire", func() bool { return len(status().Nodes) == 2 })
	if st.Users != 3 || st.Clients != 5 {
		t.Fatalf("after the dead node expired: users=%d clients=%d, want 3, 5", st.Users, st.Clients)
	}
	if n := rdb.ZCard(t.Context(), "{"+prefix+"}:nodes").Val(); n != 2 {
		t.Fatalf("node index holds %d nodes after a status read, want the dead one removed", n)
	}
	// b stops cleanly: its keys go at once (well before they would expire).
	stopB()
	waitUntil(t, "b to leave", func() bool { return len(status().Nodes) == 1 })
	if st.Nodes[0].Node != "a" || st.Users != 2 || st.Clients != 3 {
		t.Fatalf("after b left: %+v", st)
	}
}

// TestRedisErrorsAreReturned: with nothing listening where the client
// points, every call fails with an error that names the operation, and
// Subscribe fails rather than pretending to run.
func TestRedisErrorsAreReturned(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: closedPort(t), MaxRetries: -1, DialTimeout: time.Second})
	defer rdb.Close()
	b, err := redisbroker.New(rdb, redisbroker.Options{Prefix: "unreachable"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := t.Context()
	if _, err := b.Publish(ctx, sse.Message{Type: "x"}); err == nil {
		t.Error("Publish succeeded without Redis")
	}
	if _, err := b.Head(ctx); err == nil {
		t.Error("Head succeeded without Redis")
	}
	if err := b.Replay(ctx, "1-0", func(sse.Message) error { return nil }); err == nil || errors.Is(err, sse.ErrUnknownID) {
		t.Errorf("Replay without Redis = %v, want a Redis error", err)
	}
	if err := b.Subscribe(ctx, func(sse.Message) {}); err == nil {
		t.Error("Subscribe succeeded without Redis")
	}
	if err := b.Ping(ctx); err == nil {
		t.Error("Ping succeeded without Redis")
	}
}

// TestOptions: invalid options are errors from New.
func TestOptions(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	if _, err := redisbroker.New(nil, redisbroker.Options{}); err == nil {
		t.Error("New(nil client) succeeded")
	}
	for name, o := range map[string]redisbroker.Options{
		"braces in prefix":    {Prefix: "a{b}"},
		"negative block":      {Block: -time.Second},
		"tiny dedupe window":  {DedupeWindow: time.Microsecond},
		"TTL under interval":  {PresenceInterval: time.Second, PresenceTTL: time.Second},
		"white space in node": {Node: "a b"},
	} {
		if _, err := redisbroker.New(rdb, o); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
	b, err := redisbroker.New(rdb, redisbroker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if b.Stream() != "{ssekit}:stream" || b.Node() == "" {
		t.Errorf("defaults: stream %q node %q", b.Stream(), b.Node())
	}
}
