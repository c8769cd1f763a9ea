package ssekit_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ssekit/sse/internal/ssetest"
	"github.com/ssekit/sse/ssekit"
)

// testHub is a hub behind a real HTTP server. Requests name their user in
// the X-User header (or ?user=), a stand-in for the app's auth middleware.
type testHub struct {
	*ssekit.Hub
	srv *httptest.Server
}

// detachAll runs every stream of the suite's test hubs detached from
// net/http (Config.DetachStreams); see ssetest.Detach.
var detachAll = ssetest.Detach

func newTestHub(t *testing.T, cfg ssekit.Config) *testHub {
	t.Helper()
	cfg.DetachStreams = cfg.DetachStreams || detachAll
	hub, err := ssekit.New(cfg)
	if err != nil {
		t.Fatalf("ssekit.New: %v", err)
	}
	h := hub.Handler(ssekit.HandlerOptions{Authenticate: headerUser})
	srv := httptest.NewServer(h)
	// The hub first: httptest.Server.Close waits for open streams.
	t.Cleanup(func() {
		hub.Close()
		srv.Close()
	})
	return &testHub{Hub: hub, srv: srv}
}

func headerUser(r *http.Request) (string, error) {
	if u := r.Header.Get("X-User"); u != "" {
		if u == "bad" {
			return "", errors.New("bad credentials")
		}
		return u, nil
	}
	return r.URL.Query().Get("user"), nil
}

// conn is a client stream of the tests.
type conn = ssetest.Conn

// dial opens a stream for user ("" for anonymous), resuming after lastID
// when it is not empty, and fails the test unless it is served.
func (h *testHub) dial(t *testing.T, user, lastID string) *conn {
	t.Helper()
	return ssetest.DialOK(t, h.srv.URL, user, lastID)
}

// dialURL opens a stream at url without checking its status.
func dialURL(t *testing.T, url, user, lastID string) *conn {
	t.Helper()
	return ssetest.Dial(t, url, user, lastID)
}

// rawUntil reads the raw bytes of a stream up to and including the first
// blank line after want appears, for wire-format assertions.
func rawUntil(t *testing.T, body io.Reader, want string) string {
	t.Helper()
	var b strings.Builder
	r := bufio.NewReader(body)
	found := false
	for {
		line, err := r.ReadString('\n')
		b.WriteString(line)
		if strings.Contains(line, want) {
			found = true
		}
		if found && line == "\n" {
			return b.String()
		}
		if err != nil {
			t.Fatalf("stream ended before %q: %v; got %q", want, err, b.String())
		}
	}
}

func jsonDecode(resp *http.Response, v any) error { return json.NewDecoder(resp.Body).Decode(v) }
