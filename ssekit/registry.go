package ssekit

import (
	"slices"
	"strings"
	"sync"
)

// registry indexes the live clients by the channels they follow: every
// client follows the broadcast channel (all, a slice, so that fan-out is a
// linear walk), and the others are a map from channel to its followers,
// oldest first (for MaxClientsPerUser). Sending to one user costs that
// user's connections, not the hub's. It also finds clients by id.
type registry struct {
	mu        sync.RWMutex
	all       []*follower
	byID      map[string]*follower
	byChannel map[string][]*follower
	users     int // user channels with a follower
}

func newRegistry() *registry {
	return &registry{byID: make(map[string]*follower), byChannel: make(map[string][]*follower)}
}

// add registers c unless the hub is full (maxClients < 0: no limit). When
// c's user is at maxPerUser, the user's oldest client is unregistered, which
// makes room, and returned so that the caller can end its stream.
func (r *registry) add(c *follower, maxClients, maxPerUser int) (evicted *follower, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if uc := r.byChannel[UserChannel(c.user)]; c.user != "" && maxPerUser > 0 && len(uc) >= maxPerUser {
		evicted = uc[0]
		r.removeLocked(evicted)
	} else if maxClients > 0 && len(r.all) >= maxClients {
		return nil, false
	}
	c.slot = len(r.all)
	r.all = append(r.all, c)
	r.byID[c.id] = c
	for _, ch := range c.channels[1:] {
		if len(r.byChannel[ch]) == 0 && strings.HasPrefix(ch, userPrefix) {
			r.users++
		}
		r.byChannel[ch] = append(r.byChannel[ch], c)
	}
	return evicted, true
}

// remove unregisters c; it reports false if c was not registered.
func (r *registry) remove(c *follower) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.removeLocked(c)
}

func (r *registry) removeLocked(c *follower) bool {
	if r.byID[c.id] != c {
		return false
	}
	delete(r.byID, c.id)
	last := r.all[len(r.all)-1]
	r.all[c.slot] = last
	last.slot = c.slot
	r.all[len(r.all)-1] = nil
	r.all = r.all[:len(r.all)-1]
	for _, ch := range c.channels[1:] {
		cs := r.byChannel[ch]
		if i := slices.Index(cs, c); i >= 0 {
			cs = slices.Delete(cs, i, i+1)
		}
		if len(cs) > 0 {
			r.byChannel[ch] = cs
			continue
		}
		delete(r.byChannel, ch)
		if strings.HasPrefix(ch, userPrefix) {
			r.users--
		}
	}
	return true
}

// each calls fn once for every client m is addressed to, under the read
// lock, with the index in m.Channels of the channel it was reached
// through and that channel's index in the client's own (both -1: by its
// client id); fn must not block. A client that follows several of m's
// channels is reached through the first of them only, and one addressed by
// id too through that channel. A delivery for m's clients only (Channels
// without Positions) reaches none by channel.
func (r *registry) each(m *Message, fn func(c *follower, via, k int)) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for i, ch := range m.Channels {
		if len(m.Positions) != len(m.Channels) {
			break
		}
		if ch == BroadcastChannel {
			// Everyone's channel is every client's first: a broadcast, to
			// thousands, pays for no lookup.
			for _, c := range r.all {
				if i == 0 || !c.followsAny(m.Channels[:i]) {
					fn(c, i, 0)
				}
			}
			continue
		}
		for _, c := range r.byChannel[ch] {
			if i > 0 && c.followsAny(m.Channels[:i]) {
				continue
			}
			fn(c, i, c.channelIndex(ch))
		}
	}
	for _, id := range m.Clients {
		if c := r.byID[id]; c != nil && !c.followsAny(m.Channels) {
			fn(c, -1, -1)
		}
	}
}

// snapshot returns every client; for shutdown.
func (r *registry) snapshot() []*follower {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return append([]*follower(nil), r.all...)
}

// counts returns the number of clients and of users.
func (r *registry) counts() (clients, users int) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.all), r.users
}

// userIDs returns the connected user ids.
func (r *registry) userIDs() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, r.users)
	for ch := range r.byChannel {
		if u, ok := strings.CutPrefix(ch, userPrefix); ok {
			out = append(out, u)
		}
	}
	return out
}

// eachFollower calls fn for each client that follows ch, under the read
// lock; fn must not block.
func (r *registry) eachFollower(ch string, fn func(*follower)) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, c := range r.byChannel[ch] {
		fn(c)
	}
}

// userCount returns how many connections user has.
func (r *registry) userCount(user string) int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.byChannel[UserChannel(user)])
}
