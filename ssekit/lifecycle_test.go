package ssekit_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssekit/sse/internal/ssetest"
	"github.com/ssekit/sse/ssekit"
)

func TestCloseEndsEveryStreamAndRefusesNewOnes(t *testing.T) {
	t.Parallel()
	hub := ssekit.NewHub(ssekit.Config{})
	srv := httptest.NewServer(hub.Handler(ssekit.HandlerOptions{Authenticate: headerUser}))
	defer srv.Close()
	th := &testHub{Hub: hub, srv: srv}
	var cs []*conn
	for _, u := range []string{"a", "b", ""} {
		c := th.dial(t, u, "")
		c.Connected()
		cs = append(cs, c)
	}
	if err := hub.Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		c.Ended()
	}
	if got := hub.GetTotalClientCount(); got != 0 {
		t.Fatalf("%d clients after Close", got)
	}
	if got := hub.Stats().Disconnects[ssekit.ReasonShutdown]; got != 3 {
		t.Fatalf("shutdown disconnects = %d, want 3", got)
	}
	if err := hub.SendToAll(ssekit.Event{Type: "x"}); !errors.Is(err, ssekit.ErrHubClosed) {
		t.Fatalf("send after Close: %v", err)
	}
	// A stream opened after Close gets 200 and a retry hint, then ends.
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(body), "retry: ") || strings.Contains(string(body), "connected") {
		t.Fatalf("after Close: %d %q, want 200 with only a retry line", resp.StatusCode, body)
	}
	if got := hub.Status().Status; got != "closed" {
		t.Fatalf("status %q after Close", got)
	}
	hub.Close() // idempotent
}

func TestPlainNetHTTPMux(t *testing.T) {
	t.Parallel()
	hub := ssekit.NewHub(ssekit.Config{})
	mux := http.NewServeMux()
	mux.Handle("GET /events", hub.Handler(ssekit.HandlerOptions{RequireAuth: true, Authenticate: headerUser}))
	mux.Handle("GET /status", hub.StatusHandler())
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { hub.Close(); srv.Close() })

	c := dialURL(t, srv.URL+"/events", "u1", "")
	c.Connected()
	hub.Publish(t.Context(), ssekit.Target{Users: []string{"u1"}}, ssekit.Event{Type: "hello"})
	if got := c.NextOf().Type; got != "hello" {
		t.Fatalf("got %q", got)
	}
	for _, tc := range []struct {
		name, user string
		want       int
	}{{"anonymous", "", 401}, {"bad credentials", "bad", 401}} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/events", nil)
		if tc.user != "" {
			req.Header.Set("X-User", tc.user)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want || !strings.Contains(string(body), `"error":"unauthorized"`) {
			t.Errorf("%s: %d %s, want %d JSON", tc.name, resp.StatusCode, body, tc.want)
		}
	}
	resp, err := http.Post(srv.URL+"/events", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d, want 405", resp.StatusCode)
	}
}

// failingBroker is the memory broker with a switch that makes every call
// fail, as a dead Redis would.
type failingBroker struct {
	*ssekit.MemoryBroker
	down atomic.Bool
}

var errDown = errors.New("broker down")

func (b *failingBroker) Publish(ctx context.Context, m ssekit.Message) (string, error) {
	if b.down.Load() {
		return "", errDown
	}
	return b.MemoryBroker.Publish(ctx, m)
}

func (b *failingBroker) Head(ctx context.Context, channel string) (string, error) {
	if b.down.Load() {
		return "", errDown
	}
	return b.MemoryBroker.Head(ctx, channel)
}

func (b *failingBroker) Read(ctx context.Context, channel, after string, limit int) ([]ssekit.Message, error) {
	if b.down.Load() {
		return nil, errDown
	}
	return b.MemoryBroker.Read(ctx, channel, after, limit)
}

func (b *failingBroker) Subscribe(ctx context.Context, fn func(ssekit.Message)) (ssekit.Subscription, error) {
	sub, err := b.MemoryBroker.Subscribe(ctx, fn)
	return failingSubscription{sub, b}, err
}

// failingSubscription cannot follow a channel while its broker is down,
// as a Redis subscription that cannot SSUBSCRIBE.
type failingSubscription struct {
	ssekit.Subscription
	b *failingBroker
}

func (s failingSubscription) Follow(ctx context.Context, channels ...string) error {
	if s.b.down.Load() {
		return errDown
	}
	return s.Subscription.Follow(ctx, channels...)
}

func TestDeadBrokerIsLoud(t *testing.T) {
	t.Parallel()
	b := &failingBroker{MemoryBroker: ssekit.NewMemoryBroker(100, 0)}
	defer b.Close()
	h := newTestHub(t, ssekit.Config{Broker: b})
	c := h.dial(t, "u", "")
	c.Connected()
	h.SendToAll(ssekit.Event{Type: "n", Data: 1})
	last := c.NextOf().ID

	b.down.Store(true)
	// The caller learns the event was not sent.
	if err := h.SendToAll(ssekit.Event{Type: "n", Data: 2}); !errors.Is(err, errDown) {
		t.Fatalf("send with the broker down: %v, want its error", err)
	}
	// New and resuming streams are sent away with a retry hint: serving
	// them without a position would lose events silently.
	for _, lastID := range []string{"", last} {
		req, _ := http.NewRequest(http.MethodGet, h.srv.URL+"?user=v", nil)
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), "retry: ") {
			t.Fatalf("stream with broker down: %d %q, want 200 ending with a retry hint", resp.StatusCode, body)
		}
	}
	// The open stream stays open and gets what is published once the
	// broker is back.
	b.down.Store(false)
	h.SendToAll(ssekit.Event{Type: "n", Data: 3})
	if got := seqOf(t, c.NextOf().Data); got != 3 {
		t.Fatalf("after recovery got %d, want 3", got)
	}
	if got := h.Stats().Disconnects[ssekit.ReasonBroker]; got != 2 {
		t.Fatalf("broker disconnects = %d, want 2", got)
	}
}

func TestRefuseAsksToComeBackLater(t *testing.T) {
	t.Parallel()
	hub := ssekit.NewHub(ssekit.Config{RetryInterval: time.Second})
	srv := ssetest.Serve(t, hub, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hub.Refuse(w, 10*time.Second) // e.g. a rate limit
	}))
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	retry, ok := strings.CutPrefix(strings.TrimSpace(string(body)), "retry: ")
	ms, err := strconv.Atoi(retry)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" || !ok || err != nil || ms < 10000 || ms > 20000 {
		t.Fatalf("%d %q %q, want 200 text/event-stream with retry 10–20 s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if ra, _ := strconv.Atoi(resp.Header.Get("Retry-After")); ra*1000 < ms {
		t.Fatalf("Retry-After %q, want at least the retry field's %d ms", resp.Header.Get("Retry-After"), ms)
	}
	if got := hub.Stats().Rejected; got != 1 {
		t.Fatalf("Rejected = %d", got)
	}
}

// resyncingBroker lets a test deliver what a broker delivers when a
// channel's history broke: a message of TypeResync in that channel.
type resyncingBroker struct {
	*ssekit.MemoryBroker
	mu   sync.Mutex
	subs []func(ssekit.Message)
}

func (b *resyncingBroker) Subscribe(ctx context.Context, fn func(ssekit.Message)) (ssekit.Subscription, error) {
	b.mu.Lock()
	b.subs = append(b.subs, fn)
	b.mu.Unlock()
	return b.MemoryBroker.Subscribe(ctx, fn)
}

func (b *resyncingBroker) breakHistory(channel, pos string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, fn := range b.subs {
		fn(ssekit.Message{ID: "x", Channels: []string{channel}, Positions: []string{pos}, Type: ssekit.TypeResync})
	}
}

func TestBrokerResyncReachesTheChannelsFollowers(t *testing.T) {
	t.Parallel()
	b := &resyncingBroker{MemoryBroker: ssekit.NewMemoryBroker(100, 0)}
	defer b.Close()
	h := newTestHub(t, ssekit.Config{Broker: b})
	alice, anon := h.dial(t, "a", ""), h.dial(t, "", "")
	for _, c := range []*conn{alice, anon} {
		c.Connected()
	}
	b.breakHistory(ssekit.UserChannel("a"), "0-0") // a position lower than any the clients hold
	ev := alice.NextOf()
	if ev.Type != ssekit.TypeResync || !strings.HasSuffix(ev.ID, ".u0-0") {
		t.Fatalf("alice got %q id %q, want the broker's resync moving her user channel to 0-0", ev.Type, ev.ID)
	}
	var data struct{ Channels []string }
	if err := json.Unmarshal(ev.Data, &data); err != nil || !slices.Equal(data.Channels, []string{"user"}) {
		t.Fatalf("resync data %s, want channels [user]", ev.Data)
	}
	b.breakHistory(ssekit.BroadcastChannel, "0-0")
	for _, c := range []*conn{alice, anon} {
		if ev := c.NextOf(); ev.Type != ssekit.TypeResync || !strings.HasPrefix(ev.ID, "a0-0") {
			t.Fatalf("got %q id %q, want the broker's resync of the broadcast channel", ev.Type, ev.ID)
		}
	}
	if got := h.Stats().Resyncs; got != 3 {
		t.Fatalf("Resyncs = %d, want 3", got)
	}
}
