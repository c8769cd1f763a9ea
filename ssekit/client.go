package ssekit

import (
	"fmt"
	"slices"
	"sync"
)

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

// entry is one event as every recipient queues it: its frame without the
// id line (each connection writes its own position there) and its
// positions, by which a stream updates its own and the catch-up after a
// replay drops what the replay already wrote. Every recipient queues a
// pointer to the same entry: a queue slot is one word.
type entry struct {
	msg   *Message // Channels and Positions; nil for a client-only event
	frame []byte
	// resync marks a broker's announcement that the history of msg's
	// channels broke: msg's positions are where each starts again. Its
	// frame is written per connection, and it is never "already written"
	// by a replay, whatever its position.
	resync bool
}

// positionIn returns the entry's position in channel, or "".
func (e *entry) positionIn(channel string) string {
	if e.msg == nil {
		return ""
	}
	return e.msg.positionIn(channel)
}

// client is one registered stream. The hub enqueues into it from the
// broker's delivery; the stream's writer drains it (see stream.go for who
// that is). Nothing here touches the socket, except abort.
type client struct {
	// The fields every delivery touches come first, so that an enqueue,
	// one per recipient of a broadcast to thousands, reads two cache lines
	// of the client rather than three.

	mu    sync.Mutex
	queue []*entry
	// woken says a wake-up is owed or on its way: set by the enqueue that
	// finds it clear, which then has the client woken, and cleared when
	// the stream takes the queue. Until then, further enqueues only append.
	woken      bool
	catchingUp bool // replay in progress: overflow means "replay again", not "disconnect"
	overflowed bool
	ticked     bool   // the stream's heartbeat and rotation timer fired
	recheck    bool   // RecheckSessions asked for a CheckSession
	limit      int    // BufferSize, once live
	reason     string // why the hub ended the stream; "" while it runs
	// floors[k] is the last position in channels[k] the replay wrote,
	// until a live event of that channel past it arrives: a broker's live
	// delivery may lag its history (Redis: a subscription behind a read),
	// so an event the replay already wrote can still come live after the
	// catch-up ended. nil when no channel has one.
	floors []string

	// wake tells the stream's goroutine to look at the client: events are
	// queued, the hub ended the stream, or its timer fired. Capacity 1. One
	// channel for all three, so that an idle stream parks on a two-case
	// select (this and its request's context), the least it can hold.
	wake chan struct{}
	// abort cuts a write that is blocked on the socket short, so that a
	// stream the hub ends is not held by a peer that stopped reading.
	abort func()

	id   string
	user string // "" for an anonymous connection
	// channels are the channels the stream follows, BroadcastChannel
	// first, and tags their letters in its event ids; set before the
	// client is registered, never changed.
	channels []string
	tags     []string
	slot     int // index in registry.all, guarded by the registry lock
}

// newClient returns the client of a stream of user ("" for none) that
// follows the broadcast channel, the user's and extra. It fails when two
// of the channels would share a tag in the stream's ids.
func newClient(id, user string, extra []string, limit int, abort func()) (*client, error) {
	n := 1 + len(extra)
	if user != "" {
		n++
	}
	// One allocation for both lists: every stream holds them for life.
	both := make([]string, 2*n)
	channels, tags := both[:0:n], both[n:]
	channels = append(channels, BroadcastChannel)
	if user != "" {
		channels = append(channels, UserChannel(user))
	}
	channels = append(channels, extra...)
	for k, ch := range channels {
		if slices.Contains(channels[:k], ch) {
			return nil, fmt.Errorf("sse: channel %q followed twice", ch)
		}
		tags[k] = channelTag(ch)
		if slices.Contains(tags[:k], tags[k]) {
			return nil, fmt.Errorf("sse: channels %q and %q cannot be followed together", channels[slices.Index(tags[:k], tags[k])], ch)
		}
	}
	return &client{
		id:         id,
		user:       user,
		channels:   channels,
		tags:       tags,
		abort:      abort,
		limit:      limit,
		catchingUp: true,
		wake:       make(chan struct{}, 1),
	}, nil
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

// channelIndex returns the index of ch in c.channels, or -1.
func (c *client) channelIndex(ch string) int {
	for k, x := range c.channels {
		if x == ch {
			return k
		}
	}
	return -1
}

// followsAny reports whether c follows one of sorted.
func (c *client) followsAny(sorted []string) bool {
	for _, ch := range c.channels {
		if _, ok := slices.BinarySearch(sorted, ch); ok {
			return true
		}
	}
	return false
}

// enqueue offers e, which reached c through its channel k at position pos
// (k -1 and pos "" for an event addressed to c by id), without ever
// blocking the publisher. When it queues e to a stream that is owed no
// wake-up yet, wake is true: the caller must see that the stream is woken,
// now (signal) or in the next round of its hub's waker.
func (c *client) enqueue(e *entry, k int, pos string, policy OverflowPolicy) (_ enqueueResult, wake bool) {
	c.mu.Lock()
	floor := ""
	if k >= 0 && c.floors != nil && !e.resync {
		floor = c.floors[k]
	}
	switch {
	case c.reason != "":
		c.mu.Unlock()
		return ignored, false
	case floor != "" && CompareIDs(pos, floor) <= 0,
		c.floors != nil && !e.resync && e.msg != nil && len(e.msg.Channels) > 1 && c.covered(e, c.floors):
		// The replay wrote it, through this channel or another of its
		// channels (whose pages it reached before this one's).
		c.mu.Unlock()
		return ignored, false
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
	// Past the replay (positions only grow) or a resync (they may start
	// over): nothing more of this channel to drop.
	if floor != "" || (e.resync && k >= 0 && c.floors != nil) {
		c.floors[k] = ""
	}
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

// requestCheck asks the stream to run Config.CheckSession now.
func (c *client) requestCheck() {
	c.mu.Lock()
	c.recheck, c.ticked = true, true
	c.mu.Unlock()
	c.signal()
}

// takeRecheck reports, once, whether a check was asked for.
func (c *client) takeRecheck() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.recheck
	c.recheck = false
	return r
}

// tick is the stream's timer: it wakes the stream to send a heartbeat or
// to end at its maximum age.
func (c *client) tick() {
	c.mu.Lock()
	c.ticked = true
	c.mu.Unlock()
	c.signal()
}

// endCatchUp finishes a replay that wrote, in each channel k, everything
// up to last[k]: it returns false if live events overflowed meanwhile
// (replay again from last), and otherwise drops the queued events the
// replay already covered and switches the client to live delivery.
func (c *client) endCatchUp(last []string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.overflowed {
		c.overflowed = false
		return false
	}
	c.catchingUp = false
	c.floors = slices.Clone(last)
	keep := c.queue[:0]
	for _, e := range c.queue {
		if e.resync || !c.covered(e, last) {
			keep = append(keep, e)
		}
	}
	clear(c.queue[len(keep):])
	c.queue = keep
	return true
}

// covered reports whether a replay that reached last wrote e: e is in one
// of c's channels at or before where the replay got to.
func (c *client) covered(e *entry, last []string) bool {
	for k, ch := range c.channels {
		if p := e.positionIn(ch); p != "" && CompareIDs(p, last[k]) <= 0 {
			return true
		}
	}
	return false
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
