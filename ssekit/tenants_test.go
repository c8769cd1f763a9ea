package ssekit_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"github.com/ssekit/sse/internal/ssetest"
	"github.com/ssekit/sse/ssekit"
)

// followCounter is a memory broker that counts the channels its
// subscriptions are asked to follow, so that a test sees that a refused
// stream made the hub follow nothing.
type followCounter struct {
	*ssekit.MemoryBroker
	follows atomic.Int64
}

func (b *followCounter) Subscribe(ctx context.Context, fn func(ssekit.Message)) (ssekit.Subscription, error) {
	sub, err := b.MemoryBroker.Subscribe(ctx, fn)
	if err != nil {
		return nil, err
	}
	return countedSub{sub, b}, nil
}

type countedSub struct {
	ssekit.Subscription
	b *followCounter
}

func (s countedSub) Follow(ctx context.Context, channels ...string) error {
	s.b.follows.Add(int64(len(channels)))
	return s.Subscription.Follow(ctx, channels...)
}

// idHub is a hub whose requests carry a whole Identity, as the app's
// authentication would find it: the user in X-User (or ?user=), the
// tenant in ?tenant= and topics a credential grants in ?grant=. Its
// broker counts follows.
type idHub struct {
	*testHub
	broker *followCounter
}

func newIDHub(t *testing.T, cfg ssekit.Config) *idHub {
	t.Helper()
	b := &followCounter{MemoryBroker: ssekit.NewMemoryBroker(1000, 0)}
	t.Cleanup(func() { b.Close() }) // after the hub's cleanup: cleanups run last in, first out
	cfg.Broker = b
	cfg.DetachStreams = cfg.DetachStreams || detachAll
	hub, err := ssekit.New(cfg)
	if err != nil {
		t.Fatalf("ssekit.New: %v", err)
	}
	srv := ssetest.Serve(t, hub, hub.Handler(ssekit.HandlerOptions{Identify: queryIdentity}))
	return &idHub{testHub: &testHub{Hub: hub, srv: srv}, broker: b}
}

func queryIdentity(r *http.Request) (ssekit.Identity, error) {
	user, err := headerUser(r)
	q := r.URL.Query()
	return ssekit.Identity{User: user, Tenant: q.Get("tenant"), Topics: q["grant"]}, err
}

// dialQ opens a stream of user with the query (tenant=, topic=, grant=)
// and fails the test unless it is served.
func (h *idHub) dialQ(t *testing.T, user, query, lastID string) *conn {
	t.Helper()
	return ssetest.DialOK(t, h.srv.URL+"?"+query, user, lastID)
}

// refused requests the stream of user with query and checks that the hub
// refused it with status and a JSON ErrorBody of code, and that it
// registered and followed nothing.
func (h *idHub) refused(t *testing.T, user, query string, status int, code string) ssekit.ErrorBody {
	t.Helper()
	clients, follows := h.GetTotalClientCount(), h.broker.follows.Load()
	resp := ssetest.Get(t, h.srv.URL+"?"+query, user)
	defer resp.Body.Close()
	if resp.StatusCode != status {
		t.Fatalf("?%s: status %d, want %d", query, resp.StatusCode, status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("?%s: Content-Type %q, want application/json", query, ct)
	}
	var body ssekit.ErrorBody
	if err := jsonDecode(resp, &body); err != nil {
		t.Fatalf("?%s: body: %v", query, err)
	}
	if body.Error != code || body.Message == "" {
		t.Fatalf("?%s: body %+v, want error %q and a message", query, body, code)
	}
	if got := h.GetTotalClientCount(); got != clients {
		t.Fatalf("?%s: GetTotalClientCount = %d after the refusal, want %d", query, got, clients)
	}
	if got := h.broker.follows.Load(); got != follows {
		t.Fatalf("?%s: the refused stream followed %d channels", query, got-follows)
	}
	return body
}

func TestSendToTenantReachesEveryConnectionOfThatTenantOnly(t *testing.T) {
	t.Parallel()
	h := newIDHub(t, ssekit.Config{})
	conns := map[string]*conn{
		"alice tab 1 (acme)":      h.dialQ(t, "alice", "tenant=acme", ""),
		"alice tab 2 (acme)":      h.dialQ(t, "alice", "tenant=acme", ""),
		"bob (acme)":              h.dialQ(t, "bob", "tenant=acme", ""),
		"kiosk, no user (acme)":   h.dialQ(t, "", "tenant=acme", ""),
		"carol (globex)":          h.dialQ(t, "carol", "tenant=globex", ""),
		"dave (no tenant)":        h.dialQ(t, "dave", "", ""),
		"anonymous (no tenant)":   h.dialQ(t, "", "", ""),
		"eve (tenant acme-other)": h.dialQ(t, "eve", "tenant=acme-other", ""),
	}
	for _, c := range conns {
		c.Connected()
	}
	in := func(tenant string) map[string]*conn {
		out := map[string]*conn{}
		for who, c := range conns {
			if strings.HasSuffix(who, "("+tenant+")") {
				out[who] = c
			}
		}
		return out
	}
	if err := h.SendToTenant("acme", ssekit.Event{Type: "acme-only"}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Publish(t.Context(), ssekit.Target{Tenants: []string{"globex", "acme"}}, ssekit.Event{Type: "two-tenants"}); err != nil {
		t.Fatal(err)
	}
	if err := h.SendToAll(ssekit.Event{Type: "everyone"}); err != nil {
		t.Fatal(err)
	}
	// Each tenant's connections see their events, then the broadcast; a
	// connection that sees the broadcast first got nothing else.
	for who, c := range conns {
		var want []string
		switch {
		case strings.HasSuffix(who, "(acme)"):
			want = []string{"acme-only", "two-tenants", "everyone"}
		case strings.HasSuffix(who, "(globex)"):
			want = []string{"two-tenants", "everyone"}
		default:
			want = []string{"everyone"}
		}
		ssetest.ExpectNext(t, map[string]*conn{who: c}, want...)
	}
	if len(in("acme")) != 4 || len(in("globex")) != 1 {
		t.Fatalf("test setup: %d acme and %d globex connections", len(in("acme")), len(in("globex")))
	}
	// A tenant and a user of it: once per connection.
	if _, err := h.Publish(t.Context(), ssekit.Target{Tenants: []string{"acme"}, Users: []string{"alice", "carol"}}, ssekit.Event{Type: "both"}); err != nil {
		t.Fatal(err)
	}
	h.SendToAll(ssekit.Event{Type: "end"})
	ssetest.ExpectNext(t, in("acme"), "both", "end")
	ssetest.ExpectNext(t, in("globex"), "both", "end")
	ssetest.ExpectNext(t, map[string]*conn{"dave": conns["dave (no tenant)"]}, "end")
}

func TestTenantIDsAreValidNames(t *testing.T) {
	t.Parallel()
	h := newIDHub(t, ssekit.Config{Logger: slog.New(slog.DiscardHandler)})
	for _, bad := range []string{"", "a b", "-acme", "acme{1}", strings.Repeat("a", ssekit.MaxNameLen+1)} {
		err := h.SendToTenant(bad, ssekit.Event{Type: "x"})
		if !errors.Is(err, ssekit.ErrInvalidTarget) {
			t.Errorf("SendToTenant(%q) = %v, want ErrInvalidTarget", bad, err)
		}
	}
	if _, err := h.Publish(t.Context(), ssekit.Target{Tenants: []string{}}, ssekit.Event{Type: "x"}); !errors.Is(err, ssekit.ErrInvalidTarget) {
		t.Errorf("an empty Tenants list: %v, want ErrInvalidTarget, never a broadcast", err)
	}
	// The app's tenant id is the app's bug, not the client's: 500.
	body := h.refused(t, "alice", "tenant=a%20b", http.StatusInternalServerError, ssekit.CodeInvalidTenant)
	if !strings.Contains(body.Message, "tenant") {
		t.Errorf("message %q does not say what is wrong", body.Message)
	}
	if got := h.Stats().Published; got != 0 {
		t.Fatalf("Published = %d after refused sends", got)
	}
}

func TestHandlerIdentify(t *testing.T) {
	t.Parallel()
	hub, err := ssekit.New(ssekit.Config{AuthorizeTopic: ssekit.AllowAllTopics, DetachStreams: detachAll})
	if err != nil {
		t.Fatal(err)
	}
	handler := hub.Handler(ssekit.HandlerOptions{
		// Identify wins: Authenticate would make every stream "wrong".
		Authenticate: func(*http.Request) (string, error) { return "wrong", nil },
		Identify: func(r *http.Request) (ssekit.Identity, error) {
			switch tok := r.Header.Get("X-User"); tok {
			case "expired":
				return ssekit.Identity{}, errors.New("token expired")
			case "":
				return ssekit.Identity{}, nil
			default:
				return ssekit.Identity{User: tok, Tenant: "acme", Topics: []string{"granted"}}, nil
			}
		},
		RequireAuth: true,
	})
	srv := ssetest.Serve(t, hub, handler)

	for user, want := range map[string]string{"expired": "token expired", "": "authentication required"} {
		resp := ssetest.Get(t, srv.URL, user)
		var body ssekit.ErrorBody
		if err := jsonDecode(resp, &body); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || body.Error != "unauthorized" || body.Message != want {
			t.Fatalf("X-User %q: %d %+v, want 401 unauthorized %q", user, resp.StatusCode, body, want)
		}
	}
	c := dialURL(t, srv.URL+"?topic=asked", "alice", "")
	c.Connected()
	if got := hub.UserClientCount("alice"); got != 1 {
		t.Fatalf("UserClientCount(alice) = %d: Identify's user was not used", got)
	}
	// The Identity's user, tenant, granted topic and the asked one.
	hub.SendToUser(uuid.Nil, ssekit.Event{Type: "not-for-alice"})
	hub.Publish(t.Context(), ssekit.Target{Users: []string{"wrong"}}, ssekit.Event{Type: "not-for-alice"})
	hub.Publish(t.Context(), ssekit.Target{Users: []string{"alice"}}, ssekit.Event{Type: "user"})
	hub.SendToTenant("acme", ssekit.Event{Type: "tenant"})
	hub.SendToTopic("granted", ssekit.Event{Type: "granted"})
	hub.SendToTopic("asked", ssekit.Event{Type: "asked"})
	ssetest.ExpectNext(t, map[string]*conn{"alice": c}, "user", "tenant", "granted", "asked")
}
