package isolation

import (
	"context"
	"errors"
	"net/http"
	"sync"

	"github.com/ssekit/sse/sseclient"
)

// stream is one connection of the run, read by an sseclient.Client on a
// goroutine of its own. The client asks for its topics and resumes from
// its lineage's last id; a reconnection of its own would blur what the
// connection was sent, so the first sign of one ends the stream and is
// reported.
type stream struct {
	n        int // the run's number for it, in messages
	lin      *lineage
	node     int
	who      identity
	asked    []string        // topics its request asked for
	channels []string        // what it follows, sorted
	follows  map[string]bool // the same, as a set
	// replayed are the channels it resumed from its lineage's previous
	// stream (followed by both), replayFrom where that stream ended; nil
	// and -1 for a fresh stream.
	replayed   map[string]bool
	replayFrom int
	// start and end bound, in the run's log, the publishes the stream is
	// sent live: start is taken once it read its connected event, end
	// after its last barrier (-1 while open).
	start, end int
	clientID   string

	cancel context.CancelFunc
	done   chan struct{} // closed when Subscribe returned
	wake   chan struct{} // capacity 1: events arrived, or the stream ended

	mu      sync.Mutex
	pending []sseclient.Event // read, not yet checked
	ended   bool              // Subscribe returned, or the client was about to reconnect
	endErr  error

	// Owned by the run's goroutine.
	got     map[int]int // publish seq → times received
	order   []int       // seqs in the order received
	ids     []string    // their ids
	lastID  string      // the id to resume from
	opened  bool        // its connected event came
	resumed bool        // the connected event said resumed
}

// run starts the stream's client, which runs until ctx is done, close is
// called, or the stream ends.
func (s *stream) run(ctx context.Context, hc *http.Client, url, lastID string) {
	ctx, s.cancel = context.WithCancel(ctx)
	s.done, s.wake = make(chan struct{}), make(chan struct{}, 1)
	c := &sseclient.Client{
		HTTPClient:  hc,
		Header:      http.Header{"X-User": {s.who.key}},
		Topics:      s.asked,
		LastEventID: lastID,
		OnStateChange: func(sc sseclient.StateChange) {
			if sc.State == sseclient.StateReconnecting {
				s.finish(sc.Err)
				s.cancel()
			}
		},
	}
	go func() {
		defer close(s.done)
		err := c.Subscribe(ctx, url, func(ev sseclient.Event) error {
			s.mu.Lock()
			s.pending = append(s.pending, ev)
			s.mu.Unlock()
			s.signal()
			return nil
		})
		if !errors.Is(err, context.Canceled) {
			s.finish(err)
		}
	}()
}

func (s *stream) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// finish marks the stream ended by itself, for err.
func (s *stream) finish(err error) {
	s.mu.Lock()
	if !s.ended {
		s.ended, s.endErr = true, err
	}
	s.mu.Unlock()
	s.signal()
}

// take returns the events read since the last take, and whether the
// stream ended by itself (and why).
func (s *stream) take() ([]sseclient.Event, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	evs := s.pending
	s.pending = nil
	return evs, s.ended, s.endErr
}

// close hangs up, as a closing tab does, and waits for the client.
func (s *stream) close() {
	s.cancel()
	<-s.done
}
