// Package brokertest is the conformance suite every sse.Broker must pass,
// in the manner of testing/slogtest: a broker package calls Run from its own
// tests with a function that makes a fresh broker, and the suite checks the
// written contract of sse.Broker against it (delivery, order, exactly-once,
// replay, ErrUnknownID, context handling and stopping).
//
//	func TestConformance(t *testing.T) {
//		brokertest.Run(t, func(t *testing.T) sse.Broker {
//			b := sse.NewMemoryBroker(64, 0)
//			t.Cleanup(func() { b.Close() })
//			return b
//		})
//	}
//
// The suite waits for asynchronous deliveries with generous bounds and
// never asserts how fast anything is.
package brokertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sse "github.com/ssekit/sse"
)

// MinHistory is how many of the newest messages a broker under test must
// keep for replay; a smaller history fails the suite.
const MinHistory = 10

// MaxHistory bounds the history the suite is willing to fill to see a
// broker trim: a broker under test must trim some of its history once
// MaxHistory messages have been published, or its trimming case fails.
const MaxHistory = 5000

// wait bounds every wait for an asynchronous delivery. It is a failure
// bound for a broken broker, not a performance expectation.
const wait = 15 * time.Second

// Run runs the suite. newBroker is called once per case, with that case's
// *testing.T, and must return a broker with an empty history that keeps at
// least MinHistory messages and trims before MaxHistory; it registers the
// broker's cleanup with t.Cleanup. Cases run one after another.
func Run(t *testing.T, newBroker func(t *testing.T) sse.Broker) {
	t.Helper()
	cases := []struct {
		name string
		fn   func(*testing.T, sse.Broker)
	}{
		{"DeliveryAfterSubscribe", testDelivery},
		{"OnlyAfterSubscribe", testOnlyAfterSubscribe},
		{"HeadOfEmptyBroker", testHeadEmpty},
		{"HeadFollowsPublish", testHeadFollows},
		{"ReplayAfterID", testReplay},
		{"ReplayStopsAtCallbackError", testReplayCallbackError},
		{"ReplayMalformedID", testReplayMalformed},
		{"ReplayFutureID", testReplayFuture},
		{"ReplayTrimmedID", testReplayTrimmed},
		{"OrderUnderConcurrentPublishers", testConcurrentOrder},
		{"ExactlyOncePerSubscriber", testExactlyOnce},
		{"PublishRespectsContext", testPublishContext},
		{"ReplayRespectsContext", testReplayContext},
		{"SubscribeRespectsContext", testSubscribeContext},
		{"NothingAfterSubscriptionEnds", testStop},
		{"Close", testClose},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.fn(t, newBroker(t))
		})
	}
}

// collector is a subscription callback that records what it is handed and
// checks that it is never called concurrently.
type collector struct {
	inFlight   atomic.Int32
	concurrent atomic.Bool

	mu     sync.Mutex
	msgs   []sse.Message
	notify chan struct{} // capacity 1: "msgs grew"
}

func newCollector() *collector { return &collector{notify: make(chan struct{}, 1)} }

func (c *collector) fn(m sse.Message) {
	if c.inFlight.Add(1) > 1 {
		c.concurrent.Store(true)
	}
	defer c.inFlight.Add(-1)
	c.mu.Lock()
	c.msgs = append(c.msgs, m)
	c.mu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

func (c *collector) snapshot() []sse.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.msgs)
}

// waitFor waits until the collector holds at least n messages and returns
// them; it fails the test after wait.
func (c *collector) waitFor(t *testing.T, n int) []sse.Message {
	t.Helper()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		if got := c.snapshot(); len(got) >= n {
			if c.concurrent.Load() {
				t.Error("the subscription callback was called concurrently")
			}
			return got
		}
		select {
		case <-c.notify:
		case <-timer.C:
			got := c.snapshot()
			t.Fatalf("subscription received %d messages within %v, want %d: %s", len(got), wait, n, brief(ids(got)))
		}
	}
}

// has reports whether the collector holds a message with id.
func (c *collector) has(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.msgs {
		if m.ID == id {
			return true
		}
	}
	return false
}

func subscribe(t *testing.T, b sse.Broker) *collector {
	t.Helper()
	c := newCollector()
	if err := b.Subscribe(t.Context(), c.fn); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	return c
}

func publish(t *testing.T, b sse.Broker, m sse.Message) string {
	t.Helper()
	id, err := b.Publish(t.Context(), m)
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if !sse.ValidID(id) {
		t.Fatalf("Publish returned id %q, which is not a valid broker id", id)
	}
	return id
}

// publishAll publishes ms in order and returns their ids.
func publishAll(t *testing.T, b sse.Broker, ms []sse.Message) []string {
	t.Helper()
	ids := make([]string, 0, len(ms))
	for _, m := range ms {
		ids = append(ids, publish(t, b, m))
	}
	return ids
}

// publishN publishes n broadcasts of type typ and returns their ids.
func publishN(t *testing.T, b sse.Broker, typ string, n int) []string {
	t.Helper()
	out := make([]string, n)
	for i := range out {
		out[i] = publish(t, b, sse.Message{Type: typ, Data: fmt.Appendf(nil, `{"n":%d}`, i)})
	}
	return out
}

func head(t *testing.T, b sse.Broker) string {
	t.Helper()
	h, err := b.Head(t.Context())
	if err != nil {
		t.Fatalf("Head: %v", err)
	}
	if !sse.ValidID(h) {
		t.Fatalf("Head = %q, which is not a valid broker id", h)
	}
	return h
}

// replay returns what Replay hands fn after afterID, and its error.
func replay(ctx context.Context, b sse.Broker, afterID string) ([]sse.Message, error) {
	var got []sse.Message
	err := b.Replay(ctx, afterID, func(m sse.Message) error {
		got = append(got, m)
		return nil
	})
	return got, err
}

// brief abbreviates a list of ids for a failure message.
func brief(ids []string) string {
	if len(ids) <= 6 {
		return fmt.Sprint(ids)
	}
	return fmt.Sprintf("%v … %v (%d ids)", ids[:3], ids[len(ids)-3:], len(ids))
}

func ids(ms []sse.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

// checkIncreasing fails unless the messages' ids strictly increase.
func checkIncreasing(t *testing.T, what string, ms []sse.Message) {
	t.Helper()
	for i := 1; i < len(ms); i++ {
		if sse.CompareIDs(ms[i-1].ID, ms[i].ID) >= 0 {
			t.Fatalf("%s: id %q at %d is not after %q", what, ms[i].ID, i, ms[i-1].ID)
		}
	}
}

// sameMessage fails unless got carries what want was published with.
func sameMessage(t *testing.T, what string, got sse.Message, wantID string, want sse.Message) {
	t.Helper()
	if got.ID != wantID {
		t.Errorf("%s: ID = %q, want %q", what, got.ID, wantID)
	}
	if got.Type != want.Type {
		t.Errorf("%s: Type = %q, want %q", what, got.Type, want.Type)
	}
	if !bytes.Equal(got.Data, want.Data) {
		t.Errorf("%s: Data = %.80q, want %.80q", what, got.Data, want.Data)
	}
	if !slices.Equal(got.Users, want.Users) {
		t.Errorf("%s: Users = %q, want %q", what, got.Users, want.Users)
	}
	if !slices.Equal(got.Clients, want.Clients) {
		t.Errorf("%s: Clients = %q, want %q", what, got.Clients, want.Clients)
	}
	if got.Time.IsZero() {
		t.Errorf("%s: Time is zero; Publish must set it", what)
	}
}

// samples are messages with every kind of address and awkward content,
// so that a broker's encoding is checked as well as its routing.
func samples() []sse.Message {
	big := bytes.Repeat([]byte("x"), 70_000)
	return []sse.Message{
		{Type: "notification", Data: []byte(`{"title":"New follower!"}`)},
		{Users: []string{"a", "b,c", "ü ser"}, Type: "update", Data: []byte(`{"n":1}`)},
		{Clients: []string{"client-1"}, Type: "", Data: []byte(`null`)},
		{Users: []string{"u"}, Clients: []string{"c1", "c2"}, Type: "both", Data: []byte(`"two\nlines\r\x00"`)},
		{Type: "big", Data: append(append([]byte(`"`), big...), '"')},
		{Type: "empty-data", Data: []byte{}},
	}
}

// testDelivery: a subscriber gets every message published after Subscribe
// returned, in order, with the ids Publish returned and the fields intact.
func testDelivery(t *testing.T, b sse.Broker) {
	c := subscribe(t, b)
	want := samples()
	wantIDs := publishAll(t, b, want)
	got := c.waitFor(t, len(want))
	if len(got) != len(want) {
		t.Fatalf("received %d messages, want %d: %s", len(got), len(want), brief(ids(got)))
	}
	checkIncreasing(t, "delivery", got)
	for i := range want {
		sameMessage(t, fmt.Sprintf("message %d", i), got[i], wantIDs[i], want[i])
	}
}

// testOnlyAfterSubscribe: a subscription does not see what was published
// before Subscribe was called.
func testOnlyAfterSubscribe(t *testing.T, b sse.Broker) {
	publishN(t, b, "before", 3)
	c := subscribe(t, b)
	after := publishN(t, b, "after", 3)
	got := c.waitFor(t, 3)
	if !slices.Equal(ids(got), after) {
		t.Fatalf("received %v, want only the messages published after Subscribe %v", ids(got), after)
	}
}

// testHeadEmpty: an empty broker has a valid head, and replaying after it
// is empty and succeeds; what is published next follows it.
func testHeadEmpty(t *testing.T, b sse.Broker) {
	h := head(t, b)
	got, err := replay(t.Context(), b, h)
	if err != nil {
		t.Fatalf("Replay(Head() = %q) of an empty broker: %v", h, err)
	}
	if len(got) != 0 {
		t.Fatalf("Replay(Head()) of an empty broker handed %v", ids(got))
	}
	pub := publishN(t, b, "first", 2)
	if sse.CompareIDs(pub[0], h) <= 0 {
		t.Fatalf("first id %q is not after the empty broker's head %q", pub[0], h)
	}
	got, err = replay(t.Context(), b, h)
	if err != nil {
		t.Fatalf("Replay(empty head %q) after publishing: %v", h, err)
	}
	if !slices.Equal(ids(got), pub) {
		t.Fatalf("Replay(empty head) = %v, want %v", ids(got), pub)
	}
}

// testHeadFollows: Head is the newest id, and replaying after it is empty.
func testHeadFollows(t *testing.T, b sse.Broker) {
	pub := publishN(t, b, "x", 3)
	h := head(t, b)
	if h != pub[2] {
		t.Fatalf("Head = %q, want the newest id %q", h, pub[2])
	}
	got, err := replay(t.Context(), b, h)
	if err != nil || len(got) != 0 {
		t.Fatalf("Replay(Head()) = %v, %v; want nothing, nil", ids(got), err)
	}
}

// testReplay: Replay after an id hands exactly what followed it, in order,
// with the fields intact; after the empty head, everything.
func testReplay(t *testing.T, b sse.Broker) {
	start := head(t, b)
	want := samples()
	wantIDs := publishAll(t, b, want)
	for k := -1; k < len(wantIDs); k++ {
		after := start
		if k >= 0 {
			after = wantIDs[k]
		}
		got, err := replay(t.Context(), b, after)
		if err != nil {
			t.Fatalf("Replay(%q): %v", after, err)
		}
		if !slices.Equal(ids(got), wantIDs[k+1:]) {
			t.Fatalf("Replay(%q) = %v, want %v", after, ids(got), wantIDs[k+1:])
		}
		for i, m := range got {
			sameMessage(t, fmt.Sprintf("Replay(%q)[%d]", after, i), m, wantIDs[k+1+i], want[k+1+i])
		}
	}
}

// testReplayCallbackError: Replay stops at fn's first error and returns it.
func testReplayCallbackError(t *testing.T, b sse.Broker) {
	start := head(t, b)
	publishN(t, b, "x", 5)
	stop := errors.New("brokertest: stop here")
	calls := 0
	err := b.Replay(t.Context(), start, func(sse.Message) error {
		calls++
		if calls == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Fatalf("Replay returned %v, want fn's error %v", err, stop)
	}
	if calls != 2 {
		t.Fatalf("fn was called %d times, want 2 (Replay must stop at its first error)", calls)
	}
}

// unknown checks that Replay(afterID) fails with ErrUnknownID without
// calling fn.
func unknown(t *testing.T, b sse.Broker, afterID, why string) {
	t.Helper()
	got, err := replay(t.Context(), b, afterID)
	if !errors.Is(err, sse.ErrUnknownID) {
		t.Errorf("Replay(%.40q) (%s) = %v, want sse.ErrUnknownID", afterID, why, err)
	}
	if len(got) != 0 {
		t.Errorf("Replay(%.40q) (%s) called fn with %s before failing; it must call it for nothing", afterID, why, brief(ids(got)))
	}
}

// testReplayMalformed: ids that are not of the broker id form are unknown.
func testReplayMalformed(t *testing.T, b sse.Broker) {
	publishN(t, b, "x", 3)
	for _, id := range []string{"", "abc", "-", "1-", "-1", "1--2", "1.5", " 1-0", "1-0 ", "0x10", "1-a", strings.Repeat("9", 200)} {
		unknown(t, b, id, "malformed")
	}
}

// testReplayFuture: an id after the newest one was never issued.
func testReplayFuture(t *testing.T, b sse.Broker) {
	unknown(t, b, increment(head(t, b)), "after the head of an empty broker")
	publishN(t, b, "x", 3)
	h := head(t, b)
	unknown(t, b, increment(h), "just after the head")
	unknown(t, b, "99999999999999999999-99999999999999999999", "far in the future")
}

// increment returns id with its last field one higher, the smallest id
// after it.
func increment(id string) string {
	i := strings.LastIndexByte(id, '-') + 1
	digits := []byte(id[i:])
	for j := len(digits) - 1; j >= 0; j-- {
		if digits[j] < '9' {
			digits[j]++
			return id[:i] + string(digits)
		}
		digits[j] = '0'
	}
	return id[:i] + "1" + string(digits)
}

// testReplayTrimmed fills the history until the broker trims, then checks
// every published id: Replay after it either returns ErrUnknownID, having
// called fn for nothing, or hands exactly the messages published after it.
// Once one id replays, every later one does, and the newest MinHistory do.
func testReplayTrimmed(t *testing.T, b sse.Broker) {
	start := head(t, b)
	var pub []string
	const batch = 50
	for len(pub) < MaxHistory {
		pub = append(pub, publishN(t, b, "fill", batch)...)
		if _, err := replay(t.Context(), b, start); errors.Is(err, sse.ErrUnknownID) {
			break
		} else if err != nil {
			t.Fatalf("Replay(%q): %v", start, err)
		}
	}
	unknown(t, b, start, "before trimmed messages")
	replayable := false
	for i, id := range pub {
		got, err := replay(t.Context(), b, id)
		switch {
		case errors.Is(err, sse.ErrUnknownID):
			if len(got) != 0 {
				t.Fatalf("Replay(%q) called fn with %d messages, then returned ErrUnknownID", id, len(got))
			}
			if replayable {
				t.Fatalf("Replay(%q) = ErrUnknownID, but an earlier id replayed: trimming is from the oldest", id)
			}
			if i >= len(pub)-MinHistory {
				t.Fatalf("Replay(%q), %d from the newest, = ErrUnknownID; the broker must keep at least %d", id, len(pub)-1-i, MinHistory)
			}
		case err != nil:
			t.Fatalf("Replay(%q): %v", id, err)
		default:
			replayable = true
			if !slices.Equal(ids(got), pub[i+1:]) {
				t.Fatalf("Replay(%q) handed %s, want the %d published after it", id, brief(ids(got)), len(pub)-i-1)
			}
		}
	}
}

// testConcurrentOrder: concurrent publishers' messages reach every
// subscriber once each, in one id order that both subscribers and Replay
// agree on, with each publisher's messages in the order it published them.
func testConcurrentOrder(t *testing.T, b sse.Broker) {
	const publishers, each = 4, 50
	c1, c2 := subscribe(t, b), subscribe(t, b)
	var wg sync.WaitGroup
	returned := make([][]string, publishers)
	errs := make(chan error, publishers)
	for p := range publishers {
		wg.Go(func() {
			for i := range each {
				id, err := b.Publish(t.Context(), sse.Message{Type: fmt.Sprintf("p%d", p), Data: fmt.Appendf(nil, "%d", i)})
				if err != nil {
					errs <- err
					return
				}
				returned[p] = append(returned[p], id)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent Publish: %v", err)
	}
	got1, got2 := c1.waitFor(t, publishers*each), c2.waitFor(t, publishers*each)
	if len(got1) != publishers*each {
		t.Fatalf("subscriber received %d messages, want %d", len(got1), publishers*each)
	}
	checkIncreasing(t, "subscriber", got1)
	if !slices.Equal(ids(got1), ids(got2)) {
		t.Fatal("two subscribers received different sequences")
	}
	// The history may keep only MinHistory of them: replay that tail.
	from := got1[len(got1)-MinHistory-1].ID
	tail, err := replay(t.Context(), b, from)
	if err != nil {
		t.Fatalf("Replay(%q): %v", from, err)
	}
	if want := ids(got1[len(got1)-MinHistory:]); !slices.Equal(ids(tail), want) {
		t.Fatalf("Replay(%q) = %s, want the subscribers' sequence %s", from, brief(ids(tail)), brief(want))
	}
	// Each publisher's own messages, in its order, with the ids it got.
	for p := range publishers {
		var mine []string
		for _, m := range got1 {
			if m.Type == fmt.Sprintf("p%d", p) {
				mine = append(mine, m.ID)
			}
		}
		if !slices.Equal(mine, returned[p]) {
			t.Fatalf("publisher %d's messages arrived as %v, want %v", p, mine, returned[p])
		}
	}
}

// testExactlyOnce: subscribers that come and go each see each message
// published during their subscription once.
func testExactlyOnce(t *testing.T, b sse.Broker) {
	c1 := subscribe(t, b)
	first := publishN(t, b, "a", 20)
	c2 := subscribe(t, b)
	second := publishN(t, b, "b", 20)
	c1.waitFor(t, 40)
	c2.waitFor(t, 20)
	// One more round trip, so that a duplicate would have had time to come.
	marker := publish(t, b, sse.Message{Type: "marker"})
	got1 := c1.waitFor(t, 41)
	got2 := c2.waitFor(t, 21)
	if want := append(append(slices.Clone(first), second...), marker); !slices.Equal(ids(got1), want) {
		t.Fatalf("first subscriber received %s, want each message once: %s", brief(ids(got1)), brief(want))
	}
	if want := append(slices.Clone(second), marker); !slices.Equal(ids(got2), want) {
		t.Fatalf("second subscriber received %s, want each later message once: %s", brief(ids(got2)), brief(want))
	}
}

// testPublishContext: a Publish whose ctx is done fails with ctx's error
// and publishes nothing.
func testPublishContext(t *testing.T, b sse.Broker) {
	c := subscribe(t, b)
	before := head(t, b)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if id, err := b.Publish(ctx, sse.Message{Type: "cancelled"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Publish with a cancelled ctx = %q, %v; want context.Canceled", id, err)
	}
	if h := head(t, b); h != before {
		t.Fatalf("Head moved from %q to %q after a cancelled Publish", before, h)
	}
	marker := publish(t, b, sse.Message{Type: "marker"})
	got := c.waitFor(t, 1)
	if got[0].ID != marker {
		t.Fatalf("subscriber received %q (%s) before the marker: the cancelled Publish was delivered", got[0].ID, got[0].Type)
	}
}

// testReplayContext: Replay with a done ctx fails with ctx's error without
// calling fn, and stops when ctx is cancelled from fn.
func testReplayContext(t *testing.T, b sse.Broker) {
	start := head(t, b)
	publishN(t, b, "x", 5)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	got, err := replay(ctx, b, start)
	if !errors.Is(err, context.Canceled) || len(got) != 0 {
		t.Fatalf("Replay with a cancelled ctx = %d messages, %v; want none, context.Canceled", len(got), err)
	}

	ctx, cancel = context.WithCancel(t.Context())
	defer cancel()
	calls := 0
	err = b.Replay(ctx, start, func(sse.Message) error {
		calls++
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Replay cancelled from fn returned %v, want context.Canceled", err)
	}
	if calls != 1 {
		t.Fatalf("Replay called fn %d times after ctx was cancelled in the first call, want 1", calls)
	}
}

// testSubscribeContext: Subscribe with a done ctx either fails or
// delivers nothing.
func testSubscribeContext(t *testing.T, b sse.Broker) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	dead := newCollector()
	if err := b.Subscribe(ctx, dead.fn); err != nil {
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Subscribe with a cancelled ctx = %v; want nil or context.Canceled", err)
		}
		return
	}
	witness := subscribe(t, b)
	drainAfterStop(t, b, dead, witness, false)
}

// testStop: once a subscription's ctx is done, its callback stops being
// called, and other subscriptions go on.
func testStop(t *testing.T, b sse.Broker) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	victim := newCollector()
	if err := b.Subscribe(ctx, victim.fn); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	witness := subscribe(t, b)
	publishN(t, b, "live", 3)
	victim.waitFor(t, 3)
	cancel()
	drainAfterStop(t, b, victim, witness, true)
}

// drainAfterStop publishes markers, each confirmed by the live witness,
// until the stopped subscription misses one (a broker may finish a
// delivery that was under way when ctx was cancelled, so it gets a few),
// then checks that it receives none of ten more.
func drainAfterStop(t *testing.T, b sse.Broker, stopped, witness *collector, mayLag bool) {
	t.Helper()
	n := len(witness.snapshot())
	deadline := time.Now().Add(wait)
	for {
		id := publish(t, b, sse.Message{Type: "marker"})
		n++
		witness.waitFor(t, n)
		if !stopped.has(id) {
			break
		}
		if !mayLag {
			t.Fatal("a subscription whose ctx was done before Subscribe received a message")
		}
		if time.Now().After(deadline) {
			t.Fatalf("the subscription still received messages %v after its ctx was done", wait)
		}
	}
	before := len(stopped.snapshot())
	for range 10 {
		publish(t, b, sse.Message{Type: "after"})
		n++
	}
	witness.waitFor(t, n)
	if got := stopped.snapshot(); len(got) != before {
		t.Fatalf("the stopped subscription received %s after it had stopped", brief(ids(got[before:])))
	}
}

// testClose: a broker that can be closed fails every later call with
// sse.ErrBrokerClosed. Brokers without Close skip this case.
func testClose(t *testing.T, b sse.Broker) {
	cl, ok := b.(interface{ Close() error })
	if !ok {
		t.Skip("the broker has no Close method")
	}
	start := head(t, b)
	publishN(t, b, "x", 2)
	if err := cl.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := b.Publish(t.Context(), sse.Message{}); !errors.Is(err, sse.ErrBrokerClosed) {
		t.Errorf("Publish after Close = %v, want sse.ErrBrokerClosed", err)
	}
	if err := b.Subscribe(t.Context(), func(sse.Message) {}); !errors.Is(err, sse.ErrBrokerClosed) {
		t.Errorf("Subscribe after Close = %v, want sse.ErrBrokerClosed", err)
	}
	if _, err := replay(t.Context(), b, start); !errors.Is(err, sse.ErrBrokerClosed) {
		t.Errorf("Replay after Close = %v, want sse.ErrBrokerClosed", err)
	}
	if _, err := b.Head(t.Context()); !errors.Is(err, sse.ErrBrokerClosed) {
		t.Errorf("Head after Close = %v, want sse.ErrBrokerClosed", err)
	}
}
