package ssekit_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ssekit/sse/internal/ssetest"
	"github.com/ssekit/sse/ssekit"
)

// bare is a ResponseWriter with neither Flush nor Unwrap, as
// http.TimeoutHandler's is.
type bare struct{ h http.Header }

func (b *bare) Header() http.Header         { return b.h }
func (b *bare) Write(p []byte) (int, error) { return len(p), nil }
func (b *bare) WriteHeader(int)             {}

// wrapper wraps a ResponseWriter the way Echo's Response and most
// middleware do: Flush passes the flush down, Unwrap reveals what it
// wraps. Its Write goes to w when w is set, else to the wrapped writer.
type wrapper struct {
	http.ResponseWriter
	w io.Writer
}

func (x *wrapper) Write(p []byte) (int, error) {
	if x.w != nil {
		return x.w.Write(p)
	}
	return x.ResponseWriter.Write(p)
}
func (x *wrapper) Flush()                           { _ = http.NewResponseController(x.ResponseWriter).Flush() }
func (x *wrapper) Unwrap() http.ResponseWriter      { return x.ResponseWriter }
func (x *unwrapOnly) Unwrap() http.ResponseWriter   { return x.ResponseWriter }
func (x *hiding) Unwrap() http.ResponseWriter       { return nil }
func (x *selfWrapping) Unwrap() http.ResponseWriter { return x }

// unwrapOnly has Unwrap and no Flush: http.ResponseController flushes
// what it wraps.
type unwrapOnly struct{ http.ResponseWriter }

// hiding unwraps to nothing, so its own Flush (it has none) decides.
type hiding struct{ http.ResponseWriter }

// selfWrapping unwraps to itself, for ever.
type selfWrapping struct{ http.ResponseWriter }

func (x *selfWrapping) Flush() {}

// SetWriteDeadline stops http.ResponseController's own walk down Unwrap,
// which would not end either.
func (x *selfWrapping) SetWriteDeadline(time.Time) error { return nil }

// capped copies up to limit bytes of the body into buf, as Echo v5's
// BodyDump does by default.
type capped struct {
	rw    http.ResponseWriter
	buf   *bytes.Buffer
	limit int
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.limit - c.buf.Len(); room > 0 {
		c.buf.Write(p[:min(len(p), room)])
	}
	return c.rw.Write(p)
}

// staging keeps a buffer of its own until its first flush, as Echo's
// Gzip does, and compresses through a gzip.Writer.
type staging struct {
	io.Writer
	http.ResponseWriter
	buffer *bytes.Buffer
}

func (s *staging) Write(p []byte) (int, error) { return s.Writer.Write(p) }
func (s *staging) Flush()                      { _ = http.NewResponseController(s.ResponseWriter).Flush() }
func (s *staging) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Each writer either carries a stream (200 text/event-stream) or is
// refused with 500 stream_unsupported naming the writer and the reason.
func TestWhichWritersCanStream(t *testing.T) {
	t.Parallel()
	rec := func() http.ResponseWriter { return httptest.NewRecorder() }
	// A buffer of each case's own: the cases run in parallel, and a
	// refusal writes its body through the chain.
	buf := func() *bytes.Buffer { return new(bytes.Buffer) }
	var sb strings.Builder
	const noFlush, copies = "cannot flush", "copies the body into memory"
	cases := []struct {
		name       string
		w          http.ResponseWriter
		wantWriter string // "" when w can stream
		wantWhy    string
	}{
		{name: "the server's writer", w: rec()},
		{name: "no Flush, no Unwrap", w: &bare{h: http.Header{}}, wantWriter: "*ssekit_test.bare", wantWhy: noFlush},
		{name: "a flushing wrapper over one that cannot flush", w: &wrapper{ResponseWriter: &wrapper{ResponseWriter: &bare{h: http.Header{}}}}, wantWriter: "*ssekit_test.bare", wantWhy: noFlush},
		{name: "Unwrap without Flush over one that can", w: &unwrapOnly{rec()}},
		{name: "Unwrap to nil without Flush", w: &hiding{rec()}, wantWriter: "*ssekit_test.hiding", wantWhy: noFlush},
		{name: "unwraps to itself", w: &selfWrapping{rec()}},
		{name: "tee into a bytes.Buffer", w: &wrapper{ResponseWriter: rec(), w: io.MultiWriter(io.Discard, buf())}, wantWriter: "*ssekit_test.wrapper", wantWhy: copies},
		{name: "tee into a strings.Builder", w: &wrapper{ResponseWriter: rec(), w: io.MultiWriter(io.Discard, &sb)}, wantWriter: "*ssekit_test.wrapper", wantWhy: copies},
		{name: "capped copy", w: &unwrapOnly{&wrapper{ResponseWriter: rec(), w: &capped{rw: rec(), buf: buf(), limit: 5 << 20}}}, wantWriter: "*ssekit_test.wrapper", wantWhy: copies},
		{name: "a tee deeper in the chain", w: &wrapper{ResponseWriter: &wrapper{ResponseWriter: rec(), w: io.MultiWriter(io.Discard, buf())}}, wantWriter: "*ssekit_test.wrapper", wantWhy: copies},
		{name: "staging buffer and gzip", w: func() http.ResponseWriter {
			r := rec()
			return &staging{Writer: gzip.NewWriter(r), ResponseWriter: r, buffer: new(bytes.Buffer)}
		}()},
		{name: "bufio", w: func() http.ResponseWriter { r := rec(); return &wrapper{ResponseWriter: r, w: bufio.NewWriter(r)} }()},
		// chi's WrapResponseWriter.Tee(&buf): the buffer itself in a
		// writer field, where Gzip's is declared as a buffer.
		{name: "a buffer as a writer field", w: &wrapper{ResponseWriter: rec(), w: buf()}, wantWriter: "*ssekit_test.wrapper", wantWhy: copies},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var log ssetest.Log
			hub := streamableHub(t, false, &log)
			// A client already gone: a stream that starts ends at once.
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			hub.ServeStream(tc.w, httptest.NewRequest(http.MethodGet, "/stream", nil).WithContext(ctx), "")
			refused := log.Count("stream refused")
			if tc.wantWriter == "" {
				if refused != 0 || tc.w.Header().Get("Content-Type") != "text/event-stream" {
					t.Fatalf("not served as a stream:\n%s", log.String())
				}
				return
			}
			if refused != 1 || !strings.Contains(log.String(), "writer="+tc.wantWriter) || !strings.Contains(log.String(), tc.wantWhy) {
				t.Fatalf("want one refusal naming %s, %q:\n%s", tc.wantWriter, tc.wantWhy, log.String())
			}
			if got := tc.w.Header().Get("Content-Type"); got != "application/json" {
				t.Fatalf("refusal Content-Type %q", got)
			}
		})
	}
}

// streamableHub returns a hub logging into log, closed at cleanup.
func streamableHub(t *testing.T, detach bool, log *ssetest.Log) *ssekit.Hub {
	t.Helper()
	h := ssekit.NewHub(ssekit.Config{DetachStreams: detach, Logger: slog.New(slog.NewTextHandler(log, nil))})
	t.Cleanup(func() { h.Close() })
	return h
}

// serveHub serves handler until the test ends, closing hub first (an open
// stream would hold httptest.Server.Close).
func serveHub(t *testing.T, hub *ssekit.Hub, handler http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(handler)
	t.Cleanup(func() {
		hub.Close()
		srv.Close()
	})
	return srv
}

// A plain net/http app with http.TimeoutHandler around the stream gets a
// 500 that says why and one log line, not a panic or a silent stream;
// detached or not.
func TestStreamThroughTimeoutHandlerIsRefused(t *testing.T) {
	t.Parallel()
	for _, detach := range []bool{false, true} {
		t.Run(map[bool]string{false: "attached", true: "detached"}[detach], func(t *testing.T) {
			t.Parallel()
			var log ssetest.Log
			hub := streamableHub(t, detach, &log)
			srv := serveHub(t, hub, http.TimeoutHandler(hub.Handler(ssekit.HandlerOptions{}), time.Minute, "timeout"))
			resp, err := http.Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body ssekit.ErrorBody
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusInternalServerError || body.Error != ssekit.CodeStreamUnsupported || !strings.Contains(body.Message, "*http.timeoutWriter cannot flush") {
				t.Fatalf("got %d %+v, want 500 %s naming *http.timeoutWriter", resp.StatusCode, body, ssekit.CodeStreamUnsupported)
			}
			if got := log.Count("stream refused"); got != 1 {
				t.Fatalf("%d refusal lines, want 1:\n%s", got, log.String())
			}
			if !strings.Contains(log.String(), "writer=*http.timeoutWriter") {
				t.Fatalf("the log line does not name the writer:\n%s", log.String())
			}
			if got := hub.GetTotalClientCount(); got != 0 {
				t.Fatalf("GetTotalClientCount = %d after a refusal", got)
			}
		})
	}
}

// A request with a deadline is served, and warned about once per hub, not
// once per stream.
func TestStreamRequestDeadlineWarnsOncePerHub(t *testing.T) {
	t.Parallel()
	withDeadline := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithTimeout(r.Context(), time.Hour)
			defer cancel()
			h.ServeHTTP(w, r.WithContext(ctx))
		})
	}
	const warning = "a stream request has a deadline"
	var log ssetest.Log
	for range 2 { // two hubs, each warning once
		hub := streamableHub(t, false, &log)
		srv := serveHub(t, hub, withDeadline(hub.Handler(ssekit.HandlerOptions{})))
		for range 3 {
			readConnected(t, srv.URL)
		}
	}
	if got := log.Count(warning); got != 2 {
		t.Fatalf("%d deadline warnings for 2 hubs of 3 streams each, want 2:\n%s", got, log.String())
	}
}

// readConnected opens a stream at url, reads up to its connected event and
// hangs up.
func readConnected(t *testing.T, url string) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if sc.Text() == "event: connected" {
			return
		}
	}
	t.Fatalf("stream ended before its connected event: %v", sc.Err())
}

// echoLike flushes the way Echo's Response does: it panics when what it
// wraps cannot flush.
type echoLike struct{ http.ResponseWriter }

func (e *echoLike) Flush() {
	f, ok := e.ResponseWriter.(http.Flusher)
	if !ok {
		panic("response writer does not support flushing")
	}
	f.Flush()
}
func (e *echoLike) Unwrap() http.ResponseWriter { return e.ResponseWriter }

// A refusal with a retry hint — Refuse, or an Identify that answers
// TryLater — through a writer that cannot flush is written as the
// handler returns, never a panic in the writer's Flush.
func TestRefusalThroughAWriterThatCannotFlush(t *testing.T) {
	t.Parallel()
	hub := streamableHub(t, false, new(ssetest.Log))
	for name, serve := range map[string]func(w http.ResponseWriter, r *http.Request){
		"Refuse": func(w http.ResponseWriter, r *http.Request) { hub.Refuse(w, time.Second) },
		"TryLater": hub.Handler(ssekit.HandlerOptions{Identify: func(*http.Request) (ssekit.Identity, error) {
			return ssekit.Identity{}, &ssekit.TryLater{After: time.Second}
		}}).ServeHTTP,
	} {
		b := &bare{h: http.Header{}}
		serve(&echoLike{b}, httptest.NewRequest(http.MethodGet, "/stream", nil))
		if got := b.h.Get("Retry-After"); got == "" {
			t.Errorf("%s: no retry hint (headers %v)", name, b.h)
		}
	}
}
