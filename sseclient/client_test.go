package sseclient_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssekit/sse/internal/ssetest"
	"github.com/ssekit/sse/sseclient"
)

// serve starts a test server; it is closed when the test ends.
func serve(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// streamHeader starts an event-stream response.
func streamHeader(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	w.(http.Flusher).Flush()
}

// subscribeOnce subscribes with a client that must not retry, and returns
// what Subscribe returned.
func subscribeOnce(t *testing.T, c *sseclient.Client, url string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), ssetest.Patience)
	defer cancel()
	c.OnStateChange = func(sc sseclient.StateChange) {
		if sc.State == sseclient.StateReconnecting {
			t.Errorf("unexpected reconnect: %v", sc.Err)
			cancel()
		}
	}
	return c.Subscribe(ctx, url, func(sseclient.Event) error { return nil })
}

func TestPermanentStatus(t *testing.T) {
	t.Parallel()
	for _, code := range []int{401, 403, 404, 405, 410} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			t.Parallel()
			var n atomic.Int32
			srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
				n.Add(1)
				http.Error(w, "no", code)
			})
			c := &sseclient.Client{HTTPClient: srv.Client()}
			err := subscribeOnce(t, c, srv.URL)
			var se *sseclient.StatusError
			if !errors.As(err, &se) || se.StatusCode != code {
				t.Fatalf("Subscribe = %v, want StatusError %d", err, code)
			}
			if n.Load() != 1 {
				t.Errorf("%d requests, want 1", n.Load())
			}
		})
	}
}

func TestNoContentStops(t *testing.T) {
	t.Parallel()
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	if err := subscribeOnce(t, &sseclient.Client{HTTPClient: srv.Client()}, srv.URL); err != nil {
		t.Fatalf("Subscribe = %v, want nil", err)
	}
}

func TestWrongContentType(t *testing.T) {
	t.Parallel()
	for _, ct := range []string{"text/html", "", "text/event-streams", "application/json"} {
		srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header()["Content-Type"] = []string{ct}
			fmt.Fprint(w, "data: x\n\n")
		})
		err := subscribeOnce(t, &sseclient.Client{HTTPClient: srv.Client()}, srv.URL)
		if !errors.Is(err, sseclient.ErrContentType) {
			t.Errorf("Content-Type %q: Subscribe = %v, want ErrContentType", ct, err)
		}
	}
	// Parameters are fine.
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
		fmt.Fprint(w, "data: x\n\n")
	})
	err := sseclient.Subscribe(t.Context(), srv.URL, func(ev sseclient.Event) error { return errDone })
	if err != errDone {
		t.Errorf("with charset: Subscribe = %v, want the handler's error", err)
	}
}

var errDone = errors.New("done")

func TestRedirectLoop(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		http.Redirect(w, r, r.URL.Path, http.StatusFound)
	})
	err := subscribeOnce(t, &sseclient.Client{HTTPClient: srv.Client(), MaxRedirects: 5}, srv.URL+"/loop")
	if !errors.Is(err, sseclient.ErrTooManyRedirects) {
		t.Fatalf("Subscribe = %v, want ErrTooManyRedirects", err)
	}
	if got := n.Load(); got != 6 {
		t.Errorf("%d requests, want 6 (the first and 5 redirects)", got)
	}
}

// TestHostileSizes: a line that never ends and an event far over the limit
// end the subscription with ErrEventTooLarge; the server is cut off, not
// read to the end. (TestDecoderBoundedMemory shows how little is read.)
func TestHostileSizes(t *testing.T) {
	t.Parallel()
	chunk := strings.Repeat("x", 1000)
	tests := []struct {
		name  string
		frame string // written again and again
		max   int
	}{
		{"endless line", chunk, 64 << 10},
		{"10 MB event", "data: " + chunk + "\n", 0}, // default limit, 1 MiB
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var written atomic.Int64
			srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
				streamHeader(w)
				for range 10 << 10 { // 10 MB at most
					n, err := fmt.Fprint(w, tt.frame)
					written.Add(int64(n))
					if err != nil {
						return
					}
				}
				fmt.Fprint(w, "\n\n")
			})
			c := &sseclient.Client{HTTPClient: srv.Client(), MaxEventSize: tt.max}
			err := subscribeOnce(t, c, srv.URL)
			if !errors.Is(err, sseclient.ErrEventTooLarge) {
				t.Fatalf("Subscribe = %v, want ErrEventTooLarge", err)
			}
			t.Logf("%v (server wrote %d bytes before the client hung up)", err, written.Load())
		})
	}
}

// TestSlowDrip: a stream written one byte per write and flush parses the
// same as in one piece.
func TestSlowDrip(t *testing.T) {
	t.Parallel()
	const stream = "retry: 10\r\nid: 1\r\nevent: a\r\ndata: {\"x\":1}\r\n\r\n: c\rid: 2\rdata: two\rdata: lines\r\r"
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		streamHeader(w)
		for i := range len(stream) {
			if _, err := w.Write([]byte{stream[i]}); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			time.Sleep(time.Millisecond)
		}
	})
	var got []sseclient.Event
	err := sseclient.Subscribe(t.Context(), srv.URL, func(ev sseclient.Event) error {
		got = append(got, ev)
		if len(got) == 2 {
			return errDone
		}
		return nil
	})
	if err != errDone {
		t.Fatalf("Subscribe = %v", err)
	}
	if got, want := render(got), "1|a|{\"x\":1};2|message|two\nlines;"; got != want {
		t.Errorf("events = %q, want %q", got, want)
	}
}

// TestIdleTimeout: a server that drips bytes which never make an event is
// dropped after IdleTimeout and reported as reconnecting.
func TestIdleTimeout(t *testing.T) {
	t.Parallel()
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		streamHeader(w)
		for range 3000 { // 30 s at most
			select {
			case <-r.Context().Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
			fmt.Fprint(w, ":")
			w.(http.Flusher).Flush()
		}
	})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var reason error
	c := &sseclient.Client{
		HTTPClient:  srv.Client(),
		IdleTimeout: 100 * time.Millisecond,
		OnStateChange: func(sc sseclient.StateChange) {
			if sc.State == sseclient.StateReconnecting {
				reason = sc.Err
				cancel()
			}
		},
	}
	err := c.Subscribe(ctx, srv.URL, func(sseclient.Event) error { return nil })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Subscribe = %v, want Canceled", err)
	}
	if !errors.Is(reason, sseclient.ErrIdleTimeout) {
		t.Errorf("reconnect reason = %v, want ErrIdleTimeout", reason)
	}
}

// TestResumeSendsLastEventID: after the server ends the stream, the client
// comes back with the id of the last event that had one, and its custom
// headers.
func TestResumeSendsLastEventID(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	got := make(chan http.Header, 3)
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
		streamHeader(w)
		switch n.Add(1) {
		case 1:
			fmt.Fprint(w, "retry: 1\n\nid: 41\ndata: a\n\nid: 42\ndata: b\n\ndata: no id\n\n")
		case 2:
			fmt.Fprint(w, "data: c\n\nid: 43\n\n") // a data-less dispatch moves the id
		default:
			fmt.Fprint(w, "data: d\n\n")
		}
	})
	c := &sseclient.Client{
		HTTPClient: srv.Client(),
		Header:     http.Header{"Authorization": {"Bearer secret"}},
	}
	var evs []sseclient.Event
	err := c.Subscribe(t.Context(), srv.URL, func(ev sseclient.Event) error {
		evs = append(evs, ev)
		if string(ev.Data) == "d" {
			return errDone
		}
		return nil
	})
	if err != errDone {
		t.Fatalf("Subscribe = %v", err)
	}
	if got, want := render(evs), "41|message|a;42|message|b;42|message|no id;42|message|c;43|message|d;"; got != want {
		t.Errorf("events = %q, want %q", got, want)
	}
	for i, want := range []string{"", "42", "43"} {
		h := <-got
		if got := h.Get("Last-Event-ID"); got != want {
			t.Errorf("request %d: Last-Event-ID %q, want %q", i, got, want)
		}
		if got := h.Get("Authorization"); got != "Bearer secret" {
			t.Errorf("request %d: Authorization %q", i, got)
		}
		if got := h.Get("Accept"); got != "text/event-stream" {
			t.Errorf("request %d: Accept %q", i, got)
		}
	}
}

func TestEventsIterator(t *testing.T) {
	t.Parallel()
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		streamHeader(w)
		for i := range 100 {
			if _, err := fmt.Fprintf(w, "id: %d\ndata: %d\n\n", i, i); err != nil {
				return
			}
		}
	})
	c := &sseclient.Client{HTTPClient: srv.Client()}
	n := 0
	for ev, err := range c.Events(t.Context(), srv.URL) {
		if err != nil {
			t.Fatal(err)
		}
		if string(ev.Data) != fmt.Sprint(n) {
			t.Fatalf("event %d data %q", n, ev.Data)
		}
		if n++; n == 3 {
			break
		}
	}
	srv404 := serve(t, http.NotFound)
	for _, err := range c.Events(t.Context(), srv404.URL) {
		var se *sseclient.StatusError
		if !errors.As(err, &se) {
			t.Fatalf("err = %v, want StatusError", err)
		}
	}
}

func TestBadURL(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"ftp://x/", "://", "localhost:1/stream"} {
		if err := sseclient.Subscribe(t.Context(), u, func(sseclient.Event) error { return nil }); err == nil {
			t.Errorf("Subscribe(%q) = nil, want an error", u)
		}
	}
}
