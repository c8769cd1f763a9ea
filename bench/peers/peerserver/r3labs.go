package main

import (
	"context"
	"net/http"

	r3 "github.com/r3labs/sse/v2"
)

// r3labsAdapter serves github.com/r3labs/sse/v2. A connection subscribes to
// one stream, so every connection joins the stream "all" and broadcast is
// the library's fast path; addressing one user would need a stream per
// user and a broadcast looping over all of them, so it is not offered.
type r3labsAdapter struct{ srv *r3.Server }

func newR3labs(params) (adapter, error) {
	srv := r3.New()
	// The default replay log keeps every event for ever: off, as anyone
	// running it for long would do.
	srv.AutoReplay = false
	srv.CreateStream("all")
	return &r3labsAdapter{srv: srv}, nil
}

func (a *r3labsAdapter) stream(w http.ResponseWriter, r *http.Request, _ string) {
	r2 := r.Clone(r.Context())
	q := r2.URL.Query()
	q.Set("stream", "all")
	r2.URL.RawQuery = q.Encode()
	a.srv.ServeHTTP(w, r2)
}

func (a *r3labsAdapter) publish(_ context.Context, user string, data []byte) error {
	if user != "" {
		return errUntargeted
	}
	a.srv.Publish("all", &r3.Event{Event: []byte("bench"), Data: data})
	return nil
}

func (a *r3labsAdapter) close() { a.srv.Close() }
