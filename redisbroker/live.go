package redisbroker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	sse "github.com/ssekit/sse"
)

// Subscribe starts a subscription that delivers to fn the events of the
// channels it follows, heard on their shard Pub/Sub channels, and every
// event addressed to clients. It starts one goroutine, which keeps the
// subscription's channels subscribed (routing each to the Redis master of
// its slot, subscribing again after a failure, letting go of channels
// idle for Linger), and one per master it subscribes on, which reads that
// master's Pub/Sub connection and delivers. ctx bounds the subscription's
// lifetime; its goroutines stop once ctx is done or the broker is closed.
func (b *Broker) Subscribe(ctx context.Context, fn func(sse.Message)) (sse.Subscription, error) {
	if b.isClosed() {
		return nil, sse.ErrBrokerClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s := &subscription{
		b:      b,
		fn:     fn,
		chans:  make(map[string]*liveChan),
		shards: make(map[string]*shard),
		kick:   make(chan struct{}, 1),
	}
	// Events to clients: live only, for the subscription's whole life.
	s.clients = &liveChan{live: b.key("clients"), refs: 1, ready: make(chan struct{})}
	ready := make(chan struct{})
	err := b.goWithContext(ctx, func(ctx context.Context) {
		s.ctx = ctx
		close(ready)
		s.maintain()
	})
	if err != nil {
		return nil, err
	}
	<-ready
	s.subscribe([]*liveChan{s.clients})
	return s, nil
}

// subscription is one Subscribe. Its goroutines are the maintainer
// (maintain) and one reader per shard (read).
type subscription struct {
	b   *Broker
	fn  func(sse.Message)
	ctx context.Context // done when the subscription ends; set before use

	kick chan struct{} // capacity 1: "a channel needs (re)subscribing"

	// mu guards chans, shards, every liveChan's refs, idle, shard, fill
	// and done, and every shard's fields. It is never held while talking
	// to Redis or calling fn. Lock order: a liveChan's mu, then this one.
	mu      sync.Mutex
	chans   map[string]*liveChan // by sse channel
	clients *liveChan            // the channel of events to clients
	shards  map[string]*shard    // by master address
	ended   bool                 // the maintainer is stopping: no new shard
	readers sync.WaitGroup       // the shards' goroutines

	// failures counts failed attempts since the subscription last worked,
	// and lastLog is when one was last logged: a long outage is logged
	// every failureLogEvery, not at every retry. Guarded by mu.
	failures int
	lastLog  time.Time
}

// failureLogEvery bounds how often a long outage is logged.
const failureLogEvery = 10 * time.Second

// failed logs a failure of the subscription, the first of a streak and
// then every failureLogEvery, unless the subscription is ending.
func (s *subscription) failed(msg string, args ...any) {
	s.mu.Lock()
	s.failures++
	quiet := s.ended || s.ctx.Err() != nil || (s.failures > 1 && time.Since(s.lastLog) < failureLogEvery)
	if !quiet {
		s.lastLog = time.Now()
	}
	n := s.failures
	s.mu.Unlock()
	if !quiet {
		s.b.log.Warn(msg, append(args, "failures", n)...)
	}
}

// recovered logs the end of a streak of failures.
func (s *subscription) recovered() {
	s.mu.Lock()
	n := s.failures
	s.failures = 0
	s.mu.Unlock()
	if n > 0 {
		s.b.log.Warn("redisbroker: subscription works again; channels read back what they missed", "failures", n)
	}
}

// liveChan is one followed channel.
type liveChan struct {
	channel string // the sse channel; "" for the clients' channel
	live    string // its shard Pub/Sub channel
	refs    int    // Follows not yet undone
	idle    time.Time
	shard   *shard // nil while it needs subscribing
	// deliveryMu is held by the reader that takes the channel on, reads
	// its stream or delivers it: while a channel moves from a failed
	// shard to another, the old reader may still be finishing.
	deliveryMu sync.Mutex
	// last is the newest position delivered, or the channel's head when
	// the subscription took it on; a reader compares each event's
	// predecessor with it. Guarded by deliveryMu.
	last string
	// fill says the reader must read the stream from last before it goes
	// live: the Pub/Sub connection was lost meanwhile.
	fill  bool
	ready chan struct{} // closed once the first subscription is confirmed
	done  bool          // ready is closed
}

// shard is one Pub/Sub connection, to the master that holds the slots of
// its channels.
type shard struct {
	addr   string
	ps     *redis.PubSub
	byLive map[string]*liveChan
	// leaving counts SUNSUBSCRIBEs the subscription sent, so that their
	// confirmations are not taken for a slot that moved away.
	leaving map[string]int
	closed  bool // closed on purpose: its reader's error is not a failure
}

// add registers a channel that is not followed yet.
func (s *subscription) add(channel string) *liveChan {
	lc := &liveChan{channel: channel, live: s.b.channelKey(channel) + ":live", ready: make(chan struct{})}
	s.chans[channel] = lc
	return lc
}

// Follow subscribes to the channels that are not subscribed yet and
// returns once every one of them (and the clients' channel) is: from
// then on, what is published to them reaches fn.
func (s *subscription) Follow(ctx context.Context, channels ...string) error {
	s.mu.Lock()
	var fresh []*liveChan
	waits := []*liveChan{s.clients}
	for _, ch := range channels {
		lc := s.chans[ch]
		if lc == nil {
			lc = s.add(ch)
			fresh = append(fresh, lc)
		}
		lc.refs++
		waits = append(waits, lc)
	}
	s.mu.Unlock()
	if len(fresh) > 0 {
		s.subscribe(fresh)
	}
	for _, lc := range waits {
		select {
		case <-lc.ready:
		case <-ctx.Done():
			s.Unfollow(channels...)
			return ctx.Err()
		case <-s.ctx.Done():
			s.Unfollow(channels...)
			return sse.ErrBrokerClosed
		}
	}
	return nil
}

// Unfollow undoes one Follow of each channel; a channel nobody follows is
// let go after Linger.
func (s *subscription) Unfollow(channels ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	for _, ch := range channels {
		if lc := s.chans[ch]; lc != nil && lc.refs > 0 {
			if lc.refs--; lc.refs == 0 {
				lc.idle = now
			}
		}
	}
}

// subscribe routes each channel to its master and sends the SSUBSCRIBEs;
// a channel it could not subscribe is left to the maintainer, which tries
// again.
func (s *subscription) subscribe(lcs []*liveChan) {
	type group struct {
		node  redis.UniversalClient
		lives []string
		lcs   []*liveChan
	}
	groups := map[string]*group{}
	failed := false
	for _, lc := range lcs {
		addr, node, err := s.route(lc.live)
		if err != nil {
			s.failed("redisbroker: cannot route a channel to its master; retrying", "channel", lc.live, "err", err)
			failed = true
			continue
		}
		g := groups[addr]
		if g == nil {
			g = &group{node: node}
			groups[addr] = g
		}
		g.lives, g.lcs = append(g.lives, lc.live), append(g.lcs, lc)
	}
	for addr, g := range groups {
		sh := s.shardFor(addr, g.node)
		if sh == nil {
			return // the subscription is ending
		}
		s.mu.Lock()
		for _, lc := range g.lcs {
			lc.shard = sh
			sh.byLive[lc.live] = lc
		}
		s.mu.Unlock()
		for _, lives := range s.batches(g.lives) {
			s.b.ops.add(opSubscribe, 1)
			if err := sh.ps.SSubscribe(s.ctx, lives...); err != nil {
				// The reader sees the broken connection too, and hands
				// every channel of the shard back to the maintainer.
				s.failed("redisbroker: SSUBSCRIBE failed; retrying", "master", addr, "err", err)
				s.failShard(sh, err)
				failed = true
				break
			}
		}
	}
	if failed {
		s.retry()
	}
}

// batches splits shard channels into the groups one SSUBSCRIBE or
// SUNSUBSCRIBE may name: on a cluster, every channel of one command must
// be in one slot, and each channel has a hash tag of its own, so one each;
// one server takes them all at once.
func (s *subscription) batches(lives []string) [][]string {
	if _, ok := s.b.rdb.(*redis.ClusterClient); !ok {
		return [][]string{lives}
	}
	out := make([][]string, len(lives))
	for i := range lives {
		out[i] = lives[i : i+1 : i+1]
	}
	return out
}

// route returns the master that holds a shard channel's slot: the one
// server of a plain client, or the cluster's master for its slot.
func (s *subscription) route(live string) (string, redis.UniversalClient, error) {
	cc, ok := s.b.rdb.(*redis.ClusterClient)
	if !ok {
		return "", s.b.rdb, nil
	}
	node, err := cc.MasterForKey(s.ctx, live)
	if err != nil {
		return "", nil, err
	}
	return node.Options().Addr, node, nil
}

// shardFor returns the shard of a master, starting its reader, or nil when
// the subscription is ending.
func (s *subscription) shardFor(addr string, node redis.UniversalClient) *shard {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return nil
	}
	if sh := s.shards[addr]; sh != nil {
		return sh
	}
	sh := &shard{addr: addr, ps: node.SSubscribe(s.ctx), byLive: make(map[string]*liveChan), leaving: make(map[string]int)}
	s.shards[addr] = sh
	s.readers.Add(1)
	go func() {
		defer s.readers.Done()
		s.read(sh)
	}()
	return sh
}

// retry asks the maintainer to subscribe what is not subscribed.
func (s *subscription) retry() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// read is a shard's goroutine: it delivers what its connection hears, in
// order, until the connection fails or the shard is closed.
func (s *subscription) read(sh *shard) {
	for {
		msg, err := sh.ps.Receive(s.ctx)
		if err == nil {
			err = s.handle(sh, msg)
		}
		if err != nil {
			s.failShard(sh, err)
			return
		}
	}
}

// handle acts on one thing a shard's connection heard.
func (s *subscription) handle(sh *shard, msg any) error {
	switch m := msg.(type) {
	case *redis.Subscription:
		switch m.Kind {
		case "ssubscribe":
			return s.confirmed(sh, m.Channel)
		case "sunsubscribe":
			s.unsubscribed(sh, m.Channel)
		}
	case *redis.Message:
		s.b.ops.add(opLive, 1)
		lc := s.lookup(sh, m.Channel)
		if lc == nil {
			return nil
		}
		lc.deliveryMu.Lock()
		defer lc.deliveryMu.Unlock()
		if !s.current(sh, lc) {
			// Not taken on yet, or being subscribed again: whoever follows
			// it reads it from the stream.
			return nil
		}
		if lc == s.clients {
			cm, err := decodeClients(m.Payload)
			if err != nil {
				s.b.log.Warn("redisbroker: malformed event to clients dropped", "err", err)
				return nil
			}
			if s.ctx.Err() == nil {
				s.fn(cm)
			}
			return nil
		}
		return s.live(lc, m.Payload)
	}
	return nil
}

// lookup returns the channel a shard's connection heard about, or nil.
func (s *subscription) lookup(sh *shard, live string) *liveChan {
	if live == s.clients.live {
		return s.clients
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return sh.byLive[live]
}

// current reports whether lc is live on sh: taken on, subscribed there,
// and not waiting to read what it missed.
func (s *subscription) current(sh *shard, lc *liveChan) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return lc.shard == sh && lc.done && !lc.fill
}

// confirmed takes on a channel whose subscription Redis confirmed: its
// baseline is the channel's head, the first time; after a lost connection
// (or a resubscription go-redis made by itself), the reader first reads
// what it missed from the stream.
func (s *subscription) confirmed(sh *shard, live string) error {
	lc := s.lookup(sh, live)
	if lc == nil {
		return nil
	}
	lc.deliveryMu.Lock()
	defer lc.deliveryMu.Unlock()
	s.mu.Lock()
	here, done := lc.shard == sh, lc.done
	s.mu.Unlock()
	if here {
		s.recovered()
	}
	switch {
	case !here:
		return nil
	case lc == s.clients:
		s.markReady(lc, false)
		return nil // live only: nothing to read back
	case !done:
		head, err := s.b.Head(s.ctx, lc.channel)
		if err != nil {
			return err
		}
		lc.last = head
		s.markReady(lc, false)
		return nil
	}
	// Confirmed again: whatever was published while it was not subscribed
	// is in the stream.
	if err := s.fill(lc); err != nil {
		return err
	}
	s.markReady(lc, true)
	return nil
}

// markReady marks lc live: taken on (its Follows return) and, when filled,
// done reading what it missed.
func (s *subscription) markReady(lc *liveChan, filled bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if filled {
		lc.fill = false
	}
	if !lc.done {
		lc.done = true
		close(lc.ready)
	}
}

// unsubscribed handles an SUNSUBSCRIBE confirmation: one the subscription
// asked for, or Redis telling it that the channel's slot moved to another
// master, which the maintainer then subscribes on.
func (s *subscription) unsubscribed(sh *shard, live string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sh.leaving[live] > 0 {
		if sh.leaving[live]--; sh.leaving[live] == 0 {
			delete(sh.leaving, live)
		}
		return
	}
	if lc := sh.byLive[live]; lc != nil {
		delete(sh.byLive, live)
		lc.shard = nil
		s.b.log.Warn("redisbroker: Redis ended a channel's subscription (its slot moved?); subscribing again", "channel", live)
		s.retry()
	}
}

// live delivers one announced event of lc (its deliveryMu held), after what
// it missed: an event
// whose predecessor is not the last one delivered means the Pub/Sub
// connection lost some (or they were published before the subscription
// took the channel on), and the stream has them.
func (s *subscription) live(lc *liveChan, payload string) error {
	f, err := fields(payload, 5)
	if err != nil {
		s.b.log.Warn("redisbroker: malformed announcement dropped", "channel", lc.live, "err", err)
		return nil
	}
	id, prev := f[0], f[1]
	if sse.CompareIDs(id, lc.last) <= 0 {
		return nil // delivered already, by a read of the stream
	}
	if prev != lc.last && sse.CompareIDs(prev, lc.last) != 0 {
		return s.fill(lc) // delivers this one too
	}
	s.deliver(lc, sse.Message{ID: f[2], Type: f[3], Data: []byte(f[4]), Time: idTime(id)}, id)
	return nil
}

// deliver hands fn an event of lc at position pos.
func (s *subscription) deliver(lc *liveChan, m sse.Message, pos string) {
	m.Channels, m.Positions = []string{lc.channel}, []string{pos}
	lc.last = pos
	if s.ctx.Err() == nil {
		s.fn(m)
	}
}

// fill reads lc's stream after the last position delivered and delivers
// it (lc's deliveryMu held). Entries trimmed before they could be read, or a stream that went
// back (Redis lost its data), are a loss: it delivers a resync for the
// channel first, whose position is where the unbroken history starts
// again, never skipping silently.
func (s *subscription) fill(lc *liveChan) error {
	b := s.b
	for {
		b.ops.add(opFill, 1)
		entries, err := b.rdb.XRangeN(s.ctx, b.channelKey(lc.channel), "("+lc.last, "+", b.opts.ReadCount).Result()
		if err != nil {
			return fmt.Errorf("redisbroker: read %s after %s: %w", lc.channel, lc.last, err)
		}
		if len(entries) == 0 {
			head, err := b.Head(s.ctx, lc.channel)
			if err != nil {
				return err
			}
			if sse.CompareIDs(head, lc.last) >= 0 {
				return nil
			}
			b.log.Error("redisbroker: a channel's stream went back (Redis lost its data?); telling its clients to resync",
				"channel", lc.channel, "delivered_up_to", lc.last, "head", head)
			s.resync(lc, "0-0")
			continue
		}
		for _, xm := range entries {
			if prev, _ := xm.Values[fieldPrev].(string); prev != lc.last && sse.CompareIDs(prev, lc.last) != 0 {
				b.log.Error("redisbroker: events were trimmed before this node read them; telling the channel's clients to resync",
					"channel", lc.channel, "delivered_up_to", lc.last, "entry", xm.ID, "entry_prev", prev)
				if !validStreamID(prev) || sse.CompareIDs(prev, xm.ID) >= 0 {
					prev = "0-0"
				}
				s.resync(lc, prev)
			}
			m := decode(lc.channel, xm)
			s.deliver(lc, m, xm.ID)
		}
		if int64(len(entries)) < b.opts.ReadCount {
			return nil
		}
	}
}

// resync delivers the announcement that lc's history broke; pos is where
// its unbroken history starts again.
func (s *subscription) resync(lc *liveChan, pos string) {
	s.deliver(lc, sse.Message{Type: sse.TypeResync, Time: time.Now()}, pos)
}

// failShard closes a shard whose connection failed and hands its channels
// to the maintainer, which subscribes them again and has them read what
// they missed.
func (s *subscription) failShard(sh *shard, err error) {
	s.mu.Lock()
	if sh.closed {
		s.mu.Unlock()
		return
	}
	sh.closed = true
	if s.shards[sh.addr] == sh {
		delete(s.shards, sh.addr)
	}
	for _, lc := range sh.byLive {
		lc.shard = nil
		lc.fill = lc.done && lc != s.clients
	}
	n := len(sh.byLive)
	s.mu.Unlock()
	_ = sh.ps.Close()
	s.failed("redisbroker: lost a Pub/Sub connection; subscribing its channels again", "master", sh.addr, "channels", n, "err", err)
	s.retry()
}

// maintain is the subscription's goroutine: it subscribes the channels
// that need it (with backoff while that fails), lets go of those idle for
// Linger, and at the end closes every shard and waits for their readers.
func (s *subscription) maintain() {
	period := max(min(s.b.opts.Linger/4, 5*time.Second), 50*time.Millisecond)
	tick := time.NewTicker(period)
	defer tick.Stop()
	failures := 0
	for {
		select {
		case <-s.ctx.Done():
			s.stop()
			return
		case <-s.kick:
		case <-tick.C:
			s.expire()
		}
		todo := s.unrouted()
		if len(todo) == 0 {
			failures = 0
			continue
		}
		if failures > 0 {
			if cc, ok := s.b.rdb.(*redis.ClusterClient); ok {
				cc.ReloadState(s.ctx) // the slot map may have changed (failover)
			}
			t := time.NewTimer(backoff(failures))
			select {
			case <-t.C:
			case <-s.ctx.Done():
				t.Stop()
				s.stop()
				return
			}
		}
		failures++
		s.subscribe(todo)
	}
}

// unrouted returns the channels that need subscribing.
func (s *subscription) unrouted() []*liveChan {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*liveChan
	for _, lc := range s.chans {
		if lc.shard == nil {
			out = append(out, lc)
		}
	}
	if s.clients.shard == nil {
		out = append(out, s.clients)
	}
	return out
}

// expire lets go of the channels nobody followed for Linger.
func (s *subscription) expire() {
	cutoff := time.Now().Add(-s.b.opts.Linger)
	byShard := map[*shard][]string{}
	s.mu.Lock()
	for ch, lc := range s.chans {
		if lc.refs > 0 || lc.idle.After(cutoff) {
			continue
		}
		delete(s.chans, ch)
		if sh := lc.shard; sh != nil {
			delete(sh.byLive, lc.live)
			sh.leaving[lc.live]++
			byShard[sh] = append(byShard[sh], lc.live)
		}
	}
	s.mu.Unlock()
	for sh, lives := range byShard {
		for _, batch := range s.batches(lives) {
			// A failure shows on the shard's reader.
			_ = sh.ps.SUnsubscribe(s.ctx, batch...)
		}
	}
}

// stop closes every shard and waits for their readers.
func (s *subscription) stop() {
	s.mu.Lock()
	s.ended = true
	shards := s.shards
	s.shards = nil
	for _, sh := range shards {
		sh.closed = true
	}
	s.mu.Unlock()
	for _, sh := range shards {
		_ = sh.ps.Close()
	}
	s.readers.Wait()
}

// fields splits an announcement into n length-prefixed fields,
// "<len>:<bytes>" each.
func fields(payload string, n int) ([]string, error) {
	out := make([]string, 0, n)
	for len(out) < n {
		i := 0
		for i < len(payload) && payload[i] >= '0' && payload[i] <= '9' {
			i++
		}
		if i == 0 || i >= len(payload) || payload[i] != ':' {
			return nil, errors.New("malformed field length")
		}
		size, err := strconv.Atoi(payload[:i])
		if err != nil || size > len(payload)-i-1 {
			return nil, errors.New("field longer than the announcement")
		}
		out = append(out, payload[i+1:i+1+size])
		payload = payload[i+1+size:]
	}
	if payload != "" {
		return nil, errors.New("trailing bytes")
	}
	return out, nil
}

// appendField appends one length-prefixed field.
func appendField(b []byte, s string) []byte {
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, ':')
	return append(b, s...)
}

// encodeClients is the announcement of an event to clients: the publish
// id, the clients and the event's channels (JSON arrays: a client that
// follows one of them gets the event there instead), type and data.
func encodeClients(id string, m sse.Message) string {
	clients, _ := json.Marshal(m.Clients) // []string always marshals
	channels, _ := json.Marshal(m.Channels)
	b := appendField(nil, id)
	b = appendField(b, string(clients))
	b = appendField(b, string(channels))
	b = appendField(b, m.Type)
	b = appendField(b, string(m.Data))
	return string(b)
}

// decodeClients reads an event to clients. Its Channels carry no
// positions: the event reaches their followers through the channels
// themselves.
func decodeClients(payload string) (sse.Message, error) {
	f, err := fields(payload, 5)
	if err != nil {
		return sse.Message{}, err
	}
	m := sse.Message{ID: f[0], Type: f[3], Data: []byte(f[4]), Time: time.Now()}
	if err := json.Unmarshal([]byte(f[1]), &m.Clients); err != nil {
		return m, err
	}
	if err := json.Unmarshal([]byte(f[2]), &m.Channels); err != nil {
		return m, err
	}
	return m, nil
}

// Backoff bounds after a failure.
const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 2 * time.Second
)

// backoff returns the wait after the n-th consecutive failure (n ≥ 1):
// exponential from minBackoff up to maxBackoff, with jitter over its upper
// half, so that every node of a cluster does not hit a recovering Redis at
// the same instant.
func backoff(n int) time.Duration {
	d := maxBackoff
	if n < 16 {
		d = min(minBackoff<<(n-1), maxBackoff)
	}
	return d/2 + rand.N(d/2+1)
}
