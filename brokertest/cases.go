package brokertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ssekit/sse/internal/ssetest"
	"github.com/ssekit/sse/ssekit"
)

// samples are messages with every kind of address and awkward content,
// so that a broker's encoding is checked as well as its routing.
func samples(a, b string) []ssekit.Message {
	big := bytes.Repeat([]byte("x"), 70_000)
	return []ssekit.Message{
		{Channels: []string{a}, Type: "notification", Data: []byte(`{"title":"New follower!"}`)},
		{Channels: sorted(a, b), Type: "update", Data: []byte(`{"n":1}`)},
		{Clients: []string{"client-1", "ü ser,2"}, Type: "", Data: []byte(`null`)},
		{Channels: []string{b}, Clients: []string{"c1"}, Type: "both", Data: []byte(`"two\nlines\r\x00"`)},
		{Channels: []string{a}, Type: "big", Data: append(append([]byte(`"`), big...), '"')},
		{Channels: []string{b}, Type: "empty-data", Data: []byte{}},
	}
}

func sorted(ss ...string) []string {
	out := slices.Clone(ss)
	slices.Sort(out)
	return out
}

// testDelivery: a subscription gets every message of the channels it
// follows published after Follow returned, once per channel, in order,
// with fields intact, and every message to clients once, with its clients
// (and its channels, with or without positions).
func testDelivery(t *testing.T, b ssekit.Broker) {
	const a, c = "user:a", "user:b,ü{x}"
	col := subscribe(t, b, a, c)
	want := samples(a, c)
	for _, m := range want {
		publish(t, b, m)
	}
	// One delivery per (channel, message) and one per message to clients.
	n := 0
	for _, m := range want {
		n += len(m.Channels)
		if len(m.Clients) > 0 {
			n++
		}
	}
	got := col.waitFor(t, n)
	if len(got) != n {
		t.Fatalf("received %d deliveries, want %d: %s", len(got), n, brief(positions(got)))
	}
	for _, ch := range []string{a, c, ""} {
		var wantHere []ssekit.Message
		for _, m := range want {
			if slices.Contains(m.Channels, ch) || (ch == "" && len(m.Clients) > 0) {
				wantHere = append(wantHere, m)
			}
		}
		gotHere := in(got, ch)
		if len(gotHere) != len(wantHere) {
			t.Fatalf("channel %q: received %d, want %d", ch, len(gotHere), len(wantHere))
		}
		var pos []string
		for i := range wantHere {
			sameMessage(t, fmt.Sprintf("channel %q message %d", ch, i), gotHere[i].msg, wantHere[i])
			pos = append(pos, gotHere[i].pos)
		}
		if ch != "" {
			checkIncreasing(t, "channel "+ch, pos)
			if h := head(t, b, ch); ssekit.CompareIDs(h, pos[len(pos)-1]) < 0 {
				t.Fatalf("Head(%q) = %q is before the newest delivered position %q", ch, h, pos[len(pos)-1])
			}
		}
	}
}

// testOnlyAfterSubscribe: a subscription does not see what was published
// before it started.
func testOnlyAfterSubscribe(t *testing.T, b ssekit.Broker) {
	publishN(t, b, "before", 3, "x")
	col := subscribe(t, b, "x")
	after := publishN(t, b, "after", 3, "x")
	got := col.waitFor(t, 3)
	if pos := positions(got); !slices.Equal(pos, []string{"x@" + after[0], "x@" + after[1], "x@" + after[2]}) {
		t.Fatalf("received %v, want only the messages published after Subscribe %v", pos, after)
	}
}

// testFollowCounted: two Follows need two Unfollows; a channel still
// followed keeps being delivered.
func testFollowCounted(t *testing.T, b ssekit.Broker) {
	col := newCollector("x")
	sub, err := b.Subscribe(t.Context(), col.fn)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	for range 2 {
		if err := sub.Follow(t.Context(), "x"); err != nil {
			t.Fatalf("Follow: %v", err)
		}
	}
	sub.Unfollow("x")
	want := publishN(t, b, "still", 3, "x")
	if got := positionsOf(col.waitFor(t, 3)); !slices.Equal(got, want) {
		t.Fatalf("a channel followed twice and unfollowed once delivered %v, want %v", got, want)
	}
	sub.Unfollow("x")
}

// testHeadEmpty: an empty channel has a valid head, and reading after it
// is empty and succeeds; what is published next follows it.
func testHeadEmpty(t *testing.T, b ssekit.Broker) {
	h := head(t, b, "empty")
	got, err := b.Read(t.Context(), "empty", h, page)
	if err != nil {
		t.Fatalf("Read(Head() = %q) of an empty channel: %v", h, err)
	}
	if len(got) != 0 {
		t.Fatalf("Read(Head()) of an empty channel returned %d messages", len(got))
	}
	publish(t, b, msg("first", "empty"))
	publish(t, b, msg("second", "empty"))
	got, err = readAll(t.Context(), b, "empty", h)
	if err != nil {
		t.Fatalf("Read(empty head %q) after publishing: %v", h, err)
	}
	if len(got) != 2 || got[0].Type != "first" || got[1].Type != "second" {
		t.Fatalf("Read(empty head) = %d messages, want first and second", len(got))
	}
	pos := positionsIn(got, "empty")
	checkIncreasing(t, "after the empty head", append([]string{h}, pos...))
}

// testHeadFollows: Head is at or after the channel's newest position, and
// reading after it is empty.
func testHeadFollows(t *testing.T, b ssekit.Broker) {
	start := head(t, b, "x")
	for range 3 {
		publish(t, b, msg("x", "x"))
	}
	all, err := readAll(t.Context(), b, "x", start)
	if err != nil || len(all) != 3 {
		t.Fatalf("Read(%q) = %d messages, %v; want 3", start, len(all), err)
	}
	h := head(t, b, "x")
	if last := posIn(all[2], "x"); ssekit.CompareIDs(h, last) < 0 {
		t.Fatalf("Head = %q, before the newest position %q", h, last)
	}
	got, err := b.Read(t.Context(), "x", h, page)
	if err != nil || len(got) != 0 {
		t.Fatalf("Read(Head()) = %d messages, %v; want nothing, nil", len(got), err)
	}
}

// testRead: reading after a position returns exactly the channel's later
// messages, in order, with the fields intact.
func testRead(t *testing.T, b ssekit.Broker) {
	const a, c = "a", "c"
	startA, startC := head(t, b, a), head(t, b, c)
	want := samples(a, c)
	for _, m := range want {
		publish(t, b, m)
	}
	for ch, start := range map[string]string{a: startA, c: startC} {
		var wantHere []ssekit.Message
		for _, m := range want {
			if slices.Contains(m.Channels, ch) {
				wantHere = append(wantHere, m)
			}
		}
		all, err := readAll(t.Context(), b, ch, start)
		if err != nil {
			t.Fatalf("Read(%q, %q): %v", ch, start, err)
		}
		if len(all) != len(wantHere) {
			t.Fatalf("Read(%q, start) = %d messages, want %d", ch, len(all), len(wantHere))
		}
		pos := positionsIn(all, ch)
		checkIncreasing(t, "Read "+ch, pos)
		for i := range all {
			sameMessage(t, fmt.Sprintf("Read(%q)[%d]", ch, i), all[i], wantHere[i])
		}
		for k := range pos {
			got, err := readAll(t.Context(), b, ch, pos[k])
			if err != nil {
				t.Fatalf("Read(%q, %q): %v", ch, pos[k], err)
			}
			if !slices.Equal(positionsIn(got, ch), pos[k+1:]) {
				t.Fatalf("Read(%q, %q) = %v, want %v", ch, pos[k], positionsIn(got, ch), pos[k+1:])
			}
		}
	}
}

// testReadPages: limit bounds a read, and reading on from the last
// position returned gives the rest.
func testReadPages(t *testing.T, b ssekit.Broker) {
	start := head(t, b, "p")
	for range 25 {
		publish(t, b, msg("p", "p"))
	}
	var got []string
	after := start
	for {
		pg, err := b.Read(t.Context(), "p", after, 10)
		if err != nil {
			t.Fatalf("Read(limit 10): %v", err)
		}
		if len(pg) > 10 {
			t.Fatalf("Read(limit 10) returned %d messages", len(pg))
		}
		if len(pg) == 0 {
			break
		}
		got = append(got, positionsIn(pg, "p")...)
		after = got[len(got)-1]
	}
	if len(got) != 25 {
		t.Fatalf("paged reads returned %d messages, want 25", len(got))
	}
	checkIncreasing(t, "pages", got)
}

// testIndependent: one channel's traffic never trims another's history,
// and a read of one channel never returns another's messages.
func testIndependent(t *testing.T, b ssekit.Broker) {
	quietStart := head(t, b, "quiet")
	publish(t, b, msg("mine", "quiet"))
	busyStart := head(t, b, "busy")
	for n := 0; n < MaxHistory; n += 50 {
		for range 50 {
			publish(t, b, msg("other", "busy"))
		}
		if _, err := b.Read(t.Context(), "busy", busyStart, 1); errors.Is(err, ssekit.ErrUnknownID) {
			break
		}
	}
	got, err := readAll(t.Context(), b, "quiet", quietStart)
	if err != nil {
		t.Fatalf("Read(quiet) after another channel trimmed: %v (its history must be its own)", err)
	}
	if len(got) != 1 || got[0].Type != "mine" {
		t.Fatalf("Read(quiet) = %d messages, want its own one", len(got))
	}
}

// testSeveralChannels: a publish to several channels reaches a
// subscription, and Read, either whole (all its channels, each with its
// position) or as a copy per channel: that one channel, and as Also
// ssekit.AlsoFollowed(the publish's channels, that channel), so that the hub
// writes the event once to a connection that follows several of them.
// Also names channels the subscription does not follow, since another
// connection may; a whole publish, or one to a single channel, has none.
func testSeveralChannels(t *testing.T, b ssekit.Broker) {
	// A user id may hold any byte, a newline too.
	const userA, userB, tenant = "user:a", "user:b\n2", "tenant:acme"
	const topic1, topic2 = "topic:board", "topic:doc:42"
	pubs := []ssekit.Message{
		msg("mixed", sorted(userA, userB, tenant, topic1, topic2)...),
		msg("users", sorted(userA, userB)...),
		msg("topics", sorted(topic1, topic2)...),
		msg("user-and-topic", sorted(userB, topic2)...),
		msg("one", topic1),
	}
	watch := []string{userA, tenant, topic1, topic2}
	starts := map[string]string{}
	for _, m := range pubs {
		for _, ch := range m.Channels {
			starts[ch] = head(t, b, ch)
		}
	}
	col := subscribe(t, b, watch...)
	byType := map[string]ssekit.Message{}
	n := 0
	for _, m := range pubs {
		publish(t, b, m)
		byType[m.Type] = m
		for _, ch := range m.Channels {
			if slices.Contains(watch, ch) {
				n++
			}
		}
	}
	got := col.waitFor(t, n)
	if len(got) != n {
		t.Fatalf("received %d deliveries, want %d: %s", len(got), n, brief(positions(got)))
	}
	livePos := map[string]string{} // type and channel: position
	for _, d := range got {
		pub, ok := byType[d.msg.Type]
		if !ok {
			t.Fatalf("received a message of type %q, which was not published", d.msg.Type)
		}
		checkCopy(t, "delivery in "+d.channel, d.channel, d.msg, pub)
		livePos[d.msg.Type+"\x00"+d.channel] = d.pos
	}
	for ch, start := range starts {
		ms, err := readAll(t.Context(), b, ch, start)
		if err != nil {
			t.Fatalf("Read(%q, %q): %v", ch, start, err)
		}
		var types []string
		for _, m := range ms {
			pub, ok := byType[m.Type]
			if !ok {
				t.Fatalf("Read(%q) returned a message of type %q, which was not published", ch, m.Type)
			}
			checkCopy(t, fmt.Sprintf("Read(%q)", ch), ch, m, pub)
			if p, ok := livePos[m.Type+"\x00"+ch]; ok && p != posIn(m, ch) {
				t.Errorf("Read(%q): %s at %q, delivered at %q", ch, m.Type, posIn(m, ch), p)
			}
			types = append(types, m.Type)
		}
		var want []string
		for _, m := range pubs {
			if slices.Contains(m.Channels, ch) {
				want = append(want, m.Type)
			}
		}
		if !slices.Equal(types, want) {
			t.Errorf("Read(%q) = %q, want %q", ch, types, want)
		}
	}
}

// checkCopy fails unless got, a message of channel ch, is pub whole (all
// its channels with positions, no Also) or pub's copy for ch (ch alone,
// its position, and Also ssekit.AlsoFollowed(pub.Channels, ch)).
func checkCopy(t *testing.T, what, ch string, got, pub ssekit.Message) {
	t.Helper()
	sameMessage(t, what, got, pub)
	if len(got.Positions) != len(got.Channels) {
		t.Errorf("%s: %d positions for the channels %q", what, len(got.Positions), got.Channels)
	}
	switch {
	case slices.Equal(got.Channels, pub.Channels):
		// A broker that delivers copies apart marks a whole publish it
		// reads back with the copy's Also: the hub then knows other
		// copies may still come live.
		if want := ssekit.AlsoFollowed(pub.Channels, ch); len(got.Also) != 0 && !slices.Equal(got.Also, want) {
			t.Errorf("%s: the whole publish to %q carries Also %q, want none or ssekit.AlsoFollowed = %q", what, pub.Channels, got.Also, want)
		}
	case len(got.Channels) == 1 && got.Channels[0] == ch:
		if want := ssekit.AlsoFollowed(pub.Channels, ch); !slices.Equal(got.Also, want) {
			t.Errorf("%s: the copy of a publish to %q carries Also %q, want ssekit.AlsoFollowed = %q", what, pub.Channels, got.Also, want)
		}
	default:
		t.Errorf("%s: carries the channels %q of a publish to %q: want all of them, or %q alone", what, got.Channels, pub.Channels, ch)
	}
}

// unknown checks that Read(channel, after) fails with ErrUnknownID.
func unknown(t *testing.T, b ssekit.Broker, channel, after, why string) {
	t.Helper()
	got, err := b.Read(t.Context(), channel, after, page)
	if !errors.Is(err, ssekit.ErrUnknownID) {
		t.Errorf("Read(%q, %.40q) (%s) = %v, want ssekit.ErrUnknownID", channel, after, why, err)
	}
	if len(got) != 0 {
		t.Errorf("Read(%q, %.40q) (%s) returned %d messages with its error", channel, after, why, len(got))
	}
}

// testReadMalformed: positions that are not of the position form are
// unknown.
func testReadMalformed(t *testing.T, b ssekit.Broker) {
	publishN(t, b, "x", 3, "x")
	for _, id := range []string{"", "abc", "-", "1-", "-1", "1--2", "1.5", " 1-0", "1-0 ", "0x10", "1-a", strings.Repeat("9", 200)} {
		unknown(t, b, "x", id, "malformed")
	}
}

// testReadFuture: a position after the channel's head was never issued.
func testReadFuture(t *testing.T, b ssekit.Broker) {
	unknown(t, b, "x", increment(head(t, b, "x")), "after the head of an empty channel")
	publishN(t, b, "x", 3, "x")
	unknown(t, b, "x", increment(head(t, b, "x")), "just after the head")
	unknown(t, b, "x", "99999999999999999999-99999999999999999999", "far in the future")
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

// testReadTrimmed fills a channel until the broker trims it, then checks
// every position: reading after it either fails with ErrUnknownID or
// returns exactly the messages published after it. Once one position
// reads, every later one does, and the newest MinHistory do.
func testReadTrimmed(t *testing.T, b ssekit.Broker) {
	const ch = "fill"
	start := head(t, b, ch)
	var pub []string
	for len(pub) < MaxHistory {
		pub = append(pub, publishN(t, b, "fill", 50, ch)...)
		if _, err := b.Read(t.Context(), ch, start, 1); errors.Is(err, ssekit.ErrUnknownID) {
			break
		} else if err != nil {
			t.Fatalf("Read(%q): %v", start, err)
		}
	}
	unknown(t, b, ch, start, "before trimmed messages")
	readable := false
	for i, p := range pub {
		got, err := readAll(t.Context(), b, ch, p)
		switch {
		case errors.Is(err, ssekit.ErrUnknownID):
			if len(got) != 0 {
				t.Fatalf("Read(%q) returned %d messages, then ErrUnknownID", p, len(got))
			}
			if readable {
				t.Fatalf("Read(%q) = ErrUnknownID, but an earlier position read: trimming is from the oldest", p)
			}
			if i >= len(pub)-MinHistory {
				t.Fatalf("Read(%q), %d from the newest, = ErrUnknownID; the broker must keep at least %d", p, len(pub)-1-i, MinHistory)
			}
		case err != nil:
			t.Fatalf("Read(%q): %v", p, err)
		default:
			readable = true
			if got := positionsIn(got, ch); !slices.Equal(got, pub[i+1:]) {
				t.Fatalf("Read(%q) = %s, want the %d published after it", p, brief(got), len(pub)-i-1)
			}
		}
	}
}

// testPublishValidation: a message with no channel and no client is
// refused, and so are channels that are not sorted and unique.
func testPublishValidation(t *testing.T, b ssekit.Broker) {
	for name, m := range map[string]ssekit.Message{
		"no addressee":        {Type: "x"},
		"unsorted channels":   {Channels: []string{"b", "a"}, Type: "x"},
		"repeated channel":    {Channels: []string{"a", "a"}, Type: "x"},
		"empty channel name":  {Channels: []string{""}, Type: "x"},
		"channels and a hole": {Channels: []string{"a", ""}, Type: "x"},
	} {
		if id, err := b.Publish(t.Context(), m); err == nil {
			t.Errorf("Publish(%s) = %q, nil; want an error", name, id)
		}
	}
}

// testConcurrentOrder: concurrent publishers' messages reach every
// subscription once each per channel, in one position order per channel
// that both subscriptions and Read agree on, with each publisher's
// messages in the order it published them.
func testConcurrentOrder(t *testing.T, b ssekit.Broker) {
	const publishers, each = 4, 50
	chans := []string{"c0", "c1"}
	c1, c2 := subscribe(t, b, chans...), subscribe(t, b, chans...)
	var wg sync.WaitGroup
	errs := make(chan error, publishers)
	for p := range publishers {
		wg.Go(func() {
			for i := range each {
				m := ssekit.Message{Channels: []string{chans[(p+i)%2]}, Type: fmt.Sprintf("p%d", p), Data: fmt.Appendf(nil, "%d", i)}
				if i%5 == 0 {
					m.Channels = chans
				}
				if _, err := b.Publish(t.Context(), m); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent Publish: %v", err)
	}
	n := publishers * (each + each/5)
	got1, got2 := c1.waitFor(t, n), c2.waitFor(t, n)
	if len(got1) != n {
		t.Fatalf("subscriber received %d deliveries, want %d", len(got1), n)
	}
	for _, ch := range chans {
		p1, p2 := positions(in(got1, ch)), positions(in(got2, ch))
		checkIncreasing(t, "subscriber, "+ch, positionsOf(in(got1, ch)))
		if !slices.Equal(p1, p2) {
			t.Fatalf("two subscribers received different sequences in %s", ch)
		}
		// The history may keep only MinHistory of them: read that tail.
		pos := positionsOf(in(got1, ch))
		from := pos[len(pos)-MinHistory-1]
		tail, err := readAll(t.Context(), b, ch, from)
		if err != nil {
			t.Fatalf("Read(%s, %q): %v", ch, from, err)
		}
		if want := pos[len(pos)-MinHistory:]; !slices.Equal(positionsIn(tail, ch), want) {
			t.Fatalf("Read(%s, %q) = %s, want the subscribers' sequence %s", ch, from, brief(positionsIn(tail, ch)), brief(want))
		}
		// Each publisher's own messages of this channel, in its order.
		for p := range publishers {
			var mine []string
			for _, d := range in(got1, ch) {
				if d.msg.Type == fmt.Sprintf("p%d", p) {
					mine = append(mine, string(d.msg.Data))
				}
			}
			if !slices.IsSortedFunc(mine, func(a, b string) int { return atoi(a) - atoi(b) }) {
				t.Fatalf("publisher %d's messages arrived in %s as %v, out of its order", p, ch, mine)
			}
		}
	}
}

// testExactlyOnce: subscriptions that come and go each see each message
// of their channels published during their subscription once.
func testExactlyOnce(t *testing.T, b ssekit.Broker) {
	c1 := subscribe(t, b, "x")
	first := publishN(t, b, "a", 20, "x")
	c2 := subscribe(t, b, "x")
	second := publishN(t, b, "b", 20, "x")
	c1.waitFor(t, 40)
	c2.waitFor(t, 20)
	// One more round trip, so that a duplicate would have had time to come.
	marker := publishN(t, b, "marker", 1, "x")
	got1 := positionsOf(c1.waitFor(t, 41))
	got2 := positionsOf(c2.waitFor(t, 21))
	if want := append(append(slices.Clone(first), second...), marker...); !slices.Equal(got1, want) {
		t.Fatalf("first subscriber received %s, want each message once: %s", brief(got1), brief(want))
	}
	if want := append(slices.Clone(second), marker...); !slices.Equal(got2, want) {
		t.Fatalf("second subscriber received %s, want each later message once: %s", brief(got2), brief(want))
	}
}

// testPublishContext: a Publish whose ctx is done fails with ctx's error
// and publishes nothing.
func testPublishContext(t *testing.T, b ssekit.Broker) {
	c := subscribe(t, b, "x")
	before := head(t, b, "x")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if id, err := b.Publish(ctx, msg("cancelled", "x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Publish with a cancelled ctx = %q, %v; want context.Canceled", id, err)
	}
	if got, err := b.Read(t.Context(), "x", before, page); err != nil || len(got) != 0 {
		t.Fatalf("after a cancelled Publish, Read(head) = %d messages, %v; want none", len(got), err)
	}
	publish(t, b, msg("marker", "x"))
	if got := c.waitFor(t, 1); got[0].msg.Type != "marker" {
		t.Fatalf("subscriber received %q before the marker: the cancelled Publish was delivered", got[0].msg.Type)
	}
}

// testReadContext: Read with a done ctx fails with ctx's error.
func testReadContext(t *testing.T, b ssekit.Broker) {
	start := head(t, b, "x")
	publishN(t, b, "x", 5, "x")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	got, err := b.Read(ctx, "x", start, page)
	if !errors.Is(err, context.Canceled) || len(got) != 0 {
		t.Fatalf("Read with a cancelled ctx = %d messages, %v; want none, context.Canceled", len(got), err)
	}
}

// testSubscribeContext: Subscribe with a done ctx either fails or
// delivers nothing.
func testSubscribeContext(t *testing.T, b ssekit.Broker) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	dead := newCollector("x")
	sub, err := b.Subscribe(ctx, dead.fn)
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Subscribe with a cancelled ctx = %v; want nil or context.Canceled", err)
		}
		return
	}
	_ = sub.Follow(ctx, "x") // may fail: ctx is done
	witness := subscribe(t, b, "x")
	drainAfterStop(t, b, dead, witness, false)
}

// testStop: once a subscription's ctx is done, its callback stops being
// called, and other subscriptions go on.
func testStop(t *testing.T, b ssekit.Broker) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	victim := newCollector("x")
	sub, err := b.Subscribe(ctx, victim.fn)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if err := sub.Follow(ctx, "x"); err != nil {
		t.Fatalf("Follow: %v", err)
	}
	witness := subscribe(t, b, "x")
	publishN(t, b, "live", 3, "x")
	victim.waitFor(t, 3)
	cancel()
	drainAfterStop(t, b, victim, witness, true)
}

// drainAfterStop publishes markers, each confirmed by the live witness,
// until the stopped subscription misses one (a broker may finish a
// delivery that was under way when ctx was cancelled, so it gets a few),
// then checks that it receives none of ten more.
func drainAfterStop(t *testing.T, b ssekit.Broker, stopped, witness *collector, mayLag bool) {
	t.Helper()
	n := len(witness.snapshot())
	deadline := time.Now().Add(ssetest.Patience)
	for {
		id := publish(t, b, msg("marker", "x"))
		n++
		witness.waitFor(t, n)
		if !stopped.has(id) {
			break
		}
		if !mayLag {
			t.Fatal("a subscription whose ctx was done before Subscribe received a message")
		}
		if time.Now().After(deadline) {
			t.Fatalf("the subscription still received messages %v after its ctx was done", ssetest.Patience)
		}
	}
	before := len(stopped.snapshot())
	for range 10 {
		publish(t, b, msg("after", "x"))
		n++
	}
	witness.waitFor(t, n)
	if got := stopped.snapshot(); len(got) != before {
		t.Fatalf("the stopped subscription received %s after it had stopped", brief(positions(got[before:])))
	}
}

// testClose: a broker that can be closed fails every later call with
// ssekit.ErrBrokerClosed. Brokers without Close skip this case.
func testClose(t *testing.T, b ssekit.Broker) {
	cl, ok := b.(interface{ Close() error })
	if !ok {
		t.Skip("the broker has no Close method")
	}
	start := head(t, b, "x")
	publishN(t, b, "x", 2, "x")
	if err := cl.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := b.Publish(t.Context(), msg("x", "x")); !errors.Is(err, ssekit.ErrBrokerClosed) {
		t.Errorf("Publish after Close = %v, want ssekit.ErrBrokerClosed", err)
	}
	if _, err := b.Subscribe(t.Context(), func(ssekit.Message) {}); !errors.Is(err, ssekit.ErrBrokerClosed) {
		t.Errorf("Subscribe after Close = %v, want ssekit.ErrBrokerClosed", err)
	}
	if _, err := b.Read(t.Context(), "x", start, page); !errors.Is(err, ssekit.ErrBrokerClosed) {
		t.Errorf("Read after Close = %v, want ssekit.ErrBrokerClosed", err)
	}
	if _, err := b.Head(t.Context(), "x"); !errors.Is(err, ssekit.ErrBrokerClosed) {
		t.Errorf("Head after Close = %v, want ssekit.ErrBrokerClosed", err)
	}
}
