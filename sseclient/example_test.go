package sseclient_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/ssekit/sse/sseclient"
	"github.com/ssekit/sse/ssekit"
)

// Subscribe to a hub, show the connection state, decode JSON events, and
// stop from the handler.
func ExampleClient_Subscribe() {
	hub, _ := ssekit.New(ssekit.Config{Logger: slog.New(slog.DiscardHandler)})
	srv := httptest.NewServer(hub.Handler(ssekit.HandlerOptions{}))
	defer srv.Close()
	defer hub.Close() // first: the server's Close waits for open streams

	c := &sseclient.Client{
		Header: http.Header{"Authorization": {"Bearer my-token"}},
		OnStateChange: func(sc sseclient.StateChange) {
			switch sc.State {
			case sseclient.StateConnected:
				fmt.Println("connected, resumed:", sc.Resumed)
			case sseclient.StateReconnecting:
				fmt.Printf("reconnecting in %v: %v\n", sc.Delay, sc.Err)
			}
		},
	}
	errStop := errors.New("seen enough")
	seen := 0
	err := c.Subscribe(context.Background(), srv.URL, func(ev sseclient.Event) error {
		switch ev.Type {
		case ssekit.TypeConnected:
			// For the example, publish once the stream is open.
			hub.SendToAll(ssekit.Event{Type: "greeting", Data: map[string]string{"text": "hello"}})
			hub.SendToAll(ssekit.Event{Type: "greeting", Data: map[string]string{"text": "world"}})
		case "greeting":
			var g struct {
				Text string `json:"text"`
			}
			if err := ev.Decode(&g); err != nil {
				return err
			}
			fmt.Println(ev.Type, g.Text)
			if seen++; seen == 2 {
				return errStop
			}
		}
		return nil
	})
	fmt.Println(err == errStop)
	// Output:
	// connected, resumed: false
	// greeting hello
	// greeting world
	// true
}

// Range over a stream; breaking out of the loop ends the subscription.
func ExampleClient_Events() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "id: 1\ndata: one\n\nid: 2\ndata: two\n\n")
	}))
	defer srv.Close()

	var c sseclient.Client
	for ev, err := range c.Events(context.Background(), srv.URL) {
		if err != nil {
			fmt.Println(err)
			break
		}
		fmt.Println(ev.ID, string(ev.Data))
		if ev.ID == "2" {
			break
		}
	}
	// Output:
	// 1 one
	// 2 two
}

// Parse an event stream from any io.Reader.
func ExampleDecoder() {
	stream := "retry: 5000\n" +
		": a comment\n" +
		"id: 7\nevent: update\ndata: {\"n\":1}\n\n" +
		"data: first line\r\ndata: second line\r\n\r\n" +
		"data: never finished"
	d := sseclient.NewDecoder(strings.NewReader(stream))
	for {
		ev, err := d.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("id=%s type=%s data=%q\n", ev.ID, ev.Type, ev.Data)
	}
	retry, _ := d.Retry()
	fmt.Println("retry:", retry)
	// Output:
	// id=7 type=update data="{\"n\":1}"
	// id=7 type=message data="first line\nsecond line"
	// retry: 5s
}

// Ask a hub for topics: Client.Topics are sent as topic query parameters
// on every request, reconnections included.
func ExampleClient_topics() {
	hub, _ := ssekit.New(ssekit.Config{AuthorizeTopic: ssekit.AllowAllTopics, Logger: slog.New(slog.DiscardHandler)})
	srv := httptest.NewServer(hub.Handler(ssekit.HandlerOptions{}))
	defer srv.Close()
	defer hub.Close()

	c := &sseclient.Client{Topics: []string{"board:7", "doc:42"}}
	errStop := errors.New("seen enough")
	err := c.Subscribe(context.Background(), srv.URL, func(ev sseclient.Event) error {
		switch ev.Type {
		case ssekit.TypeConnected:
			hub.SendToTopic("board:8", ssekit.Event{Type: "card_moved", Data: 8}) // not asked for
			hub.SendToTopic("doc:42", ssekit.Event{Type: "doc_saved", Data: 42})
		case "card_moved", "doc_saved":
			fmt.Println(ev.Type, string(ev.Data))
			return errStop
		}
		return nil
	})
	fmt.Println(err == errStop)
	// Output:
	// doc_saved 42
	// true
}
