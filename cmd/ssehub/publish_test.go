package main

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ssekit/sse/internal/ssetest"
	"github.com/ssekit/sse/ssekit"
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
		{"no type", "POST", testKey, "", `{"all":true,"data":1}`, 400, "bad_request"},
		{"type with newline", "POST", testKey, "", `{"all":true,"type":"a\nb"}`, 400, "bad_request"},
		{"type with space", "POST", testKey, "", `{"all":true,"type":"a b"}`, 400, "bad_request"},
		{"type too long", "POST", testKey, "", `{"all":true,"type":"` + strings.Repeat("t", 65) + `"}`, 400, "bad_request"},
		{"reserved type", "POST", testKey, "", `{"users":["` + user + `"],"type":"resync"}`, 400, "bad_request"},
		{"EventSource's error type", "POST", testKey, "", `{"users":["` + user + `"],"type":"error"}`, 400, "bad_request"},
		{"EventSource's open type", "POST", testKey, "", `{"all":true,"type":"open"}`, 400, "bad_request"},
		{"event over max-event-size", "POST", testKey, "", `{"all":true,"type":"x","data":"` + strings.Repeat("a", 200) + `"}`, 413, "payload_too_large"},
		{"body over max-publish-bytes", "POST", testKey, "", `{"all":true,"type":"x","data":"` + strings.Repeat("a", 2000) + `"}`, 413, "payload_too_large"},
		{"form content type", "POST", testKey, "application/x-www-form-urlencoded", `{"all":true,"type":"x"}`, 415, "unsupported_media_type"},
		{"no content type", "POST", testKey, "none", `{"all":true,"type":"x"}`, 415, "unsupported_media_type"},
		{"GET", "GET", testKey, "", ``, 405, "method_not_allowed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, ta.srv.URL+"/sse/publish", strings.NewReader(tc.body))
			req.Header.Set("Content-Type", "application/json")
			switch tc.ctype {
			case "":
			case "none":
				req.Header.Del("Content-Type")
			default:
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
	if err := connected.Decode(&bobClient); err != nil || bobClient.ClientID == "" {
		t.Fatalf("connected data %q: %v", connected.Data, err)
	}
	aliceConnected := sa.nextOf(t, "connected")

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
	end := send(map[string]any{"all": true, "type": "everyone", "data": "bye"})

	for name, tc := range map[string]struct {
		s    *stream
		from string // the id of the stream's connected event: its position
		want []string
	}{
		"alice": {sa, aliceConnected.ID, []string{"only_alice", "both", "everyone"}},
		"bob":   {sb, connected.ID, []string{"only_bob_client", "both", "everyone"}},
	} {
		var got []string
		prev := tc.from
		for range 10 {
			ev, err := tc.s.next()
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if ev.Type == "heartbeat" {
				continue
			}
			got = append(got, ev.Type)
			// An event to one client is in no channel (it is never
			// replayed): it carries no id, so the client keeps its last.
			if ev.Type == "only_bob_client" {
				if ev.ID != prev {
					t.Errorf("%s: event to the client has id %q, want none: the client keeps %q", name, ev.ID, prev)
				}
				continue
			}
			if !ssetest.Moved(prev, ev.ID) {
				t.Errorf("%s: event id %q after %q: the stream's position did not move forward", name, ev.ID, prev)
			}
			prev = ev.ID
			// The marker, by its position in the broadcast channel.
			if ev.Type == "everyone" && positionIn(t, ev.ID, "a") == end {
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
	if got := string(s.nextOf(t, "ping").Data); got != "null" {
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
	status, out := publish(t, ta.srv.URL, testKey, `{"all":true,"type":"late"}`)
	if status != http.StatusServiceUnavailable || out["error"] != "unavailable" {
		t.Errorf("got %d %v, want 503 unavailable", status, out)
	}
}

// TestPublishNeverBroadcastsByAccident checks that everyone is only what
// the publisher says with "all": true: a body that names nobody, a list
// that is present but empty or null, a duplicate or case-variant key, or
// "all" combined with a list is a 400, and nothing is published.
func TestPublishNeverBroadcastsByAccident(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, testConfig(t), nil)
	user := newUser()
	s := openStream(t, ta.srv.URL+"/sse/stream", bearerAuth(token(t, user)))
	s.nextOf(t, "connected")
	cases := []struct {
		name, body string
		want       []string // the message must contain each
	}{
		{"no addressee", `{"type":"x"}`, []string{`"users"`, `"clients"`, `"all": true`}},
		{"all false alone", `{"all":false,"type":"x"}`, []string{`"all": true`}},
		{"all null", `{"all":null,"type":"x"}`, []string{`"all"`}},
		{"all with users", `{"all":true,"users":["` + user + `"],"type":"x"}`, []string{`"all"`, `"users"`}},
		{"all with clients", `{"all":true,"clients":["c-1"],"type":"x"}`, []string{`"all"`, `"clients"`}},
		{"users empty", `{"users":[],"type":"x"}`, []string{`"users"`}},
		{"users null", `{"users":null,"type":"x"}`, []string{`"users"`}},
		{"clients empty", `{"clients":[],"type":"x"}`, []string{`"clients"`}},
		{"clients null", `{"clients":null,"type":"x"}`, []string{`"clients"`}},
		{"users empty beside clients", `{"users":[],"clients":["c-1"],"type":"x"}`, []string{`"users"`}},
		{"duplicate users, empty last", `{"users":["` + user + `"],"users":[],"type":"x"}`, []string{`"users"`}},
		{"duplicate users, empty first", `{"users":[],"users":["` + user + `"],"type":"x"}`, []string{`"users"`}},
		{"duplicate type", `{"users":["` + user + `"],"type":"x","type":"y"}`, []string{`"type"`}},
		{"case variant Users", `{"Users":["` + user + `"],"type":"x"}`, []string{`"Users"`}},
		{"case variant TYPE", `{"users":["` + user + `"],"TYPE":"x"}`, []string{`"TYPE"`}},
		{"case variant beside the field", `{"users":["` + user + `"],"type":"x","Type":"y"}`, []string{`"Type"`}},
		{"escaped key", `{"\u0075sers":["` + user + `"],"users":[],"type":"x"}`, []string{`"users"`}},
		{"trailing bracket", `{"users":["` + user + `"],"type":"x"}]`, []string{"malformed"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := publish(t, ta.srv.URL, testKey, tc.body)
			msg, _ := body["message"].(string)
			if status != http.StatusBadRequest || body["error"] != "bad_request" {
				t.Fatalf("got %d %v, want 400 bad_request", status, body)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q lacks %s", msg, w)
				}
			}
		})
	}
	if got := ta.hub.Stats().Published; got != 0 {
		t.Fatalf("Published = %d after only refused publishes, want 0", got)
	}
	// Everyone, when asked for, does reach the user.
	status, out := publish(t, ta.srv.URL, testKey, `{"all":true,"type":"everyone"}`)
	if status != http.StatusOK {
		t.Fatalf(`"all": true: %d %v`, status, out)
	}
	everyone := s.nextOf(t, "everyone")
	if got, want := positionIn(t, everyone.ID, "a"), out["id"]; got != want {
		t.Errorf("event id %q: position %s in the broadcast channel, want the publish's %v", everyone.ID, got, want)
	}
	// "all": false beside a list is just that list.
	status, out = publish(t, ta.srv.URL, testKey, `{"all":false,"users":["`+user+`"],"type":"mine"}`)
	if status != http.StatusOK {
		t.Fatalf(`"all": false with users: %d %v`, status, out)
	}
	mine := s.nextOf(t, "mine")
	if got, want := positionIn(t, mine.ID, "u"), out["id"]; got != want {
		t.Errorf("event id %q: position %s in the user's channel, want the publish's %v", mine.ID, got, want)
	}
	if !ssetest.Moved(everyone.ID, mine.ID) {
		t.Errorf("event id %q after %q: the stream's position did not move forward", mine.ID, everyone.ID)
	}
}

// TestPublishMaxRecipients checks --max-recipients: more users and
// clients than it is a 400 too_many_recipients, as is the hub's own
// ErrTooManyRecipients; 0 lifts the limit.
func TestPublishMaxRecipients(t *testing.T) {
	t.Parallel()
	users := func(n int) string {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = newUser()
		}
		return mustJSON(ids)
	}
	ta := newTestApp(t, testConfig(t, "--max-recipients", "2"), nil)
	status, out := publish(t, ta.srv.URL, testKey, `{"users":`+users(2)+`,"clients":["c-1"],"type":"x"}`)
	if status != http.StatusBadRequest || out["error"] != "too_many_recipients" || !strings.Contains(out["message"].(string), "--max-recipients") {
		t.Errorf("3 addressees over 2: got %d %v, want 400 too_many_recipients naming --max-recipients", status, out)
	}
	if status, out := publish(t, ta.srv.URL, testKey, `{"users":`+users(2)+`,"type":"x"}`); status != http.StatusOK {
		t.Errorf("2 addressees: got %d %v, want 200", status, out)
	}

	unlimited := newTestApp(t, testConfig(t, "--max-recipients", "0"), nil)
	if status, out := publish(t, unlimited.srv.URL, testKey, `{"users":`+users(1500)+`,"type":"x"}`); status != http.StatusOK {
		t.Errorf("1500 addressees with no limit: got %d %v, want 200", status, out)
	}

	// The hub's own refusals are the publisher's to fix too, not a 503.
	hub, err := ssekit.New(ssekit.Config{MaxRecipients: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hub.Close() })
	h := &publishHandler{hub: hub, key: newKeyChecker(testKey), maxBody: 1 << 20, log: slog.New(slog.DiscardHandler), metrics: newServerMetrics(hub)}
	req := httptest.NewRequest(http.MethodPost, "/sse/publish", strings.NewReader(`{"users":`+users(2)+`,"type":"x"}`))
	req.Header.Set("Authorization", "Bearer "+testKey)
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), `"too_many_recipients"`) {
		t.Errorf("hub's ErrTooManyRecipients: got %d %s, want 400 too_many_recipients", w.Code, w.Body)
	}
}
