package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ssekit/sse/internal/benchwire"
)

// publishConfig says what to publish, where, and how fast.
type publishConfig struct {
	URL         string        // POST target, a template ({user}); ignored when Cmd is set
	Body        string        // body template; {payload} is the payload JSON, {user} the addressee
	Headers     []string      // "Name: value"
	FailOn      string        // a 2xx answer whose body holds this is a failed publish
	Cmd         string        // instead of URL: a command that publishes each line it reads (see cmdSender)
	Control     string        // instead of URL: the server's in-process publisher (see control.go)
	Rate        float64       // events per second over all publishers; 0: as fast as accepted
	Count       int           // stop after this many; 0: no limit
	Duration    time.Duration // stop after this long; 0: no limit
	Concurrency int           // publishers, each one request at a time
	PayloadSize int           // pad payloads to this many bytes
	Timeout     time.Duration // per publish
	Targeted    bool          // each event to one random connected user, not to everyone
	Batch       int           // events per request; above 1, BatchBody wraps them
	BatchBody   string        // batch request template; {events} is the events' bodies joined by commas
}

// pubResult is what the publishers did. Counts are of events; a batch
// request carries several.
type pubResult struct {
	Attempted int64
	Accepted  int64
	Failed    int64
	Requests  int64
	Errors    []string
	Start     time.Time
	End       time.Time
	RoundTrip hist        // publish call duration, µs, per request
	Expect    expectation // what each connection should receive
}

// sender publishes one body; each publisher owns one.
type sender interface {
	send(ctx context.Context, url string, body []byte) error
	close()
}

// httpSender POSTs to the publish API.
type httpSender struct {
	client  *http.Client
	headers [][2]string
	failOn  []byte
	answer  []byte
}

func (h *httpSender) send(ctx context.Context, url string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
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
	if len(h.failOn) == 0 {
		_, _ = io.Copy(io.Discard, resp.Body)
	} else {
		b := bytes.NewBuffer(h.answer[:0])
		_, _ = b.ReadFrom(io.LimitReader(resp.Body, 64<<10))
		h.answer = b.Bytes()
		_, _ = io.Copy(io.Discard, resp.Body)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("publish: status %s", resp.Status)
	}
	if len(h.failOn) > 0 && bytes.Contains(h.answer, h.failOn) {
		return fmt.Errorf("publish: %.200s", h.answer)
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
// up to maxMsg) on its stdout: the line protocol of both the publish
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
	sc.Buffer(make([]byte, 64<<10), maxMsg)
	return in, sc, nil
}

func (c *cmdSender) send(_ context.Context, _ string, body []byte) error {
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
// concurrency. connUsers are the users of the established connections,
// the addressees of a targeted run.
//
// Each request carries Batch events (one unless set): a publisher claims
// that many consecutive numbers, waits until the last is due, and sends
// them in one body, each event stamped with its own due time, so that the
// time an event waits for its batch counts as latency.
func publish(ctx context.Context, cfg publishConfig, connUsers []uint64) (*pubResult, error) {
	if cfg.Control != "" {
		return publishInProcess(ctx, cfg, connUsers)
	}
	hdrs, err := parseHeaders(cfg.Headers)
	if err != nil {
		return nil, err
	}
	urlT, bodyT := parseTemplate(cfg.URL), parseTemplate(cfg.Body)
	batchT := parseTemplate(cfg.BatchBody)
	batch := max(cfg.Batch, 1)
	var addr *addressing
	if cfg.Targeted {
		if addr = newAddressing(connUsers); len(addr.users) == 0 {
			return nil, errors.New("targeted: no connected user to address")
		}
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
			senders[i] = &httpSender{client: client, headers: hdrs, failOn: []byte(cfg.FailOn)}
		}
	}
	res := &pubResult{Start: time.Now()}
	var next atomic.Uint64
	var mu sync.Mutex
	var wg sync.WaitGroup
	for p := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer senders[p].close()
			rng := rand.New(rand.NewPCG(uint64(p), uint64(res.Start.UnixNano())))
			var url, body, events, batchBuf []byte
			var sent []payload
			var s uint64
			for {
				last := next.Add(uint64(batch))
				first := last - uint64(batch) + 1
				if cfg.Count > 0 {
					if first > uint64(cfg.Count) {
						return
					}
					last = min(last, uint64(cfg.Count))
				}
				var due time.Time
				if cfg.Rate > 0 {
					due = res.Start.Add(time.Duration(float64(last-1) / cfg.Rate * 1e9))
					if d := time.Until(due); d > 0 && !benchwire.SleepCtx(ctx, d) {
						return
					}
				}
				if ctx.Err() != nil || (cfg.Duration > 0 && time.Since(res.Start) >= cfg.Duration) {
					return
				}
				now := time.Now()
				sent, events = sent[:0], events[:0]
				var user []byte
				for g := first; g <= last; g++ {
					s++
					pl := payload{g: g, p: uint64(p), s: s, t: now.UnixNano()}
					// At a set rate the event's time is when it was due, not
					// when a busy publisher got round to it: a server that
					// holds up its publishers is charged for the delay (no
					// coordinated omission).
					if cfg.Rate > 0 {
						pl.t = res.Start.Add(time.Duration(float64(g-1) / cfg.Rate * 1e9)).UnixNano()
					}
					if addr != nil {
						pl.u, pl.n = addr.pick(rng)
						user = addr.names[pl.u]
					}
					if g > first {
						events = append(events, ',')
					}
					events = bodyT.expand(events, pl, cfg.PayloadSize, user, nil)
					sent = append(sent, pl)
				}
				body = events
				if batch > 1 {
					batchBuf = batchT.expand(batchBuf[:0], payload{}, 0, nil, events)
					body = batchBuf
				}
				url = urlT.expand(url[:0], payload{}, 0, user, nil)
				err := senders[p].send(ctx, string(url), body)
				res.RoundTrip.record(uint64(time.Since(now).Microseconds()))
				n := int64(len(sent))
				atomic.AddInt64(&res.Requests, 1)
				atomic.AddInt64(&res.Attempted, n)
				if err != nil {
					atomic.AddInt64(&res.Failed, n)
					if addr != nil {
						for _, pl := range sent {
							addr.fail(pl.u, pl.n)
						}
					}
					mu.Lock()
					if len(res.Errors) < 5 && !slices.Contains(res.Errors, err.Error()) {
						res.Errors = append(res.Errors, err.Error())
					}
					mu.Unlock()
					continue
				}
				atomic.AddInt64(&res.Accepted, n)
			}
		}()
	}
	wg.Wait()
	res.End = time.Now()
	client.CloseIdleConnections()
	res.Expect = expectation{All: res.Accepted}
	if addr != nil {
		res.Expect = addr.expectation()
	}
	return res, nil
}
