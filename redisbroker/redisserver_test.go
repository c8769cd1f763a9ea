package redisbroker_test

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ssekit/sse/internal/ssetest"
)

// redisServer is a redis-server of the test's own, on a loopback port, so
// that it can be stopped, paused and restarted without disturbing anyone.
// It keeps nothing on disk: a restart comes back empty.
type redisServer struct {
	t    testing.TB
	addr string
	port int
	dir  string
	cmd  *exec.Cmd
	wait chan struct{} // closed when cmd has exited
}

// startRedisServer starts a private redis-server, killed at cleanup. It
// skips the test (fails it under SSEKIT_REQUIRE_SERVICES=1) when there is
// no redis-server binary.
func startRedisServer(t testing.TB) *redisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		ssetest.ServiceMissing(t, "no redis-server binary in PATH: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s := &redisServer{t: t, port: port, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), dir: t.TempDir()}
	s.start()
	t.Cleanup(s.stop)
	return s
}

// start runs the server on its port and waits until it answers.
func (s *redisServer) start() {
	s.t.Helper()
	s.cmd = exec.Command("redis-server",
		"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no",
		"--dir", s.dir, "--enable-debug-command", "local", "--loglevel", "warning")
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	s.wait = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(s.cmd, s.wait)
	rdb := redis.NewClient(&redis.Options{Addr: s.addr, MaxRetries: -1})
	defer rdb.Close()
	deadline := time.Now().Add(ssetest.Patience)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := rdb.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		select {
		case <-s.wait:
			s.t.Fatalf("redis-server on port %d exited: %v", s.port, s.cmd.ProcessState)
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redis-server on port %d does not answer: %v", s.port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop kills the server, as a crash would, and waits for it to exit.
func (s *redisServer) stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.wait
	s.cmd = nil
}

func (s *redisServer) String() string { return fmt.Sprintf("redis-server %s", s.addr) }
