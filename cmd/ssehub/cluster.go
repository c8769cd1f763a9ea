package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ssekit/sse/redisbroker"
	"github.com/ssekit/sse/ssekit"
)

// cluster is what cluster mode gives the server: a broker shared by every
// node, and the means to start, check and stop it. The server knows
// nothing else of it.
type cluster interface {
	// Broker is the broker the hub is built with.
	Broker() ssekit.Broker
	// Start begins the cluster's background work for hub, once it exists.
	Start(hub *ssekit.Hub)
	// Ping checks the cluster's backing service; /healthz calls it.
	Ping(ctx context.Context) error
	// Status is the body of <prefix>/status?scope=cluster.
	Status(ctx context.Context) (any, error)
	// Close releases the cluster after the hub has shut down.
	Close() error
}

// clusterParams are the parameters that ssehub reads itself, with what
// they set: from --redis-url's query (go-redis refuses options it does not
// know), or after a '?' that ends --redis-cluster's seed addresses.
var clusterParams = map[string]string{
	"prefix": "key prefix shared by the nodes of one cluster (default ssekit)",
	"node":   "this node's name in the cluster status (default host-pid-random)",
	// A node that dies drops out of the status, and its users' presence
	// lapses, after presence_ttl; their user.offline follows within one
	// presence_interval more (docs/cluster.md).
	"presence_interval": "how often a node renews its users' presence and its status report (default 5s)",
	"presence_ttl":      "how long a node's presence and report outlive its last refresh (default 3 intervals)",
}

// openCluster opens cluster mode as cfg says: one Redis (--redis-url:
// redis://, rediss:// or unix://, with go-redis's options and ssehub's
// own, see clusterParams) or a Redis Cluster (--redis-cluster: seed
// addresses, and ssehub's parameters after a '?'). The broker keeps each
// channel's history as memory mode does (--history-size, --history-age),
// remembers Idempotency-Keys for --idempotency-window and waits for
// --redis-wait-replicas. It fails, naming the setting, when
// Redis does not answer within ctx or 5s, so that a node never starts
// half-connected.
func openCluster(ctx context.Context, cfg config, log *slog.Logger) (cluster, error) {
	var (
		rdb     redis.UniversalClient
		bopts   redisbroker.Options
		setting string // the flag that named the Redis, for errors
		where   string // the Redis, without its password, for errors and logs
		err     error
	)
	switch {
	case cfg.RedisURL != "":
		setting, where = "redis-url", redact(cfg.RedisURL)
		var ropts *redis.Options
		if ropts, bopts, err = parseClusterURL(cfg.RedisURL); err != nil {
			return nil, clusterError(setting, where, err)
		}
		rdb = redis.NewClient(ropts)
	case cfg.RedisCluster != "":
		setting = "redis-cluster"
		var seeds []string
		if seeds, bopts, err = parseClusterSeeds(cfg.RedisCluster); err != nil {
			return nil, clusterError(setting, cfg.RedisCluster, err)
		}
		where = strings.Join(seeds, ",")
		rdb = redis.NewClusterClient(redisClusterOptions(seeds, cfg.RedisClusterUser, cfg.RedisClusterPassword, cfg.RedisClusterTLS))
	default:
		return nil, errors.New("cluster mode needs --redis-url or --redis-cluster")
	}
	bopts.Logger = log
	bopts.MaxLen, bopts.MaxAge = int64(cfg.HistorySize), cfg.HistoryAge
	bopts.WaitReplicas = cfg.RedisWaitReplicas
	bopts.KeyWindow = cfg.IdempotencyWindow
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		rdb.Close()
		return nil, clusterError(setting, where, fmt.Errorf("redis does not answer: %w", err))
	}
	b, err := redisbroker.New(rdb, bopts)
	if err != nil {
		rdb.Close()
		return nil, clusterError(setting, where, err)
	}
	life, stop := context.WithCancel(context.Background())
	log.Info("cluster mode", "node", b.Node(), "redis", where, "redis_cluster", cfg.RedisCluster != "", "wait_replicas", cfg.RedisWaitReplicas, "idempotency_window", cfg.IdempotencyWindow.String())
	return &redisCluster{rdb: rdb, broker: b, log: log, life: life, stop: stop}, nil
}

// clusterError is the error of opening cluster mode with setting, whose
// value (without a password) is where.
func clusterError(setting, where string, err error) error {
	return fmt.Errorf("--%s (%s) %s: %w", setting, envName(setting), where, err)
}

// redisClusterOptions are the options of the Redis Cluster client: the
// seeds, from which go-redis learns the other nodes, the user and password
// of AUTH, and TLS, verified against each node's address as the cluster
// announces it (crypto/tls takes the server name from the address dialed
// when none is set, so one setting fits every node).
func redisClusterOptions(seeds []string, user, password string, useTLS bool) *redis.ClusterOptions {
	o := &redis.ClusterOptions{Addrs: seeds, Username: user, Password: password}
	if useTLS {
		o.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return o
}

// parseClusterURL splits ssehub's parameters off the URL and parses the
// rest with redis.ParseURL.
func parseClusterURL(raw string) (*redis.Options, redisbroker.Options, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, redisbroker.Options{}, errors.New("not a URL") // the URL may hold a password: do not echo it
	}
	q := u.Query()
	bopts, err := takeClusterParams(q)
	if err != nil {
		return nil, bopts, err
	}
	u.RawQuery = q.Encode()
	ropts, err := redis.ParseURL(u.String())
	if err != nil {
		return nil, bopts, fmt.Errorf("parse: %w", err)
	}
	return ropts, bopts, nil
}

// parseClusterSeeds parses --redis-cluster: comma-separated host:port seed
// addresses, optionally followed by '?' and ssehub's parameters in query
// form (clusterParams), e.g. "10.0.0.1:7000,10.0.0.2:7000?prefix=app".
// It holds no password, so its errors may quote it.
func parseClusterSeeds(raw string) ([]string, redisbroker.Options, error) {
	list, query, _ := strings.Cut(raw, "?")
	var seeds []string
	for _, a := range strings.Split(list, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			return nil, redisbroker.Options{}, fmt.Errorf("an empty address in %q (a stray comma?)", list)
		}
		host, port, err := net.SplitHostPort(a)
		if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
			return nil, redisbroker.Options{}, fmt.Errorf("%q is not a host:port address (want a comma-separated list like 10.0.0.1:7000,10.0.0.2:7000)", a)
		}
		seeds = append(seeds, a)
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return nil, redisbroker.Options{}, fmt.Errorf("parameters %q: %w", query, err)
	}
	bopts, err := takeClusterParams(q)
	if err != nil {
		return nil, bopts, err
	}
	for name := range q {
		return nil, bopts, fmt.Errorf("unknown parameter %q (ssehub reads prefix, node, presence_interval and presence_ttl)", name)
	}
	return seeds, bopts, nil
}

// takeClusterParams removes ssehub's parameters (clusterParams) from q and
// returns the broker options they set.
func takeClusterParams(q url.Values) (redisbroker.Options, error) {
	var bopts redisbroker.Options
	for name := range clusterParams {
		v := q.Get(name)
		q.Del(name)
		if v == "" {
			continue
		}
		switch name {
		case "prefix":
			bopts.Prefix = v
		case "node":
			bopts.Node = v
		case "presence_interval", "presence_ttl":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return bopts, fmt.Errorf("%s=%q: want a positive duration such as 10m", name, v)
			}
			if name == "presence_interval" {
				bopts.PresenceInterval = d
			} else {
				bopts.PresenceTTL = d
			}
		}
	}
	return bopts, nil
}

// redisCluster is cluster mode on Redis (one server or a Redis Cluster):
// the broker, this node's presence and the client they share, which it
// opened and closes.
type redisCluster struct {
	rdb    redis.UniversalClient
	broker *redisbroker.Broker
	log    *slog.Logger
	life   context.Context // ends the presence refresh
	stop   context.CancelFunc
}

func (c *redisCluster) Broker() ssekit.Broker { return c.broker }

// Start keeps hub's users present in the cluster, reports its
// connections to the cluster status and has this node report the
// presence changes it decides (the hub's OnPresence), until Close.
func (c *redisCluster) Start(hub *ssekit.Hub) {
	if err := c.broker.StartPresence(c.life, hub); err != nil {
		c.log.Error("cluster presence not started: this node will be missing from the cluster status", "err", err)
	}
}

func (c *redisCluster) Ping(ctx context.Context) error { return c.broker.Ping(ctx) }

// clusterStatus is the body of <prefix>/status?scope=cluster. Its counts
// have the names of the node status's, over every live node.
type clusterStatus struct {
	Status         string                   `json:"status"`
	Scope          string                   `json:"scope"`
	Node           string                   `json:"node"`
	ConnectedUsers int                      `json:"connected_users"`
	TotalClients   int                      `json:"total_clients"`
	Nodes          []redisbroker.NodeStatus `json:"nodes"`
}

// Status reads the live nodes' reports from Redis.
func (c *redisCluster) Status(ctx context.Context) (any, error) {
	st, err := c.broker.ClusterStatus(ctx)
	if err != nil {
		return nil, err
	}
	nodes := st.Nodes
	if nodes == nil {
		nodes = []redisbroker.NodeStatus{}
	}
	return clusterStatus{
		Status:         "operational",
		Scope:          "cluster",
		Node:           c.broker.Node(),
		ConnectedUsers: st.Users,
		TotalClients:   st.Clients,
		Nodes:          nodes,
	}, nil
}

// Close stops the presence (removing this node from the status), the
// broker's subscription, then closes the Redis client.
func (c *redisCluster) Close() error {
	c.stop()
	err := c.broker.Close()
	if cerr := c.rdb.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("close redis client: %w", cerr))
	}
	return err
}
