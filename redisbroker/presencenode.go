package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ssekit/sse/ssekit"
)

// presence is one node's presence: the goroutine of StartPresence owns
// everything below mu's fields, and hears of its hub's changes through
// them. It exists so that a stream's start or end costs its hub a map
// write, and Redis a command on this goroutine, batched with the others
// that came meanwhile.
type presence struct {
	b       *Broker
	src     PresenceSource
	node    ssekit.PresenceNode // src, when it is one; else nil
	started time.Time

	// mu guards changed, the users whose streams here changed since the
	// goroutine last looked (with the tenant of the stream that changed
	// them); kick (capacity 1) tells it to look.
	mu      sync.Mutex
	changed map[string]string
	kick    chan struct{}

	// stop is closed by StopPresence, done when the goroutine ended.
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}

	// Owned by the goroutine.
	held    map[string]string    // users this node holds a lease on → tenant
	pending map[string]time.Time // users whose offline check is due then
	failing bool
}

func newPresence(b *Broker, src PresenceSource) *presence {
	p := &presence{b: b, src: src, started: time.Now(), kick: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{}),
		held: make(map[string]string), pending: make(map[string]time.Time)}
	p.node, _ = src.(ssekit.PresenceNode)
	return p
}

// userChanged notes a change for the goroutine, without blocking.
func (p *presence) userChanged(user, tenant string) {
	p.mu.Lock()
	if p.changed == nil {
		p.changed = make(map[string]string)
	}
	p.changed[user] = tenant
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// debounce is how long a user stays online after its last stream ended.
func (p *presence) debounce() time.Duration {
	if p.node == nil {
		return 0
	}
	return p.node.PresenceDebounce()
}

// presenceKeep is the least life of a user's reported state and of a
// node's record: only an offline check ends a state, and a node finishes
// a dead node's record; the expiry only bounds litter. It must outlast
// any outage of every node, so that the next node to start still
// finishes the users of those that died (PositionTTL, when longer).
const presenceKeep = 24 * time.Hour

// ttls returns a lease's life, and that of a user's reported state and of
// a node's record (see presenceKeep).
func (p *presence) ttls() (lease, keep int64) {
	return p.b.opts.PresenceTTL.Milliseconds(), p.keep().Milliseconds()
}

func (p *presence) keep() time.Duration { return max(p.b.opts.PositionTTL, presenceKeep) }

func (p *presence) run(ctx context.Context) {
	defer close(p.done)
	b := p.b
	// The calls run to their end, even once ctx is done or StopPresence
	// was called: a reply cut by the stop would lose the change it
	// decided. (go-redis's timeouts bound them.)
	work := context.WithoutCancel(ctx)
	stopping := func() bool {
		select {
		case <-p.stop:
			return true
		default:
			return ctx.Err() != nil
		}
	}
	// An error because the node is stopping is no failure.
	logged := func(err error) {
		if !stopping() {
			p.logged(err)
		}
	}
	tick := time.NewTicker(b.opts.PresenceInterval)
	defer tick.Stop()
	due := time.NewTimer(time.Hour)
	defer due.Stop()
	logged(p.refresh(work))
	for {
		if next, ok := p.nextDue(); ok {
			due.Reset(max(time.Until(next), 0))
		} else {
			due.Stop()
		}
		var stopped bool
		select {
		case <-ctx.Done():
			stopped = true
		case <-p.stop:
			stopped = true
		case <-tick.C:
			logged(p.refresh(work))
		case <-p.kick:
			logged(p.apply(work))
		case <-due.C:
			logged(p.checkDue(work))
		}
		if stopped {
			// Leave with a context of our own, briefly.
			cctx, cancel := context.WithTimeout(work, 2*time.Second)
			p.logged(p.leaveAll(cctx))
			cancel()
			return
		}
	}
}

// logged logs the first of a run of failures, and the recovery.
func (p *presence) logged(err error) {
	b := p.b
	switch {
	case err != nil && !p.failing && b.life.Err() == nil:
		b.log.Error("redisbroker: presence failed; this node's users may be reported offline elsewhere until it works again", "node", b.opts.Node, "err", err)
		p.failing = true
	case err == nil && p.failing:
		b.log.Warn("redisbroker: presence works again", "node", b.opts.Node)
		p.failing = false
	}
}

// nextDue returns when the earliest offline check is due.
func (p *presence) nextDue() (time.Time, bool) {
	var next time.Time
	for _, at := range p.pending {
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	return next, !next.IsZero()
}

// apply holds or leaves the users whose streams changed, as their count
// on this node now says.
func (p *presence) apply(ctx context.Context) error {
	p.mu.Lock()
	changed := p.changed
	p.changed = nil
	p.mu.Unlock()
	var join, leave []string
	for u, tenant := range changed {
		n := 0
		if p.node != nil {
			n = p.node.UserClientCount(u)
		} else if slices.Contains(p.src.ConnectedUserIDs(), u) {
			n = 1
		}
		_, held := p.held[u]
		switch {
		case n > 0 && !held:
			p.held[u] = tenant
			join = append(join, u)
		case n == 0 && held:
			p.held[u] = tenant // the last stream's, for the offline report
			leave = append(leave, u)
		}
	}
	return errors.Join(p.hold(ctx, join, true), p.leave(ctx, leave))
}

// refresh renews this node's leases: first its users' (those of src,
// which the changes may have missed), then its own, after them, so that
// its lease lapses no earlier than theirs; then it reports its counts and
// finishes the users of nodes whose lease lapsed.
func (p *presence) refresh(ctx context.Context) error {
	b := p.b
	// The changes first, so that a user they bring has its stream's
	// tenant, not the refresh's "".
	applied := p.apply(ctx)
	now, fresh := map[string]bool{}, map[string]bool{}
	var join, leave []string
	for _, u := range p.src.ConnectedUserIDs() {
		now[u] = true
		if _, ok := p.held[u]; !ok {
			p.held[u] = ""
			fresh[u] = true
			join = append(join, u)
		}
	}
	for u := range p.held {
		if !now[u] && (p.node == nil || p.node.UserClientCount(u) == 0) {
			leave = append(leave, u)
		}
	}
	err := errors.Join(applied, p.leave(ctx, leave), p.hold(ctx, join, true))
	var rest []string
	for u := range p.held {
		if !fresh[u] {
			rest = append(rest, u)
		}
	}
	err = errors.Join(err, p.hold(ctx, rest, false))
	// The report before the lease: a node in the index has one.
	b.ops.add(opPresence, 3)
	var recorded *redis.BoolCmd
	_, serr := b.rdb.TxPipelined(ctx, func(pl redis.Pipeliner) error {
		k := b.nodeKey(b.opts.Node, "status")
		pl.HSet(ctx, k, "clients", p.src.GetTotalClientCount(), "users", len(p.held),
			"started", p.started.UnixMilli(), "updated", time.Now().UnixMilli())
		// Only a bound on litter: a survivor deletes both with the node.
		// The record lives long (presenceKeep), so that a node that starts
		// long after this one died still finishes its users.
		pl.PExpire(ctx, k, 10*b.opts.PresenceTTL)
		recorded = pl.PExpire(ctx, b.nodeKey(b.opts.Node, "users"), p.keep())
		return nil
	})
	if serr != nil {
		err = errors.Join(err, fmt.Errorf("redisbroker: status of %s: %w", b.opts.Node, serr))
	}
	lease, _ := p.ttls()
	b.ops.add(opPresence, 1)
	res, nerr := nodeScript.Run(ctx, b.rdb, []string{b.key("nodes")}, b.opts.Node, lease).Slice()
	if nerr != nil {
		return errors.Join(err, fmt.Errorf("redisbroker: presence of %s: %w", b.opts.Node, nerr))
	}
	if kept, _ := res[0].(int64); kept == 0 || (serr == nil && !recorded.Val()) {
		// This node's lease had lapsed, and a live node may have taken its
		// record, or the record is gone (a survivor that took it too
		// late, a Redis that lost it): write all of it again.
		err = errors.Join(err, p.record(ctx, p.recordable()))
	}
	dead, _ := res[1].([]any)
	for _, d := range dead {
		if n, _ := d.(string); n != "" && n != b.opts.Node {
			err = errors.Join(err, p.finish(ctx, n))
		}
	}
	return err
}

// recordable returns the users this node answers for: held, or waiting
// for their offline check.
func (p *presence) recordable() []string {
	out := slices.Collect(maps.Keys(p.held))
	for u := range p.pending {
		if _, ok := p.held[u]; !ok {
			out = append(out, u)
		}
	}
	return out
}

// record adds users to this node's record.
func (p *presence) record(ctx context.Context, users []string) error {
	b := p.b
	if len(users) == 0 {
		return nil
	}
	k := b.nodeKey(b.opts.Node, "users")
	for batch := range slices.Chunk(users, presenceBatch) {
		b.ops.add(opPresence, 1)
		if err := b.rdb.SAdd(ctx, k, toAny(batch)...).Err(); err != nil {
			return fmt.Errorf("redisbroker: record of %s: %w", b.opts.Node, err)
		}
	}
	// A record made since the refresh has its expiry at once.
	b.ops.add(opPresence, 1)
	_ = b.rdb.PExpire(ctx, k, p.keep()).Err()
	return nil
}

// unrecord removes users from this node's record.
func (p *presence) unrecord(ctx context.Context, users []string) {
	b := p.b
	for batch := range slices.Chunk(users, presenceBatch) {
		b.ops.add(opPresence, 1)
		// Best effort: a user left in the record costs a survivor one
		// check that finds nothing to report.
		_ = b.rdb.SRem(ctx, b.nodeKey(b.opts.Node, "users"), toAny(batch)...).Err()
	}
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// hold renews this node's lease on users, reporting those who come
// online; fresh users are also added to the record (before their lease,
// so that a survivor finds every user it may have to finish).
func (p *presence) hold(ctx context.Context, users []string, fresh bool) error {
	b := p.b
	if len(users) == 0 {
		return nil
	}
	if fresh {
		if err := p.record(ctx, users); err != nil {
			for _, u := range users {
				delete(p.held, u) // the next refresh tries again
			}
			return err
		}
	}
	lease, keep := p.ttls()
	calls := make([]scriptCall, len(users))
	for i, u := range users {
		delete(p.pending, u) // back: the check would find its lease
		calls[i] = scriptCall{keys: []string{b.userKey(u, "on"), b.userKey(u, "st")}, args: []any{b.opts.Node, lease, keep, p.held[u], "0"}}
	}
	var firstErr error
	var online []change
	for i, cmd := range b.evalRetried(ctx, holdScript, calls, opPresence) {
		res, err := cmd.Slice()
		if err != nil || len(res) == 0 {
			if firstErr == nil {
				firstErr = fmt.Errorf("redisbroker: presence of %s: %w", users[i], err)
			}
			continue
		}
		if kind, _ := res[0].(int64); kind == 1 && len(res) >= 3 {
			seq, _ := res[1].(int64)
			tenant, _ := res[2].(string)
			online = append(online, change{user: users[i], tenant: tenant, seq: seq})
		}
	}
	p.reportAll(ctx, online, true)
	return firstErr
}

// change is a change this node decided, to report.
type change struct {
	user, tenant string
	seq          int64
}

// reportAll counts and reports the changes this node decided, then
// clears their marks (a retry no longer returns them).
func (p *presence) reportAll(ctx context.Context, chs []change, online bool) {
	if len(chs) == 0 {
		return
	}
	if online {
		p.count(ctx, len(chs))
	} else {
		p.count(ctx, -len(chs))
	}
	calls := make([]scriptCall, len(chs))
	for i, c := range chs {
		p.report(c, online)
		calls[i] = scriptCall{keys: []string{p.b.userKey(c.user, "st")}, args: []any{p.b.opts.Node, c.seq}}
	}
	// Best effort: a mark left only lets a retry report the change again,
	// with the same seq, which receivers drop.
	p.b.evalEach(ctx, unmarkScript, calls, opPresence)
}

// evalRetried is evalEach, then once more for the calls that failed, with
// their last argument "1": a retry, to which a script returns again the
// change it decided for this node in a call whose reply was lost.
func (b *Broker) evalRetried(ctx context.Context, s *redis.Script, calls []scriptCall, kind int) []*redis.Cmd {
	cmds := b.evalEach(ctx, s, calls, kind)
	var again []scriptCall
	var at []int
	for i, cmd := range cmds {
		if err := cmd.Err(); err != nil && !errors.Is(err, redis.Nil) {
			c := calls[i]
			args := slices.Clone(c.args)
			args[len(args)-1] = "1"
			again, at = append(again, scriptCall{keys: c.keys, args: args}), append(at, i)
		}
	}
	if len(again) > 0 {
		for j, cmd := range b.evalEach(ctx, s, again, kind) {
			cmds[at[j]] = cmd
		}
	}
	return cmds
}

// leave drops this node's lease on users; those left with no lease get
// their offline check scheduled, the others leave the record.
func (p *presence) leave(ctx context.Context, users []string) error {
	b := p.b
	if len(users) == 0 {
		return nil
	}
	_, keep := p.ttls()
	calls := make([]scriptCall, len(users))
	for i, u := range users {
		calls[i] = scriptCall{keys: []string{b.userKey(u, "on"), b.userKey(u, "st")}, args: []any{b.opts.Node, keep, p.held[u]}}
	}
	var firstErr error
	var done []string
	for i, cmd := range b.evalEach(ctx, leaveScript, calls, opPresence) {
		u := users[i]
		left, err := cmd.Int64()
		if err != nil {
			// Still held: the next refresh leaves it again.
			if firstErr == nil {
				firstErr = fmt.Errorf("redisbroker: presence of %s: %w", u, err)
			}
			continue
		}
		delete(p.held, u)
		if left > 0 {
			p.pending[u] = time.Now().Add(p.debounce())
		} else {
			done = append(done, u)
		}
	}
	p.unrecord(ctx, done)
	return firstErr
}

// checkDue runs the offline checks that are due.
func (p *presence) checkDue(ctx context.Context) error {
	now := time.Now()
	var users []string
	for u, at := range p.pending {
		if !at.After(now) {
			users = append(users, u)
		}
	}
	return p.check(ctx, users, p.b.opts.Node, true)
}

// check runs the offline check of users, waiting for node's lease on
// them to lapse; mine says they are in this node's record, which they
// leave once settled. A check to be repeated later is scheduled here,
// and the user recorded as this node's to finish.
func (p *presence) check(ctx context.Context, users []string, node string, mine bool) error {
	b := p.b
	if len(users) == 0 {
		return nil
	}
	debounce := p.debounce().Milliseconds()
	_, keep := p.ttls()
	calls := make([]scriptCall, len(users))
	for i, u := range users {
		calls[i] = scriptCall{keys: []string{b.userKey(u, "on"), b.userKey(u, "st")}, args: []any{debounce, node, b.opts.Node, keep, "0"}}
	}
	var firstErr error
	var settled, later []string
	var offline []change
	for i, cmd := range b.evalRetried(ctx, checkScript, calls, opPresence) {
		u := users[i]
		res, err := cmd.Slice()
		if err != nil || len(res) == 0 {
			if firstErr == nil {
				firstErr = fmt.Errorf("redisbroker: presence check of %s: %w", u, err)
			}
			if mine {
				p.pending[u] = time.Now().Add(b.opts.PresenceInterval) // try again
			}
			continue
		}
		switch kind, _ := res[0].(int64); kind {
		case 1:
			tenant, _ := res[1].(string)
			var seq int64
			if len(res) > 2 {
				seq, _ = res[2].(int64)
			}
			offline = append(offline, change{user: u, tenant: tenant, seq: seq})
			delete(p.pending, u)
			settled = append(settled, u)
		case 2:
			ms, _ := res[1].(int64)
			p.pending[u] = time.Now().Add(time.Duration(ms) * time.Millisecond)
			if !mine {
				later = append(later, u)
			}
		default:
			delete(p.pending, u)
			settled = append(settled, u)
		}
	}
	p.reportAll(ctx, offline, false)
	if mine {
		var out []string
		for _, u := range settled {
			if _, ok := p.held[u]; !ok {
				out = append(out, u)
			}
		}
		p.unrecord(ctx, out)
	}
	return errors.Join(firstErr, p.record(ctx, later))
}

// finish takes the record of a node whose lease lapsed and checks its
// users, once across the cluster: the first live node to set the lock
// renames the record away and checks each user, waiting for the dead
// node's leases to lapse; then the node leaves the index (unless it came
// back meanwhile, and wrote a new record). The lock is released when it
// is done, or failed (the next refresh of a live node tries again; the
// expiry only covers a node that dies while it finishes).
func (p *presence) finish(ctx context.Context, node string) error {
	b := p.b
	b.ops.add(opPresence, 1)
	lock := b.nodeKey(node, "sweep")
	won, err := b.rdb.SetNX(ctx, lock, b.opts.Node, 4*b.opts.PresenceTTL).Result()
	if err != nil || !won {
		return err
	}
	defer func() {
		b.ops.add(opPresence, 1)
		_ = unlockScript.Run(ctx, b.rdb, []string{lock}, b.opts.Node).Err()
	}()
	rec, taken := b.nodeKey(node, "users"), b.nodeKey(node, "sweeping")
	b.ops.add(opPresence, 1)
	// No record: the node had no user (HasErrorPrefix drops "ERR ").
	if err := b.rdb.Rename(ctx, rec, taken).Err(); err != nil && !redis.HasErrorPrefix(err, "no such key") {
		return fmt.Errorf("redisbroker: finish %s: %w", node, err)
	}
	var cursor uint64
	for {
		b.ops.add(opPresence, 1)
		users, next, err := b.rdb.SScan(ctx, taken, cursor, "", presenceBatch).Result()
		if err != nil {
			return fmt.Errorf("redisbroker: finish %s: %w", node, err)
		}
		if err := p.check(ctx, users, node, false); err != nil {
			return err
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	b.ops.add(opPresence, 3)
	_ = b.rdb.Del(ctx, taken, b.nodeKey(node, "status")).Err()
	return forgetScript.Run(ctx, b.rdb, []string{b.key("nodes")}, node).Err()
}

// leaveAll is a clean stop: this node drops its leases at once; offline
// checks still pending are left to a live node, which finishes this one
// as it would a dead one, at once, since its lease is marked lapsed.
func (p *presence) leaveAll(ctx context.Context) error {
	b := p.b
	err := p.leave(ctx, slices.Collect(maps.Keys(p.held)))
	if p.debounce() == 0 {
		err = errors.Join(err, p.check(ctx, slices.Collect(maps.Keys(p.pending)), b.opts.Node, true))
	}
	b.ops.add(opPresence, 2)
	_ = b.rdb.Del(ctx, b.nodeKey(b.opts.Node, "status")).Err()
	if len(p.pending) == 0 && len(p.held) == 0 {
		_ = b.rdb.Del(ctx, b.nodeKey(b.opts.Node, "users")).Err()
		return errors.Join(err, b.rdb.ZRem(ctx, b.key("nodes"), b.opts.Node).Err())
	}
	return errors.Join(err, b.rdb.ZAdd(ctx, b.key("nodes"), redis.Z{Score: 0, Member: b.opts.Node}).Err())
}

// count moves the cluster's count of users online by n. It is a command
// apart from the change it counts, which lives in the user's slot: a
// node that dies between the two, or loses its reply, leaves the count
// off by one (it is not retried: it may have been applied).
func (p *presence) count(ctx context.Context, n int) {
	if n == 0 {
		return
	}
	p.b.ops.add(opPresence, 1)
	if err := p.b.rdb.IncrBy(ctx, p.b.key("online"), int64(n)).Err(); err != nil {
		p.b.log.Warn("redisbroker: the count of users online missed a change", "by", n, "err", err)
	}
}

// report tells the node of a change this node decided.
func (p *presence) report(c change, online bool) {
	if p.node != nil {
		p.node.PresenceChanged(ssekit.PresenceChange{User: c.user, Tenant: c.tenant, Online: online, Time: time.Now(), Seq: c.seq})
	}
}
