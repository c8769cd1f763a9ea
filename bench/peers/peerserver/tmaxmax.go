package main

import (
	"context"
	"net/http"

	tsse "github.com/tmaxmax/go-sse"
)

// tmaxmaxAdapter serves github.com/tmaxmax/go-sse with its default
// provider, Joe. Every session subscribes to the default topic (broadcast)
// and to its user's topic.
type tmaxmaxAdapter struct{ srv *tsse.Server }

func newTmaxmax(params) (adapter, error) {
	srv := &tsse.Server{
		Provider: &tsse.Joe{},
		OnSession: func(w http.ResponseWriter, r *http.Request) ([]string, bool) {
			return []string{tsse.DefaultTopic, "user:" + r.URL.Query().Get("user")}, true
		},
	}
	return &tmaxmaxAdapter{srv: srv}, nil
}

func (a *tmaxmaxAdapter) stream(w http.ResponseWriter, r *http.Request, _ string) {
	// go-sse sends the headers with the first event; send them now.
	startStream(w)
	a.srv.ServeHTTP(w, r)
}

func (a *tmaxmaxAdapter) publish(_ context.Context, user string, data []byte) error {
	m := &tsse.Message{Type: tsse.Type("bench")}
	m.AppendData(string(data))
	topic := tsse.DefaultTopic
	if user != "" {
		topic = "user:" + user
	}
	return a.srv.Publish(m, topic)
}

func (a *tmaxmaxAdapter) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2e9)
	defer cancel()
	_ = a.srv.Shutdown(ctx)
}
