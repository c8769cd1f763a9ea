package redisbroker_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ssekit/sse/redisbroker"
	"github.com/ssekit/sse/ssekit"
)

// TestPurgeLeavesNoKey publishes to channels of every kind (each in its
// own slot), with an idempotency key and positions, then purges: no key
// of the prefix is left on any node, and another prefix's keys stay.
func TestPurgeLeavesNoKey(t *testing.T) {
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			rdb := be.client(t)
			prefix, otherPrefix := uniquePrefix(t, rdb), uniquePrefix(t, rdb)
			b := newBroker(t, rdb, redisbroker.Options{Prefix: prefix})
			other := newBroker(t, rdb, redisbroker.Options{Prefix: otherPrefix})
			ctx := t.Context()
			m := ssekit.Message{Channels: []string{ssekit.BroadcastChannel}, Type: "n", Data: []byte("1")}
			for _, mb := range []*redisbroker.Broker{b, other} {
				if _, err := mb.Publish(ctx, m); err != nil {
					t.Fatal(err)
				}
			}
			many := ssekit.Message{Channels: []string{ssekit.TopicChannel("t"), ssekit.UserChannel("a"), ssekit.UserChannel("b")}, Key: "k", Type: "n", Data: []byte("2")}
			if _, err := b.Publish(ctx, many); err != nil {
				t.Fatal(err)
			}
			if n := countKeys(t, rdb, prefix); n < 4 {
				t.Fatalf("%d keys before the purge, want one per channel at least", n)
			}
			if err := redisbroker.Purge(ctx, rdb, prefix); err != nil {
				t.Fatal(err)
			}
			if n := countKeys(t, rdb, prefix); n != 0 {
				t.Fatalf("%d keys of the prefix left after Purge", n)
			}
			if n := countKeys(t, rdb, otherPrefix); n == 0 {
				t.Fatal("Purge took another prefix's keys")
			}
		})
	}
}

// countKeys counts the keys of prefix on every node.
func countKeys(t *testing.T, rdb redis.UniversalClient, prefix string) int {
	t.Helper()
	n := 0
	count := func(ctx context.Context, c redis.UniversalClient) error {
		for _, pattern := range []string{"{" + prefix + "}:*", "{" + prefix + ":*"} {
			keys, err := c.Keys(ctx, pattern).Result()
			if err != nil {
				return err
			}
			n += len(keys)
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var err error
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		var mu sync.Mutex // ForEachMaster runs on every master at once
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			mu.Lock()
			defer mu.Unlock()
			return count(ctx, c)
		})
	} else {
		err = count(ctx, rdb)
	}
	if err != nil {
		t.Fatal(err)
	}
	return n
}
