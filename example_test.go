package sse_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/ssekit/sse"
	"github.com/ssekit/sse/core"
	"github.com/ssekit/sse/sseclient"
)

// A hub serves streams with its http.Handler and routes events to users.
func ExampleNewHub() {
	hub := sse.NewHub(sse.DefaultConfig())
	srv := httptest.NewServer(hub.Handler(sse.HandlerOptions{
		// Your authentication: here, a trusted header.
		Authenticate: func(r *http.Request) (string, error) { return r.Header.Get("X-User"), nil },
		RequireAuth:  true,
	}))
	defer srv.Close()
	defer hub.Close() // before srv.Close, which waits for open streams

	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set("X-User", "alice")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	dec := sseclient.NewDecoder(resp.Body)
	ev, _ := dec.Next()
	fmt.Println(ev.Type, hub.UserClientCount("alice"))

	hub.Publish(context.Background(), sse.Target{Users: []string{"alice"}}, sse.Event{Type: "greeting", Data: "hello"})
	ev, _ = dec.Next()
	fmt.Println(ev.Type, string(ev.Data))
	// Output:
	// connected 1
	// greeting "hello"
}

// SendToUser reaches every connection of one user: here, two tabs.
func ExampleHub_SendToUser() {
	hub := sse.NewHub(sse.DefaultConfig())
	userID := uuid.MustParse("7f1d2c3b-0000-4000-8000-000000000001")
	srv := httptest.NewServer(hub.Handler(sse.HandlerOptions{
		Authenticate: func(*http.Request) (string, error) { return userID.String(), nil },
	}))
	defer srv.Close()
	defer hub.Close()

	var tabs []*sseclient.Decoder
	for range 2 {
		resp, err := http.Get(srv.URL)
		if err != nil {
			panic(err)
		}
		defer resp.Body.Close()
		dec := sseclient.NewDecoder(resp.Body)
		dec.Next() // connected
		tabs = append(tabs, dec)
	}

	hub.SendToUser(userID, sse.BadgeUpdateEvent(5))
	for i, tab := range tabs {
		ev, _ := tab.Next()
		var badge struct{ Count int }
		ev.Decode(&badge)
		fmt.Printf("tab %d: %s %d\n", i+1, ev.Type, badge.Count)
	}
	// Output:
	// tab 1: badge_update 5
	// tab 2: badge_update 5
}

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
	jsonDecode(resp, &st)
	fmt.Println(st.Status, st.TotalClients)
	// Output:
	// 401
	// operational 0
}

// With DetachStreams, an HTTP/1.x stream is taken over from net/http and
// served by the hub, at about half the memory per idle stream; its body
// ends with the connection instead of being chunked. The hub, not
// http.Server, then owns the streams: close it to end them.
func ExampleConfig_detachStreams() {
	hub := sse.NewHub(sse.Config{DetachStreams: true})
	srv := httptest.NewServer(hub.Handler(sse.HandlerOptions{}))
	defer srv.Close()
	defer hub.Close() // ends the detached streams and waits for them

	resp, err := http.Get(srv.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	ev, err := sseclient.NewDecoder(resp.Body).Next()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(ev.Type, resp.TransferEncoding == nil, resp.Close)
	// Output: connected true true
}
