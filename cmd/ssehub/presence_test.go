package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// presenceQuery asks base's presence route about users with key.
func presenceQuery(t *testing.T, base, key string, users ...string) (int, map[string]any) {
	t.Helper()
	q := url.Values{"user": users}
	req, _ := http.NewRequest(http.MethodGet, base+"/sse/presence?"+q.Encode(), nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	return doJSON(t, req)
}

// userState returns a presence answer's online and connections of user.
func userState(t *testing.T, body map[string]any, user string) (bool, int) {
	t.Helper()
	users, _ := body["users"].(map[string]any)
	u, ok := users[user].(map[string]any)
	if !ok {
		t.Fatalf("no user %s in %v", user, body)
	}
	online, _ := u["online"].(bool)
	n, _ := u["connections"].(float64)
	return online, int(n)
}

// TestPresenceRoute: GET <prefix>/presence takes the publish key and up
// to 100 user uuids, and answers each one's presence; a publish answers
// how many streams it reached and which of its users are online.
func TestPresenceRoute(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, testConfig(t), nil)
	alice, bob := uuid.NewString(), uuid.NewString()
	for range 2 {
		openStream(t, ta.srv.URL+"/sse/stream", bearerAuth(token(t, alice))).nextOf(t, "connected")
	}
	status, body := presenceQuery(t, ta.srv.URL, testKey, alice, strings.ToUpper(bob))
	if status != http.StatusOK {
		t.Fatalf("presence: %d %v", status, body)
	}
	if on, n := userState(t, body, alice); !on || n != 2 {
		t.Fatalf("alice: online %v with %d connections, want online with 2", on, n)
	}
	if on, n := userState(t, body, bob); on || n != 0 {
		t.Fatalf("bob: online %v with %d connections, want offline", on, n)
	}
	many := make([]string, maxPresenceUsers+1)
	for i := range many {
		many[i] = uuid.NewString()
	}
	for _, tc := range []struct {
		key    string
		users  []string
		status int
	}{
		{"", []string{alice}, http.StatusUnauthorized},
		{"wrong-key-wrong-key", []string{alice}, http.StatusUnauthorized},
		{testKey, nil, http.StatusBadRequest},
		{testKey, []string{"not-a-uuid"}, http.StatusBadRequest},
		{testKey, many, http.StatusBadRequest},
	} {
		if status, body := presenceQuery(t, ta.srv.URL, tc.key, tc.users...); status != tc.status {
			t.Errorf("key %q, %d users: %d %v, want %d", tc.key, len(tc.users), status, body, tc.status)
		}
	}
	status, body = publish(t, ta.srv.URL, testKey, fmt.Sprintf(`{"users":[%q,%q],"type":"x","data":1}`, alice, bob))
	online, _ := body["online"].(map[string]any)
	if status != http.StatusOK || body["connections"] != 2.0 || online[alice] != true || online[bob] != false {
		t.Fatalf("publish: %d %v, want 2 connections, alice online and bob not", status, body)
	}
	// Past 100 users the answer leaves the counts out (/presence is there).
	users := []string{alice}
	for range 100 {
		users = append(users, uuid.NewString())
	}
	usersJSON, _ := json.Marshal(users)
	status, body = publish(t, ta.srv.URL, testKey, fmt.Sprintf(`{"users":%s,"type":"x","data":1}`, usersJSON))
	_, conns := body["connections"]
	_, on := body["online"]
	if status != http.StatusOK || body["id"] == nil || conns || on {
		t.Fatalf("a publish to 101 users: %d %v, want 200 with its id and no counts", status, body)
	}
}
