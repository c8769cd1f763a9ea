package redisbroker_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ssekit/sse/internal/ssetest"
	"github.com/ssekit/sse/redisbroker"
	"github.com/ssekit/sse/sseclient"
	"github.com/ssekit/sse/ssekit"
)

// published is one event a test published.
type published struct {
	id     string
	seq    int
	target ssekit.Target
}

func (p published) addressedTo(user, client string) bool {
	if p.target.All {
		return true
	}
	return (user != "" && slices.Contains(p.target.Users, user)) || slices.Contains(p.target.Clients, client)
}

// pubLog collects what a test published, from any goroutine.
type pubLog struct {
	mu  sync.Mutex
	all []published
}

func (l *pubLog) publish(t *testing.T, n *node, to ssekit.Target, seq int) published {
	t.Helper()
	id, err := n.hub.Publish(t.Context(), to, ssekit.Event{Type: "t", Data: map[string]int{"seq": seq}})
	if err != nil {
		t.Errorf("publish seq %d: %v", seq, err)
		return published{}
	}
	p := published{id: id, seq: seq, target: to}
	l.mu.Lock()
	l.all = append(l.all, p)
	l.mu.Unlock()
	return p
}

// expected returns what a connection of user with client id should have
// received.
func (l *pubLog) expected(user, client string) []published {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []published
	for _, p := range l.all {
		if p.addressedTo(user, client) {
			out = append(out, p)
		}
	}
	return out
}

// checkReceived fails unless the events are exactly want, each once, with
// positions that never go back in any channel: each channel's events in
// the order the cluster numbered them. Events addressed to the connection
// by id carry no position of their own.
func checkReceived(t *testing.T, who string, got []sseclient.Event, want []published) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s received %d events, want %d", who, len(got), len(want))
	}
	var gotSeqs, wantSeqs []int
	for _, p := range want {
		wantSeqs = append(wantSeqs, p.seq)
	}
	prev := ""
	for _, ev := range got {
		gotSeqs = append(gotSeqs, seqOf(t, ev))
		if ev.ID != prev && prev != "" && !ssetest.Moved(prev, ev.ID) {
			t.Fatalf("%s: id %s after %s: a channel went back", who, ev.ID, prev)
		}
		prev = ev.ID
	}
	slices.Sort(gotSeqs)
	slices.Sort(wantSeqs)
	if !slices.Equal(gotSeqs, wantSeqs) {
		t.Fatalf("%s received seqs %v, want %v (each once)", who, gotSeqs, wantSeqs)
	}
}

// endMarker publishes a broadcast and checks that it is the next event of
// every connection: nothing was delivered twice or beyond what was sent.
func endMarker(t *testing.T, l *pubLog, n *node, conns map[string]*conn) {
	t.Helper()
	l.publish(t, n, ssekit.Target{All: true}, -1)
	for who, c := range conns {
		if ev := c.NextOf(); seqOf(t, ev) != -1 {
			t.Fatalf("%s: after what it expected came %s %s (%q), want the end marker", who, ev.Type, ev.ID, ev.Data)
		}
	}
}

// TestClusterExactlyOnce: three hubs on one Redis, or on a Redis Cluster,
// behave as one: events published concurrently on every node, to users,
// to several users, to one connection on another node and to everyone,
// reach each addressed connection on every node once, each channel in
// its order; the cluster status counts every node's connections.
func TestClusterExactlyOnce(t *testing.T) {
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			prefix := uniquePrefix(t, be.client(t))
			var nodes []*node
			for i := range 3 {
				nodes = append(nodes, newNode(t, be, prefix,
					redisbroker.Options{Node: fmt.Sprintf("node-%d", i), PresenceInterval: 50 * time.Millisecond}, ssekit.Config{}))
			}
			users := []string{"u0", "u1", "u2", "u3"}
			type client struct {
				c        *conn
				user, id string
				node     int
			}
			var clients []client
			for i, n := range nodes {
				for _, u := range append(slices.Clone(users), "") { // "" is an anonymous connection
					c := n.dial(t, u, "")
					clients = append(clients, client{c: c, user: u, id: c.Connected().ClientID, node: i})
				}
			}
			for _, n := range nodes {
				if err := n.broker.StartPresence(t.Context(), n.hub); err != nil {
					t.Fatal(err)
				}
			}
			var log pubLog
			const each = 40
			var wg sync.WaitGroup
			for i, n := range nodes {
				// Connections on the next node, for client-addressed events.
				var far []string
				for _, c := range clients {
					if c.node == (i+1)%len(nodes) {
						far = append(far, c.id)
					}
				}
				wg.Go(func() {
					for k := range each {
						var to ssekit.Target
						switch k % 5 {
						case 0:
							to.Users = []string{users[k%len(users)]}
						case 1:
							to.Users = []string{users[k%len(users)], users[(k+1)%len(users)]}
						case 2:
							to.All = true
						case 3:
							to.Clients = []string{far[k%len(far)]}
						case 4:
							to.Users, to.Clients = []string{users[k%len(users)]}, []string{far[(k+2)%len(far)]}
						}
						log.publish(t, n, to, i*1000+k)
					}
				})
			}
			wg.Wait()
			if t.Failed() {
				t.FailNow()
			}
			conns := map[string]*conn{}
			for _, c := range clients {
				who := fmt.Sprintf("node %d user %q client %s", c.node, c.user, c.id)
				want := log.expected(c.user, c.id)
				checkReceived(t, who, c.c.Take(len(want)), want)
				conns[who] = c.c
			}
			endMarker(t, &log, nodes[2], conns)
			ssetest.Eventually(t, "the cluster status to count every node", func() bool {
				st, err := nodes[0].broker.ClusterStatus(t.Context())
				return err == nil && len(st.Nodes) == 3 && st.Users == len(users) && st.Clients == len(clients)
			})
		})
	}
}

// TestClusterResumeOnAnotherNode: a client of node A, which then stops,
// reconnects to node B with its Last-Event-ID and receives every event
// addressed to it that was published (on B and C) while it was away, once
// and in order, then live events.
func TestClusterResumeOnAnotherNode(t *testing.T) {
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			prefix := uniquePrefix(t, be.client(t))
			a := newNode(t, be, prefix, redisbroker.Options{}, ssekit.Config{})
			b := newNode(t, be, prefix, redisbroker.Options{}, ssekit.Config{})
			c := newNode(t, be, prefix, redisbroker.Options{}, ssekit.Config{})
			var log pubLog
			onA := a.dial(t, "alice", "")
			onA.Connected()
			for k := range 3 {
				log.publish(t, c, ssekit.Target{Users: []string{"alice"}}, k)
			}
			got := onA.Take(3)
			checkReceived(t, "alice on A", got, log.expected("alice", ""))
			last := got[2].ID

			a.stop()
			for range onA.Events() { // the stream ends with the hub
			}
			var missed []published
			for k := range 12 {
				var to ssekit.Target
				switch k % 3 {
				case 0:
					to.Users = []string{"alice"}
				case 1:
					to.Users = []string{"bob"}
				default:
					to.All = true
				}
				p := log.publish(t, []*node{b, c}[k%2], to, 100+k)
				if p.addressedTo("alice", "") {
					missed = append(missed, p)
				}
			}
			onB := b.dial(t, "alice", last)
			if d := onB.Connected(); !d.Resumed {
				t.Fatal("resumed stream on node B says resumed=false")
			}
			checkReceived(t, "alice resumed on B", onB.Take(len(missed)), missed)
			live := []published{
				log.publish(t, c, ssekit.Target{Users: []string{"alice"}}, 200),
				log.publish(t, b, ssekit.Target{All: true}, 201),
			}
			checkReceived(t, "alice live on B", onB.Take(2), live)
			endMarker(t, &log, c, map[string]*conn{"alice on B": onB})
		})
	}
}

// TestClusterResumeWindowIsPerUser: with the default history, a user who
// misses one event while many more go to other users resumes on another
// node with exactly that event.
func TestClusterResumeWindowIsPerUser(t *testing.T) {
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			prefix := uniquePrefix(t, be.client(t))
			a := newNode(t, be, prefix, redisbroker.Options{}, ssekit.Config{})
			b := newNode(t, be, prefix, redisbroker.Options{}, ssekit.Config{})
			c := a.dial(t, "alice", "")
			last := c.Connected().ID
			c.Close()
			ssetest.Eventually(t, "alice gone", func() bool { return a.hub.GetTotalClientCount() == 0 })
			var log pubLog
			log.publish(t, a, ssekit.Target{Users: []string{"alice"}}, 1)
			const others, events = 1000, 5000 // 5× what one channel keeps
			users := make([]string, others)
			for i := range users {
				users[i] = fmt.Sprint("user", i)
			}
			for i := range events / 100 {
				// 100 users a publish: the history per user is what counts.
				if _, err := a.hub.Publish(t.Context(), ssekit.Target{Users: users[i%10*100 : i%10*100+100]}, ssekit.Event{Type: "other", Data: i}); err != nil {
					t.Fatal(err)
				}
			}
			r := b.dial(t, "alice", last)
			if d := r.Connected(); !d.Resumed {
				t.Fatal("connected.resumed = false")
			}
			checkReceived(t, "alice on B", r.Take(1), log.expected("alice", ""))
			endMarker(t, &log, b, map[string]*conn{"alice on B": r})
		})
	}
}

// TestClusterResyncOlderThanHistory: a Last-Event-ID older than a
// channel's history, or unknown, gets the same resync on every node; a
// position still in the history resumes on every node.
func TestClusterResyncOlderThanHistory(t *testing.T) {
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			prefix := uniquePrefix(t, be.client(t))
			var nodes []*node
			for range 3 {
				nodes = append(nodes, newNode(t, be, prefix, redisbroker.Options{MaxLen: 20}, ssekit.Config{}))
			}
			first := nodes[0].dial(t, "alice", "")
			start := first.Connected().ID
			first.Close()
			var log pubLog
			// Approximate trimming drops whole stream nodes (100 entries):
			// publish until alice's first event is gone, within a bound.
			for k := 1; k <= 1000; k++ {
				log.publish(t, nodes[k%3], ssekit.Target{Users: []string{"alice"}}, k)
				if k%50 == 0 {
					c := nodes[0].dial(t, "alice", start)
					c.Connected()
					ev := c.NextOf()
					c.Close()
					if ev.Type == ssekit.TypeResync {
						break
					}
				}
			}
			for i, n := range nodes {
				for _, lastID := range []string{start, "not-an-id", "a1-0.u1-0"} {
					c := n.dial(t, "alice", lastID)
					c.Connected()
					ev := c.NextOf()
					var d struct{ Channels []string }
					if err := ev.Decode(&d); ev.Type != ssekit.TypeResync || err != nil || !slices.Contains(d.Channels, "user") {
						t.Fatalf("node %d, Last-Event-ID %q: got %s %s, want a resync of the user channel", i, lastID, ev.Type, ev.Data)
					}
					c.Close()
				}
			}
			// A position in the history resumes, on every node alike.
			mid := nodes[1].dial(t, "alice", "")
			mid.Connected()
			log.publish(t, nodes[2], ssekit.Target{Users: []string{"alice"}}, 2000)
			from := mid.NextOf().ID
			mid.Close()
			log.publish(t, nodes[0], ssekit.Target{Users: []string{"alice"}}, 2001)
			for i, n := range nodes {
				c := n.dial(t, "alice", from)
				if d := c.Connected(); !d.Resumed {
					t.Fatalf("node %d: a position in the history did not resume", i)
				}
				if ev := c.NextOf(); seqOf(t, ev) != 2001 {
					t.Fatalf("node %d: resumed with %s %s, want seq 2001", i, ev.Type, ev.Data)
				}
			}
		})
	}
}

// TestEachNodeReadsOnlyItsUsersEvents counts what each node hears from
// Redis: the events addressed to its own connections' users and the
// broadcasts, not the cluster's traffic (received ≤ 1.2 × addressed +
// broadcasts), on one Redis and on a cluster alike.
func TestEachNodeReadsOnlyItsUsersEvents(t *testing.T) {
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			prefix := uniquePrefix(t, be.client(t))
			const nodesN, usersN = 3, 30
			var nodes []*node
			for range nodesN {
				nodes = append(nodes, newNode(t, be, prefix, redisbroker.Options{}, ssekit.Config{}))
			}
			mine := make([]map[string]bool, nodesN)
			var conns []*conn
			for u := range usersN {
				i := u % nodesN
				if mine[i] == nil {
					mine[i] = map[string]bool{}
				}
				user := fmt.Sprint("user", u)
				mine[i][user] = true
				c := nodes[i].dial(t, user, "")
				c.Connected()
				conns = append(conns, c)
			}
			before := make([]redisbroker.Ops, nodesN)
			for i, n := range nodes {
				before[i] = n.broker.Ops()
			}
			var log pubLog
			addressed := make([]int, nodesN)
			r := rand.New(rand.NewPCG(1, 2))
			const targeted, broadcasts = 300, 10
			for k := range targeted {
				user := fmt.Sprint("user", r.IntN(usersN))
				log.publish(t, nodes[k%nodesN], ssekit.Target{Users: []string{user}}, k)
				for i := range nodes {
					if mine[i][user] {
						addressed[i]++
					}
				}
			}
			for k := range broadcasts {
				log.publish(t, nodes[k%nodesN], ssekit.Target{All: true}, targeted+k)
			}
			for u, c := range conns {
				want := log.expected(fmt.Sprint("user", u), "")
				checkReceived(t, fmt.Sprint("user", u), c.Take(len(want)), want)
			}
			for i, n := range nodes {
				heard := n.broker.Ops().Live - before[i].Live
				bound := float64(addressed[i])*1.2 + broadcasts
				t.Logf("%s node %d: heard %d events from Redis, %d addressed to its users, %d broadcasts, of %d published", be.name, i, heard, addressed[i], broadcasts, targeted+broadcasts)
				if float64(heard) > bound {
					t.Errorf("node %d heard %d events, over 1.2 × %d addressed + %d broadcasts", i, heard, addressed[i], broadcasts)
				}
			}
		})
	}
}

// TestClusterCursorOnAnotherNode: the cursor store is the broker's, so a
// position saved on one node resolves on another.
func TestClusterCursorOnAnotherNode(t *testing.T) {
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			prefix := uniquePrefix(t, be.client(t))
			a := newNode(t, be, prefix, redisbroker.Options{}, ssekit.Config{})
			b := newNode(t, be, prefix, redisbroker.Options{}, ssekit.Config{})
			if err := a.broker.SaveCursor(t.Context(), "k1", "a1-0.u2-0"); err != nil {
				t.Fatal(err)
			}
			if v, err := b.broker.LoadCursor(t.Context(), "k1"); err != nil || v != "a1-0.u2-0" {
				t.Fatalf("LoadCursor on the other node = %q, %v", v, err)
			}
			if _, err := b.broker.LoadCursor(t.Context(), "nobody"); !errors.Is(err, ssekit.ErrUnknownID) {
				t.Fatalf("LoadCursor of an unknown key = %v, want ErrUnknownID", err)
			}
		})
	}
}
