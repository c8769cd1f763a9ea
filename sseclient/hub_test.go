package sseclient_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ssekit/sse/internal/ssetest"
	"github.com/ssekit/sse/sseclient"
	"github.com/ssekit/sse/ssekit"
)

// startHub serves a hub over real HTTP. Requests authenticate with
// "Authorization: Bearer <user id>". The hub is closed before the server,
// or the server's Close would wait on the open streams.
func startHub(t *testing.T, cfg ssekit.Config) (*ssekit.Hub, *httptest.Server) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	hub, err := ssekit.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(hub.Handler(ssekit.HandlerOptions{
		Authenticate: func(r *http.Request) (string, error) {
			return strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "), nil
		},
		RequireAuth: true,
	}))
	t.Cleanup(func() {
		hub.Close()
		srv.Close()
	})
	return hub, srv
}

// userClient returns a client for user u of srv.
func userClient(srv *httptest.Server, u string) *sseclient.Client {
	return &sseclient.Client{
		HTTPClient: srv.Client(),
		Header:     http.Header{"Authorization": {"Bearer " + u}},
	}
}

// run is one subscription to the hub whose events of type "n" carry a
// sequence number and whose "end" event stops it.
type run struct {
	seqs     []int
	ids      []string
	resumed  int // connections that resumed with Last-Event-ID
	resyncs  int
	conns    int
	connects chan struct{} // one value per connection, for the publisher
}

// subscribe runs c against srv until the "end" event, in the test's
// goroutine, with publish running alongside from the first connection.
func (r *run) subscribe(t *testing.T, c *sseclient.Client, url string, publish func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	r.connects = make(chan struct{}, 1000)
	c.OnStateChange = func(sc sseclient.StateChange) {
		switch sc.State {
		case sseclient.StateConnected:
			r.conns++
			if sc.Resumed {
				r.resumed++
			}
		case sseclient.StateResync:
			r.resyncs++
		}
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	started := false
	err := c.Subscribe(ctx, url, func(ev sseclient.Event) error {
		switch ev.Type {
		case ssekit.TypeConnected:
			r.connects <- struct{}{}
			if !started {
				started = true
				wg.Go(publish)
			}
		case "n":
			var n int
			if err := ev.Decode(&n); err != nil {
				return err
			}
			r.seqs = append(r.seqs, n)
			r.ids = append(r.ids, ev.ID)
		case "end":
			return errDone
		}
		return nil
	})
	if err != errDone {
		cancel()
		t.Fatalf("Subscribe = %v", err)
	}
}

// checkSeq fails unless the run saw exactly 0..n-1 in order, with
// increasing ids.
func (r *run) checkSeq(t *testing.T, n int) {
	t.Helper()
	for i, s := range r.seqs {
		if s != i {
			t.Fatalf("event %d has seq %d (gap or duplicate); seqs around it: %v", i, s, r.seqs[max(0, i-3):min(len(r.seqs), i+3)])
		}
		if i > 0 && !ssetest.Moved(r.ids[i-1], r.ids[i]) {
			t.Fatalf("ids not increasing: %q then %q", r.ids[i-1], r.ids[i])
		}
	}
	if len(r.seqs) != n {
		t.Fatalf("got %d events, want %d", len(r.seqs), n)
	}
}

func publishN(t *testing.T, hub *ssekit.Hub, user string, from, n int) {
	for i := from; i < from+n; i++ {
		if _, err := hub.Publish(context.Background(), ssekit.Target{Users: []string{user}}, ssekit.Event{Type: "n", Data: i}); err != nil {
			t.Errorf("publish %d: %v", i, err)
			return
		}
	}
}

func publishEnd(t *testing.T, hub *ssekit.Hub, user string) {
	if _, err := hub.Publish(context.Background(), ssekit.Target{Users: []string{user}}, ssekit.Event{Type: "end"}); err != nil {
		t.Errorf("publish end: %v", err)
	}
}

// TestHubInOrder: every event published to the user arrives once, in
// order, with increasing ids; events for another user do not arrive.
func TestHubInOrder(t *testing.T) {
	t.Parallel()
	hub, srv := startHub(t, ssekit.Config{BufferSize: 4096})
	const n = 1000
	var r run
	r.subscribe(t, userClient(srv, "u1"), srv.URL, func() {
		for i := range n {
			publishN(t, hub, "u1", i, 1)
			if i%10 == 0 {
				publishN(t, hub, "u2", -1, 1)
			}
		}
		publishEnd(t, hub, "u1")
	})
	r.checkSeq(t, n)
	if r.conns != 1 {
		t.Errorf("%d connections, want 1", r.conns)
	}
}

// TestHubResumeAfterRotation: the hub ends streams after MaxStreamAge; the
// client resumes each time and the sequence it hands over has no gap and
// no duplicate.
func TestHubResumeAfterRotation(t *testing.T) {
	t.Parallel()
	// A buffer that bursts of 5 cannot fill, so that every end is a
	// rotation (overflow has its own test below).
	hub, srv := startHub(t, ssekit.Config{MaxStreamAge: 20 * time.Millisecond, RetryInterval: time.Millisecond, HistorySize: 10000, BufferSize: 1000})
	var r run
	sent := 0
	r.subscribe(t, userClient(srv, "u1"), srv.URL, func() {
		// Publish until the client has come back at least 3 times, bounded.
		deadline := time.Now().Add(ssetest.Patience)
		for reconnects := 0; reconnects < 4 && sent < 5000 && time.Now().Before(deadline); {
			publishN(t, hub, "u1", sent, 5)
			sent += 5
			select {
			case <-r.connects:
				reconnects++
			case <-time.After(time.Millisecond):
			}
		}
		publishEnd(t, hub, "u1")
	})
	r.checkSeq(t, sent)
	if r.resumed < 3 {
		t.Errorf("%d resumed connections, want at least 3", r.resumed)
	}
	if got := hub.Stats().Disconnects[ssekit.ReasonRotated]; got < 3 {
		t.Errorf("%d rotations, want at least 3", got)
	}
	t.Logf("%d events over %d connections (%d resumed)", sent, r.conns, r.resumed)
}

// TestHubResumeAfterOverflow: bursts overflow a one-event buffer, the hub
// disconnects the client, and the client resumes with nothing lost or
// repeated.
func TestHubResumeAfterOverflow(t *testing.T) {
	t.Parallel()
	hub, srv := startHub(t, ssekit.Config{BufferSize: 1, RetryInterval: time.Millisecond, HistorySize: 100000})
	var r run
	sent := 0
	r.subscribe(t, userClient(srv, "u1"), srv.URL, func() {
		<-r.connects // the first connection
		for burst := 0; burst < 200 && hub.Stats().Disconnects[ssekit.ReasonOverflow] < 3; burst++ {
			publishN(t, hub, "u1", sent, 200)
			sent += 200
			select {
			case <-r.connects:
			case <-time.After(5 * time.Second):
			}
		}
		publishEnd(t, hub, "u1")
	})
	r.checkSeq(t, sent)
	if got := hub.Stats().Disconnects[ssekit.ReasonOverflow]; got < 1 {
		t.Errorf("no overflow disconnect: the test did not test resuming")
	}
	t.Logf("%d events over %d connections (%d resumed), %d overflows", sent, r.conns, r.resumed, hub.Stats().Disconnects[ssekit.ReasonOverflow])
}

// TestHubResync: an unknown Last-Event-ID gets a resync event that moves
// the client to the head, and live events follow.
func TestHubResync(t *testing.T) {
	t.Parallel()
	broker := ssekit.NewMemoryBroker(1000, 10*time.Minute) // the hub's default history
	t.Cleanup(func() { broker.Close() })
	hub, srv := startHub(t, ssekit.Config{Broker: broker})
	publishN(t, hub, "u1", -1, 3) // history the client will not see
	pos, err := broker.Head(t.Context(), ssekit.BroadcastChannel)
	if err != nil {
		t.Fatal(err)
	}
	head := "a" + pos + ".u" + pos // the memory broker's head is every channel's
	c := userClient(srv, "u1")
	c.LastEventID = "1-999" // another epoch: unknown
	var r run
	r.subscribe(t, c, srv.URL, func() { publishN(t, hub, "u1", 0, 5); publishEnd(t, hub, "u1") })
	r.checkSeq(t, 5)
	if r.resyncs != 1 || r.resumed != 1 {
		t.Errorf("resyncs %d, resumed connections %d; want 1 and 1", r.resyncs, r.resumed)
	}
	if !ssetest.Moved(head, r.ids[0]) {
		t.Errorf("first event id %q not after the head %q", r.ids[0], head)
	}
}

// TestHubResyncEvent checks the resync event itself: its id is the head
// and its data says why.
func TestHubResyncEvent(t *testing.T) {
	t.Parallel()
	broker := ssekit.NewMemoryBroker(1000, 10*time.Minute) // the hub's default history
	t.Cleanup(func() { broker.Close() })
	hub, srv := startHub(t, ssekit.Config{Broker: broker})
	publishN(t, hub, "u1", 0, 2)
	pos, _ := broker.Head(t.Context(), ssekit.BroadcastChannel)
	head := "a" + pos + ".u" + pos
	c := userClient(srv, "u1")
	c.LastEventID = "1-1" // well-formed, but from no history of this hub
	var got sseclient.Event
	err := c.Subscribe(t.Context(), srv.URL, func(ev sseclient.Event) error {
		if ev.Type == ssekit.TypeResync {
			got = ev
			return errDone
		}
		return nil
	})
	if err != errDone {
		t.Fatalf("Subscribe = %v", err)
	}
	var data struct {
		Reason      string `json:"reason"`
		LastEventID string `json:"last_event_id"`
	}
	if err := got.Decode(&data); err != nil {
		t.Fatal(err)
	}
	if got.ID != head || data.LastEventID != "1-1" || data.Reason == "" {
		t.Errorf("resync = id %q data %+v; want id %q, last_event_id 1-1", got.ID, data, head)
	}
}

// TestHubAuthRefused: the hub's 401 is a permanent error, not retried.
func TestHubAuthRefused(t *testing.T) {
	t.Parallel()
	_, srv := startHub(t, ssekit.Config{})
	err := subscribeOnce(t, &sseclient.Client{HTTPClient: srv.Client()}, srv.URL)
	var se *sseclient.StatusError
	if !errors.As(err, &se) || se.StatusCode != http.StatusUnauthorized {
		t.Fatalf("Subscribe = %v, want 401", err)
	}
}

// TestHubHeartbeatKeepsID: a heartbeat (no id) carries the last id and
// does not move the resume position.
func TestHubHeartbeatKeepsID(t *testing.T) {
	t.Parallel()
	hub, srv := startHub(t, ssekit.Config{HeartbeatInterval: 5 * time.Millisecond})
	var ids []string
	err := userClient(srv, "u1").Subscribe(t.Context(), srv.URL, func(ev sseclient.Event) error {
		switch ev.Type {
		case ssekit.TypeConnected:
			publishN(t, hub, "u1", 0, 1)
		case "n":
			ids = append(ids, ev.ID)
		case ssekit.TypeHeartbeat:
			ids = append(ids, ev.ID)
			if len(ids) >= 3 {
				return errDone
			}
		}
		return nil
	})
	if err != errDone {
		t.Fatalf("Subscribe = %v", err)
	}
	for _, id := range ids {
		if id != ids[0] || id == "" {
			t.Fatalf("ids = %q, want the event's id repeated by heartbeats", ids)
		}
	}
}

// pipeResponse is an http.ResponseWriter whose body goes into a pipe, so
// that the hub's frames can be parsed as they are written, without a
// network.
type pipeResponse struct {
	h http.Header
	w *io.PipeWriter
}

func (p *pipeResponse) Header() http.Header         { return p.h }
func (p *pipeResponse) Write(b []byte) (int, error) { return p.w.Write(b) }
func (p *pipeResponse) WriteHeader(int)             {}
func (p *pipeResponse) Flush()                      {}

// FuzzHubFrames cross-checks the hub's encoder with the decoder: every
// event the hub accepts comes back with the same type, data and id, and
// the event after it is intact.
func FuzzHubFrames(f *testing.F) {
	f.Add("notification", []byte(`{"title":"hi"}`), true)
	f.Add("", []byte("plain text"), false)
	f.Add(" spaced ", []byte("{\n \"a\": [1,\r\n2]\n}"), true)
	f.Add(":colon", []byte("data: fake\n\nid: 9\n"), false)
	f.Add("connected", []byte(`  "x"  `), true)
	f.Add("é\u2028", []byte("\xEF\xBB\xBF\xff"), false)
	f.Fuzz(func(t *testing.T, typ string, data []byte, raw bool) {
		broker := ssekit.NewMemoryBroker(1000, 10*time.Minute) // the hub's default history
		defer broker.Close()
		hub, err := ssekit.New(ssekit.Config{Broker: broker, HeartbeatInterval: -1, MaxStreamAge: -1, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		defer hub.Close()
		var ev ssekit.Event
		var want []byte
		if raw {
			ev = ssekit.Event{Type: typ, Data: json.RawMessage(data)}
			want = data
			if bytes.ContainsAny(data, "\r\n") {
				var b bytes.Buffer
				_ = json.Compact(&b, data)
				want = b.Bytes()
			}
		} else {
			ev = ssekit.Event{Type: typ, Data: string(data)}
			want, _ = json.Marshal(string(data))
		}
		pos, _ := broker.Head(t.Context(), ssekit.BroadcastChannel)
		head := "a" + pos // an anonymous stream follows the broadcast channel only
		id, err := hub.Publish(t.Context(), ssekit.Target{All: true}, ev)
		if err != nil {
			return // rejected, never written
		}
		id2, err := hub.Publish(t.Context(), ssekit.Target{All: true}, ssekit.Event{Type: "after", Data: 1})
		if err != nil {
			t.Fatal(err)
		}
		// Resume from before both, so that the replay writes them.
		pr, pw := io.Pipe()
		ctx, cancel := context.WithCancel(t.Context())
		req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/", nil)
		req.Header.Set("Last-Event-ID", head)
		done := make(chan struct{})
		go func() {
			defer close(done)
			hub.ServeStream(&pipeResponse{h: http.Header{}, w: pw}, req, "")
		}()
		defer func() {
			cancel()
			pr.Close()
			<-done
		}()
		d := sseclient.NewDecoder(pr)
		var got []sseclient.Event
		for range 3 {
			e, err := d.Next()
			if err != nil {
				t.Fatalf("Next: %v", err)
			}
			got = append(got, e)
		}
		wantType := typ
		if wantType == "" {
			wantType = "message"
		}
		if got[0].Type != ssekit.TypeConnected {
			t.Fatalf("first event %q, want connected", got[0].Type)
		}
		if e := got[1]; e.Type != wantType || e.ID != "a"+id || !bytes.Equal(e.Data, want) {
			t.Fatalf("event = %q %q %q, want %q %q %q", e.ID, e.Type, e.Data, "a"+id, wantType, want)
		}
		if e := got[2]; e.Type != "after" || e.ID != "a"+id2 || string(e.Data) != "1" {
			t.Fatalf("next event = %q %q %q, want %q after 1", e.ID, e.Type, e.Data, id2)
		}
	})
}
