package redisbroker_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	sse "github.com/ssekit/sse"
	"github.com/ssekit/sse/redisbroker"
	"github.com/ssekit/sse/sseclient"
)

// patience bounds every wait: a net for a hang on a loaded machine, never
// a performance assertion.
const patience = 20 * time.Second

// node is one hub of a cluster, as a process would run it: its own Redis
// client, its broker and hub, behind its own HTTP server. Requests name
// their user in the X-User header.
type node struct {
	rdb    *redis.Client
	broker *redisbroker.Broker
	hub    *sse.Hub
	srv    *httptest.Server
	once   sync.Once
}

// newNode starts a node on the Redis at addr under prefix; it is stopped
// at cleanup if the test did not stop it.
func newNode(t *testing.T, addr, prefix string, opts redisbroker.Options, cfg sse.Config) *node {
	t.Helper()
	// A read timeout shorter than go-redis's default (5s), so that a
	// paused Redis makes the client retry a publish it already sent.
	n := &node{rdb: redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second, ReadTimeout: time.Second})}
	opts.Prefix = prefix
	if opts.Block == 0 {
		opts.Block = 200 * time.Millisecond
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
	hub, err := sse.New(cfg)
	if err != nil {
		b.Close()
		n.rdb.Close()
		t.Fatalf("sse.New: %v", err)
	}
	n.hub = hub
	n.srv = httptest.NewServer(hub.Handler(sse.HandlerOptions{Authenticate: func(r *http.Request) (string, error) {
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

// conn is one client stream read by the sseclient decoder on its own
// goroutine, which ends when the body closes.
type conn struct {
	t      *testing.T
	events chan sseclient.Event
	done   chan struct{}
	cancel context.CancelFunc
	body   io.Closer
	err    error // why the stream ended; read after done
}

// dial opens a stream on n for user, resuming after lastID when set.
func (n *node) dial(t *testing.T, user, lastID string) *conn {
	t.Helper()
	return dialURL(t, n.srv.URL, user, lastID)
}

func dialURL(t *testing.T, url, user, lastID string) *conn {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if user != "" {
		req.Header.Set("X-User", user)
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("dial %s: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		cancel()
		resp.Body.Close()
		t.Fatalf("dial %s: status %d, want 200", url, resp.StatusCode)
	}
	c := &conn{t: t, events: make(chan sseclient.Event, 1<<14), done: make(chan struct{}), cancel: cancel, body: resp.Body}
	go func() {
		defer close(c.done)
		defer close(c.events)
		dec := sseclient.NewDecoder(resp.Body)
		for {
			ev, err := dec.Next()
			if err != nil {
				c.err = err
				return
			}
			c.events <- ev
		}
	}()
	t.Cleanup(c.close)
	return c
}

func (c *conn) close() {
	c.cancel()
	c.body.Close()
	<-c.done
}

// next returns the next event, heartbeats included.
func (c *conn) next() sseclient.Event {
	c.t.Helper()
	t := time.NewTimer(patience)
	defer t.Stop()
	select {
	case ev, ok := <-c.events:
		if !ok {
			c.t.Fatalf("stream ended (%v), want an event", c.err)
		}
		return ev
	case <-t.C:
		c.t.Fatalf("no event within %v", patience)
	}
	return sseclient.Event{}
}

// nextOf returns the next event that is not a heartbeat.
func (c *conn) nextOf() sseclient.Event {
	c.t.Helper()
	for {
		if ev := c.next(); ev.Type != sse.TypeHeartbeat {
			return ev
		}
	}
}

// connected reads the opening event and returns its data.
func (c *conn) connected() connectedData {
	c.t.Helper()
	ev := c.next()
	if ev.Type != sse.TypeConnected {
		c.t.Fatalf("first event %q, want connected", ev.Type)
	}
	var d connectedData
	if err := ev.Decode(&d); err != nil {
		c.t.Fatalf("connected data %q: %v", ev.Data, err)
	}
	return d
}

type connectedData struct {
	ClientID string `json:"client_id"`
	Resumed  bool   `json:"resumed"`
}

// take reads the next n events that are not heartbeats.
func (c *conn) take(n int) []sseclient.Event {
	c.t.Helper()
	out := make([]sseclient.Event, 0, n)
	for len(out) < n {
		out = append(out, c.nextOf())
	}
	return out
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
