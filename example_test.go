package sse_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

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
