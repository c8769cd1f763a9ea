// Package brokertest is the conformance suite every ssekit.Broker must pass,
// in the manner of testing/slogtest: a broker package calls Run from its own
// tests with a function that makes a fresh broker, and the suite checks the
// written contract of ssekit.Broker against it: live delivery of followed
// channels, order and exactly-once per channel, reads of each channel's own
// history (which other channels' traffic never trims), what a publish to
// several channels carries (whole, or a copy per channel with its
// Message.Also), positions and ErrUnknownID, idempotency keys
// (Message.Key: a repeat stored and delivered nothing, answered with the
// first's id), context handling and stopping.
//
//	func TestConformance(t *testing.T) {
//		brokertest.Run(t, func(t *testing.T) ssekit.Broker {
//			b := ssekit.NewMemoryBroker(64, 0)
//			t.Cleanup(func() { b.Close() })
//			return b
//		})
//	}
//
// Options give the suite more to check with: WithPeer, a second node of
// the same cluster, and WithKeyWindow, brokers that forget idempotency
// keys soon.
//
// The suite waits for asynchronous deliveries with generous bounds and
// never asserts how fast anything is.
package brokertest

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ssekit/sse/internal/ssetest"
	"github.com/ssekit/sse/ssekit"
)

// MinHistory is how many of the newest messages of a channel a broker
// under test must keep for replay; a smaller history fails the suite.
const MinHistory = 10

// MaxHistory bounds the messages the suite is willing to publish to one
// channel to see a broker trim it: a broker under test must trim some of a
// channel's history once MaxHistory messages have been published to it,
// or its trimming case fails.
const MaxHistory = 5000

// page is the limit the suite reads with.
const page = 1000

// Run runs the suite. newBroker is called once per case, with that case's
// *testing.T, and must return a broker whose channels are empty, each
// keeping at least MinHistory messages and trimming before MaxHistory,
// with no bound on their total that MaxHistory messages would reach, and
// remembering idempotency keys for minutes (ssekit.DefaultKeyWindow); it
// registers the broker's cleanup with t.Cleanup. Cases run one after
// another.
func Run(t *testing.T, newBroker func(t *testing.T) ssekit.Broker, opts ...Option) {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	cases := []struct {
		name string
		fn   func(*testing.T, ssekit.Broker)
	}{
		{"DeliveryOfFollowedChannels", testDelivery},
		{"OnlyAfterSubscribe", testOnlyAfterSubscribe},
		{"FollowIsCounted", testFollowCounted},
		{"HeadOfEmptyChannel", testHeadEmpty},
		{"HeadFollowsPublish", testHeadFollows},
		{"ReadAfterPosition", testRead},
		{"ReadPages", testReadPages},
		{"ChannelsAreIndependent", testIndependent},
		{"PublishToSeveralChannels", testSeveralChannels},
		{"KeyedPublishStoredOnce", testKeyedOnce},
		{"KeyedPublishFromTwoNodesAtOnce", func(t *testing.T, b ssekit.Broker) { testKeyedConcurrent(t, b, o.peer) }},
		{"KeyReusedForAnotherPublish", testKeyConflict},
		{"ReadMalformedPosition", testReadMalformed},
		{"ReadFuturePosition", testReadFuture},
		{"ReadTrimmedPosition", testReadTrimmed},
		{"PublishNeedsAnAddressee", testPublishValidation},
		{"OrderUnderConcurrentPublishers", testConcurrentOrder},
		{"ExactlyOncePerSubscriber", testExactlyOnce},
		{"PublishRespectsContext", testPublishContext},
		{"ReadRespectsContext", testReadContext},
		{"SubscribeRespectsContext", testSubscribeContext},
		{"NothingAfterSubscriptionEnds", testStop},
		{"Close", testClose},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.fn(t, newBroker(t))
		})
	}
	// Its broker is not newBroker's.
	t.Run("KeyForgottenAfterItsWindow", func(t *testing.T) { testKeyExpires(t, o.keyWindow) })
}

// An Option gives Run more to check with.
type Option func(*options)

type options struct {
	peer      func(t *testing.T, b ssekit.Broker) ssekit.Broker
	keyWindow func(t *testing.T, window time.Duration) ssekit.Broker
}

// WithPeer gives Run a second node of a broker: peer(t, b) returns another
// broker on what b is on (another process's, on the same Redis under the
// same prefix), which publishes to and reads b's channels, and registers
// its cleanup with t.Cleanup. The case of one key published from two nodes
// at once then publishes from both; without it, from goroutines that
// share b (a single-process broker, whose second node would be itself).
func WithPeer(peer func(t *testing.T, b ssekit.Broker) ssekit.Broker) Option {
	return func(o *options) { o.peer = peer }
}

// WithKeyWindow gives Run brokers that forget idempotency keys soon:
// newBroker(t, window) returns a broker as Run's newBroker does, except
// that it remembers a Message.Key for window (the suite asks for a
// second). The case KeyForgottenAfterItsWindow needs it, and skips
// without it; the other cases need keys remembered far longer than they
// take.
func WithKeyWindow(newBroker func(t *testing.T, window time.Duration) ssekit.Broker) Option {
	return func(o *options) { o.keyWindow = newBroker }
}

// delivery is one message as a subscription saw it in one channel, or
// for its clients (channel "").
type delivery struct {
	channel, pos string
	msg          ssekit.Message
}

// collector is a subscription callback that records, for the channels it
// watches, each (channel, position) it is handed, and messages to
// clients; it checks that it is never called concurrently for one
// channel.
type collector struct {
	watch map[string]bool

	mu         sync.Mutex
	inFlight   map[string]bool
	concurrent bool
	got        []delivery
	notify     chan struct{} // capacity 1: "got grew"
}

func newCollector(channels ...string) *collector {
	c := &collector{watch: make(map[string]bool), inFlight: make(map[string]bool), notify: make(chan struct{}, 1)}
	for _, ch := range channels {
		c.watch[ch] = true
	}
	return c
}

func (c *collector) fn(m ssekit.Message) {
	var ds []delivery
	if len(m.Positions) == len(m.Channels) {
		for i, ch := range m.Channels {
			if c.watch[ch] {
				ds = append(ds, delivery{ch, m.Positions[i], m})
			}
		}
	}
	// A message's clients come with it, or apart (channels without
	// positions).
	if len(m.Clients) > 0 {
		ds = append(ds, delivery{"", "", m})
	}
	c.mu.Lock()
	for _, d := range ds {
		if c.inFlight[d.channel] {
			c.concurrent = true
		}
		c.inFlight[d.channel] = true
	}
	c.mu.Unlock()
	time.Sleep(time.Microsecond) // widen the window a concurrent call would hit
	c.mu.Lock()
	for _, d := range ds {
		c.inFlight[d.channel] = false
	}
	c.got = append(c.got, ds...)
	c.mu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

func (c *collector) snapshot() []delivery {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.got)
}

// waitFor waits until the collector holds at least n deliveries and
// returns them; it fails the test after ssetest.Patience.
func (c *collector) waitFor(t *testing.T, n int) []delivery {
	t.Helper()
	timer := time.NewTimer(ssetest.Patience)
	defer timer.Stop()
	for {
		if got := c.snapshot(); len(got) >= n {
			c.mu.Lock()
			concurrent := c.concurrent
			c.mu.Unlock()
			if concurrent {
				t.Error("the subscription callback was called concurrently for one channel")
			}
			return got
		}
		select {
		case <-c.notify:
		case <-timer.C:
			got := c.snapshot()
			t.Fatalf("subscription received %d deliveries within %v, want %d: %s", len(got), ssetest.Patience, n, brief(positions(got)))
		}
	}
}

// has reports whether the collector holds a delivery of message id.
func (c *collector) has(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, d := range c.got {
		if d.msg.ID == id {
			return true
		}
	}
	return false
}

// in returns the deliveries of one channel.
func in(ds []delivery, channel string) []delivery {
	var out []delivery
	for _, d := range ds {
		if d.channel == channel {
			out = append(out, d)
		}
	}
	return out
}

// subscribe starts a subscription that follows channels.
func subscribe(t *testing.T, b ssekit.Broker, channels ...string) *collector {
	t.Helper()
	c := newCollector(channels...)
	sub, err := b.Subscribe(t.Context(), c.fn)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if len(channels) > 0 {
		if err := sub.Follow(t.Context(), channels...); err != nil {
			t.Fatalf("Follow(%q): %v", channels, err)
		}
	}
	return c
}

// msg returns a message to channels of type typ.
func msg(typ string, channels ...string) ssekit.Message {
	return ssekit.Message{Channels: channels, Type: typ, Data: []byte(`{}`)}
}

// publish publishes m and returns its id.
func publish(t *testing.T, b ssekit.Broker, m ssekit.Message) string {
	t.Helper()
	id, err := b.Publish(t.Context(), m)
	if err != nil {
		t.Fatalf("Publish to %q: %v", m.Channels, err)
	}
	if id == "" {
		t.Fatal("Publish returned an empty id")
	}
	return id
}

// publishN publishes n messages of type typ to channels and returns their
// positions in the first channel. Nothing else may publish meanwhile.
func publishN(t *testing.T, b ssekit.Broker, typ string, n int, channels ...string) []string {
	t.Helper()
	out := make([]string, n)
	for i := range out {
		before := head(t, b, channels[0])
		publish(t, b, ssekit.Message{Channels: channels, Type: typ, Data: fmt.Appendf(nil, `{"n":%d}`, i)})
		got, err := b.Read(t.Context(), channels[0], before, page)
		if err != nil || len(got) != 1 {
			t.Fatalf("Read(%q, head before a publish) = %d messages, %v; want the one published", channels[0], len(got), err)
		}
		out[i] = posIn(got[0], channels[0])
	}
	return out
}

func head(t *testing.T, b ssekit.Broker, channel string) string {
	t.Helper()
	h, err := b.Head(t.Context(), channel)
	if err != nil {
		t.Fatalf("Head(%q): %v", channel, err)
	}
	if !ssekit.ValidID(h) {
		t.Fatalf("Head(%q) = %q, which is not a valid position", channel, h)
	}
	return h
}

// readAll reads channel after the position after, page by page.
func readAll(ctx context.Context, b ssekit.Broker, channel, after string) ([]ssekit.Message, error) {
	var out []ssekit.Message
	for {
		got, err := b.Read(ctx, channel, after, page)
		if err != nil {
			return out, err
		}
		if len(got) == 0 {
			return out, nil
		}
		out = append(out, got...)
		after = posIn(got[len(got)-1], channel)
	}
}

// posIn returns m's position in channel, "" if m is not in it.
func posIn(m ssekit.Message, channel string) string {
	for i, ch := range m.Channels {
		if ch == channel && i < len(m.Positions) {
			return m.Positions[i]
		}
	}
	return ""
}

// positionsIn returns the positions of ms in channel.
func positionsIn(ms []ssekit.Message, channel string) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = posIn(m, channel)
	}
	return out
}

func positions(ds []delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.channel + "@" + d.pos
	}
	return out
}

// brief abbreviates a list for a failure message.
func brief(ids []string) string {
	if len(ids) <= 6 {
		return fmt.Sprint(ids)
	}
	return fmt.Sprintf("%v … %v (%d)", ids[:3], ids[len(ids)-3:], len(ids))
}

// checkIncreasing fails unless the positions strictly increase.
func checkIncreasing(t *testing.T, what string, pos []string) {
	t.Helper()
	for i, p := range pos {
		if !ssekit.ValidID(p) {
			t.Fatalf("%s: position %q at %d is not a valid position", what, p, i)
		}
		if i > 0 && ssekit.CompareIDs(pos[i-1], p) >= 0 {
			t.Fatalf("%s: position %q at %d is not after %q", what, p, i, pos[i-1])
		}
	}
}

// sameMessage fails unless got carries what want was published with.
func sameMessage(t *testing.T, what string, got, want ssekit.Message) {
	t.Helper()
	if got.Type != want.Type {
		t.Errorf("%s: Type = %q, want %q", what, got.Type, want.Type)
	}
	if !bytes.Equal(got.Data, want.Data) {
		t.Errorf("%s: Data = %.80q, want %.80q", what, got.Data, want.Data)
	}
	if len(got.Clients) > 0 && !slices.Equal(got.Clients, want.Clients) {
		t.Errorf("%s: Clients = %q, want %q", what, got.Clients, want.Clients)
	}
	if len(got.Positions) == 0 && !slices.Equal(got.Channels, want.Channels) {
		t.Errorf("%s: a delivery for clients carries Channels %q, want %q", what, got.Channels, want.Channels)
	}
	if got.Time.IsZero() {
		t.Errorf("%s: Time is zero; Publish must set it", what)
	}
	if got.ID == "" {
		t.Errorf("%s: ID is empty", what)
	}
}

func positionsOf(ds []delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.pos
	}
	return out
}

func atoi(s string) int {
	n := 0
	fmt.Sscan(s, &n)
	return n
}
