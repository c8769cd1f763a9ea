package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"strconv"
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
	// up). Every attempt sends the same body under the same
	// Idempotency-Key, so the hub stores the publish once: an earlier
	// attempt that got no answer may be the one stored, and the accepted
	// answer is then a replay of it (Replayed), with its id.
	Attempt  int
	ID       string
	Replayed bool
	// Start is the first attempt's start and Done the accepted answer:
	// the event was stored between them. Sent is the accepted attempt's
	// start, for the time of a publish request.
	Start, Sent, Done time.Time
}

// channel is the index of the channel p is addressed to.
func (p pub) channel() int {
	if p.To == "all" {
		return chAll
	}
	return chUser
}

// publisher publishes events one after the other, so that within a
// channel a later seq is a later event, through a random live node. Every
// publish has its own Idempotency-Key (the run's and its seq), which each
// of its attempts sends.
type publisher struct {
	h         *hubs
	hc        *http.Client
	keyPrefix string // starts this run's Idempotency-Keys
	// loseEvery: about one publish in loseEvery (0: none), drawn at
	// random so that both kinds of channel get some, drops the answer to
	// its first attempt, as a connection cut after the hub stored it
	// would, and retries.
	loseEvery int

	mu      sync.Mutex
	pubs    []pub // pubs[seq-1]
	fails   int   // attempts that failed
	givenUp int   // publishes with no accepted attempt
	refused int   // publishes answered a 4xx, and given up: not a doubt
	// conflicts counts 422 answers: a key reused for a different
	// publish, which this publisher never does.
	conflicts int
	dropped   int // answers dropped for loseEvery
	// failed says why each failed attempt, by (seq, attempt), failed:
	// for a publish stored twice all the same, the summary shows how its
	// answers were lost.
	failed map[[2]int64]string
}

// newPublisher returns a publisher to the nodes of h that drops the first
// answer of about one publish in loseEvery (0: none).
func newPublisher(h *hubs, loseEvery int) *publisher {
	return &publisher{h: h, hc: &http.Client{Timeout: 5 * time.Second}, loseEvery: loseEvery, keyPrefix: "chaos-" + randHex(6), failed: map[[2]int64]string{}}
}

// reserve assigns the next seq to a publish to to.
func (p *publisher) reserve(to string, end bool) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pubs = append(p.pubs, pub{Seq: int64(len(p.pubs) + 1), To: to, End: end, Attempt: -1})
	return int64(len(p.pubs))
}

// pubStats are the publisher's counts, for the summary.
type pubStats struct {
	fails, givenUp, refused, conflicts, dropped int
}

// snapshot returns the publishes so far, indexed by seq-1, and the counts.
func (p *publisher) snapshot() ([]pub, pubStats) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]pub(nil), p.pubs...), pubStats{p.fails, p.givenUp, p.refused, p.conflicts, p.dropped}
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

// send publishes seq until an attempt is accepted, for a minute at most
// (well within the hub's --idempotency-window): on any doubt — an error,
// a timeout, a 5xx, a connection reset — it retries the same body under
// the same Idempotency-Key on another live node, and the hub stores the
// publish once whichever attempts reached it. A 4xx is no doubt: the
// publish is given up.
func (p *publisher) send(ctx context.Context, seq int64) {
	e := p.lookup(seq)
	key := p.keyPrefix + "-" + strconv.FormatInt(seq, 10)
	first := time.Now()
	body := publishBody(e, first)
	giveUp := first.Add(time.Minute)
	node := -1
	for attempt := 0; ctx.Err() == nil && time.Now().Before(giveUp); attempt++ {
		if attempt > 0 {
			p.mu.Lock()
			p.fails++
			p.mu.Unlock()
			time.Sleep(200 * time.Millisecond)
		}
		start := time.Now()
		a := p.attempt(ctx, body, key, node)
		node = a.node
		if a.err == nil && attempt == 0 && p.loseEvery > 0 && mrand.IntN(p.loseEvery) == 0 {
			a.err = fmt.Errorf("node%d: answer %s dropped (-lose-every %d)", a.node, a.id, p.loseEvery)
			p.mu.Lock()
			p.dropped++
			p.mu.Unlock()
		}
		if a.err != nil {
			p.mu.Lock()
			p.failed[[2]int64{seq, int64(attempt)}] = fmt.Sprintf("%s after %v", a.err, time.Since(start).Round(time.Millisecond))
			p.mu.Unlock()
			if a.refused() {
				logf("publish %d refused: %v", seq, a.err)
				p.mu.Lock()
				p.refused++
				p.givenUp++
				if a.status == http.StatusUnprocessableEntity {
					p.conflicts++
				}
				p.mu.Unlock()
				return
			}
			continue
		}
		p.mu.Lock()
		q := &p.pubs[seq-1]
		q.Attempt, q.ID, q.Replayed = attempt, a.id, a.replayed
		q.Start, q.Sent, q.Done = first, start, time.Now()
		p.mu.Unlock()
		return
	}
	logf("publish %d given up", seq)
	p.mu.Lock()
	p.givenUp++
	p.mu.Unlock()
}

// publishBody is the body of every attempt of e, first being its first
// attempt's start: one body, so that the hub takes a retry for the same
// publish. Everyone is only ever asked for: a body without "all": true or
// an addressee is refused.
func publishBody(e pub, first time.Time) string {
	body := map[string]any{"type": "chaos", "data": payload{Seq: e.Seq, To: e.To, End: e.End, T: first.UnixNano()}}
	if e.To == "all" {
		body["all"] = true
	} else {
		body["users"] = []string{e.To}
	}
	raw, _ := json.Marshal(body)
	return string(raw)
}

// attemptResult is what one publish request got: on node, the id and
// whether it is a replay, or the status (0 without an answer) and what
// went wrong.
type attemptResult struct {
	node     int
	id       string
	replayed bool
	status   int
	err      error
}

// refused reports whether the answer is no doubt: a 4xx (but 429) says
// the hub did not publish and never will, so a retry would not help.
func (a attemptResult) refused() bool {
	return a.status >= 400 && a.status < 500 && a.status != http.StatusTooManyRequests
}

// attempt makes one publish request, on a live node other than last (the
// node of the previous attempt; -1 for none) when there is one.
func (p *publisher) attempt(ctx context.Context, body, key string, last int) attemptResult {
	i, ok := p.h.pickOther(last)
	if !ok {
		return attemptResult{node: last, err: errors.New("no live node")}
	}
	a := attemptResult{node: i}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+p.h.addr(i)+"/sse/publish", strings.NewReader(body))
	if err != nil {
		a.err = err
		return a
	}
	req.Header.Set("Authorization", "Bearer "+p.h.key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := p.hc.Do(req)
	if err != nil {
		a.err = fmt.Errorf("node%d: %w", i, err)
		return a
	}
	defer resp.Body.Close()
	text, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		a.err = fmt.Errorf("node%d: read the answer: %w", i, err)
		return a
	}
	a.status = resp.StatusCode
	var answer struct {
		ID       string
		Replayed bool
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(text, &answer) != nil || answer.ID == "" {
		a.err = fmt.Errorf("node%d: %d %s", i, resp.StatusCode, bytes.TrimSpace(text))
		return a
	}
	a.id, a.replayed = answer.ID, answer.Replayed
	return a
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
