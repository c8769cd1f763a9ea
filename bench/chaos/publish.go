package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// pub is one publish: what was sent, and which attempt was accepted.
type pub struct {
	Seq int64
	To  string // "all" or the user's id
	End bool   // an end marker
	// Attempt is the attempt that got an id back; -1 if none did (given
	// up). Earlier attempts got no answer or an error, and may still have
	// been stored: their deliveries are orphans.
	Attempt int
	// Start and Done bound the accepted attempt's request: the event was
	// stored between them.
	Start, Done time.Time
}

// channel is the index of the channel p is addressed to.
func (p pub) channel() int {
	if p.To == "all" {
		return chAll
	}
	return chUser
}

// publisher publishes events one after the other, so that within a
// channel a later seq is a later event, through a random live node.
type publisher struct {
	h  *hubs
	hc *http.Client

	mu      sync.Mutex
	pubs    []pub // pubs[seq-1]
	fails   int   // attempts that failed
	givenUp int   // publishes with no accepted attempt
	// failed says why each failed attempt, by (seq, attempt), failed:
	// for those that were stored all the same (orphans), the summary
	// shows how the answer was lost.
	failed map[[2]int64]string
}

// newPublisher returns a publisher to the nodes of h.
func newPublisher(h *hubs) *publisher {
	return &publisher{h: h, hc: &http.Client{Timeout: 5 * time.Second}, failed: map[[2]int64]string{}}
}

// reserve assigns the next seq to a publish to to.
func (p *publisher) reserve(to string, end bool) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pubs = append(p.pubs, pub{Seq: int64(len(p.pubs) + 1), To: to, End: end, Attempt: -1})
	return int64(len(p.pubs))
}

// snapshot returns the publishes so far, indexed by seq-1.
func (p *publisher) snapshot() ([]pub, int, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]pub(nil), p.pubs...), p.fails, p.givenUp
}

// failure says why attempt att of seq failed ("" if it did not).
func (p *publisher) failure(seq int64, att int) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.failed[[2]int64{seq, int64(att)}]
}

// lookup returns publish seq.
func (p *publisher) lookup(seq int64) pub {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pubs[seq-1]
}

// send publishes seq until an attempt is accepted, each attempt on a
// random live node, for a minute at most: a failed publish was not
// published (the contract), so a retry is a new event, never a duplicate
// of an accepted one.
func (p *publisher) send(ctx context.Context, seq int64) {
	e := p.lookup(seq)
	giveUp := time.Now().Add(time.Minute)
	for attempt := 0; ctx.Err() == nil && time.Now().Before(giveUp); attempt++ {
		if attempt > 0 {
			p.mu.Lock()
			p.fails++
			p.mu.Unlock()
			time.Sleep(200 * time.Millisecond)
		}
		start := time.Now()
		if err := p.attempt(ctx, e, attempt, start); err != nil {
			p.mu.Lock()
			p.failed[[2]int64{seq, int64(attempt)}] = fmt.Sprintf("%s after %v", err, time.Since(start).Round(time.Millisecond))
			p.mu.Unlock()
			continue
		}
		p.mu.Lock()
		p.pubs[seq-1].Attempt, p.pubs[seq-1].Start, p.pubs[seq-1].Done = attempt, start, time.Now()
		p.mu.Unlock()
		return
	}
	logf("publish %d given up", seq)
	p.mu.Lock()
	p.givenUp++
	p.mu.Unlock()
}

// attempt makes one publish request; it returns nil when the request got
// an id, else what went wrong. Everyone is only ever asked for: a body
// without "all": true or an addressee is refused.
func (p *publisher) attempt(ctx context.Context, e pub, attempt int, start time.Time) error {
	data := payload{Seq: e.Seq, Attempt: attempt, To: e.To, End: e.End, T: start.UnixNano()}
	body := map[string]any{"type": "chaos", "data": data}
	if e.To == "all" {
		body["all"] = true
	} else {
		body["users"] = []string{e.To}
	}
	raw, _ := json.Marshal(body)
	i, ok := p.h.pick(-1)
	if !ok {
		return errors.New("no live node")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+p.h.addr(i)+"/sse/publish", strings.NewReader(string(raw)))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+p.h.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.hc.Do(req)
	if err != nil {
		return fmt.Errorf("node%d: %w", i, err)
	}
	defer resp.Body.Close()
	text, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return fmt.Errorf("node%d: read the answer: %w", i, err)
	}
	var answer struct{ ID string }
	if resp.StatusCode != http.StatusOK || json.Unmarshal(text, &answer) != nil || answer.ID == "" {
		return fmt.Errorf("node%d: %d %s", i, resp.StatusCode, bytes.TrimSpace(text))
	}
	return nil
}

// run publishes at rate until stop is closed (checked between publishes,
// so that none is cut short) or ctx is done: odd seqs to everyone, even
// ones to a user drawn by pickUser. It keeps to a schedule rather than a
// ticker, and catches up (by a second's worth at most) when it fell
// behind: in a process with 10,000 streams, every event to everyone wakes
// 10,000 goroutines, and a ticker's ticks would be dropped while the
// publisher waits its turn.
func (p *publisher) run(ctx context.Context, stop <-chan struct{}, rate float64, pickUser func() string) {
	interval := time.Duration(float64(time.Second) / rate)
	next := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for n := 0; ; n++ {
		timer.Reset(max(time.Until(next), 0))
		select {
		case <-ctx.Done():
			return
		case <-stop:
			return
		case <-timer.C:
		}
		next = next.Add(interval)
		if time.Since(next) > time.Second {
			next = time.Now()
		}
		to := "all"
		if n%2 == 1 {
			to = pickUser()
		}
		p.send(ctx, p.reserve(to, false))
	}
}

// markers publishes the end markers: one to everyone, then one to every
// user, four at a time (they are on different channels, so their order
// does not matter). It returns the markers' seqs: everyone's, and by user.
func (p *publisher) markers(ctx context.Context, users []string) (int64, map[string]int64) {
	all := p.reserve("all", true)
	p.send(ctx, all)
	byUser := make(map[string]int64, len(users))
	for _, u := range users {
		byUser[u] = p.reserve(u, true)
	}
	work := make(chan int64)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for seq := range work {
				p.send(ctx, seq)
			}
		})
	}
	for _, u := range users {
		work <- byUser[u]
	}
	close(work)
	wg.Wait()
	return all, byUser
}
