package redisbroker_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ssekit/sse/internal/ssetest"
	"github.com/ssekit/sse/redisbroker"
)

// sharedRedis returns a client of the shared Redis, closed at cleanup, or
// skips the test when it does not answer.
func sharedRedis(t testing.TB) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: ssetest.RedisAddr(), MaxRetries: 1, DialTimeout: 2 * time.Second})
	t.Cleanup(func() { rdb.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		ssetest.RedisDown(t, err)
	}
	return rdb
}

// uniquePrefix returns a key prefix no other test or engineer uses, and
// deletes every key under it at cleanup (the shared Redis is never
// flushed).
func uniquePrefix(t testing.TB, rdb redis.UniversalClient) string {
	t.Helper()
	p := make([]byte, 6)
	_, _ = rand.Read(p)
	prefix := "ssekit-test-" + hex.EncodeToString(p)
	t.Cleanup(func() { deleteKeys(t, rdb, prefix) })
	return prefix
}

// deleteKeys deletes the keys of one broker prefix.
func deleteKeys(t testing.TB, rdb redis.UniversalClient, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := redisbroker.Purge(ctx, rdb, prefix); err != nil {
		t.Logf("cleanup: %v", err)
	}
}

// newBroker returns a broker on rdb under a fresh prefix, closed at
// cleanup (before the client, since cleanups run last-in first-out).
func newBroker(t testing.TB, rdb redis.UniversalClient, opts redisbroker.Options) *redisbroker.Broker {
	t.Helper()
	if opts.Prefix == "" {
		opts.Prefix = uniquePrefix(t, rdb)
	}
	if opts.Linger == 0 {
		opts.Linger = 200 * time.Millisecond
	}
	b, err := redisbroker.New(rdb, opts)
	if err != nil {
		t.Fatalf("redisbroker.New: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// backend is a Redis the cluster tests run against: the shared server, or
// the package's Redis Cluster.
type backend struct {
	name string
	// client returns a new client of it, closed at cleanup.
	client func(t testing.TB) redis.UniversalClient
}

// backends returns one Redis and, where redis-server can start one, a
// Redis Cluster: the tests that take them run against both.
func backends(t *testing.T) []backend {
	t.Helper()
	rdb := sharedRedis(t) // skips without the shared Redis
	out := []backend{{name: "redis", client: func(t testing.TB) redis.UniversalClient {
		c := redis.NewClient(&redis.Options{Addr: ssetest.RedisAddr(), DialTimeout: time.Second, ReadTimeout: time.Second})
		t.Cleanup(func() { c.Close() })
		return c
	}}}
	_ = rdb
	if cl := sharedCluster(t); cl != nil {
		out = append(out, backend{name: "cluster", client: func(t testing.TB) redis.UniversalClient {
			c := cl.Client(&redis.ClusterOptions{DialTimeout: time.Second, ReadTimeout: time.Second})
			t.Cleanup(func() { c.Close() })
			return c
		}})
	}
	return out
}
