package main

import (
	"context"
	"net/http"

	r3 "github.com/r3labs/sse/v2"
)

// r3labsAdapter serves github.com/r3labs/sse/v2. A connection subscribes to
// one stream. By default every connection joins the stream "all" and
// broadcast is the library's fast path, while addressing one user is not
// offered (it would need a stream per user and a broadcast looping over
// all of them). With -per-user-streams each connection joins its user's
// stream instead, created when its first subscriber comes (AutoStream):
// the library's idiom for per-user events, and then broadcast is not
// offered.
type r3labsAdapter struct {
	srv     *r3.Server
	perUser bool
}

func newR3labs(p params) (adapter, error) {
	srv := r3.New()
	// The default replay log keeps every event for ever: off, as anyone
	// running it for long would do.
	srv.AutoReplay = false
	if p.perUser {
		srv.AutoStream = true
	} else {
		srv.CreateStream("all")
	}
	return &r3labsAdapter{srv: srv, perUser: p.perUser}, nil
}

func (a *r3labsAdapter) stream(w http.ResponseWriter, r *http.Request, user string) {
	r2 := r.Clone(r.Context())
	q := r2.URL.Query()
	q.Set("stream", a.streamOf(user))
	r2.URL.RawQuery = q.Encode()
	a.srv.ServeHTTP(w, r2)
}

// streamOf names the stream a connection of user joins.
func (a *r3labsAdapter) streamOf(user string) string {
	if a.perUser {
		return "user:" + user
	}
	return "all"
}

func (a *r3labsAdapter) publish(_ context.Context, user string, data []byte) error {
	if (user != "") != a.perUser {
		return errUntargeted
	}
	a.srv.Publish(a.streamOf(user), &r3.Event{Event: []byte("bench"), Data: data})
	return nil
}

func (a *r3labsAdapter) close() { a.srv.Close() }
