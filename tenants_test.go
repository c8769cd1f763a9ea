package sse_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/ssekit/sse"
	"github.com/ssekit/sse/core"
	"github.com/ssekit/sse/internal/ssetest"
)

// followCounter is a memory broker that counts the channels its
// subscriptions are asked to follow, so that a test sees that a refused
// stream made the hub follow nothing.
type followCounter struct {
	*sse.MemoryBroker
	follows atomic.Int64
}

func (b *followCounter) Subscribe(ctx context.Context, fn func(sse.Message)) (sse.Subscription, error) {
	sub, err := b.MemoryBroker.Subscribe(ctx, fn)
	if err != nil {
		return nil, err
	}
	return countedSub{sub, b}, nil
}

type countedSub struct {
	sse.Subscription
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

func newIDHub(t *testing.T, cfg sse.Config) *idHub {
	t.Helper()
	b := &followCounter{MemoryBroker: sse.NewMemoryBroker(1000, 0)}
	t.Cleanup(func() { b.Close() }) // after the hub's cleanup: cleanups run last in, first out
	cfg.Broker = b
	cfg.DetachStreams = cfg.DetachStreams || detachAll
	hub, err := sse.New(cfg)
	if err != nil {
		t.Fatalf("sse.New: %v", err)
	}
	srv := newServer(t, hub, hub.Handler(sse.HandlerOptions{Identify: queryIdentity}))
	return &idHub{testHub: &testHub{Hub: hub, srv: srv}, broker: b}
}

func queryIdentity(r *http.Request) (sse.Identity, error) {
	user, err := headerUser(r)
	q := r.URL.Query()
	return sse.Identity{User: user, Tenant: q.Get("tenant"), Topics: q["grant"]}, err
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
func (h *idHub) refused(t *testing.T, user, query string, status int, code string) sse.ErrorBody {
	t.Helper()
	clients, follows := h.GetTotalClientCount(), h.broker.follows.Load()
	resp := get(t, h.srv.URL+"?"+query, user)
	defer resp.Body.Close()
	if resp.StatusCode != status {
		t.Fatalf("?%s: status %d, want %d", query, resp.StatusCode, status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("?%s: Content-Type %q, want application/json", query, ct)
	}
	var body sse.ErrorBody
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

// get requests url as user, failing the test if the request fails.
func get(t *testing.T, url, user string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.Header.Set("X-User", user)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// expectNext fails unless each connection's next events are of the types
// want, in order.
func expectNext(t *testing.T, conns map[string]*conn, want ...string) {
	t.Helper()
	for who, c := range conns {
		for _, w := range want {
			if ev := c.NextOf(); ev.Type != w {
				t.Fatalf("%s got %q (%s), want %q", who, ev.Type, ev.Data, w)
			}
		}
	}
}

func TestSendToTenantReachesEveryConnectionOfThatTenantOnly(t *testing.T) {
	t.Parallel()
	h := newIDHub(t, sse.Config{})
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
	if err := h.SendToTenant("acme", sse.Event{Type: "acme-only"}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Publish(t.Context(), sse.Target{Tenants: []string{"globex", "acme"}}, sse.Event{Type: "two-tenants"}); err != nil {
		t.Fatal(err)
	}
	if err := h.SendToAll(sse.Event{Type: "everyone"}); err != nil {
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
		expectNext(t, map[string]*conn{who: c}, want...)
	}
	if len(in("acme")) != 4 || len(in("globex")) != 1 {
		t.Fatalf("test setup: %d acme and %d globex connections", len(in("acme")), len(in("globex")))
	}
	// A tenant and a user of it: once per connection.
	if _, err := h.Publish(t.Context(), sse.Target{Tenants: []string{"acme"}, Users: []string{"alice", "carol"}}, sse.Event{Type: "both"}); err != nil {
		t.Fatal(err)
	}
	h.SendToAll(sse.Event{Type: "end"})
	expectNext(t, in("acme"), "both", "end")
	expectNext(t, in("globex"), "both", "end")
	expectNext(t, map[string]*conn{"dave": conns["dave (no tenant)"]}, "end")
}

func TestTenantIDsAreValidNames(t *testing.T) {
	t.Parallel()
	h := newIDHub(t, sse.Config{Logger: slog.New(slog.DiscardHandler)})
	for _, bad := range []string{"", "a b", "-acme", "acme{1}", strings.Repeat("a", sse.MaxNameLen+1)} {
		err := h.SendToTenant(bad, sse.Event{Type: "x"})
		if !errors.Is(err, sse.ErrInvalidTarget) {
			t.Errorf("SendToTenant(%q) = %v, want ErrInvalidTarget", bad, err)
		}
	}
	if _, err := h.Publish(t.Context(), sse.Target{Tenants: []string{}}, sse.Event{Type: "x"}); !errors.Is(err, sse.ErrInvalidTarget) {
		t.Errorf("an empty Tenants list: %v, want ErrInvalidTarget, never a broadcast", err)
	}
	// The app's tenant id is the app's bug, not the client's: 500.
	body := h.refused(t, "alice", "tenant=a%20b", http.StatusInternalServerError, sse.CodeInvalidTenant)
	if !strings.Contains(body.Message, "tenant") {
		t.Errorf("message %q does not say what is wrong", body.Message)
	}
	if got := h.Stats().Published; got != 0 {
		t.Fatalf("Published = %d after refused sends", got)
	}
}

func TestHandlerIdentify(t *testing.T) {
	t.Parallel()
	hub, err := sse.New(sse.Config{AuthorizeTopic: sse.AllowAllTopics, DetachStreams: detachAll})
	if err != nil {
		t.Fatal(err)
	}
	handler := hub.Handler(sse.HandlerOptions{
		// Identify wins: Authenticate would make every stream "wrong".
		Authenticate: func(*http.Request) (string, error) { return "wrong", nil },
		Identify: func(r *http.Request) (sse.Identity, error) {
			switch tok := r.Header.Get("X-User"); tok {
			case "expired":
				return sse.Identity{}, errors.New("token expired")
			case "":
				return sse.Identity{}, nil
			default:
				return sse.Identity{User: tok, Tenant: "acme", Topics: []string{"granted"}}, nil
			}
		},
		RequireAuth: true,
	})
	srv := newServer(t, hub, handler)

	for user, want := range map[string]string{"expired": "token expired", "": "authentication required"} {
		resp := get(t, srv.URL, user)
		var body sse.ErrorBody
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
	hub.SendToUser(uuid.Nil, sse.Event{Type: "not-for-alice"})
	hub.Publish(t.Context(), sse.Target{Users: []string{"wrong"}}, sse.Event{Type: "not-for-alice"})
	hub.Publish(t.Context(), sse.Target{Users: []string{"alice"}}, sse.Event{Type: "user"})
	hub.SendToTenant("acme", sse.Event{Type: "tenant"})
	hub.SendToTopic("granted", sse.Event{Type: "granted"})
	hub.SendToTopic("asked", sse.Event{Type: "asked"})
	expectNext(t, map[string]*conn{"alice": c}, "user", "tenant", "granted", "asked")
}

// tenantCtx stands in for an app's auth middleware that puts the tenant
// in the Echo context, under key, as value.
func tenantCtx(key string, value any) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if id, err := uuid.Parse(c.Request().Header.Get("X-User")); err == nil {
				c.Set("user_id", id)
			}
			c.Set(key, value)
			return next(c)
		}
	}
}

type orgID struct{ n int }

func (o orgID) String() string { return fmt.Sprintf("org-%d", o.n) }

// orgName is an app's named string type for tenant ids.
type orgName string

func TestModuleReadsTheTenantFromTheContext(t *testing.T) {
	t.Parallel()
	tenantUUID := uuid.MustParse("0b0e7d1c-1f1e-4d1c-9a3b-5c6d7e8f9a0b")
	cases := []struct {
		name      string
		key       string // ModuleConfig.TenantKey; "" for the default
		ctxKey    string // where the middleware puts it
		value     any
		want      string // the tenant id; "" for none
		wantError string // the 500's message contains it
	}{
		{name: "string", ctxKey: "tenant_id", value: "acme", want: "acme"},
		{name: "uuid.UUID", ctxKey: "tenant_id", value: tenantUUID, want: tenantUUID.String()},
		{name: "int", ctxKey: "tenant_id", value: 42, want: "42"},
		{name: "int64", ctxKey: "tenant_id", value: int64(7), want: "7"},
		{name: "fmt.Stringer", ctxKey: "tenant_id", value: orgID{3}, want: "org-3"},
		{name: "custom key", key: "org", ctxKey: "org", value: "globex", want: "globex"},
		{name: "custom key ignores tenant_id", key: "org", ctxKey: "tenant_id", value: "acme", want: ""},
		{name: "nil uuid is no tenant", ctxKey: "tenant_id", value: uuid.Nil, want: ""},
		{name: "named string", ctxKey: "tenant_id", value: orgName("initech"), want: "initech"},
		{name: "int32", ctxKey: "tenant_id", value: int32(9), want: "9"},
		{name: "uint", ctxKey: "tenant_id", value: uint(11), want: "11"},
		{name: "nil pointer is no tenant", ctxKey: "tenant_id", value: (*orgID)(nil), want: ""},
		{name: "float", ctxKey: "tenant_id", value: 3.5, wantError: `"tenant_id" in the Echo context is a float64`},
		{name: "byte slice", key: "org", ctxKey: "org", value: []byte("acme"), wantError: `"org" in the Echo context is a []uint8`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			hub := sse.NewHub(sse.Config{DetachStreams: detachAll})
			mod := sse.NewModule(sse.ModuleConfig{Hub: hub, TenantKey: tc.key, RequireAuth: true})
			app := core.NewKit(nil, core.KitConfig{})
			app.Echo().Use(tenantCtx(tc.ctxKey, tc.value))
			if err := app.Register(mod); err != nil {
				t.Fatal(err)
			}
			if err := app.Mount(); err != nil {
				t.Fatal(err)
			}
			srv := newServer(t, hub, app.Echo())
			user := uuid.New()
			if tc.wantError != "" {
				resp := get(t, srv.URL+"/sse/stream", user.String())
				defer resp.Body.Close()
				var body sse.ErrorBody
				if err := jsonDecode(resp, &body); err != nil {
					t.Fatal(err)
				}
				if resp.StatusCode != http.StatusInternalServerError || body.Error != sse.CodeInvalidTenant || !strings.Contains(body.Message, tc.wantError) {
					t.Fatalf("got %d %+v, want 500 %s with a message containing %q", resp.StatusCode, body, sse.CodeInvalidTenant, tc.wantError)
				}
				if got := hub.GetTotalClientCount(); got != 0 {
					t.Fatalf("GetTotalClientCount = %d after a refusal", got)
				}
				return
			}
			c := dialURLUser(t, srv.URL+"/sse/stream", user)
			c.Connected()
			if tc.want != "" {
				hub.SendToTenant(tc.want, sse.Event{Type: "tenant"})
			}
			hub.SendToTenant("someone-else", sse.Event{Type: "other-tenant"})
			hub.SendToAll(sse.Event{Type: "end"})
			want := []string{"end"}
			if tc.want != "" {
				want = []string{"tenant", "end"}
			}
			expectNext(t, map[string]*conn{"stream": c}, want...)
		})
	}
}

// A tenant's events stay in its tenant over the Echo module as over
// Handler: two tenants' users, each with two tabs.
func TestModuleTenantsDoNotSeeEachOther(t *testing.T) {
	t.Parallel()
	hub := sse.NewHub(sse.Config{DetachStreams: detachAll})
	mod := sse.NewModule(sse.ModuleConfig{Hub: hub})
	app := core.NewKit(nil, core.KitConfig{})
	app.Echo().Use(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			user, tenant, _ := strings.Cut(c.Request().Header.Get("X-User"), "@")
			c.Set("user_id", uuid.NewSHA1(uuid.NameSpaceOID, []byte(user)))
			c.Set("tenant_id", tenant)
			return next(c)
		}
	})
	if err := app.Register(mod); err != nil {
		t.Fatal(err)
	}
	if err := app.Mount(); err != nil {
		t.Fatal(err)
	}
	srv := newServer(t, hub, app.Echo())
	conns := map[string]*conn{}
	for _, who := range []string{"alice@acme", "bob@acme", "carol@globex"} {
		for tab := range 2 {
			c := ssetest.DialOK(t, srv.URL+"/sse/stream", who, "")
			c.Connected()
			conns[fmt.Sprint(who, " tab ", tab)] = c
		}
	}
	hub.SendToTenant("acme", sse.Event{Type: "acme"})
	hub.SendToTenant("globex", sse.Event{Type: "globex"})
	for who, c := range conns {
		_, tenant, _ := strings.Cut(who, "@")
		tenant, _, _ = strings.Cut(tenant, " ")
		expectNext(t, map[string]*conn{who: c}, tenant)
	}
	hub.SendToAll(sse.Event{Type: "end"})
	expectNext(t, conns, "end")
	if got := hub.ConnectedUserIDs(); len(got) != 3 {
		t.Fatalf("ConnectedUserIDs = %v, want 3 users", got)
	}
}
