package main

import (
	"context"
	"net/http"

	asse "github.com/alexandrevicenzi/go-sse"
)

// alexandrevicenziAdapter serves github.com/alexandrevicenzi/go-sse. Each
// user is a channel; sending to the empty channel name broadcasts to every
// channel.
type alexandrevicenziAdapter struct{ srv *asse.Server }

func newAlexandrevicenzi(params) (adapter, error) {
	srv := asse.NewServer(&asse.Options{
		// A nil Logger in non-nil Options discards the per-event log lines.
		ChannelNameFunc: func(r *http.Request) string { return "user:" + r.URL.Query().Get("user") },
	})
	return &alexandrevicenziAdapter{srv: srv}, nil
}

func (a *alexandrevicenziAdapter) stream(w http.ResponseWriter, r *http.Request, _ string) {
	a.srv.ServeHTTP(w, r)
}

func (a *alexandrevicenziAdapter) publish(_ context.Context, user string, data []byte) error {
	ch := ""
	if user != "" {
		ch = "user:" + user
	}
	a.srv.SendMessage(ch, asse.NewMessage("", string(data), "bench"))
	return nil
}

func (a *alexandrevicenziAdapter) close() { a.srv.Shutdown() }
