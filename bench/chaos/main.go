// Command chaos checks ssehub's delivery promise in cluster mode under
// faults. It starts its own redis-server (on a free loopback port, with an
// append-only file so that a restart keeps the history) and -nodes ssehub
// processes on it, connects -clients subscribers (sseclient, the Go
// client, which reconnects with Last-Event-ID) that each reconnect to a
// random live node, and publishes events — half to everyone, half to one
// user — through a random live node. Meanwhile it kills nodes with SIGKILL
// and restarts them, and restarts Redis.
//
// At the end, with every node and Redis up again, it waits for every
// client to have the last event and accounts, client by client, for every
// event addressed to it since it first connected: delivered exactly once
// and in order, or announced lost by a resync (history exceeded), or lost.
// Lost must be 0; so must duplicates and events out of order.
//
//	go run ./bench/chaos -ssehub /path/to/ssehub -clients 2000 -duration 2m
//
// scripts/chaos.sh builds ssehub and runs this. Every process it starts is
// killed when it returns, and every phase is bounded in time.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	sse "github.com/ssekit/sse"
	"github.com/ssekit/sse/sseclient"
)

// config is one chaos run.
type config struct {
	SSEHub      string
	RedisServer string
	Nodes       int
	Clients     int
	Users       int
	Duration    time.Duration
	Rate        float64
	KillEvery   time.Duration
	Down        time.Duration
	RedisEvery  time.Duration
	Drain       time.Duration
	Summary     string
	Persist     bool
}

func main() {
	var c config
	flag.StringVar(&c.SSEHub, "ssehub", "", "the ssehub binary (required)")
	flag.StringVar(&c.RedisServer, "redis-server", "redis-server", "the redis-server binary")
	flag.IntVar(&c.Nodes, "nodes", 3, "ssehub nodes")
	flag.IntVar(&c.Clients, "clients", 2000, "subscribers")
	flag.IntVar(&c.Users, "users", 500, "distinct users over the subscribers (several streams per user)")
	flag.DurationVar(&c.Duration, "duration", 2*time.Minute, "how long to publish under faults")
	flag.Float64Var(&c.Rate, "rate", 20, "events published per second (half to everyone, half to one user)")
	flag.DurationVar(&c.KillEvery, "kill-every", 10*time.Second, "kill -9 a random node this often")
	flag.DurationVar(&c.Down, "down", 3*time.Second, "how long a killed node or a stopped Redis stays down")
	flag.DurationVar(&c.RedisEvery, "redis-every", 35*time.Second, "restart Redis this often (0: never)")
	flag.DurationVar(&c.Drain, "drain", 90*time.Second, "bound on the wait for every client to have the last event")
	flag.BoolVar(&c.Persist, "persist", true, "give Redis an append-only file, so that a restart keeps the history; without it a restart empties the history, and clients that resume across it must get a resync")
	flag.StringVar(&c.Summary, "summary", "chaos-summary", "where to write the summary (.md and .json are appended)")
	flag.Parse()
	if c.SSEHub == "" || c.Nodes < 2 || c.Clients < 1 || c.Users < 1 || c.Rate <= 0 || c.Duration <= 0 {
		fmt.Fprintln(os.Stderr, "chaos: need -ssehub, -nodes ≥ 2, positive -clients, -users, -rate and -duration")
		os.Exit(2)
	}
	// On SIGINT or SIGTERM the run stops early and still stops every
	// process it started.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "chaos %s: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// freePort returns a loopback port nobody listens on now.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// proc is a child process that can be killed and started again.
type proc struct {
	name string
	args []string
	dir  string
	log  *os.File

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

func (p *proc) start(bin string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	cmd := exec.Command(bin, p.args...)
	cmd.Dir = p.dir
	cmd.Stdout, cmd.Stderr = p.log, p.log
	// Its own process group, so that a signal to this program's group
	// (Ctrl-C) does not reach it before its turn.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	p.cmd, p.done = cmd, done
	return nil
}

// stop signals the process and waits for it to exit (SIGKILL after 10s).
func (p *proc) stop(sig syscall.Signal) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// published is one event the publisher got an id for.
type published struct {
	ID   string
	User string // "" for everyone
	Seq  int64
}

// received is one event as a client saw it.
type received struct {
	ID   string
	Type string
	Seq  int64
	Note string // the connected event's data
}

// subscriber is one client: a user's stream, reconnecting to any live node.
type subscriber struct {
	user    string
	mu      sync.Mutex
	start   string // the id of its first fresh stream's connected event
	got     []received
	lastID  string
	resumes int
}

// cluster is the Redis server and the nodes.
type cluster struct {
	c      config
	redis  *proc
	rport  int
	nodes  []*proc
	ports  []int
	secret string
	key    string

	mu   sync.Mutex
	live []bool
}

func (cl *cluster) liveNodes() []int {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	var out []int
	for i, l := range cl.live {
		if l {
			out = append(out, i)
		}
	}
	return out
}

func (cl *cluster) setLive(i int, l bool) {
	cl.mu.Lock()
	cl.live[i] = l
	cl.mu.Unlock()
}

// randomLive returns the address of a random live node.
func (cl *cluster) randomLive() (string, bool) {
	live := cl.liveNodes()
	if len(live) == 0 {
		return "", false
	}
	return fmt.Sprintf("127.0.0.1:%d", cl.ports[live[mrand.IntN(len(live))]]), true
}

// waitHealthy waits until node i answers /healthz with 200.
func (cl *cluster) waitHealthy(i int, within time.Duration) error {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", cl.ports[i]))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("node %d not healthy within %v", i, within)
}

// startNode starts node i, retrying while Redis is down (a node refuses
// to start without it).
func (cl *cluster) startNode(i int) error {
	for attempt := 0; attempt < 10; attempt++ {
		if err := cl.nodes[i].start(cl.c.SSEHub); err != nil {
			return err
		}
		if err := cl.waitHealthy(i, 8*time.Second); err == nil {
			cl.setLive(i, true)
			return nil
		}
		cl.nodes[i].stop(syscall.SIGKILL)
		time.Sleep(time.Second)
	}
	return fmt.Errorf("node %d did not start", i)
}

func (cl *cluster) startRedis() error {
	if err := cl.redis.start(cl.c.RedisServer); err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", cl.rport)); err == nil {
			conn.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("redis-server did not listen")
}

func (cl *cluster) stopAll() {
	for i, n := range cl.nodes {
		cl.setLive(i, false)
		n.stop(syscall.SIGTERM)
	}
	cl.redis.stop(syscall.SIGTERM)
}

func run(ctx context.Context, c config) error {
	dir, err := os.MkdirTemp("", "ssekit-chaos-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	logFile, err := os.Create(filepath.Join(dir, "processes.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()

	rport, err := freePort()
	if err != nil {
		return err
	}
	cl := &cluster{c: c, rport: rport, secret: randHex(32), key: randHex(16), live: make([]bool, c.Nodes)}
	// appendfsync always: a Redis restart (SIGTERM) keeps every event it
	// acknowledged, so that clients can resume across it.
	aof := []string{"--appendonly", "yes", "--appendfsync", "always"}
	if !c.Persist {
		aof = []string{"--appendonly", "no"}
	}
	cl.redis = &proc{name: "redis", dir: dir, log: logFile, args: append([]string{
		"--port", strconv.Itoa(rport), "--bind", "127.0.0.1", "--save", "", "--dir", dir, "--protected-mode", "yes",
	}, aof...)}
	defer cl.stopAll()
	if err := cl.startRedis(); err != nil {
		return err
	}
	// The cluster's default history (about 10,000 events, 10 minutes)
	// holds a whole run at the default rate: a resync would be a fault.
	redisURL := fmt.Sprintf("redis://127.0.0.1:%d/0?prefix=chaos", rport)
	for i := range c.Nodes {
		port, err := freePort()
		if err != nil {
			return err
		}
		cl.ports = append(cl.ports, port)
		cl.nodes = append(cl.nodes, &proc{name: fmt.Sprintf("node%d", i), dir: dir, log: logFile, args: []string{
			"--addr", fmt.Sprintf("127.0.0.1:%d", port), "--redis-url", redisURL + "&node=node" + strconv.Itoa(i),
			"--jwt-secret", cl.secret, "--publish-key", cl.key,
			"--max-clients", "0", "--max-clients-per-user", "0",
			// The test's few thousand clients come from one address.
			"--stream-rate-ip", "0", "--stream-rate-user", "0", "--publish-rate-ip", "0",
			"--retry", "500ms", "--shutdown-timeout", "3s", "--log-format", "json", "--log-level", "warn",
		}})
	}
	for i := range c.Nodes {
		if err := cl.startNode(i); err != nil {
			return err
		}
	}
	logf("redis on :%d, %d nodes on %v", rport, c.Nodes, cl.ports)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	subs, stopSubs := subscribe(ctx, cl)
	defer stopSubs()
	// Every client's first stream must be open before the faults start,
	// so that each has a starting point to be judged from.
	if err := waitStarted(subs, 2*time.Minute); err != nil {
		return err
	}
	logf("%d clients connected (%d users); publishing %.0f/s for %v under faults", c.Clients, c.Users, c.Rate, c.Duration)

	var pubs []published
	var pubErrs int
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		pubs, pubErrs = publish(ctx, cl, subs)
	}()
	faults := inject(ctx, cl, c.Duration)
	<-pubDone
	if err := ctx.Err(); err != nil {
		return err
	}
	logf("published %d events (%d failed attempts, retried); faults: %s", len(pubs), pubErrs, strings.Join(faults, ", "))
	for i := range c.Nodes { // every node back, for the drain
		if len(cl.liveNodes()) == c.Nodes {
			break
		}
		if !cl.isLive(i) {
			if err := cl.startNode(i); err != nil {
				return err
			}
		}
	}
	if len(pubs) == 0 {
		return errors.New("nothing was published")
	}
	last := pubs[len(pubs)-1].ID
	behind := waitCaughtUp(subs, last, c.Drain)
	stopSubs()
	sum := account(c, subs, pubs, pubErrs, faults, behind)
	js, _ := json.MarshalIndent(sum, "", "  ")
	if err := os.WriteFile(c.Summary+".json", append(js, '\n'), 0o644); err != nil {
		return err
	}
	md := sum.markdown()
	if err := os.WriteFile(c.Summary+".md", []byte(md), 0o644); err != nil {
		return err
	}
	fmt.Print(md)
	if sum.Verdict != "pass" {
		return errors.New("chaos failed: " + strings.Join(sum.Problems, "; "))
	}
	return nil
}

func (cl *cluster) isLive(i int) bool {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.live[i]
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// subscribe starts the clients; stop ends them and waits for them.
func subscribe(ctx context.Context, cl *cluster) ([]*subscriber, func()) {
	ctx, cancel := context.WithCancel(ctx)
	// Every dial goes to a random live node, whatever the URL says: that
	// is how a client behind a load balancer reconnects after its node
	// died. Keep-alive is off so that each stream dials afresh.
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	transport := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			addr, ok := cl.randomLive()
			if !ok {
				return nil, errors.New("no live node")
			}
			return dialer.DialContext(ctx, network, addr)
		},
		DisableKeepAlives:     true,
		ResponseHeaderTimeout: 10 * time.Second,
	}
	users := make([]string, cl.c.Users)
	tokens := make([]string, cl.c.Users)
	for i := range users {
		users[i] = uuid.NewString()
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": users[i], "exp": time.Now().Add(6 * time.Hour).Unix()}).SignedString([]byte(cl.secret))
		if err != nil {
			panic(err) // HMAC signing of a map cannot fail
		}
		tokens[i] = tok
	}
	subs := make([]*subscriber, cl.c.Clients)
	var wg sync.WaitGroup
	for i := range subs {
		s := &subscriber{user: users[i%len(users)]}
		subs[i] = s
		client := &sseclient.Client{
			HTTPClient:   &http.Client{Transport: transport},
			Header:       http.Header{"Authorization": {"Bearer " + tokens[i%len(tokens)]}},
			DefaultRetry: 500 * time.Millisecond,
			MaxDelay:     2 * time.Second,
			IdleTimeout:  45 * time.Second,
			OnStateChange: func(sc sseclient.StateChange) {
				if sc.State == sseclient.StateConnected && sc.Resumed {
					s.mu.Lock()
					s.resumes++
					s.mu.Unlock()
				}
			},
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Spread the first connections over a couple of seconds.
			time.Sleep(time.Duration(mrand.Int64N(int64(2 * time.Second))))
			_ = client.Subscribe(ctx, "http://ssehub.chaos/sse/stream", s.handle)
		}()
	}
	var once sync.Once
	return subs, func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			transport.CloseIdleConnections()
		})
	}
}

// handle records one event.
func (s *subscriber) handle(ev sseclient.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch ev.Type {
	case sse.TypeConnected:
		if s.start == "" && ev.ID != "" {
			s.start = ev.ID // a fresh stream's connected event carries the head
		}
		// Kept as a marker, for the diagnosis of a fault.
		s.got = append(s.got, received{ID: ev.ID, Type: ev.Type, Note: string(ev.Data)})
	case sse.TypeResync:
		s.got = append(s.got, received{ID: ev.ID, Type: ev.Type})
	case "chaos":
		var d struct{ Seq int64 }
		_ = json.Unmarshal(ev.Data, &d)
		s.got = append(s.got, received{ID: ev.ID, Type: ev.Type, Seq: d.Seq})
	}
	if ev.ID != "" {
		s.lastID = ev.ID
	}
	return nil
}

func waitStarted(subs []*subscriber, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		n := 0
		for _, s := range subs {
			s.mu.Lock()
			if s.start != "" {
				n++
			}
			s.mu.Unlock()
		}
		if n == len(subs) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d clients connected within %v", n, len(subs), within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// publish sends events at the configured rate until the run's duration
// is over, each through a random live node, retrying a failed one (on
// another node) until it is accepted: a failed publish was not published
// (the contract), so a retry is not a duplicate. It returns the accepted
// events in id order and the failed attempts.
func publish(ctx context.Context, cl *cluster, subs []*subscriber) ([]published, int) {
	hc := &http.Client{Timeout: 5 * time.Second}
	var out []published
	fails := 0
	t := time.NewTicker(time.Duration(float64(time.Second) / cl.c.Rate))
	defer t.Stop()
	end := time.Now().Add(cl.c.Duration)
	for seq := int64(1); time.Now().Before(end); seq++ {
		select {
		case <-ctx.Done():
			return out, fails
		case <-t.C:
		}
		user := ""
		if seq%2 == 0 {
			user = subs[mrand.IntN(len(subs))].user
		}
		// Everyone is only ever asked for: a body without "all": true or
		// an addressee is refused.
		body := map[string]any{"all": true, "type": "chaos", "data": map[string]int64{"seq": seq}}
		if user != "" {
			body = map[string]any{"users": []string{user}, "type": "chaos", "data": map[string]int64{"seq": seq}}
		}
		raw, _ := json.Marshal(body)
		for attempt := 0; ; attempt++ {
			if attempt > 0 {
				fails++
				time.Sleep(200 * time.Millisecond)
			}
			if attempt > 100 || ctx.Err() != nil {
				logf("publish %d given up", seq)
				break
			}
			addr, ok := cl.randomLive()
			if !ok {
				continue
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/sse/publish", strings.NewReader(string(raw)))
			req.Header.Set("Authorization", "Bearer "+cl.key)
			req.Header.Set("Content-Type", "application/json")
			resp, err := hc.Do(req)
			if err != nil {
				continue
			}
			var ok2 struct{ ID string }
			err = json.NewDecoder(resp.Body).Decode(&ok2)
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || err != nil || ok2.ID == "" {
				continue
			}
			out = append(out, published{ID: ok2.ID, User: user, Seq: seq})
			break
		}
		if !time.Now().Before(end) && user != "" {
			// The last event goes to everyone, so that every client's
			// position shows whether it has caught up.
			end = time.Now().Add(time.Millisecond)
		}
	}
	return out, fails
}

// inject kills and restarts nodes and Redis until the duration is over,
// leaving at least one node up, and returns what it did.
func inject(ctx context.Context, cl *cluster, d time.Duration) []string {
	var did []string
	end := time.Now().Add(d)
	nextKill := time.Now().Add(cl.c.KillEvery)
	nextRedis := time.Now().Add(cl.c.RedisEvery)
	for time.Now().Before(end) && ctx.Err() == nil {
		now := time.Now()
		switch {
		case cl.c.RedisEvery > 0 && now.After(nextRedis) && now.Add(cl.c.Down+5*time.Second).Before(end):
			logf("restarting redis")
			cl.redis.stop(syscall.SIGTERM)
			time.Sleep(cl.c.Down)
			if err := cl.startRedis(); err != nil {
				logf("redis restart: %v", err)
			}
			did = append(did, "redis restart")
			nextRedis = time.Now().Add(cl.c.RedisEvery)
		case now.After(nextKill) && now.Add(cl.c.Down+5*time.Second).Before(end):
			live := cl.liveNodes()
			if len(live) < 2 {
				break
			}
			i := live[mrand.IntN(len(live))]
			logf("kill -9 node %d", i)
			cl.setLive(i, false) // no new dials to it from now on
			cl.nodes[i].stop(syscall.SIGKILL)
			time.Sleep(cl.c.Down)
			if err := cl.startNode(i); err != nil {
				logf("node %d restart: %v", i, err)
			}
			did = append(did, fmt.Sprintf("kill -9 node%d", i))
			nextKill = time.Now().Add(cl.c.KillEvery)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return did
}

// waitCaughtUp waits until every client's position is at or past last;
// it returns how many are not.
func waitCaughtUp(subs []*subscriber, last string, within time.Duration) int {
	deadline := time.Now().Add(within)
	for {
		behind := 0
		for _, s := range subs {
			s.mu.Lock()
			if s.lastID == "" || sse.CompareIDs(s.lastID, last) < 0 {
				behind++
			}
			s.mu.Unlock()
		}
		if behind == 0 || time.Now().After(deadline) {
			return behind
		}
		time.Sleep(200 * time.Millisecond)
	}
}
