package redisbroker

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ssekit/sse/ssekit"
)

// Subscribe starts a subscription that delivers to fn the events of the
// channels it follows, heard on their shard Pub/Sub channels, and every
// event addressed to clients. It starts one goroutine, which keeps the
// subscription's channels subscribed (routing each to the Redis master of
// its slot, subscribing again after a failure, letting go of channels
// idle for Linger), and one per master it subscribes on, which reads that
// master's Pub/Sub connection and delivers. ctx bounds the subscription's
// lifetime; its goroutines stop once ctx is done or the broker is closed.
func (b *Broker) Subscribe(ctx context.Context, fn func(ssekit.Message)) (ssekit.Subscription, error) {
	if b.isClosed() {
		return nil, ssekit.ErrBrokerClosed
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
	fn  func(ssekit.Message)
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
			return ssekit.ErrBrokerClosed
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
		if sh.closed {
			// Its reader failed (Redis is down) before these channels were
			// on it, so failShard did not hand them back: they stay
			// unrouted, for the maintainer to try again.
			s.mu.Unlock()
			failed = true
			continue
		}
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
