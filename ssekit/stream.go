package ssekit

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// endGrace is how long the last write of a stream the hub ended may take:
// enough for its retry hint, not for a peer that stopped reading.
const endGrace = time.Second

// flushAt is how much replayed data is gathered before a write;
// maxCursorLen bounds the position a cursor may hold.
const (
	flushAt      = 32 << 10
	maxCursorLen = 4 << 10
)

// ServeStream serves one event stream on w for userID ("" for an anonymous
// connection) and returns when it ends: the client went away, the hub ended
// it (shutdown, overflow, eviction, rotation), or a write failed or stalled
// for ClientTimeout. With Config.DetachStreams, an HTTP/1.x stream is
// handed over to the hub (see detached) and ServeStream returns at once.
// The caller has authenticated the request; Handler and the Echo module do
// that before they call it.
//
// The stream resumes after the Last-Event-ID header, or the lastEventId
// query parameter for clients that cannot set headers.
//
// The stream also follows the topics its request names (TopicParam), once
// Config.AuthorizeTopic allows them; see ServeIdentity, which serves a
// stream with a tenant too.
func (h *Hub) ServeStream(w http.ResponseWriter, r *http.Request, userID string) {
	h.ServeIdentity(w, r, Identity{User: userID})
}

// serve serves the stream of who that follows extra channels beside the
// broadcast one and its user's.
func (h *Hub) serve(w http.ResponseWriter, r *http.Request, who Identity, extra []string) {
	h.mu.Lock()
	if h.closing.Load() {
		h.mu.Unlock()
		h.Refuse(w, 0)
		return
	}
	h.streams.Add(1)
	h.mu.Unlock()
	defer h.streams.Done()

	rc := http.NewResponseController(w)
	s := &stream{hub: h, w: w, rc: rc, expires: who.Expires}
	c, err := newFollower(uuid.NewString(), who.User, extra, h.cfg.BufferSize, func() {
		_ = s.rc.SetWriteDeadline(time.Now().Add(endGrace))
	})
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	evicted, ok := h.reg.add(c, h.cfg.MaxClients, h.cfg.MaxClientsPerUser)
	if !ok {
		h.Refuse(w, 0)
		return
	}
	if evicted != nil {
		h.endStream(evicted, ReasonEvicted)
	}
	if h.closing.Load() { // Shutdown's snapshot may have missed c
		h.endStream(c, ReasonShutdown)
	}
	// Registered: from here on, whatever ends the stream, its
	// OnDisconnect follows its OnConnect: both on this request's
	// goroutine, or for a detached stream OnDisconnect on the goroutine
	// that ended it (see detached).
	info := ConnInfo{ClientID: c.id, Identity: who, Connected: time.Now()}
	h.presence.changed(c)
	h.connected(info)
	s.c = c
	streamHeaders(w.Header())
	lastID := lastEventID(r)
	if h.cfg.DetachStreams && r.ProtoMajor == 1 {
		if conn, head, err := detach(w); err == nil {
			// c.abort reads s.rc: set it before anyone can end the stream
			// on the new connection.
			c.mu.Lock()
			s.w, s.rc, s.unsent = conn, rawConn{conn}, head
			c.mu.Unlock()
			h.streams.Add(1) // the stream's own, while this call's still counts
			// On the hub's goroutines from here; OnDisconnect follows
			// there, after the connection is closed (see detached).
			s.detached(conn, lastID, info)
			return
		}
	}
	w.WriteHeader(http.StatusOK)
	defer rc.SetWriteDeadline(time.Time{}) // the connection may serve another request
	// The first reason to end a stream wins: when the hub ended it, run's
	// answer only repeats it.
	h.endStream(c, s.run(r.Context(), lastID))
	h.disconnected(c, info)
}

// streamHeaders sets the headers of an event stream.
func streamHeaders(hdr http.Header) {
	hdr.Set("Content-Type", "text/event-stream")
	// no-store: a stream is personal data, which no cache or proxy may
	// keep; no-cache as well for intermediaries that only know that one
	// (both only forbid, and EventSource needs neither).
	hdr.Set("Cache-Control", "no-cache, no-store")
	hdr.Set("X-Accel-Buffering", "no")
}

// Refuse answers a stream request that is not to be served now — over a
// rate limit, say — the way the hub answers one over MaxClients or while
// it shuts down: 200 text/event-stream with a retry field of 1–2× the
// larger of after and RetryInterval, a Retry-After header for clients that
// read it, and no stream. Any other status would make a browser's
// EventSource give up for good. Counted in Stats.Rejected.
func (h *Hub) Refuse(w http.ResponseWriter, after time.Duration) {
	h.stats.rejected.Add(1)
	ms := h.jitteredRetry(after)
	streamHeaders(w.Header())
	w.Header().Set("Retry-After", strconv.FormatInt((ms+999)/1000, 10))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(appendRetry(nil, ms))
	if flushes(w) { // else it is written when the handler returns
		_ = http.NewResponseController(w).Flush()
	}
}

// lastEventID returns where the client asks to resume, "" for a fresh
// stream.
func lastEventID(r *http.Request) string {
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		return id
	}
	return r.URL.Query().Get("lastEventId")
}

// stream is one connection's writer, the only thing that touches w: it
// runs on the request's goroutine, or for a detached stream on the hub's
// goroutines or a publisher's (eventStream.stepHere), one at a time (see
// detached).
type stream struct {
	hub *Hub
	c   *follower
	w   io.Writer // the ResponseWriter, or a detached stream's connection
	rc  controller
	buf []byte // frames gathered for the next write
	// unsent is what the socket is owed before anything else: a detached
	// stream's HTTP response head, sent with its first write, or the rest
	// of a write that a publisher's step left (try).
	unsent []byte
	// try is set while a publisher's goroutine runs a step of the stream
	// (eventStream.stepHere): it writes what the socket takes at once and
	// leaves the rest in unsent for the stream's goroutine, as a publisher
	// must never wait for a client.
	try *tryWriter
	// deadline is the write deadline last set on the connection.
	deadline time.Time

	// pos[k] is the stream's position in c.channels[k]: the last event of
	// that channel it wrote, or where it started.
	pos []string
	// cursor is the key of the last cursor the stream saved (when its
	// position stopped fitting in an id), and base the positions it holds.
	cursor string
	base   []string
	// seen remembers the publishes written whose other copies are still
	// to come (see once); nil when there are none.
	seen *copiesSeen
	// expires is when the stream's credentials expire (zero: never).
	expires time.Time
	// checking is set while a CheckSession of the stream runs.
	checking atomic.Bool
	// followed is set while the broker delivers the stream's own channels
	// for it (begin).
	followed bool

	// The live state (startLive), which step reads and updates: when the
	// stream last wrote, when it is to rotate and to have its session
	// checked (zero: never), the timer that wakes it for those and for
	// its heartbeats, and the queue's previous array, to be its next.
	lastWrite, rotateAt, checkAt time.Time
	timer                        *time.Timer
	spare                        []*queuedEvent
}

// jitteredRetry returns 1–2× the larger of base and RetryInterval, in
// milliseconds: clients sent away together do not come back together.
func (h *Hub) jitteredRetry(base time.Duration) int64 {
	ms := max(base, h.cfg.RetryInterval).Milliseconds()
	return ms + rand.Int64N(ms+1)
}

// run writes the opening, the replay and then live events until the stream
// ends; it returns why it ended. live's frame stays on the goroutine's
// stack for the stream's whole life, so the opening's work is done in
// begin, whose frames are gone by then: an idle stream's stack is what the
// runtime sizes new goroutines' stacks by. A detached stream on Linux runs
// begin and then steps instead, with no goroutine between them (see
// eventStream).
func (s *stream) run(ctx context.Context, resumeFrom string) string {
	defer s.unfollow()
	if reason := s.begin(ctx, resumeFrom); reason != "" {
		return reason
	}
	return s.live(ctx)
}

// begin has the broker deliver the stream's own channels, then writes the
// opening and the replay (open); it returns why the stream ends, or "".
// The live feed of the stream's channels must run before it reads where
// they are: then whatever is published after that reaches it live, and
// the replay covers the rest.
func (s *stream) begin(ctx context.Context, resumeFrom string) string {
	if own := s.c.channels[1:]; len(own) > 0 {
		if reason := s.follow(ctx, own); reason != "" {
			return reason
		}
		s.followed = true
	}
	return s.open(ctx, resumeFrom)
}

// unfollow undoes begin's Follow, once the stream has ended.
func (s *stream) unfollow() {
	if s.followed {
		s.followed = false
		s.hub.sub.Unfollow(s.c.channels[1:]...)
	}
}

// open writes the retry hint, the connected event and the replay, and
// hands over to live delivery; it returns why the stream ends, or "".
func (s *stream) open(ctx context.Context, resumeFrom string) string {
	h := s.hub
	s.buf = appendRetry(s.buf, h.cfg.RetryInterval.Milliseconds())
	from, lost, named, err := s.start(ctx, resumeFrom)
	if err == nil && resumeFrom == "" {
		// A fresh stream's connected event carries its position, so that a
		// browser that reconnects before any event arrived still resumes
		// from there.
		s.pos = from
		err = s.appendConnected(false, true)
	}
	if err == nil {
		err = s.catchUp(ctx, resumeFrom, from, lost, named)
	}
	switch {
	case err == nil:
		return ""
	case errors.Is(err, errWrite):
		return ReasonWriteError
	case errors.Is(err, errCatchUp):
		return s.endWithRetry(ReasonOverflow)
	case errors.Is(err, errExpired):
		return s.endSession(ReasonExpired)
	case ctx.Err() != nil:
		return ReasonClientGone
	}
	h.cfg.Logger.Warn("sse: replay failed; stream ended", "err", err)
	return s.endWithRetry(ReasonBroker)
}

// live writes queued events as they come, a batch per wake-up (step), on
// the stream's goroutine, parked on the follower's wake channel between
// them.
func (s *stream) live(ctx context.Context) string {
	s.startLive()
	defer s.stopLive()
	wake := s.c.parkChannel()
	for {
		select {
		case <-wake:
		case <-ctx.Done():
			return ReasonClientGone
		}
		if reason, _ := s.step(ctx); reason != "" {
			return reason
		}
	}
}

// startLive sets the stream up for live delivery after its opening: the
// heartbeat, rotation and session timings, and the timer that wakes it for
// them. One timer serves the heartbeat, the rotation at MaxStreamAge, the
// session check and the expiry: it is re-armed when it fires, from the
// last write, rather than on every write, so busy streams pay nothing for
// it. A function timer: no channel, and no goroutine while it waits.
func (s *stream) startLive() {
	h := s.hub
	s.buf = nil // the opening's: most streams then idle, or get one frame at a time
	now := time.Now()
	s.lastWrite = now
	s.rotateAt = jittered(now, h.cfg.MaxStreamAge)
	if h.cfg.CheckSession != nil {
		s.checkAt = jittered(now, h.cfg.SessionCheckInterval)
	}
	if d := s.next(now); d >= 0 {
		s.timer = time.AfterFunc(d, s.c.tick)
	}
}

// stopLive stops the stream's timer once it has ended.
func (s *stream) stopLive() {
	if s.timer != nil {
		s.timer.Stop()
	}
}

// jittered returns 80–100 % of a period from now, so that streams opened
// together do not all reconnect, or have their session checked, together;
// zero (never) for a period <= 0.
func jittered(now time.Time, period time.Duration) time.Time {
	if period <= 0 {
		return time.Time{}
	}
	return now.Add(period - time.Duration(rand.Int64N(int64(period)/5+1)))
}

// next returns how long from now the stream's timer is to fire: at the
// next heartbeat, rotation, session check or expiry; -1 for never.
func (s *stream) next(now time.Time) time.Duration {
	d := time.Duration(-1)
	if iv := s.hub.cfg.HeartbeatInterval; iv > 0 {
		d = max(s.lastWrite.Add(iv).Sub(now), 0)
	}
	for _, at := range [...]time.Time{s.rotateAt, s.checkAt, s.expires} {
		if !at.IsZero() && (d < 0 || at.Sub(now) < d) {
			d = max(at.Sub(now), 0)
		}
	}
	return d
}

// step does what one wake-up of a live stream asks: it takes the queue and
// writes it in one write, and when its timer fired, it rotates the stream,
// checks its session or sends a heartbeat, and re-arms the timer. It
// returns why the stream ends, or "" for it to wait for the next wake-up,
// and whether it wrote queued events.
// One step runs at a time: on the stream's goroutine (live), or for a
// detached stream on Linux, on a goroutine started for the wake-up, which
// returns after it unless the stream is busy (eventStream).
func (s *stream) step(ctx context.Context) (reason string, wrote bool) {
	h, c := s.hub, s.c
	q, reason, ticked := c.take(s.spare, monotonic())
	switch reason {
	case "":
	case ReasonRevoked:
		return s.endSession(reason), false
	default:
		return s.endWithRetry(reason), false
	}
	if s.expired(time.Now()) {
		// Before what is queued: it may have been published after the
		// expiry (the stream was busy writing when the timer fired). The
		// position has not moved past it, so the resume with new
		// credentials replays it.
		return s.endSession(ReasonExpired), false
	}
	if reason := s.writeQueued(q); reason != "" {
		return reason, false
	}
	if !ticked {
		return "", len(q) > 0
	}
	now := time.Now()
	if !s.rotateAt.IsZero() && !now.Before(s.rotateAt) {
		return s.endWithRetry(ReasonRotated), false
	}
	if c.takeRecheck() || (!s.checkAt.IsZero() && !now.Before(s.checkAt)) {
		s.checkSession(ctx)
		if !s.checkAt.IsZero() && !now.Before(s.checkAt) {
			s.checkAt = jittered(now, h.cfg.SessionCheckInterval)
		}
	}
	if iv := h.cfg.HeartbeatInterval; iv > 0 && now.Sub(s.lastWrite) >= iv {
		s.buf = nil // an idle stream keeps nothing of its busy times
		s.appendHeartbeat(now)
		if err := s.write(); err != nil {
			return ReasonWriteError, false
		}
		s.lastWrite = now
	}
	if s.timer != nil { // none when nothing is scheduled: a RecheckSessions woke it
		s.timer.Reset(s.next(now))
	}
	return "", len(q) > 0
}

// writeQueued writes q, taken from the queue, after whatever is unsent,
// in one write; it returns why the stream ends, or "".
func (s *stream) writeQueued(q []*queuedEvent) string {
	if len(q) > 0 || s.unsent != nil {
		err := s.appendQueued(q)
		if err == nil {
			err = s.write()
		}
		clear(q) // let written frames be collected
		if errors.Is(err, errCursor) {
			s.hub.cfg.Logger.Warn("sse: stream ended", "err", err)
			return s.endWithRetry(ReasonBroker)
		}
		if err != nil {
			return ReasonWriteError
		}
		s.lastWrite = time.Now()
	}
	// Even when empty: q is the queue's old array, and the queue now has
	// spare's.
	s.spare = q[:0]
	return ""
}

// idsFit reports whether each id that writing q gives the stream fits in
// an event id without a cursor: a step on a publisher's goroutine may not
// save one (CursorStore.SaveCursor can be a broker's round trip, and a
// delivery never waits). An upper bound: each component at the longest
// of the stream's present position and q's. The caller holds s.c.mu.
func (s *stream) idsFit(q []*queuedEvent) bool {
	if s.cursor != "" {
		return false
	}
	n := len(s.pos) - 1 // the dots
	for k, ch := range s.c.channels {
		l := len(s.pos[k])
		for _, e := range q {
			l = max(l, len(e.positionIn(ch)))
		}
		n += len(s.c.tags[k]) + l
	}
	return n <= maxIDLen
}

// endSession ends a stream whose credentials expired or whose session
// was revoked: its last event, TypeSessionEnded, says why and carries the
// stream's position, as its id and in its data, for the client to resume
// from with new credentials. It returns reason.
func (s *stream) endSession(reason string) string {
	idLine, err := s.appendID(nil)
	if err != nil {
		s.hub.cfg.Logger.Warn("sse: stream ended", "err", err)
		return reason
	}
	id := strings.TrimSuffix(strings.TrimPrefix(string(idLine), "id: "), "\n")
	data, _ := json.Marshal(struct {
		Reason      string `json:"reason"`
		LastEventID string `json:"last_event_id"`
	}{reason, id})
	// After what the stream gathered (a replay's frames): its position is past them.
	s.buf = appendFrame(append(s.buf, idLine...), "", TypeSessionEnded, data)
	if s.write() != nil {
		return ReasonWriteError
	}
	return reason
}

// expired reports whether the stream's credentials have expired by now.
func (s *stream) expired(now time.Time) bool {
	return !s.expires.IsZero() && !now.Before(s.expires)
}

// checkSession runs Config.CheckSession for the stream on a goroutine of
// its own (an app's check may take a database round trip; the stream goes
// on meanwhile), unless one is running already; a revoked session ends
// the stream, which then writes its TypeSessionEnded.
func (s *stream) checkSession(ctx context.Context) {
	h, c := s.hub, s.c
	if h.cfg.CheckSession == nil || !s.checking.CompareAndSwap(false, true) {
		return
	}
	who := c.identity()
	who.Expires = s.expires
	h.streams.Add(1) // the stream's own count is held: Shutdown waits for this too
	go func() {
		defer h.streams.Done()
		defer s.checking.Store(false)
		cctx, cancel := context.WithTimeout(ctx, checkTimeout)
		defer cancel()
		switch err := h.cfg.CheckSession(cctx, who); {
		case err == nil:
		case errors.Is(err, ErrSessionRevoked):
			h.endStream(c, ReasonRevoked)
		default:
			h.cfg.Logger.Warn("sse: session check failed; the stream goes on", "user", who.User, "err", err)
		}
	}()
}

// checkTimeout bounds one CheckSession of an open stream.
const checkTimeout = 10 * time.Second

// appendQueued appends the frames of q, each with the id line of the
// stream's position after it. An event that reached the connection by its
// id only moves no position and carries no id (the client keeps its
// last); a broker's resync moves its channels to where their history
// starts again.
func (s *stream) appendQueued(q []*queuedEvent) error {
	// Sized as what it will hold: each frame, and an id line about as long
	// as the stream's present one (a position may gain a digit). An
	// overestimate would cross write's keep limit sooner, and a buffer
	// let go is a buffer allocated and zeroed again next round.
	idLine := len("id: \n") + len(s.pos) + 4
	for k := range s.pos {
		idLine += len(s.c.tags[k]) + len(s.pos[k])
	}
	n := 0
	for _, e := range q {
		n += len(e.frame) + idLine
	}
	s.buf = slices.Grow(s.buf, n)
	var err error
	for _, e := range q {
		if e.resync {
			var lost []string
			for k, ch := range s.c.channels {
				if p := e.positionIn(ch); p != "" {
					s.pos[k] = p
					lost = append(lost, channelKind(ch))
				}
			}
			if err := s.appendResync("", lost); err != nil {
				return err
			}
			continue
		}
		if e.msg != nil && s.moveTo(e.msg) {
			if !s.once(e.msg) {
				continue // written already, through another of its channels
			}
			if s.buf, err = s.appendID(s.buf); err != nil {
				return err
			}
		}
		s.buf = append(s.buf, e.frame...)
	}
	return nil
}

// moveTo moves the stream's position to m's in each of its channels that
// m is in, and reports whether m is in one of them. Unlike the replay's
// advance, it trusts that m comes after: a broker delivers each channel
// in order, once, and what the replay already wrote was dropped when it
// was queued (client.floors). This runs for every delivery.
func (s *stream) moveTo(m *Message) bool {
	moved := false
	for k, ch := range s.c.channels {
		if p := m.positionIn(ch); p != "" {
			s.pos[k] = p
			moved = true
		}
	}
	return moved
}

// once reports whether the stream writes m, one of its events, or has
// written it already. A broker that stores and delivers each channel's
// copy of a publish apart (m.Also) hands a stream that follows several of
// those channels one copy per channel: the first to arrive, live or in a
// replay, is written; the stream remembers the publish's id until the
// other copies have come (or, for ones it will never see, until newer
// ones push it out) and only moves its position for them. Across
// connections, a replay tells a copy written before by the positions the
// broker gives it in all of the publish's channels (see advance).
func (s *stream) once(m *Message) bool {
	if len(m.Also) == 0 || m.ID == "" {
		return true // the broker delivers this publish whole
	}
	n := 0
	for _, ch := range s.c.channels {
		if m.positionIn(ch) != "" || slices.Contains(m.Also, ch) {
			n++
		}
	}
	if n < 2 {
		return true
	}
	if s.seen.take(m.ID) {
		return false
	}
	s.seen = s.seen.add(m.ID, n-1)
	return true
}

// copiesSeen is what a stream remembers of the publishes it wrote whose
// other copies are still to come: their ids and how many copies more.
// Bounded, oldest out first; nil until the stream gets its first one, so
// that the streams that never follow two channels of one publish pay
// nothing.
type copiesSeen struct {
	left  map[string]int
	order []string
}

// maxCopiesSeen bounds copiesSeen: an entry stays past its last copy
// only when a copy never comes (lost in a broken history, announced by a
// resync), and copies of one publish arrive within moments of each other.
const maxCopiesSeen = 64

// add remembers that id has left copies still to come.
func (cs *copiesSeen) add(id string, left int) *copiesSeen {
	if cs == nil {
		cs = &copiesSeen{left: make(map[string]int)}
	}
	if _, ok := cs.left[id]; !ok {
		if len(cs.order) >= maxCopiesSeen {
			delete(cs.left, cs.order[0])
			cs.order = slices.Delete(cs.order, 0, 1)
		}
		cs.order = append(cs.order, id)
	}
	cs.left[id] = left
	return cs
}

// take reports whether id was written already, counting one more copy of
// it as come.
func (cs *copiesSeen) take(id string) bool {
	if cs == nil {
		return false
	}
	n, ok := cs.left[id]
	if !ok {
		return false
	}
	if n <= 1 {
		delete(cs.left, id)
		cs.order = slices.DeleteFunc(cs.order, func(x string) bool { return x == id })
	} else {
		cs.left[id] = n - 1
	}
	return true
}

// errWrite marks a failed or stalled write to the client.
var errWrite = errors.New("sse: write to client failed")

// write sends the gathered frames in one write and one flush and empties
// the buffer; one larger than a replay's batch is let go.
func (s *stream) write() error {
	if len(s.buf) == 0 && s.unsent == nil {
		return nil
	}
	err := s.writeBytes(s.buf)
	if cap(s.buf) > 2*flushAt {
		s.buf = nil
	} else {
		s.buf = s.buf[:0]
	}
	return err
}

// writeBytes writes p and flushes, under a write deadline of about
// ClientTimeout: the deadline is re-armed only once less than 7/8 of it is
// left, so that a busy stream does not pay for a timer update per write,
// and a stalled write is cut after 7/8 to 8/8 of ClientTimeout.
func (s *stream) writeBytes(p []byte) error {
	if timeout := s.hub.cfg.ClientTimeout; time.Until(s.deadline) < timeout-timeout/8 {
		s.deadline = time.Now().Add(timeout)
		// Not every ResponseWriter supports deadlines
		// (http.ErrNotSupported); the write then has no stall bound, as
		// with any plain handler.
		_ = s.rc.SetWriteDeadline(s.deadline)
	}
	if s.c != nil && s.c.endReason() != "" {
		// end() sets its short deadline after marking the client, so one
		// of the two calls sees the other: this write cannot keep the long
		// deadline of a stream the hub has ended.
		s.deadline = time.Now().Add(endGrace)
		_ = s.rc.SetWriteDeadline(s.deadline)
	}
	if s.unsent != nil {
		p = append(s.unsent, p...)
		s.unsent = nil
	}
	if s.try != nil {
		n, err := s.try.write(p)
		if err != nil {
			return errors.Join(errWrite, err)
		}
		if n < len(p) {
			s.unsent = append([]byte(nil), p[n:]...) // p may be s.buf, which is reused
		}
		return nil
	}
	_, err := s.w.Write(p)
	if err == nil {
		err = s.rc.Flush()
	}
	if err != nil {
		return errors.Join(errWrite, err)
	}
	return nil
}

// endWithRetry ends a stream the hub closed with a jittered retry hint,
// so that clients cut at once do not all come back at once.
func (s *stream) endWithRetry(reason string) string {
	s.buf = appendRetry(s.buf[:0], s.hub.jitteredRetry(0))
	if s.write() != nil {
		return ReasonWriteError
	}
	return reason
}

// appendHeartbeat appends a heartbeat event, {"timestamp":…} in UTC
// RFC 3339, with no id: it moves no position.
func (s *stream) appendHeartbeat(now time.Time) {
	s.buf = append(s.buf, "event: heartbeat\ndata: {\"timestamp\":\""...)
	s.buf = now.UTC().AppendFormat(s.buf, time.RFC3339)
	s.buf = append(s.buf, "\"}\n\n"...)
}
