package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/ssekit/sse/sseclient"
	"github.com/ssekit/sse/ssekit"
)

// A generator holds its share of the streams. It talks to the coordinator
// over stdin and stdout, one line each way:
//
//	→ "ready"            every stream has opened once
//	← "churn"            start churning
//	← "stop <id>"        stop churning; wait until every stream has the
//	                     event <id> (the last one published), then report
//	→ "result <json>"    the genResult
//
// It exits when its stdin closes, whatever it was doing.

// Churn actions.
const (
	actNone    = iota
	actResume  // close the stream and reopen it with Last-Event-ID
	actReplace // close it for good; a new user opens a fresh stream
)

// subscriber is one stream slot: a user and where its stream is.
type subscriber struct {
	g      *generatorState
	client *http.Client

	mu      sync.Mutex
	user    string
	token   string
	lastID  string // the last id received: where a resume starts
	lastSeq int64  // the last numbered event, -1 when none since a fresh start
	cancel  context.CancelFunc
	action  int
	opened  bool // the current stream has sent its connected event
}

// generatorState is one generator process's shared state.
type generatorState struct {
	c       config
	res     genResult
	resMu   sync.Mutex
	events  atomic.Int64
	gaps    atomic.Int64
	dups    atomic.Int64
	readyWG sync.WaitGroup
	finalID atomic.Pointer[string] // set by "stop"
}

func (g *generatorState) count(f func(r *genResult)) {
	g.resMu.Lock()
	f(&g.res)
	g.resMu.Unlock()
}

// token signs a subscriber token for user.
func (g *generatorState) token(user string) string {
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": user, "exp": time.Now().Add(6 * time.Hour).Unix(),
	}).SignedString([]byte(g.c.Secret))
	if err != nil {
		panic(err) // HMAC signing of a map cannot fail
	}
	return tok
}

// clientFor returns an HTTP client whose connections come from src.
func clientFor(src string) *http.Client {
	d := &net.Dialer{Timeout: 15 * time.Second}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	return &http.Client{Transport: &http.Transport{
		DialContext:           d.DialContext,
		ResponseHeaderTimeout: 30 * time.Second,
		MaxIdleConnsPerHost:   -1, // a closed stream's connection is not reused
		DisableCompression:    true,
	}}
}

// runGenerator holds c.Conns streams until told to stop.
func runGenerator(c config, n int) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g := &generatorState{c: c}
	var clients []*http.Client
	for _, s := range c.Src {
		clients = append(clients, clientFor(s))
	}
	subs := make([]*subscriber, c.Conns)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 100) // connection attempts in flight during the ramp
	g.readyWG.Add(c.Conns)
	for i := range subs {
		user := uuid.NewString()
		s := &subscriber{g: g, client: clients[(n+i)%len(clients)], user: user, token: g.token(user), lastSeq: -1}
		subs[i] = s
		g.res.Users++
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			s.run(ctx, func() { <-sem })
		}()
	}
	ready := make(chan struct{})
	go func() { g.readyWG.Wait(); close(ready) }()
	cmds := make(chan string)
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			cmds <- sc.Text()
		}
		close(cmds) // the coordinator went away: stop
	}()
	select {
	case <-ready:
		fmt.Println("ready")
	case <-time.After(c.Settle):
		cancel()
		return fmt.Errorf("generator %d: streams not all open within %v", n, c.Settle)
	case <-cmds:
		cancel()
		return nil
	}
	stopChurn := make(chan struct{})
	churning := false
	for cmd := range cmds {
		switch {
		case cmd == "churn" && !churning && c.Churn > 0:
			churning = true
			go churn(ctx, subs, c.Churn, stopChurn)
		case strings.HasPrefix(cmd, "stop "):
			if churning {
				close(stopChurn)
			}
			final := strings.TrimPrefix(cmd, "stop ")
			g.finalID.Store(&final)
			behind := waitCaughtUp(subs, final, c.Settle)
			cancel()
			wg.Wait()
			g.res.Behind = behind
			g.res.Events, g.res.Gaps, g.res.Dups = g.events.Load(), g.gaps.Load(), g.dups.Load()
			out, _ := json.Marshal(g.res)
			fmt.Printf("result %s\n", out)
			return nil
		}
	}
	return nil
}

// churn closes rate streams a second, chosen at random: half to resume,
// half to be replaced by a new user.
func churn(ctx context.Context, subs []*subscriber, rate float64, stop <-chan struct{}) {
	t := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-stop:
			return
		case <-t.C:
		}
		act := actResume
		if i%2 == 1 {
			act = actReplace
		}
		subs[rand.IntN(len(subs))].interrupt(act)
	}
}

// interrupt ends s's current stream for act, if it is open.
func (s *subscriber) interrupt(act int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cancel != nil && s.opened && s.action == actNone {
		s.action = act
		s.cancel()
	}
}

// caughtUp reports whether s has the event final (or a later position).
func (s *subscriber) caughtUp(final string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastID != "" && ssekit.CompareIDs(s.lastID, final) >= 0
}

// waitCaughtUp waits until every stream has the final event, at most
// within; it returns how many do not.
func waitCaughtUp(subs []*subscriber, final string, within time.Duration) int {
	deadline := time.Now().Add(within)
	for {
		behind := 0
		for _, s := range subs {
			if !s.caughtUp(final) {
				behind++
			}
		}
		if behind == 0 || time.Now().After(deadline) {
			return behind
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// run keeps s's stream open until ctx is done, reopening it after each
// end: resumed from its last id, or fresh for a new user after a replace.
func (s *subscriber) run(ctx context.Context, rampDone func()) {
	first := true
	for ctx.Err() == nil {
		retry := s.stream(ctx, func() {
			if first {
				first = false
				rampDone()
				s.g.readyWG.Done()
			}
		})
		select {
		case <-ctx.Done():
		case <-time.After(retry):
		}
	}
	if first {
		rampDone()
	}
}

// stream opens one stream and reads it until it ends; it returns how long
// to wait before the next.
func (s *subscriber) stream(ctx context.Context, opened func()) time.Duration {
	g := s.g
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.mu.Lock()
	s.cancel, s.action, s.opened = cancel, actNone, false
	lastID := s.lastID
	tok := s.token
	s.mu.Unlock()

	req, _ := http.NewRequestWithContext(sctx, http.MethodGet, g.c.Hub+g.c.Prefix+"/stream", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			g.count(func(r *genResult) { r.ConnectErrs++ })
		}
		return 500*time.Millisecond + rand.N(500*time.Millisecond)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		g.count(func(r *genResult) { r.ConnectErrs++ })
		return time.Second
	}
	dec := sseclient.NewDecoder(resp.Body)
	dec.SetLastEventID(lastID)
	openedNow := false
	for {
		ev, err := dec.Next()
		if err != nil {
			break
		}
		switch ev.Type {
		case ssekit.TypeConnected:
			openedNow = true
			var d struct{ Resumed bool }
			_ = json.Unmarshal(ev.Data, &d)
			s.mu.Lock()
			s.opened = true
			s.mu.Unlock()
			g.count(func(r *genResult) {
				r.Streams++
				if lastID == "" {
					r.Fresh++
				} else if d.Resumed {
					r.Resumed++
				}
			})
			opened()
		case ssekit.TypeResync:
			g.count(func(r *genResult) { r.Resyncs++ })
			s.mu.Lock()
			s.lastSeq = -1
			s.mu.Unlock()
		case "soak":
			var d struct{ Seq int64 }
			if err := json.Unmarshal(ev.Data, &d); err != nil {
				g.dups.Add(1) // unreadable: count it against us
				continue
			}
			g.events.Add(1)
			s.mu.Lock()
			switch {
			case s.lastSeq < 0:
			case d.Seq == s.lastSeq+1:
			case d.Seq <= s.lastSeq:
				g.dups.Add(1)
			default:
				g.gaps.Add(d.Seq - s.lastSeq - 1)
			}
			if s.lastID != "" && ev.ID != "" && ssekit.CompareIDs(ev.ID, s.lastID) <= 0 {
				g.dups.Add(1)
			}
			s.lastSeq = max(s.lastSeq, d.Seq)
			s.mu.Unlock()
		}
		if id := dec.LastEventID(); id != "" {
			s.mu.Lock()
			s.lastID = id
			s.mu.Unlock()
		}
	}
	retry, ok := dec.Retry()
	if !ok {
		retry = 500 * time.Millisecond
	}
	s.mu.Lock()
	act := s.action
	s.cancel = nil
	s.mu.Unlock()
	switch {
	case ctx.Err() != nil:
	case !openedNow:
		g.count(func(r *genResult) { r.Refused++ })
		return retry
	case act == actReplace:
		user := uuid.NewString()
		s.mu.Lock()
		s.user, s.token, s.lastID, s.lastSeq = user, g.token(user), "", -1
		s.mu.Unlock()
		g.count(func(r *genResult) { r.Users++ })
		return 0
	case act == actResume:
		return 0
	default:
		g.count(func(r *genResult) { r.Unplanned++ })
	}
	// Reconnect after the hub's retry hint, capped as a browser would.
	return min(retry, 5*time.Second)
}
