package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// publishConfig says what to publish, where, and how fast.
type publishConfig struct {
	URL         string        // POST target; ignored when Cmd is set
	Body        string        // body template; {payload} is the payload JSON
	Headers     []string      // "Name: value"
	Cmd         string        // instead of URL: a command that publishes each line it reads (see cmdSender)
	Rate        float64       // events per second over all publishers; 0: as fast as accepted
	Count       int           // stop after this many; 0: no limit
	Duration    time.Duration // stop after this long; 0: no limit
	Concurrency int           // publishers, each one request at a time
	PayloadSize int           // pad payloads to this many bytes
	Timeout     time.Duration // per publish
}

// pubResult is what the publishers did.
type pubResult struct {
	Attempted int64
	Accepted  int64
	Failed    int64
	Errors    []string
	Start     time.Time
	End       time.Time
	RoundTrip hist // publish call duration, µs
}

// sender publishes one body; each publisher owns one.
type sender interface {
	send(ctx context.Context, body []byte) error
	close()
}

// httpSender POSTs to the publish API.
type httpSender struct {
	client  *http.Client
	url     string
	headers [][2]string
}

func (h *httpSender) send(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	for _, kv := range h.headers {
		req.Header.Set(kv[0], kv[1])
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("publish: status %s", resp.Status)
	}
	return nil
}

func (h *httpSender) close() {}

// cmdSender feeds a long-running command: it writes each body as one line
// to the command's stdin and waits for one line back on its stdout ("ok",
// or anything starting with "error" for a failed publish), so that the
// command sees the same one-at-a-time flow as the HTTP API.
type cmdSender struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

func startCmdSender(command string) (*cmdSender, error) {
	cmd := exec.Command("sh", "-c", command)
	in, out, err := startPiped(cmd)
	if err != nil {
		return nil, err
	}
	return &cmdSender{cmd: cmd, in: in, out: out}, nil
}

// startPiped starts cmd with a pipe to its stdin and a line scanner (lines
// up to 16 MiB) on its stdout: the line protocol of both the publish
// command and the worker processes.
func startPiped(cmd *exec.Cmd) (io.WriteCloser, *bufio.Scanner, error) {
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	return in, sc, nil
}

func (c *cmdSender) send(_ context.Context, body []byte) error {
	if _, err := c.in.Write(append(body, '\n')); err != nil {
		return err
	}
	if !c.out.Scan() {
		return fmt.Errorf("publish command: %v", c.out.Err())
	}
	if line := c.out.Text(); strings.HasPrefix(line, "error") {
		return errors.New(line)
	}
	return nil
}

func (c *cmdSender) close() {
	c.in.Close()
	_ = c.cmd.Wait()
}

// parseHeaders splits "Name: value" lines.
func parseHeaders(hs []string) ([][2]string, error) {
	out := make([][2]string, 0, len(hs))
	for _, h := range hs {
		k, v, ok := strings.Cut(h, ":")
		if !ok {
			return nil, fmt.Errorf("header %q: want Name: value", h)
		}
		out = append(out, [2]string{strings.TrimSpace(k), strings.TrimSpace(v)})
	}
	return out, nil
}

// publish runs the publishers until Count or Duration is reached or ctx
// ends. Sequence numbers are handed out in start order; a shared schedule
// (event g is due at start + (g-1)/Rate) keeps the total rate whatever the
// concurrency.
func publish(ctx context.Context, cfg publishConfig) (*pubResult, error) {
	hdrs, err := parseHeaders(cfg.Headers)
	if err != nil {
		return nil, err
	}
	conc := max(cfg.Concurrency, 1)
	senders := make([]sender, conc)
	client := &http.Client{
		Timeout:   cfg.Timeout,
		Transport: &http.Transport{MaxIdleConnsPerHost: conc, DisableCompression: true},
	}
	for i := range senders {
		if cfg.Cmd != "" {
			cs, err := startCmdSender(cfg.Cmd)
			if err != nil {
				for _, s := range senders[:i] {
					s.close()
				}
				return nil, err
			}
			senders[i] = cs
		} else {
			senders[i] = &httpSender{client: client, url: cfg.URL, headers: hdrs}
		}
	}
	prefix, suffix, _ := strings.Cut(cfg.Body, "{payload}")
	res := &pubResult{Start: time.Now()}
	var next atomic.Uint64
	var mu sync.Mutex
	var wg sync.WaitGroup
	for p := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer senders[p].close()
			var body []byte
			var s uint64
			for {
				g := next.Add(1)
				if cfg.Count > 0 && g > uint64(cfg.Count) {
					return
				}
				var due time.Time
				if cfg.Rate > 0 {
					due = res.Start.Add(time.Duration(float64(g-1) / cfg.Rate * 1e9))
					if d := time.Until(due); d > 0 && !sleepCtx(ctx, d) {
						return
					}
				}
				if ctx.Err() != nil || (cfg.Duration > 0 && time.Since(res.Start) >= cfg.Duration) {
					return
				}
				s++
				now := time.Now()
				// At a set rate the event's time is when it was due, not when
				// a busy publisher got round to it: a server that holds up its
				// publishers is charged for the delay (no coordinated omission).
				sent := now
				if !due.IsZero() {
					sent = due
				}
				body = append(body[:0], prefix...)
				body = appendPayload(body, payload{g: g, p: uint64(p), s: s, t: sent.UnixNano()}, cfg.PayloadSize)
				body = append(body, suffix...)
				err := senders[p].send(ctx, body)
				res.RoundTrip.record(uint64(time.Since(now).Microseconds()))
				atomic.AddInt64(&res.Attempted, 1)
				if err != nil {
					atomic.AddInt64(&res.Failed, 1)
					mu.Lock()
					if len(res.Errors) < 5 && !contains(res.Errors, err.Error()) {
						res.Errors = append(res.Errors, err.Error())
					}
					mu.Unlock()
					continue
				}
				atomic.AddInt64(&res.Accepted, 1)
			}
		}()
	}
	wg.Wait()
	res.End = time.Now()
	client.CloseIdleConnections()
	return res, nil
}

// sleepCtx sleeps for d; it reports false if ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
