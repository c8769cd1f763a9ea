package rediscluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// busOffset is what Redis adds to a node's port for its cluster bus.
	busOffset = 10000
	// nodeTimeout is cluster-node-timeout: how long a node may be silent
	// before it is failed over. Short, so that a failover takes seconds.
	nodeTimeout = 2 * time.Second
	// pollEvery spaces the questions asked while waiting for the cluster.
	pollEvery = 100 * time.Millisecond
	// logName is a node's log file, in its directory.
	logName = "redis.log"
)

// node is one redis-server of the cluster. addr, port, dir and conf never
// change; the other fields are guarded by Cluster.mu.
type node struct {
	addr string // host:port
	port int
	dir  string // Options.Dir/<port>: data and log
	conf string // Options.Dir/nodes-<port>.conf

	cmd    *exec.Cmd     // nil when the node is not running
	exited chan struct{} // closed by the goroutine waiting on cmd once it has exited
	admin  *redis.Client // for CLUSTER and INFO; closed with the process
	paused bool
}

// proc is a running node as it was when looked at, so that it can be
// questioned without holding Cluster.mu.
type proc struct {
	n      *node
	cmd    *exec.Cmd
	exited <-chan struct{}
	admin  *redis.Client
}

// proc returns the node's process. Cluster.mu must be held.
func (n *node) proc() proc {
	return proc{n: n, cmd: n.cmd, exited: n.exited, admin: n.admin}
}

// startNode starts a new node on free ports and waits until it answers
// PING. Ports are picked free, then closed for redis-server to take, so
// another program may take one first; the node then exits at once and is
// tried again on other ports.
func (c *Cluster) startNode(ctx context.Context) (*node, error) {
	const attempts = 5
	var err error
	for range attempts {
		var port int
		if port, err = c.freePort(); err != nil {
			return nil, err
		}
		n := &node{
			addr: net.JoinHostPort(c.opts.Host, strconv.Itoa(port)),
			port: port,
			dir:  filepath.Join(c.opts.Dir, strconv.Itoa(port)),
			conf: filepath.Join(c.opts.Dir, "nodes-"+strconv.Itoa(port)+".conf"),
		}
		c.mu.Lock()
		err = n.spawn(&c.opts)
		p := n.proc()
		c.mu.Unlock()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n.addr, err)
		}
		if err = p.waitPing(ctx); err == nil {
			c.opts.Logf("rediscluster: node %s started", n.addr)
			return n, nil
		}
		c.mu.Lock()
		_ = n.kill()
		c.mu.Unlock()
		err = fmt.Errorf("%s: %w", n.addr, err)
		if !strings.Contains(n.tail(), "in use") {
			return nil, err
		}
		c.opts.Logf("rediscluster: %v; trying other ports", err)
	}
	return nil, err
}

// freePort returns a port P such that P and P+busOffset were free a moment
// ago and belong to no other node of the cluster.
func (c *Cluster) freePort() (int, error) {
	host := c.opts.Host
	for range 100 {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return 0, fmt.Errorf("pick a port: %w", err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ok := port+busOffset <= 65535 && !c.taken[port] && !c.taken[port+busOffset]
		if ok {
			bus, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port+busOffset)))
			if ok = err == nil; ok {
				bus.Close()
			}
		}
		ln.Close()
		if ok {
			c.taken[port], c.taken[port+busOffset] = true, true
			return port, nil
		}
	}
	return 0, fmt.Errorf("pick a port: no free pair P, P+%d on %s after 100 tries", busOffset, host)
}

// spawn starts the node's process and its admin client. Cluster.mu must be
// held.
func (n *node) spawn(o *Options) error {
	if err := os.MkdirAll(n.dir, 0o755); err != nil {
		return err
	}
	// The log is appended to, so that a restarted node's log still shows
	// how it died.
	log, err := os.OpenFile(filepath.Join(n.dir, logName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close() // the child has its own descriptor
	args := []string{
		"--port", strconv.Itoa(n.port),
		"--bind", o.Host,
		"--cluster-enabled", "yes",
		"--cluster-config-file", n.conf,
		"--cluster-node-timeout", strconv.Itoa(int(nodeTimeout / time.Millisecond)),
		"--dir", n.dir,
		"--daemonize", "no",
		"--loglevel", "warning",
		"--enable-debug-command", "local",
		"--save", "",
		// A replica's full sync (at create, or after a restart without
		// Persist) would otherwise wait 5s for more replicas to share it.
		"--repl-diskless-sync-delay", "0",
	}
	if o.Persist {
		args = append(args, "--appendonly", "yes", "--appendfsync", "everysec")
	} else {
		args = append(args, "--appendonly", "no")
	}
	cmd := exec.Command("redis-server", args...)
	cmd.Stdout, cmd.Stderr = log, log // an *os.File: no copying goroutine
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	n.cmd, n.exited = cmd, exited
	n.admin = redis.NewClient(&redis.Options{
		Addr:            n.addr,
		Protocol:        2,    // plain replies; no HELLO, no push notifications
		DisableIdentity: true, // CLIENT SETINFO is 7.2+
		MaxRetries:      -1,   // the callers poll; a retry would only hide what they poll for
		DialTimeout:     time.Second,
		ReadTimeout:     time.Second,
		WriteTimeout:    time.Second,
		PoolSize:        2,
	})
	return nil
}

// kill kills the node's process, waits for it to exit and closes its
// admin client. It reports a node that had died on its own. Cluster.mu
// must be held.
func (n *node) kill() error {
	p := n.proc()
	died := p.hasExited()
	if !died {
		// SIGKILL ends a stopped (paused) process too.
		_ = n.cmd.Process.Kill()
	}
	<-n.exited
	_ = n.admin.Close()
	n.cmd, n.exited, n.admin, n.paused = nil, nil, nil, false
	if died {
		return p.diedErr()
	}
	return nil
}

// hasExited reports whether the process has exited.
func (p proc) hasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// diedErr describes a process that has exited, with the tail of its log.
func (p proc) diedErr() error {
	return fmt.Errorf("%s exited (%v)%s", p.n.addr, p.cmd.ProcessState, p.n.tail())
}

// waitPing waits until the node answers PING, its process exits, or ctx is
// done.
func (p proc) waitPing(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond) // a node starts in milliseconds
	defer t.Stop()
	for {
		err := ping(ctx, p.n.addr)
		if err == nil {
			return nil
		}
		select {
		case <-p.exited:
			return errors.New("exited before answering PING" + p.n.tail())
		case <-ctx.Done():
			return fmt.Errorf("no answer to PING (%v): %w%s", err, ctx.Err(), p.n.tail())
		case <-t.C:
		}
	}
}

// ping sends PING on a connection of its own. It does not use the node's
// go-redis client, whose pool, after a few refused dials, waits a second
// between attempts.
func ping(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	if _, err := io.WriteString(conn, "PING\r\n"); err != nil {
		return err
	}
	reply, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if reply = strings.TrimSpace(reply); reply != "+PONG" {
		return fmt.Errorf("PING: %s", reply) // -LOADING while it reads its append-only file
	}
	return nil
}

// tail returns the end of the node's log, for error messages, or "". A
// crash report is thousands of lines of registers and hex; from one, it
// returns only the first lines, which say what crashed and why.
func (n *node) tail() string {
	const (
		window   = 64 << 10 // enough to hold a whole crash report
		maxLines = 10
		maxLine  = 300
	)
	path := filepath.Join(n.dir, logName)
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	cut := false
	if fi, err := f.Stat(); err == nil && fi.Size() > window {
		_, _ = f.Seek(-window, io.SeekEnd)
		cut = true
	}
	b, _ := io.ReadAll(f)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if cut {
		lines = lines[1:] // the first line is cut in the middle
	}
	if i := slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, "REDIS BUG REPORT START") }); i >= 0 {
		lines = lines[i:min(i+4, len(lines))]
	} else if len(lines) > maxLines {
		lines = lines[len(lines)-maxLines:]
	}
	for i, l := range lines {
		if len(l) > maxLine {
			lines[i] = l[:maxLine] + "…"
		}
	}
	if len(lines) == 0 || lines[0] == "" {
		return ""
	}
	return fmt.Sprintf("; %s says:\n%s", path, strings.Join(lines, "\n"))
}
