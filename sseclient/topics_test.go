package sseclient_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssekit/sse/sseclient"
	"github.com/ssekit/sse/ssekit"
)

// TestTopicsInEveryRequest: Client.Topics are appended to the URL's own
// query, escaped, on the first request and on every reconnection.
func TestTopicsInEveryRequest(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	got := make(chan string, 3)
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		got <- r.URL.RawQuery
		streamHeader(w)
		fmt.Fprintf(w, "retry: 1\nid: %d\ndata: x\n\n", n.Add(1))
	})
	c := &sseclient.Client{HTTPClient: srv.Client(), Topics: []string{"board:7", "doc/42 x"}}
	seen := 0
	err := c.Subscribe(t.Context(), srv.URL+"/stream?v=1&topic=pre", func(ev sseclient.Event) error {
		if seen++; seen == 3 {
			return errDone
		}
		return nil
	})
	if err != errDone {
		t.Fatalf("Subscribe = %v", err)
	}
	for i := range 3 {
		if got, want := <-got, "v=1&topic=pre&topic=board%3A7&topic=doc%2F42+x"; got != want {
			t.Errorf("request %d: query %q, want %q", i, got, want)
		}
	}
}

// TestHubTopicsKeptAcrossReconnects: against a hub that ends every stream
// within milliseconds (MaxStreamAge), each connection asks for the
// client's topics, so that the events of those topics arrive once each,
// across the reconnections, and those of another topic never do.
func TestHubTopicsKeptAcrossReconnects(t *testing.T) {
	t.Parallel()
	hub, err := ssekit.New(ssekit.Config{
		AuthorizeTopic: ssekit.AllowAllTopics,
		MaxStreamAge:   30 * time.Millisecond,
		RetryInterval:  time.Millisecond,
		Logger:         slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var asked [][]string // each request's topics
	h := hub.Handler(ssekit.HandlerOptions{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked = append(asked, r.URL.Query()[ssekit.TopicParam])
		mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		hub.Close()
		srv.Close()
	})

	c := &sseclient.Client{HTTPClient: srv.Client(), Topics: []string{"board:7", "doc:42"}}
	publish := func(topic, typ string, n int) error {
		_, err := hub.Publish(t.Context(), ssekit.Target{Topics: []string{topic}}, ssekit.Event{Type: typ, Data: n})
		return err
	}
	const conns = 3
	connected, resumed := 0, 0
	c.OnStateChange = func(sc sseclient.StateChange) {
		if sc.State == sseclient.StateConnected && sc.Resumed {
			resumed++
		}
	}
	var seqs []int
	err = c.Subscribe(t.Context(), srv.URL, func(ev sseclient.Event) error {
		switch ev.Type {
		case ssekit.TypeConnected:
			// Two events for the client's topics and one for another,
			// from each connection; the last one's ends the test.
			if connected++; connected > conns {
				return nil
			}
			k := connected - 1
			errs := []error{publish("board:7", "n", 2*k), publish("other", "leak", k), publish("doc:42", "n", 2*k+1)}
			if connected == conns {
				errs = append(errs, publish("doc:42", "end", 0))
			}
			return errors.Join(errs...)
		case "n":
			var n int
			if err := ev.Decode(&n); err != nil {
				return err
			}
			seqs = append(seqs, n)
		case "leak":
			return fmt.Errorf("got %s of a topic the client did not ask for", ev.Data)
		case "end":
			return errDone
		}
		return nil
	})
	if err != errDone {
		t.Fatalf("Subscribe = %v", err)
	}
	// The events of the two topics are each in order; between the topics,
	// no order is promised.
	slices.Sort(seqs)
	if want := []int{0, 1, 2, 3, 4, 5}; !slices.Equal(seqs, want) {
		t.Fatalf("events %v, want %v, each once", seqs, want)
	}
	if resumed < conns-1 {
		t.Fatalf("%d of %d connections resumed, want at least %d", resumed, connected, conns-1)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, topics := range asked {
		if !slices.Equal(topics, c.Topics) {
			t.Errorf("request %d asked for topics %q, want %q", i, topics, c.Topics)
		}
	}
}

// TestHubTopicForbiddenIsPermanent: a hub that does not allow a topic
// refuses the stream with 403, which the client returns, without retrying.
func TestHubTopicForbiddenIsPermanent(t *testing.T) {
	t.Parallel()
	var requests atomic.Int32
	hub, err := ssekit.New(ssekit.Config{Logger: slog.New(slog.DiscardHandler)}) // nil AuthorizeTopic: no topic allowed
	if err != nil {
		t.Fatal(err)
	}
	h := hub.Handler(ssekit.HandlerOptions{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		hub.Close()
		srv.Close()
	})
	err = subscribeOnce(t, &sseclient.Client{HTTPClient: srv.Client(), Topics: []string{"board:7"}}, srv.URL)
	var se *sseclient.StatusError
	if !errors.As(err, &se) || se.StatusCode != http.StatusForbidden {
		t.Fatalf("Subscribe = %v, want a 403 StatusError", err)
	}
	if got := requests.Load(); got != 1 {
		t.Fatalf("%d requests, want 1", got)
	}
	// The hub's reason reaches the caller, for a person to read.
	var body ssekit.ErrorBody
	if err := json.Unmarshal(se.Body, &body); err != nil || body.Error != ssekit.CodeTopicForbidden || !slices.Equal(body.Topics, []string{"board:7"}) {
		t.Fatalf("StatusError.Body %q (%v): want the hub's topic_forbidden naming board:7", se.Body, err)
	}
	if !strings.Contains(se.Error(), body.Message) {
		t.Fatalf("error %q lacks the hub's message %q", se.Error(), body.Message)
	}
	if got := hub.GetTotalClientCount(); got != 0 {
		t.Fatalf("GetTotalClientCount = %d after a refusal", got)
	}
}
