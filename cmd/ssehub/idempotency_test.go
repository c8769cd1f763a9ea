package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ssekit/sse/internal/ssetest"
)

// publishWithKey posts body with the publish key and an Idempotency-Key
// header for each of keys (none when keys is empty), and returns the
// status, the decoded JSON and the Idempotent-Replayed header.
func publishWithKey(t *testing.T, base, body string, keys ...string) (int, map[string]any, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/sse/publish", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+testKey)
	for _, k := range keys {
		req.Header.Add(idempotencyHeader, k)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") || json.Unmarshal(raw, &out) != nil {
		t.Fatalf("publish: %s %q: %s, want JSON", resp.Status, ct, raw)
	}
	return resp.StatusCode, out, resp.Header.Get(replayedHeader)
}

// typesUntil reads s's events up to the first of type end, and returns
// their types (heartbeats left out, end included).
func typesUntil(t *testing.T, s *stream, end string) []string {
	t.Helper()
	var got []string
	for range 100 {
		ev, err := s.next()
		if err != nil {
			t.Fatalf("after %v: %v", got, err)
		}
		if ev.Type == "heartbeat" {
			continue
		}
		got = append(got, ev.Type)
		if ev.Type == end {
			return got
		}
	}
	t.Fatalf("no %s event in 100: %v", end, got)
	return nil
}

// TestPublishIdempotencyKeyReplays checks that a publish repeated with its
// Idempotency-Key is stored and delivered once: the repeat gets the same
// id, "replayed": true and Idempotent-Replayed: true, and is counted.
func TestPublishIdempotencyKeyReplays(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, testConfig(t), nil)
	user := newUser()
	s := openStream(t, ta.srv.URL+"/sse/stream", bearerAuth(token(t, user)))
	s.nextOf(t, "connected")

	body := `{"users":["` + user + `"],"type":"order_shipped","data":{"order":42}}`
	status, first, mark := publishWithKey(t, ta.srv.URL, body, "order-42-shipped")
	if status != http.StatusOK || first["id"] == nil || first["replayed"] != nil || mark != "" {
		t.Fatalf("first publish: %d %v %s=%q, want 200 with an id, not replayed", status, first, replayedHeader, mark)
	}
	status, again, mark := publishWithKey(t, ta.srv.URL, body, "order-42-shipped")
	if status != http.StatusOK || again["id"] != first["id"] || again["replayed"] != true || mark != "true" {
		t.Fatalf("repeat: %d %v %s=%q, want 200 with id %v, \"replayed\": true and the header", status, again, replayedHeader, mark, first["id"])
	}
	// The same event under another key is another publish.
	if status, other, _ := publishWithKey(t, ta.srv.URL, body, "order-42-shipped-2"); status != http.StatusOK || other["id"] == first["id"] || other["replayed"] != nil {
		t.Fatalf("another key: %d %v, want a new publish", status, other)
	}
	endsWith(t, ta, s, user, "order_shipped,order_shipped,end")
	if got, want := ta.hub.Stats().Published, uint64(3); got != want {
		t.Errorf("Published = %d, want %d", got, want)
	}
	metricsAre(t, ta.srv.URL, map[string]float64{
		"ssekit_idempotency_replays_total":          1,
		"ssekit_idempotency_conflicts_total":        0,
		"ssekit_idempotency_keys":                   2,
		`ssekit_publishes_total{target="users"}`:    3,
		`ssekit_publish_rejected_total{code="422"}`: 0,
	})
}

// TestPublishIdempotencyKeyConcurrent checks that publishes with one key
// racing each other (a publisher retrying before its first attempt was
// answered) store one event: every one gets its id, all but one replayed.
func TestPublishIdempotencyKeyConcurrent(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, testConfig(t), nil)
	user := newUser()
	s := openStream(t, ta.srv.URL+"/sse/stream", bearerAuth(token(t, user)))
	s.nextOf(t, "connected")

	const n = 16
	body := `{"users":["` + user + `"],"type":"once","data":"x"}`
	type answer struct {
		status   int
		id       any
		replayed bool
	}
	answers := make([]answer, n)
	var wg sync.WaitGroup
	for i := range answers {
		wg.Go(func() {
			status, out, mark := publishWithKey(t, ta.srv.URL, body, "the-race")
			answers[i] = answer{status, out["id"], out["replayed"] == true && mark == "true"}
		})
	}
	wg.Wait()
	replays := 0
	for i, a := range answers {
		if a.status != http.StatusOK || a.id == nil || a.id != answers[0].id {
			t.Errorf("publish %d: %d id %v, want 200 with id %v", i, a.status, a.id, answers[0].id)
		}
		if a.replayed {
			replays++
		}
	}
	if replays != n-1 {
		t.Errorf("%d of %d answers replayed, want %d", replays, n, n-1)
	}
	endsWith(t, ta, s, user, "once,end")
	if got := metricValue(t, ta.srv.URL, "ssekit_idempotency_replays_total"); got != n-1 {
		t.Errorf("ssekit_idempotency_replays_total = %v, want %d", got, n-1)
	}
}

// TestPublishIdempotencyKeyReusedIs422 checks that a key sent again with
// another body (data, type or addressees) is refused with 422 and
// publishes nothing, while the same body is still a replay.
func TestPublishIdempotencyKeyReusedIs422(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, testConfig(t), nil)
	user, other := newUser(), newUser()
	s := openStream(t, ta.srv.URL+"/sse/stream", bearerAuth(token(t, user)))
	s.nextOf(t, "connected")

	body := `{"users":["` + user + `"],"type":"invoice","data":{"n":1}}`
	status, first, _ := publishWithKey(t, ta.srv.URL, body, "invoice-1")
	if status != http.StatusOK {
		t.Fatalf("first publish: %d %v", status, first)
	}
	for name, b := range map[string]string{
		"other data":       `{"users":["` + user + `"],"type":"invoice","data":{"n":2}}`,
		"other type":       `{"users":["` + user + `"],"type":"receipt","data":{"n":1}}`,
		"other addressees": `{"users":["` + user + `","` + other + `"],"type":"invoice","data":{"n":1}}`,
		"everyone":         `{"all":true,"type":"invoice","data":{"n":1}}`,
	} {
		status, out, mark := publishWithKey(t, ta.srv.URL, b, "invoice-1")
		msg, _ := out["message"].(string)
		if status != http.StatusUnprocessableEntity || out["error"] != "idempotency_key_reused" || mark != "" {
			t.Errorf("%s: got %d %v %s=%q, want 422 idempotency_key_reused", name, status, out, replayedHeader, mark)
		}
		for _, want := range []string{"Idempotency-Key", `"invoice-1"`, "different publish", "--idempotency-window (10m)"} {
			if !strings.Contains(msg, want) {
				t.Errorf("%s: message %q lacks %s", name, msg, want)
			}
		}
	}
	// The same publish written otherwise (the fields in another order,
	// spaced, the user in upper case; the data, which subscribers get as
	// sent, the same bytes) is a replay.
	reordered := `{ "data": {"n":1}, "type": "invoice", "users": ["` + strings.ToUpper(user) + `"] }`
	if status, out, _ := publishWithKey(t, ta.srv.URL, reordered, "invoice-1"); status != http.StatusOK || out["replayed"] != true || out["id"] != first["id"] {
		t.Errorf("same publish written otherwise: %d %v, want a replay of %v", status, out, first["id"])
	}
	endsWith(t, ta, s, user, "invoice,end")
	if got, want := ta.hub.Stats().Published, uint64(2); got != want {
		t.Errorf("Published = %d, want %d", got, want)
	}
	metricsAre(t, ta.srv.URL, map[string]float64{
		"ssekit_idempotency_conflicts_total":        4,
		`ssekit_publish_rejected_total{code="422"}`: 4,
		"ssekit_idempotency_replays_total":          1,
	})
}

// TestPublishIdempotencyKeyInvalid checks that a key that is empty, too
// long, not visible ASCII or given twice is a 400 naming the header, and
// that nothing is published.
func TestPublishIdempotencyKeyInvalid(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, testConfig(t), nil)
	body := `{"all":true,"type":"x"}`
	for name, keys := range map[string][]string{
		"empty":        {""},
		"too long":     {strings.Repeat("k", 256)},
		"space inside": {"a key"},
		"not ASCII":    {"clé"},
		"twice":        {"k-1", "k-2"},
	} {
		status, out, _ := publishWithKey(t, ta.srv.URL, body, keys...)
		msg, _ := out["message"].(string)
		if status != http.StatusBadRequest || out["error"] != "bad_request" || !strings.Contains(msg, "Idempotency-Key") {
			t.Errorf("%s: got %d %v, want 400 bad_request naming Idempotency-Key", name, status, out)
		}
	}
	// The longest key is valid.
	if status, out, _ := publishWithKey(t, ta.srv.URL, body, strings.Repeat("k", 255)); status != http.StatusOK {
		t.Errorf("255-byte key: %d %v, want 200", status, out)
	}
	if got, want := ta.hub.Stats().Published, uint64(1); got != want {
		t.Errorf("Published = %d, want %d (only the valid key's)", got, want)
	}
}

// TestPublishIdempotencyKeyExpires checks --idempotency-window: past it,
// the key is forgotten and the same publish is stored again. The test
// waits past the window; it asserts nothing about how long anything took.
func TestPublishIdempotencyKeyExpires(t *testing.T) {
	t.Parallel()
	const window = 200 * time.Millisecond
	ta := newTestApp(t, testConfig(t, "--idempotency-window", window.String()), nil)
	user := newUser()
	s := openStream(t, ta.srv.URL+"/sse/stream", bearerAuth(token(t, user)))
	s.nextOf(t, "connected")

	body := `{"users":["` + user + `"],"type":"reminder"}`
	status, first, _ := publishWithKey(t, ta.srv.URL, body, "daily-reminder")
	if status != http.StatusOK {
		t.Fatalf("first publish: %d %v", status, first)
	}
	time.Sleep(window + 100*time.Millisecond)
	status, later, mark := publishWithKey(t, ta.srv.URL, body, "daily-reminder")
	if status != http.StatusOK || later["replayed"] != nil || mark != "" || later["id"] == first["id"] {
		t.Fatalf("after the window: %d %v %s=%q, want a new publish", status, later, replayedHeader, mark)
	}
	// The key now names the second publish.
	if status, again, _ := publishWithKey(t, ta.srv.URL, body, "daily-reminder"); status != http.StatusOK || again["replayed"] != true || again["id"] != later["id"] {
		t.Fatalf("repeat of the second: %d %v, want a replay of %v", status, again, later["id"])
	}
	endsWith(t, ta, s, user, "reminder,reminder,end")
}

// TestPublishMaxIdempotencyKeys checks --max-idempotency-keys: over it the
// oldest key is forgotten first, and a repeat of its publish is stored
// again.
func TestPublishMaxIdempotencyKeys(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, testConfig(t, "--max-idempotency-keys", "2"), nil)
	body := `{"all":true,"type":"x"}`
	ids := map[string]any{}
	for _, k := range []string{"k-1", "k-2", "k-3"} {
		status, out, _ := publishWithKey(t, ta.srv.URL, body, k)
		if status != http.StatusOK || out["replayed"] != nil {
			t.Fatalf("%s: %d %v", k, status, out)
		}
		ids[k] = out["id"]
	}
	if got := metricValue(t, ta.srv.URL, "ssekit_idempotency_keys"); got != 2 {
		t.Errorf("ssekit_idempotency_keys = %v, want 2", got)
	}
	if status, out, _ := publishWithKey(t, ta.srv.URL, body, "k-3"); status != http.StatusOK || out["replayed"] != true || out["id"] != ids["k-3"] {
		t.Errorf("k-3 again: %d %v, want a replay of %v", status, out, ids["k-3"])
	}
	if status, out, _ := publishWithKey(t, ta.srv.URL, body, "k-1"); status != http.StatusOK || out["replayed"] != nil || out["id"] == ids["k-1"] {
		t.Errorf("k-1 again, forgotten: %d %v, want a new publish", status, out)
	}
}

// TestPublishCommandIdempotencyKey checks `ssehub publish
// --idempotency-key`: run twice, it prints the same id both times, says
// "replayed" on stderr the second time, and the event is delivered once;
// a key that is not one is refused before anything is sent.
func TestPublishCommandIdempotencyKey(t *testing.T) {
	t.Parallel()
	r, user, s, getenv := cliSetup(t)
	args := []string{"publish", "--user", user, "--type", "build_done", "--data", `{"build":7}`, "--idempotency-key", "build-7-done"}
	var ids []string
	for i := range 2 {
		var stdout, stderr bytes.Buffer
		if err := run(t.Context(), args, getenv, &stdout, &stderr); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		ids = append(ids, strings.TrimSpace(stdout.String()))
		if got, want := strings.Contains(stderr.String(), "replayed"), i == 1; got != want {
			t.Errorf("run %d: stderr %q: says replayed %v, want %v", i, stderr.String(), got, want)
		}
	}
	if ids[0] == "" || ids[0] != ids[1] {
		t.Errorf("printed ids %q, want one id twice", ids)
	}
	if err := run(t.Context(), []string{"publish", "--user", user, "--type", "end"}, getenv, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Fatalf("end: %v", err)
	}
	if got, want := strings.Join(typesUntil(t, s, "end"), ","), "build_done,end"; got != want {
		t.Errorf("stream got %s, want %s", got, want)
	}

	// Another body under the key: the hub's 422, as one line.
	var out bytes.Buffer
	err := run(t.Context(), []string{"publish", "--user", user, "--type", "build_done", "--data", `{"build":8}`, "--idempotency-key", "build-7-done"}, getenv, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "422") || !strings.Contains(err.Error(), "Idempotency-Key") || strings.Contains(err.Error(), "\n") {
		t.Errorf("reused key: err = %v, want a one-line 422 naming Idempotency-Key", err)
	}
	refusedCommands(t, r.url, getenv, []refusedCommand{
		{"empty key", []string{"--all", "--type", "x", "--idempotency-key", ""}, []string{"--idempotency-key"}},
		{"key with a space", []string{"--all", "--type", "x", "--idempotency-key", "a b"}, []string{"--idempotency-key"}},
		{"key too long", []string{"--all", "--type", "x", "--idempotency-key", strings.Repeat("k", 256)}, []string{"--idempotency-key"}},
	})
}

// TestClusterIdempotencyKey checks the key across two nodes of one Redis:
// a publish on one node repeated on the other (a publisher retrying
// elsewhere) is answered as a replay with the first's id and delivered
// once, a different body under the key is a 422, and --idempotency-window
// reaches the Redis broker: past it, the key is forgotten.
func TestClusterIdempotencyKey(t *testing.T) {
	t.Parallel()
	_, prefix := sharedRedis(t)
	const window = 500 * time.Millisecond
	node := func(name string) *testApp {
		cfg := testConfig(t, "--redis-url", fmt.Sprintf("redis://%s/0?prefix=%s&node=%s", ssetest.RedisAddr(), prefix, name),
			"--idempotency-window", window.String())
		cl, err := openCluster(t.Context(), cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		return newTestApp(t, cfg, cl)
	}
	n1, n2 := node("n1"), node("n2")
	user := newUser()
	s := openStream(t, n2.srv.URL+"/sse/stream", bearerAuth(token(t, user)))
	s.nextOf(t, "connected")

	body := `{"users":["` + user + `"],"type":"paid","data":{"invoice":9}}`
	status, first, _ := publishWithKey(t, n1.srv.URL, body, "invoice-9-paid")
	if status != http.StatusOK || first["replayed"] != nil {
		t.Fatalf("first publish on node 1: %d %v", status, first)
	}
	status, again, mark := publishWithKey(t, n2.srv.URL, body, "invoice-9-paid")
	if status != http.StatusOK || again["replayed"] != true || mark != "true" || again["id"] != first["id"] {
		t.Fatalf("repeat on node 2: %d %v %s=%q, want a replay of %v", status, again, replayedHeader, mark, first["id"])
	}
	status, out, _ := publishWithKey(t, n2.srv.URL, `{"users":["`+user+`"],"type":"paid","data":{"invoice":10}}`, "invoice-9-paid")
	if status != http.StatusUnprocessableEntity || out["error"] != "idempotency_key_reused" {
		t.Errorf("other body on node 2: %d %v, want 422 idempotency_key_reused", status, out)
	}
	if got := metricValue(t, n2.srv.URL, "ssekit_idempotency_replays_total"); got != 1 {
		t.Errorf("node 2's ssekit_idempotency_replays_total = %v, want 1", got)
	}
	// Redis keeps the keys: no gauge of the memory broker's.
	resp, err := http.Get(n2.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(metrics), "ssekit_idempotency_keys ") {
		t.Error("cluster mode exports ssekit_idempotency_keys, the memory broker's gauge")
	}
	// What Redis holds is counted where it was recorded: node 1 recorded
	// the key, node 2 only replayed and was refused.
	for n, want := range map[*testApp]float64{n1: 1, n2: 0} {
		if got := metricValue(t, n.srv.URL, "ssekit_idempotency_keys_recorded_total"); got != want {
			t.Errorf("ssekit_idempotency_keys_recorded_total = %v, want %v", got, want)
		}
	}
	// Past the window the key is forgotten: the same publish is stored
	// again. Waiting is the test; how long anything took is not.
	time.Sleep(window + 200*time.Millisecond)
	status, later, _ := publishWithKey(t, n2.srv.URL, body, "invoice-9-paid")
	if status != http.StatusOK || later["replayed"] != nil || later["id"] == first["id"] {
		t.Fatalf("after the window: %d %v, want a new publish", status, later)
	}
	if status, out := publish(t, n1.srv.URL, testKey, `{"users":["`+user+`"],"type":"end"}`); status != http.StatusOK {
		t.Fatalf("end: %d %v", status, out)
	}
	if got, want := strings.Join(typesUntil(t, s, "end"), ","), "paid,paid,end"; got != want {
		t.Errorf("stream got %s, want %s (once, then again after the window)", got, want)
	}
}

// endsWith publishes an "end" event to user and checks that stream s got
// exactly want (comma-separated types, "end" last) until it: a repeat
// that sent something would show before the end.
func endsWith(t *testing.T, ta *testApp, s *stream, user, want string) {
	t.Helper()
	if status, out := publish(t, ta.srv.URL, testKey, `{"users":["`+user+`"],"type":"end"}`); status != http.StatusOK {
		t.Fatalf("end: %d %v", status, out)
	}
	if got := strings.Join(typesUntil(t, s, "end"), ","); got != want {
		t.Errorf("stream got %s, want %s", got, want)
	}
}

// metricsAre checks each metric's value at the hub at base.
func metricsAre(t *testing.T, base string, want map[string]float64) {
	t.Helper()
	for name, w := range want {
		if got := metricValue(t, base, name); got != w {
			t.Errorf("%s = %v, want %v", name, got, w)
		}
	}
}
