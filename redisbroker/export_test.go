package redisbroker

import (
	"context"

	"github.com/ssekit/sse/ssekit"
)

// PublishWithID publishes under a chosen publish id, as a retried send
// does.
func PublishWithID(ctx context.Context, b *Broker, m ssekit.Message, id string) error {
	return b.publishChannels(ctx, m, id)
}

// PublishUnannounced appends an event to channel without announcing it on
// the channel's Pub/Sub channel (the announcement goes nowhere): what a
// subscription sees when Pub/Sub loses a message.
func PublishUnannounced(ctx context.Context, b *Broker, channel, typ string) (string, error) {
	k := b.channelKey(channel)
	return publishScript.Run(ctx, b.rdb, []string{k, k + ":last", k + ":pub:" + publishID()},
		max(b.opts.MaxLen, 0), max(b.opts.MaxAge.Milliseconds(), 0), b.opts.DedupeWindow.Milliseconds(),
		b.opts.PositionTTL.Milliseconds(), k+":nowhere", publishID(), typ, "{}").Text()
}

// RefreshPresenceOnce writes src's presence once, with no goroutine to
// refresh or remove it: a node that dies right after.
func RefreshPresenceOnce(ctx context.Context, b *Broker, src PresenceSource) error {
	return newPresence(b, src).refresh(ctx)
}

// Followed returns the channels a subscription holds (followed or
// lingering).
func Followed(sub ssekit.Subscription) []string {
	s := sub.(*subscription)
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for ch := range s.chans {
		out = append(out, ch)
	}
	return out
}

// Resubscribe sends SSUBSCRIBE again for a channel the subscription holds,
// on its own connection, as go-redis does by itself after it re-dials a
// broken Pub/Sub connection.
func Resubscribe(ctx context.Context, sub ssekit.Subscription, channel string) error {
	s := sub.(*subscription)
	s.mu.Lock()
	lc := s.chans[channel]
	s.mu.Unlock()
	return lc.shard.ps.SSubscribe(ctx, lc.live)
}

// ClaimKey records m.Key for the publish id as a keyed Publish does first,
// and returns the id the key belongs to: what a node that died right after
// the claim leaves behind.
func ClaimKey(ctx context.Context, b *Broker, m ssekit.Message, id string) (string, error) {
	return b.claimKey(ctx, &m, id)
}
