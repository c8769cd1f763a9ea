package redisbroker_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ssekit/sse/internal/ssetest"
	"github.com/ssekit/sse/redisbroker"
	"github.com/ssekit/sse/ssekit"
)

// readPositions returns the positions Read gives after after in channel.
func readPositions(b ssekit.Broker, channel, after string) ([]string, error) {
	got, err := b.Read(context.Background(), channel, after, 1000)
	var out []string
	for _, m := range got {
		out = append(out, m.Positions[0])
	}
	return out, err
}

// publishTo publishes n events to channel and returns their positions.
func publishTo(t *testing.T, b ssekit.Broker, channel string, n int) []string {
	t.Helper()
	start, err := b.Head(t.Context(), channel)
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		if _, err := b.Publish(t.Context(), ssekit.Message{Channels: []string{channel}, Type: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	pos, err := readPositions(b, channel, start)
	if err != nil || len(pos) != n {
		t.Fatalf("read back %d positions, %v; want %d", len(pos), err, n)
	}
	return pos
}

// TestReadExactAfterTrim: Redis keeps no trace of where trimming stopped;
// the recorded predecessors still tell "nothing after this position was
// lost" (a read) from "something was" (ssekit.ErrUnknownID), even for a
// position that is itself trimmed.
func TestReadExactAfterTrim(t *testing.T) {
	rdb := sharedRedis(t)
	b := newBroker(t, rdb, redisbroker.Options{})
	ctx := t.Context()
	const ch = "user:alice"
	ids := publishTo(t, b, ch, 4)
	// Exact trim to the newest two: ids[0] and ids[1] are gone.
	if err := rdb.XTrimMaxLen(ctx, b.StreamKey(ch), 2).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := readPositions(b, ch, ids[1]); err != nil || !slices.Equal(got, ids[2:]) {
		t.Fatalf("Read(trimmed position whose successor is kept) = %v, %v; want %v", got, err, ids[2:])
	}
	if _, err := readPositions(b, ch, ids[0]); !errors.Is(err, ssekit.ErrUnknownID) {
		t.Fatalf("Read(position followed by trimmed entries) = %v, want ErrUnknownID", err)
	}
	// A position in range that was never issued is unknown too.
	if _, err := readPositions(b, ch, ids[2][:len(ids[2])-1]+"9"); !errors.Is(err, ssekit.ErrUnknownID) {
		t.Fatalf("Read(never-issued position) = %v, want ErrUnknownID", err)
	}
	// Everything trimmed: only the head itself still reads (empty).
	if err := rdb.XTrimMaxLen(ctx, b.StreamKey(ch), 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := readPositions(b, ch, ids[3]); err != nil || len(got) != 0 {
		t.Fatalf("Read(head of an emptied stream) = %v, %v; want nothing", got, err)
	}
	if _, err := readPositions(b, ch, ids[2]); !errors.Is(err, ssekit.ErrUnknownID) {
		t.Fatalf("Read(before the head of an emptied stream) = %v, want ErrUnknownID", err)
	}
}

// TestQuietChannelOutlivesItsStream: a channel's stream expires MaxAge
// after its last event, but its position is remembered: a client that saw
// the last event resumes without a resync, and the next event goes on
// from there.
func TestQuietChannelOutlivesItsStream(t *testing.T) {
	rdb := sharedRedis(t)
	b := newBroker(t, rdb, redisbroker.Options{MaxAge: 200 * time.Millisecond, PositionTTL: time.Hour})
	const ch = "user:quiet"
	ids := publishTo(t, b, ch, 2)
	ssetest.Eventually(t, "the stream to expire", func() bool { return rdb.Exists(t.Context(), b.StreamKey(ch)).Val() == 0 })
	if got, err := readPositions(b, ch, ids[1]); err != nil || len(got) != 0 {
		t.Fatalf("Read(last position) after the stream expired = %v, %v; want nothing, no error", got, err)
	}
	if _, err := readPositions(b, ch, ids[0]); !errors.Is(err, ssekit.ErrUnknownID) {
		t.Fatalf("Read(an expired event's position) = %v, want ErrUnknownID", err)
	}
	next := publishTo(t, b, ch, 1) // read back from the head, which is ids[1]
	if got, err := readPositions(b, ch, ids[1]); err != nil || !slices.Equal(got, next) {
		t.Fatalf("Read(last position) after a new event = %v, %v; want %v", got, err, next)
	}
	if ssekit.CompareIDs(next[0], ids[1]) <= 0 {
		t.Fatalf("the new stream's first position %s is not after the old last %s", next[0], ids[1])
	}
}

// TestPublishRetryStoredOnce: a send that the Redis client repeats (same
// publish id) is stored and delivered once in each channel.
func TestPublishRetryStoredOnce(t *testing.T) {
	rdb := sharedRedis(t)
	b := newBroker(t, rdb, redisbroker.Options{})
	var mu sync.Mutex
	var got []string
	sub, err := b.Subscribe(t.Context(), func(m ssekit.Message) {
		mu.Lock()
		got = append(got, m.Type+"@"+m.Channels[0])
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Follow(t.Context(), "a", "b"); err != nil {
		t.Fatal(err)
	}
	m := ssekit.Message{Channels: []string{"a", "b"}, Type: "once"}
	for range 2 {
		if err := redisbroker.PublishWithID(t.Context(), b, m, "1-1"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Publish(t.Context(), ssekit.Message{Channels: []string{"a"}, Type: "marker"}); err != nil {
		t.Fatal(err)
	}
	ssetest.Eventually(t, "marker delivered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(got, "marker@a")
	})
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(got)
	if want := []string{"marker@a", "once@a", "once@b"}; !slices.Equal(got, want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
	if n := rdb.XLen(t.Context(), b.StreamKey("a")).Val(); n != 2 {
		t.Fatalf("channel a holds %d entries, want 2", n)
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
	ssetest.Eventually(t, "three nodes", func() bool { return len(status().Nodes) == 3 })
	if st.Users != 4 || st.Clients != 6 {
		t.Fatalf("cluster of three: users=%d clients=%d, want 4 distinct users, 6 clients: %+v", st.Users, st.Clients, st)
	}
	// The dead node stopped refreshing: it expires.
	ssetest.Eventually(t, "the dead node to expire", func() bool { return len(status().Nodes) == 2 })
	if st.Users != 3 || st.Clients != 5 {
		t.Fatalf("after the dead node expired: users=%d clients=%d, want 3, 5", st.Users, st.Clients)
	}
	if n := rdb.ZCard(t.Context(), "{"+prefix+"}:nodes").Val(); n != 2 {
		t.Fatalf("node index holds %d nodes after a status read, want the dead one removed", n)
	}
	// b stops cleanly: its keys go at once (well before they would expire).
	stopB()
	ssetest.Eventually(t, "b to leave", func() bool { return len(status().Nodes) == 1 })
	if st.Nodes[0].Node != "a" || st.Users != 2 || st.Clients != 3 {
		t.Fatalf("after b left: %+v", st)
	}
}

// TestRedisErrorsAreReturned: with nothing listening where the client
// points, every call fails with an error that names the operation, and
// Follow fails (at its ctx) rather than pretending to run.
func TestRedisErrorsAreReturned(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: closedPort(t), MaxRetries: -1, DialTimeout: time.Second})
	defer rdb.Close()
	b, err := redisbroker.New(rdb, redisbroker.Options{Prefix: "unreachable"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := t.Context()
	if _, err := b.Publish(ctx, ssekit.Message{Type: "x"}); err == nil {
		t.Error("Publish succeeded without Redis")
	}
	if _, err := b.Publish(ctx, ssekit.Message{Channels: []string{"a", "b"}, Type: "x"}); err == nil {
		t.Error("Publish to two channels succeeded without Redis")
	}
	if _, err := b.Head(ctx, "x"); err == nil {
		t.Error("Head succeeded without Redis")
	}
	if _, err := b.Read(ctx, "x", "1-0", 10); err == nil || errors.Is(err, ssekit.ErrUnknownID) {
		t.Errorf("Read without Redis = %v, want a Redis error", err)
	}
	if err := b.SaveCursor(ctx, "k", "v"); err == nil {
		t.Error("SaveCursor succeeded without Redis")
	}
	sub, err := b.Subscribe(ctx, func(ssekit.Message) {})
	if err != nil {
		t.Fatal(err)
	}
	fctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if err := sub.Follow(fctx, "x"); err == nil {
		t.Error("Follow succeeded without Redis")
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
		"negative linger":     {Linger: -time.Second},
		"positions too short": {MaxAge: time.Hour, PositionTTL: time.Minute},
		"tiny dedupe window":  {DedupeWindow: time.Microsecond},
		"negative key window": {KeyWindow: -time.Minute},
		"key window over 24h": {KeyWindow: ssekit.MaxKeyWindow + time.Second},
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
	if got := b.StreamKey("user:u1"); got != "{ssekit:user:u1}" || b.Node() == "" {
		t.Errorf("defaults: stream %q node %q", got, b.Node())
	}
}
