package sse_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/ssekit/sse"
	"github.com/ssekit/sse/core"
	"github.com/ssekit/sse/internal/ssetest"
)

// demoAuth stands in for the app's auth middleware: it trusts the X-User
// header and puts the user in the Echo context, as a real one would after
// checking a session or token.
func demoAuth(key string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if id, err := uuid.Parse(c.Request().Header.Get("X-User")); err == nil {
				c.Set(key, id)
			}
			return next(c)
		}
	}
}

// quickStart is the Quick Start of DESIGN.md, as written, plus the demo
// auth middleware.
func quickStart(t *testing.T, authKey string, kitCfg core.KitConfig) (*sse.Hub, *httptest.Server, *echo.Echo) {
	t.Helper()
	cfg := sse.DefaultConfig()
	cfg.DetachStreams = ssetest.Detach // through echo.Response's Hijack
	hub := sse.NewHub(cfg)
	mod := sse.NewModule(sse.ModuleConfig{Hub: hub, RoutePrefix: "/api/sse", RequireAuth: true})
	app := core.NewKit(nil, kitCfg)
	app.Echo().Use(demoAuth(authKey))
	if err := app.Register(mod); err != nil {
		t.Fatal(err)
	}
	if err := app.Mount(); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(app.Echo())
	t.Cleanup(func() {
		hub.Close()
		srv.Close()
	})
	return hub, srv, app.Echo()
}

func TestQuickStartServesStreamAndStatus(t *testing.T) {
	t.Parallel()
	hub, srv, _ := quickStart(t, "user_id", core.KitConfig{})
	user, other := uuid.New(), uuid.New()
	c := dialURLUser(t, srv.URL+"/api/sse/stream", user)
	c.Connected()
	if c.Resp.Close != ssetest.Detach {
		t.Fatalf("body delimited by the close: %v, want %v (detached)", c.Resp.Close, ssetest.Detach)
	}
	o := dialURLUser(t, srv.URL+"/api/sse/stream", other)
	o.Connected()

	hub.SendToUser(user, sse.Event{Type: "notification", Data: map[string]any{"title": "New follower!"}})
	hub.SendToUsers([]uuid.UUID{user, other}, sse.Event{Type: "update", Data: 1})
	hub.SendToAll(sse.Event{Type: "announcement", Data: "hi"})
	hub.SendToUser(user, sse.NotificationEvent("follow", "New follower!", "Jo follows you", map[string]any{"by": "jo"}))
	hub.SendToUser(user, sse.BadgeUpdateEvent(5))
	hub.SendToUser(user, sse.NewItemEvent("dish", "d1", map[string]any{"name": "pizza"}))
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

	resp, err := http.Get(srv.URL + "/api/sse/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if st["status"] != "operational" || st["connected_users"] != 2.0 || st["total_clients"] != 2.0 {
		t.Fatalf("status %v, want operational, 2 users, 2 clients", st)
	}
	if got := hub.GetUserClientCount(user); got != 1 {
		t.Fatalf("GetUserClientCount = %d", got)
	}
}

func dialURLUser(t *testing.T, url string, user uuid.UUID) *ssetest.Conn {
	t.Helper()
	c := ssetest.Dial(t, url, user.String(), "")
	if c.Resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", c.Resp.StatusCode)
	}
	return c
}

func TestModuleAuth(t *testing.T) {
	t.Parallel()
	t.Run("no user is 401 JSON and no stream", func(t *testing.T) {
		hub, srv, _ := quickStart(t, "user_id", core.KitConfig{})
		resp, err := http.Get(srv.URL + "/api/sse/stream")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body sse.ErrorBody
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusUnauthorized || body.Error != "unauthorized" || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("%d %q %+v, want 401 JSON", resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
		if hub.GetTotalClientCount() != 0 {
			t.Fatal("a refused request was registered")
		}
	})
	t.Run("account_id", func(t *testing.T) {
		hub, srv, _ := quickStart(t, "account_id", core.KitConfig{})
		u := uuid.New()
		dialURLUser(t, srv.URL+"/api/sse/stream", u).Connected()
		if hub.GetUserClientCount(u) != 1 {
			t.Fatal("account_id not used as the user")
		}
	})
	t.Run("custom UserID with string ids", func(t *testing.T) {
		hub := sse.NewHub(sse.Config{})
		mod := sse.NewModule(sse.ModuleConfig{Hub: hub, RequireAuth: true, UserID: func(c echo.Context) (string, error) {
			switch tok := c.QueryParam("token"); tok {
			case "":
				return "", nil
			case "expired":
				return "", errors.New("token expired")
			default:
				return "user-" + tok, nil
			}
		}})
		app := core.NewKit(nil, core.KitConfig{RoutePrefix: "/v1"})
		app.Register(mod)
		app.Mount()
		srv := httptest.NewServer(app.Echo())
		t.Cleanup(func() { hub.Close(); srv.Close() })
		c := ssetest.Dial(t, srv.URL+"/v1/sse/stream?token=42", "", "")
		c.Connected()
		if hub.UserClientCount("user-42") != 1 {
			t.Fatalf("users %v, want user-42", hub.ConnectedUserIDs())
		}
		resp, err := http.Get(srv.URL + "/v1/sse/stream?token=expired")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !json.Valid(body) {
			t.Fatalf("%d %s, want 401 JSON", resp.StatusCode, body)
		}
	})
	t.Run("RequireAuth false accepts anonymous", func(t *testing.T) {
		hub := sse.NewHub(sse.Config{})
		app := core.NewKit(nil, core.KitConfig{})
		app.Register(sse.NewModule(sse.ModuleConfig{Hub: hub}))
		app.Mount()
		srv := httptest.NewServer(app.Echo())
		t.Cleanup(func() { hub.Close(); srv.Close() })
		c := ssetest.Dial(t, srv.URL+"/sse/stream", "", "") // default prefix
		c.Connected()
		hub.SendToAll(sse.Event{Type: "all"})
		if got := c.NextOf().Type; got != "all" {
			t.Fatalf("got %q", got)
		}
	})
}

func TestEchoShutdownWithOpenStreamsReturns(t *testing.T) {
	t.Parallel()
	hub := sse.NewHub(sse.Config{})
	app := core.NewKit(nil, core.KitConfig{})
	app.Register(sse.NewModule(sse.ModuleConfig{Hub: hub}))
	app.Mount()
	e := app.Echo()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.Listener = ln
	served := make(chan error, 1)
	go func() { served <- e.Start("") }()
	url := "http://" + ln.Addr().String() + "/sse/stream"
	cs := []*ssetest.Conn{ssetest.Dial(t, url, "", ""), ssetest.Dial(t, url, "", ""), ssetest.Dial(t, url, "", "")}
	for _, c := range cs {
		c.Connected()
	}
	ctx, cancel := context.WithTimeout(context.Background(), ssetest.Patience)
	defer cancel()
	if err := e.Shutdown(ctx); err != nil {
		t.Fatalf("echo Shutdown: %v (open streams held it)", err)
	}
	for _, c := range cs {
		c.Ended()
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Fatalf("Start returned %v", err)
	}
	if _, err := hub.Publish(ctx, sse.Target{All: true}, sse.Event{Type: "late"}); !errors.Is(err, sse.ErrHubClosed) {
		t.Fatalf("publish after shutdown: %v, want ErrHubClosed", err)
	}
}
