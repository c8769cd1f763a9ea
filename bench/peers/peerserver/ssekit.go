package main

import (
	"context"
	"encoding/json"
	"net/http"

	sse "github.com/ssekit/sse"
)

// ssekitAdapter is ssekit's Hub, used directly.
type ssekitAdapter struct{ hub *sse.Hub }

func newSSEKit(p params) (adapter, error) {
	cfg := sse.Config{
		MaxClients:        -1,
		MaxClientsPerUser: -1,
		BufferSize:        p.buffer,
		HeartbeatInterval: p.heartbeat,
		WriteDelay:        p.writeDelay,
		DetachStreams:     p.detach,
	}
	if p.drop {
		cfg.Overflow = sse.OverflowDrop
	}
	hub, err := sse.New(cfg)
	if err != nil {
		return nil, err
	}
	return &ssekitAdapter{hub: hub}, nil
}

func (a *ssekitAdapter) stream(w http.ResponseWriter, r *http.Request, user string) {
	a.hub.ServeStream(w, r, user)
}

func (a *ssekitAdapter) publish(ctx context.Context, user string, data []byte) error {
	to := sse.Target{All: true}
	if user != "" {
		to = sse.Target{Users: []string{user}}
	}
	_, err := a.hub.Publish(ctx, to, sse.Event{Type: "bench", Data: json.RawMessage(data)})
	return err
}

func (a *ssekitAdapter) close() { a.hub.Close() }
