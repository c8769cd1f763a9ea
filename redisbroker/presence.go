package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ssekit/sse/ssekit"
)

// PresenceSource is what a node reports about its connections; *ssekit.Hub
// implements it.
type PresenceSource interface {
	// ConnectedUserIDs returns the users with at least one connection.
	ConnectedUserIDs() []string
	// GetTotalClientCount returns how many connections are open.
	GetTotalClientCount() int
}

// NodeStatus is one live node's report.
type NodeStatus struct {
	Node    string    `json:"node"`
	Clients int       `json:"clients"`
	Users   int       `json:"users"`
	Started time.Time `json:"started"`
	Updated time.Time `json:"updated"`
}

// ClusterStatus is the cluster as its live nodes last reported it.
type ClusterStatus struct {
	// Nodes are the nodes whose report has not expired, by name.
	Nodes []NodeStatus `json:"nodes"`
	// Users counts distinct users across the nodes: a user connected to
	// two nodes counts once.
	Users int `json:"connected_users"`
	// Clients counts connections across the nodes.
	Clients int `json:"total_clients"`
}

// presenceBatch bounds the members of one SADD, so that a node with many
// users does not send one huge command.
const presenceBatch = 1000

// StartPresence reports src's counts and user ids under this broker's
// Node, now and every PresenceInterval, with keys that expire after
// PresenceTTL, so that a node that dies drops out of ClusterStatus by
// itself. It runs one goroutine until ctx is done or the broker is closed,
// then deletes the node's keys so that a clean stop drops out at once.
// Refresh failures are logged, and the next refresh tries again. A broker
// reports one node: a second call fails.
func (b *Broker) StartPresence(ctx context.Context, src PresenceSource) error {
	if src == nil {
		return errors.New("redisbroker: StartPresence with a nil source")
	}
	b.mu.Lock()
	started := b.presence
	b.presence = true
	b.mu.Unlock()
	if started {
		return errors.New("redisbroker: presence already started for node " + b.opts.Node)
	}
	return b.goWithContext(ctx, func(ctx context.Context) {
		p := &presence{b: b, src: src, started: time.Now()}
		p.run(ctx)
	})
}

// presence is one node's reporter, owned by its goroutine.
type presence struct {
	b       *Broker
	src     PresenceSource
	started time.Time
	users   []string // as last written, sorted; nil: rewrite the set
	failing bool
}

func (p *presence) run(ctx context.Context) {
	b := p.b
	t := time.NewTicker(b.opts.PresenceInterval)
	defer t.Stop()
	for {
		if err := p.refresh(ctx); err != nil && ctx.Err() == nil {
			if !p.failing {
				b.log.Error("redisbroker: presence refresh failed; this node may drop out of the cluster status", "node", b.opts.Node, "err", err)
			}
			p.failing = true
		} else if p.failing && err == nil {
			b.log.Warn("redisbroker: presence refresh works again", "node", b.opts.Node)
			p.failing = false
		}
		select {
		case <-ctx.Done():
			// ctx is done: leave with a context of our own, briefly.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			_, err := b.rdb.TxPipelined(cctx, func(pl redis.Pipeliner) error {
				pl.Del(cctx, b.key("node:"+b.opts.Node), b.key("users:"+b.opts.Node))
				pl.ZRem(cctx, b.key("nodes"), b.opts.Node)
				return nil
			})
			cancel()
			if err != nil {
				b.log.Warn("redisbroker: could not remove this node's presence; it expires by itself", "node", b.opts.Node, "err", err)
			}
			return
		case <-t.C:
		}
	}
}

// refresh writes the node's counts and renews the expiry of its user set,
// rewriting the set only when the users changed or the set was lost (a
// Redis restart), since PEXPIRE on a missing key says so.
func (p *presence) refresh(ctx context.Context) error {
	b := p.b
	users := slices.Clone(p.src.ConnectedUserIDs())
	slices.Sort(users)
	clients := p.src.GetTotalClientCount()
	ttl := b.opts.PresenceTTL
	nodeKey, usersKey := b.key("node:"+b.opts.Node), b.key("users:"+b.opts.Node)
	rewrite := p.users == nil || !slices.Equal(users, p.users)
	var renewed *redis.BoolCmd
	now := time.Now()
	_, err := b.rdb.TxPipelined(ctx, func(pl redis.Pipeliner) error {
		pl.HSet(ctx, nodeKey,
			"clients", clients,
			"users", len(users),
			"started", p.started.UnixMilli(),
			"updated", now.UnixMilli())
		pl.PExpire(ctx, nodeKey, ttl)
		if rewrite {
			pl.Del(ctx, usersKey)
			for batch := range slices.Chunk(users, presenceBatch) {
				members := make([]any, len(batch))
				for i, u := range batch {
					members[i] = u
				}
				pl.SAdd(ctx, usersKey, members...)
			}
		}
		renewed = pl.PExpire(ctx, usersKey, ttl)
		pl.ZAdd(ctx, b.key("nodes"), redis.Z{Score: float64(now.UnixMilli()), Member: b.opts.Node})
		return nil
	})
	if err != nil {
		p.users = nil
		return fmt.Errorf("redisbroker: presence of %s: %w", b.opts.Node, err)
	}
	p.users = users
	if !renewed.Val() && len(users) > 0 {
		// The set was gone although it should not have been: write it
		// again at the next refresh.
		p.users = nil
	}
	return nil
}

// countUsersScript counts the distinct members of the given sets inside
// Redis, so that the ids do not cross the network.
var countUsersScript = redis.NewScript(`
if #KEYS == 0 then return 0 end
return #redis.call('SUNION', unpack(KEYS))
`)

// ClusterStatus reads the live nodes' reports: a node whose report expired
// (it died, or lost Redis for PresenceTTL) is left out, and removed from
// the node index.
func (b *Broker) ClusterStatus(ctx context.Context) (ClusterStatus, error) {
	var st ClusterStatus
	if b.isClosed() {
		return st, ssekit.ErrBrokerClosed
	}
	names, err := b.rdb.ZRange(ctx, b.key("nodes"), 0, -1).Result()
	if err != nil {
		return st, fmt.Errorf("redisbroker: cluster status: %w", err)
	}
	if len(names) == 0 {
		return st, nil
	}
	cmds := make([]*redis.MapStringStringCmd, len(names))
	_, err = b.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		for i, n := range names {
			cmds[i] = pl.HGetAll(ctx, b.key("node:"+n))
		}
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("redisbroker: cluster status: %w", err)
	}
	var dead []any
	var userKeys []string
	for i, n := range names {
		h := cmds[i].Val()
		if len(h) == 0 {
			dead = append(dead, n)
			continue
		}
		ns := NodeStatus{Node: n, Clients: atoi(h["clients"]), Users: atoi(h["users"]),
			Started: time.UnixMilli(int64(atoi(h["started"]))), Updated: time.UnixMilli(int64(atoi(h["updated"])))}
		st.Nodes = append(st.Nodes, ns)
		st.Clients += ns.Clients
		if ns.Users > 0 {
			userKeys = append(userKeys, b.key("users:"+n))
		}
	}
	if len(dead) > 0 {
		// Best effort: the next status call tries again.
		_ = b.rdb.ZRem(ctx, b.key("nodes"), dead...).Err()
	}
	users, err := countUsersScript.Run(ctx, b.rdb, userKeys).Int()
	if err != nil {
		return st, fmt.Errorf("redisbroker: cluster status: count users: %w", err)
	}
	st.Users = users
	return st, nil
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
