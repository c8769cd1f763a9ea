package redisbroker_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ssekit/sse/internal/ssetest"
	"github.com/ssekit/sse/redisbroker"
	"github.com/ssekit/sse/sseclient"
	"github.com/ssekit/sse/ssekit"
)

// node is one hub of a cluster, as a process would run it: its own Redis
// client, its broker and hub, behind its own HTTP server. Requests name
// their user in the X-User header.
type node struct {
	rdb    redis.UniversalClient
	broker *redisbroker.Broker
	hub    *ssekit.Hub
	srv    *httptest.Server
	once   sync.Once
}

// newNode starts a node on a client of be under prefix; it is stopped at
// cleanup if the test did not stop it.
func newNode(t *testing.T, be backend, prefix string, opts redisbroker.Options, cfg ssekit.Config) *node {
	t.Helper()
	n := &node{rdb: be.client(t)}
	opts.Prefix = prefix
	if opts.Linger == 0 {
		opts.Linger = 200 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	b, err := redisbroker.New(n.rdb, opts)
	if err != nil {
		n.rdb.Close()
		t.Fatal(err)
	}
	n.broker = b
	cfg.Broker = b
	if cfg.BufferSize == 0 {
		cfg.BufferSize = 4096 // these tests publish in bursts; overflow is tested elsewhere
	}
	cfg.Logger = opts.Logger
	hub, err := ssekit.New(cfg)
	if err != nil {
		b.Close()
		n.rdb.Close()
		t.Fatalf("ssekit.New: %v", err)
	}
	n.hub = hub
	n.srv = httptest.NewServer(hub.Handler(ssekit.HandlerOptions{Authenticate: func(r *http.Request) (string, error) {
		return r.Header.Get("X-User"), nil
	}}))
	t.Cleanup(n.stop)
	return n
}

// stop stops the node in the order a process would: hub (ending its
// streams), server, broker, then the Redis client.
func (n *node) stop() {
	n.once.Do(func() {
		n.hub.Close()
		n.srv.Close()
		n.broker.Close()
		n.rdb.Close()
	})
}

// testLogger sends the brokers' and hubs' logs to the test log, so that a
// failure shows what the cluster said.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlogWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tlogWriter struct{ t *testing.T }

func (w tlogWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", p)
	return len(p), nil
}

// conn is a client stream of the tests.
type conn = ssetest.Conn

// dial opens a stream on n for user, resuming after lastID when set.
func (n *node) dial(t *testing.T, user, lastID string) *conn {
	t.Helper()
	return ssetest.DialOK(t, n.srv.URL, user, lastID)
}

// seqOf returns the "seq" of an event's data written by the tests.
func seqOf(t *testing.T, ev sseclient.Event) int {
	t.Helper()
	var d struct{ Seq int }
	if err := json.Unmarshal(ev.Data, &d); err != nil {
		t.Fatalf("event %s %q: %v", ev.Type, ev.Data, err)
	}
	return d.Seq
}

// serverBackend is a backend on a private redis-server at addr. Its
// clients' read timeout is shorter than go-redis's default (5s), so that
// a paused Redis makes the client retry a publish it already sent.
func serverBackend(addr string) backend {
	return backend{name: "private", client: func(t testing.TB) redis.UniversalClient {
		c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second, ReadTimeout: time.Second})
		t.Cleanup(func() { c.Close() })
		return c
	}}
}
