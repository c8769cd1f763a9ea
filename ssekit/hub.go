package ssekit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// Hub routes events to the connections it serves: to one user (all of that
// user's connections), several users, one connection, or everyone. Sends go
// through the Broker, which appends each to the channels it is addressed
// to and keeps their histories; the hub hears every message of the
// channels its connections follow back from its broker subscription and
// enqueues the frame, encoded once, to each of their connections.
//
// The goroutines a hub owns, its locks and their order are described in
// the package documentation (Concurrency). Close or Shutdown ends every
// stream and goroutine. All methods are safe for concurrent use.
type Hub struct {
	cfg        Config
	broker     Broker
	ownsBroker bool
	sub        Subscription
	cursors    CursorStore // the broker's, or the hub's own
	reg        *registry
	stats      stats
	waker      *waker // nil: every enqueue wakes its stream at once
	// deadlineWarned is set once a stream request with a deadline has
	// been logged (warnDeadline).
	deadlineWarned atomic.Bool
	presence       *presence
	// hangups watches detached streams' connections for their clients'
	// hang-up (Linux; see eventStream).
	hangups hangups

	cancelSub context.CancelFunc
	mu        sync.Mutex // orders streams.Add against Shutdown's Wait
	streams   sync.WaitGroup
	closing   atomic.Bool
	closeOnce sync.Once
	closed    chan struct{}
}

// Target addresses a Publish. Everyone is only ever what the caller says
// explicitly, with All: a Target with no addressee, or with a list that is
// present but empty (a non-nil empty slice), is refused with
// ErrInvalidTarget, so that an empty query result or a forgotten field is
// never a broadcast. The lists may be combined: the event reaches each
// connection that any of them addresses, once.
type Target struct {
	// All sends to every connection, with or without a user, in every
	// tenant. It excludes the other fields.
	All bool
	// Users are user ids: every connection of each of them.
	Users []string
	// Tenants are tenant ids: every connection that belongs to one of
	// them (see Identity), and no other. This, not All, is the broadcast
	// of a multi-tenant app.
	Tenants []string
	// Topics are topic names (see ValidName): every connection that
	// follows one of them.
	Topics []string
	// Clients are connection ids, from the client_id of a connected
	// event. An event addressed to a user and to one of that user's
	// connections reaches that connection once.
	Clients []string
}

// check refuses a Target that addresses nobody, or everyone by accident,
// or more than maxRecipients ids (0 or negative: no limit).
func (t Target) check(maxRecipients int) error {
	lists := []struct {
		name  string
		ids   []string
		named bool // ids are tenant ids or topic names: ValidName applies
	}{{"Users", t.Users, false}, {"Tenants", t.Tenants, true}, {"Topics", t.Topics, true}, {"Clients", t.Clients, false}}
	n, some := 0, false
	for _, l := range lists {
		n += len(l.ids)
		some = some || l.ids != nil
	}
	switch {
	case t.All && some:
		return fmt.Errorf("%w: All excludes Users, Tenants, Topics and Clients", ErrInvalidTarget)
	case t.All:
		return nil
	case !some:
		return fmt.Errorf("%w: no addressee (set All to send to everyone)", ErrInvalidTarget)
	}
	for _, l := range lists {
		if l.ids != nil && len(l.ids) == 0 {
			return fmt.Errorf("%w: %s is empty (set All to send to everyone)", ErrInvalidTarget, l.name)
		}
		for _, id := range l.ids {
			if id == "" {
				return fmt.Errorf("%w: an empty id in %s", ErrInvalidTarget, l.name)
			}
			if !l.named {
				continue
			}
			if why := ValidName(id); why != "" {
				return fmt.Errorf("%w: %s: %q %s", ErrInvalidTarget, l.name, id, why)
			}
		}
	}
	if maxRecipients > 0 && n > maxRecipients {
		return fmt.Errorf("%w: %d addressees, limit %d (Config.MaxRecipients)", ErrTooManyRecipients, n, maxRecipients)
	}
	return nil
}

// New returns a running hub, or an error wrapping ErrInvalidConfig, or the
// broker's error if the subscription cannot start.
func New(cfg Config) (*Hub, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	h := &Hub{cfg: cfg, broker: cfg.Broker, reg: newRegistry(), closed: make(chan struct{})}
	if h.broker == nil {
		h.broker = NewMemoryBrokerLimits(MemoryLimits{
			PerChannel: cfg.HistorySize, MaxAge: cfg.HistoryAge, MaxBytes: max(cfg.HistoryBytes, 0),
			KeyWindow: cfg.IdempotencyWindow, MaxKeys: cfg.MaxIdempotencyKeys,
		})
		h.ownsBroker = true
	}
	h.presence = newPresence(h)
	h.cursors, _ = h.broker.(CursorStore)
	if h.cursors == nil {
		h.cursors = newCursorStore(cfg.HistoryAge)
	}
	ctx, cancel := context.WithCancel(context.Background())
	sub, err := h.broker.Subscribe(ctx, h.deliver)
	if err == nil {
		// Every connection follows the broadcast channel: the hub follows
		// it once, for its whole life.
		fctx, fcancel := context.WithTimeout(ctx, followTimeout)
		err = sub.Follow(fctx, BroadcastChannel)
		fcancel()
	}
	if err != nil {
		cancel()
		if h.ownsBroker {
			h.broker.(*MemoryBroker).Close()
		}
		return nil, fmt.Errorf("sse: subscribe: %w", err)
	}
	h.sub, h.cancelSub = sub, cancel
	if cfg.WriteDelay > 0 {
		h.waker = newWaker(cfg.WriteDelay)
		go h.waker.run(h.closed)
	}
	return h, nil
}

// publishToBroker hands m to the broker, then writes the quiet streams
// its delivery left to the publisher (publisherWrites), unless the broker
// did: even when the broker panics, so that no stream waits for a
// wake-up that never comes.
func (h *Hub) publishToBroker(ctx context.Context, m Message) (string, error) {
	defer m.writes.run()
	return h.broker.Publish(ctx, m)
}

// followTimeout bounds a Follow: the broadcast channel's in New, and a
// stream's own channels' when it opens (past it, the stream is sent away
// with a retry hint, as when the broker cannot give its position).
const followTimeout = 10 * time.Second

// NewHub is New for configurations known to be valid, as in the Quick
// Start; it panics on an invalid Config, like regexp.MustCompile.
func NewHub(cfg Config) *Hub {
	h, err := New(cfg)
	if err != nil {
		panic(err)
	}
	return h
}

// Broker returns the hub's broker: the one Config.Broker gave, or the
// in-memory one the hub made from Config. It is there for what reports on
// the broker beside the hub, such as ssehub's metrics of the keys the
// in-memory broker remembers; publish through the hub, not through it.
func (h *Hub) Broker() Broker { return h.broker }

// Publish validates and encodes ev once, hands it to the broker and
// returns the id the broker gave it. It fails with ErrInvalidEvent or
// ErrEventTooLarge (nothing is sent), ErrHubClosed, or the broker's error
// (nothing is sent either: a publish is never silently lost), or
// ErrInvalidTarget for a Target that names nobody (see Target), or
// ErrTooManyRecipients.
//
// CountRecipients has it also tell how many streams of this node the
// event was addressed to and whether each addressed user is online
// anywhere in the cluster (see Recipients).
//
// A publisher that retries names the publish with IdempotencyKey: a
// repeat within the broker's window returns the first's id and sends
// nothing (Replayed tells), one with a different target or event fails
// with ErrKeyConflict, and a malformed key with ErrInvalidKey.
func (h *Hub) Publish(ctx context.Context, to Target, ev Event, opts ...PublishOption) (string, error) {
	var o publishOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.replayed != nil {
		*o.replayed = false
	}
	if h.closing.Load() {
		return "", ErrHubClosed
	}
	if err := to.check(h.cfg.MaxRecipients); err != nil {
		return "", err
	}
	if o.key != "" {
		if err := CheckKey(o.key); err != nil {
			return "", err
		}
	}
	p, err := encode(ev, h.cfg.MaxEventSize)
	if err != nil {
		return "", err
	}
	m := Message{Channels: to.channels(), Clients: sortedSet(to.Clients), Key: o.key, Type: p.typ, Data: p.data}
	if h.cfg.DetachStreams { // only a detached stream is written by its publisher
		m.writes = new(publisherWrites)
	}
	id, err := h.publishToBroker(ctx, m)
	switch {
	case errors.Is(err, ErrReplayed) && id != "":
		if o.replayed != nil {
			*o.replayed = true
		}
		if o.recipients != nil {
			h.countRecipients(ctx, o.recipients, nil, to.Users)
		}
		return id, nil
	case errors.Is(err, ErrBrokerClosed):
		return "", ErrHubClosed
	case errors.Is(err, ErrKeyConflict):
		return "", err
	case err != nil:
		return "", fmt.Errorf("sse: publish: %w", err)
	}
	h.stats.published(p.typ)
	if o.recipients != nil {
		h.countRecipients(ctx, o.recipients, &m, to.Users)
	}
	return id, nil
}

// channels returns the channels t addresses, sorted, without repeats.
func (t Target) channels() []string {
	if t.All {
		return []string{BroadcastChannel}
	}
	n := len(t.Users) + len(t.Tenants) + len(t.Topics)
	if n == 0 {
		return nil
	}
	out := make([]string, 0, n)
	for _, u := range t.Users {
		out = append(out, UserChannel(u))
	}
	for _, id := range t.Tenants {
		out = append(out, TenantChannel(id))
	}
	for _, name := range t.Topics {
		out = append(out, TopicChannel(name))
	}
	return sortedSet(out)
}

// sortedSet returns ss sorted and without repeats.
func sortedSet(ss []string) []string {
	if len(ss) == 0 {
		return nil
	}
	out := slices.Clone(ss)
	slices.Sort(out)
	return slices.Compact(out)
}

// SendToUser sends ev to every connection of the user.
func (h *Hub) SendToUser(userID uuid.UUID, ev Event) error {
	_, err := h.Publish(context.Background(), Target{Users: []string{userID.String()}}, ev)
	return err
}

// SendToUsers sends ev to every connection of each of the users, once per
// connection. An empty list sends nothing.
func (h *Hub) SendToUsers(userIDs []uuid.UUID, ev Event) error {
	if len(userIDs) == 0 {
		return nil
	}
	users := make([]string, len(userIDs))
	for i, u := range userIDs {
		users[i] = u.String()
	}
	_, err := h.Publish(context.Background(), Target{Users: users}, ev)
	return err
}

// SendToAll sends ev to every connection, with or without a user, in
// every tenant: the seed's broadcast. A multi-tenant app broadcasts to one
// organisation with SendToTenant instead.
func (h *Hub) SendToAll(ev Event) error {
	_, err := h.Publish(context.Background(), Target{All: true}, ev)
	return err
}

// SendToTenant sends ev to every connection of the tenant, and to no
// other: the broadcast of a multi-tenant app, where SendToAll would reach
// every tenant.
func (h *Hub) SendToTenant(tenantID string, ev Event) error {
	_, err := h.Publish(context.Background(), Target{Tenants: []string{tenantID}}, ev)
	return err
}

// SendToTopic sends ev to every connection that follows the topic.
func (h *Hub) SendToTopic(topic string, ev Event) error {
	_, err := h.Publish(context.Background(), Target{Topics: []string{topic}}, ev)
	return err
}

// RecheckSessions has every node run Config.CheckSession now for each
// open stream of the user, ending those it revokes: "log out everywhere".
// Make the session invalid in the app first, so that the check refuses it
// (and so does the next connection's). It fails with ErrInvalidConfig when
// CheckSession is nil, or with the broker's error.
func (h *Hub) RecheckSessions(ctx context.Context, userID string) error {
	if h.cfg.CheckSession == nil {
		return fmt.Errorf("%w: RecheckSessions needs Config.CheckSession", ErrInvalidConfig)
	}
	if userID == "" {
		return fmt.Errorf("%w: an empty user id", ErrInvalidTarget)
	}
	// To every node, live only (as events to client ids go, so that it
	// takes no place in any history), naming the user's channel.
	_, err := h.broker.Publish(ctx, Message{Clients: []string{UserChannel(userID)}, Type: typeSessionCheck, Data: []byte("{}")})
	if err != nil {
		return fmt.Errorf("sse: recheck sessions: %w", err)
	}
	return nil
}

// SendToClient sends ev to one connection, by the client_id of its
// connected event. A new connection of the same browser is a new client:
// client-addressed events are not replayed to it.
func (h *Hub) SendToClient(clientID string, ev Event) error {
	_, err := h.Publish(context.Background(), Target{Clients: []string{clientID}}, ev)
	return err
}

// deliver is the broker subscription: it frames m once and offers the same
// bytes to every connection that follows one of m's channels (or that m
// names by client id) without blocking. A message of TypeResync can only
// come from the broker itself (sends of that type are refused), telling
// the followers of its channels that their history broke. Brokers may call
// it from several goroutines at once (one per channel shard).
func (h *Hub) deliver(m Message) {
	if m.Type == typeSessionCheck {
		for _, ch := range m.Clients { // the users' channels: see RecheckSessions
			h.reg.eachFollower(ch, (*follower).requestCheck)
		}
		return
	}
	var e *queuedEvent // framed at the first recipient: none, no framing
	n := 0
	wakes := h.waker.batch()
	// Quiet streams that the publisher, if this delivery runs inside its
	// Publish, is to write itself once the broker's lock is released
	// (publisherWrites); past maxHere (a broadcast), and for the others,
	// a wake-up.
	var here [maxHere]*follower
	nHere := 0
	busySince := monotonic() - int64(h.cfg.WriteDelay) // see follower.enqueue
	h.reg.each(&m, func(c *follower, via, k int) {
		if e == nil {
			e = newQueuedEvent(&m)
		}
		pos := ""
		if via >= 0 {
			pos = m.Positions[via]
		}
		res, when := c.enqueue(e, k, pos, h.cfg.Overflow, busySince, int64(h.cfg.WriteDelay))
		switch {
		case when == wakeInRound:
			wakes.add(c)
		case when == wakeQuiet && nHere < maxHere && m.writes != nil && c.writesHere():
			here[nHere] = c
			nHere++
		case when == wakeQuiet || when == wakeNow:
			c.signal()
		}
		switch res {
		case queued:
			n++
		case dropped:
			h.stats.dropped.Add(1)
		case disconnected:
			h.stats.disconnect(ReasonOverflow)
		}
	})
	wakes.schedule()
	if !m.writes.add(here[:nHere]) {
		for _, c := range here[:nHere] {
			c.signal()
		}
	}
	h.stats.delivered(m.Type, n)
}

// publisherWrites is what lets a publisher write the event it published
// to a quiet stream itself, as a system call on its own goroutine,
// instead of waking another goroutine to make it: a wake-up, often of an
// idle core's thread, costs more than the write. The memory broker calls
// deliver inside Publish, under its lock, where every publisher would wait
// for each other's system calls: so deliver only gathers the streams
// here, and the broker (MemoryBroker.Publish), or failing that the Hub's
// Publish, writes them once the lock is released (run). A delivery that
// comes after that Publish has returned (a broker that carries the message
// to another goroutine) wakes its streams instead.
type publisherWrites struct {
	mu      sync.Mutex
	done    bool
	streams []*follower
}

// add leaves cs to the publisher; it reports false, keeping none, when
// there is no publisher to write them (w is nil, or its Publish is done).
func (w *publisherWrites) add(cs []*follower) bool {
	if w == nil || len(cs) == 0 {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return false
	}
	w.streams = append(w.streams, cs...)
	return true
}

// run writes the streams left to the publisher, once: the first call ends
// the publish's part, and later ones find nothing. w may be nil.
func (w *publisherWrites) run() {
	if w == nil {
		return
	}
	w.mu.Lock()
	w.done = true
	cs := w.streams
	w.streams = nil
	w.mu.Unlock()
	for _, c := range cs {
		c.writeHere()
	}
}

// maxHere bounds the quiet streams one delivery leaves to its publisher
// (publisherWrites): each is a system call on the publisher's time, which
// spread over the streams' goroutines would run on every core, and a
// broadcast should not make its publisher write to thousands of sockets
// in turn.
const maxHere = 8

// GetConnectedUsers returns the users with at least one connection whose
// id is a UUID (the seed's call); ConnectedUserIDs returns them all.
//
// Counting connections: Stats is the primary read, one snapshot of the
// connections and users open now beside the hub's counters since it
// started (ssehub's /metrics reads it). The Get… calls are the seed's
// single numbers for uuid.UUID users; UserClientCount and
// ConnectedUserIDs are the same for any user id; Status is the status
// endpoint's JSON body. All of them count this hub's connections only.
func (h *Hub) GetConnectedUsers() []uuid.UUID {
	ids := h.reg.userIDs()
	out := make([]uuid.UUID, 0, len(ids))
	for _, id := range ids {
		if u, err := uuid.Parse(id); err == nil {
			out = append(out, u)
		}
	}
	return out
}

// ConnectedUserIDs returns the ids of the users with at least one
// connection.
func (h *Hub) ConnectedUserIDs() []string { return h.reg.userIDs() }

// GetUserClientCount returns how many connections the user has (the seed's
// call; UserClientCount takes any user id).
func (h *Hub) GetUserClientCount(userID uuid.UUID) int { return h.reg.userCount(userID.String()) }

// UserClientCount returns how many connections the user id has.
func (h *Hub) UserClientCount(userID string) int { return h.reg.userCount(userID) }

// GetTotalClientCount returns how many connections the hub serves: the
// seed's call for Stats().Clients.
func (h *Hub) GetTotalClientCount() int {
	n, _ := h.reg.counts()
	return n
}

// Close ends every stream at once and waits for them; see Shutdown.
func (h *Hub) Close() error {
	return h.Shutdown(context.Background())
}

// Shutdown stops the hub the way http.Server.Shutdown stops a server: new
// streams are turned away with a retry hint and sends fail with
// ErrHubClosed; every open stream is ended cleanly (its client reconnects,
// elsewhere or later, and resumes); then Shutdown waits for the streams'
// goroutines to return. Given a ctx with a deadline, it spreads the closes
// over the first half of the time left, so that a fleet of clients does not
// reconnect at once. It returns ctx.Err() if ctx is done first; the streams
// still end. The subscription stops, and a broker the hub made is closed.
//
// An SSE stream is never idle, so http.Server.Shutdown waits for ever
// unless the hub ends its streams: register srv.RegisterOnShutdown(func()
// { hub.Close() }), as the Echo module does.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	h.closing.Store(true)
	h.mu.Unlock()
	h.endAll(ctx, h.reg.snapshot())
	h.closeOnce.Do(func() {
		h.cancelSub()
		close(h.closed)
	})
	if h.waker != nil {
		<-h.waker.done
	}
	waited := make(chan struct{})
	go func() {
		h.streams.Wait()
		close(waited)
	}()
	var err error
	select {
	case <-waited:
	case <-ctx.Done():
		err = ctx.Err()
	}
	// After the streams, whose ends may have started offline timers.
	h.presence.stop()
	if h.ownsBroker {
		// After the streams, which replay from it; Close is idempotent.
		h.broker.(*MemoryBroker).Close()
	}
	return err
}

// endAll ends the streams fs for Shutdown, one every step over the first
// half of the time ctx leaves (all at once without a deadline), and the
// rest at once when ctx is done.
func (h *Hub) endAll(ctx context.Context, fs []*follower) {
	var step time.Duration
	if dl, ok := ctx.Deadline(); ok && len(fs) > 1 {
		step = time.Until(dl) / 2 / time.Duration(len(fs))
	}
	var tick <-chan time.Time
	if step > 0 {
		t := time.NewTicker(step)
		defer t.Stop()
		tick = t.C
	}
	for i, c := range fs {
		h.endStream(c, ReasonShutdown)
		if tick == nil || i == len(fs)-1 {
			continue
		}
		select {
		case <-tick:
		case <-ctx.Done():
			tick = nil // out of time: end the rest at once
		}
	}
}

// endStream ends c's stream for reason and unregisters it at once.
func (h *Hub) endStream(c *follower, reason string) {
	if c.end(reason) {
		h.stats.disconnect(reason)
	}
	if h.reg.remove(c) {
		h.presence.changed(c)
	}
}
