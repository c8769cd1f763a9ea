package sseclient

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// reply is one scripted response.
type reply struct {
	status int
	header map[string]string
	body   string
}

// script is an http.RoundTripper that answers each request with the next
// reply, 204 once they run out, and records when each request came (on
// synctest's fake clock).
type script struct {
	mu      sync.Mutex
	replies []reply
	reqs    []*http.Request
	times   []time.Time
}

func (s *script) RoundTrip(req *http.Request) (*http.Response, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs = append(s.reqs, req)
	s.times = append(s.times, time.Now())
	r := reply{status: http.StatusNoContent}
	if len(s.replies) > 0 {
		r, s.replies = s.replies[0], s.replies[1:]
	}
	resp := &http.Response{
		StatusCode: r.status,
		Status:     http.StatusText(r.status),
		Header:     http.Header{"Content-Type": {"text/event-stream"}},
		Body:       io.NopCloser(strings.NewReader(r.body)),
		Request:    req,
	}
	for k, v := range r.header {
		resp.Header.Set(k, v)
	}
	return resp, nil
}

// gaps returns the time between consecutive requests.
func (s *script) gaps() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var g []time.Duration
	for i := 1; i < len(s.times); i++ {
		g = append(g, s.times[i].Sub(s.times[i-1]))
	}
	return g
}

// TestReconnectSchedule runs a whole subscription on synctest's fake clock
// with the jitter pinned to its bound, so that every delay is exact: the
// server's retry sets the base, failures double it, a connection that
// delivered an event resets it, and Retry-After wins when longer.
func TestReconnectSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &script{replies: []reply{
			{status: 200, body: "retry: 1000\nid: 5\ndata: a\n\n"}, // delivers, then EOF
			{status: 200},                      // no event: a failure
			{status: 500},                      // a failure
			{status: 200, body: "data: b\n\n"}, // delivers: reset
			{status: 503, header: map[string]string{"Retry-After": "10"}},
			{status: 429}, // no Retry-After: plain backoff
		}}
		var states []StateChange
		var events []Event
		c := &Client{
			HTTPClient:    &http.Client{Transport: s},
			LastEventID:   "start",
			randN:         func(n int64) int64 { return n - 1 },
			OnStateChange: func(sc StateChange) { states = append(states, sc) },
		}
		err := c.Subscribe(t.Context(), "http://hub.test/stream", func(ev Event) error {
			events = append(events, ev)
			return nil
		})
		if err != nil {
			t.Fatalf("Subscribe = %v, want nil after 204", err)
		}
		wantGaps := []time.Duration{1, 2, 4, 1, 10, 4}
		gaps := s.gaps()
		if len(gaps) != len(wantGaps) {
			t.Fatalf("gaps = %v, want %v s", gaps, wantGaps)
		}
		for i := range wantGaps {
			if gaps[i] != wantGaps[i]*time.Second {
				t.Fatalf("gaps = %v, want %v s", gaps, wantGaps)
			}
		}
		wantIDs := []string{"start", "5", "5", "5", "5", "5", "5"}
		for i, req := range s.reqs {
			if got := req.Header.Get("Last-Event-ID"); got != wantIDs[i] {
				t.Errorf("request %d Last-Event-ID = %q, want %q", i, got, wantIDs[i])
			}
		}
		if len(events) != 2 || events[0].ID != "5" || events[1].ID != "5" || string(events[1].Data) != "b" {
			t.Errorf("events = %+v, want a (id 5) and b inheriting id 5", events)
		}
		var reconnects []StateChange
		for _, sc := range states {
			if sc.State == StateReconnecting {
				reconnects = append(reconnects, sc)
			}
		}
		if len(reconnects) != len(gaps) {
			t.Fatalf("%d reconnecting states for %d gaps", len(reconnects), len(gaps))
		}
		for i, sc := range reconnects {
			if sc.Delay != gaps[i] {
				t.Errorf("reconnect %d: Delay %v, but waited %v", i, sc.Delay, gaps[i])
			}
		}
		if !errors.Is(reconnects[0].Err, ErrStreamClosed) {
			t.Errorf("first reconnect Err = %v, want ErrStreamClosed", reconnects[0].Err)
		}
		var se *StatusError
		if !errors.As(reconnects[4].Err, &se) || se.StatusCode != 503 || se.RetryAfter != 10*time.Second {
			t.Errorf("fifth reconnect Err = %v, want 503 with RetryAfter 10s", reconnects[4].Err)
		}
		if states[0].State != StateConnected || !states[0].Resumed || states[0].LastEventID != "start" {
			t.Errorf("first state = %+v, want connected, resumed from start", states[0])
		}
	})
}

// TestCancelWhileWaiting: cancelling ctx during a delay returns at once,
// with ctx's error, against a server that always fails.
func TestCancelWhileWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var replies []reply
		for range 1000 {
			replies = append(replies, reply{status: 502})
		}
		s := &script{replies: replies}
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		c := &Client{HTTPClient: &http.Client{Transport: s}, MaxDelay: 5 * time.Second}
		err := c.Subscribe(ctx, "http://hub.test/stream", func(Event) error { return nil })
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Subscribe = %v, want DeadlineExceeded", err)
		}
		for i, g := range s.gaps() {
			if g > 5*time.Second {
				t.Fatalf("gap %d = %v, over MaxDelay 5s", i, g)
			}
		}
		if n := len(s.reqs); n < 12 {
			t.Errorf("%d requests in a minute with delays ≤ 5s; want at least 12", n)
		}
	})
}
