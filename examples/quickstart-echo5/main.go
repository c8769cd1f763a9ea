// Command quickstart-echo5 is the Echo v5 Quick Start of the README as a
// running app: the SSE module on Echo v5's kit, a demo auth middleware, a
// publisher that sends notifications and badge counts, and a page that
// shows them. It is examples/quickstart moved to Echo v5: handlers take
// *echo.Context, and the server runs from the kit's Start until its
// context is done, which also closes the hub so open streams do not hold
// the shutdown.
//
//	go run ./examples/quickstart-echo5
//	open http://localhost:8091/?user=2b1e4e2c-0000-4000-8000-000000000001
package main

import (
	"context"
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
	"github.com/labstack/echo/v5"

	"github.com/ssekit/sse/echo5"
	"github.com/ssekit/sse/echo5/core"
	"github.com/ssekit/sse/ssekit"
)

// demoUser is who the page connects as when it names no user.
var demoUser = uuid.MustParse("2b1e4e2c-0000-4000-8000-000000000001")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	addr := os.Getenv("ADDR")
	if addr == "" {
		addr = "127.0.0.1:8091"
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
	// The Echo v5 Quick Start, as written.
	hub := ssekit.NewHub(ssekit.DefaultConfig())
	mod := echo5.NewModule(echo5.ModuleConfig{Hub: hub, RoutePrefix: "/api/sse", RequireAuth: true})
	app := core.NewKit(nil, core.KitConfig{})
	app.Echo().Use(demoAuth)
	app.Echo().GET("/", func(c *echo.Context) error { return c.HTML(http.StatusOK, page) })
	if err := app.Register(mod); err != nil {
		return err
	}
	if err := app.Mount(); err != nil {
		return err
	}
	fmt.Fprintf(out, "quickstart-echo5: open http://%s/?user=%s\n", ln.Addr(), demoUser)

	publishing := make(chan struct{})
	go func() {
		defer close(publishing)
		publish(ctx, hub, tick)
	}()
	// Start returns when ctx is done, once the server has shut down and
	// the module (its hub, and so its streams) is closed.
	err := app.Start(ctx, echo.StartConfig{Listener: ln, HideBanner: true, HidePort: true})
	<-publishing
	return err
}

// demoAuth stands in for real authentication: it trusts ?user= (or uses
// the demo user) and sets "user_id" in the Echo context, as an app's auth
// middleware would after checking a session. Never ship this.
func demoAuth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		user, err := uuid.Parse(c.QueryParam("user"))
		if err != nil {
			user = demoUser
		}
		c.Set("user_id", user)
		return next(c)
	}
}

// publish plays the app's backend: every tick, a notification and a
// badge count for the demo user; every tenth, an announcement to all.
func publish(ctx context.Context, hub *ssekit.Hub, tick time.Duration) {
	t := time.NewTicker(tick)
	defer t.Stop()
	for n := 1; ctx.Err() == nil; n++ {
		select {
		case <-t.C:
			hub.SendToUser(demoUser, ssekit.NotificationEvent("follow", "New follower!", fmt.Sprintf("Follower #%d is now following you", n), nil))
			hub.SendToUser(demoUser, ssekit.BadgeUpdateEvent(n))
			if n%10 == 0 {
				hub.SendToAll(ssekit.Event{Type: "announcement", Data: map[string]any{"message": "still here"}})
			}
		case <-ctx.Done():
		}
	}
}

// page is the demo page: a native EventSource, no SDK.
const page = `<!doctype html>
<meta charset="utf-8">
<title>ssekit on Echo v5</title>
<p>Badge: <b id="badge">0</b></p>
<ul id="events"></ul>
<script>
const user = new URLSearchParams(location.search).get('user');
const es = new EventSource('/api/sse/stream' + (user ? '?user=' + encodeURIComponent(user) : ''));
const show = (kind, text) => {
  const li = document.createElement('li');
  li.textContent = kind + ': ' + text;
  document.getElementById('events').prepend(li);
};
es.addEventListener('notification', e => show('notification', JSON.parse(e.data).message));
es.addEventListener('badge_update', e => { document.getElementById('badge').textContent = JSON.parse(e.data).count; });
es.addEventListener('announcement', e => show('announcement', JSON.parse(e.data).message));
</script>
`
