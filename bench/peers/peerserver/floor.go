package main

import (
	"context"
	"net/http"
)

// floor is no library: its streams send their headers and then nothing,
// and its publish does nothing. What it costs per publish is what
// net/http, the Go runtime and loopback TCP cost any server here per
// request, whatever it does with the event: the floor under every
// server's CPU per delivery (ssebench reports every event lost).
type floor struct{ done chan struct{} }

func newFloor(params) (adapter, error) { return &floor{done: make(chan struct{})}, nil }

func (f *floor) stream(w http.ResponseWriter, r *http.Request, _ string) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	http.NewResponseController(w).Flush()
	select {
	case <-r.Context().Done():
	case <-f.done:
	}
}

func (*floor) publish(context.Context, string, []byte) error { return nil }

func (f *floor) close() { close(f.done) }
