package main

import (
	"sync/atomic"
)

// maxTracked bounds the sequence numbers a connection keeps a bitmap for
// (2^24 events: 2 MiB per connection at the very most).
const maxTracked = 1 << 24

// tracker is one connection's delivery accounting. Only its connection's
// goroutine writes it; it is read after that goroutine has ended, except
// unique, which the drain loop polls.
//
// An event to everyone is known by its global number g; an event to one
// user (payload.targeted) by its number n among that user's events, so the
// bitmap of a targeted run stays as small as the user's share. A stream
// counts a targeted event as delivered only if its user is the addressee;
// any other is a misdelivery.
type tracker struct {
	user     uint64       // this connection's user index, for targeted events
	unique   atomic.Int64 // distinct events received (rightful ones only)
	dups     int64
	reorders int64 // an event older than one already received from the same publisher
	outside  int64 // sequence numbers beyond maxTracked
	misdeliv int64 // targeted events addressed to another user
	seen     []uint64
	seenN    []uint64 // targeted events: bit n of the user's numbering
	lastS    []uint64 // per publisher: the highest s received
	lastAt   int64    // Unix ns of the last event
	firstAt  int64
}

// observe accounts one payload received at at (Unix ns). It reports
// whether the payload is a new delivery to its rightful addressee: only
// those count for latency.
func (t *tracker) observe(pl payload, at int64) (fresh bool) {
	if t.firstAt == 0 {
		t.firstAt = at
	}
	t.lastAt = at
	seq, bitmap := pl.g, &t.seen
	if pl.targeted() {
		if pl.u != t.user {
			t.misdeliv++
			return false
		}
		seq, bitmap = pl.n, &t.seenN
	}
	if seq >= maxTracked {
		t.outside++
		return false
	}
	if !mark(bitmap, seq) {
		t.dups++
		return false
	}
	t.unique.Add(1)
	if pl.p < 1024 {
		if int(pl.p) >= len(t.lastS) {
			t.lastS = append(t.lastS, make([]uint64, int(pl.p)+1-len(t.lastS))...)
		}
		if pl.s < t.lastS[pl.p] {
			t.reorders++
		} else {
			t.lastS[pl.p] = pl.s
		}
	}
	return true
}

// hasN reports whether the targeted event n of this connection's user
// arrived.
func (t *tracker) hasN(n uint64) bool {
	w := int(n >> 6)
	return w < len(t.seenN) && t.seenN[w]&(uint64(1)<<(n&63)) != 0
}

// mark sets bit i of *bitmap, growing it as needed, and reports whether
// the bit was clear.
func mark(bitmap *[]uint64, i uint64) bool {
	w := int(i >> 6)
	if w >= len(*bitmap) {
		// Grow geometrically, so a long run costs few copies.
		*bitmap = append(*bitmap, make([]uint64, max(w+1-len(*bitmap), len(*bitmap)))...)
	}
	bit := uint64(1) << (i & 63)
	if (*bitmap)[w]&bit != 0 {
		return false
	}
	(*bitmap)[w] |= bit
	return true
}

// shard gathers the latency histogram and counters of a group of
// connections; connections are spread over shards so that their atomic
// adds rarely contend.
type shard struct {
	lat   hist
	other atomic.Int64 // events without a payload (connected, heartbeat, …)
	_     [64]byte
}
