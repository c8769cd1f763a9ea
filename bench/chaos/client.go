package main

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/ssekit/sse/sseclient"
)

// The channels a client follows, as indexes of its per-channel state.
const (
	chAll  = 0 // everyone's
	chUser = 1 // its user's
)

var chName = [2]string{"all", "user"}

// chType names an event of each channel in a note, without allocating.
var chType = [2]string{"chaos/all", "chaos/user"}

// payload is the data of every event the publisher sends. Every attempt
// of a publish carries the same payload (the hub takes an attempt with a
// different body under the same Idempotency-Key for another publish), so
// a client tells two stored copies of one publish apart by their
// positions, not their data.
type payload struct {
	Seq int64  `json:"seq"`
	To  string `json:"to"`            // "all" or the user's id
	End bool   `json:"end,omitempty"` // an end marker
	T   int64  `json:"t"`             // the publish's first attempt's start, Unix nanoseconds
}

// note is one event as a client saw it, kept in a short ring for the
// diagnosis of a fault.
type note struct {
	at   time.Time
	typ  string
	id   string
	node int
	seq  int64
}

// resyncSeen is one resync event: when it arrived and which of the
// client's channels it named.
type resyncSeen struct {
	at    time.Time
	chans [2]bool
	id    string
}

// stormWatch is what a resume storm measures of one client of the killed
// node, set when the node is killed. All fields are guarded by the
// subscriber's mu.
type stormWatch struct {
	killed int
	// The phases of its move: its stream ended (the client saw the
	// node's connection close), a new one answered 200 on another node,
	// and that stream's connected event arrived, after the hub had read
	// its channels' first pages.
	droppedAt time.Time
	delay     time.Duration // the reconnection delay the client drew then
	headersAt time.Time
	resumedAt time.Time
	resumed   bool // that connected event said the stream resumed
	// nextAll is when the first event to everyone published after the
	// resume arrived: replay is over and live events flow again.
	nextAll time.Time
	// The first event to its user published after the resume, and its
	// user's end marker: the time from publish to receipt of each.
	userGot, markerGot bool
	userLat, markerLat time.Duration
}

// subscriber is one client: a user's stream, reconnecting (with
// Last-Event-ID) to its home node while that lives, else to any live one.
// It checks what it can as events arrive and keeps only compact state, so
// that 10,000 of them fit in memory: which seqs it got (and got again at
// a later position), per channel the last seq and position, the resyncs,
// its connections.
type subscriber struct {
	idx  int
	user string
	home int // storm: the node it stays on while it lives; -1 for random

	mu         sync.Mutex
	node       int       // the node of its latest dial
	first      time.Time // arrival of its first connected event
	lastID     string    // the id of the last event that carried one
	lastSeq    [2]int64  // per channel, the highest seq delivered
	lastPos    [2]string // per channel, the furthest position delivered
	got        bitset    // the seqs delivered
	again      bitset    // the seqs delivered again at a later position: stored twice
	copies     int       // deliveries of a seq's second (third…) stored copy
	dups       int       // one stored event (a seq at one position) delivered again
	outOfOrder int       // a channel's seq that went back
	idsBack    int       // an event's id that did not move past the last one
	resyncBack int       // a resync's id that went back in some channel
	misrouted  int       // an event to another user
	resyncs    []resyncSeen
	conns      int // connected events
	resumes    int // connections that asked to resume (Last-Event-ID)
	watch      *stormWatch
	ring       [10]note
	nring      int
	diags      []string
}

// subscribe starts the clients; stop ends them and waits for them.
func subscribe(ctx context.Context, h *hubs, c config) ([]*subscriber, func()) {
	ctx, cancel := context.WithCancel(ctx)
	transport := newTransport(h, c.Sources)
	users, tokens := makeUsers(h.secret, c.Users)
	subs := make([]*subscriber, c.Clients)
	var wg sync.WaitGroup
	for i := range subs {
		s := &subscriber{idx: i, user: users[i%len(users)], home: -1, node: -1}
		if c.Storm {
			s.home = i % c.Nodes // spread evenly
		}
		subs[i] = s
		client := &sseclient.Client{
			HTTPClient:    &http.Client{Transport: transport},
			Header:        http.Header{"Authorization": {"Bearer " + tokens[i%len(tokens)]}},
			DefaultRetry:  500 * time.Millisecond,
			MaxDelay:      2 * time.Second,
			IdleTimeout:   45 * time.Second,
			OnStateChange: s.onState,
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Spread the first connections over a few seconds.
			spread := 2*time.Second + time.Duration(c.Clients/1000)*time.Second
			time.Sleep(time.Duration(mrand.Int64N(int64(spread))))
			_ = client.Subscribe(context.WithValue(ctx, subKey{}, s), "http://ssehub.chaos/sse/stream", s.handle)
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

// subKey carries the subscriber in its requests' context, for the dialer.
type subKey struct{}

// resumesTotal counts every connection that asked to resume, for the
// storm's commands per resume.
var resumesTotal atomic.Int64

// newTransport dials, whatever the URL says, the subscriber's home node or
// a random live one: that is how a client behind a load balancer
// reconnects after its node died. Keep-alive is off, so that each stream
// dials afresh. With sources > 1 the dials come from 127.0.0.1 …
// 127.0.0.<sources>, so that 10,000 streams do not run out of the
// ephemeral ports of one source address.
func newTransport(h *hubs, sources int) *http.Transport {
	dialers := make([]*net.Dialer, max(sources, 1))
	for k := range dialers {
		dialers[k] = &net.Dialer{Timeout: 5 * time.Second}
		if sources > 1 {
			dialers[k].LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+k))}
		}
	}
	return &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			s, _ := ctx.Value(subKey{}).(*subscriber)
			if s == nil {
				return nil, errors.New("dial without a subscriber")
			}
			i, ok := h.pick(s.home)
			if !ok {
				return nil, errors.New("no live node")
			}
			s.mu.Lock()
			s.node = i
			s.mu.Unlock()
			return dialers[s.idx%len(dialers)].DialContext(ctx, network, h.addr(i))
		},
		DisableKeepAlives:     true,
		ResponseHeaderTimeout: 10 * time.Second,
	}
}

// makeUsers returns n user ids and a JWT for each.
func makeUsers(secret string, n int) ([]string, []string) {
	users, tokens := make([]string, n), make([]string, n)
	for i := range users {
		users[i] = uuid.NewString()
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": users[i], "exp": time.Now().Add(6 * time.Hour).Unix()}).SignedString([]byte(secret))
		if err != nil {
			panic(err) // HMAC signing of a map cannot fail
		}
		tokens[i] = tok
	}
	return users, tokens
}

// onState counts the connections that ask to resume, and times the
// phases of a storm's move.
func (s *subscriber) onState(sc sseclient.StateChange) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if sc.State == sseclient.StateConnected && sc.Resumed {
		resumesTotal.Add(1)
		s.resumes++
	}
	w := s.watch
	switch {
	case w == nil:
	case sc.State == sseclient.StateReconnecting && w.droppedAt.IsZero():
		w.droppedAt, w.delay = now, sc.Delay
	case sc.State == sseclient.StateConnected && w.headersAt.IsZero() && s.node != w.killed:
		w.headersAt = now
	}
}

// waitStarted waits until every client's first stream is open.
func waitStarted(subs []*subscriber, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		n := 0
		for _, s := range subs {
			s.mu.Lock()
			if !s.first.IsZero() {
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
