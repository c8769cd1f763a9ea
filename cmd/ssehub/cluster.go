package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/redis/go-redis/v9"

	sse "github.com/ssekit/sse"
	"github.com/ssekit/sse/redisbroker"
)

// cluster is what cluster mode gives the server: a broker shared by every
// node, and the means to start, check and stop it. The server knows
// nothing else of it.
type cluster interface {
	// Broker is the broker the hub is built with.
	Broker() sse.Broker
	// Start begins the cluster's background work for hub, once it exists.
	Start(hub *sse.Hub)
	// Ping checks the cluster's backing service; /healthz calls it.
	Ping(ctx context.Context) error
	// Status is the body of <prefix>/status?scope=cluster.
	Status(ctx context.Context) (any, error)
	// Close releases the cluster after the hub has shut down.
	Close() error
}

// clusterParams are the query parameters of --redis-url that ssehub reads
// itself (go-redis refuses options it does not know), with what they set.
var clusterParams = map[string]string{
	"prefix": "key prefix shared by the nodes of one cluster (default ssekit)",
	"node":   "this node's name in the cluster status (default host-pid-random)",
	// A node that dies drops out of the status after presence_ttl.
	"presence_interval": "how often a node refreshes its status report (default 5s)",
	"presence_ttl":      "how long a report outlives its node's last refresh (default 3 intervals)",
}

// openCluster connects to the Redis at redisURL (redis://, rediss:// or
// unix://, with go-redis's options and ssehub's own: see clusterParams)
// and makes the cluster's broker, keeping history events for replay (the
// same --history-size and --history-age as in memory mode). It fails when
// Redis does not answer within ctx or 5s, so that a node never starts
// half-connected.
func openCluster(ctx context.Context, redisURL string, history historyLimits, log *slog.Logger) (cluster, error) {
	ropts, bopts, err := parseClusterURL(redisURL)
	if err != nil {
		return nil, err
	}
	bopts.Logger = log
	bopts.MaxLen, bopts.MaxAge = int64(history.size), history.age
	rdb := redis.NewClient(ropts)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("redis does not answer: %w", err)
	}
	b, err := redisbroker.New(rdb, bopts)
	if err != nil {
		rdb.Close()
		return nil, err
	}
	life, stop := context.WithCancel(context.Background())
	log.Info("cluster mode", "node", b.Node(), "redis", ropts.Addr)
	return &redisCluster{rdb: rdb, broker: b, log: log, life: life, stop: stop}, nil
}

// parseClusterURL splits ssehub's parameters off the URL and parses the
// rest with redis.ParseURL.
func parseClusterURL(raw string) (*redis.Options, redisbroker.Options, error) {
	var bopts redisbroker.Options
	u, err := url.Parse(raw)
	if err != nil {
		return nil, bopts, errors.New("not a URL") // the URL may hold a password: do not echo it
	}
	q := u.Query()
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
				return nil, bopts, fmt.Errorf("%s=%q: want a positive duration such as 10m", name, v)
			}
			if name == "presence_interval" {
				bopts.PresenceInterval = d
			} else {
				bopts.PresenceTTL = d
			}
		}
	}
	u.RawQuery = q.Encode()
	ropts, err := redis.ParseURL(u.String())
	if err != nil {
		return nil, bopts, fmt.Errorf("parse: %w", err)
	}
	return ropts, bopts, nil
}

// historyLimits bound the replay history: how many events, how old.
type historyLimits struct {
	size int
	age  time.Duration
}

// redisCluster is cluster mode on Redis: the broker, this node's presence
// and the client they share, which it opened and closes.
type redisCluster struct {
	rdb    *redis.Client
	broker *redisbroker.Broker
	log    *slog.Logger
	life   context.Context // ends the presence refresh
	stop   context.CancelFunc
}

func (c *redisCluster) Broker() sse.Broker { return c.broker }

// Start reports hub's connections to the cluster status until Close.
func (c *redisCluster) Start(hub *sse.Hub) {
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
