package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"go.uber.org/goleak"

	"github.com/ssekit/sse/internal/ssetest"
	"github.com/ssekit/sse/sseclient"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Fixed secrets for the tests that are not about dev mode.
const (
	testSecret = "0123456789abcdef0123456789abcdef-test-secret"
	testKey    = "publish-key-for-tests-0001"
)

// testConfig returns a valid non-dev config on a free loopback port.
func testConfig(t *testing.T, args ...string) config {
	t.Helper()
	all := append([]string{"--addr", "127.0.0.1:0", "--jwt-secret", testSecret, "--publish-key", testKey}, args...)
	c, err := parseConfig(all, noEnv, io.Discard)
	if err != nil {
		t.Fatalf("parseConfig: %v", err)
	}
	return c
}

func noEnv(string) string { return "" }

// testApp is an app behind an httptest.Server.
type testApp struct {
	*app
	srv *httptest.Server
}

// newTestApp serves an app for cfg (with cl as its cluster, may be nil);
// cleanup closes the hub first, since httptest.Server.Close waits for the
// streams it would otherwise wait on for ever.
func newTestApp(t *testing.T, cfg config, cl cluster) *testApp {
	t.Helper()
	cfg.fillDevSecrets()
	a, err := newApp(t.Context(), cfg, slog.New(slog.DiscardHandler), cl)
	if err != nil {
		t.Fatalf("newApp: %v", err)
	}
	srv := httptest.NewServer(a.handler)
	t.Cleanup(func() {
		_ = a.close(context.Background())
		srv.Close()
	})
	return &testApp{app: a, srv: srv}
}

// token signs claims for user with the test secret, valid for an hour.
func token(t *testing.T, user string) string {
	t.Helper()
	return signHS(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": user, "exp": time.Now().Add(time.Hour).Unix()})
}

func signHS(t *testing.T, m jwt.SigningMethod, secret string, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, claims).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// stream is an open event stream read by a test, through the sseclient
// decoder, as a browser reads it.
type stream struct {
	resp   *http.Response
	dec    *sseclient.Decoder
	cancel context.CancelFunc
}

// openStream opens url with the request edited by edit and checks for a
// 200 event stream. The stream is closed at cleanup.
func openStream(t *testing.T, url string, edit func(*http.Request)) *stream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if edit != nil {
		edit(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET %s: %v", url, err)
	}
	s := &stream{resp: resp, dec: sseclient.NewDecoder(resp.Body), cancel: cancel}
	t.Cleanup(s.close)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s %s %s", url, resp.Status, resp.Header.Get("Content-Type"), body)
	}
	return s
}

func (s *stream) close() {
	s.cancel()
	s.resp.Body.Close()
}

// next returns the next event (a frame without data, such as a retry
// hint, is none); io.EOF when the stream ended. A test bounds it with
// ssetest.Patience via a timer that closes the stream.
func (s *stream) next() (sseclient.Event, error) {
	timer := time.AfterFunc(ssetest.Patience, s.close)
	defer timer.Stop()
	return s.dec.Next()
}

// nextOf returns the next event of type typ, skipping heartbeats and
// other types.
func (s *stream) nextOf(t *testing.T, typ string) sseclient.Event {
	t.Helper()
	for range 100 {
		ev, err := s.next()
		if err != nil {
			t.Fatalf("waiting for a %s event: %v", typ, err)
		}
		if ev.Type == typ {
			return ev
		}
	}
	t.Fatalf("no %s event in 100", typ)
	return sseclient.Event{}
}

// bearerAuth returns an edit that sets the Authorization header.
func bearerAuth(tok string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
}

// publish posts body with key and returns the status and decoded JSON.
func publish(t *testing.T, base, key, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/sse/publish", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	return doJSON(t, req)
}

// doJSON does req and decodes its JSON answer.
func doJSON(t *testing.T, req *http.Request) (int, map[string]any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	// Checked before reading: an event stream's body would never end.
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s %s: %s with Content-Type %q, want JSON", req.Method, req.URL, resp.Status, ct)
	}
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s %s: %s: not JSON: %s", req.Method, req.URL, resp.Status, raw)
	}
	return resp.StatusCode, out
}

// lineWriter collects a process's log lines and reports the address of
// its "listening" record (JSON logs).
type lineWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	addrC chan string
}

func newLineWriter() *lineWriter { return &lineWriter{addrC: make(chan string, 1)} }

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for _, line := range bytes.Split(p, []byte("\n")) {
		var rec struct{ Msg, Addr string }
		if json.Unmarshal(line, &rec) == nil && rec.Msg == "listening" {
			select {
			case w.addrC <- rec.Addr:
			default:
			}
		}
	}
	return len(p), nil
}

func (w *lineWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// running is run() serving in the test's process.
type running struct {
	url    string
	logs   *lineWriter
	cancel context.CancelFunc // as SIGTERM would
	done   chan error
}

// startRun runs the server in-process on a free loopback port, as main
// does, and returns once it listens. Cleanup stops it.
func startRun(t *testing.T, args []string, env map[string]string) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{logs: newLineWriter(), cancel: cancel, done: make(chan error, 1)}
	all := append([]string{"--addr", "127.0.0.1:0", "--log-format", "json", "--shutdown-timeout", "2s"}, args...)
	go func() { r.done <- run(ctx, all, func(k string) string { return env[k] }, io.Discard, r.logs) }()
	select {
	case addr := <-r.logs.addrC:
		r.url = "http://" + addr
	case err := <-r.done:
		cancel()
		t.Fatalf("run returned before listening: %v\n%s", err, r.logs)
	case <-time.After(ssetest.Patience):
		cancel()
		t.Fatalf("run did not listen\n%s", r.logs)
	}
	t.Cleanup(func() {
		if err := r.stop(); err != nil {
			t.Errorf("run: %v", err)
		}
	})
	return r
}

// stop cancels the server's context and waits for run to return.
func (r *running) stop() error {
	r.cancel()
	select {
	case err, ok := <-r.done:
		if !ok {
			return nil // already stopped
		}
		close(r.done)
		return err
	case <-time.After(ssetest.Patience):
		return errors.New("run did not return after its context was cancelled")
	}
}

// positionIn returns the position of the channel tagged tag ("a"
// everyone, "u" the stream's user) in an event id of the hub, failing t
// when the id does not parse or does not carry that channel. With the
// in-memory broker, an event's position in each of its channels is the id
// its publish answered, so tests compare the two through it.
func positionIn(t *testing.T, id, tag string) string {
	t.Helper()
	pos, cursor, ok := ssetest.Positions(id)
	if !ok || cursor != "" {
		t.Fatalf("event id %q is not an inline position of the hub", id)
	}
	p, ok := pos[tag]
	if !ok {
		t.Fatalf("event id %q has no %q channel", id, tag)
	}
	return p
}

// newUser returns a fresh user id.
func newUser() string { return uuid.NewString() }

// mustJSON marshals v for a request body.
func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprint(err))
	}
	return string(b)
}
