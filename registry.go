package sse

import "sync"

// registry indexes the live clients three ways: all of them (for
// broadcasts, a slice so that fan-out is a linear walk), by client id, and
// by user (oldest first, for MaxClientsPerUser). Sending to one user costs
// that user's connections, not the hub's.
type registry struct {
	mu     sync.RWMutex
	all    []*client
	byID   map[string]*client
	byUser map[string][]*client
}

func newRegistry() *registry {
	return &registry{byID: make(map[string]*client), byUser: make(map[string][]*client)}
}

// add registers c unless the hub is full (maxClients < 0: no limit). When
// c's user is at maxPerUser, the user's oldest client is unregistered, which
// makes room, and returned so that the caller can end its stream.
func (r *registry) add(c *client, maxClients, maxPerUser int) (evicted *client, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c.user != "" && maxPerUser > 0 && len(r.byUser[c.user]) >= maxPerUser {
		evicted = r.byUser[c.user][0]
		r.removeLocked(evicted)
	} else if maxClients > 0 && len(r.all) >= maxClients {
		return nil, false
	}
	c.slot = len(r.all)
	r.all = append(r.all, c)
	r.byID[c.id] = c
	if c.user != "" {
		r.byUser[c.user] = append(r.byUser[c.user], c)
	}
	return evicted, true
}

// remove unregisters c; it reports false if c was not registered.
func (r *registry) remove(c *client) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.removeLocked(c)
}

func (r *registry) removeLocked(c *client) bool {
	if r.byID[c.id] != c {
		return false
	}
	delete(r.byID, c.id)
	last := r.all[len(r.all)-1]
	r.all[c.slot] = last
	last.slot = c.slot
	r.all[len(r.all)-1] = nil
	r.all = r.all[:len(r.all)-1]
	if c.user != "" {
		cs := r.byUser[c.user]
		for i, o := range cs {
			if o == c {
				cs = append(cs[:i], cs[i+1:]...)
				break
			}
		}
		if len(cs) == 0 {
			delete(r.byUser, c.user)
		} else {
			r.byUser[c.user] = cs
		}
	}
	return true
}

// each calls fn for every client m is addressed to, once each, under the
// read lock; fn must not block.
func (r *registry) each(m *Message, fn func(*client)) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if m.Broadcast() {
		for _, c := range r.all {
			fn(c)
		}
		return
	}
	// Publish sorted and compacted Users and Clients: no repeats to skip.
	for _, u := range m.Users {
		for _, c := range r.byUser[u] {
			fn(c)
		}
	}
	for _, id := range m.Clients {
		c := r.byID[id]
		if c == nil || (c.user != "" && contains(m.Users, c.user)) {
			continue
		}
		fn(c)
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// snapshot returns every client; for shutdown.
func (r *registry) snapshot() []*client {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return append([]*client(nil), r.all...)
}

// counts returns the number of clients and of users.
func (r *registry) counts() (clients, users int) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.all), len(r.byUser)
}

// users returns the connected user ids.
func (r *registry) users() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.byUser))
	for u := range r.byUser {
		out = append(out, u)
	}
	return out
}

// userCount returns how many connections user has.
func (r *registry) userCount(user string) int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.byUser[user])
}
