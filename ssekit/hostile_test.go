package ssekit_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/ssekit/sse/internal/ssetest"
	"github.com/ssekit/sse/sseclient"
	"github.com/ssekit/sse/ssekit"
)

func TestAStalledClientDoesNotHoldUpOthers(t *testing.T) {
	t.Parallel()
	// A client that never reads: its socket fills and its writer blocks.
	// Everyone else keeps receiving every event while it is stuck.
	h := newTestHub(t, ssekit.Config{BufferSize: 1 << 12, MaxEventSize: 1 << 20, HistorySize: 64})
	stalledReader(t, h, "stuck")
	ok := h.dial(t, "fine", "")
	ok.Connected()
	ssetest.Eventually(t, "both registered", func() bool { return h.GetTotalClientCount() == 2 })
	big := strings.Repeat("x", 200<<10)
	const n = 200 // ~40 MB: far beyond what loopback buffers hold
	for i := 1; i <= n; i++ {
		if _, err := h.Publish(t.Context(), ssekit.Target{All: true}, ssekit.Event{Type: "big", Data: map[string]any{"n": i, "pad": big}}); err != nil {
			t.Fatal(err)
		}
		var d struct{ N int }
		ev := ok.NextOf()
		if err := ev.Decode(&d); err != nil || d.N != i {
			t.Fatalf("reading client got n=%d (%v), want %d", d.N, err, i)
		}
	}
	if got := h.Stats().Disconnects[ssekit.ReasonWriteError]; got != 0 {
		t.Fatalf("write errors %d before ClientTimeout", got)
	}
}

func TestHugeLastEventIDIsNeitherTrustedNorEchoed(t *testing.T) {
	t.Parallel()
	h := newTestHub(t, ssekit.Config{})
	for _, size := range []int{64 << 10, 1 << 20} {
		req, _ := http.NewRequest(http.MethodGet, h.srv.URL+"?user=u", nil)
		req.Header.Set("Last-Event-ID", strings.Repeat("9", size))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode == http.StatusRequestHeaderFieldsTooLarge {
			resp.Body.Close() // net/http's header limit refused it first
			continue
		}
		// The stream opens, is not resumed, and the resync does not echo
		// the megabyte back.
		dec := sseclient.NewDecoder(resp.Body)
		ev, err := dec.Next()
		if err != nil || ev.Type != ssekit.TypeConnected || strings.Contains(string(ev.Data), `"resumed":true`) {
			t.Fatalf("%d-byte id: opening %q %s (%v), want connected, not resumed", size, ev.Type, ev.Data, err)
		}
		ev, err = dec.Next()
		if err != nil || ev.Type != ssekit.TypeResync || len(ev.Data) > 200 {
			t.Fatalf("%d-byte id: got %q with %d bytes (%v), want a short resync", size, ev.Type, len(ev.Data), err)
		}
		resp.Body.Close()
	}
}

func TestConnectDisconnectChurnLeavesNothingBehind(t *testing.T) {
	t.Parallel()
	h := newTestHub(t, ssekit.Config{MaxClientsPerUser: -1, BufferSize: 256})
	const workers, cycles = 8, 250 // 2,000 connect/disconnect cycles
	var wg sync.WaitGroup
	defer wg.Wait()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range cycles {
				c := dialURL(t, h.srv.URL+"?user=churn", "", "")
				if i%2 == 0 {
					c.Connected() // half hang up at once, half after the opening
				}
				c.Close()
			}
		}()
	}
	// Meanwhile, events keep flowing to a steady client.
	steady := h.dial(t, "steady", "")
	steady.Connected()
	for i := range 100 {
		h.SendToAll(ssekit.Event{Type: "n", Data: i})
	}
	for want := range 100 {
		if got := seqOf(t, steady.NextOf().Data); got != want {
			t.Fatalf("steady client got %d, want %d", got, want)
		}
	}
	wg.Wait()
	ssetest.Eventually(t, "churned clients unregistered", func() bool { return h.GetTotalClientCount() == 1 })
	if got := h.UserClientCount("churn"); got != 0 {
		t.Fatalf("%d churn clients still registered", got)
	}
}

func TestMethodAndPathAbuse(t *testing.T) {
	t.Parallel()
	hub := ssekit.NewHub(ssekit.Config{})
	mux := http.NewServeMux()
	mux.Handle("/sse/stream", hub.Handler(ssekit.HandlerOptions{}))
	srv := ssetest.Serve(t, hub, mux)
	for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, "BREW"} {
		req, _ := http.NewRequest(method, srv.URL+"/sse/stream", strings.NewReader("x"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != http.MethodGet {
			t.Errorf("%s: %d Allow=%q, want 405 Allow: GET", method, resp.StatusCode, resp.Header.Get("Allow"))
		}
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, path := range []string{"/sse/stream/../../etc/passwd", "/sse/stream%00", "/sse//stream", "/SSE/STREAM", "/sse/stream/x"} {
		resp, err := noRedirect.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.Header.Get("Content-Type") == "text/event-stream" {
			t.Errorf("%s opened a stream", path)
		}
	}
	if got := hub.GetTotalClientCount(); got != 0 {
		t.Fatalf("%d clients registered by abusive requests", got)
	}
}
