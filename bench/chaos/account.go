package main

import (
	"fmt"
	"strings"
)

// tally is the accounting of every client's events against what was
// published. Positions are per channel and channels are independent, so
// every judgement here is per channel; events are matched to publishes by
// the seq in their data, never by id (the publish's id is not a position).
type tally struct {
	// Expected is the sum over clients of the events addressed to each
	// (everyone's, or its user's) whose accepted request started after
	// the client's first connected event arrived; each is Delivered
	// (exactly once), Resynced (missing, and a resync naming its channel
	// arrived after its publish was answered) or Lost.
	Expected  int `json:"expected"`
	Delivered int `json:"delivered"`
	Resynced  int `json:"resynced"`
	Lost      int `json:"lost"`
	// Ambiguous are events addressed to a client but published while its
	// first stream was opening: delivered once or not at all, never twice
	// (AmbiguousDelivered of them were).
	Ambiguous          int `json:"ambiguous"`
	AmbiguousDelivered int `json:"ambiguous_delivered"`
	// Duplicates count a stored event, a seq at one position in its
	// channel, delivered to a client more than once.
	Duplicates int `json:"duplicates"`
	// OutOfOrder counts a channel's seq going back, and an event whose id
	// did not move past the previous one (ssetest.Moved).
	OutOfOrder int `json:"out_of_order"`
	// ResyncBack counts resync events whose id went back in a channel.
	ResyncBack int `json:"resync_ids_back"`
	Misrouted  int `json:"misrouted"` // received but addressed to another user
	// Unattributed are deliveries of a publish's second (or third…)
	// stored copy: its seq again, at a later position in its channel. The
	// publisher sent every attempt of a publish under one Idempotency-Key
	// and holds one id for it, so such a copy is one it has no id for:
	// the hub stored a retry whose first attempt it had stored already.
	// UnattributedPublishes counts the distinct publishes.
	Unattributed          int `json:"unattributed"`
	UnattributedPublishes int `json:"unattributed_publishes"`
	ResyncEvents          int `json:"resync_events"`
	Connections           int `json:"connections"`
	Resumes               int `json:"resumes"` // connections with Last-Event-ID
}

// account checks every client's events against pubs (indexed by seq-1).
// It returns the tally, up to maxDiags diagnoses of what went wrong, and
// the seqs of the publishes stored more than once, in order.
func account(subs []*subscriber, pubs []pub, maxDiags int) (tally, []string, []int64) {
	var t tally
	var diags []string
	var twice bitset
	for _, s := range subs {
		s.mu.Lock()
		t.Duplicates += s.dups
		t.OutOfOrder += s.outOfOrder + s.idsBack
		t.ResyncBack += s.resyncBack
		t.Misrouted += s.misrouted
		t.ResyncEvents += len(s.resyncs)
		t.Connections += s.conns
		t.Resumes += s.resumes
		for _, p := range pubs {
			if lost := t.expect(s, p); lost && len(diags) < maxDiags {
				diags = append(diags, describeLoss(s, p, pubs))
			}
		}
		t.Unattributed += s.copies
		twice.union(s.again)
		if len(diags) < maxDiags {
			diags = append(diags, s.diags[:min(len(s.diags), maxDiags-len(diags))]...)
		}
		s.mu.Unlock()
	}
	seqs := twice.members()
	t.UnattributedPublishes = len(seqs)
	return t, diags, seqs
}

// expect accounts for publish p at client s (s.mu held) and reports
// whether it was lost.
func (t *tally) expect(s *subscriber, p pub) bool {
	if p.Attempt < 0 || (p.To != "all" && p.To != s.user) {
		return false
	}
	got := s.got.has(p.Seq)
	if p.Start.Before(s.first) {
		t.Ambiguous++
		if got {
			t.AmbiguousDelivered++
		}
		return false
	}
	t.Expected++
	switch {
	case got:
		t.Delivered++
	case s.resyncedAfter(p):
		t.Resynced++
	default:
		t.Lost++
		return true
	}
	return false
}

// resyncedAfter reports whether a resync naming p's channel arrived after
// p's publish was answered, so after p was stored: the loss of p is
// announced.
func (s *subscriber) resyncedAfter(p pub) bool {
	for _, r := range s.resyncs {
		if r.chans[p.channel()] && r.at.After(p.Done) {
			return true
		}
	}
	return false
}

// describeLoss says what client s got around the lost publish p: the seqs
// of p's channel near it, its resyncs, its last events.
func describeLoss(s *subscriber, p pub, pubs []pub) string {
	var b strings.Builder
	fmt.Fprintf(&b, "client %d (user %s) lost seq %d (to %s, accepted attempt %d, published %s–%s); first connected %s, %d connections, %d resumes;",
		s.idx, s.user, p.Seq, chName[p.channel()], p.Attempt, p.Start.Format("15:04:05.000"), p.Done.Format("15:04:05.000"),
		s.first.Format("15:04:05.000"), s.conns, s.resumes)
	b.WriteString(" near it in its channel:")
	for q := max(1, p.Seq-12); q <= min(int64(len(pubs)), p.Seq+12); q++ {
		o := pubs[q-1]
		if o.channel() != p.channel() || (o.To != "all" && o.To != s.user) {
			continue
		}
		mark := "missing"
		if o.Attempt >= 0 && s.got.has(q) {
			mark = "got"
		}
		fmt.Fprintf(&b, " %d:%s", q, mark)
	}
	for _, r := range s.resyncs {
		fmt.Fprintf(&b, "; resync at %s all=%v user=%v", r.at.Format("15:04:05.000"), r.chans[chAll], r.chans[chUser])
	}
	return b.String()
}

// caughtUp reports whether s has the accepted end marker of each of its
// channels, everyone's and its user's (or a resync of that channel after
// the marker was published, which moved it past the marker). Channels are
// independent, so one channel's marker says nothing of the other's.
func (s *subscriber) caughtUp(markers [2]pub) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range markers {
		if m.Attempt < 0 {
			return false
		}
		if !s.got.has(m.Seq) && !s.resyncedAfter(m) {
			return false
		}
	}
	return true
}
