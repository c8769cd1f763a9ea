package redisbroker

import (
	"context"
	"time"

	sse "github.com/ssekit/sse"
)

// PublishWithNonce publishes under a chosen nonce, as a retried send does.
func PublishWithNonce(ctx context.Context, b *Broker, m sse.Message, nonce string) (string, error) {
	return b.publish(ctx, m, nonce)
}

// RefreshPresenceOnce writes src's presence once, with no goroutine to
// refresh or remove it: a node that dies right after.
func RefreshPresenceOnce(ctx context.Context, b *Broker, src PresenceSource) error {
	p := &presence{b: b, src: src, started: time.Now()}
	return p.refresh(ctx)
}
