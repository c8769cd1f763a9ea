package redisbroker_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ssekit/sse/internal/ssetest"
	"github.com/ssekit/sse/redisbroker"
	"github.com/ssekit/sse/sseclient"
	"github.com/ssekit/sse/ssekit"
)

// heartbeats reads n heartbeats from c and fails on anything else: the
// stream is alive and nothing is delivered meanwhile.
func heartbeats(t *testing.T, who string, c *conn, n int) {
	t.Helper()
	for range n {
		if ev := c.Next(); ev.Type != ssekit.TypeHeartbeat {
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
	cfg := ssekit.Config{HeartbeatInterval: 100 * time.Millisecond}
	a := newNode(t, serverBackend(srv.addr), "fault", redisbroker.Options{}, cfg)
	b := newNode(t, serverBackend(srv.addr), "fault", redisbroker.Options{}, cfg)
	conns := map[string]*conn{
		"alice on a": a.dial(t, "alice", ""),
		"alice on b": b.dial(t, "alice", ""),
		"anon on b":  b.dial(t, "", ""),
	}
	for _, c := range conns {
		c.Connected()
	}
	var before pubLog
	before.publish(t, a, ssekit.Target{Users: []string{"alice"}}, 1)
	before.publish(t, b, ssekit.Target{All: true}, 2)
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
	if _, err := a.hub.Publish(ctx, ssekit.Target{All: true}, ssekit.Event{Type: "t", Data: map[string]int{"seq": 99}}); err == nil {
		t.Fatal("Publish succeeded with Redis down")
	}
	if err := b.hub.SendToUser([16]byte{1}, ssekit.Event{Type: "t"}); err == nil {
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
		ssetest.Eventually(t, "the broker to reach Redis again", func() bool { return n.broker.Ping(t.Context()) == nil })
	}
	var after pubLog
	for k := range 6 {
		to := ssekit.Target{All: true}
		if k%2 == 0 {
			to = ssekit.Target{Users: []string{"alice"}}
		}
		after.publish(t, []*node{a, b}[k%2], to, 100+k)
	}
	// Every channel a connection follows was lost with Redis: each is
	// announced once, before that channel's first new event.
	for who, c := range conns {
		user, channels := "", []string{"all"}
		if who != "anon on b" {
			user, channels = "alice", []string{"all", "user"}
		}
		want := after.expected(user, "")
		var got []sseclient.Event
		var resynced []string
		for len(got) < len(want) {
			ev := c.NextOf()
			if ev.Type != ssekit.TypeResync {
				got = append(got, ev)
				continue
			}
			var d struct{ Channels []string }
			if err := ev.Decode(&d); err != nil {
				t.Fatal(err)
			}
			for _, ch := range d.Channels {
				for _, e := range got {
					if (ch == "all" && seqOf(t, e)%2 == 1) || (ch == "user" && seqOf(t, e)%2 == 0) {
						t.Fatalf("%s: the %s channel's resync came after its event %d", who, ch, seqOf(t, e))
					}
				}
			}
			resynced = append(resynced, d.Channels...)
		}
		if slices.Sort(resynced); !slices.Equal(resynced, channels) {
			t.Fatalf("%s: resyncs named %v, want each of %v once", who, resynced, channels)
		}
		checkReceived(t, who, got, want)
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
	a := newNode(t, serverBackend(srv.addr), "pause", redisbroker.Options{}, ssekit.Config{HeartbeatInterval: 100 * time.Millisecond})
	b := newNode(t, serverBackend(srv.addr), "pause", redisbroker.Options{}, ssekit.Config{HeartbeatInterval: 100 * time.Millisecond})
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
				_, err := n.hub.Publish(ctx, ssekit.Target{All: true}, ssekit.Event{Type: "t", Data: map[string]int{"seq": seq}})
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

	if _, err := a.hub.Publish(t.Context(), ssekit.Target{All: true}, ssekit.Event{Type: "end", Data: map[string]int{"seq": -1}}); err != nil {
		t.Fatal(err)
	}
	stored := ctl.XLen(t.Context(), a.broker.StreamKey(ssekit.BroadcastChannel)).Val()
	for who, c := range conns {
		var got []sseclient.Event
		for {
			ev := c.NextOf()
			if ev.Type == "end" {
				break
			}
			if ev.Type != "t" {
				t.Fatalf("%s: got %s %s (%q) across the pauses, want events only", who, ev.Type, ev.ID, ev.Data)
			}
			got = append(got, ev)
		}
		var seqs []int
		for i, ev := range got {
			if i > 0 && !ssetest.Moved(got[i-1].ID, ev.ID) {
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

// TestFaultLostAnnouncement: an event that reached the stream but whose
// announcement never reached a node (Pub/Sub lost it) is delivered before
// the next event of its channel, once and in order.
func TestFaultLostAnnouncement(t *testing.T) {
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			prefix := uniquePrefix(t, be.client(t))
			a := newNode(t, be, prefix, redisbroker.Options{}, ssekit.Config{})
			c := a.dial(t, "alice", "")
			c.Connected()
			var log pubLog
			log.publish(t, a, ssekit.Target{Users: []string{"alice"}}, 1)
			for range 2 {
				if _, err := redisbroker.PublishUnannounced(t.Context(), a.broker, ssekit.UserChannel("alice"), "t"); err != nil {
					t.Fatal(err)
				}
			}
			log.publish(t, a, ssekit.Target{Users: []string{"alice"}}, 4)
			got := c.Take(4)
			if seqOf(t, got[0]) != 1 || got[1].Type != "t" || got[2].Type != "t" || seqOf(t, got[3]) != 4 {
				t.Fatalf("got %v, want 1, the two unannounced events, then 4", got)
			}
			for i := 1; i < len(got); i++ {
				if !ssetest.Moved(got[i-1].ID, got[i].ID) {
					t.Fatalf("id %s after %s", got[i].ID, got[i-1].ID)
				}
			}
			endMarker(t, &log, a, map[string]*conn{"alice": c})
		})
	}
}

// TestFaultTrimmedBeforeTheNodeReadIt: events a node never heard that were
// trimmed before it could read them are announced with a resync of their
// channel, and the channel goes on from there.
func TestFaultTrimmedBeforeTheNodeReadIt(t *testing.T) {
	rdb := sharedRedis(t)
	prefix := uniquePrefix(t, rdb)
	a := newNode(t, backends(t)[0], prefix, redisbroker.Options{MaxLen: 5}, ssekit.Config{})
	c := a.dial(t, "alice", "")
	c.Connected()
	for range 300 { // past approximate trimming's whole stream nodes
		if _, err := redisbroker.PublishUnannounced(t.Context(), a.broker, ssekit.UserChannel("alice"), "lost"); err != nil {
			t.Fatal(err)
		}
	}
	var log pubLog
	log.publish(t, a, ssekit.Target{Users: []string{"alice"}}, 1)
	ev := c.NextOf()
	var d struct{ Channels []string }
	if err := ev.Decode(&d); ev.Type != ssekit.TypeResync || err != nil || !slices.Equal(d.Channels, []string{"user"}) {
		t.Fatalf("got %s %s, want a resync of alice's channel", ev.Type, ev.Data)
	}
	for {
		ev = c.NextOf()
		if ev.Type != "lost" {
			break
		}
	}
	if seqOf(t, ev) != 1 {
		t.Fatalf("after the kept unannounced events got %s %s, want seq 1", ev.Type, ev.Data)
	}
	endMarker(t, &log, a, map[string]*conn{"alice": c})
}

// TestFaultPubSubConnectionKilled: Redis drops a node's Pub/Sub
// connections (CLIENT KILL, as an output buffer limit does) while events
// are published; the node subscribes again and reads what it missed from
// the streams: every event arrives once, in order, with no resync.
func TestFaultPubSubConnectionKilled(t *testing.T) {
	srv := startRedisServer(t)
	be := serverBackend(srv.addr)
	a := newNode(t, be, "killed", redisbroker.Options{}, ssekit.Config{})
	b := newNode(t, be, "killed", redisbroker.Options{}, ssekit.Config{})
	conns := map[string]*conn{"alice on a": a.dial(t, "alice", ""), "bob on a": a.dial(t, "bob", ""), "anon on a": a.dial(t, "", "")}
	for _, c := range conns {
		c.Connected()
	}
	ctl := redis.NewClient(&redis.Options{Addr: srv.addr})
	defer ctl.Close()
	var log pubLog
	for k := range 60 {
		to := []ssekit.Target{{Users: []string{"alice"}}, {Users: []string{"bob"}}, {All: true}}[k%3]
		log.publish(t, b, to, k)
		if k%20 == 10 {
			if err := ctl.Do(t.Context(), "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	for who, c := range conns {
		user := map[string]string{"alice on a": "alice", "bob on a": "bob"}[who]
		want := log.expected(user, "")
		checkReceived(t, who, c.Take(len(want)), want)
	}
	endMarker(t, &log, b, conns)
}
