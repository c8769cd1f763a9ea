package ssekit_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ssekit/sse/internal/ssetest"
	"github.com/ssekit/sse/ssekit"
)

// hookLog checks that each stream gets one OnConnect, then one
// OnDisconnect, and counts the reasons.
type hookLog struct {
	mu       sync.Mutex
	state    map[string]int // client id → 1 connected, 2 disconnected
	reasons  map[string]int
	problems []string
}

func newHookLog() *hookLog {
	return &hookLog{state: map[string]int{}, reasons: map[string]int{}}
}

func (l *hookLog) connect(ci ssekit.ConnInfo) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.state[ci.ClientID] != 0 || ci.Reason != "" || !ci.Ended.IsZero() || ci.Connected.IsZero() {
		l.problems = append(l.problems, fmt.Sprintf("connect %+v in state %d", ci, l.state[ci.ClientID]))
	}
	l.state[ci.ClientID] = 1
}

func (l *hookLog) disconnect(ci ssekit.ConnInfo) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.state[ci.ClientID] != 1 || ci.Reason == "" || ci.Ended.Before(ci.Connected) {
		l.problems = append(l.problems, fmt.Sprintf("disconnect %+v in state %d", ci, l.state[ci.ClientID]))
	}
	l.state[ci.ClientID] = 2
	l.reasons[ci.Reason]++
}

// counts returns how many streams connected, and how many of them ended.
func (l *hookLog) counts() (connected, ended int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.state {
		connected++
		if s == 2 {
			ended++
		}
	}
	return connected, ended
}

// TestHooksOncePerStream: 1,000 streams of 20 users connect and go
// concurrently, some evicted by their user's newer ones, the last ones
// ended by shutdown; each gets exactly one OnConnect and then one
// OnDisconnect with the reason that ended it, and a stream refused
// before it was registered gets neither.
func TestHooksOncePerStream(t *testing.T) {
	for _, detach := range []bool{false, true} {
		t.Run(fmt.Sprintf("detach=%v", detach), func(t *testing.T) {
			log := newHookLog()
			h := newTestHub(t, ssekit.Config{MaxClients: 900, MaxClientsPerUser: 40, DetachStreams: detach,
				OnConnect: log.connect, OnDisconnect: log.disconnect})
			const streams, workers, kept = 1000, 16, 100
			var next, served, refused atomic.Int64
			var keptMu sync.Mutex
			var open []*ssetest.Conn
			var wg sync.WaitGroup
			for range workers {
				wg.Go(func() {
					for i := next.Add(1); i <= streams; i = next.Add(1) {
						c := ssetest.Dial(t, h.srv.URL, fmt.Sprintf("u%d", i%20), "")
						if c.Resp.StatusCode != http.StatusOK {
							t.Errorf("status %d", c.Resp.StatusCode)
							return
						}
						ev, ok := c.NextOrEnd()
						switch {
						case !ok:
							refused.Add(1) // over MaxClients: a retry hint, no stream
						case ev.Type == "connected" && i > streams-kept:
							served.Add(1)
							keptMu.Lock()
							open = append(open, c)
							keptMu.Unlock()
							continue
						default:
							served.Add(1)
						}
						c.Close()
					}
				})
			}
			wg.Wait()
			// A stream over MaxClients, refused before registration.
			hold := make([]*ssetest.Conn, 0, 900)
			for i := range 900 - len(open) {
				hold = append(hold, ssetest.DialOK(t, h.srv.URL, fmt.Sprintf("h%d", i), ""))
			}
			ssetest.Eventually(t, "the hub to be full", func() bool { return h.GetTotalClientCount() == 900 })
			over := ssetest.DialOK(t, h.srv.URL, "over", "")
			if _, ok := over.NextOrEnd(); ok {
				t.Fatal("a stream over MaxClients was served")
			}
			h.Close() // the rest end by shutdown
			want := int(served.Load()) + len(hold)
			connected, ended := log.counts()
			if connected != want || ended != want {
				t.Fatalf("%d streams served: %d connected, %d ended (refused %d)", want, connected, ended, refused.Load())
			}
			log.mu.Lock()
			defer log.mu.Unlock()
			if len(log.problems) > 0 {
				t.Fatalf("%d hook calls out of order, first: %s", len(log.problems), log.problems[0])
			}
			if log.reasons[ssekit.ReasonShutdown] < len(hold) || log.reasons[ssekit.ReasonClientGone] == 0 {
				t.Fatalf("reasons %v: want client_gone, and shutdown for at least the %d held", log.reasons, len(hold))
			}
		})
	}
}

// TestSlowHookDelaysOnlyItsStream: while one stream's OnConnect, and
// then its OnDisconnect, are blocked, other streams connect and receive
// events; a hook that panics is logged, and its stream and hub go on.
func TestSlowHookDelaysOnlyItsStream(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan string, 4)
	hold := func(ci ssekit.ConnInfo) {
		switch ci.Identity.User {
		case "slow":
			entered <- ci.Reason
			<-release
		case "panics":
			panic("the app's bug")
		}
	}
	h := newTestHub(t, ssekit.Config{OnConnect: hold, OnDisconnect: hold})

	slowDone := make(chan struct{})
	go func() {
		defer close(slowDone)
		resp := ssetest.Get(t, h.srv.URL, "slow")
		resp.Body.Close()
	}()
	if got := <-entered; got != "" {
		t.Fatalf("OnConnect got reason %q", got)
	}
	// The slow stream's OnConnect is blocked: others are served meanwhile.
	fast := h.dial(t, "fast", "")
	fast.Connected()
	panics := h.dial(t, "panics", "")
	panics.Connected()
	if _, err := h.Publish(t.Context(), ssekit.Target{Users: []string{"fast", "panics"}}, ssekit.Event{Type: "ping"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*ssetest.Conn{fast, panics} {
		if ev := c.NextOf(); ev.Type != "ping" {
			t.Fatalf("got %s, want ping while a hook is blocked", ev.Type)
		}
	}
	release <- struct{}{} // OnConnect returns; the stream runs
	<-slowDone            // the client left: its OnDisconnect blocks now
	if got := <-entered; got != ssekit.ReasonClientGone {
		t.Fatalf("OnDisconnect got reason %q, want %s", got, ssekit.ReasonClientGone)
	}
	if _, err := h.Publish(t.Context(), ssekit.Target{Users: []string{"fast"}}, ssekit.Event{Type: "pong"}); err != nil {
		t.Fatal(err)
	}
	if ev := fast.NextOf(); ev.Type != "pong" {
		t.Fatalf("got %s, want pong while OnDisconnect is blocked", ev.Type)
	}
	close(release)
}

// changeLog records OnPresence's reports.
type changeLog struct {
	mu  sync.Mutex
	got []string
}

func (l *changeLog) record(ch ssekit.PresenceChange) {
	l.mu.Lock()
	defer l.mu.Unlock()
	state := "offline"
	if ch.Online {
		state = "online"
	}
	l.got = append(l.got, ch.User+" "+state)
}

func (l *changeLog) take() []string { return drain(&l.mu, &l.got) }

// drain empties the list *s, guarded by mu, and returns what it held.
func drain(mu *sync.Mutex, s *[]string) []string {
	mu.Lock()
	defer mu.Unlock()
	out := *s
	*s = nil
	return out
}

// TestPresenceDebounce, on one node (the memory broker): a user's first
// stream reports it online; streams that come and go while it has
// another, or a reconnect within PresenceDebounce, report nothing; the
// last stream ending reports it offline PresenceDebounce later, once.
func TestPresenceDebounce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log changeLog
		const debounce = 5 * time.Second
		hub := ssekit.NewHub(ssekit.Config{PresenceDebounce: debounce, OnPresence: log.record, HeartbeatInterval: -1, MaxStreamAge: -1})
		defer hub.Close()
		open := func(user string) (closeIt func()) {
			ctx, cancel := context.WithCancel(context.Background())
			done := serve(hub, newRecorder(), ctx, user)
			synctest.Wait()
			return func() { cancel(); <-done; synctest.Wait() }
		}
		expect := func(what string, want ...string) {
			t.Helper()
			if got := log.take(); !slices.Equal(got, want) {
				t.Fatalf("%s: reported %q, want %q", what, got, want)
			}
		}
		a1 := open("alice")
		expect("first stream", "alice online")
		a2 := open("alice")
		a1()
		expect("a second stream, then the first ends")
		a2()
		time.Sleep(debounce - time.Second)
		synctest.Wait()
		expect("within the debounce")
		a3 := open("alice") // a reconnect
		time.Sleep(2 * debounce)
		synctest.Wait()
		expect("after a reconnect within the debounce")
		if online, err := hub.IsOnline(context.Background(), "alice"); err != nil || !online {
			t.Fatalf("IsOnline(alice) = %v, %v, want true", online, err)
		}
		a3()
		if online, _ := hub.IsOnline(context.Background(), "alice"); online {
			t.Fatal("IsOnline(alice) with no stream = true")
		}
		time.Sleep(debounce)
		synctest.Wait()
		expect("the debounce after the last stream", "alice offline")
		b := open("bob")
		b()
		expect("bob came", "bob online")
		hub.Close() // bob's offline report is pending: dropped, and its timer stopped
		time.Sleep(2 * debounce)
		synctest.Wait()
		expect("after Close")
	})
}

// TestRecipients: a publish with CountRecipients reports how many of this
// node's streams it was addressed to (a stream reached through several
// addressees counts once) and which users are online.
func TestRecipients(t *testing.T) {
	h := newTestHub(t, ssekit.Config{AuthorizeTopic: ssekit.AllowAllTopics})
	a1, _ := h.dial(t, "alice", ""), h.dial(t, "alice", "")
	bob := h.dial(t, "bob", "")
	ssetest.DialOK(t, h.srv.URL+"?topic=news", "carol", "").Connected()
	ssetest.DialOK(t, h.srv.URL, "", "").Connected() // anonymous
	alice := a1.Connected().ClientID
	bob.Connected()
	cases := []struct {
		name   string
		to     ssekit.Target
		conns  int
		online map[string]bool
	}{
		{"two users and one offline", ssekit.Target{Users: []string{"alice", "bob", "dave"}}, 3, map[string]bool{"alice": true, "bob": true, "dave": false}},
		{"a user and one of its streams", ssekit.Target{Users: []string{"alice"}, Clients: []string{alice}}, 2, map[string]bool{"alice": true}},
		{"a topic and its follower", ssekit.Target{Users: []string{"carol"}, Topics: []string{"news"}}, 1, map[string]bool{"carol": true}},
		{"everyone", ssekit.Target{All: true}, 5, nil},
		{"nobody here", ssekit.Target{Users: []string{"erin"}}, 0, map[string]bool{"erin": false}},
	}
	for _, tc := range cases {
		var r ssekit.Recipients
		if _, err := h.Publish(t.Context(), tc.to, ssekit.Event{Type: "x"}, ssekit.CountRecipients(&r)); err != nil {
			t.Fatal(err)
		}
		if r.Connections != tc.conns || !maps.Equal(r.Online, tc.online) || r.PresenceErr != nil {
			t.Errorf("%s: %+v, want %d connections, online %v", tc.name, r, tc.conns, tc.online)
		}
	}
	// A replay sends nothing, and says so.
	var r ssekit.Recipients
	for range 2 {
		if _, err := h.Publish(t.Context(), ssekit.Target{Users: []string{"alice"}}, ssekit.Event{Type: "x"},
			ssekit.IdempotencyKey("k1"), ssekit.CountRecipients(&r)); err != nil {
			t.Fatal(err)
		}
	}
	if r.Connections != 0 || !r.Online["alice"] {
		t.Fatalf("replayed publish: %+v, want 0 connections, alice online", r)
	}
}

// storeBroker is a memory broker that is a PresenceStore too: a cluster
// whose other nodes hold the users in remote.
type storeBroker struct {
	*ssekit.MemoryBroker
	mu      sync.Mutex
	remote  map[string]bool
	asked   []string
	changed []string
	fail    error
}

func (s *storeBroker) UsersOnline(_ context.Context, users []string) ([]bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asked = append(s.asked, users...)
	if s.fail != nil {
		return nil, s.fail
	}
	out := make([]bool, len(users))
	for i, u := range users {
		out[i] = s.remote[u]
	}
	return out, nil
}

func (s *storeBroker) OnlineUsers(context.Context) (int, error) { return 42, nil }

func (s *storeBroker) UserChanged(user, tenant string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.changed = append(s.changed, user)
}

func (s *storeBroker) takeAsked() []string { return drain(&s.mu, &s.asked) }

func (s *storeBroker) StopPresence(ssekit.PresenceNode) {}

// TestPresenceStore: with a broker that is a PresenceStore, the hub
// answers for its own users without asking it, asks it about the others
// (only them), tells it of every stream that starts or ends, takes its
// count, and reports users it could not ask about offline, with the
// error.
func TestPresenceStore(t *testing.T) {
	mem := ssekit.NewMemoryBroker(10, time.Minute)
	defer mem.Close()
	sb := &storeBroker{MemoryBroker: mem, remote: map[string]bool{"remote": true}}
	h := newTestHub(t, ssekit.Config{Broker: sb})
	c := h.dial(t, "local", "")
	c.Connected()
	got, err := h.UsersOnline(t.Context(), []string{"local", "remote", "nobody", "remote"})
	if err != nil || !maps.Equal(got, map[string]bool{"local": true, "remote": true, "nobody": false}) {
		t.Fatalf("UsersOnline = %v, %v", got, err)
	}
	if asked := sb.takeAsked(); !slices.Equal(asked, []string{"nobody", "remote"}) {
		t.Fatalf("the store was asked about %v, want nobody and remote once each", asked)
	}
	if n, err := h.OnlineUserCount(t.Context()); n != 42 || err != nil {
		t.Fatalf("OnlineUserCount = %d, %v, want the store's", n, err)
	}
	sb.mu.Lock()
	sb.fail = errors.New("redis down")
	sb.mu.Unlock()
	var r ssekit.Recipients
	if _, err := h.Publish(t.Context(), ssekit.Target{Users: []string{"local", "remote"}}, ssekit.Event{Type: "x"}, ssekit.CountRecipients(&r)); err != nil {
		t.Fatalf("a publish whose presence query failed: %v, want it published", err)
	}
	if r.Connections != 1 || !r.Online["local"] || r.Online["remote"] || r.PresenceErr == nil {
		t.Fatalf("with the store failing: %+v, want local online, remote counted offline, and the error", r)
	}
	c.Close()
	ssetest.Eventually(t, "the store to hear of the stream's end", func() bool {
		sb.mu.Lock()
		defer sb.mu.Unlock()
		return slices.Equal(sb.changed, []string{"local", "local"})
	})
}

// ExampleRecipients sends a notification to users and pushes it by other
// means to those who were not online anywhere: "push if offline".
func ExampleRecipients() {
	hub := ssekit.NewHub(ssekit.DefaultConfig())
	srv := httptest.NewServer(hub.Handler(ssekit.HandlerOptions{
		Authenticate: func(r *http.Request) (string, error) { return r.Header.Get("X-User"), nil },
	}))
	defer srv.Close()
	defer hub.Close() // before srv.Close, which waits for open streams

	// Alice has the app open; Bob does not.
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set("X-User", "alice")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()

	users := []string{"alice", "bob"}
	var r ssekit.Recipients
	_, err = hub.Publish(context.Background(), ssekit.Target{Users: users},
		ssekit.Event{Type: "message", Data: map[string]string{"text": "lunch?"}}, ssekit.CountRecipients(&r))
	if err != nil {
		panic(err)
	}
	fmt.Println("streams reached on this node:", r.Connections)
	for _, u := range users {
		if !r.Online[u] { // the one line: push if offline
			fmt.Println("push notification to", u)
		}
	}
	// Output:
	// streams reached on this node: 1
	// push notification to bob
}

// TestHooksMayCallTheHub: the hooks run under no hub lock, so a hook that
// calls back into the hub — a presence query, a count, a publish — works,
// detached or not; a lock held around a hook would deadlock here.
func TestHooksMayCallTheHub(t *testing.T) {
	for _, detach := range []bool{false, true} {
		t.Run(fmt.Sprintf("detach=%v", detach), func(t *testing.T) {
			var hub atomic.Pointer[ssekit.Hub]
			done := make(chan string, 4)
			call := func(what string, info ssekit.ConnInfo) {
				h := hub.Load()
				online, err := h.IsOnline(context.Background(), info.Identity.User)
				if err != nil {
					t.Errorf("%s: IsOnline: %v", what, err)
				}
				_ = h.UserClientCount(info.Identity.User)
				_ = h.Stats()
				_, err = h.Publish(context.Background(), ssekit.Target{Users: []string{"other"}}, ssekit.Event{Type: what})
				if err != nil && !errors.Is(err, ssekit.ErrHubClosed) { // the last ones, at cleanup
					t.Errorf("%s: Publish: %v", what, err)
				}
				done <- fmt.Sprintf("%s online=%v", what, online)
			}
			h := newTestHub(t, ssekit.Config{DetachStreams: detach,
				OnConnect:    func(info ssekit.ConnInfo) { call("connect", info) },
				OnDisconnect: func(info ssekit.ConnInfo) { call("disconnect", info) }})
			hub.Store(h.Hub)
			other := h.dial(t, "other", "")
			<-done // other's own connect
			c := h.dial(t, "alice", "")
			c.Connected()
			if got := <-done; got != "connect online=true" {
				t.Fatalf("alice's OnConnect: %s", got)
			}
			c.Close()
			if got := <-done; got != "disconnect online=false" {
				t.Fatalf("alice's OnDisconnect: %s", got)
			}
			other.Connected()
		})
	}
}
