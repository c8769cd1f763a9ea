package ssekit

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// controller is what a stream needs of its connection beside Write: an
// *http.ResponseController, or a detached connection's rawConn.
type controller interface {
	Flush() error
	SetWriteDeadline(time.Time) error
}

// rawConn is a detached stream's connection: the stream writes to the
// socket itself, so there is nothing to flush.
type rawConn struct{ net.Conn }

func (rawConn) Flush() error { return nil }

// detach takes an HTTP/1.x connection over from net/http (see
// Config.DetachStreams) and returns it with the head of a 200 event-stream
// response carrying the headers set on w. The body is delimited by the
// connection's close, as HTTP/1.x allows, so frames go to the socket as
// they are, without chunk framing. The caller sends the head with the
// stream's first frames, as net/http sends its headers with the first
// flush: a client must not see the stream open before the stream has its
// position, or an event published in between would be behind it. detach
// fails on a connection that cannot be hijacked (HTTP/2, a wrapping
// ResponseWriter without Hijack); the caller then serves the stream
// through w.
func detach(w http.ResponseWriter) (net.Conn, []byte, error) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, nil, err
	}
	// Whatever net/http buffered is dropped with brw: a client pipelining
	// a request behind an event stream would never get its answer anyway.
	_ = brw
	hdr := w.Header()
	hdr.Set("Connection", "close")
	var head bytes.Buffer
	head.WriteString("HTTP/1.1 200 OK\r\n")
	_ = hdr.Write(&head)
	head.WriteString("\r\n")
	return conn, head.Bytes(), nil
}

// watch returns a context that is cancelled when the client closes conn,
// as net/http's request context is for a stream it serves. It reads on a
// goroutine of its own, which returns once conn is closed; done is closed
// then. A client sends nothing after its GET: anything it does send ends
// the stream too.
func watch(conn net.Conn) (ctx context.Context, done <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	d := make(chan struct{})
	go func() {
		defer close(d)
		defer cancel()
		var b [1]byte
		_, _ = conn.Read(b[:])
	}()
	return ctx, d
}

// detached serves s, a stream whose connection detach took over, on the
// hub's goroutines, and returns at once. On Linux, when the hub can watch
// the socket for the client's hang-up (hangups), the stream has no
// goroutine while it idles: see eventStream. Otherwise (another system, a
// TLS connection, whose own buffers could hold what the client sent) a
// goroutine writes it, as ServeStream's does, and a second one watches
// the connection. Either way, whatever ends the stream, OnDisconnect
// follows on the goroutine that ended it, after the connection is closed.
// The caller has counted the stream in the hub's WaitGroup; it is done
// once OnDisconnect has returned.
func (s *stream) detached(conn net.Conn, lastID string, info ConnInfo) {
	h, c := s.hub, s.c
	es := &eventStream{s: s, conn: conn, info: info}
	es.ctx, es.cancel = context.WithCancel(context.Background())
	if h.hangups.watch(es, &h.streams) {
		go es.begin(lastID)
		return
	}
	es.cancel()
	go func() {
		defer h.streams.Done()
		ctx, watched := watch(conn)
		h.endStream(c, s.run(ctx, lastID))
		conn.Close()
		<-watched
		h.disconnected(c, info)
	}()
}

// eventStream is a detached stream driven by wake-ups instead of a
// goroutine parked on them for its life. Its opening and replay run on a
// goroutine (begin), which returns once the stream is live; from then on,
// a wake-up of its follower (an enqueue, the waker's round, its timer, the
// hub ending it, a session recheck, the client's hang-up) starts a
// goroutine that runs stream.step (steps), or, for an event to a quiet
// stream, the publisher runs that step itself (stepHere). An idle stream
// holds a timer and its entry in the hub's hang-up watch (hangups), no
// goroutine.
//
// A busy stream keeps its goroutine between steps, parked on a channel of
// its own as a stream on the request's goroutine is (stepParked): one
// that wrote events in steps less than stepBusy apart, as a stream woken
// in the waker's rounds does. Starting a goroutine for each of its steps
// would cost a busy hub more than waking a parked one: each would start
// on a small stack and grow it, copying it, on its way to the write, and
// a wake-up that finds the queue taken already would end one and start
// the next. The goroutine returns after the first step more than
// stepBusy after the stream's last events (its timer's, at the latest
// HeartbeatInterval after them): the stream is idle again. A stream with
// no timer (no heartbeat, rotation or session check) never parks, since
// nothing would let its goroutine go. Steps are not run by a pool of
// workers either: a step blocks in
// the socket's write for as long as its client does not read (up to
// ClientTimeout), and one stalled client must not hold up the others.
type eventStream struct {
	s      *stream
	conn   net.Conn
	ctx    context.Context // cancelled when the client hangs up
	cancel context.CancelFunc
	info   ConnInfo
	// key and fd are the stream's entry in the hub's hang-up watch.
	key uint64
	fd  int
	// state is stepIdle (no goroutine), stepRunning (its goroutine runs
	// steps), stepAgain (a wake-up came meanwhile: one more step, so that
	// none is lost between the step's take and the goroutine's return),
	// stepParked (its goroutine waits on park) or stepDone (the stream
	// ended: wake-ups are ignored).
	state atomic.Uint32
	// park is what a parked goroutine waits on (capacity 1), made when it
	// first parks and dropped when it returns; busyAt is when the stream
	// last wrote events (monotonic). Only the stream's goroutine touches
	// them, but for wake, which sends on park once it has seen stepParked.
	// (stepHere runs only on an idle stream, which has neither.)
	park   chan struct{}
	busyAt int64
	// try writes to the socket without waiting (stepHere); set by the
	// hang-up watch for a plain TCP connection (a net.Conn of another
	// type may do its own work in Write, which a write to the descriptor
	// would bypass).
	try *tryWriter
	// ended is why a step that stepHere ran ended the stream, which the
	// stream's goroutine then finishes (steps).
	ended string
}

const (
	stepIdle uint32 = iota
	stepRunning
	stepAgain
	stepParked
	stepDone
)

// stepBusy is how long after writing events a stream keeps its goroutine
// parked for the next step: many WriteDelay rounds, since under load a
// stream is woken less often than every round (at 10,000 streams in
// saturation, every ~100 ms), and a stream that is not woken within it
// is about to be idle anyway.
const stepBusy = time.Second

// begin writes the stream's opening and replay, then hands it over to
// wake-ups; it runs on a goroutine of its own, which returns then.
func (es *eventStream) begin(lastID string) {
	s := es.s
	if reason := s.begin(es.ctx, lastID); reason != "" {
		es.end(reason)
		return
	}
	s.startLive()
	es.busyAt = monotonic() - int64(stepBusy) // its first event finds it quiet
	// Published after startLive's writes (the step goroutines read them).
	// A wake-up until now reached nobody: step now if one was owed, or if
	// the client hung up meanwhile (hungUp cancels, then signals).
	s.c.steps.Store(es)
	if s.c.owed() || es.ctx.Err() != nil {
		es.wake()
	}
}

// wake has the stream step: on a new goroutine, or on its parked one, or
// once more on the one running; it never blocks (deliver calls it,
// through signal).
func (es *eventStream) wake() {
	for {
		switch es.state.Load() {
		case stepIdle:
			if es.state.CompareAndSwap(stepIdle, stepRunning) {
				go es.steps()
				return
			}
		case stepRunning:
			if es.state.CompareAndSwap(stepRunning, stepAgain) {
				return
			}
		case stepParked:
			if es.state.CompareAndSwap(stepParked, stepRunning) {
				es.park <- struct{}{} // capacity 1, and only this send
				return
			}
		default: // it will step again, or it ended
			return
		}
	}
}

// steps runs steps until no wake-up is left, parking between them while
// the stream is busy, or until the stream ends, which it then finishes.
func (es *eventStream) steps() {
	for {
		reason, wrote := es.ended, false
		switch {
		case reason != "":
			if reason != ReasonWriteError {
				_ = es.s.write() // what stepHere's last write left
			}
		case es.ctx.Err() != nil:
			reason = ReasonClientGone
		default:
			reason, wrote = es.s.step(es.ctx)
		}
		if reason != "" {
			es.state.Store(stepDone)
			es.s.stopLive()
			es.end(reason)
			return
		}
		// Busy: events now and less than stepBusy before, or a step with
		// nothing to write (a wake-up the previous step took care of)
		// within stepBusy of events. A parked goroutine returns at the
		// first step past that: its timer's, at the latest (no timer, no
		// parking: nothing would ever let it go).
		now := monotonic()
		busy := now-es.busyAt < int64(stepBusy) && es.s.timer != nil
		if wrote {
			es.busyAt = now
		}
		if busy {
			if es.park == nil {
				es.park = make(chan struct{}, 1)
			}
			if es.state.CompareAndSwap(stepRunning, stepParked) {
				<-es.park // wake set stepRunning
				continue
			}
		} else {
			es.park = nil // before stepIdle: a next goroutine may make its own
			if es.state.CompareAndSwap(stepRunning, stepIdle) {
				return
			}
		}
		es.state.Store(stepRunning) // it was stepAgain
	}
}

// stepHere runs a step of the stream on the caller's goroutine, a
// publisher's that has just queued an event for it, when the stream is
// idle (no goroutine: a stream whose goroutine is parked is busy, and its
// goroutine steps it as before) and its step is only to write what is
// queued. Handing the event to a new goroutine, to write one frame, would
// cost more than the write. The step writes what the socket takes at once
// (stream.try), so that the publisher never waits for a client; whatever
// is left to do — the rest of the write, a wake-up that came meanwhile,
// or anything but writing events (its timer, a recheck, its end, a cursor
// to save) — a goroutine started as wake would start it does. It reports
// false, having done nothing, when the stream is not idle or has no
// socket to write to so (try): the caller signals it then.
func (es *eventStream) stepHere() bool {
	if es.try == nil || !es.state.CompareAndSwap(stepIdle, stepRunning) {
		return false
	}
	s := es.s
	done := false
	if es.ctx.Err() == nil && !s.expired(time.Now()) {
		if q, ok := s.c.takeIf(s.spare, monotonic(), s.idsFit); ok {
			s.try = es.try
			es.ended = s.writeQueued(q)
			s.try = nil
			done = es.ended == "" && s.unsent == nil
		}
	}
	if done && es.state.CompareAndSwap(stepRunning, stepIdle) {
		return true
	}
	// It was stepAgain, or there is more to do: the goroutine's steps
	// cover both.
	es.state.Store(stepRunning)
	go es.steps()
	return true
}

// hungUp is the hang-up watch's news that the client left (or sent
// something, which a client of an event stream does not).
func (es *eventStream) hungUp() {
	es.cancel()
	es.s.c.signal()
}

// end finishes the stream for reason, once, as the goroutine of a
// detached stream does: the hub unregisters it, the connection is
// closed — after it left the hang-up watch, whose descriptor could
// otherwise be another connection's by then — and OnDisconnect is called.
func (es *eventStream) end(reason string) {
	s := es.s
	h := s.hub
	s.unfollow()
	h.endStream(s.c, reason)
	h.hangups.forget(es)
	es.conn.Close()
	es.cancel()
	h.disconnected(s.c, es.info)
	h.streams.Done()
}
