package ssekit

import (
	"context"
	"errors"
)

// MaxBatch bounds PublishBatch: the publications one call may carry.
const MaxBatch = 1000

// ErrBatchTooLarge is PublishBatch's answer to more than MaxBatch
// publications: nothing was sent.
var ErrBatchTooLarge = errors.New("sse: batch too large")

// Publication is one event of a PublishBatch: whom it is for, the event,
// and optionally its IdempotencyKey.
type Publication struct {
	To    Target
	Event Event
	Key   string // "" for none
}

// PublishResult is what became of one Publication: the id Publish would
// have returned and whether it was a replay (see Replayed), or its error.
type PublishResult struct {
	ID       string
	Replayed bool
	Err      error
}

// PublishBatch publishes each of pubs as Publish would, in order, and
// answers each on its own: a publication that fails (an invalid event, an
// empty target, a key reused for another event…) does not stop the
// others. It is for a backend with many different events for many
// different addressees at once — 500 users told of 500 different things —
// which pays a caller's per-call cost (an HTTP request to ssehub, say)
// once instead of 500 times. It fails as a whole, sending nothing, only
// with ErrBatchTooLarge; once ctx is done, the publications not yet sent
// fail with its error.
func (h *Hub) PublishBatch(ctx context.Context, pubs []Publication) ([]PublishResult, error) {
	if len(pubs) > MaxBatch {
		return nil, ErrBatchTooLarge
	}
	out := make([]PublishResult, len(pubs))
	for i, p := range pubs {
		r := &out[i]
		if r.Err = ctx.Err(); r.Err != nil {
			continue
		}
		// An empty Key is no key, as IdempotencyKey("") is.
		r.ID, r.Err = h.Publish(ctx, p.To, p.Event, IdempotencyKey(p.Key), Replayed(&r.Replayed))
	}
	return out, nil
}
