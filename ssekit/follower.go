package ssekit

import (
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
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

// queuedEvent is one event as every recipient queues it: its frame
// without the id line (each connection writes its own position there) and
// its positions, by which a stream updates its own and the catch-up after
// a replay drops what the replay already wrote. Every recipient queues a
// pointer to the same queuedEvent: a queue slot is one word.
type queuedEvent struct {
	msg   *Message // Channels and Positions; nil for a client-only event
	frame []byte
	// resync marks a broker's announcement that the history of msg's
	// channels broke: msg's positions are where each starts again. Its
	// frame is written per connection, and it is never "already written"
	// by a replay, whatever its position.
	resync bool
}

// newQueuedEvent frames m once for all its recipients. A resync's frame is
// written per connection (it names the connection's own channels).
func newQueuedEvent(m *Message) *queuedEvent {
	e := &queuedEvent{resync: m.Type == TypeResync}
	if len(m.Positions) > 0 {
		e.msg = m
	}
	if !e.resync {
		e.frame = appendFrame(make([]byte, 0, frameSize("", m.Type, m.Data)), "", m.Type, m.Data)
	}
	return e
}

// positionIn returns the event's position in channel, or "".
func (e *queuedEvent) positionIn(channel string) string {
	if e.msg == nil {
		return ""
	}
	return e.msg.positionIn(channel)
}

// follower is one registered stream. The hub enqueues into it from the
// broker's delivery; the stream's writer drains it (see stream.go for who
// that is). Nothing here touches the socket, except abort.
type follower struct {
	// The fields every delivery touches come first, so that an enqueue,
	// one per recipient of a broadcast to thousands, reads two cache lines
	// of the follower rather than three.

	mu    sync.Mutex
	queue []*queuedEvent
	// lastTake is when the stream last took its queue (monotonic), which
	// tells a busy stream from a quiet one (see enqueue) and when a busy
	// one is due (waker.round); atomic, as the waker reads it unlocked.
	lastTake atomic.Int64
	// wake tells the stream's goroutine to look at the follower: events are
	// queued, the hub ended the stream, or its timer fired. Capacity 1. One
	// channel for all three, so that an idle stream parks on a two-case
	// select (this and its request's context), the least it can hold. Made
	// when the goroutine is about to wait on it (parkChannel), so that a
	// stream served by wake-ups has none.
	wake atomic.Pointer[chan struct{}]
	// steps, once set, is woken instead: a detached stream served by
	// wake-ups (eventStream) has no goroutine to wake while it idles, and
	// each wake-up runs a step of it. Set once its opening is written,
	// never unset.
	//
	// Until one of the two is set, a wake-up reaches nobody; the stream
	// asks owed once it has set it, which covers them.
	steps atomic.Pointer[eventStream]
	limit int // BufferSize, once live
	// wakePending says a wake-up is owed or on its way: set by the
	// enqueue that finds it clear, which then has the follower woken, and
	// cleared when the stream takes the queue. Until then, further
	// enqueues only append.
	wakePending bool
	catchingUp  bool // replay in progress: overflow means "replay again", not "disconnect"
	overflowed  bool
	ticked      bool   // the stream's heartbeat and rotation timer fired
	recheck     bool   // RecheckSessions asked for a CheckSession
	reason      string // why the hub ended the stream; "" while it runs
	// floors[k] is the last position in channels[k] the replay wrote,
	// until a live event of that channel past it arrives: a broker's live
	// delivery may lag its history (Redis: a subscription behind a read),
	// so an event the replay already wrote can still come live after the
	// catch-up ended. nil when no channel has one.
	floors []string

	prevTake  int64 // the take before lastTake (see busy)
	lastBatch int   // how many events the last take took (see busy)
	// abort cuts a write that is blocked on the socket short, so that a
	// stream the hub ends is not held by a peer that stopped reading.
	abort func()

	id   string
	user string // "" for an anonymous connection
	// channels are the channels the stream follows, BroadcastChannel
	// first, and tags their letters in its event ids; set before the
	// follower is registered, never changed.
	channels []string
	tags     []string
	slot     int // index in registry.all, guarded by the registry lock
}

// newFollower returns the follower of a stream of user ("" for none) that
// follows the broadcast channel, the user's and extra. It fails when two
// of the channels would share a tag in the stream's ids.
func newFollower(id, user string, extra []string, limit int, abort func()) (*follower, error) {
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
	c := &follower{
		id:         id,
		user:       user,
		channels:   channels,
		tags:       tags,
		abort:      abort,
		limit:      limit,
		catchingUp: true,
	}
	c.lastTake.Store(math.MinInt64) // quiet: it never wrote
	c.prevTake = math.MinInt64
	return c, nil
}

// catchUpLimit is how many live events a follower may queue while its replay
// runs, before the replay has to start over from where it got to.
const catchUpLimit = 256

// enqueueResult is what became of one frame offered to a follower.
type enqueueResult int

const (
	queued enqueueResult = iota
	dropped
	disconnected
	ignored // the stream is ending or replaying over it
)

// channelIndex returns the index of ch in c.channels, or -1.
func (c *follower) channelIndex(ch string) int { return slices.Index(c.channels, ch) }

// followsAny reports whether c follows one of sorted.
func (c *follower) followsAny(sorted []string) bool {
	for _, ch := range c.channels {
		if _, ok := slices.BinarySearch(sorted, ch); ok {
			return true
		}
	}
	return false
}

// wakeup is what enqueue asks of its caller for the stream it queued to.
type wakeup int

const (
	wakeNone    wakeup = iota // nothing: a wake-up is on its way, or nothing was queued
	wakeQuiet                 // the stream is quiet: write it now (on the publisher's goroutine, if it can: writeHere), or signal it
	wakeNow                   // signal it now: its queue is half full
	wakeInRound               // it is busy: wake it in the next round of its hub's waker
)

// enqueue offers e, which reached c through its channel k at position pos
// (k -1 and pos "" for an event addressed to c by id), without ever
// blocking the publisher, and says what the caller is to do to have the
// stream write it. A quiet stream (not busy, for busySince = now -
// WriteDelay and delay = WriteDelay) writes at once; a busy one waits for
// the waker's round, and gathers what else arrives until then into the
// same write. Only the enqueue that finds no wake-up on its way asks for
// one, but for a queue half full, which is signalled every time.
func (c *follower) enqueue(e *queuedEvent, k int, pos string, policy OverflowPolicy, busySince, delay int64) (enqueueResult, wakeup) {
	c.mu.Lock()
	floor := ""
	if k >= 0 && c.floors != nil && !e.resync {
		floor = c.floors[k]
	}
	switch {
	case c.reason != "":
		c.mu.Unlock()
		return ignored, wakeNone
	case floor != "" && CompareIDs(pos, floor) <= 0,
		c.floors != nil && !e.resync && e.msg != nil && len(e.msg.Channels) > 1 && c.covered(e, c.floors):
		// The replay wrote it, through this channel or another of its
		// channels (whose pages it reached before this one's).
		c.mu.Unlock()
		return ignored, wakeNone
	case c.catchingUp && len(c.queue) >= max(c.limit, catchUpLimit):
		// The replay loop will fetch these from the history again.
		c.overflowed = true
		c.queue = c.queue[:0]
		c.mu.Unlock()
		return ignored, wakeNone
	case len(c.queue) >= c.limit && policy == OverflowDrop:
		c.mu.Unlock()
		return dropped, wakeNone
	case len(c.queue) >= c.limit:
		c.endLocked(ReasonOverflow)
		c.mu.Unlock()
		return disconnected, wakeNone
	}
	// Past the replay (positions only grow) or a resync (they may start
	// over): nothing more of this channel to drop.
	if floor != "" || (e.resync && k >= 0 && c.floors != nil) {
		c.floors[k] = ""
	}
	c.queue = append(c.queue, e)
	owed := c.wakePending
	c.wakePending = true
	// Half full: wake it now rather than in the next round, so that
	// overflow means the client cannot keep up, not that the hub held
	// its events back. Quiet: nothing would gather, so the round could
	// only add its delay.
	when := wakeInRound
	switch {
	case !owed && !c.busy(busySince, delay):
		when = wakeQuiet
	case len(c.queue) > c.limit/2:
		when = wakeNow
	case owed:
		when = wakeNone
	}
	c.mu.Unlock()
	return queued, when
}

// writesHere reports whether the stream's step can run on a publisher's
// goroutine (writeHere): a detached stream served by wake-ups, on a
// socket it may write to without waiting.
func (c *follower) writesHere() bool {
	es := c.steps.Load()
	return es != nil && es.try != nil
}

// writeHere has the quiet stream write what is queued, on the caller's
// goroutine when no goroutine is stepping it (eventStream.stepHere), and
// otherwise by a wake-up. A publisher calls it once the broker has let go
// of its lock (publisherWrites).
func (c *follower) writeHere() {
	if es := c.steps.Load(); es != nil && es.stepHere() {
		return
	}
	c.signal()
}

// signal wakes the stream's goroutine, or runs a step of a stream that
// has none; it never blocks.
func (c *follower) signal() {
	if es := c.steps.Load(); es != nil {
		es.wake()
		return
	}
	if wake := c.wake.Load(); wake != nil {
		select {
		case *wake <- struct{}{}:
		default:
		}
	}
}

// parkChannel gives c the channel its stream's goroutine waits on for
// wake-ups, and returns it, holding a wake-up already if one was owed
// (owed) while there was none.
func (c *follower) parkChannel() <-chan struct{} {
	wake := make(chan struct{}, 1)
	c.wake.Store(&wake)
	if c.owed() {
		// A signal may have filled it since the Store: one wake-up is
		// all a stream needs, and this goroutine is the only reader.
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	return wake
}

// owed reports whether the stream has something to do that a wake-up
// announced: queued events, its timer, a recheck, its end. A stream asks
// after it set wake or steps, so that a wake-up before that, which
// reached nobody, is not lost: every signal follows a change made under
// c.mu, so either owed sees the change, or that signal sees what the
// stream set. It does not take the queue: that would mark a stream that
// just opened busy (lastTake), and its first event would wait for the
// waker's round.
func (c *follower) owed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.wakePending || c.ticked || c.recheck || c.reason != ""
}

// busy reports whether the stream gets events faster than it writes, so
// that they gather: its last write carried more than one event (under
// load, when writes lag, however long ago), or it wrote since busySince
// and once more within delay before that. A stream that wrote one event a
// moment ago but is not getting events at that pace — one event to one
// user now and then — is quiet: waiting would gather nothing and only add
// the delay. Its caller holds c.mu.
func (c *follower) busy(busySince, delay int64) bool {
	return c.lastBatch > 1 || (c.lastTake.Load() >= busySince && c.prevTake >= busySince-delay)
}

// take swaps the queue out, handing the caller its entries; spare is an
// emptied earlier result to reuse as the next queue. It also returns why
// the hub ended the stream ("" if it did not) and whether the stream's
// timer fired since the last take. now (monotonic) marks the stream busy
// for the next WriteDelay: see enqueue.
func (c *follower) take(spare []*queuedEvent, now int64) (q []*queuedEvent, reason string, ticked bool) {
	c.mu.Lock()
	reason, ticked = c.reason, c.ticked
	c.ticked = false
	q = c.swapQueue(spare, now)
	c.mu.Unlock()
	return q, reason, ticked
}

// swapQueue hands the queue over for take and takeIf; c.mu is held.
func (c *follower) swapQueue(spare []*queuedEvent, now int64) []*queuedEvent {
	q := c.queue
	c.queue = spare[:0]
	c.wakePending = false
	c.prevTake = c.lastTake.Load()
	c.lastTake.Store(now)
	c.lastBatch = len(q)
	return q
}

// takeIf takes the queue as take does, when the stream has nothing but
// events to write (its timer did not fire, no recheck, the hub did not end
// it) and fits says the events can be written where the caller runs
// (stream.idsFit); it reports false, and takes nothing, otherwise.
func (c *follower) takeIf(spare []*queuedEvent, now int64, fits func([]*queuedEvent) bool) ([]*queuedEvent, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case len(c.queue) == 0:
		// Taken by the step that ran meanwhile: no take to record, or
		// the stream would look busy to its next event.
		return spare[:0], true
	case c.reason != "" || c.ticked || c.recheck || !fits(c.queue):
		return nil, false
	}
	return c.swapQueue(spare, now), true
}

// requestCheck asks the stream to run Config.CheckSession now.
func (c *follower) requestCheck() {
	c.mu.Lock()
	c.recheck, c.ticked = true, true
	c.mu.Unlock()
	c.signal()
}

// takeRecheck reports, once, whether a check was asked for.
func (c *follower) takeRecheck() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.recheck
	c.recheck = false
	return r
}

// tick is the stream's timer: it wakes the stream to send a heartbeat or
// to end at its maximum age.
func (c *follower) tick() {
	c.mu.Lock()
	c.ticked = true
	c.mu.Unlock()
	c.signal()
}

// endCatchUp finishes a replay that wrote, in each channel k, everything
// up to last[k]: it returns false if live events overflowed meanwhile
// (replay again from last), and otherwise drops the queued events the
// replay already covered and switches the follower to live delivery.
func (c *follower) endCatchUp(last []string) bool {
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
func (c *follower) covered(e *queuedEvent, last []string) bool {
	for k, ch := range c.channels {
		if p := e.positionIn(ch); p != "" && CompareIDs(p, last[k]) <= 0 {
			return true
		}
	}
	return false
}

// end closes the stream for reason; the first reason wins. It reports
// whether this call ended it.
func (c *follower) end(reason string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.endLocked(reason)
}

func (c *follower) endLocked(reason string) bool {
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
func (c *follower) endReason() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reason
}

// clockStart anchors monotonic.
var clockStart = time.Now()

// monotonic is a reading of the monotonic clock, in nanoseconds.
func monotonic() int64 { return int64(time.Since(clockStart)) }
