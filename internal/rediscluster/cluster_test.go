package rediscluster_test

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/ssekit/sse/internal/rediscluster"
	"github.com/ssekit/sse/internal/ssetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startCluster starts a cluster in a temporary directory, stopped at
// cleanup. It skips the test, loudly, when redis-server or redis-cli is
// not installed, or fails it when SSEKIT_REQUIRE_SERVICES=1 says they
// must be.
func startCluster(t *testing.T, opts rediscluster.Options) *rediscluster.Cluster {
	t.Helper()
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			ssetest.ServiceMissing(t, "no %s in PATH (%v); install redis-server to run the Redis Cluster tests", bin, err)
		}
	}
	opts.Dir = t.TempDir()
	opts.Logf = t.Logf
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c, err := rediscluster.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop() })
	return c
}

func TestStartInvalidOptions(t *testing.T) {
	for _, opts := range []rediscluster.Options{
		{},                             // no Dir
		{Dir: t.TempDir(), Masters: 2}, // redis-cli wants 3
		{Dir: t.TempDir(), Replicas: -1},
		{Dir: t.TempDir(), Host: "localhost"}, // not an IP
	} {
		if c, err := rediscluster.Start(t.Context(), opts); err == nil {
			c.Stop()
			t.Errorf("Start(%+v) succeeded, want an error", opts)
		}
	}
}

// TestCluster drives a 3-master, 1-replica-each cluster through what the
// broker tests need: data on every master, sharded Pub/Sub, a failover, a
// crash and restart, a pause.
func TestCluster(t *testing.T) {
	c := startCluster(t, rediscluster.Options{Masters: 3, Replicas: 1})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // bounds every wait below
	defer cancel()
	if got, want := len(c.Addrs()), 6; got != want {
		t.Fatalf("len(Addrs())=%d, want %d", got, want)
	}
	masters, err := c.MasterAddrs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(masters), 3; got != want {
		t.Fatalf("MasterAddrs()=%v, want %d masters", masters, want)
	}
	rdb := c.Client(nil)
	defer rdb.Close()

	// One key on each master, so that each slot range is written.
	keyOf := make(map[string]string)
	for i := 0; len(keyOf) < len(masters) && i < 1000; i++ {
		key := fmt.Sprintf("key-%d", i)
		m, err := rdb.MasterForKey(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if addr := m.Options().Addr; keyOf[addr] == "" {
			keyOf[addr] = key
		}
	}
	for _, m := range masters {
		key := keyOf[m]
		if key == "" {
			t.Fatalf("no key served by master %s (client sees %v)", m, keyOf)
		}
		if err := rdb.Set(ctx, key, "before", 0).Err(); err != nil {
			t.Fatalf("SET %s on %s: %v", key, m, err)
		}
		if got, err := rdb.Get(ctx, key).Result(); err != nil || got != "before" {
			t.Fatalf("GET %s on %s = %q, %v; want %q", key, m, got, err, "before")
		}
	}

	victim := masters[0]
	key := keyOf[victim]
	channel := "{" + key + "}.events" // in the key's slot, so on the victim
	sub := rdb.SSubscribe(ctx, channel)
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatalf("SSUBSCRIBE %s: %v", channel, err)
	}
	if n, err := rdb.SPublish(ctx, channel, "hello").Result(); err != nil || n != 1 {
		t.Fatalf("SPUBLISH %s = %d, %v; want 1 receiver", channel, n, err)
	}
	recvCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	msg, err := sub.ReceiveMessage(recvCtx)
	cancel()
	if err != nil || msg.Payload != "hello" {
		t.Fatalf("sharded message = %v, %v; want hello", msg, err)
	}

	// Make sure the replica has the key before its master dies: WAIT on
	// the connection that wrote it.
	m, err := rdb.MasterForKey(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	var wait *redis.IntCmd
	if _, err := m.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, key, "before", 0)
		wait = redis.NewIntCmd(ctx, "WAIT", 1, 2000)
		_ = p.Process(ctx, wait)
		return nil
	}); err != nil || wait.Val() != 1 {
		t.Fatalf("SET+WAIT on %s: %d replicas, %v; want 1", victim, wait.Val(), err)
	}

	failCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	begin := time.Now()
	newMaster, err := c.Failover(failCtx, victim)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("failover of %s to %s took %v", victim, newMaster, time.Since(begin))
	if masters, err = c.MasterAddrs(ctx); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(masters, newMaster) || slices.Contains(masters, victim) {
		t.Fatalf("after failover of %s to %s, masters are %v", victim, newMaster, masters)
	}
	// go-redis reloads its slot map on MOVED or ASK, or once a minute
	// (ClusterStateReloadInterval), not when a node refuses connections:
	// until told, it sends the slot's commands to the dead master.
	ssetest.EventuallyNil(t, "GET "+key+" after failover", func() error {
		got, err := rdb.Get(ctx, key).Result()
		if err != nil {
			rdb.ReloadState(ctx)
			return err
		}
		if got != "before" {
			return fmt.Errorf("got %q, want %q", got, "before")
		}
		return nil
	})
	ssetest.EventuallyNil(t, "SET "+key+" after failover", func() error {
		return rdb.Set(ctx, key, "after", 0).Err()
	})
	if got, err := rdb.Get(ctx, key).Result(); err != nil || got != "after" {
		t.Fatalf("GET %s = %q, %v; want %q", key, got, err, "after")
	}
	// The subscriber's connection died with its master: its next Receive
	// fails, and go-redis subscribes again on the slot's master in the
	// slot map. What is published in between reaches no one.
	ssetest.EventuallyNil(t, "sharded message after failover", func() error {
		if err := rdb.SPublish(ctx, channel, "again").Err(); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		for {
			msg, err := sub.Receive(ctx)
			if err != nil {
				return err
			}
			if m, ok := msg.(*redis.Message); ok && m.Payload == "again" {
				return nil
			}
		}
	})

	// The old master comes back as a replica of the new one.
	if err := c.Restart(ctx, victim); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitHealthy(ctx); err != nil {
		t.Fatal(err)
	}
	if masters, err = c.MasterAddrs(ctx); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(masters, victim) {
		t.Fatalf("restarted %s is a master again: %v", victim, masters)
	}

	// A replica crashes and comes back; a replica pauses and resumes.
	var replicas []string
	for _, a := range c.Addrs() {
		if !slices.Contains(masters, a) && a != victim {
			replicas = append(replicas, a)
		}
	}
	if len(replicas) < 2 {
		t.Fatalf("replicas other than %s: %v, want 2", victim, replicas)
	}
	if err := c.Kill(replicas[0]); err != nil {
		t.Fatal(err)
	}
	if err := c.Restart(ctx, replicas[0]); err != nil {
		t.Fatal(err)
	}
	if err := c.Pause(replicas[1]); err != nil {
		t.Fatal(err)
	}
	paused := redis.NewClient(&redis.Options{Addr: replicas[1], MaxRetries: -1})
	defer paused.Close()
	pingCtx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	if err := paused.Ping(pingCtx).Err(); err == nil {
		t.Errorf("paused %s answered PING", replicas[1])
	}
	cancel()
	if err := c.Resume(replicas[1]); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitHealthy(ctx); err != nil {
		t.Fatal(err)
	}
	for _, k := range keyOf {
		if err := rdb.Get(ctx, k).Err(); err != nil {
			t.Errorf("GET %s after restarts: %v", k, err)
		}
	}

	// A node that crashes on its own ends WaitHealthy at once, with the
	// end of its log; Restart brings it back.
	crash := redis.NewClient(&redis.Options{Addr: replicas[1], MaxRetries: -1})
	defer crash.Close()
	_ = crash.Do(ctx, "DEBUG", "SEGFAULT").Err() // the connection dies with the node
	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = c.WaitHealthy(waitCtx)
	cancel()
	if err == nil || errors.Is(err, context.DeadlineExceeded) ||
		!strings.Contains(err.Error(), replicas[1]) || !strings.Contains(err.Error(), "redis.log") {
		t.Fatalf("WaitHealthy after %s crashed: %v; want an error at once naming it, with its log", replicas[1], err)
	}
	t.Logf("WaitHealthy after a crash: %v", err)
	if err := c.Restart(ctx, replicas[1]); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitHealthy(ctx); err != nil {
		t.Fatal(err)
	}

	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := paused.Ping(ctx).Err(); err == nil {
		t.Errorf("%s answers PING after Stop", replicas[1])
	}
}

// TestPersist checks that a master killed and restarted with Persist keeps
// its data.
func TestPersist(t *testing.T) {
	c := startCluster(t, rediscluster.Options{Persist: true})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	rdb := c.Client(nil)
	defer rdb.Close()
	if err := rdb.Set(ctx, "kept", "yes", 0).Err(); err != nil {
		t.Fatal(err)
	}
	m, err := rdb.MasterForKey(ctx, "kept")
	if err != nil {
		t.Fatal(err)
	}
	addr := m.Options().Addr
	// The reply came after the write to the append-only file, which the
	// kernel keeps through a SIGKILL.
	if err := c.Kill(addr); err != nil {
		t.Fatal(err)
	}
	if err := c.Restart(ctx, addr); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitHealthy(ctx); err != nil {
		t.Fatal(err)
	}
	ssetest.EventuallyNil(t, "GET kept after restart", func() error {
		got, err := rdb.Get(ctx, "kept").Result()
		if err == nil && got != "yes" {
			return fmt.Errorf("got %q, want %q", got, "yes")
		}
		return err
	})
}
