package ssekit

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Presence: who is online, across the cluster, and what the hub tells the
// app about it. A user is online while it has a stream on some node. The
// hub answers for its own users from its registry, with no round trip;
// for the others it asks its broker, when the broker is a PresenceStore
// (redisbroker), and otherwise its registry is the whole cluster (the
// in-memory broker serves one node).

// ConnInfo describes one stream to Config.OnConnect and Config.OnDisconnect.
type ConnInfo struct {
	// ClientID is the stream's id, the client_id of its connected event.
	ClientID string
	// Identity is whom the stream is for, as the app's authentication
	// found (topics are the Identity's, not the ones the request asked for).
	Identity Identity
	// Connected is when the hub registered the stream.
	Connected time.Time
	// Ended is when the stream ended; zero in OnConnect.
	Ended time.Time
	// Reason is why the stream ended, one of the Reason… constants
	// (ReasonClientGone, ReasonShutdown, …); "" in OnConnect.
	Reason string
}

// PresenceChange is a user's coming online or going offline, as
// Config.OnPresence is told it.
type PresenceChange struct {
	// User is the user id.
	User string
	// Tenant is the tenant of the stream that made the change (the first
	// one, or the last one to end), "" for none.
	Tenant string
	// Online is true when the user came online: it had no stream on any
	// node and now has one. False when it went offline: its last stream
	// ended and none opened within Config.PresenceDebounce.
	Online bool
	// Time is when the hub saw the change.
	Time time.Time
	// Seq orders the changes of one user: each is higher than the user's
	// previous one, wherever it was decided (the store decides it in the
	// user's own slot; without a store the hub does). Changes can arrive
	// out of order (two nodes, retries): a receiver keeps the highest Seq
	// of each user and drops a change whose Seq is not higher. It is a
	// Unix time in milliseconds, or one more than the previous Seq.
	Seq int64
}

// PresenceStore is an optional interface of a Broker: it knows which
// users have a stream on any node of the cluster, so that Hub.IsOnline
// and Hub.OnlineUserCount answer for the cluster, and it decides the
// cluster's presence changes (Config.OnPresence), each on exactly one
// node. A hub whose broker lacks it (the in-memory broker, one node)
// answers from its own registry and decides the changes itself.
//
// The store learns this node's users from the hub: UserChanged on every
// change, and the PresenceNode it was started with (redisbroker's
// StartPresence). Implementations must be safe for concurrent use.
type PresenceStore interface {
	// UsersOnline reports, in order, whether each of users has a stream
	// on a live node. ctx bounds the call.
	UsersOnline(ctx context.Context, users []string) ([]bool, error)
	// OnlineUsers returns how many users are online across the cluster:
	// those whose coming online was reported and going offline not yet.
	OnlineUsers(ctx context.Context) (int, error)
	// UserChanged tells the store that this node's streams of user
	// changed (one opened or ended; tenant is that stream's). It must
	// not block: the hub calls it on the stream's goroutine, and the
	// store reads the user's count back from its PresenceNode later.
	UserChanged(user, tenant string)
	// StopPresence tells the store that node has stopped (Hub.Shutdown
	// calls it once its streams ended): the store stops deciding changes
	// for it, leaves its users and its pending offline checks to a live
	// node, as a clean stop does, and returns once it will report nothing
	// more to node. A node the store was not started with is ignored.
	StopPresence(node PresenceNode)
}

// PresenceNode is what a PresenceStore asks of the hub whose users it
// keeps present; *Hub implements it.
type PresenceNode interface {
	// ConnectedUserIDs returns the users with at least one stream here.
	ConnectedUserIDs() []string
	// GetTotalClientCount returns how many streams are open here.
	GetTotalClientCount() int
	// UserClientCount returns how many streams user has here.
	UserClientCount(user string) int
	// PresenceDebounce is how long a user must stay without a stream
	// before it is reported offline (Config.PresenceDebounce).
	PresenceDebounce() time.Duration
	// PresenceChanged reports a change the store decided.
	PresenceChanged(PresenceChange)
}

var _ PresenceNode = (*Hub)(nil)

// defaultPresenceDebounce is Config.PresenceDebounce's default: longer
// than a page reload or a reconnect after a rotation, short enough that
// "offline" still means it.
const defaultPresenceDebounce = 5 * time.Second

// presence is a hub's presence: its store, or, without one, the users it
// has reported online and the offline reports it has pending.
type presence struct {
	h     *Hub
	store PresenceStore // nil: the hub's registry is the cluster

	// mu guards the rest. It is the presence's own lock, never held with
	// a hub lock: changed runs after the registry changed, not under it.
	// OnPresence runs under it, so that a user's changes reach the app
	// in order.
	mu      sync.Mutex
	online  map[string]*userPresence // users reported online
	timers  sync.WaitGroup           // offline timers that may still run
	stopped bool
	seq     int64 // the last PresenceChange.Seq, without a store
}

// userPresence is a user reported online and, once its last stream
// ended, the timer of its offline report.
type userPresence struct {
	tenant string
	timer  *time.Timer
}

func newPresence(h *Hub) *presence {
	p := &presence{h: h, online: make(map[string]*userPresence)}
	p.store, _ = h.broker.(PresenceStore)
	return p
}

// changed notes that c's user gained or lost a stream here; c is
// registered, or was just removed.
func (p *presence) changed(c *follower) {
	if c.user == "" || (p.store == nil && p.h.cfg.OnPresence == nil) {
		return
	}
	tenant := c.tenant()
	if p.store != nil {
		p.store.UserChanged(c.user, tenant)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return
	}
	// The count under p.mu, so that this decision and offline's are taken
	// in the order of their reads (p.mu, then the registry's lock: never
	// the other way round).
	n := p.h.reg.userCount(c.user)
	u := p.online[c.user]
	switch {
	case n > 0 && u == nil:
		p.online[c.user] = &userPresence{tenant: tenant}
		p.report(p.next(PresenceChange{User: c.user, Tenant: tenant, Online: true, Time: time.Now()}))
	case n > 0 && u.timer != nil:
		// Back within the debounce: no change to report.
		if u.timer.Stop() {
			p.timers.Done()
		}
		u.timer = nil
	case n == 0 && u != nil && u.timer == nil:
		u.tenant = tenant
		user := c.user
		p.timers.Add(1)
		u.timer = time.AfterFunc(p.h.PresenceDebounce(), func() {
			defer p.timers.Done()
			p.offline(user, u)
		})
	}
}

// offline reports user offline if it still has no stream here, at the
// end of the debounce its timer started.
func (p *presence) offline(user string, u *userPresence) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped || p.online[user] != u {
		return
	}
	if p.h.reg.userCount(user) > 0 {
		// Back, and changed has not seen it yet (or saw it while this timer
		// was firing): this timer is spent, so that the next end starts one.
		u.timer = nil
		return
	}
	delete(p.online, user)
	p.report(p.next(PresenceChange{User: user, Tenant: u.tenant, Online: false, Time: time.Now()}))
}

// next gives ch the next Seq of the hub's changes, under p.mu: a Unix
// time in ms, or one more than the last, so that it also grows across a
// restart of the hub (unless its clock goes back).
func (p *presence) next(ch PresenceChange) PresenceChange {
	p.seq = max(p.seq+1, ch.Time.UnixMilli())
	ch.Seq = p.seq
	return ch
}

// stop ends the offline timers and waits for those that fired. The
// changes they would have reported are dropped: the node is going away,
// and its users' streams reconnect elsewhere, or to it once it is back.
// With a store, it first has the store stop deciding for this hub (and
// hand its pending checks to a live node), so that no change it decided
// is reported after Shutdown returned, nor lost.
func (p *presence) stop() {
	if p.store != nil {
		p.store.StopPresence(p.h)
	}
	p.mu.Lock()
	p.stopped = true
	for _, u := range p.online {
		if u.timer != nil && u.timer.Stop() {
			p.timers.Done()
		}
	}
	p.mu.Unlock()
	p.timers.Wait()
}

// report calls Config.OnPresence, and survives its panic.
func (p *presence) report(ch PresenceChange) {
	if fn := p.h.cfg.OnPresence; fn != nil {
		p.h.guard("OnPresence", ch.User, func() { fn(ch) })
	}
}

// guard runs an app's hook, logging its panic instead of letting it take
// the hub (and every other stream) down.
func (h *Hub) guard(hook, who string, fn func()) {
	defer func() {
		if v := recover(); v != nil {
			h.cfg.Logger.Error("sse: "+hook+" panicked", "panic", v, "who", who)
		}
	}()
	fn()
}

// connected calls Config.OnConnect for the stream of info, on the
// goroutine that registered it.
func (h *Hub) connected(info ConnInfo) {
	if fn := h.cfg.OnConnect; fn != nil {
		h.guard("OnConnect", info.ClientID, func() { fn(info) })
	}
}

// disconnected calls Config.OnDisconnect for c's stream, which has ended,
// on its goroutine, with the reason that ended it.
func (h *Hub) disconnected(c *follower, info ConnInfo) {
	if fn := h.cfg.OnDisconnect; fn != nil {
		info.Ended, info.Reason = time.Now(), c.endReason()
		h.guard("OnDisconnect", info.ClientID, func() { fn(info) })
	}
}

// tenant returns the tenant whose channel c follows, "" for none.
func (c *follower) tenant() string {
	for _, ch := range c.channels {
		if t, ok := strings.CutPrefix(ch, tenantPrefix); ok {
			return t
		}
	}
	return ""
}

// IsOnline reports whether user has a stream on any node of the cluster.
// A user with a stream on this node is online with no round trip; for
// the others the hub asks its broker when it is a PresenceStore
// (redisbroker: one Redis command), and without one this hub is the
// whole cluster. ctx bounds the broker's answer. On a broker error it
// returns false with the error.
func (h *Hub) IsOnline(ctx context.Context, user string) (bool, error) {
	online, err := h.UsersOnline(ctx, []string{user})
	return online[user], err
}

// UsersOnline is IsOnline for several users: a map holding each of them.
// It costs one broker command per user without a stream on this node. On
// a broker error, the users it could not tell are false, and the error
// says why.
func (h *Hub) UsersOnline(ctx context.Context, users []string) (map[string]bool, error) {
	out := make(map[string]bool, len(users))
	var ask []string
	for _, u := range sortedSet(users) {
		if h.reg.userCount(u) > 0 {
			out[u] = true
			continue
		}
		out[u] = false
		if u != "" {
			ask = append(ask, u)
		}
	}
	if len(ask) == 0 || h.presence.store == nil {
		return out, nil
	}
	online, err := h.presence.store.UsersOnline(ctx, ask)
	if err != nil {
		return out, fmt.Errorf("sse: presence: %w", err)
	}
	for i, u := range ask {
		out[u] = i < len(online) && online[i]
	}
	return out, nil
}

// OnlineUserCount returns how many users are online across the cluster.
// Without a PresenceStore it is this hub's Stats().Users; with one, it
// is the store's count, in which a user whose last stream ended stays
// until it is reported offline (PresenceDebounce later).
func (h *Hub) OnlineUserCount(ctx context.Context) (int, error) {
	if h.presence.store == nil {
		_, users := h.reg.counts()
		return users, nil
	}
	n, err := h.presence.store.OnlineUsers(ctx)
	if err != nil {
		return 0, fmt.Errorf("sse: presence: %w", err)
	}
	return n, nil
}

// PresenceDebounce returns how long a user must stay without a stream
// before it is reported offline: Config.PresenceDebounce, 0 for none.
func (h *Hub) PresenceDebounce() time.Duration { return max(h.cfg.PresenceDebounce, 0) }

// PresenceChanged is how a PresenceStore reports a change it decided: it
// calls Config.OnPresence on the caller's goroutine (the store's), and
// survives its panic. Once the hub has stopped it reports nothing (the
// store stops deciding for it first: see PresenceStore.StopPresence).
// Apps do not call it.
func (h *Hub) PresenceChanged(ch PresenceChange) {
	p := h.presence
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.stopped {
		p.report(ch)
	}
}
