package main

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ssekit/sse/internal/rediscluster"
)

// store is the Redis the ssehub nodes share: one private redis-server, or
// a private Redis Cluster. Never the shared Redis on 6379: the faults
// below kill it.
type store interface {
	// nodeArgs are the ssehub flags that point node i at the store.
	nodeArgs(i int) []string
	// fault breaks the store once, while the publisher goes on, repairs
	// it, and says what it did.
	fault(ctx context.Context) (string, error)
	// masters are the addresses whose INFO commandstats add up to the
	// commands the nodes sent.
	masters(ctx context.Context) ([]string, error)
	// describe says what the store is, for the summary.
	describe() string
	// stop kills every process of the store.
	stop()
}

// oneRedis is one redis-server, restarted as its fault.
type oneRedis struct {
	p    *proc
	port int
	down time.Duration
	bin  string
	aof  bool
}

// startOneRedis starts a redis-server on a free loopback port, with an
// append-only file fsynced at every write when persist, so that a restart
// keeps every event it acknowledged; without it a restart empties the
// history, and clients that resume across it must get a resync.
func startOneRedis(c config, dir string, log *os.File) (*oneRedis, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	aof := []string{"--appendonly", "yes", "--appendfsync", "always"}
	if !c.Persist {
		aof = []string{"--appendonly", "no"}
	}
	r := &oneRedis{port: port, down: c.Down, bin: c.RedisServer, aof: c.Persist, p: &proc{name: "redis", dir: dir, log: log, args: append([]string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--dir", dir, "--protected-mode", "yes",
	}, aof...)}}
	if err := r.start(); err != nil {
		r.stop()
		return nil, err
	}
	return r, nil
}

// start starts redis-server and waits, at most 10s, until it listens.
func (r *oneRedis) start() error {
	if err := r.p.start(r.bin); err != nil {
		return err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port))
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			conn.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("redis-server on %s did not listen within 10s", addr)
}

// nodeArgs names node i in the cluster status (node=nodeI), for its logs.
func (r *oneRedis) nodeArgs(i int) []string {
	return []string{"--redis-url", fmt.Sprintf("redis://127.0.0.1:%d/0?prefix=chaos&node=node%d", r.port, i)}
}

// fault restarts Redis (SIGTERM, which with the append-only file loses
// nothing acknowledged) after it stayed down for -down.
func (r *oneRedis) fault(context.Context) (string, error) {
	logf("restarting redis")
	r.p.stop(syscall.SIGTERM)
	time.Sleep(r.down)
	if err := r.start(); err != nil {
		return "", fmt.Errorf("redis restart: %w", err)
	}
	return "redis restart", nil
}

func (r *oneRedis) masters(context.Context) ([]string, error) {
	return []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port))}, nil
}

func (r *oneRedis) describe() string {
	if r.aof {
		return "one Redis, with an append-only file fsynced at every write, so that a restart keeps the history"
	}
	return "one Redis without persistence, so that a restart empties the history"
}

func (r *oneRedis) stop() { r.p.stop(syscall.SIGTERM) }

// clusterStore is a Redis Cluster of 3 masters with one replica each; its
// fault is a master's crash while publishing, which its replica takes
// over, and the old master's restart, after which it rejoins as a
// replica.
type clusterStore struct {
	cl           *rediscluster.Cluster
	waitReplicas int
	persist      bool
	down         time.Duration
	faults       int // failovers so far
}

// startCluster starts the cluster in dir, within 2 minutes.
func startCluster(ctx context.Context, c config, dir string) (*clusterStore, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cl, err := rediscluster.Start(ctx, rediscluster.Options{
		Dir: filepath.Join(dir, "cluster"), Masters: 3, Replicas: 1, Persist: c.Persist, Logf: logf,
	})
	if err != nil {
		return nil, err
	}
	return &clusterStore{cl: cl, waitReplicas: c.WaitReplicas, persist: c.Persist, down: c.Down}, nil
}

// nodeArgs seeds node i with every address of the cluster, replicas too,
// so that a node (re)started while a master is down still finds the rest.
func (s *clusterStore) nodeArgs(i int) []string {
	args := []string{"--redis-cluster", fmt.Sprintf("%s?prefix=chaos&node=node%d", strings.Join(s.cl.Addrs(), ","), i)}
	if s.waitReplicas > 0 {
		args = append(args, "--redis-wait-replicas", strconv.Itoa(s.waitReplicas))
	}
	return args
}

// fault kills a master (rediscluster.Failover waits until its replica
// serves its slots), leaves it down for -down, restarts it and waits until
// it has rejoined as a replica and the cluster is healthy. Every other
// fault hits the master of everyone's channel, which every client
// follows; the others a random master, which holds some users' channels.
// Each step is bounded, so that a cluster that does not heal fails the
// run instead of hanging it.
func (s *clusterStore) fault(ctx context.Context) (string, error) {
	old, which, err := s.victim(ctx)
	if err != nil {
		return "", err
	}
	logf("redis master %s (%s): kill -9, failover", old, which)
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	began := time.Now()
	repl, err := s.cl.Failover(fctx, old)
	cancel()
	if err != nil {
		return "", err
	}
	took := time.Since(began).Round(100 * time.Millisecond)
	time.Sleep(s.down)
	rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	err = s.cl.Restart(rctx, old)
	cancel()
	if err != nil {
		return "", err
	}
	hctx, cancel := context.WithTimeout(ctx, time.Minute)
	err = s.cl.WaitHealthy(hctx)
	cancel()
	if err != nil {
		return "", err
	}
	logf("redis master %s failed over to %s in %v, restarted as a replica", old, repl, took)
	return fmt.Sprintf("redis master kill -9 (%s; failover in %v), restart", which, took), nil
}

// victim picks the master to kill: the one serving everyone's channel on
// even faults, a random one otherwise.
func (s *clusterStore) victim(ctx context.Context) (addr, which string, err error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s.faults++
	if s.faults%2 == 1 {
		// A fresh client: one that has seen a failover may keep a stale
		// slot map.
		rdb := s.cl.Client(nil)
		defer rdb.Close()
		m, err := rdb.MasterForKey(ctx, broadcastKey)
		if err != nil {
			return "", "", fmt.Errorf("redis cluster: the master of %s: %w", broadcastKey, err)
		}
		return m.Options().Addr, "everyone's channel", nil
	}
	masters, err := s.cl.MasterAddrs(ctx)
	if err != nil {
		return "", "", err
	}
	if len(masters) == 0 {
		return "", "", errors.New("redis cluster: no master serves slots")
	}
	return masters[mrand.IntN(len(masters))], "a random master", nil
}

// broadcastKey is the stream of everyone's channel under the nodes'
// prefix (redisbroker's key "{Prefix:channel}").
const broadcastKey = "{chaos:all}"

func (s *clusterStore) masters(ctx context.Context) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return s.cl.MasterAddrs(ctx)
}

func (s *clusterStore) describe() string {
	d := "a Redis Cluster of 3 masters with one replica each"
	if s.persist {
		d += ", append-only files fsynced every second"
	} else {
		d += ", without persistence"
	}
	if s.waitReplicas > 0 {
		d += fmt.Sprintf(", publishes acknowledged once %d replica(s) hold them (--redis-wait-replicas)", s.waitReplicas)
	} else {
		d += ", publishes acknowledged by the master alone"
	}
	return d
}

func (s *clusterStore) stop() { _ = s.cl.Stop() }
