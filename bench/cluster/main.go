// Command cluster measures ssehub in cluster mode: for each node count it
// starts that many ssehub processes on loopback ports against one Redis,
// spreads subscriber connections over them round-robin, publishes
// broadcast events through the nodes' HTTP publish API (round-robin too),
// and reports the delivered events per second and the publish-to-receive
// latency (p50, p99, max) seen by the subscribers.
//
//	go run ./bench/cluster -nodes 1,2,3 -conns 300 -events 2000
//
// Every run is bounded by -events and -max-duration. Everything runs on
// this machine, so the figures measure one machine's cores shared by the
// nodes, Redis and the load itself, not a scaled-out deployment.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/ssekit/sse/redisbroker"
)

const (
	secret     = "cluster-bench-secret-0123456789abcdef"
	publishKey = "cluster-bench-publish-key"
)

type config struct {
	bin         string
	redisAddr   string
	nodes       []int
	conns       int
	events      int
	concurrency int
	rate        int
	payload     int
	maxDuration time.Duration
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "cluster bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	var c config
	fs := flag.NewFlagSet("cluster", flag.ContinueOnError)
	fs.StringVar(&c.bin, "bin", "", "ssehub binary (empty: go build ./cmd/ssehub into a temporary directory)")
	fs.StringVar(&c.redisAddr, "redis", "127.0.0.1:6379", "Redis address (loopback only)")
	nodes := fs.String("nodes", "1,2,3", "comma-separated node counts, one run each")
	fs.IntVar(&c.conns, "conns", 300, "subscriber connections, spread over the nodes")
	fs.IntVar(&c.events, "events", 2000, "broadcast events to publish per run")
	fs.IntVar(&c.concurrency, "concurrency", 4, "concurrent publishers")
	fs.IntVar(&c.rate, "rate", 0, "publish rate in events/s over all publishers (0: as fast as they go)")
	fs.IntVar(&c.payload, "payload", 64, "approximate event data size in bytes")
	fs.DurationVar(&c.maxDuration, "max-duration", time.Minute, "bound on one run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, s := range strings.Split(*nodes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 16 {
			return fmt.Errorf("-nodes: %q is not a count from 1 to 16", s)
		}
		c.nodes = append(c.nodes, n)
	}
	if host, _, err := net.SplitHostPort(c.redisAddr); err != nil || !isLoopback(host) {
		return fmt.Errorf("-redis %q: only a loopback address is allowed", c.redisAddr)
	}
	if c.conns < 1 || c.events < 1 || c.concurrency < 1 || c.events > 1_000_000 || c.conns > 20_000 {
		return errors.New("-conns, -events and -concurrency must be positive (events ≤ 1e6, conns ≤ 20000)")
	}
	if c.bin == "" {
		dir, err := os.MkdirTemp("", "cluster-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		c.bin = filepath.Join(dir, "ssehub")
		if out, err := exec.CommandContext(ctx, "go", "build", "-o", c.bin, "./cmd/ssehub").CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./cmd/ssehub (run from the module root): %v\n%s", err, out)
		}
	}
	rdb := redis.NewClient(&redis.Options{Addr: c.redisAddr})
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis at %s: %w", c.redisAddr, err)
	}
	fmt.Fprintf(out, "ssehub cluster bench: %d connections, %d broadcast events (~%d B), %d publishers, rate %s, redis %s\n",
		c.conns, c.events, c.payload, c.concurrency, rateString(c.rate), c.redisAddr)
	fmt.Fprintf(out, "%-6s %-12s %-14s %-10s %-10s %-10s %-10s\n", "nodes", "published/s", "delivered/s", "p50", "p99", "max", "missing")
	for _, n := range c.nodes {
		r, err := runOnce(ctx, c, n, rdb)
		if err != nil {
			return fmt.Errorf("%d nodes: %w", n, err)
		}
		fmt.Fprintf(out, "%-6d %-12.0f %-14.0f %-10s %-10s %-10s %-10d\n", n, r.publishedPerSec, r.deliveredPerSec,
			r.p50.Round(10*time.Microsecond), r.p99.Round(10*time.Microsecond), r.max.Round(10*time.Microsecond), r.missing)
	}
	return nil
}

func rateString(r int) string {
	if r <= 0 {
		return "unpaced"
	}
	return fmt.Sprintf("%d/s", r)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

type result struct {
	publishedPerSec, deliveredPerSec float64
	p50, p99, max                    time.Duration
	missing                          int
}

// runOnce runs one measurement on n fresh nodes under a fresh key prefix,
// and removes the prefix's keys afterwards.
func runOnce(ctx context.Context, c config, n int, rdb *redis.Client) (result, error) {
	ctx, cancel := context.WithTimeout(ctx, c.maxDuration)
	defer cancel()
	prefix := "ssekit-bench-" + uuid.NewString()[:8]
	defer deleteKeys(rdb, prefix)
	var nodes []*proc
	defer func() {
		for _, p := range nodes {
			p.stop()
		}
	}()
	for i := range n {
		p, err := start(ctx, c.bin, fmt.Sprintf("redis://%s/0?prefix=%s&node=bench-%d", c.redisAddr, prefix, i), c.events+1000)
		if err != nil {
			return result{}, err
		}
		nodes = append(nodes, p)
	}

	// Subscribers: one user each, round-robin over the nodes.
	lat := newLatencies(c.conns * c.events)
	var delivered atomic.Int64
	var wg sync.WaitGroup
	subCtx, stopSubs := context.WithCancel(ctx)
	defer func() {
		stopSubs()
		wg.Wait()
	}()
	ready := make(chan error, c.conns)
	for i := range c.conns {
		p := nodes[i%n]
		wg.Go(func() { subscribe(subCtx, p.url, ready, &delivered, lat) })
	}
	for range c.conns {
		if err := <-ready; err != nil {
			return result{}, err
		}
	}

	pad := strings.Repeat("x", max(c.payload-40, 0))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: c.concurrency}}
	defer client.CloseIdleConnections()
	var next atomic.Int64
	var pubErr atomic.Value
	var tick <-chan time.Time
	if c.rate > 0 {
		t := time.NewTicker(time.Second / time.Duration(c.rate))
		defer t.Stop()
		tick = t.C
	}
	begin := time.Now()
	var pubs sync.WaitGroup
	for range c.concurrency {
		pubs.Go(func() {
			for ctx.Err() == nil {
				k := next.Add(1) - 1
				if k >= int64(c.events) {
					return
				}
				if tick != nil {
					select {
					case <-tick:
					case <-ctx.Done():
						return
					}
				}
				if err := publish(ctx, client, nodes[int(k)%n].url, pad); err != nil {
					pubErr.CompareAndSwap(nil, err)
					return
				}
			}
		})
	}
	pubs.Wait()
	published := time.Since(begin)
	if err, _ := pubErr.Load().(error); err != nil {
		return result{}, fmt.Errorf("publish: %w", err)
	}
	want := int64(c.conns) * int64(c.events)
	for delivered.Load() < want && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	elapsed := time.Since(begin)
	got := delivered.Load()
	r := result{
		publishedPerSec: float64(c.events) / published.Seconds(),
		deliveredPerSec: float64(got) / elapsed.Seconds(),
		missing:         int(want - got),
	}
	r.p50, r.p99, r.max = lat.quantiles()
	return r, nil
}

// proc is one ssehub process.
type proc struct {
	url  string
	cmd  *exec.Cmd
	done chan struct{}
	logs bytes.Buffer
}

// start runs ssehub on a free loopback port and waits for /healthz.
func start(ctx context.Context, bin, redisURL string, history int) (*proc, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	p := &proc{url: "http://" + addr, done: make(chan struct{})}
	p.cmd = exec.Command(bin, "--addr", addr, "--redis-url", redisURL, "--jwt-secret", secret,
		"--publish-key", publishKey, "--max-clients", "0", "--max-clients-per-user", "0",
		"--buffer-size", "1024", "--log-level", "warn", "--history-size", strconv.Itoa(history),
		// Every connection comes from one loopback address: no rate limits.
		"--stream-rate-ip", "0", "--stream-rate-user", "0", "--publish-rate-ip", "0")
	p.cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	p.cmd.Stdout, p.cmd.Stderr = &p.logs, &p.logs
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.url+"/healthz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("ssehub exited at start-up: %s", p.logs.String())
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			p.stop()
			return nil, fmt.Errorf("ssehub not healthy: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop asks the process to drain (SIGTERM) and kills it if it does not
// exit within 10s.
func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// subscribe holds one stream until ctx is done, counting the bench's
// events and recording their latency. It reports on ready once the stream
// is open (its connected event has arrived), or why it could not open.
func subscribe(ctx context.Context, base string, ready chan<- error, delivered *atomic.Int64, lat *latencies) {
	tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
		Subject: uuid.NewString(), ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour)),
	}).SignedString([]byte(secret))
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/sse/stream", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ready <- err
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		ready <- fmt.Errorf("stream: status %d", resp.StatusCode)
		return
	}
	// A line reader is enough here: the hub writes one data line per
	// event, and the bench's events are the only ones with a "t" field.
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	opened := false
	for sc.Scan() {
		line := sc.Bytes()
		if !opened && bytes.HasPrefix(line, []byte("event: connected")) {
			opened = true
			ready <- nil
			continue
		}
		rest, ok := bytes.CutPrefix(line, []byte(`data: {"t":`))
		if !ok {
			continue
		}
		end := bytes.IndexByte(rest, ',')
		if end < 0 {
			continue
		}
		sent, err := strconv.ParseInt(string(rest[:end]), 10, 64)
		if err != nil {
			continue
		}
		lat.add(time.Duration(time.Now().UnixNano() - sent))
		delivered.Add(1)
	}
	if !opened {
		ready <- fmt.Errorf("stream ended before its connected event (refused: over a limit?): %v", sc.Err())
	}
}

// publish posts one broadcast carrying its send time.
func publish(ctx context.Context, client *http.Client, base, pad string) error {
	body := fmt.Sprintf(`{"all":true,"type":"bench","data":{"t":%d,"pad":%q}}`, time.Now().UnixNano(), pad)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/sse/publish", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+publishKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// latencies keeps every sample, up to a bound.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func newLatencies(n int) *latencies {
	return &latencies{d: make([]time.Duration, 0, min(n, 5_000_000))}
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	if len(l.d) < cap(l.d) {
		l.d = append(l.d, d)
	}
	l.mu.Unlock()
}

func (l *latencies) quantiles() (p50, p99, maxD time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return 0, 0, 0
	}
	slices.Sort(l.d)
	q := func(f float64) time.Duration { return l.d[min(int(f*float64(len(l.d))), len(l.d)-1)] }
	return q(0.50), q(0.99), l.d[len(l.d)-1]
}

// deleteKeys removes one run's keys from the shared Redis.
func deleteKeys(rdb *redis.Client, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := redisbroker.Purge(ctx, rdb, prefix); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
}
