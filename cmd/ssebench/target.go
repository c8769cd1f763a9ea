package main

import (
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
)

// expectation is what every connection should hold by the end of a run:
// in a broadcast run, All events each; in a targeted run, the events
// accepted for its user. The master hands it to the workers for Drain and
// the final accounting.
type expectation struct {
	All     int64   `json:"all,omitempty"`
	PerUser []int64 `json:"per_user,omitempty"` // by user index; nil in a broadcast run
	// Failed lists the targeted events (user, n) whose publish failed: the
	// server may still have sent them (a timeout after it accepted), so
	// they count neither as delivered nor as lost.
	Failed [][2]uint64 `json:"failed,omitempty"`
}

// of returns how many events a connection of user should receive.
func (e *expectation) of(user uint64) int64 {
	if e.PerUser == nil {
		return e.All
	}
	if user < uint64(len(e.PerUser)) {
		return e.PerUser[user]
	}
	return 0
}

// failedBy groups Failed by user.
func (e *expectation) failedBy() map[uint64][]uint64 {
	if len(e.Failed) == 0 {
		return nil
	}
	m := make(map[uint64][]uint64)
	for _, f := range e.Failed {
		m[f[0]] = append(m[f[0]], f[1])
	}
	return m
}

// lost returns how many of the events t's user should have received did
// not arrive at t, and how many arrived that were published by a failed
// call (and are not counted as delivered).
func (e *expectation) lost(t *tracker, failed []uint64) (lost, extra int64) {
	for _, n := range failed {
		if t.hasN(n) {
			extra++
		}
	}
	lost = e.of(t.user) - (t.unique.Load() - extra)
	return max(lost, 0), extra
}

// addressing picks the addressee of each targeted event and numbers the
// events of each user. It is shared by the publishers: pick and fail are
// safe for concurrent use.
type addressing struct {
	users []uint64        // the connected users' indices, each once
	names [][]byte        // by user index: its id, for {user}
	seq   []atomic.Uint64 // by user index: the last n handed out

	mu     sync.Mutex
	failed [][2]uint64 // (user, n) of failed publishes
}

// newAddressing addresses events to the users of the established
// connections (a connection's user index, repeated for users with several
// connections).
func newAddressing(connUsers []uint64) *addressing {
	users := slices.Clone(connUsers)
	slices.Sort(users)
	users = slices.Compact(users)
	a := &addressing{users: users}
	if len(users) > 0 {
		n := users[len(users)-1] + 1
		a.seq = make([]atomic.Uint64, n)
		a.names = make([][]byte, n)
		for _, u := range users {
			a.names[u] = []byte(userName(u))
		}
	}
	return a
}

// pick returns a random connected user and the event's number among that
// user's events.
func (a *addressing) pick(rng *rand.Rand) (user, n uint64) {
	user = a.users[rng.IntN(len(a.users))]
	return user, a.seq[user].Add(1)
}

// fail records that the publish of user's event n failed.
func (a *addressing) fail(user, n uint64) {
	a.mu.Lock()
	a.failed = append(a.failed, [2]uint64{user, n})
	a.mu.Unlock()
}

// expectation returns, once the publishers are done, what each user's
// connections should have received: the events numbered for the user,
// less the failed ones.
func (a *addressing) expectation() expectation {
	e := expectation{PerUser: make([]int64, len(a.seq)), Failed: a.failed}
	for u := range a.seq {
		e.PerUser[u] = int64(a.seq[u].Load())
	}
	for _, f := range a.failed {
		e.PerUser[f[0]]--
	}
	return e
}
