package redisbroker_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	sse "github.com/ssekit/sse"
	"github.com/ssekit/sse/internal/ssetest"
	"github.com/ssekit/sse/redisbroker"
	"github.com/ssekit/sse/sseclient"
)

// heartbeats reads n heartbeats from c and fails on anything else: the
// stream is alive and nothing is delivered meanwhile.
func heartbeats(t *testing.T, who string, c *conn, n int) {
	t.Helper()
	for range n {
		if ev := c.Next(); ev.Type != sse.TypeHeartbeat {
			t.Fatalf("%s: got %s %s (%q) while Redis was down, want heartbeats only", who, ev.Type, ev.ID, ev.Data)
		}
	}
}

// connections returns how many clients the server has, as it counts them.
func connections(t *testing.T, addr string) int {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	list, err := rdb.ClientList(t.Context()).Result()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range list {
		if c == '\n' {
			n++
		}
	}
	return n - 1 // not this one
}

// TestFaultRedisRestartsEmpty: with Redis killed, publishing fails loudly
// (library error, broker Ping error) while every open stream stays
// connected and keeps its heartbeats; Redis comes back empty on the same
// port, every node resumes without a restart of the hub, tells its clients
// to resync (what was in the old Redis is gone) and then delivers every
// event published after the restart once, in order; no connection leaks.
func TestFaultRedisRestartsEmpty(t *testing.T) {
	srv := startRedisServer(t)
	cfg := sse.Config{HeartbeatInterval: 100 * time.Millisecond}
	a := newNode(t, srv.addr, "fault", redisbroker.Options{}, cfg)
	b := newNode(t, srv.addr, "fault", redisbroker.Options{}, cfg)
	conns := map[string]*conn{
		"alice on a": a.dial(t, "alice", ""),
		"alice on b": b.dial(t, "alice", ""),
		"anon on b":  b.dial(t, "", ""),
	}
	for _, c := range conns {
		c.Connected()
	}
	var before pubLog
	before.publish(t, a, sse.Target{Users: []string{"alice"}}, 1)
	before.publish(t, b, sse.Target{All: true}, 2)
	for who, c := range conns {
		user := ""
		if who != "anon on b" {
			user = "alice"
		}
		want := before.expected(user, "")
		checkReceived(t, who, c.Take(len(want)), want)
	}

	srv.stop()
	ctx, cancel := context.WithTimeout(t.Context(), ssetest.Patience)
	defer cancel()
	if _, err := a.hub.Publish(ctx, sse.Target{All: true}, sse.Event{Type: "t", Data: map[string]int{"seq": 99}}); err == nil {
		t.Fatal("Publish succeeded with Redis down")
	}
	if err := b.hub.SendToUser([16]byte{1}, sse.Event{Type: "t"}); err == nil {
		t.Fatal("SendToUser succeeded with Redis down")
	}
	if err := a.broker.Ping(ctx); err == nil {
		t.Fatal("Ping succeeded with Redis down")
	}
	for who, c := range conns {
		heartbeats(t, who, c, 3)
	}

	srv.start()
	for _, n := range []*node{a, b} {
		waitUntil(t, "the broker to reach Redis again", func() bool { return n.broker.Ping(t.Context()) == nil })
	}
	var after pubLog
	for k := range 6 {
		to := sse.Target{All: true}
		if k%2 == 0 {
			to = sse.Target{Users: []string{"alice"}}
		}
		after.publish(t, []*node{a, b}[k%2], to, 100+k)
	}
	for who, c := range conns {
		if ev := c.NextOf(); ev.Type != sse.TypeResync {
			t.Fatalf("%s: first event after Redis came back empty is %s %s (%q), want resync", who, ev.Type, ev.ID, ev.Data)
		}
		user := ""
		if who != "anon on b" {
			user = "alice"
		}
		want := after.expected(user, "")
		checkReceived(t, who, c.Take(len(want)), want)
	}
	endMarker(t, &after, a, conns)
	// Each node holds its subscription's connection and a few pooled
	// ones; a leak per failed read would show as dozens.
	if n := connections(t, srv.addr); n > 8 {
		t.Fatalf("Redis has %d client connections from two nodes after the outage, want at most 8", n)
	}
}

// TestFaultRedisPaused: Redis pauses without losing data, first for writes
// (CLIENT PAUSE) and then entirely for longer than the client's read
// timeout (DEBUG SLEEP), which makes go-redis send a publish twice. Every
// stream stays connected; every event is stored and delivered once, in
// order, with no resync.
func TestFaultRedisPaused(t *testing.T) {
	srv := startRedisServer(t)
	a := newNode(t, srv.addr, "pause", redisbroker.Options{}, sse.Config{HeartbeatInterval: 100 * time.Millisecond})
	b := newNode(t, srv.addr, "pause", redisbroker.Options{}, sse.Config{HeartbeatInterval: 100 * time.Millisecond})
	conns := map[string]*conn{"anon on a": a.dial(t, "", ""), "anon on b": b.dial(t, "", "")}
	for _, c := range conns {
		c.Connected()
	}
	ctl := redis.NewClient(&redis.Options{Addr: srv.addr, ReadTimeout: ssetest.Patience})
	defer ctl.Close()

	var mu sync.Mutex
	var ok, failed []int
	publishAll := func(seqs ...int) {
		var wg sync.WaitGroup
		for i, seq := range seqs {
			n := []*node{a, b}[i%2]
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), ssetest.Patience)
				defer cancel()
				_, err := n.hub.Publish(ctx, sse.Target{All: true}, sse.Event{Type: "t", Data: map[string]int{"seq": seq}})
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					t.Logf("publish %d during the pause: %v", seq, err)
					failed = append(failed, seq)
				} else {
					ok = append(ok, seq)
				}
			})
		}
		wg.Wait()
	}

	// Writes wait behind CLIENT PAUSE, shorter than the read timeout.
	if err := ctl.Do(t.Context(), "CLIENT", "PAUSE", 1500, "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	publishAll(1, 2, 3)

	// DEBUG SLEEP stops the whole server past the nodes' 1s read timeout.
	// The publishes must start while it sleeps: on a loaded machine the
	// sleep may be over before this goroutine looks, so try again.
	probe := redis.NewClient(&redis.Options{Addr: srv.addr, MaxRetries: -1, ReadTimeout: 100 * time.Millisecond})
	defer probe.Close()
	for attempt := 1; ; attempt++ {
		slept := make(chan error, 1)
		go func() { slept <- ctl.Do(context.Background(), "DEBUG", "SLEEP", 2).Err() }()
		asleep := false
		for !asleep {
			select {
			case err := <-slept:
				if err != nil {
					t.Fatal(err)
				}
				slept = nil
			default:
			}
			if slept == nil {
				break
			}
			if asleep = probe.Ping(t.Context()).Err() != nil; !asleep {
				time.Sleep(time.Millisecond)
			}
		}
		if asleep {
			publishAll(4, 5, 6, 7)
			if err := <-slept; err != nil {
				t.Fatal(err)
			}
			break
		}
		if attempt == 5 {
			t.Fatal("never caught Redis asleep in DEBUG SLEEP")
		}
	}
	publishAll(8, 9)

	end, err := a.hub.Publish(t.Context(), sse.Target{All: true}, sse.Event{Type: "end", Data: map[string]int{"seq": -1}})
	if err != nil {
		t.Fatal(err)
	}
	stored := ctl.XLen(t.Context(), a.broker.Stream()).Val()
	for who, c := range conns {
		var got []sseclient.Event
		for {
			ev := c.NextOf()
			if ev.ID == end {
				break
			}
			if ev.Type != "t" {
				t.Fatalf("%s: got %s %s (%q) across the pauses, want events only", who, ev.Type, ev.ID, ev.Data)
			}
			got = append(got, ev)
		}
		var seqs []int
		for i, ev := range got {
			if i > 0 && sse.CompareIDs(got[i-1].ID, ev.ID) >= 0 {
				t.Fatalf("%s: id %s after %s", who, ev.ID, got[i-1].ID)
			}
			seqs = append(seqs, seqOf(t, ev))
		}
		sorted := slices.Sorted(slices.Values(seqs))
		if len(slices.Compact(slices.Clone(sorted))) != len(sorted) {
			t.Fatalf("%s: an event was delivered twice: %v", who, seqs)
		}
		for _, s := range ok {
			if !slices.Contains(seqs, s) {
				t.Fatalf("%s: published event %d never arrived (got %v)", who, s, seqs)
			}
		}
		for _, s := range seqs {
			if !slices.Contains(ok, s) && !slices.Contains(failed, s) {
				t.Fatalf("%s: event %d was never published", who, s)
			}
		}
		if int64(len(seqs)+1) != stored {
			t.Fatalf("%s: %d events delivered, but the stream holds %d entries: one was stored twice", who, len(seqs), stored-1)
		}
	}
}
