package redisbroker

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ssekit/sse/ssekit"
)

// read is a shard's goroutine: it delivers what its connection hears, in
// order, until the connection fails or the shard is closed.
func (s *subscription) read(sh *shard) {
	for {
		msg, err := sh.ps.Receive(s.ctx)
		if err == nil {
			err = s.handle(sh, msg)
		}
		if err != nil {
			s.failShard(sh, err)
			return
		}
	}
}

// handle acts on one thing a shard's connection heard.
func (s *subscription) handle(sh *shard, msg any) error {
	switch m := msg.(type) {
	case *redis.Subscription:
		switch m.Kind {
		case "ssubscribe":
			return s.confirmed(sh, m.Channel)
		case "sunsubscribe":
			s.unsubscribed(sh, m.Channel)
		}
	case *redis.Message:
		s.b.ops.add(opLive, 1)
		lc := s.lookup(sh, m.Channel)
		if lc == nil {
			return nil
		}
		lc.deliveryMu.Lock()
		defer lc.deliveryMu.Unlock()
		if !s.current(sh, lc) {
			// Not taken on yet, or being subscribed again: whoever follows
			// it reads it from the stream.
			return nil
		}
		if lc == s.clients {
			cm, err := decodeClients(m.Payload)
			if err != nil {
				s.b.log.Warn("redisbroker: malformed event to clients dropped", "err", err)
				return nil
			}
			if s.ctx.Err() == nil {
				s.fn(cm)
			}
			return nil
		}
		return s.live(lc, m.Payload)
	}
	return nil
}

// lookup returns the channel a shard's connection heard about, or nil.
func (s *subscription) lookup(sh *shard, live string) *liveChan {
	if live == s.clients.live {
		return s.clients
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return sh.byLive[live]
}

// current reports whether lc is live on sh: taken on, subscribed there,
// and not waiting to read what it missed.
func (s *subscription) current(sh *shard, lc *liveChan) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return lc.shard == sh && lc.done && !lc.fill
}

// confirmed takes on a channel whose subscription Redis confirmed: its
// baseline is the channel's head, the first time; after a lost connection
// (or a resubscription go-redis made by itself), the reader first reads
// what it missed from the stream.
func (s *subscription) confirmed(sh *shard, live string) error {
	lc := s.lookup(sh, live)
	if lc == nil {
		return nil
	}
	lc.deliveryMu.Lock()
	defer lc.deliveryMu.Unlock()
	s.mu.Lock()
	here, done := lc.shard == sh, lc.done
	s.mu.Unlock()
	if here {
		s.recovered()
	}
	switch {
	case !here:
		return nil
	case lc == s.clients:
		s.markReady(lc, false)
		return nil // live only: nothing to read back
	case !done:
		head, err := s.b.Head(s.ctx, lc.channel)
		if err != nil {
			return err
		}
		lc.last = head
		s.markReady(lc, false)
		return nil
	}
	// Confirmed again: whatever was published while it was not subscribed
	// is in the stream.
	if err := s.fill(lc); err != nil {
		return err
	}
	s.markReady(lc, true)
	return nil
}

// markReady marks lc live: taken on (its Follows return) and, when filled,
// done reading what it missed.
func (s *subscription) markReady(lc *liveChan, filled bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if filled {
		lc.fill = false
	}
	if !lc.done {
		lc.done = true
		close(lc.ready)
	}
}

// unsubscribed handles an SUNSUBSCRIBE confirmation: one the subscription
// asked for, or Redis telling it that the channel's slot moved to another
// master, which the maintainer then subscribes on.
func (s *subscription) unsubscribed(sh *shard, live string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sh.leaving[live] > 0 {
		if sh.leaving[live]--; sh.leaving[live] == 0 {
			delete(sh.leaving, live)
		}
		return
	}
	if lc := sh.byLive[live]; lc != nil {
		delete(sh.byLive, live)
		lc.shard = nil
		s.b.log.Warn("redisbroker: Redis ended a channel's subscription (its slot moved?); subscribing again", "channel", live)
		s.retry()
	}
}

// live delivers one announced event of lc (its deliveryMu held), after what
// it missed: an event
// whose predecessor is not the last one delivered means the Pub/Sub
// connection lost some (or they were published before the subscription
// took the channel on), and the stream has them.
func (s *subscription) live(lc *liveChan, payload string) error {
	f, also, err := announcement(payload)
	if err != nil {
		s.b.log.Warn("redisbroker: malformed announcement dropped", "channel", lc.live, "err", err)
		return nil
	}
	id, prev := f[0], f[1]
	if ssekit.CompareIDs(id, lc.last) <= 0 {
		return nil // delivered already, by a read of the stream
	}
	if prev != lc.last && ssekit.CompareIDs(prev, lc.last) != 0 {
		return s.fill(lc) // delivers this one too
	}
	s.deliver(lc, ssekit.Message{ID: f[2], Also: also, Type: f[3], Data: []byte(f[4]), Time: idTime(id)}, id)
	return nil
}

// announcement reads what the publish script announces: five fields
// (position, prev, publish id, type, data), and the copy's Also as a
// sixth when the publish had other channels a follower may follow.
func announcement(payload string) (f, also []string, err error) {
	f, err = splitFields(payload)
	switch {
	case err != nil:
	case len(f) == 6:
		also, err = decodeNames(f[5])
	case len(f) != 5:
		err = fmt.Errorf("%d fields, want 5 or 6", len(f))
	}
	return f, also, err
}

// deliver hands fn an event of lc at position pos.
func (s *subscription) deliver(lc *liveChan, m ssekit.Message, pos string) {
	m.Channels, m.Positions = []string{lc.channel}, []string{pos}
	lc.last = pos
	if s.ctx.Err() == nil {
		s.fn(m)
	}
}

// fill reads lc's stream after the last position delivered and delivers
// it (lc's deliveryMu held). Entries trimmed before they could be read, or a stream that went
// back (Redis lost its data), are a loss: it delivers a resync for the
// channel first, whose position is where the unbroken history starts
// again, never skipping silently.
func (s *subscription) fill(lc *liveChan) error {
	b := s.b
	for {
		b.ops.add(opFill, 1)
		entries, err := b.rdb.XRangeN(s.ctx, b.channelKey(lc.channel), "("+lc.last, "+", b.opts.ReadCount).Result()
		if err != nil {
			return fmt.Errorf("redisbroker: read %s after %s: %w", lc.channel, lc.last, err)
		}
		if len(entries) == 0 {
			head, err := b.Head(s.ctx, lc.channel)
			if err != nil {
				return err
			}
			if ssekit.CompareIDs(head, lc.last) >= 0 {
				return nil
			}
			b.log.Error("redisbroker: a channel's stream went back (Redis lost its data?); telling its clients to resync",
				"channel", lc.channel, "delivered_up_to", lc.last, "head", head)
			s.resync(lc, "0-0")
			continue
		}
		for _, xm := range entries {
			if prev, _ := xm.Values[fieldPrev].(string); prev != lc.last && ssekit.CompareIDs(prev, lc.last) != 0 {
				b.log.Error("redisbroker: events were trimmed before this node read them; telling the channel's clients to resync",
					"channel", lc.channel, "delivered_up_to", lc.last, "entry", xm.ID, "entry_prev", prev)
				if !validStreamID(prev) || ssekit.CompareIDs(prev, xm.ID) >= 0 {
					prev = "0-0"
				}
				s.resync(lc, prev)
			}
			m := decode(lc.channel, xm)
			s.deliver(lc, m, xm.ID)
		}
		if int64(len(entries)) < b.opts.ReadCount {
			return nil
		}
	}
}

// resync delivers the announcement that lc's history broke; pos is where
// its unbroken history starts again.
func (s *subscription) resync(lc *liveChan, pos string) {
	s.deliver(lc, ssekit.Message{Type: ssekit.TypeResync, Time: time.Now()}, pos)
}

// fields splits an announcement into n length-prefixed fields,
// "<len>:<bytes>" each.
func fields(payload string, n int) ([]string, error) {
	out, err := splitFields(payload)
	if err == nil && len(out) != n {
		return nil, fmt.Errorf("%d fields, want %d", len(out), n)
	}
	return out, err
}

// splitFields splits s into its length-prefixed fields, "<len>:<bytes>"
// each, however many there are.
func splitFields(s string) ([]string, error) {
	out := make([]string, 0, 6)
	for s != "" {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == 0 || i >= len(s) || s[i] != ':' {
			return nil, errors.New("malformed field length")
		}
		size, err := strconv.Atoi(s[:i])
		if err != nil || size > len(s)-i-1 {
			return nil, errors.New("field longer than the announcement")
		}
		out = append(out, s[i+1:i+1+size])
		s = s[i+1+size:]
	}
	return out, nil
}

// encodeNames is how a copy of a publish stores its Also, in the stream
// entry and as the announcement's sixth field: the names as length-prefixed
// fields, "11:topic:board41:user:…". Brokers treat channel names as
// opaque, and a user id may hold any byte (Target.Users takes any
// non-empty string), so no separator would do; the prefix costs a few
// bytes a name (3 for a UUID user's channel) where a separator would cost
// 1. Nil or empty encodes as "".
func encodeNames(names []string) string {
	if len(names) == 0 {
		return ""
	}
	n := 0
	for _, s := range names {
		n += len(s) + 4
	}
	b := make([]byte, 0, n)
	for _, s := range names {
		b = appendField(b, s)
	}
	return string(b)
}

// decodeNames reads what encodeNames wrote: nil for "".
func decodeNames(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	names, err := splitFields(s)
	if err != nil {
		return nil, fmt.Errorf("also: %w", err)
	}
	return names, nil
}

// appendField appends one length-prefixed field.
func appendField(b []byte, s string) []byte {
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, ':')
	return append(b, s...)
}

// encodeClients is the announcement of an event to clients: the publish
// id, the clients and the event's channels (JSON arrays: a client that
// follows one of them gets the event there instead), type and data.
func encodeClients(id string, m ssekit.Message) string {
	clients, _ := json.Marshal(m.Clients) // []string always marshals
	channels, _ := json.Marshal(m.Channels)
	b := appendField(nil, id)
	b = appendField(b, string(clients))
	b = appendField(b, string(channels))
	b = appendField(b, m.Type)
	b = appendField(b, string(m.Data))
	return string(b)
}

// decodeClients reads an event to clients. Its Channels carry no
// positions: the event reaches their followers through the channels
// themselves.
func decodeClients(payload string) (ssekit.Message, error) {
	f, err := fields(payload, 5)
	if err != nil {
		return ssekit.Message{}, err
	}
	m := ssekit.Message{ID: f[0], Type: f[3], Data: []byte(f[4]), Time: time.Now()}
	if err := json.Unmarshal([]byte(f[1]), &m.Clients); err != nil {
		return m, err
	}
	if err := json.Unmarshal([]byte(f[2]), &m.Channels); err != nil {
		return m, err
	}
	return m, nil
}
