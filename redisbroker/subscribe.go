package redisbroker

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/redis/go-redis/v9"

	sse "github.com/ssekit/sse"
)

// Subscribe hands fn every entry appended to the stream after Subscribe
// returns, in order, from one goroutine that reads with XREAD BLOCK from
// the last id it delivered. When Redis fails, the goroutine logs, backs off
// and reads again from that id, so that nothing is skipped or repeated.
//
// When the history breaks under it (entries trimmed before it could read
// them, or a Redis that came back empty), it hands fn a broadcast message
// of type sse.TypeResync, as the hub's own resync event, so that every
// client of this node is told to refetch its state; after a Redis that
// came back empty, it then reads the new stream from its start, whose ids
// may be lower than those it delivered before.
//
// ctx bounds the subscription's lifetime; the goroutine stops within Block
// once ctx is done or the broker is closed. Subscribe itself fails if the
// stream's head cannot be read.
func (b *Broker) Subscribe(ctx context.Context, fn func(sse.Message)) error {
	if b.isClosed() {
		return sse.ErrBrokerClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	from, err := b.Head(ctx)
	if err != nil {
		return err
	}
	return b.goWithContext(ctx, func(ctx context.Context) {
		r := &reader{b: b, fn: fn, cursor: from, pos: from}
		r.run(ctx)
	})
}

// reader is one subscription's state, owned by its goroutine.
type reader struct {
	b  *Broker
	fn func(sse.Message)
	// cursor is where the next XREAD starts; pos is the id the next entry
	// must record as its predecessor for the history to be unbroken. They
	// differ only after a resync.
	cursor, pos string
	// resetAt is the entry that last made the reader start over from the
	// stream's start, so that a malformed stream cannot make it loop.
	resetAt string

	failures int       // consecutive failed reads
	lastLog  time.Time // of a failure, to keep a long outage's log readable
}

// failureLogEvery bounds how often a long outage is logged.
const failureLogEvery = 10 * time.Second

func (r *reader) run(ctx context.Context) {
	b := r.b
	for ctx.Err() == nil {
		res, err := b.rdb.XRead(ctx, &redis.XReadArgs{
			Streams: []string{b.stream, r.cursor},
			Count:   b.opts.ReadCount,
			Block:   b.opts.Block,
		}).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			if ctx.Err() != nil {
				return
			}
			r.failed(ctx, err)
			continue
		}
		if r.failures > 0 {
			b.log.Warn("redisbroker: subscription resumed", "stream", b.stream, "after", r.cursor, "failed_reads", r.failures)
			r.failures = 0
		}
		if errors.Is(err, redis.Nil) {
			// Nothing new for Block. A stream that restarted with lower ids
			// would stay silent past the cursor for ever: look at its head.
			r.checkHead(ctx)
			continue
		}
		for _, s := range res {
			for _, xm := range s.Messages {
				if ctx.Err() != nil || !r.handle(ctx, xm) {
					break
				}
			}
		}
	}
}

// failed logs a failed read and waits before the next one.
func (r *reader) failed(ctx context.Context, err error) {
	r.failures++
	d := backoff(r.failures)
	if r.failures == 1 || time.Since(r.lastLog) >= failureLogEvery {
		r.b.log.Error("redisbroker: subscription cannot read from Redis; retrying from the last delivered id",
			"stream", r.b.stream, "after", r.cursor, "failed_reads", r.failures, "retry_in", d.String(), "err", err)
		r.lastLog = time.Now()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// handle delivers one entry after checking that it follows the last one;
// it returns false when the rest of the batch must be dropped because the
// reader starts over.
func (r *reader) handle(ctx context.Context, xm redis.XMessage) bool {
	b := r.b
	prev, _ := xm.Values[fieldPrev].(string)
	switch {
	case prev == r.pos || sse.CompareIDs(prev, r.pos) == 0:
	case sse.ValidID(prev) && sse.CompareIDs(prev, r.pos) < 0 && r.resetAt != xm.ID:
		// The entry before this one is older than what was delivered:
		// this is a new stream (Redis restarted empty, or the stream was
		// deleted), whose older entries the XREAD skipped. Announce the loss
		// and read the new stream from its start.
		b.log.Error("redisbroker: the stream was reset (Redis lost its data?); telling clients to resync",
			"stream", b.stream, "delivered_up_to", r.pos, "entry", xm.ID, "entry_prev", prev)
		r.deliver(ctx, resyncMessage("0-0", r.pos))
		r.resetAt = xm.ID
		r.cursor, r.pos = "0-0", "0-0"
		return false
	default:
		// Entries between the last delivered one and this one were
		// trimmed before this reader got to them.
		b.log.Error("redisbroker: entries were trimmed before this node read them; telling clients to resync",
			"stream", b.stream, "delivered_up_to", r.pos, "entry", xm.ID, "entry_prev", prev)
		id := prev
		if !validStreamID(id) {
			id = r.pos
		}
		r.deliver(ctx, resyncMessage(id, r.pos))
	}
	r.deliver(ctx, decode(xm))
	r.cursor, r.pos = xm.ID, xm.ID
	return true
}

// checkHead starts over from the stream's start when its head is before
// the cursor: the stream was lost (deleted, or Redis restarted empty) and
// its new entries, if any, have ids the cursor would skip. Redis's own
// retries can hide the outage from the read loop, hence this check rather
// than one after failed reads only.
func (r *reader) checkHead(ctx context.Context) {
	if r.cursor == "0-0" {
		return
	}
	head, err := r.b.Head(ctx)
	if err != nil || sse.CompareIDs(head, r.cursor) >= 0 {
		return // a failure shows in the next read
	}
	r.b.log.Error("redisbroker: the stream went back (Redis lost its data?); telling clients to resync",
		"stream", r.b.stream, "delivered_up_to", r.pos, "head", head)
	r.deliver(ctx, resyncMessage("0-0", r.pos))
	r.cursor, r.pos, r.resetAt = "0-0", "0-0", ""
}

// deliver hands m to fn unless the subscription has ended.
func (r *reader) deliver(ctx context.Context, m sse.Message) {
	if ctx.Err() == nil {
		r.fn(m)
	}
}

// resyncMessage is the broadcast a subscription delivers when the history
// broke: it reads to clients as the hub's own resync event. Its id moves
// clients to where the unbroken history starts again.
func resyncMessage(id, lastID string) sse.Message {
	data, _ := json.Marshal(struct {
		Reason      string `json:"reason"`
		LastEventID string `json:"last_event_id"`
	}{"history_unavailable", lastID})
	return sse.Message{ID: id, Type: sse.TypeResync, Data: data, Time: time.Now()}
}

// Backoff bounds after a failed read.
const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 2 * time.Second
)

// backoff returns the wait after the n-th consecutive failure (n ≥ 1):
// exponential from minBackoff up to maxBackoff, with jitter over its upper
// half, so that every node of a cluster does not hit a recovering Redis at
// the same instant.
func backoff(n int) time.Duration {
	d := maxBackoff
	if n < 16 {
		d = min(minBackoff<<(n-1), maxBackoff)
	}
	return d/2 + rand.N(d/2+1)
}
