package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// nShards spreads a worker's connections over this many histograms.
const nShards = 16

// workerConfig is the part of the configuration one worker needs: which
// connections (From ≤ i < To) it opens and how.
type workerConfig struct {
	URL             string        `json:"url"`
	Headers         []string      `json:"headers,omitempty"`
	From            int           `json:"from"`
	To              int           `json:"to"`
	Users           int           `json:"users"`
	Src             []string      `json:"src,omitempty"`
	JWTSecret       string        `json:"jwt_secret,omitempty"`
	JWTClaims       string        `json:"jwt_claims,omitempty"`
	DialConcurrency int           `json:"dial_concurrency"`
	ConnectTimeout  time.Duration `json:"connect_timeout"`
}

// workerAPI is one group of connections, in this process (*worker) or in
// a child process (*remoteWorker). The master calls Connect, Mark, Drain
// and Close once each, in that order.
type workerAPI interface {
	// Connect opens the connections and returns the user index of each
	// established one.
	Connect(ctx context.Context) ([]uint64, error)
	// Mark starts the measured window (CPU accounting).
	Mark() error
	// Drain waits until every live connection has the distinct events
	// expected of it, or timeout passes; it returns the distinct events
	// received. The expectation also serves Close's accounting.
	Drain(exp expectation, timeout time.Duration) (int64, error)
	// Close ends the connections and returns the accounting.
	Close() (workerResult, error)
}

// workerResult is one worker's accounting; the master adds them up.
type workerResult struct {
	Established   int         `json:"established"`
	Failed        int         `json:"failed"`
	Ended         int         `json:"ended"` // streams the server ended before Close
	Errors        []string    `json:"errors,omitempty"`
	ConnectLat    [][2]uint64 `json:"connect_hist"`
	Latency       [][2]uint64 `json:"latency_hist"`
	Events        int64       `json:"events"`
	Unique        int64       `json:"unique"`
	Dups          int64       `json:"dups"`
	Reorders      int64       `json:"reorders"`
	Lost          int64       `json:"lost"`
	Misdelivered  int64       `json:"misdelivered"`
	LateFailed    int64       `json:"late_failed"` // events of failed publishes that arrived all the same
	Expected      int64       `json:"expected"`
	ConnsWithLoss int         `json:"conns_with_loss"`
	Outside       int64       `json:"outside"`
	Other         int64       `json:"other"`
	FirstAt       int64       `json:"first_at"`
	LastAt        int64       `json:"last_at"`
	CPUWindow     float64     `json:"cpu_window_s"`
	CPUTotal      float64     `json:"cpu_total_s"`
}

// subscriber is one open stream.
type subscriber struct {
	c    net.Conn
	body io.Reader
	tr   tracker
	sh   *shard
	gone atomic.Bool // the server ended the stream
}

// worker holds a group of connections in this process, one goroutine each.
type worker struct {
	cfg     workerConfig
	shards  [nShards]shard
	subs    []*subscriber
	wg      sync.WaitGroup
	closing atomic.Bool
	ended   atomic.Int64

	mu      sync.Mutex
	errors  []string
	failed  int
	connLat hist

	expect  expectation
	cpuMark float64
}

func newWorker(cfg workerConfig) *worker { return &worker{cfg: cfg} }

// noteError keeps the first few distinct error messages as samples.
func (w *worker) noteError(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	msg := err.Error()
	if len(w.errors) < 5 && !slices.Contains(w.errors, msg) {
		w.errors = append(w.errors, msg)
	}
}

// Connect dials every connection of the worker, DialConcurrency at a
// time, so that the server's accept backlog never overflows (an overflow
// costs the client a one-second SYN retry and skews connect latency).
func (w *worker) Connect(ctx context.Context) ([]uint64, error) {
	srcs := make([]net.IP, 0, len(w.cfg.Src))
	for _, s := range w.cfg.Src {
		ip := net.ParseIP(s)
		if ip == nil {
			return nil, fmt.Errorf("bad source address %q", s)
		}
		srcs = append(srcs, ip)
	}
	if !ipv4Target(w.cfg.URL) {
		srcs = nil // IPv4 source addresses cannot reach an IPv6 server
	}
	sem := make(chan struct{}, max(w.cfg.DialConcurrency, 1))
	var mu sync.Mutex
	var dials sync.WaitGroup
	for i := w.cfg.From; i < w.cfg.To; i++ {
		vars := templateVars(i, w.cfg.Users, w.cfg.JWTSecret, w.cfg.JWTClaims)
		t, err := buildRequest(w.cfg.URL, w.cfg.Headers, vars)
		if err != nil {
			return nil, err
		}
		var src net.IP
		if len(srcs) > 0 {
			src = srcs[i%len(srcs)]
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			dials.Wait()
			return w.users(), ctx.Err()
		}
		dials.Add(1)
		go func() {
			defer dials.Done()
			defer func() { <-sem }()
			start := time.Now()
			c, body, err := dialStream(ctx, src, t, w.cfg.ConnectTimeout)
			if err != nil {
				w.noteError(err)
				w.mu.Lock()
				w.failed++
				w.mu.Unlock()
				return
			}
			w.connLat.record(uint64(time.Since(start).Microseconds()))
			mu.Lock()
			s := &subscriber{c: c, body: body, sh: &w.shards[len(w.subs)%nShards]}
			s.tr.user = userIndex(i, w.cfg.Users)
			w.subs = append(w.subs, s)
			mu.Unlock()
			w.wg.Add(1)
			go w.read(s)
		}()
	}
	dials.Wait()
	return w.users(), nil
}

// users returns the user index of each established connection.
func (w *worker) users() []uint64 {
	out := make([]uint64, len(w.subs))
	for i, s := range w.subs {
		out[i] = s.tr.user
	}
	return out
}

// read consumes one stream until it ends or the worker closes it.
func (w *worker) read(s *subscriber) {
	defer w.wg.Done()
	p := newParser(s.body, readBufSize)
	for {
		_, data, err := p.next()
		if err != nil {
			if !w.closing.Load() {
				w.ended.Add(1)
				s.gone.Store(true)
				w.noteError(fmt.Errorf("stream ended: %w", err))
			}
			return
		}
		pl, ok := parsePayload(data)
		if !ok {
			s.sh.other.Add(1)
			continue
		}
		if !s.tr.observe(pl, p.readAt) {
			continue
		}
		lat := max(p.readAt-pl.t, 0)
		s.sh.lat.record(uint64(lat / 1e3))
	}
}

// Mark notes the CPU used so far, to report the measured window's.
func (w *worker) Mark() error {
	w.cpuMark = selfCPU()
	return nil
}

// Drain polls the connections' counts until each live one has the
// distinct events expected of it, or until timeout.
func (w *worker) Drain(exp expectation, timeout time.Duration) (int64, error) {
	w.expect = exp
	deadline := time.Now().Add(timeout)
	for {
		var got int64
		short := false
		for _, s := range w.subs {
			n := s.tr.unique.Load()
			got += n
			// A stream the server ended can never catch up: do not wait for it.
			short = short || (n < exp.of(s.tr.user) && !s.gone.Load())
		}
		if !short || time.Now().After(deadline) {
			return got, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Close ends every stream and adds up the accounting.
func (w *worker) Close() (workerResult, error) {
	cpuEnd := selfCPU()
	w.closing.Store(true)
	for _, s := range w.subs {
		s.c.Close()
	}
	w.wg.Wait()
	r := workerResult{
		Established: len(w.subs),
		Failed:      w.failed,
		Ended:       int(w.ended.Load()),
		Errors:      w.errors,
		ConnectLat:  w.connLat.sparse(),
		CPUWindow:   cpuEnd - w.cpuMark,
		CPUTotal:    selfCPU(),
	}
	var lat hist
	for i := range w.shards {
		lat.merge(&w.shards[i].lat)
		r.Other += w.shards[i].other.Load()
	}
	r.Latency = lat.sparse()
	failed := w.expect.failedBy()
	for _, s := range w.subs {
		t := &s.tr
		u := t.unique.Load()
		lost, late := w.expect.lost(t, failed[t.user])
		r.Expected += w.expect.of(t.user)
		r.Unique += u - late
		r.LateFailed += late
		r.Dups += t.dups
		r.Reorders += t.reorders
		r.Outside += t.outside
		r.Misdelivered += t.misdeliv
		r.Events += u + t.dups + t.outside + t.misdeliv
		if lost > 0 {
			r.Lost += lost
			r.ConnsWithLoss++
		}
		if t.firstAt != 0 && (r.FirstAt == 0 || t.firstAt < r.FirstAt) {
			r.FirstAt = t.firstAt
		}
		r.LastAt = max(r.LastAt, t.lastAt)
	}
	return r, nil
}

// selfCPU returns the user+system CPU seconds this process has used.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return tvSeconds(ru.Utime) + tvSeconds(ru.Stime)
}

func tvSeconds(tv syscall.Timeval) float64 {
	return float64(tv.Sec) + float64(tv.Usec)/1e6
}

// userIndex returns the user of connection i, one of users.
func userIndex(i, users int) uint64 {
	if users <= 0 {
		users = 1
	}
	return uint64(i % users)
}

// userID returns the id of connection i's user: users distinct ids in UUID
// form, so that servers that insist on UUIDs (ssehub) accept them.
func userID(i, users int) string { return userName(userIndex(i, users)) }

// userName returns the id of the user with index u.
func userName(u uint64) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", u) }

// templateVars returns the substitutions for connection i: {i}, {user},
// and {token}, an HS256 JWT for the user (with the extra claims) when a
// secret is set.
func templateVars(i, users int, secret, claims string) *strings.Replacer {
	u := userID(i, users)
	tok := ""
	if secret != "" {
		tok = mintJWT(secret, u, claims, time.Now())
	}
	return strings.NewReplacer("{i}", strconv.Itoa(i), "{user}", u, "{token}", tok)
}

// ipv4Target reports whether the stream URL's host resolves to IPv4.
func ipv4Target(rawURL string) bool {
	u, err := url.Parse(strings.NewReplacer("{i}", "0", "{user}", "u", "{token}", "t").Replace(rawURL))
	if err != nil {
		return false
	}
	ips, err := net.LookupIP(u.Hostname())
	return err == nil && len(ips) > 0 && ips[0].To4() != nil
}
