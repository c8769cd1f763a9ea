package ssekit_test

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

	"github.com/ssekit/sse/sseclient"
	"github.com/ssekit/sse/ssekit"
)

// A hub serves streams with its http.Handler and routes events to users.
func ExampleNewHub() {
	hub := ssekit.NewHub(ssekit.DefaultConfig())
	srv := httptest.NewServer(hub.Handler(ssekit.HandlerOptions{
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

	hub.Publish(context.Background(), ssekit.Target{Users: []string{"alice"}}, ssekit.Event{Type: "greeting", Data: "hello"})
	ev, _ = dec.Next()
	fmt.Println(ev.Type, string(ev.Data))
	// Output:
	// connected 1
	// greeting "hello"
}

// SendToUser reaches every connection of one user: here, two tabs.
func ExampleHub_SendToUser() {
	hub := ssekit.NewHub(ssekit.DefaultConfig())
	userID := uuid.MustParse("7f1d2c3b-0000-4000-8000-000000000001")
	srv := httptest.NewServer(hub.Handler(ssekit.HandlerOptions{
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

	hub.SendToUser(userID, ssekit.BadgeUpdateEvent(5))
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

// With DetachStreams, an HTTP/1.x stream is taken over from net/http and
// served by the hub, at about half the memory per idle stream; its body
// ends with the connection instead of being chunked. The hub, not
// http.Server, then owns the streams: close it to end them.
func ExampleConfig_detachStreams() {
	hub := ssekit.NewHub(ssekit.Config{DetachStreams: true})
	srv := httptest.NewServer(hub.Handler(ssekit.HandlerOptions{}))
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
	hub := ssekit.NewHub(ssekit.DefaultConfig())
	srv := httptest.NewServer(hub.Handler(ssekit.HandlerOptions{
		Identify: func(r *http.Request) (ssekit.Identity, error) {
			// Your authentication: here, trusted headers.
			return ssekit.Identity{User: r.Header.Get("X-User"), Tenant: r.Header.Get("X-Tenant")}, nil
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

	hub.SendToTenant("acme", ssekit.Event{Type: "maintenance", Data: "tonight"})
	hub.SendToAll(ssekit.Event{Type: "hello"})
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
	hub := ssekit.NewHub(ssekit.Config{AuthorizeTopic: ssekit.AllowAllTopics})
	srv := httptest.NewServer(hub.Handler(ssekit.HandlerOptions{}))
	defer srv.Close()
	defer hub.Close()

	resp, err := http.Get(srv.URL + "?topic=board:7&topic=doc:42")
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	dec := sseclient.NewDecoder(resp.Body)
	dec.Next() // connected

	hub.SendToTopic("board:8", ssekit.Event{Type: "card_moved", Data: 1}) // not followed
	hub.SendToTopic("doc:42", ssekit.Event{Type: "doc_saved", Data: 2})
	ev, _ := dec.Next()
	fmt.Println(ev.Type, string(ev.Data))
	// Output: doc_saved 2
}

// AuthorizeTopic scopes topics to tenants: here a stream may follow the
// topics named after its own tenant. A refused stream gets 403 and a JSON
// body naming the topics, before anything is registered.
func ExampleConfig_authorizeTopic() {
	hub := ssekit.NewHub(ssekit.Config{
		AuthorizeTopic: func(ctx context.Context, who ssekit.Identity, topic string) (bool, error) {
			return who.Tenant != "" && strings.HasPrefix(topic, who.Tenant+"/"), nil
		},
	})
	srv := httptest.NewServer(hub.Handler(ssekit.HandlerOptions{
		Identify: func(r *http.Request) (ssekit.Identity, error) {
			return ssekit.Identity{User: r.Header.Get("X-User"), Tenant: "acme"}, nil
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
			var body ssekit.ErrorBody
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
	hub := ssekit.NewHub(ssekit.Config{})
	defer hub.Close()

	ctx := context.Background()
	to := ssekit.Target{Users: []string{"alice"}}
	ev := ssekit.Event{Type: "invoice_paid", Data: map[string]any{"invoice": "in_42"}}
	for range 2 {
		var replayed bool
		id, err := hub.Publish(ctx, to, ev, ssekit.IdempotencyKey("invoice-paid-in_42"), ssekit.Replayed(&replayed))
		if err != nil {
			panic(err) // a retry would reuse the same key
		}
		fmt.Println(id != "", replayed)
	}
	// The same key for another event is a mistake, and refused.
	_, err := hub.Publish(ctx, to, ssekit.Event{Type: "invoice_void"}, ssekit.IdempotencyKey("invoice-paid-in_42"))
	fmt.Println(errors.Is(err, ssekit.ErrKeyConflict))
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
	hub := ssekit.NewHub(ssekit.Config{
		CheckSession: func(ctx context.Context, who ssekit.Identity) error {
			if _, ok := loggedOut.Load(who.User); ok {
				return ssekit.ErrSessionRevoked
			}
			return nil
		},
	})
	srv := httptest.NewServer(hub.Handler(ssekit.HandlerOptions{
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
