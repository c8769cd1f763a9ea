// Command channels measures what per-channel histories buy, counted where
// it can be and timed only side by side in one run:
//
//   - proportion: for 1, 2, 3 and 6 hubs on one Redis or a Redis Cluster,
//     with users spread evenly over them, how many events each node hears
//     from Redis against how many were addressed to its own users, plus
//     the broadcasts (the bound: heard ≤ 1.2 × addressed + broadcasts);
//
//   - resume: a user misses one event while -others events go to other
//     users; it then resumes (on another node, for Redis), and must get
//     exactly that event, no resync. Reported: the time and the broker
//     operations of one resume with 0 and with -others events in the
//     log, and their ratio.
//
//     go run ./bench/channels -mode proportion -backend cluster -nodes 1,2,3,6
//     go run ./bench/channels -mode resume -backend memory,redis,cluster -others 100000
//
// Every hub runs in this process, each with its own Redis client and
// broker, as separate processes would; a Redis Cluster is started with
// internal/rediscluster on loopback ports and stopped at the end. Every
// loop is bounded in count and time (-max-duration).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ssekit/sse/internal/rediscluster"
	"github.com/ssekit/sse/redisbroker"
	"github.com/ssekit/sse/sseclient"
	"github.com/ssekit/sse/ssekit"
)

type config struct {
	modes, backends []string
	nodes           []int
	users           int
	events          int
	broadcasts      int
	others          int
	otherUsers      int
	resumes         int
	redisAddr       string
	maxDuration     time.Duration
}

func main() {
	var c config
	var modes, backends, nodes string
	flag.StringVar(&modes, "mode", "proportion,resume", "what to measure: proportion, resume (comma-separated)")
	flag.StringVar(&backends, "backend", "redis,cluster", "memory (resume only), redis (one server), cluster (a local 3-master Redis Cluster)")
	flag.StringVar(&nodes, "nodes", "1,2,3,6", "proportion: node counts")
	flag.IntVar(&c.users, "users", 600, "proportion: users, one connection each, spread evenly over the nodes")
	flag.IntVar(&c.events, "events", 6000, "proportion: events, each to one random user")
	flag.IntVar(&c.broadcasts, "broadcasts", 60, "proportion: events to everyone")
	flag.IntVar(&c.others, "others", 100_000, "resume: events to other users while the user is away")
	flag.IntVar(&c.otherUsers, "other-users", 10_000, "resume: how many other users they go to")
	flag.IntVar(&c.resumes, "resumes", 200, "resume: resumes timed for each log size")
	flag.StringVar(&c.redisAddr, "redis", "127.0.0.1:6379", "the one Redis server of -backend redis")
	flag.DurationVar(&c.maxDuration, "max-duration", 10*time.Minute, "bound on the whole run")
	flag.Parse()
	c.modes, c.backends = strings.Split(modes, ","), strings.Split(backends, ",")
	for _, s := range strings.Split(nodes, ",") {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			fail(fmt.Errorf("-nodes %q: want node counts like 1,2,3", nodes))
		}
		c.nodes = append(c.nodes, n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.maxDuration)
	defer cancel()
	env := &environment{cfg: c}
	defer env.close()
	for _, mode := range c.modes {
		for _, be := range c.backends {
			var err error
			switch mode {
			case "proportion":
				if be == "memory" {
					continue // one process: nothing to spread
				}
				err = env.proportion(ctx, be)
			case "resume":
				err = env.resume(ctx, be)
			default:
				err = fmt.Errorf("unknown mode %q", mode)
			}
			if err != nil {
				fail(fmt.Errorf("%s on %s: %w", mode, be, err))
			}
		}
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "channels:", err)
	os.Exit(1)
}

// environment holds the Redis Cluster, started at first use.
type environment struct {
	cfg     config
	cluster *rediscluster.Cluster
	dir     string
}

func (e *environment) close() {
	if e.cluster != nil {
		_ = e.cluster.Stop()
		_ = os.RemoveAll(e.dir)
	}
}

// client returns a new Redis client of a backend.
func (e *environment) client(ctx context.Context, backend string) (redis.UniversalClient, error) {
	switch backend {
	case "redis":
		return redis.NewClient(&redis.Options{Addr: e.cfg.redisAddr}), nil
	case "cluster":
		if e.cluster == nil {
			dir, err := os.MkdirTemp("", "ssekit-bench-cluster-")
			if err != nil {
				return nil, err
			}
			e.dir = dir
			if e.cluster, err = rediscluster.Start(ctx, rediscluster.Options{Dir: dir, Masters: 3}); err != nil {
				return nil, err
			}
		}
		return e.cluster.Client(nil), nil
	}
	return nil, fmt.Errorf("unknown backend %q", backend)
}

// node is one hub behind its own HTTP server.
type node struct {
	rdb    redis.UniversalClient
	broker *redisbroker.Broker
	counts *countingBroker
	hub    *ssekit.Hub
	srv    *http.Server
	url    string
}

var quiet = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))

// startNode starts a hub on backend (a memory broker for "memory") under
// prefix.
func (e *environment) startNode(ctx context.Context, backend, prefix string) (*node, error) {
	n := &node{}
	cfg := ssekit.Config{MaxClients: -1, MaxClientsPerUser: -1, BufferSize: 1024, Logger: quiet, HeartbeatInterval: -1}
	var broker ssekit.Broker
	if backend == "memory" {
		broker = ssekit.NewMemoryBrokerLimits(ssekit.MemoryLimits{PerChannel: 1000, MaxAge: 10 * time.Minute, MaxBytes: 64 << 20})
	} else {
		rdb, err := e.client(ctx, backend)
		if err != nil {
			return nil, err
		}
		n.rdb = rdb
		if n.broker, err = redisbroker.New(rdb, redisbroker.Options{Prefix: prefix, Logger: quiet}); err != nil {
			return nil, err
		}
		broker = n.broker
	}
	n.counts = &countingBroker{Broker: broker}
	cfg.Broker = n.counts
	var err error
	if n.hub, err = ssekit.New(cfg); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	n.url = "http://" + ln.Addr().String()
	n.srv = &http.Server{Handler: n.hub.Handler(ssekit.HandlerOptions{Authenticate: func(r *http.Request) (string, error) {
		return r.URL.Query().Get("user"), nil
	}})}
	go func() { _ = n.srv.Serve(ln) }()
	return n, nil
}

func (n *node) stop() {
	_ = n.hub.Close()
	_ = n.srv.Close()
	if n.broker != nil {
		_ = n.broker.Close()
		_ = n.rdb.Close()
	} else if mb, ok := n.counts.Broker.(*ssekit.MemoryBroker); ok {
		_ = mb.Close()
	}
}

// countingBroker counts the broker calls a hub makes for its streams: the
// cost of a resume, whatever the broker.
type countingBroker struct {
	ssekit.Broker
	reads, heads atomic.Int64
}

func (b *countingBroker) Read(ctx context.Context, channel, after string, limit int) ([]ssekit.Message, error) {
	b.reads.Add(1)
	return b.Broker.Read(ctx, channel, after, limit)
}

func (b *countingBroker) Head(ctx context.Context, channel string) (string, error) {
	b.heads.Add(1)
	return b.Broker.Head(ctx, channel)
}

// stream is one subscriber, counting its events and checking their seqs.
type stream struct {
	user   string
	cancel context.CancelFunc
	done   chan struct{}
	got    atomic.Int64
	resync atomic.Int64
	lastID atomic.Value // string
}

// open subscribes user on n, resuming after lastID; connected is closed
// once the stream's connected event arrived; each event calls onEvent.
func open(n *node, user, lastID string, onEvent func(ev sseclient.Event)) (*stream, <-chan struct{}, error) {
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.url+"/?user="+user, nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	s := &stream{user: user, cancel: cancel, done: make(chan struct{})}
	connected := make(chan struct{})
	go func() {
		defer close(s.done)
		defer resp.Body.Close()
		dec := sseclient.NewDecoder(resp.Body)
		first := true
		for {
			ev, err := dec.Next()
			if err != nil {
				return
			}
			if first {
				first = false
				close(connected)
			}
			if ev.ID != "" {
				s.lastID.Store(ev.ID)
			}
			switch ev.Type {
			case ssekit.TypeConnected, ssekit.TypeHeartbeat:
			case ssekit.TypeResync:
				s.resync.Add(1)
			default:
				s.got.Add(1)
				if onEvent != nil {
					onEvent(ev)
				}
			}
		}
	}()
	return s, connected, nil
}

func (s *stream) close() {
	s.cancel()
	<-s.done
}

// waitFor polls cond until it holds or ctx is done.
func waitFor(ctx context.Context, what string, cond func() bool) error {
	for !cond() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

// proportion measures, for each node count, what each node hears from
// Redis against what was addressed to its users.
func (e *environment) proportion(ctx context.Context, backend string) error {
	c := e.cfg
	fmt.Printf("\n## proportion on %s: %d users (one connection each) spread evenly, %d events to one random user each, %d to everyone\n\n", backend, c.users, c.events, c.broadcasts)
	fmt.Println("| nodes | node | users | addressed to its users | broadcasts | heard from Redis | heard ÷ (addressed + broadcasts) |")
	fmt.Println("|---|---|---|---|---|---|---|")
	for _, nn := range c.nodes {
		prefix := fmt.Sprintf("bench-prop-%d-%d", nn, rand.Int64())
		nodes := make([]*node, nn)
		for i := range nodes {
			n, err := e.startNode(ctx, backend, prefix)
			if err != nil {
				return err
			}
			nodes[i] = n
		}
		streams := make([]*stream, c.users)
		for u := range streams {
			s, connected, err := open(nodes[u%nn], fmt.Sprint("user", u), "", nil)
			if err != nil {
				return err
			}
			select {
			case <-connected:
			case <-ctx.Done():
				return ctx.Err()
			}
			streams[u] = s
		}
		before := make([]redisbroker.Ops, nn)
		for i, n := range nodes {
			before[i] = n.broker.Ops()
		}
		addressed := make([]int, nn)
		r := rand.New(rand.NewPCG(uint64(nn), 7))
		want := make([]int64, c.users)
		for k := range c.events {
			u := r.IntN(c.users)
			if _, err := nodes[k%nn].hub.Publish(ctx, ssekit.Target{Users: []string{fmt.Sprint("user", u)}}, ssekit.Event{Type: "t", Data: k}); err != nil {
				return err
			}
			addressed[u%nn]++
			want[u]++
		}
		for k := range c.broadcasts {
			if _, err := nodes[k%nn].hub.Publish(ctx, ssekit.Target{All: true}, ssekit.Event{Type: "b", Data: k}); err != nil {
				return err
			}
		}
		err := waitFor(ctx, "every delivery", func() bool {
			for u, s := range streams {
				if s.got.Load() < want[u]+int64(c.broadcasts) {
					return false
				}
			}
			return true
		})
		if err != nil {
			return err
		}
		for u, s := range streams {
			if got := s.got.Load(); got != want[u]+int64(c.broadcasts) || s.resync.Load() != 0 {
				return fmt.Errorf("user%d got %d events and %d resyncs, want %d and 0", u, got, s.resync.Load(), want[u]+int64(c.broadcasts))
			}
		}
		for i, n := range nodes {
			heard := n.broker.Ops().Live - before[i].Live
			fmt.Printf("| %d | %d | %d | %d | %d | %d | %.3f |\n", nn, i, (c.users+nn-1-i)/nn, addressed[i], c.broadcasts, heard,
				float64(heard)/float64(addressed[i]+c.broadcasts))
		}
		for _, s := range streams {
			s.close()
		}
		for _, n := range nodes {
			n.stop()
		}
		if err := purge(ctx, e, backend, prefix); err != nil {
			return err
		}
	}
	return nil
}

// purge deletes a run's keys.
func purge(ctx context.Context, e *environment, backend, prefix string) error {
	if backend == "memory" {
		return nil
	}
	rdb, err := e.client(ctx, backend)
	if err != nil {
		return err
	}
	defer rdb.Close()
	return redisbroker.Purge(ctx, rdb, prefix)
}

// resume checks that a user who missed one event while many went to
// others resumes with exactly it, and times one resume with and without
// that traffic in the log.
func (e *environment) resume(ctx context.Context, backend string) error {
	c := e.cfg
	prefix := fmt.Sprintf("bench-resume-%d", rand.Int64())
	a, err := e.startNode(ctx, backend, prefix)
	if err != nil {
		return err
	}
	defer a.stop()
	b := a
	if backend != "memory" {
		// Resume on another node, as after a node's death.
		if b, err = e.startNode(ctx, backend, prefix); err != nil {
			return err
		}
		defer b.stop()
	}
	defer func() { _ = purge(context.Background(), e, backend, prefix) }()
	s, connected, err := open(a, "alice", "", nil)
	if err != nil {
		return err
	}
	<-connected
	s.close()
	last, _ := s.lastID.Load().(string)
	if _, err := a.hub.Publish(ctx, ssekit.Target{Users: []string{"alice"}}, ssekit.Event{Type: "mine", Data: "missed"}); err != nil {
		return err
	}
	fmt.Printf("\n## resume on %s: one missed event, then %d events to %d other users\n\n", backend, c.others, c.otherUsers)
	fmt.Println("| events of other users in the log | resumed with | resyncs | median resume | p90 | broker reads per resume | heads per resume |")
	fmt.Println("|---|---|---|---|---|---|---|")
	// Warm up: connections, the broker's scripts, the runtime.
	for range 20 {
		rs, connected, err := open(b, "alice", last, nil)
		if err != nil {
			return err
		}
		<-connected
		rs.close()
	}
	var medians [2]time.Duration
	var reads [2]float64
	for phase := range 2 {
		if phase == 1 {
			if err := e.fillOthers(ctx, a); err != nil {
				return err
			}
		}
		times := make([]time.Duration, 0, c.resumes)
		r0, h0 := b.counts.reads.Load(), b.counts.heads.Load()
		var got []string
		var resyncs int64
		for range c.resumes {
			var mu sync.Mutex
			var events []string
			arrived := make(chan struct{}, 1)
			start := time.Now()
			rs, _, err := open(b, "alice", last, func(ev sseclient.Event) {
				mu.Lock()
				events = append(events, string(ev.Data))
				mu.Unlock()
				select {
				case arrived <- struct{}{}:
				default:
				}
			})
			if err != nil {
				return err
			}
			select {
			case <-arrived:
			case <-ctx.Done():
				return ctx.Err()
			}
			times = append(times, time.Since(start))
			rs.close()
			resyncs += rs.resync.Load()
			mu.Lock()
			got = events
			mu.Unlock()
		}
		slices.Sort(times)
		medians[phase] = times[len(times)/2]
		reads[phase] = float64(b.counts.reads.Load()-r0) / float64(c.resumes)
		heads := float64(b.counts.heads.Load()-h0) / float64(c.resumes)
		others := 0
		if phase == 1 {
			others = c.others
		}
		gotJSON, _ := json.Marshal(got)
		fmt.Printf("| %d | %s | %d | %v | %v | %.1f | %.1f |\n", others, gotJSON, resyncs, medians[phase].Round(time.Microsecond),
			times[len(times)*9/10].Round(time.Microsecond), reads[phase], heads)
		if len(got) != 1 || got[0] != `"missed"` || resyncs != 0 {
			return errors.New("the resume did not give exactly the missed event")
		}
	}
	fmt.Printf("\nresume time with %d others ÷ with none: %.2f (median of %d each); broker reads: %.1f vs %.1f\n",
		c.others, float64(medians[1])/float64(medians[0]), c.resumes, reads[1], reads[0])
	if b.broker != nil {
		fmt.Printf("resuming node's Redis operations in all: %+v\n", b.broker.Ops())
	}
	return nil
}

// fillOthers publishes -others events to -other-users users, a hundred
// users a publish.
func (e *environment) fillOthers(ctx context.Context, n *node) error {
	c := e.cfg
	const per = 100
	users := make([]string, c.otherUsers)
	for i := range users {
		users[i] = fmt.Sprintf("other-%05d", i)
	}
	sent := 0
	for k := 0; sent < c.others; k++ {
		i := (k * per) % len(users)
		to := users[i:min(i+per, len(users))]
		to = to[:min(len(to), c.others-sent)]
		if _, err := n.hub.Publish(ctx, ssekit.Target{Users: to}, ssekit.Event{Type: "other", Data: k}); err != nil {
			return err
		}
		sent += len(to)
	}
	return nil
}
