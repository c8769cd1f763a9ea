package sse_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"

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

// SendToTenant reaches every connection of one tenant and no other: the
// broadcast of a multi-tenant app, where SendToAll would reach every
// tenant. The app's authentication says whom each stream is for, tenant
// included, through HandlerOptions.Identify.
func ExampleHub_SendToTenant() {
	hub := sse.NewHub(sse.DefaultConfig())
	srv := httptest.NewServer(hub.Handler(sse.HandlerOptions{
		Identify: func(r *http.Request) (sse.Identity, error) {
			// Your authentication: here, trusted headers.
			return sse.Identity{User: r.Header.Get("X-User"), Tenant: r.Header.Get("X-Tenant")}, nil
		},
	}))
	defer srv.Close()
	defer hub.Close()
	var bodies []io.Closer
	defer func() {
		for _, b := range bodies {
			b.Close()
		}
	}()

	open := func(user, tenant string) *sseclient.Decoder {
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		req.Header.Set("X-User", user)
		req.Header.Set("X-Tenant", tenant)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		bodies = append(bodies, resp.Body)
		dec := sseclient.NewDecoder(resp.Body)
		dec.Next() // connected
		return dec
	}
	alice, bob := open("alice", "acme"), open("bob", "globex")

	hub.SendToTenant("acme", sse.Event{Type: "maintenance", Data: "tonight"})
	hub.SendToAll(sse.Event{Type: "hello"})
	for _, c := range []struct {
		name string
		dec  *sseclient.Decoder
	}{{"alice", alice}, {"alice", alice}, {"bob", bob}} {
		ev, _ := c.dec.Next()
		fmt.Println(c.name, ev.Type)
	}
	// Output:
	// alice maintenance
	// alice hello
	// bob hello
}

// A stream asks for topics with repeated topic parameters; SendToTopic
// reaches every stream that follows the topic. Config.AuthorizeTopic
// decides who may follow which: AllowAllTopics makes them all public.
func ExampleHub_SendToTopic() {
	hub := sse.NewHub(sse.Config{AuthorizeTopic: sse.AllowAllTopics})
	srv := httptest.NewServer(hub.Handler(sse.HandlerOptions{}))
	defer srv.Close()
	defer hub.Close()

	resp, err := http.Get(srv.URL + "?topic=board:7&topic=doc:42")
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	dec := sseclient.NewDecoder(resp.Body)
	dec.Next() // connected

	hub.SendToTopic("board:8", sse.Event{Type: "card_moved", Data: 1}) // not followed
	hub.SendToTopic("doc:42", sse.Event{Type: "doc_saved", Data: 2})
	ev, _ := dec.Next()
	fmt.Println(ev.Type, string(ev.Data))
	// Output: doc_saved 2
}

// AuthorizeTopic scopes topics to tenants: here a stream may follow the
// topics named after its own tenant. A refused stream gets 403 and a JSON
// body naming the topics, before anything is registered.
func ExampleConfig_authorizeTopic() {
	hub := sse.NewHub(sse.Config{
		AuthorizeTopic: func(ctx context.Context, who sse.Identity, topic string) (bool, error) {
			return who.Tenant != "" && strings.HasPrefix(topic, who.Tenant+"/"), nil
		},
	})
	srv := httptest.NewServer(hub.Handler(sse.HandlerOptions{
		Identify: func(r *http.Request) (sse.Identity, error) {
			return sse.Identity{User: r.Header.Get("X-User"), Tenant: "acme"}, nil
		},
	}))
	defer srv.Close()
	defer hub.Close()

	for _, query := range []string{"?topic=acme/board", "?topic=acme/board&topic=globex/board"} {
		resp, err := http.Get(srv.URL + query)
		if err != nil {
			panic(err)
		}
		if resp.StatusCode != http.StatusOK {
			var body sse.ErrorBody
			json.NewDecoder(resp.Body).Decode(&body)
			fmt.Println(resp.StatusCode, body.Error, body.Topics)
		} else {
			ev, _ := sseclient.NewDecoder(resp.Body).Next()
			fmt.Println(resp.StatusCode, ev.Type)
		}
		resp.Body.Close()
	}
	// Output:
	// 200 connected
	// 403 topic_forbidden [globex/board]
}

// A publisher that retries names each publish with a key: a retry after
// a timeout or a lost answer, here or on another node, is delivered once
// and answers the first publish's id; Replayed tells the two answers
// apart.
func ExampleIdempotencyKey() {
	hub := sse.NewHub(sse.Config{})
	defer hub.Close()

	ctx := context.Background()
	to := sse.Target{Users: []string{"alice"}}
	ev := sse.Event{Type: "invoice_paid", Data: map[string]any{"invoice": "in_42"}}
	for range 2 {
		var replayed bool
		id, err := hub.Publish(ctx, to, ev, sse.IdempotencyKey("invoice-paid-in_42"), sse.Replayed(&replayed))
		if err != nil {
			panic(err) // a retry would reuse the same key
		}
		fmt.Println(id != "", replayed)
	}
	// The same key for another event is a mistake, and refused.
	_, err := hub.Publish(ctx, to, sse.Event{Type: "invoice_void"}, sse.IdempotencyKey("invoice-paid-in_42"))
	fmt.Println(errors.Is(err, sse.ErrKeyConflict))
	// Output:
	// true false
	// true true
	// true
}

// "Log out everywhere": the app marks the session revoked, then asks every
// node to check the user's streams; each ends with a session_ended event
// that carries its position, and the user's next connection is refused.
func ExampleHub_RecheckSessions() {
	var loggedOut sync.Map
	hub := sse.NewHub(sse.Config{
		CheckSession: func(ctx context.Context, who sse.Identity) error {
			if _, ok := loggedOut.Load(who.User); ok {
				return sse.ErrSessionRevoked
			}
			return nil
		},
	})
	srv := httptest.NewServer(hub.Handler(sse.HandlerOptions{
		Authenticate: func(r *http.Request) (string, error) { return r.Header.Get("X-User"), nil },
	}))
	defer srv.Close()
	defer hub.Close()

	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set("X-User", "alice")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	dec := sseclient.NewDecoder(resp.Body)
	dec.Next() // connected

	loggedOut.Store("alice", true)
	hub.RecheckSessions(context.Background(), "alice")
	ev, _ := dec.Next()
	fmt.Println(ev.Type, strings.Contains(string(ev.Data), `"reason":"revoked"`))

	again, _ := http.DefaultClient.Do(req)
	again.Body.Close()
	fmt.Println(again.StatusCode)
	// Output:
	// session_ended true
	// 401
}
