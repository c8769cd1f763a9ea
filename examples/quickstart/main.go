// Command quickstart is the Quick Start of the README as a running app: an
// Echo server with the SSE module, a demo auth middleware, a publisher that
// sends notifications and badge counts, and a page that shows them.
//
//	go run ./examples/quickstart
//	open http://localhost:8090/?user=2b1e4e2c-0000-4000-8000-000000000001
package main

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/ssekit/sse"
	"github.com/ssekit/sse/core"
)

//go:embed index.html
var page []byte

// demoUser is who the page connects as when it names no user.
var demoUser = uuid.MustParse("2b1e4e2c-0000-4000-8000-000000000001")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	addr := os.Getenv("ADDR")
	if addr == "" {
		addr = "127.0.0.1:8090"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	if err := run(ctx, ln, os.Stdout, 2*time.Second); err != nil {
		log.Fatal(err)
	}
}

// run serves the app on ln until ctx is done, publishing every tick.
func run(ctx context.Context, ln net.Listener, out io.Writer, tick time.Duration) error {
	// The Quick Start, as written.
	hub := sse.NewHub(sse.DefaultConfig())
	mod := sse.NewModule(sse.ModuleConfig{Hub: hub, RoutePrefix: "/api/sse", RequireAuth: true})
	app := core.NewKit(nil, core.KitConfig{})
	app.Echo().Use(demoAuth)
	app.Echo().GET("/", func(c echo.Context) error { return c.HTMLBlob(http.StatusOK, page) })
	if err := app.Register(mod); err != nil {
		return err
	}
	if err := app.Mount(); err != nil {
		return err
	}
	e := app.Echo()
	e.HidePort = true
	e.Listener = ln
	fmt.Fprintf(out, "quickstart: open http://%s/?user=%s\n", ln.Addr(), demoUser)

	served := make(chan error, 1)
	go func() { served <- e.Start("") }()
	publishing := make(chan struct{})
	go func() {
		defer close(publishing)
		publish(ctx, hub, tick)
	}()

	<-ctx.Done()
	<-publishing
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Echo's Shutdown runs the module's Close, which ends the open streams.
	if err := e.Shutdown(shutdownCtx); err != nil {
		return err
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// demoAuth stands in for real authentication: it trusts ?user= (or uses
// the demo user) and sets "user_id" in the Echo context, as an app's auth
// middleware would after checking a session. Never ship this.
func demoAuth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		user := demoUser
		if u, err := uuid.Parse(c.QueryParam("user")); err == nil {
			user = u
		}
		c.Set("user_id", user)
		return next(c)
	}
}

// publish plays the app's backend: a notification and a badge count for
// the demo user every tick, and an announcement to everyone now and then.
func publish(ctx context.Context, hub *sse.Hub, tick time.Duration) {
	t := time.NewTicker(tick)
	defer t.Stop()
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		hub.SendToUser(demoUser, sse.NotificationEvent("follow", "New follower!", fmt.Sprintf("Follower #%d is now following you", n), nil))
		hub.SendToUser(demoUser, sse.BadgeUpdateEvent(n))
		if n%5 == 0 {
			hub.SendToAll(sse.Event{Type: "announcement", Data: map[string]any{"message": fmt.Sprintf("%d notifications sent", n*2)}})
		}
	}
}
