package sse

import "sync"

// Reasons a stream ends, as counted in Stats.Disconnects.
const (
	ReasonClientGone = "client_gone" // the client closed the connection
	ReasonOverflow   = "overflow"    // its buffer was full (OverflowDisconnect)
	ReasonWriteError = "write_error" // a write failed or stalled past ClientTimeout
	ReasonEvicted    = "evicted"     // a newer connection of the user took its place
	ReasonRotated    = "rotated"     // it reached its MaxStreamAge
	ReasonShutdown   = "shutdown"    // the hub closed
	ReasonBroker     = "broker"      // the broker could not replay its history
)

// entry is one framed event with the id it carries, so that the catch-up
// after a replay can drop what the replay already wrote. Every recipient
// queues a pointer to the same entry: a queue slot is one word.
type entry struct {
	id    string
	frame []byte
	// resync marks a broker's announcement that its history broke: it is
	// never "already written" by a replay, whatever its id.
	resync bool
}

// client is one registered stream. The hub enqueues into it from the
// broker's delivery; the stream's own goroutine drains it. Nothing here
// touches the socket.
type client struct {
	id   string
	user string // "" for an anonymous connection
	slot int    // index in registry.all, guarded by the registry lock

	// wake tells the stream's goroutine to look at the client: events are
	// queued, the hub ended the stream, or its timer fired. Capacity 1. One
	// channel for all three, so that an idle stream parks on a two-case
	// select (this and its request's context), the least it can hold.
	wake chan struct{}
	// abort cuts a write that is blocked on the socket short, so that a
	// stream the hub ends is not held by a peer that stopped reading.
	abort func()

	mu    sync.Mutex
	queue []*entry
	// woken says a wake-up is owed or on its way: set by the enqueue that
	// finds it clear, which then has the client woken, and cleared when
	// the stream takes the queue. Until then, further enqueues only append.
	woken      bool
	limit      int  // BufferSize, once live
	catchingUp bool // replay in progress: overflow means "replay again", not "disconnect"
	overflowed bool
	// floor is the last id the replay wrote, until a live event past it
	// arrives: a broker's live delivery may lag its history (Redis: the
	// XREAD loop behind an XRANGE), so an event the replay already wrote
	// can still come live after the catch-up ended.
	floor  string
	reason string // why the hub ended the stream; "" while it runs
	ticked bool   // the stream's heartbeat and rotation timer fired
}

func newClient(id, user string, limit int, abort func()) *client {
	return &client{
		id:         id,
		user:       user,
		abort:      abort,
		limit:      limit,
		catchingUp: true,
		wake:       make(chan struct{}, 1),
	}
}

// catchUpLimit is how many live events a client may queue while its replay
// runs, before the replay has to start over from where it got to.
const catchUpLimit = 256

// enqueueResult is what became of one frame offered to a client.
type enqueueResult int

const (
	queued enqueueResult = iota
	dropped
	disconnected
	ignored // the stream is ending or replaying over it
)

// enqueue offers e without ever blocking the publisher. When it queues e
// to a stream that is owed no wake-up yet, wake is true: the caller must
// see that the stream is woken, now (signal) or in the next round of its
// hub's waker.
func (c *client) enqueue(e *entry, policy OverflowPolicy) (_ enqueueResult, wake bool) {
	c.mu.Lock()
	switch {
	case c.reason != "":
		c.mu.Unlock()
		return ignored, false
	case c.floor != "" && !e.resync && CompareIDs(e.id, c.floor) <= 0:
		c.mu.Unlock()
		return ignored, false // the replay wrote it
	case c.catchingUp && len(c.queue) >= max(c.limit, catchUpLimit):
		// The replay loop will fetch these from the history again.
		c.overflowed = true
		c.queue = c.queue[:0]
		c.mu.Unlock()
		return ignored, false
	case len(c.queue) >= c.limit && policy == OverflowDrop:
		c.mu.Unlock()
		return dropped, false
	case len(c.queue) >= c.limit:
		c.endLocked(ReasonOverflow)
		c.mu.Unlock()
		return disconnected, false
	}
	// Past the replay (ids only grow) or a resync (ids may start over):
	// nothing more to drop.
	c.floor = ""
	c.queue = append(c.queue, e)
	wake = !c.woken
	c.woken = true
	// Half full: wake it now rather than in the next round, so that
	// overflow means the client cannot keep up, not that the hub held
	// its events back.
	urgent := len(c.queue) > c.limit/2
	c.mu.Unlock()
	if urgent {
		c.signal()
	}
	return queued, wake
}

// signal wakes the stream's goroutine; it never blocks.
func (c *client) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// take swaps the queue out, handing the caller its entries; spare is an
// emptied earlier result to reuse as the next queue. It also returns why
// the hub ended the stream ("" if it did not) and whether the stream's
// timer fired since the last take.
func (c *client) take(spare []*entry) (q []*entry, reason string, ticked bool) {
	c.mu.Lock()
	q, reason, ticked = c.queue, c.reason, c.ticked
	c.queue = spare[:0]
	c.woken, c.ticked = false, false
	c.mu.Unlock()
	return q, reason, ticked
}

// tick is the stream's timer: it wakes the stream to send a heartbeat or
// to end at its maximum age.
func (c *client) tick() {
	c.mu.Lock()
	c.ticked = true
	c.mu.Unlock()
	c.signal()
}

// endCatchUp finishes a replay that wrote everything up to last: it returns
// false if live events overflowed meanwhile (replay again from last), and
// otherwise drops the queued events the replay already covered and
// switches the client to live delivery.
func (c *client) endCatchUp(last string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.overflowed {
		c.overflowed = false
		return false
	}
	c.catchingUp = false
	c.floor = last
	keep := c.queue[:0]
	for _, e := range c.queue {
		if e.resync || CompareIDs(e.id, last) > 0 {
			keep = append(keep, e)
		}
	}
	clear(c.queue[len(keep):])
	c.queue = keep
	return true
}

// end closes the stream for reason; the first reason wins. It reports
// whether this call ended it.
func (c *client) end(reason string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.endLocked(reason)
}

func (c *client) endLocked(reason string) bool {
	if c.reason != "" {
		return false
	}
	c.reason = reason
	c.queue = nil
	c.signal()
	if c.abort != nil {
		c.abort()
	}
	return true
}

// endReason returns why the hub ended the stream, or "".
func (c *client) endReason() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reason
}
