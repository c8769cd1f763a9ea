package brokertest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ssekit/sse/internal/ssetest"
	"github.com/ssekit/sse/ssekit"
)

// The cases of idempotency keys (ssekit.Message.Key): a broker stores the
// first publish with a key, answers each repeat within its window with
// that publish's id and ssekit.ErrReplayed, storing and delivering nothing,
// and refuses a repeat whose ssekit.Digest differs with ssekit.ErrKeyConflict.

// testKeyedOnce: a keyed publish repeated is stored in each of its
// channels once and delivered once, to its channels and its clients; each
// repeat answers the first's id and ErrReplayed. The same event under
// another key is another publish.
func testKeyedOnce(t *testing.T, b ssekit.Broker) {
	const a, c, client = "user:keyed", "topic:keyed", "client-keyed"
	chans := sorted(a, c)
	col := subscribe(t, b, chans...)
	starts := map[string]string{a: head(t, b, a), c: head(t, b, c)}

	m := ssekit.Message{Channels: chans, Clients: []string{client}, Key: "order-42", Type: "keyed", Data: []byte(`{"order":42}`)}
	first := publish(t, b, m)
	for i := range 3 {
		replayed(t, b, fmt.Sprintf("repeat %d", i+1), m, first)
	}
	other := m
	other.Key = "order-42-again"
	second := publish(t, b, other)
	if second == first {
		t.Fatalf("the same event under another key got the first's id %q: a key names a publish, not its content", first)
	}
	replayed(t, b, "repeat of the second key", other, second)
	// Live only: a keyed publish to clients alone.
	toClients := ssekit.Message{Clients: []string{client}, Key: "ping-1", Type: "keyed-clients", Data: []byte(`1`)}
	third := publish(t, b, toClients)
	replayed(t, b, "repeat of a publish to clients", toClients, third)

	for ch, start := range starts {
		ms, err := readAll(t.Context(), b, ch, start)
		if err != nil {
			t.Fatalf("Read(%q, %q): %v", ch, start, err)
		}
		if got, want := ids(ms), []string{first, second}; !slices.Equal(got, want) {
			t.Fatalf("Read(%q) = publishes %q, want %q: each key's publish once", ch, got, want)
		}
		for i, got := range ms {
			checkCopy(t, fmt.Sprintf("Read(%q)[%d]", ch, i), ch, got, m)
		}
	}
	// Duplicates would come before the markers, in each channel's order.
	marker := publish(t, b, ssekit.Message{Channels: chans, Clients: []string{client}, Type: "marker", Data: []byte(`{}`)})
	got := col.waitFor(t, 2*3+4)
	for ch, want := range map[string][]string{a: {first, second, marker}, c: {first, second, marker}, "": {first, second, third, marker}} {
		if got := deliveredIDs(in(got, ch)); !slices.Equal(got, want) {
			t.Fatalf("delivered in %q: publishes %q, want %q: each once", ch, got, want)
		}
	}
}

// testKeyedConcurrent: one keyed publish from several goroutines at once,
// half of them on a second node when peer makes one: one of them stores
// it, every other answers its id with ErrReplayed, and each channel holds
// and delivers it once, to subscriptions on either node.
func testKeyedConcurrent(t *testing.T, b ssekit.Broker, peer func(*testing.T, ssekit.Broker) ssekit.Broker) {
	const rounds, publishers = 5, 8
	chans := sorted("user:race-1", "user:race-2")
	const client = "client-race"
	nodes := []ssekit.Broker{b, b}
	if peer != nil {
		nodes[1] = peer(t, b)
	}
	cols := []*collector{subscribe(t, nodes[0], chans...), subscribe(t, nodes[1], chans...)}
	starts := map[string]string{}
	for _, ch := range chans {
		starts[ch] = head(t, b, ch)
	}
	var want []string
	for r := range rounds {
		m := ssekit.Message{Channels: chans, Clients: []string{client}, Key: fmt.Sprint("race-", r), Type: "race", Data: fmt.Appendf(nil, `{"round":%d}`, r)}
		gotIDs, errs := make([]string, publishers), make([]error, publishers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range publishers {
			wg.Go(func() {
				<-start
				gotIDs[i], errs[i] = nodes[i%2].Publish(t.Context(), m)
			})
		}
		close(start)
		wg.Wait()
		stored := 0
		for i, err := range errs {
			switch {
			case err == nil:
				stored++
			case !errors.Is(err, ssekit.ErrReplayed):
				t.Fatalf("round %d, publisher %d: %v, want nil or ssekit.ErrReplayed", r, i, err)
			}
			if gotIDs[i] == "" || gotIDs[i] != gotIDs[0] {
				t.Fatalf("round %d: the publishers got ids %q, want one id for one key", r, gotIDs)
			}
		}
		if stored != 1 {
			t.Fatalf("round %d: %d of %d publishers of one key were answered as new (err nil), want 1", r, stored, publishers)
		}
		want = append(want, gotIDs[0])
	}
	for ch, start := range starts {
		for i, node := range nodes {
			ms, err := readAll(t.Context(), node, ch, start)
			if err != nil {
				t.Fatalf("node %d: Read(%q, %q): %v", i, ch, start, err)
			}
			if got := ids(ms); !slices.Equal(got, want) {
				t.Fatalf("node %d: Read(%q) = publishes %q, want %q: each key's publish once", i, ch, got, want)
			}
		}
	}
	marker := publish(t, nodes[1], ssekit.Message{Channels: chans, Clients: []string{client}, Type: "marker", Data: []byte(`{}`)})
	want = append(want, marker)
	for i, col := range cols {
		got := col.waitFor(t, 3*len(want))
		for _, ch := range append(slices.Clone(chans), "") {
			if got := deliveredIDs(in(got, ch)); !slices.Equal(got, want) {
				t.Fatalf("subscription on node %d, %q: publishes %q, want %q: each once", i, ch, got, want)
			}
		}
	}
}

// testKeyConflict: a publish under a key already used for another target
// or event fails with ErrKeyConflict, stores and delivers nothing, and
// leaves the key to its first publish.
func testKeyConflict(t *testing.T, b ssekit.Broker) {
	const a, c = "user:conflict-1", "user:conflict-2"
	col := subscribe(t, b, a, c)
	starts := map[string]string{a: head(t, b, a), c: head(t, b, c)}
	m := ssekit.Message{Channels: []string{a}, Key: "invoice-7", Type: "paid", Data: []byte(`{"invoice":7}`)}
	first := publish(t, b, m)
	for name, other := range map[string]ssekit.Message{
		"another channel":     {Channels: []string{c}, Type: m.Type, Data: m.Data},
		"one more channel":    {Channels: sorted(a, c), Type: m.Type, Data: m.Data},
		"another type":        {Channels: m.Channels, Type: "refunded", Data: m.Data},
		"other data":          {Channels: m.Channels, Type: m.Type, Data: []byte(`{"invoice":8}`)},
		"clients too":         {Channels: m.Channels, Clients: []string{"client-conflict"}, Type: m.Type, Data: m.Data},
		"clients, no channel": {Clients: []string{"client-conflict"}, Type: m.Type, Data: m.Data},
	} {
		other.Key = m.Key
		if id, err := b.Publish(t.Context(), other); !errors.Is(err, ssekit.ErrKeyConflict) || id != "" {
			t.Errorf("the key of a publish reused for %s: Publish = %q, %v; want \"\", ssekit.ErrKeyConflict", name, id, err)
		}
	}
	replayed(t, b, "the first publish again, after the conflicts", m, first)
	for ch, want := range map[string][]string{a: {first}, c: nil} {
		ms, err := readAll(t.Context(), b, ch, starts[ch])
		if err != nil {
			t.Fatalf("Read(%q): %v", ch, err)
		}
		if got := ids(ms); !slices.Equal(got, want) {
			t.Fatalf("Read(%q) = publishes %q, want %q: a conflict stores nothing", ch, got, want)
		}
	}
	marker := publish(t, b, ssekit.Message{Channels: sorted(a, c), Clients: []string{"client-conflict"}, Type: "marker", Data: []byte(`{}`)})
	got := col.waitFor(t, 4)
	for ch, want := range map[string][]string{a: {first, marker}, c: {marker}, "": {marker}} {
		if got := deliveredIDs(in(got, ch)); !slices.Equal(got, want) {
			t.Fatalf("delivered in %q: publishes %q, want %q: a conflict delivers nothing", ch, got, want)
		}
	}
}

// keyWindow is the window the suite asks WithKeyWindow's brokers for.
const keyWindow = time.Second

// testKeyExpires: once its window has passed, a key is forgotten, and a
// publish under it is a new one. Each repeat before that is a replay of
// the first. It waits past the window; it asserts no speed.
func testKeyExpires(t *testing.T, newBroker func(*testing.T, time.Duration) ssekit.Broker) {
	if newBroker == nil {
		t.Skip("Run without WithKeyWindow: no broker with a short key window")
	}
	b := newBroker(t, keyWindow)
	const ch = "user:expiring"
	start := head(t, b, ch)
	m := ssekit.Message{Channels: []string{ch}, Key: "expiring", Type: "x", Data: []byte(`{}`)}
	first := publish(t, b, m)
	deadline := time.Now().Add(keyWindow + ssetest.Patience)
	var second string
	for second == "" {
		time.Sleep(keyWindow / 4)
		id, err := b.Publish(t.Context(), m)
		switch {
		case errors.Is(err, ssekit.ErrReplayed):
			if id != first {
				t.Fatalf("a repeat within the window answered %q, want the first's id %q", id, first)
			}
			if time.Now().After(deadline) {
				t.Fatalf("the key is still remembered %v after its publish, whose window is %v", keyWindow+ssetest.Patience, keyWindow)
			}
		case err != nil:
			t.Fatalf("Publish after the window: %v", err)
		case id == first:
			t.Fatalf("a new publish under a forgotten key has the first's id %q", id)
		default:
			second = id
		}
	}
	ms, err := readAll(t.Context(), b, ch, start)
	if err != nil {
		t.Fatalf("Read(%q): %v", ch, err)
	}
	if got, want := ids(ms), []string{first, second}; !slices.Equal(got, want) {
		t.Fatalf("Read(%q) = publishes %q, want %q", ch, got, want)
	}
}

// replayed checks that publishing m again answers id, the first publish's,
// with ssekit.ErrReplayed.
func replayed(t *testing.T, b ssekit.Broker, what string, m ssekit.Message, id string) {
	t.Helper()
	got, err := b.Publish(t.Context(), m)
	if !errors.Is(err, ssekit.ErrReplayed) || got != id {
		t.Fatalf("%s: Publish = %q, %v; want the first's id %q and ssekit.ErrReplayed", what, got, err, id)
	}
}

// ids returns the publish ids of ms.
func ids(ms []ssekit.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

// deliveredIDs returns the publish ids of ds.
func deliveredIDs(ds []delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.msg.ID
	}
	return out
}
