package ssekit

import (
	"sync"
	"sync/atomic"
)

// Stats is a snapshot of a hub's counters since it started.
type Stats struct {
	Clients   int // connections open now
	Users     int // users with at least one connection now
	Published uint64
	Delivered uint64 // frames queued to connections (a broadcast to n counts n)
	Replayed  uint64 // frames written from the history on resume
	Resyncs   uint64 // resync events sent
	Dropped   uint64 // frames skipped under OverflowDrop
	Rejected  uint64 // streams turned away: MaxClients or shutting down
	// Disconnects counts ended streams by reason (ReasonOverflow, …).
	Disconnects map[string]uint64
	// ByType counts published and delivered events per event type (up to
	// 100 types; the rest are counted under "other").
	ByType map[string]TypeStats
}

// TypeStats counts one event type.
type TypeStats struct {
	Published uint64
	Delivered uint64
}

// maxTypes bounds the ByType map, since types come from callers.
const maxTypes = 100

type typeCounters struct{ published, delivered atomic.Uint64 }

type stats struct {
	nDelivered, replayed, resyncs, dropped, rejected, nPublished atomic.Uint64
	disconnects                                                  sync.Map // reason → *atomic.Uint64
	types                                                        sync.Map // type → *typeCounters
	ntypes                                                       atomic.Int32
}

func (s *stats) forType(typ string) *typeCounters {
	if v, ok := s.types.Load(typ); ok {
		return v.(*typeCounters)
	}
	if s.ntypes.Load() >= maxTypes {
		typ = "other"
		if v, ok := s.types.Load(typ); ok {
			return v.(*typeCounters)
		}
	}
	v, loaded := s.types.LoadOrStore(typ, new(typeCounters))
	if !loaded {
		s.ntypes.Add(1)
	}
	return v.(*typeCounters)
}

func (s *stats) published(typ string) {
	s.nPublished.Add(1)
	s.forType(typ).published.Add(1)
}

func (s *stats) delivered(typ string, n int) {
	if n == 0 {
		return
	}
	s.nDelivered.Add(uint64(n))
	s.forType(typ).delivered.Add(uint64(n))
}

func (s *stats) disconnect(reason string) {
	v, _ := s.disconnects.LoadOrStore(reason, new(atomic.Uint64))
	v.(*atomic.Uint64).Add(1)
}

// Stats returns the hub's counters.
func (h *Hub) Stats() Stats {
	st := Stats{
		Published:   h.stats.nPublished.Load(),
		Delivered:   h.stats.nDelivered.Load(),
		Replayed:    h.stats.replayed.Load(),
		Resyncs:     h.stats.resyncs.Load(),
		Dropped:     h.stats.dropped.Load(),
		Rejected:    h.stats.rejected.Load(),
		Disconnects: make(map[string]uint64),
		ByType:      make(map[string]TypeStats),
	}
	st.Clients, st.Users = h.reg.counts()
	h.stats.disconnects.Range(func(k, v any) bool {
		st.Disconnects[k.(string)] = v.(*atomic.Uint64).Load()
		return true
	})
	h.stats.types.Range(func(k, v any) bool {
		c := v.(*typeCounters)
		st.ByType[k.(string)] = TypeStats{Published: c.published.Load(), Delivered: c.delivered.Load()}
		return true
	})
	return st
}
