package ssekit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"
)

// errCatchUp ends a stream whose replay could not catch up with live
// events; the client reconnects from the last id it received.
var errCatchUp = errors.New("sse: replay could not catch up with live events")

// errExpired ends a stream whose credentials expired during its replay.
var errExpired = errors.New("sse: credentials expired")

// maxCatchUpPasses bounds the replays one connection may run back to back.
const maxCatchUpPasses = 8

// follow has the broker deliver the stream's own channels, within
// followTimeout; it returns why the stream ends if it could not. The
// timeout is not derived from the stream's ctx: a context with a parent
// that can be cancelled makes that parent allocate a set of children,
// which it keeps for the stream's life (half a KiB an idle stream); a
// client that leaves meanwhile is noticed once Follow returns.
func (s *stream) follow(ctx context.Context, channels []string) (reason string) {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), followTimeout)
	defer cancel()
	if err := s.hub.sub.Follow(fctx, channels...); err != nil {
		if ctx.Err() != nil {
			return ReasonClientGone
		}
		s.hub.cfg.Logger.Warn("sse: broker follow failed; stream refused", "err", err)
		return s.endWithRetry(ReasonBroker)
	}
	return ""
}

// start returns where the stream starts in each of its channels: after
// the positions its Last-Event-ID carries, and at the channel's head for a
// fresh stream or a channel the id does not name (one the client did not
// follow before). lost marks the channels whose history the client cannot
// get back: every one when the id is not one this hub writes (an earlier
// version's, a forged or expired one). named marks the channels the id
// carries a position for. A position the id carries may still be unknown
// to the broker; catchUp finds out.
func (s *stream) start(ctx context.Context, lastID string) (from []string, lost, named []bool, err error) {
	c := s.c
	from, lost, named = make([]string, len(c.channels)), make([]bool, len(c.channels)), make([]bool, len(c.channels))
	var known map[string]string
	if lastID != "" {
		var ok bool
		if known, ok = s.hub.resolveID(ctx, lastID); !ok {
			for k := range lost {
				lost[k] = true
			}
		}
	}
	for k, ch := range c.channels {
		if p, ok := known[c.tags[k]]; ok {
			from[k], named[k] = p, true
			continue
		}
		if from[k], err = s.hub.broker.Head(ctx, ch); err != nil {
			return nil, nil, nil, err
		}
	}
	return from, lost, named, nil
}

// resolveID returns the positions by channel tag that a Last-Event-ID
// stands for, loading its cursor if it has one. It reports false for an id
// this hub does not know.
func (h *Hub) resolveID(ctx context.Context, id string) (map[string]string, bool) {
	p, ok := parseID(id, maxIDLen)
	if !ok {
		return nil, false
	}
	if p.cursor == "" {
		// Every id the hub writes has the broadcast channel's position.
		_, ok := p.pos[channelTag(BroadcastChannel)]
		return p.pos, ok
	}
	value, err := h.cursors.LoadCursor(ctx, p.cursor)
	if err != nil {
		if !errors.Is(err, ErrUnknownID) {
			h.cfg.Logger.Warn("sse: cursor load failed; the client resyncs", "err", err)
		}
		return nil, false
	}
	base, ok := parseID(value, maxCursorLen)
	if !ok || base.cursor != "" {
		return nil, false
	}
	maps.Copy(base.pos, p.pos) // what changed since the cursor
	_, ok = base.pos[channelTag(BroadcastChannel)]
	return base.pos, ok
}

// appendConnected appends the connected event, with the stream's position
// as its id when withID (a fresh stream's), and none for a resuming one,
// which moves the client's position only through the events replayed to
// it, or through a resync.
func (s *stream) appendConnected(resumed, withID bool) error {
	if withID {
		var err error
		if s.buf, err = s.appendID(s.buf); err != nil {
			return err
		}
	}
	// Written by hand rather than with encoding/json: every stream sends
	// one, and the marshaller's deep call chain would grow the stream's
	// goroutine stack, which an idle stream then keeps. The client id is a
	// uuid and the timestamp RFC 3339: nothing to escape.
	b := append(s.buf, "event: "+TypeConnected+"\ndata: {\"client_id\":\""...)
	b = append(b, s.c.id...)
	b = append(b, `","timestamp":"`...)
	b = time.Now().UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","resumed":`...)
	b = strconv.AppendBool(b, resumed)
	s.buf = append(b, "}\n\n"...)
	return nil
}

// replayPage is how many messages catchUp reads from a channel at a time.
const replayPage = 256

// catchUp replays each channel's history after from, then hands over to
// live delivery without a gap or a duplicate: live events queued meanwhile
// that the replay already wrote are dropped, and if they overflowed, the
// replay runs again from where it got to. The channels' histories are
// merged by time, each in its own order, a page at a time, so that a
// resume reads only this stream's channels and holds a page of each. A
// channel whose history is gone (lost[k], or a position the broker does
// not know) is announced with one resync naming it, and starts at its
// head; the others replay as usual. lastID is the client's, echoed in the
// resync when it has the form of an id; a non-empty one makes this a
// resume, whose connected event is written first, saying whether a
// channel the id named (named[k]) resumes.
func (s *stream) catchUp(ctx context.Context, lastID string, from []string, lost, named []bool) error {
	h, c := s.hub, s.c
	s.pos = from
	pagers := make([]pager, len(c.channels))
	for k, ch := range c.channels {
		pagers[k] = pager{ch: ch, after: from[k]}
	}
	// The first page of every channel tells which ones lost history,
	// before anything is written.
	for k := range pagers {
		if lost[k] {
			continue
		}
		err := pagers[k].fill(ctx, h.broker)
		if errors.Is(err, ErrUnknownID) {
			lost[k] = true
			continue
		}
		if err != nil {
			return err
		}
	}
	resumed, intact := false, make([]bool, len(lost))
	for k := range lost {
		intact[k] = named[k] && !lost[k]
		resumed = resumed || intact[k]
	}
	if lastID != "" {
		if err := s.appendConnected(resumed, false); err != nil {
			return err
		}
	}
	if slices.Contains(lost, true) {
		var names []string
		for k, ch := range c.channels {
			if !lost[k] {
				continue
			}
			head, err := h.broker.Head(ctx, ch)
			if err != nil {
				return err
			}
			s.pos[k], pagers[k] = head, pager{ch: ch, after: head}
			names = append(names, channelKind(ch))
		}
		if err := s.appendResync(lastID, names); err != nil {
			return err
		}
	}
	start := slices.Clone(s.pos)
	for pass := 0; pass < maxCatchUpPasses; pass++ {
		if err := s.replay(ctx, pagers, start, intact); err != nil {
			return err
		}
		if err := s.write(); err != nil {
			return err
		}
		if c.endCatchUp(s.pos) {
			return nil
		}
		for k := range pagers {
			pagers[k] = pager{ch: c.channels[k], after: s.pos[k]}
		}
	}
	return errCatchUp
}

// replay writes the channels' messages, oldest first, until every pager
// is done; start is where the stream started in each channel, and
// resumed[k] says it resumed channel k from its Last-Event-ID.
func (s *stream) replay(ctx context.Context, pagers []pager, start []string, resumed []bool) error {
	h := s.hub
	for {
		next := -1
		for k := range pagers {
			p := &pagers[k]
			if !p.done && len(p.page) == 0 {
				if err := p.fill(ctx, h.broker); err != nil {
					if errors.Is(err, ErrUnknownID) {
						// Trimmed under the replay: what it wrote stands;
						// the client reconnects and is told of the rest.
						return fmt.Errorf("channel %s: %w", channelKind(p.ch), err)
					}
					return err
				}
			}
			if len(p.page) > 0 && (next < 0 || p.page[0].Time.Before(pagers[next].page[0].Time)) {
				next = k
			}
		}
		if next < 0 {
			return nil
		}
		if s.expired(time.Now()) {
			return errExpired // nothing more: its position has not moved past m
		}
		m := &pagers[next].page[0]
		pagers[next].page = pagers[next].page[1:]
		// A message of several of the stream's channels is written once:
		// through the first of their pages to reach it, or by the
		// connection this one resumes.
		if !s.advance(m, next, start, resumed) {
			s.once(m) // count this copy as come
			continue
		}
		if !s.once(m) {
			continue
		}
		var err error
		if s.buf, err = s.appendID(s.buf); err != nil {
			return err
		}
		s.buf = appendFrame(s.buf, "", m.Type, m.Data)
		h.stats.replayed.Add(1)
		if len(s.buf) >= flushAt {
			if err := s.write(); err != nil {
				return err
			}
		}
	}
}

// advance moves the stream's position in channel k to m's, m being the
// next message of k's page, and reports whether m is still to be written:
// false when the stream (or the connection it resumes) handled it already
// through another of its channels j — m's position in j, as the broker
// gives it, is at or before the stream's. A position only ever moves in
// its own channel's order (a channel's page, or a live delivery of it),
// never because an event was written through another channel: publishes
// racing each other may be stored in one order in one channel and in the
// other order in another. A channel the stream started at its head (new
// to it, or after a resync; start[j]) tells nothing of a message at or
// before that start: it was published before the stream followed j.
func (s *stream) advance(m *Message, k int, start []string, resumed []bool) bool {
	c := s.c
	s.pos[k] = m.positionIn(c.channels[k])
	if len(m.Channels) < 2 {
		return true
	}
	for j, ch := range c.channels {
		if j == k {
			continue
		}
		p := m.positionIn(ch)
		if p == "" || (!resumed[j] && CompareIDs(p, start[j]) <= 0) {
			continue
		}
		if CompareIDs(p, s.pos[j]) <= 0 {
			return false
		}
	}
	return true
}

// pager reads one channel's history a page at a time.
type pager struct {
	ch    string
	after string
	page  []Message
	done  bool // the last read returned the channel's last page
}

// fill reads the next page. A page shorter than asked for is the
// channel's last: what comes after it reaches the stream live, since it
// followed the channel before it read.
func (p *pager) fill(ctx context.Context, b Broker) error {
	page, err := b.Read(ctx, p.ch, p.after, replayPage)
	if err != nil {
		return err
	}
	p.done = len(page) < replayPage
	if len(page) > 0 {
		p.page = page
		p.after = page[len(page)-1].positionIn(p.ch)
	}
	return nil
}

// appendResync appends the resync event: the channels named have lost
// history, and the event's id moves the client to their head (and keeps
// its place in the others). The client's last id is echoed only when it
// has the form of an id.
func (s *stream) appendResync(lastID string, channels []string) error {
	if _, ok := parseID(lastID, maxIDLen); !ok && !ValidID(lastID) {
		lastID = ""
	}
	data, _ := json.Marshal(struct {
		Reason      string   `json:"reason"`
		LastEventID string   `json:"last_event_id"`
		Channels    []string `json:"channels"`
	}{"history_unavailable", lastID, channels})
	var err error
	if s.buf, err = s.appendID(s.buf); err != nil {
		return err
	}
	s.buf = appendFrame(s.buf, "", TypeResync, data)
	s.hub.stats.resyncs.Add(1)
	return nil
}

// appendID appends the id line of the stream's position. When the
// position does not fit in maxIDLen, the id names a cursor that holds it
// (saved through the hub's CursorStore, by every node readable when the
// broker is one), followed by the channels that moved since: a new cursor
// is saved only once those no longer fit either.
func (s *stream) appendID(b []byte) ([]byte, error) {
	c := s.c
	b = append(b, "id: "...)
	start := len(b)
	b = appendPositions(b, c.tags, s.pos)
	if len(b)-start > maxIDLen {
		value := string(b[start:])
		b = b[:start]
		if s.cursor != "" {
			b = appendDelta(b, s.cursor, c.tags, s.pos, s.base)
		}
		if s.cursor == "" || len(b)-start > maxIDLen {
			if len(value) > maxCursorLen {
				return b, fmt.Errorf("%w: a position of %d bytes", errCursor, len(value))
			}
			key := cursorKey([]byte(value))
			ctx, cancel := context.WithTimeout(context.Background(), cursorTimeout)
			err := s.hub.cursors.SaveCursor(ctx, key, value)
			cancel()
			if err != nil {
				return b, fmt.Errorf("%w: %w", errCursor, err)
			}
			s.cursor, s.base = key, slices.Clone(s.pos)
			b = append(b[:start], cursorTag)
			b = append(b, key...)
		}
	}
	return append(b, '\n'), nil
}

// errCursor ends a stream whose position could not be saved: an event
// written without a position the client can resume from would break the
// delivery promise.
var errCursor = errors.New("sse: cannot save the stream's position")

// cursorTimeout bounds saving a cursor.
const cursorTimeout = 5 * time.Second
