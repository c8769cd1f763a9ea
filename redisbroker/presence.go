package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ssekit/sse/ssekit"
)

// Presence: which users have a stream on a live node, kept per user so
// that every cost grows with the users concerned, never with the cluster.
//
// Each user has two keys in its own hash slot (its channel's): ":on", a
// sorted set of the nodes that hold it online, each scored with the
// expiry of its lease (Redis time, ms), and ":st", what was reported of
// it: "on" once it was reported online, "left" when its last stream
// ended, its tenant, the seq of its last change, and "rep", the node
// that decided that change until it has reported it. Only an offline
// check ends ":st" (it keeps the seq); its expiry (days) is a bound on
// litter, so that a node that starts long after the others died still
// finishes their users. A node renews the leases of its own users every
// PresenceInterval (one script per user, pipelined), and its own lease
// in {Prefix}:nodes after them. The scripts decide each change
// atomically on the user's key, so exactly one node sees it: the first
// live lease is the user coming online; the last one going, then
// PresenceDebounce without a new one, is the user going offline (the
// node whose stream ended last checks then). A query is one ZCOUNT of
// live leases per user asked about.
//
// Each node keeps a record of the users it answers for (held, or
// waiting for their offline check). When a node's lease lapses (it died,
// or lost Redis for PresenceTTL), the first live node to see it takes
// the record, once (SET NX), and checks those users only: a node killed
// with SIGKILL has its users' leases lapse within PresenceTTL, and their
// offline change reported within PresenceTTL + PresenceInterval, as long
// as one node lives; with none (a one-node cluster killed, a full
// redeploy), by the next node to start, which finishes the dead ones.

// PresenceSource is what a node reports about its connections; *ssekit.Hub
// implements it. A source that is also an ssekit.PresenceNode (the hub
// is) has its users' changes applied as they happen rather than at the
// next refresh, offline reports debounced by its PresenceDebounce, and
// the changes this node decides reported to it.
type PresenceSource interface {
	// ConnectedUserIDs returns the users with at least one connection.
	ConnectedUserIDs() []string
	// GetTotalClientCount returns how many connections are open.
	GetTotalClientCount() int
}

var _ ssekit.PresenceStore = (*Broker)(nil)

// NodeStatus is one node's report.
type NodeStatus struct {
	Node    string    `json:"node"`
	Clients int       `json:"clients"`
	Users   int       `json:"users"`
	Started time.Time `json:"started"`
	Updated time.Time `json:"updated"`
}

// ClusterStatus is the cluster as its nodes last reported it.
type ClusterStatus struct {
	// Nodes are the nodes in the cluster's index that have a report, by
	// name: the live ones, and one that died until a live node has
	// finished its users (within PresenceTTL + PresenceInterval of its
	// last refresh).
	Nodes []NodeStatus `json:"nodes"`
	// Users counts the users online across the nodes (see OnlineUsers): a
	// user connected to two nodes counts once.
	Users int `json:"connected_users"`
	// Clients counts connections across the nodes.
	Clients int `json:"total_clients"`
}

// presenceBatch bounds the commands of one pipeline, so that a node with
// many users does not send one huge request.
const presenceBatch = 500

// StartPresence keeps src's users present in Redis under this broker's
// Node, and its counts in ClusterStatus, now and every PresenceInterval,
// until ctx is done or the broker is closed; it also finishes the users
// of nodes that died. It runs one goroutine. On a clean stop the node's
// users leave at once, and a live node reports those who stay offline.
// Refresh failures are logged, and the next refresh tries again. A
// broker reports one node: a second call fails.
func (b *Broker) StartPresence(ctx context.Context, src PresenceSource) error {
	if src == nil {
		return errors.New("redisbroker: StartPresence with a nil source")
	}
	p := newPresence(b, src)
	b.mu.Lock()
	started := !b.presence.CompareAndSwap(nil, p)
	b.mu.Unlock()
	if started {
		return errors.New("redisbroker: presence already started for node " + b.opts.Node)
	}
	if err := b.goWithContext(ctx, p.run); err != nil {
		close(p.done)
		return err
	}
	return nil
}

// StopPresence stops the presence that StartPresence started for node
// (ssekit.Hub.Shutdown calls it): as when StartPresence's ctx ends, this
// node's users leave at once and its pending offline checks are left to
// a live node; it returns once the presence goroutine ended, so that it
// reports nothing more to node. Another node, or none started, is
// ignored.
func (b *Broker) StopPresence(node ssekit.PresenceNode) {
	p := b.presence.Load()
	if p == nil || p.node == nil || p.node != node {
		return
	}
	p.stopOnce.Do(func() { close(p.stop) })
	<-p.done
}

// UserChanged tells the presence of this node (StartPresence) that the
// user's streams here changed; it never blocks. Before StartPresence it
// does nothing: the first refresh reads every user.
func (b *Broker) UserChanged(user, tenant string) {
	if p := b.presence.Load(); p != nil {
		p.userChanged(user, tenant)
	}
}

// UsersOnline reports, in order, whether each of users holds a live lease
// of some node: one command per user, pipelined, whatever the number of
// users online.
func (b *Broker) UsersOnline(ctx context.Context, users []string) ([]bool, error) {
	if b.isClosed() {
		return nil, ssekit.ErrBrokerClosed
	}
	calls := make([]scriptCall, len(users))
	for i, u := range users {
		calls[i] = scriptCall{keys: []string{b.userKey(u, "on")}}
	}
	cmds := b.evalEach(ctx, queryScript, calls, opPresenceQuery)
	out := make([]bool, len(users))
	for i, cmd := range cmds {
		n, err := cmd.Int64()
		if err != nil {
			return nil, fmt.Errorf("redisbroker: presence of %s: %w", users[i], err)
		}
		out[i] = n > 0
	}
	return out, nil
}

// OnlineUsers returns how many users are online across the cluster: the
// users whose coming online was reported and going offline not yet.
func (b *Broker) OnlineUsers(ctx context.Context) (int, error) {
	if b.isClosed() {
		return 0, ssekit.ErrBrokerClosed
	}
	b.ops.add(opPresenceQuery, 1)
	n, err := b.rdb.Get(ctx, b.key("online")).Int()
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, fmt.Errorf("redisbroker: online users: %w", err)
	}
	return max(n, 0), nil
}

// ClusterStatus reads the nodes' reports and the count of users online:
// a few commands per node, none per user.
func (b *Broker) ClusterStatus(ctx context.Context) (ClusterStatus, error) {
	var st ClusterStatus
	if b.isClosed() {
		return st, ssekit.ErrBrokerClosed
	}
	names, err := b.rdb.ZRange(ctx, b.key("nodes"), 0, -1).Result()
	if err != nil {
		return st, fmt.Errorf("redisbroker: cluster status: %w", err)
	}
	cmds := make([]*redis.MapStringStringCmd, len(names))
	var online *redis.StringCmd
	_, err = b.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		for i, n := range names {
			cmds[i] = pl.HGetAll(ctx, b.nodeKey(n, "status"))
		}
		online = pl.Get(ctx, b.key("online"))
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return st, fmt.Errorf("redisbroker: cluster status: %w", err)
	}
	for i, n := range names {
		h := cmds[i].Val()
		if len(h) == 0 {
			continue // it left, and a live node is finishing its users
		}
		ns := NodeStatus{Node: n, Clients: atoi(h["clients"]), Users: atoi(h["users"]),
			Started: time.UnixMilli(int64(atoi(h["started"]))), Updated: time.UnixMilli(int64(atoi(h["updated"])))}
		st.Nodes = append(st.Nodes, ns)
		st.Clients += ns.Clients
	}
	st.Users = max(atoi(online.Val()), 0)
	return st, nil
}

// userKey returns one of a user's presence keys, in its channel's slot.
func (b *Broker) userKey(user, suffix string) string {
	return b.channelKey(ssekit.UserChannel(user)) + ":" + suffix
}

// nodeKey returns one of a node's presence keys, in the node's own slot,
// so that the records of many nodes spread over the cluster.
func (b *Broker) nodeKey(node, suffix string) string {
	return b.channelKey("node:"+node) + ":" + suffix
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// scriptCall is one call of a script: its keys and arguments.
type scriptCall struct {
	keys []string
	args []any
}

// evalEach runs s once per call, pipelined presenceBatch at a time (go-redis
// splits each batch by master and sends the parts at once), with EVAL
// for the calls of a master that does not have the script yet. Each call
// counts one command of kind. The results are in the order of calls.
func (b *Broker) evalEach(ctx context.Context, s *redis.Script, calls []scriptCall, kind int) []*redis.Cmd {
	cmds := make([]*redis.Cmd, len(calls))
	for start := 0; start < len(calls); start += presenceBatch {
		batch := calls[start:min(start+presenceBatch, len(calls))]
		_, _ = b.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
			for i, c := range batch {
				cmds[start+i] = s.EvalSha(ctx, pl, c.keys, c.args...)
			}
			return nil
		})
	}
	b.ops.add(kind, len(calls))
	for i, cmd := range cmds {
		if err := cmd.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			cmds[i] = s.Run(ctx, b.rdb, calls[i].keys, calls[i].args...)
		}
	}
	return cmds
}

// The scripts take the time from Redis, so that the leases of one user,
// which live on one master, are compared on one clock whatever the
// nodes' clocks say.
const luaNow = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// A change's seq is Redis time in ms, or one more than the user's last,
// so that it grows even when ":st" expired meanwhile.
const luaSeq = `local function nextSeq(last) return math.max(now, (tonumber(last) or 0) + 1) end
`

// holdScript renews a node's lease on a user (KEYS: :on, :st; ARGV: node,
// lease ms, state ms, tenant, retry) and returns {1, seq, tenant} if the
// user thereby comes online (no change had reported it online), else
// {0}. The key of leases expires with the longest of them. A retry ("1":
// the reply of the call before was lost) returns again the coming online
// that this node decided and has not reported yet (its "rep" mark).
var holdScript = redis.NewScript(luaNow + luaSeq + `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
local st = redis.call('HMGET', KEYS[2], 'on', 'rep', 'seq', 't')
redis.call('PEXPIRE', KEYS[2], ARGV[3])
if st[1] == '1' then
  if ARGV[5] == '1' and st[2] == ARGV[1] then return {1, tonumber(st[3]) or 0, st[4] or ''} end
  return {0}
end
local seq = nextSeq(st[3])
redis.call('HSET', KEYS[2], 'on', '1', 't', ARGV[4], 'seq', seq, 'rep', ARGV[1])
redis.call('HDEL', KEYS[2], 'left')
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return {1, seq, ARGV[4]}
`)

// unmarkScript clears a node's mark of a change it has reported (KEYS:
// :st; ARGV: node, seq).
var unmarkScript = redis.NewScript(`
local st = redis.call('HMGET', KEYS[1], 'rep', 'seq')
if st[1] == ARGV[1] and st[2] == ARGV[2] then redis.call('HDEL', KEYS[1], 'rep') end
return 0
`)

// leaveScript drops a node's lease on a user (KEYS: :on, :st; ARGV: node,
// state ms, tenant). When no live lease is left and the user was
// reported online, it notes when, and returns that time (ms): the user's
// offline check is due PresenceDebounce after it. Else 0.
var leaveScript = redis.NewScript(luaNow + `
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) > 0 then return 0 end
if redis.call('HGET', KEYS[2], 'on') ~= '1' then return 0 end
redis.call('HSET', KEYS[2], 'left', now, 't', ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return now
`)

// checkScript is a user's offline check (KEYS: :on, :st; ARGV: debounce
// ms, the node whose lease it waits for, the checking node, state ms,
// retry). It returns {1, tenant, seq} when the user goes offline now (no
// live lease, reported online, left at least the debounce ago), {2, ms}
// when it must be checked again that much later (the node's lease has
// not lapsed yet, or the debounce has not passed), and {0} when there is
// nothing to report (a live lease, or never reported online). Going
// offline keeps the seq (and the tenant) in ":st", marked as the checking
// node's to report; a retry returns that change again while it is.
var checkScript = redis.NewScript(luaNow + luaSeq + `
local st = redis.call('HMGET', KEYS[2], 'on', 'left', 't', 'seq', 'rep')
if ARGV[5] == '1' and st[1] ~= '1' and st[5] == ARGV[3] and st[4] then
  return {1, st[3] or '', tonumber(st[4])}
end
local held = redis.call('ZSCORE', KEYS[1], ARGV[2])
if held and tonumber(held) > now then return {2, tonumber(held) - now + 1} end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) > 0 then return {0} end
if st[1] ~= '1' then return {0} end
local due = (tonumber(st[2]) or 0) + tonumber(ARGV[1])
if now < due then return {2, due - now} end
local seq = nextSeq(st[4])
redis.call('HDEL', KEYS[2], 'on', 'left')
redis.call('HSET', KEYS[2], 'seq', seq, 'rep', ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return {1, st[3] or '', seq}
`)

// queryScript counts a user's live leases (KEYS: :on).
var queryScript = redis.NewScript(luaNow + `
return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
`)

// nodeScript renews a node's lease (KEYS: {Prefix}:nodes; ARGV: node,
// lease ms) and returns {1 if its previous lease had not lapsed, else 0;
// up to 16 other nodes whose lease has}.
var nodeScript = redis.NewScript(luaNow + `
local prev = redis.call('ZSCORE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 16)
local kept = 0
if prev and tonumber(prev) > now then kept = 1 end
return {kept, dead}
`)

// unlockScript deletes a lock (KEYS: the lock; ARGV: its holder) if it
// still holds it.
var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
`)

// forgetScript removes a node from the index (KEYS: {Prefix}:nodes; ARGV:
// node) unless it renewed its lease meanwhile.
var forgetScript = redis.NewScript(luaNow + `
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if s and tonumber(s) <= now then redis.call('ZREM', KEYS[1], ARGV[1]) end
return 0
`)
