package ssekit

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ssekit/sse/sseclient"
)

// cursorStream opens a stream of user that follows extra channels, on srv,
// resuming after lastID, and returns its next-event function.
func cursorStream(t *testing.T, url, lastID string) func() sseclient.Event {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	dec := sseclient.NewDecoder(resp.Body)
	return func() sseclient.Event {
		t.Helper()
		ev, err := dec.Next()
		if err != nil {
			t.Fatalf("stream ended: %v", err)
		}
		return ev
	}
}

// checkShortID fails unless id is one a browser sends back cross-origin
// without a preflight: at most 128 bytes of letters, digits, '-' and '.'.
func checkShortID(t *testing.T, id string) {
	t.Helper()
	if id == "" || len(id) > maxIDLen || strings.Trim(id, "abcdefghijklmnopqrstuvwxyz0123456789-.") != "" {
		t.Fatalf("id %q (%d bytes) is not a short CORS-safe id", id, len(id))
	}
	if _, ok := parseID(id, maxIDLen); !ok {
		t.Fatalf("id %q does not parse", id)
	}
}

// A stream whose channels' positions do not fit in 128 bytes gets ids
// that name a cursor, saved through the broker, so that it resumes — on
// this node or another that shares the broker — with no gap and no
// duplicate.
func TestPositionsThatDoNotFitAnIDResumeThroughACursor(t *testing.T) {
	b := NewMemoryBroker(100, 0)
	defer b.Close()
	topics := make([]string, 30)
	for i := range topics {
		topics[i] = fmt.Sprintf("topic:%02d", i)
	}
	var urls []string
	for range 2 { // two hubs on one broker: two nodes
		h, err := New(Config{Broker: b, HeartbeatInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.serve(w, r, Identity{User: "alice"}, topics)
		}))
		t.Cleanup(func() { h.Close(); srv.Close() })
		urls = append(urls, srv.URL)
	}
	publish := func(topic, data string) {
		t.Helper()
		if _, err := b.Publish(t.Context(), Message{Channels: []string{topic}, Type: "t", Data: []byte(data)}); err != nil {
			t.Fatal(err)
		}
	}

	next := cursorStream(t, urls[0], "")
	opening := next()
	if opening.Type != TypeConnected || !strings.HasPrefix(opening.ID, "c") {
		t.Fatalf("opening %q id %q, want connected with a cursor id", opening.Type, opening.ID)
	}
	checkShortID(t, opening.ID)
	for i := range 10 {
		publish(topics[i*3%len(topics)], fmt.Sprint(i))
	}
	var ids []string
	for i := range 10 {
		ev := next()
		if string(ev.Data) != fmt.Sprint(i) {
			t.Fatalf("event %d: data %s", i, ev.Data)
		}
		checkShortID(t, ev.ID)
		ids = append(ids, ev.ID)
	}
	// Away after event 4: five more of the first ten, then new ones.
	for i := 10; i < 16; i++ {
		publish(topics[(i*7)%len(topics)], fmt.Sprint(i))
	}
	for node, url := range urls {
		next := cursorStream(t, url, ids[4])
		if ev := next(); ev.Type != TypeConnected || !strings.Contains(string(ev.Data), `"resumed":true`) {
			t.Fatalf("node %d: opening %q %s, want a resumed stream", node, ev.Type, ev.Data)
		}
		for want := 5; want < 16; want++ {
			ev := next()
			if ev.Type != "t" || string(ev.Data) != fmt.Sprint(want) {
				t.Fatalf("node %d: got %q %s, want event %d", node, ev.Type, ev.Data, want)
			}
			checkShortID(t, ev.ID)
		}
	}

	// A cursor nobody saved is unknown: every channel is resynced.
	next = cursorStream(t, urls[1], "c0")
	next()
	if ev := next(); ev.Type != TypeResync || !strings.Contains(string(ev.Data), "topic:29") {
		t.Fatalf("unknown cursor: got %q %s, want a resync of every channel", ev.Type, ev.Data)
	}
}

// Two channels whose tags would collide cannot be followed together: the
// TestChannelTagsAreUniquePerStream: a stream cannot follow two
// channels whose tags collide — its ids could not tell them apart — and
// is refused, naming both, rather than given a tag that would depend on
// what else it follows.
func TestChannelTagsAreUniquePerStream(t *testing.T) {
	// The first pair of "topic:<n>" to collide, found by trying them in
	// order.
	a, b := "topic:178", "topic:12102"
	if channelTag(a) != channelTag(b) {
		t.Fatalf("%s and %s no longer share a tag: find another pair", a, b)
	}
	if _, err := newFollower("c", "u", []string{a, b}, 10, nil); err == nil || !strings.Contains(err.Error(), a) || !strings.Contains(err.Error(), b) {
		t.Fatalf("channels %q and %q share tag %q: newClient said %v, want a refusal naming both", a, b, channelTag(a), err)
	}
	if _, err := newFollower("c", "u", []string{a, a}, 10, nil); err == nil {
		t.Fatalf("a channel followed twice was taken")
	}
	for _, tag := range []string{channelTag(a), channelTag(BroadcastChannel), channelTag(UserChannel("u")), channelTag(TenantChannel("t"))} {
		if tag == "" || tag[0] == cursorTag || strings.Trim(tag, "abcdefghijklmnopqrstuvwxyz") != "" {
			t.Fatalf("tag %q: want lowercase letters, not starting with the cursor's", tag)
		}
	}
}
