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
type tracker struct {
	unique   atomic.Int64 // distinct events received
	dups     int64
	reorders int64 // an event older than one already received from the same publisher
	outside  int64 // sequence numbers beyond maxTracked
	seen     []uint64
	lastS    []uint64 // per publisher: the highest s received
	lastAt   int64    // Unix ns of the last event
	firstAt  int64
}

// observe accounts one payload received at at (Unix ns).
func (t *tracker) observe(pl payload, at int64) (dup bool) {
	if t.firstAt == 0 {
		t.firstAt = at
	}
	t.lastAt = at
	if pl.g >= maxTracked {
		t.outside++
		return false
	}
	w := int(pl.g >> 6)
	if w >= len(t.seen) {
		// Grow geometrically, so a long run costs few copies.
		t.seen = append(t.seen, make([]uint64, max(w+1-len(t.seen), len(t.seen)))...)
	}
	bit := uint64(1) << (pl.g & 63)
	if t.seen[w]&bit != 0 {
		t.dups++
		return true
	}
	t.seen[w] |= bit
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
	return false
}

// shard gathers the latency histogram and counters of a group of
// connections; connections are spread over shards so that their atomic
// adds rarely contend.
type shard struct {
	lat   hist
	other atomic.Int64 // events without a payload (connected, heartbeat, …)
	_     [64]byte
}
