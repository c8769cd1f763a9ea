package redisbroker_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ssekit/sse/internal/rediscluster"
	"github.com/ssekit/sse/internal/ssetest"
	"github.com/ssekit/sse/redisbroker"
	"github.com/ssekit/sse/ssekit"
)

// failoverCluster starts a Redis Cluster of three masters with a replica
// each, stopped at cleanup.
func failoverCluster(t *testing.T) *rediscluster.Cluster {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		ssetest.ServiceMissing(t, "no redis-server binary in PATH: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cl, err := rediscluster.Start(ctx, rediscluster.Options{Dir: t.TempDir(), Masters: 3, Replicas: 1, Logf: t.Logf})
	if err != nil {
		t.Fatalf("start a Redis Cluster: %v", err)
	}
	t.Cleanup(func() { _ = cl.Stop() })
	return cl
}

// sent is what the failover test's publisher did with one seq.
type sent struct {
	target   ssekit.Target
	attempts int // how many times it was sent: a failed send may still have stored it, so it may arrive up to that many times
}

// TestFaultClusterFailover publishes without pause to two hubs on a Redis
// Cluster while the master of the broadcast channel's slot crashes and its
// replica takes over, then while another master hands over to its replica
// gracefully (which ends its sharded subscriptions with sunsubscribe).
// With WaitReplicas 1, every event Publish reported is delivered to every
// connection it addressed exactly once — twice at most if the publisher
// had to send it again — unless the connection was told with a resync
// that its channel lost history; nothing is lost silently.
func TestFaultClusterFailover(t *testing.T) {
	cl := failoverCluster(t)
	be := backend{name: "failover", client: func(t testing.TB) redis.UniversalClient {
		c := cl.Client(&redis.ClusterOptions{DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second})
		t.Cleanup(func() { c.Close() })
		return c
	}}
	opts := redisbroker.Options{WaitReplicas: 1, WaitTimeout: 500 * time.Millisecond}
	cfg := ssekit.Config{HeartbeatInterval: -1}
	nodes := []*node{newNode(t, be, "failover", opts, cfg), newNode(t, be, "failover", opts, cfg)}
	const usersN = 12
	type client struct {
		c    *conn
		user string
	}
	var clients []client
	for u := range usersN + 2 {
		user := ""
		if u < usersN {
			user = fmt.Sprint("user", u)
		}
		c := nodes[u%2].dial(t, user, "")
		c.Connected()
		clients = append(clients, client{c, user})
	}

	var mu sync.Mutex
	log := map[int]sent{}
	publish := func(seq int, to ssekit.Target) {
		deadline := time.Now().Add(ssetest.Patience)
		attempts := 0
		for {
			attempts++
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err := nodes[(seq%2+2)%2].hub.Publish(ctx, to, ssekit.Event{Type: "t", Data: map[string]int{"seq": seq}})
			cancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("publish %d: still failing after %v: %v", seq, ssetest.Patience, err)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		mu.Lock()
		log[seq] = sent{to, attempts}
		mu.Unlock()
	}
	stop := make(chan struct{})
	var published sync.WaitGroup
	published.Go(func() {
		r := rand.New(rand.NewPCG(3, 4))
		for seq := 0; ; seq++ {
			select {
			case <-stop:
				return
			default:
			}
			to := ssekit.Target{All: true}
			if r.IntN(4) > 0 {
				to = ssekit.Target{Users: []string{fmt.Sprint("user", r.IntN(usersN))}}
			}
			publish(seq, to)
			time.Sleep(2 * time.Millisecond)
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	time.Sleep(500 * time.Millisecond)

	// A crash: the broadcast channel's master dies; its replica takes
	// over; the old master comes back as the new one's replica.
	rdb := be.client(t).(*redis.ClusterClient)
	master, err := rdb.MasterForKey(ctx, nodes[0].broker.StreamKey(ssekit.BroadcastChannel))
	if err != nil {
		t.Fatal(err)
	}
	crashed := master.Options().Addr
	promoted, err := cl.Failover(ctx, crashed)
	if err != nil {
		t.Fatalf("failover of %s: %v", crashed, err)
	}
	t.Logf("master %s crashed; %s took over", crashed, promoted)
	if err := cl.Restart(ctx, crashed); err != nil {
		t.Fatal(err)
	}
	if err := cl.WaitHealthy(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)

	// A handover: a replica of another master takes over on request.
	if err := gracefulFailover(ctx, cl, promoted); err != nil {
		t.Fatal(err)
	}
	if err := cl.WaitHealthy(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	close(stop)
	published.Wait()
	// End markers, one per channel: channels are independent, so only a
	// channel's own last event says that everything before it in that
	// channel has arrived.
	publish(-1, ssekit.Target{All: true})
	for u := range usersN {
		publish(-2-u, ssekit.Target{Users: []string{fmt.Sprint("user", u)}})
	}
	if t.Failed() {
		t.FailNow()
	}

	resyncs := 0
	for _, c := range clients {
		who := fmt.Sprintf("user %q", c.user)
		got := map[int]int{}
		lost := map[string]bool{}
		prev := ""
		ends := 1 // the broadcast channel's end, and the user channel's
		if c.user != "" {
			ends = 2
		}
		for ends > 0 {
			ev := c.c.NextOf()
			// A resync may move the channels it names back: to where their
			// history goes on unbroken (the promoted replica's).
			if ev.Type != ssekit.TypeResync && prev != "" && ev.ID != prev && !ssetest.Moved(prev, ev.ID) {
				t.Fatalf("%s: id %s after %s", who, ev.ID, prev)
			}
			prev = ev.ID
			if ev.Type == ssekit.TypeResync {
				var d struct{ Channels []string }
				if err := ev.Decode(&d); err != nil {
					t.Fatal(err)
				}
				for _, ch := range d.Channels {
					lost[ch] = true
				}
				resyncs++
				continue
			}
			seq := seqOf(t, ev)
			if seq < 0 {
				ends--
				continue
			}
			got[seq]++
		}
		mu.Lock()
		for seq, s := range log {
			if seq < 0 {
				continue
			}
			mine := s.target.All || (c.user != "" && slices.Contains(s.target.Users, c.user))
			channel := "all"
			if !s.target.All {
				channel = "user"
			}
			switch n := got[seq]; {
			case !mine && n > 0:
				t.Errorf("%s: got event %d, addressed to %v", who, seq, s.target)
			case mine && n == 0 && !lost[channel]:
				t.Errorf("%s: event %d (to %v) never arrived, and no resync said its channel lost history", who, seq, s.target)
			case n > s.attempts:
				t.Errorf("%s: event %d arrived %d times, sent %d times", who, seq, n, s.attempts)
			}
		}
		mu.Unlock()
	}
	t.Logf("%d events published across a crash and a handover; %d resyncs in all", len(log), resyncs)
}

// gracefulFailover asks a replica of a master other than skip to take
// over (CLUSTER FAILOVER), as an operator does before maintenance, and
// waits until it has.
func gracefulFailover(ctx context.Context, cl *rediscluster.Cluster, skip string) error {
	masters, err := cl.MasterAddrs(ctx)
	if err != nil {
		return err
	}
	for _, addr := range cl.Addrs() {
		if slices.Contains(masters, addr) {
			continue
		}
		c := redis.NewClient(&redis.Options{Addr: addr})
		defer c.Close()
		info, err := c.Do(ctx, "ROLE").Slice()
		if err != nil || len(info) < 3 {
			continue
		}
		if of := fmt.Sprintf("%v:%v", info[1], info[2]); of == skip || strings.HasSuffix(skip, ":"+fmt.Sprint(info[2])) {
			continue
		}
		if err := c.Do(ctx, "CLUSTER", "FAILOVER").Err(); err != nil {
			return fmt.Errorf("CLUSTER FAILOVER on %s: %w", addr, err)
		}
		for ctx.Err() == nil {
			if role, _ := c.Do(ctx, "ROLE").Slice(); len(role) > 0 && role[0] == "master" {
				return nil
			}
			time.Sleep(50 * time.Millisecond)
		}
		return ctx.Err()
	}
	return fmt.Errorf("no replica to hand over to")
}
