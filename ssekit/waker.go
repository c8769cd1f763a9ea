package ssekit

import (
	"sync"
	"time"
)

// waker wakes streams with queued events in rounds at most WriteDelay
// apart, instead of each enqueue waking its stream at once.
//
// Why: a stream writes everything queued when it wakes, one write and one
// flush, and a write system call costs about the same for one event as for
// fifty. Woken per event, a busy stream writes per event, and a broadcast
// to 10,000 streams makes 10,000 goroutines runnable while the next
// publish waits behind them. Woken in rounds, a busy stream gathers what
// arrived since its last round into one write, and a publish only appends
// to queues. A quiet hub pays no latency for it: the first round after a
// pause runs at once; only a stream that is busy waits, at most WriteDelay.
type waker struct {
	delay time.Duration
	kick  chan struct{} // capacity 1: "pending is not empty"
	done  chan struct{} // closed when run has returned

	mu      sync.Mutex
	pending []*client
	// spare is the previous round's slice, emptied, to be the next
	// pending; only run's goroutine touches it.
	spare []*client
}

func newWaker(delay time.Duration) *waker {
	return &waker{delay: delay, kick: make(chan struct{}, 1), done: make(chan struct{})}
}

// add schedules the clients for the next round.
func (w *waker) add(cs []*client) {
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

// run wakes rounds until stop is closed: one at once when clients are
// scheduled after a pause, then one every delay for as long as more are.
func (w *waker) run(stop <-chan struct{}) {
	defer close(w.done)
	t := time.NewTimer(w.delay)
	t.Stop()
	for {
		select {
		case <-w.kick:
		case <-stop:
			return
		}
		for w.round() {
			t.Reset(w.delay)
			select {
			case <-t.C:
			case <-stop:
				return
			}
		}
	}
}

// round wakes every scheduled client; it reports false if there was none.
func (w *waker) round() bool {
	w.mu.Lock()
	cs := w.pending
	w.pending = w.spare[:0]
	w.mu.Unlock()
	for _, c := range cs {
		c.signal()
	}
	clear(cs) // let ended clients be collected
	w.spare = cs[:0]
	return len(cs) > 0
}
