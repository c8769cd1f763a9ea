package main

import (
	"net/http"
	"strings"
	"testing"
)

// TestPublishRefusesBadInput checks that every invalid publish gets a 4xx
// with a JSON error and publishes nothing.
func TestPublishRefusesBadInput(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, testConfig(t, "--max-event-size", "100", "--max-publish-bytes", "1000"), nil)
	user := newUser()
	cases := []struct {
		name    string
		method  string
		key     string
		ctype   string
		body    string
		status  int
		errCode string
	}{
		{"no key", "POST", "", "", `{"type":"x"}`, 401, "unauthorized"},
		{"wrong key", "POST", testKey + "-wrong", "", `{"type":"x"}`, 401, "unauthorized"},
		{"subscriber token as key", "POST", token(t, user), "", `{"type":"x"}`, 401, "unauthorized"},
		{"malformed JSON", "POST", testKey, "", `{"type":`, 400, "bad_request"},
		{"not an object", "POST", testKey, "", `["x"]`, 400, "bad_request"},
		{"two values", "POST", testKey, "", `{"type":"x"}{"type":"y"}`, 400, "bad_request"},
		{"unknown field (typo of users)", "POST", testKey, "", `{"user":["` + user + `"],"type":"x"}`, 400, "bad_request"},
		{"bad uuid", "POST", testKey, "", `{"users":["alice"],"type":"x"}`, 400, "bad_request"},
		{"nil uuid", "POST", testKey, "", `{"users":["00000000-0000-0000-0000-000000000000"],"type":"x"}`, 400, "bad_request"},
		{"users not a list", "POST", testKey, "", `{"users":"` + user + `","type":"x"}`, 400, "bad_request"},
		{"empty client id", "POST", testKey, "", `{"clients":[""],"type":"x"}`, 400, "bad_request"},
		{"client id with space", "POST", testKey, "", `{"clients":["a b"],"type":"x"}`, 400, "bad_request"},
		{"no type", "POST", testKey, "", `{"data":1}`, 400, "bad_request"},
		{"type with newline", "POST", testKey, "", `{"type":"a\nb"}`, 400, "bad_request"},
		{"type with space", "POST", testKey, "", `{"type":"a b"}`, 400, "bad_request"},
		{"type too long", "POST", testKey, "", `{"type":"` + strings.Repeat("t", 65) + `"}`, 400, "bad_request"},
		{"reserved type", "POST", testKey, "", `{"type":"resync"}`, 400, "bad_request"},
		{"event over max-event-size", "POST", testKey, "", `{"type":"x","data":"` + strings.Repeat("a", 200) + `"}`, 413, "payload_too_large"},
		{"body over max-publish-bytes", "POST", testKey, "", `{"type":"x","data":"` + strings.Repeat("a", 2000) + `"}`, 413, "payload_too_large"},
		{"form content type", "POST", testKey, "application/x-www-form-urlencoded", `{"type":"x"}`, 415, "unsupported_media_type"},
		{"GET", "GET", testKey, "", ``, 405, "method_not_allowed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, ta.srv.URL+"/sse/publish", strings.NewReader(tc.body))
			req.Header.Set("Content-Type", "application/json")
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			if tc.key != "" {
				req.Header.Set("Authorization", "Bearer "+tc.key)
			}
			status, body := doJSON(t, req)
			if status != tc.status || body["error"] != tc.errCode || body["message"] == "" {
				t.Errorf("got %d %v, want %d with error %q", status, body, tc.status, tc.errCode)
			}
		})
	}
	if got := ta.hub.Stats().Published; got != 0 {
		t.Errorf("Published = %d after only invalid publishes, want 0", got)
	}
}

// TestPublishRoutes checks that events reach exactly whom they address:
// a user, several users, one client, everyone.
func TestPublishRoutes(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, testConfig(t), nil)
	alice, bob := newUser(), newUser()
	sa := openStream(t, ta.srv.URL+"/sse/stream", bearerAuth(token(t, alice)))
	sb := openStream(t, ta.srv.URL+"/sse/stream", bearerAuth(token(t, bob)))
	var bobClient struct {
		ClientID string `json:"client_id"`
	}
	connected := sb.nextOf(t, "connected")
	if err := jsonUnmarshal(connected.Data, &bobClient); err != nil || bobClient.ClientID == "" {
		t.Fatalf("connected data %q: %v", connected.Data, err)
	}
	sa.nextOf(t, "connected")

	send := func(body map[string]any) string {
		t.Helper()
		status, out := publish(t, ta.srv.URL, testKey, mustJSON(body))
		if status != http.StatusOK {
			t.Fatalf("publish %v: %d %v", body, status, out)
		}
		id, _ := out["id"].(string)
		if id == "" {
			t.Fatalf("publish answered no id: %v", out)
		}
		return id
	}
	// Each stream must see exactly its events, in order; a final broadcast
	// marks the end, so that a missing or extra event shows up before it.
	send(map[string]any{"users": []string{strings.ToUpper(alice)}, "type": "only_alice", "data": map[string]int{"n": 1}})
	send(map[string]any{"clients": []string{bobClient.ClientID}, "type": "only_bob_client"})
	send(map[string]any{"users": []string{alice, bob}, "type": "both"})
	end := send(map[string]any{"type": "everyone", "data": "bye"})

	for name, tc := range map[string]struct {
		s    *stream
		want []string
	}{
		"alice": {sa, []string{"only_alice", "both", "everyone"}},
		"bob":   {sb, []string{"only_bob_client", "both", "everyone"}},
	} {
		var got []string
		for range 10 {
			ev, err := tc.s.next()
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if ev.Type == "heartbeat" {
				continue
			}
			got = append(got, ev.Type)
			if ev.ID == end {
				break
			}
		}
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%s got %v, want %v", name, got, tc.want)
		}
	}
	if got, want := ta.hub.Stats().Published, uint64(4); got != want {
		t.Errorf("Published = %d, want %d", got, want)
	}
}

// TestPublishWithoutDataSendsNull checks that data may be left out.
func TestPublishWithoutDataSendsNull(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, testConfig(t), nil)
	user := newUser()
	s := openStream(t, ta.srv.URL+"/sse/stream", bearerAuth(token(t, user)))
	s.nextOf(t, "connected")
	if status, out := publish(t, ta.srv.URL, testKey, `{"users":["`+user+`"],"type":"ping"}`); status != http.StatusOK {
		t.Fatalf("publish: %d %v", status, out)
	}
	if got := s.nextOf(t, "ping").Data; got != "null" {
		t.Errorf("data = %q, want null", got)
	}
}

// TestPublishAfterShutdownIs503 checks that a closing hub answers 503, so
// that the publisher retries elsewhere.
func TestPublishAfterShutdownIs503(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, testConfig(t), nil)
	if err := ta.hub.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	status, out := publish(t, ta.srv.URL, testKey, `{"type":"late"}`)
	if status != http.StatusServiceUnavailable || out["error"] != "unavailable" {
		t.Errorf("got %d %v, want 503 unavailable", status, out)
	}
}
