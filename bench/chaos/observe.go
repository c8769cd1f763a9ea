package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/ssekit/sse/internal/ssetest"
	"github.com/ssekit/sse/sseclient"
	"github.com/ssekit/sse/ssekit"
)

// handle checks and records one event. It runs on the subscriber's
// goroutine, one event at a time.
func (s *subscriber) handle(ev sseclient.Event) error {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	switch ev.Type {
	case ssekit.TypeConnected:
		s.connected(now, ev)
	case ssekit.TypeResync:
		s.resync(now, ev)
	case "chaos":
		s.chaos(now, ev)
	}
	return nil
}

// connected records a connection. Only a client's first (fresh) stream's
// connected event carries an id of its own; on a resume the client
// reports the id it resumed from, which moves nothing.
func (s *subscriber) connected(now time.Time, ev sseclient.Event) {
	s.conns++
	var d struct{ Resumed bool }
	_ = json.Unmarshal(ev.Data, &d)
	s.remember(note{at: now, typ: fmt.Sprintf("connected(resumed=%v)", d.Resumed), id: ev.ID, node: s.node})
	if s.first.IsZero() {
		// Its id is the position the client starts from.
		s.first, s.lastID = now, ev.ID
	}
	if w := s.watch; w != nil && w.resumedAt.IsZero() && s.node != w.killed {
		w.resumedAt, w.resumed = now, d.Resumed
	}
}

// resync records a resync and checks that its id goes back in no channel.
func (s *subscriber) resync(now time.Time, ev sseclient.Event) {
	var d struct{ Channels []string }
	_ = json.Unmarshal(ev.Data, &d)
	r := resyncSeen{at: now, id: ev.ID}
	for _, ch := range d.Channels {
		switch ch {
		case "all":
			r.chans[chAll] = true
		case "user":
			r.chans[chUser] = true
		}
	}
	s.resyncs = append(s.resyncs, r)
	s.remember(note{at: now, typ: fmt.Sprintf("resync%v", d.Channels), id: ev.ID, node: s.node})
	if !ssetest.Moved(s.lastID, ev.ID) {
		s.resyncBack++
		s.diagnose("resync id did not move past the last id")
	}
	s.lastID = ev.ID
}

// chanTag is each channel's tag in the hub's event ids.
var chanTag = [2]string{"a", "u"}

// chaos checks and records one published event: its id must move past the
// last one, its seq go up in its channel, its addressee be this client.
// A seq it already has is told apart by its position in its channel: at
// a later one, it is a second stored copy of the publish (stored twice,
// which the publisher's Idempotency-Key exists to prevent); at the same
// or an earlier one, the same stored event delivered again, a duplicate.
func (s *subscriber) chaos(now time.Time, ev sseclient.Event) {
	var p payload
	if err := json.Unmarshal(ev.Data, &p); err != nil || p.Seq <= 0 {
		s.diagnose(fmt.Sprintf("bad data %q", ev.Data))
		return
	}
	ch := chAll
	if p.To != "all" {
		ch = chUser
		if p.To != s.user {
			s.misrouted++
		}
	}
	s.remember(note{at: now, typ: chType[ch], id: ev.ID, node: s.node, seq: p.Seq})
	positions, _, _ := ssetest.Positions(ev.ID)
	pos := positions[chanTag[ch]] // "" when the id does not carry it
	later := pos != "" && s.lastPos[ch] != "" && ssekit.CompareIDs(pos, s.lastPos[ch]) > 0
	switch {
	case !s.got.add(p.Seq):
		if p.Seq < s.lastSeq[ch] {
			s.outOfOrder++
			s.diagnose("seq went back in its channel")
		}
	case later:
		s.again.add(p.Seq)
		s.copies++
	default:
		s.dups++
		s.diagnose("delivered twice")
	}
	s.lastSeq[ch] = max(s.lastSeq[ch], p.Seq)
	if pos != "" && (s.lastPos[ch] == "" || later) {
		s.lastPos[ch] = pos
	}
	if !ssetest.Moved(s.lastID, ev.ID) {
		s.idsBack++
		s.diagnose("id did not move past the last id")
	}
	s.lastID = ev.ID
	if w := s.watch; w != nil && !w.resumedAt.IsZero() && p.T > w.resumedAt.UnixNano() {
		s.watched(w, ch, p, now)
	}
}

// watched records, for the storm, the first events of each channel
// published after the client resumed.
func (s *subscriber) watched(w *stormWatch, ch int, p payload, now time.Time) {
	lat := now.Sub(time.Unix(0, p.T))
	switch {
	case ch == chAll && w.nextAll.IsZero():
		w.nextAll = now
	case ch == chUser && p.End:
		w.markerGot, w.markerLat = true, lat
	case ch == chUser && !w.userGot:
		w.userGot, w.userLat = true, lat
	}
}

// remember keeps n in the ring of the last events.
func (s *subscriber) remember(n note) {
	s.ring[s.nring%len(s.ring)] = n
	s.nring++
}

// diagnose records, for the first faults of a client, what it saw up to
// now: the ring of its last events.
func (s *subscriber) diagnose(what string) {
	if len(s.diags) >= 3 {
		return
	}
	d := fmt.Sprintf("client %d (user %s): %s; last events:", s.idx, s.user, what)
	for k := max(0, s.nring-len(s.ring)); k < s.nring; k++ {
		n := s.ring[k%len(s.ring)]
		d += fmt.Sprintf(" [%s %s node%d", n.at.Format("15:04:05.000"), n.typ, n.node)
		if n.seq > 0 {
			d += fmt.Sprintf(" seq %d", n.seq)
		}
		d += fmt.Sprintf(" id=%s]", n.id)
	}
	s.diags = append(s.diags, d)
}

// bitset is a set of small positive integers (seqs).
type bitset []uint64

// add adds i and reports whether it was there already.
func (b *bitset) add(i int64) bool {
	w := int(i / 64)
	for len(*b) <= w {
		*b = append(*b, 0)
	}
	was := (*b)[w]&(1<<(i%64)) != 0
	(*b)[w] |= 1 << (i % 64)
	return was
}

// has reports whether i is in the set.
func (b bitset) has(i int64) bool {
	w := int(i / 64)
	return w < len(b) && b[w]&(1<<(i%64)) != 0
}

// union adds the members of o.
func (b *bitset) union(o bitset) {
	for len(*b) < len(o) {
		*b = append(*b, 0)
	}
	for w, word := range o {
		(*b)[w] |= word
	}
}

// members returns the set's members in order.
func (b bitset) members() []int64 {
	var out []int64
	for w, word := range b {
		for i := range 64 {
			if word&(1<<i) != 0 {
				out = append(out, int64(w*64+i))
			}
		}
	}
	return out
}
