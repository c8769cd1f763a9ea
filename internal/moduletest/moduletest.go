// Package moduletest is the one test table of the Echo modules: Run runs
// it against a Framework, which the Echo v4 module's tests (package sse)
// and the Echo v5 module's (package echo5) each implement over their
// Echo major. Whatever the v4 module promises, the v5 one is held to, and
// the other way round.
package moduletest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/ssekit/sse/internal/ssetest"
	"github.com/ssekit/sse/ssekit"
)

// Framework is one Echo major, as the table drives it.
type Framework struct {
	// New builds the app of cfg: a kit (core.NewKit(nil, …)) with
	// cfg.Auth and cfg.Global as global middleware, the module of cfg
	// registered, and the kit mounted. It fails t on an error.
	New func(t *testing.T, cfg Config) App
}

// Config is what the table varies of an app.
type Config struct {
	// Hub is ModuleConfig.Hub.
	Hub *ssekit.Hub
	// RoutePrefix, RequireAuth and TenantKey are the ModuleConfig fields.
	RoutePrefix string
	RequireAuth bool
	TenantKey   string
	// UserID, when set, is ModuleConfig.UserID, given the Echo context's
	// request.
	UserID func(r *http.Request) (string, error)
	// KitPrefix is KitConfig.RoutePrefix.
	KitPrefix string
	// Auth stands in for the app's auth middleware: it sets what it
	// returns in the Echo context. Nil sets nothing.
	Auth func(r *http.Request) map[string]any
	// Global is Echo middleware applied with Echo.Use, after Auth; Route
	// is ModuleConfig.Middleware.
	Global, Route []Middleware
}

// Middleware names an Echo middleware as a common app sets it up.
type Middleware int

const (
	// Timeout is Echo v4's middleware.Timeout (TimeoutHandler
	// underneath); on Echo v5, which has none, http.TimeoutHandler
	// through echo.WrapMiddleware: the same writer.
	Timeout Middleware = iota + 1
	// ContextTimeout is middleware.ContextTimeout, with an hour's timeout.
	ContextTimeout
	// BodyDump is middleware.BodyDump.
	BodyDump
	// Gzip is middleware.Gzip.
	Gzip
	// SkippedOnStream is Timeout, ContextTimeout and BodyDump, each
	// skipping the stream route as docs/echo.md shows.
	SkippedOnStream
)

// StreamPath is the path of the stream route, as Echo's Context.Path
// names it: what a Skipper compares.
func (c Config) StreamPath() string {
	prefix := c.RoutePrefix
	if prefix == "" {
		prefix = "/sse"
	}
	return c.KitPrefix + prefix + "/stream"
}

// App is an app that New built.
type App struct {
	// Handler is the kit's Echo.
	Handler http.Handler
	// Serve serves the app on ln as an app on this Echo major does (v4:
	// Echo.Start; v5: the kit's Start); stop shuts it down as such an
	// app does and returns nil when the server stopped cleanly before ctx
	// was done.
	Serve func(ln net.Listener) (stop func(ctx context.Context) error)
}

// Run runs the table against fw.
func Run(t *testing.T, fw Framework) {
	t.Run("QuickStartServesStreamAndStatus", func(t *testing.T) { t.Parallel(); quickStartServes(t, fw) })
	t.Run("Auth", func(t *testing.T) { t.Parallel(); auth(t, fw) })
	t.Run("ShutdownWithOpenStreamsReturns", func(t *testing.T) { t.Parallel(); shutdownReturns(t, fw) })
	t.Run("TenantFromTheContext", func(t *testing.T) { t.Parallel(); tenantFromContext(t, fw) })
	t.Run("TenantsDoNotSeeEachOther", func(t *testing.T) { t.Parallel(); tenantsIsolated(t, fw) })
	t.Run("Middleware", func(t *testing.T) { t.Parallel(); middleware(t, fw) })
}

// userAuth stands in for the app's auth middleware: it trusts the X-User
// header and puts the user in the Echo context under key, as a real one
// would after checking a session or token.
func userAuth(key string) func(r *http.Request) map[string]any {
	return func(r *http.Request) map[string]any {
		set := map[string]any{}
		if id, err := uuid.Parse(r.Header.Get("X-User")); err == nil {
			set[key] = id
		}
		return set
	}
}

// serve serves the app of cfg until the test ends.
func serve(t *testing.T, fw Framework, cfg Config) string {
	t.Helper()
	if cfg.Hub == nil {
		cfg.Hub = ssekit.NewHub(ssekit.Config{DetachStreams: ssetest.Detach})
	}
	return ssetest.Serve(t, cfg.Hub, fw.New(t, cfg).Handler).URL
}

// quickStart serves the Quick Start of the README, as written, plus the
// demo auth middleware putting the user under authKey.
func quickStart(t *testing.T, fw Framework, authKey string) (*ssekit.Hub, string) {
	t.Helper()
	cfg := ssekit.DefaultConfig()
	cfg.DetachStreams = ssetest.Detach // through the Echo response's Hijack
	hub := ssekit.NewHub(cfg)
	return hub, serve(t, fw, Config{Hub: hub, RoutePrefix: "/api/sse", RequireAuth: true, Auth: userAuth(authKey)})
}

func dialUser(t *testing.T, url string, user uuid.UUID) *ssetest.Conn {
	t.Helper()
	return ssetest.DialOK(t, url, user.String(), "")
}

func quickStartServes(t *testing.T, fw Framework) {
	hub, srv := quickStart(t, fw, "user_id")
	user, other := uuid.New(), uuid.New()
	c := dialUser(t, srv+"/api/sse/stream", user)
	c.Connected()
	if c.Resp.Close != ssetest.Detach {
		t.Fatalf("body delimited by the close: %v, want %v (detached)", c.Resp.Close, ssetest.Detach)
	}
	o := dialUser(t, srv+"/api/sse/stream", other)
	o.Connected()

	hub.SendToUser(user, ssekit.Event{Type: "notification", Data: map[string]any{"title": "New follower!"}})
	hub.SendToUsers([]uuid.UUID{user, other}, ssekit.Event{Type: "update", Data: 1})
	hub.SendToAll(ssekit.Event{Type: "announcement", Data: "hi"})
	hub.SendToUser(user, ssekit.NotificationEvent("follow", "New follower!", "Jo follows you", map[string]any{"by": "jo"}))
	hub.SendToUser(user, ssekit.BadgeUpdateEvent(5))
	hub.SendToUser(user, ssekit.NewItemEvent("dish", "d1", map[string]any{"name": "pizza"}))
	for _, want := range []string{"notification", "update", "announcement", "notification", "badge_update", "new_item"} {
		if got := c.NextOf().Type; got != want {
			t.Fatalf("user got %q, want %q", got, want)
		}
	}
	for _, want := range []string{"update", "announcement"} {
		if got := o.NextOf().Type; got != want {
			t.Fatalf("other got %q, want %q", got, want)
		}
	}

	st := status(t, srv+"/api/sse/status")
	if st.Status != "operational" || st.ConnectedUsers != 2 || st.TotalClients != 2 {
		t.Fatalf("status %+v, want operational, 2 users, 2 clients", st)
	}
	if got := hub.GetUserClientCount(user); got != 1 {
		t.Fatalf("GetUserClientCount = %d", got)
	}
}

// status reads the status endpoint at url.
func status(t *testing.T, url string) ssekit.Status {
	t.Helper()
	resp := ssetest.Get(t, url, "")
	defer resp.Body.Close()
	var st ssekit.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status endpoint: %d", resp.StatusCode)
	}
	return st
}

// refusal reads the JSON error answering a stream request to url as user.
func refusal(t *testing.T, url, user string) (*http.Response, ssekit.ErrorBody) {
	t.Helper()
	resp := ssetest.Get(t, url, user)
	defer resp.Body.Close()
	var body ssekit.ErrorBody
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("%s: %d, not a JSON error: %v", url, resp.StatusCode, err)
	}
	return resp, body
}

func auth(t *testing.T, fw Framework) {
	t.Run("no user is 401 JSON and no stream", func(t *testing.T) {
		t.Parallel()
		hub, srv := quickStart(t, fw, "user_id")
		resp, body := refusal(t, srv+"/api/sse/stream", "")
		if resp.StatusCode != http.StatusUnauthorized || body.Error != "unauthorized" || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("%d %q %+v, want 401 JSON", resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
		if hub.GetTotalClientCount() != 0 {
			t.Fatal("a refused request was registered")
		}
	})
	t.Run("account_id", func(t *testing.T) {
		t.Parallel()
		hub, srv := quickStart(t, fw, "account_id")
		u := uuid.New()
		dialUser(t, srv+"/api/sse/stream", u).Connected()
		if hub.GetUserClientCount(u) != 1 {
			t.Fatal("account_id not used as the user")
		}
	})
	t.Run("custom UserID with string ids", func(t *testing.T) {
		t.Parallel()
		hub := ssekit.NewHub(ssekit.Config{DetachStreams: ssetest.Detach})
		srv := serve(t, fw, Config{Hub: hub, RequireAuth: true, KitPrefix: "/v1", UserID: func(r *http.Request) (string, error) {
			switch tok := r.URL.Query().Get("token"); tok {
			case "":
				return "", nil
			case "expired":
				return "", errors.New("token expired")
			default:
				return "user-" + tok, nil
			}
		}})
		ssetest.DialOK(t, srv+"/v1/sse/stream?token=42", "", "").Connected()
		if hub.UserClientCount("user-42") != 1 {
			t.Fatalf("users %v, want user-42", hub.ConnectedUserIDs())
		}
		resp := ssetest.Get(t, srv+"/v1/sse/stream?token=expired", "")
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !json.Valid(body) {
			t.Fatalf("%d %s, want 401 JSON", resp.StatusCode, body)
		}
	})
	t.Run("RequireAuth false accepts anonymous", func(t *testing.T) {
		t.Parallel()
		hub := ssekit.NewHub(ssekit.Config{DetachStreams: ssetest.Detach})
		srv := serve(t, fw, Config{Hub: hub})
		c := ssetest.DialOK(t, srv+"/sse/stream", "", "") // default prefix
		c.Connected()
		hub.SendToAll(ssekit.Event{Type: "all"})
		if got := c.NextOf().Type; got != "all" {
			t.Fatalf("got %q", got)
		}
	})
}

func shutdownReturns(t *testing.T, fw Framework) {
	hub := ssekit.NewHub(ssekit.Config{DetachStreams: ssetest.Detach})
	app := fw.New(t, Config{Hub: hub})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop := app.Serve(ln)
	url := "http://" + ln.Addr().String() + "/sse/stream"
	cs := []*ssetest.Conn{ssetest.Dial(t, url, "", ""), ssetest.Dial(t, url, "", ""), ssetest.Dial(t, url, "", "")}
	for _, c := range cs {
		c.Connected()
	}
	ctx, cancel := context.WithTimeout(context.Background(), ssetest.Patience)
	defer cancel()
	if err := stop(ctx); err != nil {
		t.Fatalf("shutdown: %v (open streams held it)", err)
	}
	for _, c := range cs {
		c.Ended()
	}
	if _, err := hub.Publish(ctx, ssekit.Target{All: true}, ssekit.Event{Type: "late"}); !errors.Is(err, ssekit.ErrHubClosed) {
		t.Fatalf("publish after shutdown: %v, want ErrHubClosed", err)
	}
}

type orgID struct{ n int }

func (o orgID) String() string { return fmt.Sprintf("org-%d", o.n) }

// orgName is an app's named string type for tenant ids.
type orgName string

func tenantFromContext(t *testing.T, fw Framework) {
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
			hub := ssekit.NewHub(ssekit.Config{DetachStreams: ssetest.Detach, Logger: slog.New(slog.DiscardHandler)})
			srv := serve(t, fw, Config{Hub: hub, TenantKey: tc.key, RequireAuth: true, Auth: func(r *http.Request) map[string]any {
				set := userAuth("user_id")(r)
				set[tc.ctxKey] = tc.value
				return set
			}})
			user := uuid.New()
			if tc.wantError != "" {
				resp, body := refusal(t, srv+"/sse/stream", user.String())
				if resp.StatusCode != http.StatusInternalServerError || body.Error != ssekit.CodeInvalidTenant || !strings.Contains(body.Message, tc.wantError) {
					t.Fatalf("got %d %+v, want 500 %s with a message containing %q", resp.StatusCode, body, ssekit.CodeInvalidTenant, tc.wantError)
				}
				if got := hub.GetTotalClientCount(); got != 0 {
					t.Fatalf("GetTotalClientCount = %d after a refusal", got)
				}
				return
			}
			c := dialUser(t, srv+"/sse/stream", user)
			c.Connected()
			if tc.want != "" {
				hub.SendToTenant(tc.want, ssekit.Event{Type: "tenant"})
			}
			hub.SendToTenant("someone-else", ssekit.Event{Type: "other-tenant"})
			hub.SendToAll(ssekit.Event{Type: "end"})
			want := []string{"end"}
			if tc.want != "" {
				want = []string{"tenant", "end"}
			}
			ssetest.ExpectNext(t, map[string]*ssetest.Conn{"stream": c}, want...)
		})
	}
}

// A tenant's events stay in its tenant over the Echo module as over
// Handler: two tenants' users, each with two tabs.
func tenantsIsolated(t *testing.T, fw Framework) {
	hub := ssekit.NewHub(ssekit.Config{DetachStreams: ssetest.Detach})
	srv := serve(t, fw, Config{Hub: hub, Auth: func(r *http.Request) map[string]any {
		user, tenant, _ := strings.Cut(r.Header.Get("X-User"), "@")
		return map[string]any{"user_id": uuid.NewSHA1(uuid.NameSpaceOID, []byte(user)), "tenant_id": tenant}
	}})
	conns := map[string]*ssetest.Conn{}
	for _, who := range []string{"alice@acme", "bob@acme", "carol@globex"} {
		for tab := range 2 {
			c := ssetest.DialOK(t, srv+"/sse/stream", who, "")
			c.Connected()
			conns[fmt.Sprint(who, " tab ", tab)] = c
		}
	}
	hub.SendToTenant("acme", ssekit.Event{Type: "acme"})
	hub.SendToTenant("globex", ssekit.Event{Type: "globex"})
	for who, c := range conns {
		_, tenant, _ := strings.Cut(who, "@")
		tenant, _, _ = strings.Cut(tenant, " ")
		ssetest.ExpectNext(t, map[string]*ssetest.Conn{who: c}, tenant)
	}
	hub.SendToAll(ssekit.Event{Type: "end"})
	ssetest.ExpectNext(t, conns, "end")
	if got := hub.ConnectedUserIDs(); len(got) != 3 {
		t.Fatalf("ConnectedUserIDs = %v, want 3 users", got)
	}
}

// The log lines the middleware cases count.
const (
	refusedLine  = "sse: stream refused"
	deadlineLine = "a stream request has a deadline"
)

// middleware runs the stream route behind the middleware of a common Echo
// setup: what cannot carry a stream is refused with 500
// stream_unsupported and one log line, never a panic; a deadline is
// served and warned about once; Gzip streams; the documented Skipper
// takes the stream route out of all three.
func middleware(t *testing.T, fw Framework) {
	cases := []struct {
		name          string
		global, route []Middleware
		// refused is what the refusal's message and log line name ("":
		// the stream is served).
		refused, writer string
		deadline        bool // a deadline warning is logged
		compressed      bool // the stream is gzipped, unless detached (its connection is then written raw)
	}{
		{name: "Timeout is refused", global: []Middleware{Timeout}, refused: "cannot flush", writer: "*http.timeoutWriter"},
		{name: "BodyDump is refused", route: []Middleware{BodyDump}, refused: "copies the body into memory", writer: "bodyDumpResponseWriter"},
		{name: "ContextTimeout is served and warned about once", global: []Middleware{ContextTimeout}, deadline: true},
		{name: "Gzip streams", global: []Middleware{Gzip}, compressed: true},
		{name: "Skipper takes the stream route out", global: []Middleware{SkippedOnStream}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var log ssetest.Log
			hub := ssekit.NewHub(ssekit.Config{DetachStreams: ssetest.Detach, Logger: slog.New(slog.NewTextHandler(&log, nil))})
			srv := serve(t, fw, Config{Hub: hub, RoutePrefix: "/api/sse", RequireAuth: true, Auth: userAuth("user_id"), Global: tc.global, Route: tc.route})
			user := uuid.New()
			if tc.refused != "" {
				for range 2 { // as a browser's EventSource would, were it not told to stop
					resp, body := refusal(t, srv+"/api/sse/stream", user.String())
					if resp.StatusCode != http.StatusInternalServerError || body.Error != ssekit.CodeStreamUnsupported ||
						!strings.Contains(body.Message, tc.refused) || !strings.Contains(body.Message, tc.writer) {
						t.Fatalf("got %d %+v, want 500 %s naming %s, %q", resp.StatusCode, body, ssekit.CodeStreamUnsupported, tc.writer, tc.refused)
					}
				}
				if got, want := log.Count(refusedLine), 2; got != want {
					t.Fatalf("%d refusal log lines for 2 requests, want %d:\n%s", got, want, log.String())
				}
				if got := log.Count(tc.writer); got != 2 {
					t.Fatalf("the refusal log lines do not name %s:\n%s", tc.writer, log.String())
				}
				if got := hub.GetTotalClientCount(); got != 0 {
					t.Fatalf("GetTotalClientCount = %d after refusals", got)
				}
				// The status route is an ordinary request: the middleware is fine there.
				if st := status(t, srv+"/api/sse/status"); st.Status != "operational" {
					t.Fatalf("status %+v", st)
				}
				return
			}
			conns := map[string]*ssetest.Conn{}
			for i := range 2 {
				c := dialUser(t, srv+"/api/sse/stream", user)
				c.Connected()
				if got, want := c.Resp.Uncompressed, tc.compressed && !ssetest.Detach; got != want {
					t.Fatalf("stream gzipped: %v, want %v", got, want)
				}
				conns[fmt.Sprint("tab ", i)] = c
			}
			hub.SendToUser(user, ssekit.Event{Type: "notification", Data: map[string]any{"title": "New follower!"}})
			ssetest.ExpectNext(t, conns, "notification")
			if got := log.Count(refusedLine); got != 0 {
				t.Fatalf("refused:\n%s", log.String())
			}
			want := 0
			if tc.deadline {
				want = 1
			}
			if got := log.Count(deadlineLine); got != want {
				t.Fatalf("%d deadline warnings for 2 streams, want %d:\n%s", got, want, log.String())
			}
		})
	}
}
