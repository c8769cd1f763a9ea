package ssekit

import (
	"sync"
	"time"
)

// waker wakes busy streams with queued events in rounds WriteDelay apart,
// instead of each enqueue waking its stream at once.
//
// Why: a stream writes everything queued when it wakes, one write and one
// flush, and a write system call costs about the same for one event as for
// fifty. Woken per event, a busy stream writes per event, and a broadcast
// to 10,000 streams makes 10,000 goroutines runnable while the next
// publish waits behind them. Woken in rounds, a busy stream gathers what
// arrived since its last write into one write, and a publish only appends
// to queues. A quiet stream pays no latency for it: only a busy stream,
// one that wrote twice within about WriteDelay or whose last write
// carried several events (follower.busy), waits for
// a round; an event for any other is written at once (follower.enqueue),
// on the publisher's goroutine when it can be (follower.writeHere), so
// one event to one user goes out as it comes however busy the hub is.
type waker struct {
	delay time.Duration
	kick  chan struct{} // capacity 1: "pending is not empty"
	done  chan struct{} // closed when run has returned

	mu      sync.Mutex
	pending []*follower
	// spare is the previous round's slice, emptied, to be the next
	// pending; only run's goroutine touches it.
	spare []*follower

	// lists recycles the wake batches of deliveries, which run on the
	// broker's goroutines, several at once.
	lists sync.Pool
}

func newWaker(delay time.Duration) *waker {
	return &waker{delay: delay, kick: make(chan struct{}, 1), done: make(chan struct{})}
}

// wakeBatch gathers the followers one delivery owes a wake-up, so that
// the waker's lock is taken once per delivery, not once per recipient.
// Without a waker (WriteDelay < 0) each is woken at once.
type wakeBatch struct {
	w    *waker
	list *[]*follower
}

// batch starts a delivery's wake batch; w may be nil.
func (w *waker) batch() wakeBatch {
	if w == nil {
		return wakeBatch{}
	}
	list, _ := w.lists.Get().(*[]*follower)
	if list == nil {
		list = new([]*follower)
	}
	return wakeBatch{w: w, list: list}
}

// add owes c a wake-up.
func (b wakeBatch) add(c *follower) {
	if b.list == nil {
		c.signal()
		return
	}
	*b.list = append(*b.list, c)
}

// schedule hands the batch to the next round and recycles its list.
func (b wakeBatch) schedule() {
	if b.list == nil {
		return
	}
	b.w.add(*b.list)
	clear(*b.list) // let ended followers be collected
	*b.list = (*b.list)[:0]
	b.w.lists.Put(b.list)
}

// add schedules the followers for the next round.
func (w *waker) add(cs []*follower) {
	if len(cs) == 0 {
		return
	}
	w.mu.Lock()
	w.pending = append(w.pending, cs...)
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// run wakes rounds until stop is closed: every tick (a quarter of delay)
// for as long as streams are scheduled. Only busy streams are scheduled
// (a quiet one is woken by its enqueue), and a round wakes those whose
// last write is delay old: each busy stream writes at most once per delay,
// gathering what arrived meanwhile, and an event waits at most delay and
// a tick, less when its stream wrote a while ago.
func (w *waker) run(stop <-chan struct{}) {
	defer close(w.done)
	tick := max(w.delay/4, time.Millisecond)
	t := time.NewTimer(tick)
	t.Stop()
	for {
		select {
		case <-w.kick:
		case <-stop:
			return
		}
		for {
			t.Reset(tick)
			select {
			case <-t.C:
			case <-stop:
				return
			}
			if !w.round(monotonic(), tick) {
				break
			}
		}
	}
}

// round wakes every scheduled follower whose last write (lastTake) is
// delay old, and keeps the others for a later round: a busy stream writes
// at most once per delay, as when all were woken in one round per delay;
// it reports false if none was scheduled.
func (w *waker) round(now int64, tick time.Duration) bool {
	w.mu.Lock()
	cs := w.pending
	w.pending = w.spare[:0]
	w.mu.Unlock()
	due := now - int64(w.delay)
	n := len(cs)
	later := cs[:0] // in place: no list per round
	for _, c := range cs {
		if c.lastTake.Load() <= due {
			c.signal()
		} else {
			later = append(later, c)
		}
	}
	if len(later) > 0 {
		w.mu.Lock()
		w.pending = append(w.pending, later...)
		w.mu.Unlock()
	}
	clear(cs[:n]) // let ended followers be collected
	w.spare = cs[:0]
	return n > 0
}
