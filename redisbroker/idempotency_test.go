package redisbroker_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ssekit/sse/internal/ssetest"
	"github.com/ssekit/sse/redisbroker"
	"github.com/ssekit/sse/ssekit"
)

// heard records, by channel, the publish ids a subscription delivered.
type heard struct {
	mu  sync.Mutex
	ids map[string][]string
}

func (h *heard) fn(m ssekit.Message) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ch := range m.Channels {
		h.ids[ch] = append(h.ids[ch], m.ID)
	}
}

func (h *heard) in(ch string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.ids[ch])
}

// follow subscribes to channels on b and records what it hears.
func follow(t *testing.T, b *redisbroker.Broker, channels ...string) *heard {
	t.Helper()
	h := &heard{ids: map[string][]string{}}
	sub, err := b.Subscribe(t.Context(), h.fn)
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Follow(t.Context(), channels...); err != nil {
		t.Fatal(err)
	}
	return h
}

// storedIDs returns the publish ids channel's stream holds.
func storedIDs(t *testing.T, b *redisbroker.Broker, channel string) []string {
	t.Helper()
	ms, err := b.Read(t.Context(), channel, "0-0", 1000)
	if err != nil {
		t.Fatalf("Read(%q): %v", channel, err)
	}
	var out []string
	for _, m := range ms {
		out = append(out, m.ID)
	}
	return out
}

// TestKeyedRetryCompletesAPartialPublish: a node that recorded a publish's
// key and died before appending it to every channel (none, or some) leaves
// the publish to its retry, on another node: the retry answers the first
// id as a replay, appends it where it is missing and nowhere twice, and
// each channel delivers it once. The first's appends are remembered for
// KeyWindow, not DedupeWindow (here 1ms, long gone when the retry comes).
func TestKeyedRetryCompletesAPartialPublish(t *testing.T) {
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			rdb := be.client(t)
			prefix := uniquePrefix(t, rdb)
			opts := redisbroker.Options{Prefix: prefix, DedupeWindow: time.Millisecond}
			dead, retrier := newBroker(t, rdb, opts), newBroker(t, be.client(t), opts)
			chans := []string{"user:a", "user:b", "user:c"}
			h := follow(t, retrier, chans...)

			for reached := range len(chans) {
				m := ssekit.Message{Channels: chans, Key: fmt.Sprint("partial-", reached), Type: "t", Data: []byte(strconv.Itoa(reached))}
				first := fmt.Sprint("1700000000000-", reached+1)
				if id, err := redisbroker.ClaimKey(t.Context(), dead, m, first); err != nil || id != first {
					t.Fatalf("claim: %q, %v; want %q", id, err, first)
				}
				if reached > 0 {
					some := m
					some.Channels = chans[:reached]
					if err := redisbroker.PublishWithID(t.Context(), dead, some, first); err != nil {
						t.Fatal(err)
					}
				}
				time.Sleep(10 * time.Millisecond) // past DedupeWindow
				for range 2 {
					if id, err := retrier.Publish(t.Context(), m); id != first || !errors.Is(err, ssekit.ErrReplayed) {
						t.Fatalf("retry of a publish that reached %d channels: %q, %v; want %q, ssekit.ErrReplayed", reached, id, err, first)
					}
				}
			}
			want := []string{"1700000000000-1", "1700000000000-2", "1700000000000-3"}
			for _, ch := range chans {
				if got := storedIDs(t, retrier, ch); !slices.Equal(got, want) {
					t.Errorf("%s holds publishes %q, want %q: each once", ch, got, want)
				}
			}
			marker, err := retrier.Publish(t.Context(), ssekit.Message{Channels: chans, Type: "marker"})
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, marker)
			ssetest.Eventually(t, "the markers", func() bool {
				for _, ch := range chans {
					if got := h.in(ch); len(got) == 0 || got[len(got)-1] != marker {
						return false
					}
				}
				return true
			})
			for _, ch := range chans {
				if got := h.in(ch); !slices.Equal(got, want) {
					t.Errorf("%s delivered publishes %q, want %q: each once", ch, got, want)
				}
			}
		})
	}
}

// TestClaimKey: the first claim of a key records it; a claim with the
// same publish id (the Redis client sent the SET again after a lost reply)
// is the same publish, not a replay; another id gets the recorded one;
// another publish under the key is a conflict. Keys of any bytes and
// length up to ssekit.MaxKeyLen are one key each, in one slot.
func TestClaimKey(t *testing.T) {
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			b := newBroker(t, be.client(t), redisbroker.Options{})
			for _, key := range []string{"k", "{x}", "a}b{c", strings.Repeat("~", ssekit.MaxKeyLen), "é \n"} {
				m := ssekit.Message{Channels: []string{"user:claim"}, Key: key, Type: "t", Data: []byte(`1`)}
				for _, try := range []struct{ id, want string }{{"1-1", "1-1"}, {"1-1", "1-1"}, {"2-2", "1-1"}} {
					if got, err := redisbroker.ClaimKey(t.Context(), b, m, try.id); got != try.want || err != nil {
						t.Fatalf("key %.20q: claim for %s = %q, %v; want %q", key, try.id, got, err, try.want)
					}
				}
				other := m
				other.Data = []byte(`2`)
				if got, err := redisbroker.ClaimKey(t.Context(), b, other, "3-3"); !errors.Is(err, ssekit.ErrKeyConflict) {
					t.Fatalf("key %.20q: claim for another publish = %q, %v; want ssekit.ErrKeyConflict", key, got, err)
				}
			}
		})
	}
}

// TestKeyedPublishOps: what a keyed publish asks of Redis, counted: a new
// one to two channels and a client is one claim, two appends and one
// announcement to clients; a repeat is one claim and two appends, which
// store nothing.
func TestKeyedPublishOps(t *testing.T) {
	b := newBroker(t, sharedRedis(t), redisbroker.Options{})
	m := ssekit.Message{Channels: []string{"user:a", "user:b"}, Clients: []string{"c"}, Key: "ops", Type: "t"}
	for _, step := range []struct {
		name            string
		keys, publishes int64
		wantErr         error
	}{
		{"new", 1, 3, nil},
		{"repeat", 1, 2, ssekit.ErrReplayed},
	} {
		before := b.Ops()
		if _, err := b.Publish(t.Context(), m); !errors.Is(err, step.wantErr) {
			t.Fatalf("%s: %v, want %v", step.name, err, step.wantErr)
		}
		after := b.Ops()
		if keys, pubs := after.Keys-before.Keys, after.Publishes-before.Publishes; keys != step.keys || pubs != step.publishes {
			t.Errorf("%s keyed publish: %d key claims and %d publishes, want %d and %d", step.name, keys, pubs, step.keys, step.publishes)
		}
	}
}

// TestKeyedPublishWaitsForReplicas: with WaitReplicas, a key's record must
// reach the replicas before any append: asking for more replicas than the
// shared Redis has, a keyed publish fails and stores nothing (its retry,
// should the record survive, completes it).
func TestKeyedPublishWaitsForReplicas(t *testing.T) {
	rdb := sharedRedis(t)
	replicas := 0
	for line := range strings.Lines(rdb.Info(t.Context(), "replication").Val()) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "connected_slaves:"); ok {
			replicas, _ = strconv.Atoi(v)
		}
	}
	b := newBroker(t, rdb, redisbroker.Options{WaitReplicas: replicas + 1, WaitTimeout: 50 * time.Millisecond})
	m := ssekit.Message{Channels: []string{"user:w"}, Key: "wait", Type: "t"}
	if _, err := b.Publish(t.Context(), m); err == nil || !strings.Contains(err.Error(), "replicas") {
		t.Fatalf("keyed publish waiting for %d replicas of a Redis with %d: %v, want an error naming the replicas", replicas+1, replicas, err)
	}
	if n, err := rdb.XLen(t.Context(), b.StreamKey("user:w")).Result(); n != 0 || (err != nil && !errors.Is(err, redis.Nil)) {
		t.Fatalf("the channel holds %d entries (%v), want none: the record was not replicated", n, err)
	}
}

// failFirstSPublish fails the first SPUBLISH its client sends, as a
// connection reset would.
type failFirstSPublish struct{ n atomic.Int32 }

func (f *failFirstSPublish) DialHook(next redis.DialHook) redis.DialHook { return next }
func (f *failFirstSPublish) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == "spublish" && f.n.Add(1) == 1 {
			return &net.OpError{Op: "write", Err: errors.New("connection reset (injected)")}
		}
		return next(ctx, cmd)
	}
}
func (f *failFirstSPublish) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// TestKeyedPublishToClientsRetriedAfterAFailedAnnouncement: a keyed
// publish to client ids whose announcement failed is refused, and its
// retry (another node) announces it — not a "replay" of an event nobody
// received.
func TestKeyedPublishToClientsRetriedAfterAFailedAnnouncement(t *testing.T) {
	rdb := sharedRedis(t)
	prefix := uniquePrefix(t, rdb)
	failing := redis.NewClient(&redis.Options{Addr: ssetest.RedisAddr(), MaxRetries: -1})
	t.Cleanup(func() { failing.Close() })
	failing.AddHook(&failFirstSPublish{})
	first := newBroker(t, failing, redisbroker.Options{Prefix: prefix})
	retrier := newBroker(t, sharedRedis(t), redisbroker.Options{Prefix: prefix})

	var heard atomic.Int32
	if _, err := retrier.Subscribe(t.Context(), func(m ssekit.Message) {
		if slices.Contains(m.Clients, "c1") && m.Type == "keyed" {
			heard.Add(1)
		}
	}); err != nil {
		t.Fatal(err)
	}
	// The subscription hears announcements once a probe gets through.
	var probes atomic.Int32
	probe := func() {
		if _, err := retrier.Publish(t.Context(), ssekit.Message{Clients: []string{"probe"}, Type: "probe", Data: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := retrier.Subscribe(t.Context(), func(m ssekit.Message) {
		if m.Type == "probe" {
			probes.Add(1)
		}
	}); err != nil {
		t.Fatal(err)
	}
	ssetest.Eventually(t, "the subscription hears announcements", func() bool { probe(); return probes.Load() > 0 })

	m := ssekit.Message{Clients: []string{"c1"}, Key: "k1", Type: "keyed", Data: []byte("{}")}
	if _, err := first.Publish(t.Context(), m); err == nil {
		t.Fatal("the injected reset did not fail the publish")
	}
	id, err := retrier.Publish(t.Context(), m)
	if err != nil || id == "" {
		t.Fatalf("the retry: %q, %v; want a new publish (the failed one's record released)", id, err)
	}
	ssetest.Eventually(t, "the retry announced", func() bool { return heard.Load() == 1 })
	if _, err := retrier.Publish(t.Context(), m); !errors.Is(err, ssekit.ErrReplayed) {
		t.Fatalf("a repeat of the retry: %v, want ErrReplayed", err)
	}
}
