package redisbroker_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	sse "github.com/ssekit/sse"
	"github.com/ssekit/sse/redisbroker"
	"github.com/ssekit/sse/sseclient"
)

// published is one event a test published, as the cluster numbered it.
type published struct {
	id     string
	seq    int
	target sse.Target
}

func (p published) addressedTo(user, client string) bool {
	if p.target.All {
		return true
	}
	return (user != "" && slices.Contains(p.target.Users, user)) || slices.Contains(p.target.Clients, client)
}

// log collects what a test published, from any goroutine.
type pubLog struct {
	mu  sync.Mutex
	all []published
}

func (l *pubLog) publish(t *testing.T, n *node, to sse.Target, seq int) published {
	t.Helper()
	id, err := n.hub.Publish(t.Context(), to, sse.Event{Type: "t", Data: map[string]int{"seq": seq}})
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

// expected returns, in cluster id order, what a connection of user with
// client id should have received.
func (l *pubLog) expected(user, client string) []published {
	l.mu.Lock()
	defer l.mu.Unlock()
	all := slices.Clone(l.all)
	slices.SortFunc(all, func(a, b published) int { return sse.CompareIDs(a.id, b.id) })
	var out []published
	for _, p := range all {
		if p.addressedTo(user, client) {
			out = append(out, p)
		}
	}
	return out
}

// checkReceived fails unless the events are exactly want, in order.
func checkReceived(t *testing.T, who string, got []sseclient.Event, want []published) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s received %d events, want %d", who, len(got), len(want))
	}
	for i := range want {
		if got[i].ID != want[i].id || seqOf(t, got[i]) != want[i].seq {
			t.Fatalf("%s: event %d is %s (seq %d), want %s (seq %d)", who, i, got[i].ID, seqOf(t, got[i]), want[i].id, want[i].seq)
		}
	}
}

// endMarker publishes a broadcast and checks that it is the next event of
// every connection: nothing was delivered twice or beyond what was sent.
func endMarker(t *testing.T, l *pubLog, n *node, conns map[string]*conn) {
	t.Helper()
	m := l.publish(t, n, sse.Target{All: true}, -1)
	for who, c := range conns {
		if ev := c.NextOf(); ev.ID != m.id {
			t.Fatalf("%s: after what it expected came %s %s (%q), want the end marker %s", who, ev.Type, ev.ID, ev.Data, m.id)
		}
	}
}

// TestClusterExactlyOnceInOrder: three hubs on one Redis behave as one:
// events published concurrently on every node, to users, to several users,
// to one connection on another node and to everyone, reach each addressed
// connection on every node once, in the cluster's id order; the cluster
// status counts every node's connections.
func TestClusterExactlyOnceInOrder(t *testing.T) {
	rdb := sharedRedis(t)
	prefix := uniquePrefix(t, rdb)
	var nodes []*node
	for i := range 3 {
		nodes = append(nodes, newNode(t, redisAddr(), prefix,
			redisbroker.Options{Node: fmt.Sprintf("node-%d", i), PresenceInterval: 50 * time.Millisecond},
			sse.Config{}))
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
		// A connection on the next node, for client-addressed events.
		var far []string
		for _, c := range clients {
			if c.node == (i+1)%len(nodes) {
				far = append(far, c.id)
			}
		}
		wg.Go(func() {
			for k := range each {
				var to sse.Target
				switch k % 5 {
				case 0:
					to.Users = []string{users[k%len(users)]}
				case 1:
					to.Users = []string{users[k%len(users)], users[(k+1)%len(users)]}
				case 2: // everyone
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

	waitUntil(t, "the cluster status to count every node", func() bool {
		st, err := nodes[0].broker.ClusterStatus(t.Context())
		return err == nil && len(st.Nodes) == 3 && st.Users == len(users) && st.Clients == len(clients)
	})
}

// TestClusterResumeOnAnotherNode: a client of node A, which then stops,
// reconnects to node B with its Last-Event-ID and receives every event
// addressed to it that was published (on B and C) while it was away, once
// and in order, then live events.
func TestClusterResumeOnAnotherNode(t *testing.T) {
	rdb := sharedRedis(t)
	prefix := uniquePrefix(t, rdb)
	a := newNode(t, redisAddr(), prefix, redisbroker.Options{}, sse.Config{})
	b := newNode(t, redisAddr(), prefix, redisbroker.Options{}, sse.Config{})
	c := newNode(t, redisAddr(), prefix, redisbroker.Options{}, sse.Config{})
	var log pubLog
	onA := a.dial(t, "alice", "")
	onA.Connected()
	for k := range 3 {
		log.publish(t, c, sse.Target{Users: []string{"alice"}}, k)
	}
	got := onA.Take(3)
	checkReceived(t, "alice on A", got, log.expected("alice", ""))
	last := got[2].ID

	a.stop()
	for range onA.Events() { // the stream ends with the hub
	}
	var missed []published
	for k := range 12 {
		var to sse.Target
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
		log.publish(t, c, sse.Target{Users: []string{"alice"}}, 200),
		log.publish(t, b, sse.Target{All: true}, 201),
	}
	checkReceived(t, "alice live on B", onB.Take(2), live)
	endMarker(t, &log, c, map[string]*conn{"alice on B": onB})
}

// TestClusterResyncOlderThanHistory: a Last-Event-ID older than the
// history, or unknown, gets the same resync on every node; an id still in
// the history resumes on every node.
func TestClusterResyncOlderThanHistory(t *testing.T) {
	rdb := sharedRedis(t)
	prefix := uniquePrefix(t, rdb)
	var nodes []*node
	for range 3 {
		nodes = append(nodes, newNode(t, redisAddr(), prefix, redisbroker.Options{MaxLen: 20}, sse.Config{}))
	}
	var log pubLog
	old := log.publish(t, nodes[0], sse.Target{All: true}, 0)
	// Approximate trimming drops whole stream nodes (100 entries): publish
	// until the first event is gone, within a bound.
	for k := 1; k <= 1000; k++ {
		log.publish(t, nodes[k%3], sse.Target{Users: []string{"alice"}}, k)
		if k%50 == 0 {
			err := nodes[0].broker.Replay(t.Context(), old.id, func(sse.Message) error { return nil })
			if errors.Is(err, sse.ErrUnknownID) {
				break
			}
		}
	}
	if err := nodes[0].broker.Replay(t.Context(), old.id, func(sse.Message) error { return nil }); !errors.Is(err, sse.ErrUnknownID) {
		t.Fatalf("the first event is still in the history after 1000 more (Replay: %v)", err)
	}
	head, err := nodes[0].broker.Head(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	recent := log.expected("alice", "")
	recent = recent[len(recent)-3:]
	for i, n := range nodes {
		for _, lastID := range []string{old.id, "not-an-id", "1-0"} {
			c := n.dial(t, "alice", lastID)
			if d := c.Connected(); d.Resumed {
				t.Fatalf("node %d, Last-Event-ID %q: connected says resumed", i, lastID)
			}
			ev := c.NextOf()
			if ev.Type != sse.TypeResync || ev.ID != head {
				t.Fatalf("node %d, Last-Event-ID %q: got %s id %s, want resync with id %s (the head)", i, lastID, ev.Type, ev.ID, head)
			}
			c.Close()
		}
		// An id still in the history resumes, on every node alike.
		c := n.dial(t, "alice", recent[0].id)
		if d := c.Connected(); !d.Resumed {
			t.Fatalf("node %d: an id in the history did not resume", i)
		}
		checkReceived(t, fmt.Sprintf("node %d resume", i), c.Take(2), recent[1:])
		c.Close()
	}
}
