package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// naiveHub is the seed's design, kept as the baseline: one hub goroutine
// owns the client set; each client has a channel of BufferSize events; an
// event's data is marshalled to JSON once per recipient; a full channel
// drops the event for that client.
type naiveHub struct {
	register   chan *naiveClient
	unregister chan *naiveClient
	broadcast  chan naiveEvent
	quit       chan struct{}
	buffer     int
	heartbeat  time.Duration
}

type naiveClient struct {
	user string
	send chan naiveFrame
}

// naiveEvent is what a publish hands the hub: a Go value, as the seed's
// callers pass map[string]any.
type naiveEvent struct {
	user string // "" for everyone
	typ  string
	data any
}

type naiveFrame struct {
	typ  string
	data []byte
}

func newNaive(p params) (adapter, error) {
	h := &naiveHub{
		register:   make(chan *naiveClient),
		unregister: make(chan *naiveClient),
		broadcast:  make(chan naiveEvent, 256),
		quit:       make(chan struct{}),
		buffer:     p.buffer,
		heartbeat:  p.heartbeat,
	}
	go h.run()
	return h, nil
}

// run is the hub goroutine.
func (h *naiveHub) run() {
	clients := make(map[*naiveClient]bool)
	users := make(map[string]map[*naiveClient]bool)
	for {
		select {
		case c := <-h.register:
			clients[c] = true
			if users[c.user] == nil {
				users[c.user] = make(map[*naiveClient]bool)
			}
			users[c.user][c] = true
		case c := <-h.unregister:
			if clients[c] {
				delete(clients, c)
				delete(users[c.user], c)
				if len(users[c.user]) == 0 {
					delete(users, c.user)
				}
				close(c.send)
			}
		case ev := <-h.broadcast:
			to := clients
			if ev.user != "" {
				to = users[ev.user]
			}
			for c := range to {
				data, err := json.Marshal(ev.data)
				if err != nil {
					continue
				}
				select {
				case c.send <- naiveFrame{typ: ev.typ, data: data}:
				default: // full: drop
				}
			}
		case <-h.quit:
			for c := range clients {
				close(c.send)
			}
			return
		}
	}
}

func (h *naiveHub) stream(w http.ResponseWriter, r *http.Request, user string) {
	c := &naiveClient{user: user, send: make(chan naiveFrame, h.buffer)}
	select {
	case h.register <- c:
	case <-h.quit:
		return
	}
	startStream(w)
	flusher := http.NewResponseController(w)
	ticker := time.NewTicker(h.heartbeat)
	defer ticker.Stop()
	for {
		select {
		case f, ok := <-c.send:
			if !ok {
				return
			}
			fmt.Fprintf(w, "event: %s\ndata: %s\n\n", f.typ, f.data)
			if flusher.Flush() != nil {
				h.leave(c)
				return
			}
		case t := <-ticker.C:
			fmt.Fprintf(w, "event: heartbeat\ndata: {\"timestamp\":%q}\n\n", t.Format(time.RFC3339))
			_ = flusher.Flush()
		case <-r.Context().Done():
			h.leave(c)
			return
		}
	}
}

// leave unregisters c unless the hub already stopped.
func (h *naiveHub) leave(c *naiveClient) {
	select {
	case h.unregister <- c:
	case <-h.quit:
	}
}

func (h *naiveHub) publish(ctx context.Context, user string, data []byte) error {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	select {
	case h.broadcast <- naiveEvent{user: user, typ: "bench", data: v}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-h.quit:
		return fmt.Errorf("hub closed")
	}
}

func (h *naiveHub) close() {
	select {
	case <-h.quit:
	default:
		close(h.quit)
	}
}
