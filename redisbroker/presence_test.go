package redisbroker_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssekit/sse/internal/ssetest"
	"github.com/ssekit/sse/redisbroker"
	"github.com/ssekit/sse/ssekit"
)

// changes records the presence changes the nodes of a test report.
type changes struct {
	mu  sync.Mutex
	got []string // "user online@node"
}

func (c *changes) on(node string) func(ssekit.PresenceChange) {
	return func(ch ssekit.PresenceChange) {
		c.mu.Lock()
		defer c.mu.Unlock()
		state := "offline"
		if ch.Online {
			state = "online"
		}
		c.got = append(c.got, ch.User+" "+state+"@"+node)
	}
}

// of returns the changes reported of user, without the node.
func (c *changes) of(user string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, g := range c.got {
		if u, rest, _ := strings.Cut(g, " "); u == user {
			state, _, _ := strings.Cut(rest, "@")
			out = append(out, state)
		}
	}
	return out
}

// presenceNode starts a node whose presence refreshes every 100ms, with
// leases of 1s, and reports its changes to log.
func presenceNode(t *testing.T, be backend, prefix, name string, debounce time.Duration, log *changes) *node {
	t.Helper()
	n := newNode(t, be, prefix, redisbroker.Options{Node: name, PresenceInterval: 100 * time.Millisecond, PresenceTTL: time.Second},
		ssekit.Config{PresenceDebounce: debounce, OnPresence: log.on(name)})
	if err := n.broker.StartPresence(t.Context(), n.hub); err != nil {
		t.Fatal(err)
	}
	return n
}

// online asks n whether user is online, failing the test on an error.
func online(t *testing.T, n *node, user string) bool {
	t.Helper()
	ok, err := n.hub.IsOnline(t.Context(), user)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// TestPresenceAcrossNodes: a user with a stream on node A is online on
// node B; with streams on both, one ending changes nothing; once all its
// streams ended it is offline on both, and reported offline once, after
// the debounce, by one node; a reconnect within the debounce is no
// change; the cluster count follows.
func TestPresenceAcrossNodes(t *testing.T) {
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			prefix := uniquePrefix(t, be.client(t))
			var log changes
			const debounce = 700 * time.Millisecond
			a := presenceNode(t, be, prefix, "a", debounce, &log)
			b := presenceNode(t, be, prefix, "b", debounce, &log)
			if online(t, b, "alice") {
				t.Fatal("alice online before any stream")
			}
			onA := a.dial(t, "alice", "")
			onA.Connected()
			ssetest.Eventually(t, "node B to see alice online", func() bool { return online(t, b, "alice") })
			onB := b.dial(t, "alice", "")
			onB.Connected()
			onA.Close()
			ssetest.Eventually(t, "node A to see alice through B", func() bool { return a.hub.UserClientCount("alice") == 0 })
			if !online(t, a, "alice") || !online(t, b, "alice") {
				t.Fatal("alice offline while she has a stream on B")
			}
			// A reconnect within the debounce is no change.
			onB.Close()
			start := time.Now()
			again := a.dial(t, "alice", "")
			again.Connected()
			quick := time.Since(start) < debounce/2
			ssetest.Eventually(t, "both nodes to see alice online again", func() bool { return online(t, a, "alice") && online(t, b, "alice") })
			again.Close()
			ssetest.Eventually(t, "node B to see alice offline", func() bool { return !online(t, b, "alice") })
			ssetest.Eventually(t, "alice's offline report", func() bool { return len(log.of("alice")) >= 2 })
			if got := log.of("alice"); quick && !slices.Equal(got, []string{"online", "offline"}) {
				t.Fatalf("alice's changes: %q, want online then offline, once each", got)
			} else if !quick {
				t.Logf("the reconnect took %v, over half the debounce: not checking it was no change", time.Since(start))
			}
			st, err := b.broker.ClusterStatus(t.Context())
			if err != nil || st.Users != 0 || len(st.Nodes) != 2 {
				t.Fatalf("cluster status %+v, %v: want two nodes, no user", st, err)
			}
		})
	}
}

// fakeHub is a node whose users are fixed: a PresenceNode that a test
// refreshes by hand, as a process that then dies.
type fakeHub struct {
	users []string
}

func (f *fakeHub) ConnectedUserIDs() []string { return f.users }
func (f *fakeHub) GetTotalClientCount() int   { return len(f.users) }
func (f *fakeHub) UserClientCount(u string) int {
	if slices.Contains(f.users, u) {
		return 1
	}
	return 0
}
func (f *fakeHub) PresenceDebounce() time.Duration       { return time.Hour }
func (f *fakeHub) PresenceChanged(ssekit.PresenceChange) {}

// TestPresenceNodeDies: a node that stops refreshing (killed) has its
// users' leases lapse: within PresenceTTL they are offline everywhere,
// and a live node reports each offline once, within PresenceTTL + one
// PresenceInterval, whatever the dead node's debounce; users it shared
// with a live node stay online. The dead node leaves the cluster status.
func TestPresenceNodeDies(t *testing.T) {
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			rdb := be.client(t)
			prefix := uniquePrefix(t, rdb)
			var log changes
			live := presenceNode(t, be, prefix, "live", 200*time.Millisecond, &log)
			shared := live.dial(t, "shared", "")
			shared.Connected()
			dead := newBroker(t, rdb, redisbroker.Options{Prefix: prefix, Node: "dead", PresenceInterval: 100 * time.Millisecond, PresenceTTL: time.Second})
			if err := redisbroker.NewManualPresence(dead, &fakeHub{users: []string{"bob", "shared"}}).Refresh(t.Context()); err != nil {
				t.Fatal(err)
			}
			died := time.Now()
			if !online(t, live, "bob") {
				t.Fatal("bob, held by the dead node before it died, is not online")
			}
			ssetest.Eventually(t, "bob's offline report", func() bool { return len(log.of("bob")) > 0 })
			took := time.Since(died)
			if online(t, live, "bob") || !online(t, live, "shared") {
				t.Fatal("after the dead node's leases lapsed: bob online, or shared offline")
			}
			if got := log.of("bob"); !slices.Equal(got, []string{"offline"}) {
				t.Fatalf("bob's changes on the live node %q, want offline once (his online was the dead node's to report)", got)
			}
			// The documented bound is PresenceTTL + PresenceInterval (1.1s
			// here); the slack is for a loaded machine, not a measurement.
			if bound := 1100 * time.Millisecond; took > bound+5*time.Second {
				t.Fatalf("bob reported offline %v after the node died, bound %v", took, bound)
			} else {
				t.Logf("bob reported offline %v after the node's last refresh (bound %v)", took, bound)
			}
			ssetest.Eventually(t, "the dead node to leave the status", func() bool {
				st, err := live.broker.ClusterStatus(t.Context())
				return err == nil && len(st.Nodes) == 1 && st.Nodes[0].Node == "live" && st.Users == 1
			})
		})
	}
}

// TestPresenceCostsDoNotGrow counts the Redis commands of one node's
// refresh and of a query, before and after another node brings 2,000
// users: neither changes. A refresh costs one command per user of the
// node itself, plus a constant; a query, one per user asked about.
func TestPresenceCostsDoNotGrow(t *testing.T) {
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			rdb := be.client(t)
			prefix := uniquePrefix(t, rdb)
			opts := func(node string) redisbroker.Options {
				return redisbroker.Options{Prefix: prefix, Node: node, PresenceInterval: time.Minute, PresenceTTL: 2 * time.Minute}
			}
			a := newBroker(t, rdb, opts("a"))
			pa := redisbroker.NewManualPresence(a, &fakeHub{users: []string{"a1", "a2", "a3"}})
			other := &fakeHub{}
			b := newBroker(t, rdb, opts("b"))
			pb := redisbroker.NewManualPresence(b, other)
			measure := func() (refresh, query int64) {
				t.Helper()
				// The first refresh of a node also brings its users online.
				for range 2 {
					before := a.Ops()
					if err := pa.Refresh(t.Context()); err != nil {
						t.Fatal(err)
					}
					refresh = a.Ops().Presence - before.Presence
				}
				before := a.Ops()
				got, err := a.UsersOnline(t.Context(), []string{"a1", "b7", "nobody"})
				if err != nil {
					t.Fatal(err)
				}
				if want := []bool{true, len(other.users) > 0, false}; !slices.Equal(got, want) {
					t.Fatalf("UsersOnline = %v, want %v", got, want)
				}
				return refresh, a.Ops().PresenceQueries - before.PresenceQueries
			}
			if err := pb.Refresh(t.Context()); err != nil {
				t.Fatal(err)
			}
			refresh1, query1 := measure()
			for i := range 2000 {
				other.users = append(other.users, fmt.Sprintf("b%d", i))
			}
			before := b.Ops()
			if err := pb.Refresh(t.Context()); err != nil {
				t.Fatal(err)
			}
			bCost := b.Ops().Presence - before.Presence
			refresh2, query2 := measure()
			t.Logf("node a (3 users): %d commands per refresh, %d per query of 3 users; node b's refresh bringing 2,000 users: %d", refresh2, query2, bCost)
			if refresh1 != refresh2 || query1 != query2 || query2 != 3 {
				t.Fatalf("with 2,000 users elsewhere, a refresh of node a costs %d commands (was %d), a query %d (was %d, want 3)",
					refresh2, refresh1, query2, query1)
			}
			if refresh2 > 3+6 || bCost < 2000 {
				t.Fatalf("a refresh of 3 users costs %d commands, of 2,000 fresh ones %d: want 3 + a constant, and one per user", refresh2, bCost)
			}
			st, err := a.ClusterStatus(t.Context())
			if err != nil || st.Users != 2003 {
				t.Fatalf("cluster status %+v, %v: want 2,003 users", st, err)
			}
		})
	}
}

// usersOnly is a node's source that is no ssekit.PresenceNode: no
// debounce, as a process that refreshes and then is killed.
type usersOnly struct{ users []string }

func (u *usersOnly) ConnectedUserIDs() []string { return u.users }
func (u *usersOnly) GetTotalClientCount() int   { return len(u.users) }

// TestPresenceNodeStartsLongAfterDeath: a node killed while no other node
// lives, and a node that starts long after (past PresenceTTL, the
// interval and the debounce many times over): the new node still
// finishes the dead one's users, reporting them offline once, and the
// count of users online is back to 0; the finishing lock is released;
// the dead nodes leave the index, one that had no user (no record) too.
// Before, the user's reported state expired with 2*PresenceTTL +
// PresenceInterval + debounce, the check found nothing, and the user
// stayed counted online for good.
func TestPresenceNodeStartsLongAfterDeath(t *testing.T) {
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			rdb := be.client(t)
			prefix := uniquePrefix(t, rdb)
			dead := newBroker(t, rdb, redisbroker.Options{Prefix: prefix, Node: "dead", PresenceInterval: 100 * time.Millisecond, PresenceTTL: 200 * time.Millisecond})
			if err := redisbroker.NewManualPresence(dead, &usersOnly{users: []string{"carol"}}).Refresh(t.Context()); err != nil {
				t.Fatal(err)
			}
			// And a node with no user, hence no record, killed too.
			empty := newBroker(t, rdb, redisbroker.Options{Prefix: prefix, Node: "empty", PresenceInterval: 100 * time.Millisecond, PresenceTTL: 200 * time.Millisecond})
			if err := redisbroker.NewManualPresence(empty, &usersOnly{}).Refresh(t.Context()); err != nil {
				t.Fatal(err)
			}
			if n, err := dead.OnlineUsers(t.Context()); err != nil || n != 1 {
				t.Fatalf("OnlineUsers = %d, %v after the node held carol: want 1", n, err)
			}
			// Wait well past the dead nodes' leases (200 ms), with no node
			// alive (waiting, not measuring).
			time.Sleep(1500 * time.Millisecond)
			var log changes
			live := presenceNode(t, be, prefix, "live", 100*time.Millisecond, &log)
			ssetest.Eventually(t, "carol's offline report by the node started later", func() bool { return len(log.of("carol")) > 0 })
			if got := log.of("carol"); !slices.Equal(got, []string{"offline"}) {
				t.Fatalf("carol's changes %q, want offline once", got)
			}
			ssetest.Eventually(t, "the count back to 0, the dead node gone", func() bool {
				st, err := live.broker.ClusterStatus(t.Context())
				return err == nil && st.Users == 0 && len(st.Nodes) == 1
			})
			ssetest.Eventually(t, "the dead nodes out of the index", func() bool {
				nodes, err := rdb.ZRange(t.Context(), redisbroker.Key(live.broker, "nodes"), 0, -1).Result()
				return err == nil && slices.Equal(nodes, []string{"live"})
			})
			ssetest.Eventually(t, "the finishing lock released", func() bool {
				n, err := rdb.Exists(t.Context(), redisbroker.NodeKey(live.broker, "dead", "sweep")).Result()
				return err == nil && n == 0
			})
		})
	}
}

// TestPresenceNoReportAfterHubClose: a hub closed while its user's
// offline check is pending gets no report once Close returned; the
// change is not lost: a live node reports it.
func TestPresenceNoReportAfterHubClose(t *testing.T) {
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			prefix := uniquePrefix(t, be.client(t))
			var log changes
			var closed atomic.Bool
			var late atomic.Int32
			onA := log.on("a")
			a := newNode(t, be, prefix, redisbroker.Options{Node: "a", PresenceInterval: 100 * time.Millisecond, PresenceTTL: time.Second},
				ssekit.Config{PresenceDebounce: 300 * time.Millisecond, OnPresence: func(ch ssekit.PresenceChange) {
					if closed.Load() {
						late.Add(1)
					}
					onA(ch)
				}})
			if err := a.broker.StartPresence(t.Context(), a.hub); err != nil {
				t.Fatal(err)
			}
			b := presenceNode(t, be, prefix, "b", 300*time.Millisecond, &log)
			s := a.dial(t, "dave", "")
			s.Connected()
			ssetest.Eventually(t, "dave online", func() bool { return slices.Equal(log.of("dave"), []string{"online"}) })
			s.Close()
			if err := a.hub.Close(); err != nil {
				t.Fatal(err)
			}
			closed.Store(true)
			ssetest.Eventually(t, "dave's offline report", func() bool { return len(log.of("dave")) >= 2 })
			if got := log.of("dave"); !slices.Equal(got, []string{"online", "offline"}) {
				t.Fatalf("dave's changes %q, want online then offline", got)
			}
			if n := late.Load(); n != 0 {
				t.Fatalf("%d changes reported to node a after its hub closed", n)
			}
			if online(t, b, "dave") {
				t.Fatal("dave still online")
			}
		})
	}
}

// TestPresenceRetryAfterLostReply: a hold or check whose reply was lost
// is retried; the retry reports the change the lost call decided for
// this node, with its seq, until the node has reported it (unmarked);
// seqs grow with each change of the user.
func TestPresenceRetryAfterLostReply(t *testing.T) {
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			rdb := be.client(t)
			b := newBroker(t, rdb, redisbroker.Options{Prefix: uniquePrefix(t, rdb), Node: "n", PresenceInterval: time.Minute, PresenceTTL: 2 * time.Minute})
			ctx := t.Context()
			must := func(seq int64, err error) int64 {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
				return seq
			}
			on := must(redisbroker.Hold(ctx, b, "erin", "acme", false))
			if on == 0 {
				t.Fatal("the first hold did not bring erin online")
			}
			// Its reply lost: the retry reports it again, same seq.
			if got := must(redisbroker.Hold(ctx, b, "erin", "acme", true)); got != on {
				t.Fatalf("the retry of a hold whose reply was lost: seq %d, want %d", got, on)
			}
			if err := redisbroker.Unmark(ctx, b, "erin", on); err != nil {
				t.Fatal(err)
			}
			if got := must(redisbroker.Hold(ctx, b, "erin", "acme", true)); got != 0 {
				t.Fatalf("a retry after the change was reported: seq %d, want none", got)
			}
			if err := redisbroker.Leave(ctx, b, "erin"); err != nil {
				t.Fatal(err)
			}
			off := must(redisbroker.Check(ctx, b, "erin", false))
			if off <= on {
				t.Fatalf("offline seq %d, want above the online's %d", off, on)
			}
			if got := must(redisbroker.Check(ctx, b, "erin", true)); got != off {
				t.Fatalf("the retry of a check whose reply was lost: seq %d, want %d", got, off)
			}
			if err := redisbroker.Unmark(ctx, b, "erin", off); err != nil {
				t.Fatal(err)
			}
			if got := must(redisbroker.Check(ctx, b, "erin", true)); got != 0 {
				t.Fatalf("a check retry after the change was reported: seq %d, want none", got)
			}
			if again := must(redisbroker.Hold(ctx, b, "erin", "acme", false)); again <= off {
				t.Fatalf("online again: seq %d, want above %d", again, off)
			}
		})
	}
}
