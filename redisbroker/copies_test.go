package redisbroker_test

import (
	"bytes"
	"context"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/ssekit/sse/internal/ssetest"
	"github.com/ssekit/sse/redisbroker"
	"github.com/ssekit/sse/ssekit"
)

// gateConn forwards the first command of the first pipelined write that
// holds two EVALSHA, then waits for hold before the rest: a publish caught
// between its copies.
type gateConn struct {
	net.Conn
	g *gate
}

type gate struct {
	armed     atomic.Bool
	once      sync.Once
	firstSent chan struct{}
	hold      chan struct{}
}

func (c gateConn) Write(p []byte) (int, error) {
	if c.g.armed.Load() && bytes.Count(bytes.ToLower(p), []byte("evalsha")) >= 2 {
		if end, ok := firstCommandEnd(p); ok && end < len(p) {
			fired := false
			c.g.once.Do(func() { fired = true })
			if fired {
				if _, err := c.Conn.Write(p[:end]); err != nil {
					return 0, err
				}
				close(c.g.firstSent)
				<-c.g.hold
				n, err := c.Conn.Write(p[end:])
				return end + n, err
			}
		}
	}
	return c.Conn.Write(p)
}

// firstCommandEnd returns where the first RESP command of p ends.
func firstCommandEnd(p []byte) (int, bool) {
	line := func(i int) (string, int, bool) {
		j := bytes.Index(p[i:], []byte("\r\n"))
		if j < 0 {
			return "", 0, false
		}
		return string(p[i : i+j]), i + j + 2, true
	}
	s, i, ok := line(0)
	if !ok || s[0] != '*' {
		return 0, false
	}
	n, _ := strconv.Atoi(s[1:])
	for k := 0; k < n; k++ {
		s, j, ok := line(i)
		if !ok || s[0] != '$' {
			return 0, false
		}
		size, _ := strconv.Atoi(s[1:])
		i = j + size + 2
	}
	return i, i <= len(p)
}

// TestFreshStreamBetweenTwoCopiesOnRedis: on a real Redis, a stream that
// opens while a publish to {topic:a, user:u} has stored topic:a's copy and
// not yet user:u's (the pipeline runs them one after the other) gets the
// event through the user's copy, which is after its start.
func TestFreshStreamBetweenTwoCopiesOnRedis(t *testing.T) {
	rdb := sharedRedis(t)
	prefix := uniquePrefix(t, rdb)
	be := backend{name: "redis", client: func(t testing.TB) redis.UniversalClient {
		c := redis.NewClient(&redis.Options{Addr: ssetest.RedisAddr()})
		t.Cleanup(func() { c.Close() })
		return c
	}}
	// The node that serves the stream.
	n := newNode(t, be, prefix, redisbroker.Options{MaxLen: -1}, ssekit.Config{AuthorizeTopic: ssekit.AllowAllTopics, HeartbeatInterval: -1})

	// The publisher: another node's broker, on a gated connection.
	g := &gate{firstSent: make(chan struct{}), hold: make(chan struct{})}
	prdb := redis.NewClient(&redis.Options{Addr: ssetest.RedisAddr(), Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return gateConn{c, g}, nil
	}})
	defer prdb.Close()
	pb := newBroker(t, prdb, redisbroker.Options{Prefix: prefix, MaxLen: -1})
	ph, err := ssekit.New(ssekit.Config{Broker: pb, HeartbeatInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer ph.Close()
	ctx := context.Background()
	// Load the script.
	if _, err := ph.Publish(ctx, ssekit.Target{Users: []string{"warm-up"}}, ssekit.Event{Type: "n", Data: 0}); err != nil {
		t.Fatal(err)
	}

	g.armed.Store(true)
	done := make(chan error, 1)
	go func() {
		_, err := ph.Publish(ctx, ssekit.Target{Users: []string{"u"}, Topics: []string{"a"}}, ssekit.Event{Type: "n", Data: 1})
		done <- err
	}()
	<-g.firstSent
	ssetest.Eventually(t, "topic:a's copy stored", func() bool {
		head, err := pb.Head(ctx, "topic:a")
		return err == nil && head != "0-0"
	})

	c := ssetest.DialOK(t, n.srv.URL+"?topic=a", "u", "")
	conn := c.Connected()
	close(g.hold) // now user:u's copy
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, ch := range []string{"topic:a", "user:u"} {
		ms, err := pb.Read(ctx, ch, "0-0", 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			t.Logf("%s: event %s at %s, Also %q", ch, m.Data, m.Positions[0], m.Also)
		}
	}
	t.Logf("the stream's connected event: id %s", conn.ID)
	if _, err := ph.Publish(ctx, ssekit.Target{Users: []string{"u"}}, ssekit.Event{Type: "n", Data: 2}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(got) == 0 || got[len(got)-1] != "2" {
		ev := c.NextOf()
		got = append(got, string(ev.Data))
	}
	if len(got) != 2 || got[0] != "1" {
		t.Fatalf("stream of user u (topic a) got %q, want [1 2]: event 1's user:u copy was stored after the stream's start", got)
	}
}
