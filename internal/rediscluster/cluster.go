// Package rediscluster starts a Redis Cluster of local redis-server
// processes, and breaks it on purpose, for tests and benchmark programs.
//
//	c, err := rediscluster.Start(ctx, rediscluster.Options{Dir: t.TempDir(), Replicas: 1})
//	if err != nil {
//		t.Fatal(err)
//	}
//	t.Cleanup(func() { c.Stop() })
//	rdb := c.Client(nil)
//	t.Cleanup(func() { rdb.Close() })
//
// Each node is a child process of this one (not daemonized) on Options.Host,
// at a port picked free, with its cluster bus on that port + 10000. Its data
// and its log (redis.log) are in Dir/<port>, its cluster configuration in
// Dir/nodes-<port>.conf, so that Restart brings back the same node. Nodes
// live until Kill or Stop, not until the ctx given to Start is done. On
// Linux a node is also killed when the process that started it dies, so a
// test binary that panics or times out leaves no redis-server holding ports
// on a shared machine.
//
// All methods of Cluster are safe for concurrent use. A Cluster runs one
// goroutine per running node, waiting for its process to exit, so that a
// node that dies is noticed at once rather than at the next timeout; Kill
// and Stop wait for it to end.
//
// The package needs redis-server and redis-cli (7.0 or later) in PATH, and
// Unix (Pause sends SIGSTOP).
package rediscluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// Options configures Start. The zero value of each field but Dir means its
// default.
type Options struct {
	// Masters is the number of masters, which share the 16384 slots
	// equally. Defaults to 3, the fewest redis-cli creates a cluster of.
	Masters int
	// Replicas is the number of replicas of each master. Defaults to 0.
	Replicas int
	// Dir holds the nodes' files. Required; it is created if missing and
	// never removed.
	Dir string
	// Host is the IP address the nodes listen on. Defaults to "127.0.0.1".
	Host string
	// Logf receives progress: nodes started, the cluster created,
	// failovers and how long each took. Defaults to discarding it.
	Logf func(format string, args ...any)
	// Persist turns the append-only file on (fsynced every second), so a
	// node killed and restarted keeps its data. Defaults to off: no RDB,
	// no AOF, and a restarted node comes back empty.
	Persist bool
}

// Cluster is a running Redis Cluster of local redis-server processes,
// started by Start and ended by Stop.
type Cluster struct {
	opts  Options
	nodes []*node // fixed once Start returns; each node's process state is guarded by mu
	// taken holds the ports (client and bus) of every node, so that no two
	// share one. Only Start uses it, before c is shared.
	taken map[int]bool

	mu      sync.Mutex
	stopped bool // set by Stop: no node starts again
}

// Start starts Options.Masters × (1 + Options.Replicas) nodes, joins them
// into a cluster with redis-cli --cluster create, and returns once every
// node reports cluster_state:ok, agrees on which node serves each slot,
// and every replica is in sync with its master (see WaitHealthy). ctx
// bounds only the start-up; on error, every node started is killed.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("rediscluster: start: %w", err)
	}
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			return nil, fmt.Errorf("rediscluster: start: %w", err)
		}
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("rediscluster: start: %w", err)
	}
	c := &Cluster{opts: o, taken: make(map[int]bool)}
	begin := time.Now()
	for range o.Masters * (1 + o.Replicas) {
		n, err := c.startNode(ctx)
		if err != nil {
			c.Stop()
			return nil, fmt.Errorf("rediscluster: start: %w", err)
		}
		c.nodes = append(c.nodes, n)
	}
	o.Logf("rediscluster: %d nodes answer PING after %v", len(c.nodes), time.Since(begin).Round(time.Millisecond))
	if err := c.create(ctx); err != nil {
		c.Stop()
		return nil, fmt.Errorf("rediscluster: start: %w", err)
	}
	if err := c.waitHealthy(ctx); err != nil {
		c.Stop()
		return nil, fmt.Errorf("rediscluster: start: %w", err)
	}
	o.Logf("rediscluster: cluster of %v is healthy %v after start", c.Addrs(), time.Since(begin).Round(time.Millisecond))
	return c, nil
}

func (o Options) withDefaults() (Options, error) {
	if o.Dir == "" {
		return o, errors.New("Options.Dir is required")
	}
	dir, err := filepath.Abs(o.Dir) // redis-server resolves paths in its own --dir
	if err != nil {
		return o, err
	}
	o.Dir = dir
	if o.Masters == 0 {
		o.Masters = 3
	}
	if o.Masters < 3 {
		return o, fmt.Errorf("Options.Masters is %d; redis-cli creates clusters of 3 masters or more", o.Masters)
	}
	if o.Replicas < 0 {
		return o, fmt.Errorf("Options.Replicas is %d", o.Replicas)
	}
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	// CLUSTER NODES names nodes by IP, and addresses are matched against it.
	if net.ParseIP(o.Host) == nil {
		return o, fmt.Errorf("Options.Host %q is not an IP address", o.Host)
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	return o, nil
}

// create joins the running nodes into a cluster, the way an operator would.
func (c *Cluster) create(ctx context.Context) error {
	begin := time.Now()
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", strconv.Itoa(c.opts.Replicas), "--cluster-yes")
	cmd := exec.CommandContext(ctx, "redis-cli", args...)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("redis-cli --cluster create: %w; output:\n%s", err, out)
	}
	c.opts.Logf("rediscluster: redis-cli --cluster create took %v", time.Since(begin).Round(time.Millisecond))
	return nil
}

// Addrs returns the address (host:port) of every node, running or not, in
// the order they were started.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		addrs[i] = n.addr
	}
	return addrs
}

// Client returns a new cluster client seeded with Addrs; the caller closes
// it. opts, which may be nil, is copied, and its Addrs field is replaced.
//
// Mind that go-redis reloads its slot map on a MOVED or ASK reply, or every
// ClusterStateReloadInterval (a minute by default), but not when a node
// refuses connections: after Kill or Failover of a master, the client
// sends that master's slots' commands to the dead node until something
// calls its ReloadState.
func (c *Cluster) Client(opts *redis.ClusterOptions) *redis.ClusterClient {
	var o redis.ClusterOptions
	if opts != nil {
		o = *opts
	}
	o.Addrs = c.Addrs()
	return redis.NewClusterClient(&o)
}

// Kill kills the node at addr with SIGKILL, as a crash would, and waits
// for the process to exit. Its files stay, for Restart. If the node had
// died on its own, Kill says so, with the end of its log.
func (c *Cluster) Kill(addr string) error {
	if err := c.kill(addr); err != nil {
		return fmt.Errorf("rediscluster: kill %s: %w", addr, err)
	}
	return nil
}

func (c *Cluster) kill(addr string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.running(addr)
	if err != nil {
		return err
	}
	if err := n.kill(); err != nil {
		return err
	}
	c.opts.Logf("rediscluster: killed %s", addr)
	return nil
}

// Restart starts the node at addr again, after Kill or after it died on
// its own, on the same port and with the same files (so with the same
// cluster node ID), and waits until it answers PING or ctx is done. It
// does not wait for the node to rejoin the cluster: call WaitHealthy for
// that. A master restarted without Persist comes back empty; if no
// replica took over meanwhile, its keys are gone.
func (c *Cluster) Restart(ctx context.Context, addr string) error {
	c.mu.Lock()
	n := c.node(addr)
	var err error
	switch {
	case n == nil:
		err = errors.New("no such node")
	case c.stopped:
		err = errors.New("cluster stopped")
	case n.cmd != nil && !n.proc().hasExited():
		err = errors.New("still running; Kill it first")
	default:
		if n.cmd != nil {
			_ = n.kill() // it died on its own: collect it first
		}
		err = n.spawn(&c.opts)
	}
	if err != nil {
		c.mu.Unlock()
		return fmt.Errorf("rediscluster: restart %s: %w", addr, err)
	}
	p := n.proc()
	c.mu.Unlock()

	if err := p.waitPing(ctx); err != nil {
		c.mu.Lock()
		if n.cmd == p.cmd { // nobody killed or restarted it meanwhile
			_ = n.kill()
		}
		c.mu.Unlock()
		return fmt.Errorf("rediscluster: restart %s: %w", addr, err)
	}
	c.opts.Logf("rediscluster: restarted %s", addr)
	return nil
}

// Pause stops the node at addr with SIGSTOP: it keeps its connections but
// answers nothing, as a node stuck in a long pause would. If it stays
// paused longer than the cluster node timeout (2s), the cluster fails it
// over when it has a replica.
func (c *Cluster) Pause(addr string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.running(addr)
	if err == nil && n.paused {
		err = errors.New("already paused")
	}
	if err == nil {
		err = n.cmd.Process.Signal(syscall.SIGSTOP)
	}
	if err != nil {
		return fmt.Errorf("rediscluster: pause %s: %w", addr, err)
	}
	n.paused = true
	return nil
}

// Resume continues the node at addr, paused by Pause, with SIGCONT.
func (c *Cluster) Resume(addr string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.running(addr)
	if err == nil && !n.paused {
		err = errors.New("not paused")
	}
	if err == nil {
		err = n.cmd.Process.Signal(syscall.SIGCONT)
	}
	if err != nil {
		return fmt.Errorf("rediscluster: resume %s: %w", addr, err)
	}
	n.paused = false
	return nil
}

// Stop kills every running node, paused or not, and waits for the
// processes to exit. It removes no file. Calling it again does nothing.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = true
	var errs []error
	for _, n := range c.nodes {
		if n.cmd == nil {
			continue
		}
		if err := n.kill(); err != nil {
			errs = append(errs, fmt.Errorf("rediscluster: stop %s: %w", n.addr, err))
		}
	}
	return errors.Join(errs...)
}

// node returns the node at addr, or nil. c.mu must be held.
func (c *Cluster) node(addr string) *node {
	for _, n := range c.nodes {
		if n.addr == addr {
			return n
		}
	}
	return nil
}

// running returns the node at addr, or why it is not running. c.mu must
// be held.
func (c *Cluster) running(addr string) (*node, error) {
	n := c.node(addr)
	switch {
	case n == nil:
		return nil, errors.New("no such node")
	case n.cmd == nil:
		return nil, errors.New("not running")
	}
	return n, nil
}

// live returns the nodes that are running and not paused: those that
// should answer.
func (c *Cluster) live() []proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ps []proc
	for _, n := range c.nodes {
		if n.cmd != nil && !n.paused {
			ps = append(ps, n.proc())
		}
	}
	return ps
}

// killedOnPurpose reports whether p's process was killed by Kill or Stop
// (or replaced by Restart) rather than dying on its own.
func (c *Cluster) killedOnPurpose(p proc) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return p.n.cmd != p.cmd
}
