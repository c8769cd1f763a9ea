package sse_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/ssekit/sse"
	"github.com/ssekit/sse/core"
)

// The Echo module mounts <prefix>/stream and <prefix>/status on a core.Kit;
// the user comes from the Echo context, as the app's auth middleware set
// it.
func ExampleNewModule() {
	hub := sse.NewHub(sse.DefaultConfig())
	mod := sse.NewModule(sse.ModuleConfig{Hub: hub, RoutePrefix: "/api/sse", RequireAuth: true})
	app := core.NewKit(nil, core.KitConfig{})
	app.Echo().Use(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			// Stand-in for real auth middleware.
			if id, err := uuid.Parse(c.Request().Header.Get("X-User")); err == nil {
				c.Set("user_id", id)
			}
			return next(c)
		}
	})
	app.Register(mod)
	app.Mount()
	srv := httptest.NewServer(app.Echo())
	defer srv.Close()
	defer hub.Close()

	resp, err := http.Get(srv.URL + "/api/sse/stream") // no user
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
	fmt.Println(resp.StatusCode)

	resp, err = http.Get(srv.URL + "/api/sse/status")
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	var st sse.Status
	json.NewDecoder(resp.Body).Decode(&st)
	fmt.Println(st.Status, st.TotalClients)
	// Output:
	// 401
	// operational 0
}

// Middleware that cannot carry a stream skips the stream route with a
// Skipper: Timeout's writer cannot flush, ContextTimeout would cut the
// stream at the deadline, BodyDump would keep a copy of it in memory.
// Gzip streams as it is.
func Example_skipStreamRoute() {
	hub := sse.NewHub(sse.DefaultConfig())
	app := core.NewKit(nil, core.KitConfig{})
	e := app.Echo()
	skipStream := func(c echo.Context) bool { return c.Path() == "/api/sse/stream" }
	//lint:ignore SA1019 apps still have it: this is how they keep it off the stream route
	e.Use(middleware.TimeoutWithConfig(middleware.TimeoutConfig{Skipper: skipStream, Timeout: 30 * time.Second}))
	e.Use(middleware.ContextTimeoutWithConfig(middleware.ContextTimeoutConfig{Skipper: skipStream, Timeout: 30 * time.Second}))
	e.Use(middleware.BodyDumpWithConfig(middleware.BodyDumpConfig{Skipper: skipStream,
		Handler: func(c echo.Context, reqBody, resBody []byte) { /* log them */ }}))
	e.Use(middleware.Gzip())
	app.Register(sse.NewModule(sse.ModuleConfig{Hub: hub, RoutePrefix: "/api/sse"}))
	app.Mount()
	srv := httptest.NewServer(e)
	defer srv.Close()
	defer hub.Close() // first: it ends the open stream, which srv.Close waits for

	resp, err := http.Get(srv.URL + "/api/sse/stream")
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	fmt.Println(resp.StatusCode, resp.Header.Get("Content-Type"))
	lines := bufio.NewScanner(resp.Body)
	for lines.Scan() {
		if lines.Text() == "event: connected" {
			fmt.Println(lines.Text())
			break
		}
	}
	// Output:
	// 200 text/event-stream
	// event: connected
}
