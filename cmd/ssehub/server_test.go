package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ssekit/sse/internal/ssetest"
)

var testEnv = map[string]string{"SSEHUB_JWT_SECRET": testSecret, "SSEHUB_PUBLISH_KEY": testKey}

// TestShutdownEndsStreams runs the server in-process, as main does, and
// cancels its context as SIGTERM does: every stream must end cleanly (the
// client sees the end of the stream, with a retry hint) and run must
// return nil.
func TestShutdownEndsStreams(t *testing.T) {
	t.Parallel()
	r := startRun(t, nil, testEnv)
	var streams []*stream
	for range 3 {
		s := openStream(t, r.url+"/sse/stream", bearerAuth(token(t, newUser())))
		s.nextOf(t, "connected")
		streams = append(streams, s)
	}
	r.cancel()
	for i, s := range streams {
		for {
			_, err := s.next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("stream %d: %v, want a clean end of stream", i, err)
			}
		}
	}
	if err := r.stop(); err != nil {
		t.Fatalf("run: %v, want nil after a shutdown", err)
	}
	for _, want := range []string{`"msg":"shutting down"`, `"msg":"stopped"`} {
		if !strings.Contains(r.logs.String(), want) {
			t.Errorf("logs lack %s", want)
		}
	}
	if _, err := http.Get(r.url + "/healthz"); err == nil {
		t.Errorf("server still accepts after shutdown")
	}
}

// TestSlowHeadersAreCut checks that a client trickling its headers
// (slowloris) has its connection closed by the server.
func TestSlowHeadersAreCut(t *testing.T) {
	t.Parallel()
	c := testConfig(t)
	srv := newHTTPServer(c, http.NotFoundHandler(), slog.New(slog.DiscardHandler))
	if srv.ReadHeaderTimeout <= 0 || srv.ReadTimeout <= 0 || srv.IdleTimeout <= 0 || srv.MaxHeaderBytes <= 0 {
		t.Errorf("server timeouts not all set: %+v", srv)
	}
	if srv.WriteTimeout != 0 {
		t.Errorf("WriteTimeout %v would cut every stream", srv.WriteTimeout)
	}

	r := startRun(t, []string{"--read-header-timeout", "200ms"}, testEnv)
	conn, err := net.Dial("tcp", strings.TrimPrefix(r.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(ssetest.Patience))
	// The server answers 408 or just closes; either way the read ends
	// with EOF, not with our own deadline.
	b, err := io.ReadAll(conn)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("connection still open with half the headers sent")
	}
	if len(b) > 0 && !bytes.Contains(b, []byte("408")) {
		t.Errorf("got %q, want a 408 or a closed connection", b)
	}
}

// TestStreamOutlivesReadTimeout checks that a stream is not cut by the
// server's read timeout, which is meant for request bodies: net/http
// clears the deadline once a bodiless request is read, and the server
// relies on that.
func TestStreamOutlivesReadTimeout(t *testing.T) {
	t.Parallel()
	r := startRun(t, []string{"--read-timeout", "100ms"}, testEnv)
	user := newUser()
	s := openStream(t, r.url+"/sse/stream", bearerAuth(token(t, user)))
	s.nextOf(t, "connected")
	time.Sleep(500 * time.Millisecond) // well past the read timeout
	if status, out := publish(t, r.url, testKey, `{"users":["`+user+`"],"type":"later"}`); status != 200 {
		t.Fatalf("publish: %d %v", status, out)
	}
	s.nextOf(t, "later")
}

func TestListenErrorNamesAddr(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = run(t.Context(), []string{"--addr", ln.Addr().String()}, func(k string) string { return testEnv[k] }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--addr (SSEHUB_ADDR)") {
		t.Fatalf("err = %v, want one naming --addr", err)
	}
}

// TestRedisURLNeedsCluster checks that a Redis URL is handed to cluster
// mode, whose failure stops start-up instead of running on one node.
func TestRedisURLNeedsCluster(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), ssetest.Patience)
	defer cancel()
	env := map[string]string{"SSEHUB_REDIS_URL": "redis://:hunter2@127.0.0.1:1/0", "SSEHUB_JWT_SECRET": testSecret, "SSEHUB_PUBLISH_KEY": testKey}
	err := run(ctx, []string{"--addr", "127.0.0.1:0"}, func(k string) string { return env[k] }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--redis-url") {
		t.Fatalf("err = %v, want one naming --redis-url", err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error leaks the Redis password: %v", err)
	}
}

// TestDevModeAnnounced checks that dev mode says so loudly in both log
// formats: the text banner, for a person at a terminal, shows the
// generated secrets; the JSON warning, for a log pipeline that many
// people and systems read, never does.
func TestDevModeAnnounced(t *testing.T) {
	t.Parallel()
	t.Run("text", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		var logs syncBuffer
		done := make(chan error, 1)
		go func() {
			done <- run(ctx, []string{"--dev", "--addr", "127.0.0.1:0", "--log-format", "text"}, noEnv, io.Discard, &logs)
		}()
		deadline := time.Now().Add(ssetest.Patience)
		for !strings.Contains(logs.String(), "listening") && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("run: %v", err)
		}
		for _, w := range []string{"DEV MODE", "SSEHUB_JWT_SECRET=", "SSEHUB_PUBLISH_KEY="} {
			if !strings.Contains(logs.String(), w) {
				t.Errorf("output lacks %q:\n%s", w, logs.String())
			}
		}
	})
	t.Run("json", func(t *testing.T) {
		r := startRun(t, []string{"--dev"}, nil)
		// The key a page gets with its token: the one the hub generated.
		req, _ := http.NewRequest(http.MethodPost, r.url+"/demo/token", strings.NewReader(`{}`))
		status, out := doJSON(t, req)
		key, _ := out["publish_key"].(string)
		if status != http.StatusOK || len(key) < minPublishKeyLen {
			t.Fatalf("POST /demo/token: %d %v", status, out)
		}
		if err := r.stop(); err != nil {
			t.Fatal(err)
		}
		logs := r.logs.String()
		if !strings.Contains(logs, "DEV MODE") {
			t.Errorf("logs lack the DEV MODE warning:\n%s", logs)
		}
		for _, leak := range []string{key, "jwt_secret", "publish_key"} {
			if strings.Contains(logs, leak) {
				t.Errorf("JSON logs contain %q:\n%s", leak, logs)
			}
		}
	})
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	lw lineWriter
}

func (b *syncBuffer) Write(p []byte) (int, error) { return b.lw.Write(p) }
func (b *syncBuffer) String() string              { return b.lw.String() }

// TestStreamIsNeverStored checks that ssehub's streams, served detached
// from net/http as ssehub serves them by default, say no-store: a user's
// events are personal data that no cache or proxy may keep.
func TestStreamIsNeverStored(t *testing.T) {
	t.Parallel()
	r := startRun(t, nil, testEnv)
	s := openStream(t, r.url+"/sse/stream", bearerAuth(token(t, newUser())))
	if got, want := s.resp.Header.Get("Cache-Control"), "no-cache, no-store"; got != want {
		t.Errorf("Cache-Control %q, want %q", got, want)
	}
}

// TestDevModeOffLoopbackWarns checks that a dev hub told to listen on
// every interface says that anyone who reaches it can mint tokens: the
// Host check of /demo/token stops browsers, not other clients.
func TestDevModeOffLoopbackWarns(t *testing.T) {
	t.Parallel()
	const warning = "DEV MODE on a non-loopback address"
	exposed := startRun(t, []string{"--dev", "--addr", "0.0.0.0:0"}, nil)
	local := startRun(t, []string{"--dev"}, nil) // startRun's 127.0.0.1:0
	for _, r := range []*running{exposed, local} {
		if err := r.stop(); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.Contains(exposed.logs.String(), warning) {
		t.Errorf("dev hub on 0.0.0.0 did not warn:\n%s", exposed.logs)
	}
	if strings.Contains(local.logs.String(), warning) {
		t.Errorf("dev hub on loopback warned:\n%s", local.logs)
	}
}
