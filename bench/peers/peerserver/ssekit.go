package main

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/ssekit/sse/ssekit"
)

// ssekitAdapter is ssekit's Hub, used directly.
type ssekitAdapter struct{ hub *ssekit.Hub }

func newSSEKit(p params) (adapter, error) {
	cfg := ssekit.Config{
		MaxClients:        -1,
		MaxClientsPerUser: -1,
		BufferSize:        p.buffer,
		HeartbeatInterval: p.heartbeat,
		WriteDelay:        p.writeDelay,
		DetachStreams:     p.detach,
	}
	if p.drop {
		cfg.Overflow = ssekit.OverflowDrop
	}
	hub, err := ssekit.New(cfg)
	if err != nil {
		return nil, err
	}
	return &ssekitAdapter{hub: hub}, nil
}

func (a *ssekitAdapter) stream(w http.ResponseWriter, r *http.Request, user string) {
	a.hub.ServeStream(w, r, user)
}

func (a *ssekitAdapter) publish(ctx context.Context, user string, data []byte) error {
	to := ssekit.Target{All: true}
	if user != "" {
		to = ssekit.Target{Users: []string{user}}
	}
	_, err := a.hub.Publish(ctx, to, ssekit.Event{Type: "bench", Data: json.RawMessage(data)})
	return err
}

func (a *ssekitAdapter) close() { a.hub.Close() }
