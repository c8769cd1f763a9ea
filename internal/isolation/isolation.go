// Package isolation is a randomized test of who receives what, for any
// broker: Run serves three tenants' users, a tenant's kiosk and anonymous
// clients from one or more hubs, publishes thousands of events to random
// targets of every kind (everyone, users, tenants, topics, connections,
// and combinations of them) while connections come and go, some resuming
// with Last-Event-ID on another node and some with other topics, and
// checks that each connection received exactly the events of the channels
// it followed: none of another tenant, none of a topic it was not
// allowed, none twice, and, across a lineage of resumes, none missed.
//
// # How "exactly" is made exact
//
// Which events a connection must get depends on when it connected: an
// event published while a stream opens may or may not be part of it. Run
// takes that ambiguity away instead of tolerating it: publishers hold a
// shared lock for each publish, and every change of the set of
// connections — a connect, up to the connection reading its connected
// event; a close; a refused request — holds it alone. Each connection's
// expectations are then an interval of the run's log: the publishes
// after it read its connected event and before it closed (plus, for a
// resume, the publishes since its predecessor closed, in the channels
// both followed).
//
// Before a connection closes, Run publishes a marker to each of its
// channels and one to its id, and waits for them: each channel is
// delivered in order, so once the markers are in, every earlier event of
// its channels has been written to it, and a duplicate or a stray event
// that came late would have been seen.
package isolation

import (
	"context"
	"encoding/json"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssekit/sse/internal/ssetest"
	"github.com/ssekit/sse/ssekit"
)

// Options configure Run. The zero value of every field but Broker means
// its default.
type Options struct {
	// Broker returns the broker of node i, called once per node before the
	// hubs start: the same broker for every node (hubs that share one
	// memory broker), or one of its own per node on a shared Redis. The
	// brokers are the caller's to close, after Run returns.
	Broker func(t testing.TB, node int) ssekit.Broker

	// Nodes is how many hubs serve the streams, each behind its own HTTP
	// server. Defaults to 2.
	Nodes int

	// Publishes is how many random publishes the run makes, besides the
	// markers of its barriers. Defaults to 10,000.
	Publishes int

	// Publishers is how many goroutines publish at once, each on random
	// nodes. Defaults to 3.
	Publishers int

	// Steps is how many times connections come or go, or a request is
	// refused, spread over the publishes. Defaults to Publishes/40.
	Steps int

	// Seed seeds the run's choices; 0 draws one. It is logged, but the
	// interleaving of publishers differs from run to run.
	Seed uint64

	// Timeout bounds the whole run. Defaults to 4m.
	Timeout time.Duration

	// Hub is the configuration of every hub, whose Broker, AuthorizeTopic
	// and client limits Run sets. A zero BufferSize is 4096: the run
	// publishes in bursts, and a connection cut for overflow is a failure.
	Hub ssekit.Config
}

// Result counts what a run did.
type Result struct {
	Publishes, Markers int // publishes made: random ones and barriers' markers
	Streams            int // connections opened
	Resumes            int // of them, resumes with Last-Event-ID
	ChangedResumes     int // of the resumes, with other topics than before
	Refusals           int // requests refused as the table says
	Delivered          int // events received and checked
	Problems           int // failures reported
}

// pub is one publish of the run, by its seq (its index in the log, and
// its event's data).
type pub struct {
	to       ssekit.Target
	channels []string // the channels to addresses, sorted
	clients  []string
	marker   bool
	failed   bool
}

// lineage is a client and the streams it opened one after another, each
// resuming from the last id of the one before.
type lineage struct {
	who      identity
	asked    []string
	channels []string // what its last stream followed
	lastID   string
	endedAt  int  // where in the log its last stream ended
	open     bool // a stream of it is open
	broken   bool // its last stream failed: its position is unknown
}

// run is one Run. The test's goroutine (the run goroutine) makes the
// steps, reads the streams and checks them; Publishers goroutines publish
// at random meanwhile. The stream clients' goroutines only hand events
// over (stream.pending).
type run struct {
	t    *testing.T
	opts Options
	ctx  context.Context
	hubs []*ssekit.Hub
	urls []string
	hc   *http.Client
	rng  *rand.Rand // the run goroutine's
	res  Result     // Publishes and Markers under logMu, the rest the run goroutine's
	bad  problems

	// gate is held shared by each publish, and alone by each change to
	// the set of connections and each check (see the package doc).
	gate sync.RWMutex
	// clientIDs are the open streams' ids, stale a closed one's: the
	// connections that random publishes address. Written under gate
	// alone, read under gate shared.
	clientIDs []string
	stale     string
	// started counts the random publishes started.
	started atomic.Int64

	logMu sync.Mutex
	log   []pub

	// Owned by the run goroutine.
	streams  []*stream // open
	lineages []*lineage
}

// Run runs the isolation test; it fails t for each problem found (the
// first ones in full, then counts by kind) and returns what it did.
func Run(t *testing.T, opts Options) Result {
	t.Helper()
	if opts.Broker == nil {
		t.Fatal("isolation: Options.Broker is nil")
	}
	orDefault(&opts.Nodes, 2)
	orDefault(&opts.Publishes, 10_000)
	orDefault(&opts.Publishers, 3)
	orDefault(&opts.Steps, opts.Publishes/40)
	orDefault(&opts.Timeout, 4*time.Minute)
	orDefault(&opts.Hub.BufferSize, 4096)
	if opts.Seed == 0 {
		opts.Seed = rand.Uint64()
	}
	began := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), opts.Timeout)
	defer cancel()
	r := &run{t: t, opts: opts, ctx: ctx, rng: rand.New(rand.NewPCG(opts.Seed, 0))}
	r.bad.kinds = map[string]int{}
	transport := &http.Transport{MaxIdleConnsPerHost: 64}
	r.hc = &http.Client{Transport: transport}
	defer transport.CloseIdleConnections()
	r.startNodes()
	defer r.stopNodes()

	var publishers sync.WaitGroup
	for i := range opts.Publishers {
		publishers.Go(func() { r.publisher(uint64(i) + 1) })
	}
	defer func() {
		cancel() // stops the publishers, if the run ends early
		publishers.Wait()
	}()
	for step := 0; step < opts.Steps && ctx.Err() == nil; step++ {
		// This step's share of the publishes first.
		want := int64((step + 1) * opts.Publishes / (opts.Steps + 1))
		for r.started.Load() < want && ctx.Err() == nil {
			time.Sleep(200 * time.Microsecond)
		}
		r.gate.Lock()
		r.drainAll()
		r.step()
		r.gate.Unlock()
	}
	publishers.Wait()
	if ctx.Err() != nil {
		r.bad.add("out of time", "the run did not finish within %v (step or publisher stuck)", opts.Timeout)
	}
	r.gate.Lock()
	r.finish()
	r.gate.Unlock()
	for n := range r.hubs {
		r.waitCount(n)
	}

	r.res.Problems = r.bad.total()
	t.Logf("isolation: seed %d, %d nodes, %v: %d publishes + %d markers, %d streams (%d resumes, %d with other topics), %d refusals, %d events checked",
		opts.Seed, opts.Nodes, time.Since(began).Round(time.Millisecond), r.res.Publishes, r.res.Markers, r.res.Streams,
		r.res.Resumes, r.res.ChangedResumes, r.res.Refusals, r.res.Delivered)
	r.bad.report(t)
	return r.res
}

func orDefault[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

// startNodes starts a hub on each node's broker, behind its own server.
func (r *run) startNodes() {
	t := r.t
	for i := range r.opts.Nodes {
		cfg := r.opts.Hub
		cfg.Broker = r.opts.Broker(t, i)
		cfg.AuthorizeTopic = r.authorize
		cfg.MaxClients, cfg.MaxClientsPerUser = -1, -1
		if cfg.Logger == nil {
			cfg.Logger = slog.New(slog.NewTextHandler(logWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
		}
		hub, err := ssekit.New(cfg)
		if err != nil {
			t.Fatalf("node %d: ssekit.New: %v", i, err)
		}
		srv := httptest.NewServer(hub.Handler(ssekit.HandlerOptions{Identify: func(req *http.Request) (ssekit.Identity, error) {
			return identify(req.Header.Get("X-User")), nil
		}}))
		r.hubs = append(r.hubs, hub)
		r.urls = append(r.urls, srv.URL)
		t.Cleanup(func() {
			hub.Close() // first: the server's Close waits for open streams
			srv.Close()
		})
	}
}

// stopNodes ends the streams still open and closes the hubs.
func (r *run) stopNodes() {
	for _, s := range r.streams {
		s.close()
	}
	for _, h := range r.hubs {
		h.Close()
	}
}

type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", p)
	return len(p), nil
}

// authorize is every hub's TopicAuthorizer: the table of world.go. It
// also checks that the hub hands it the identity that Identify found.
func (r *run) authorize(_ context.Context, who ssekit.Identity, topic string) (bool, error) {
	key := who.User
	if key == "" && who.Tenant != "" {
		key = "kiosk@" + who.Tenant
	}
	if want := identify(key); who.Tenant != want.Tenant || !slices.Equal(who.Topics, want.Topics) {
		r.bad.add("authorizer", "the authorizer was asked about %q for %+v, want %+v", topic, who, want)
	}
	return allowed(who, topic), nil
}

// publisher publishes random events until the run has made its
// Publishes.
func (r *run) publisher(stream uint64) {
	rng := rand.New(rand.NewPCG(r.opts.Seed, stream))
	for r.ctx.Err() == nil {
		r.gate.RLock()
		if r.started.Add(1) > int64(r.opts.Publishes) {
			r.gate.RUnlock()
			return
		}
		r.publish(rng.IntN(len(r.hubs)), randomTarget(rng, r.clientIDs, r.stale), false)
		r.gate.RUnlock()
	}
}

// publish logs a publish and makes it on node; it returns its seq.
func (r *run) publish(node int, to ssekit.Target, marker bool) int {
	p := pub{to: to, channels: targetChannels(to), clients: to.Clients, marker: marker}
	r.logMu.Lock()
	seq := len(r.log)
	r.log = append(r.log, p)
	if marker {
		r.res.Markers++
	} else {
		r.res.Publishes++
	}
	r.logMu.Unlock()
	if _, err := r.hubs[node].Publish(r.ctx, to, ssekit.Event{Type: "p", Data: seq}); err != nil {
		r.logMu.Lock()
		r.log[seq].failed = true
		r.logMu.Unlock()
		r.bad.add("publish failed", "publish %d %+v on node %d: %v", seq, to, node, err)
	}
	return seq
}

// logLen returns how many publishes were logged: under gate alone, the
// boundary between what came before and what comes after.
func (r *run) logLen() int {
	r.logMu.Lock()
	defer r.logMu.Unlock()
	return len(r.log)
}

// step changes the set of connections once: opens one, resumes one,
// closes one, or makes a request the hub must refuse.
func (r *run) step() {
	switch k := r.rng.IntN(100); {
	case len(r.streams) < 4 || (len(r.streams) < 20 && k < 25):
		r.openFresh()
	case len(r.streams) < 20 && k < 50:
		r.resume()
	case len(r.streams) > 20 || k < 88:
		r.closeStream(r.streams[r.rng.IntN(len(r.streams))], true)
	default:
		r.refuse()
	}
}

// openFresh opens a stream of a random identity, asking for some of the
// topics it may follow.
func (r *run) openFresh() {
	ids := identities()
	id := ids[r.rng.IntN(len(ids))]
	ok, _ := allowedTopics(identify(id.key))
	lin := &lineage{who: id, asked: pickTopics(r.rng, ok, r.rng.IntN(4))}
	r.lineages = append(r.lineages, lin)
	r.open(lin)
}

// resume reopens a closed lineage on a random node with its last id:
// mostly with the same topics, sometimes with others it may follow.
func (r *run) resume() {
	var closed []*lineage
	for _, l := range r.lineages {
		if !l.open && !l.broken {
			closed = append(closed, l)
		}
	}
	if len(closed) == 0 {
		r.openFresh()
		return
	}
	lin := closed[r.rng.IntN(len(closed))]
	if r.rng.IntN(4) == 0 {
		ok, _ := allowedTopics(identify(lin.who.key))
		lin.asked = pickTopics(r.rng, ok, r.rng.IntN(4))
	}
	r.open(lin)
}

// open opens the next stream of lin on a random node and reads its
// connected event.
func (r *run) open(lin *lineage) {
	who := identify(lin.who.key)
	s := &stream{
		n: r.res.Streams, lin: lin, node: r.rng.IntN(len(r.hubs)), who: lin.who,
		asked: slices.Clone(lin.asked), channels: channelsOf(who, lin.asked),
		replayFrom: -1, end: -1, got: map[int]int{},
	}
	s.follows = map[string]bool{}
	for _, ch := range s.channels {
		s.follows[ch] = true
	}
	if lin.lastID != "" {
		r.res.Resumes++
		if !slices.Equal(s.channels, lin.channels) {
			r.res.ChangedResumes++
		}
		s.replayFrom, s.replayed = lin.endedAt, map[string]bool{}
		for _, ch := range lin.channels {
			if s.follows[ch] {
				s.replayed[ch] = true
			}
		}
	}
	r.res.Streams++
	lin.open = true
	s.run(r.ctx, r.hc, r.urls[s.node], lin.lastID)
	if !r.await(s, "its connected event", func() bool { return s.opened }) {
		s.close()
		lin.open, lin.broken = false, true
		return
	}
	s.start = r.logLen()
	r.streams = append(r.streams, s)
	r.clientIDs = append(r.clientIDs, s.clientID)
	r.checkCount(s.node)
}

// closeStream closes s after a barrier (see the package doc), and checks
// what it received.
func (r *run) closeStream(s *stream, barrier bool) {
	if barrier {
		markers := r.barrier(s.channels, []string{s.clientID})
		r.awaitMarkers(s, markers)
	}
	s.end = r.logLen()
	r.verify(s)
	s.close()
	r.streams = slices.DeleteFunc(r.streams, func(o *stream) bool { return o == s })
	r.clientIDs = slices.DeleteFunc(r.clientIDs, func(id string) bool { return id == s.clientID })
	r.stale = s.clientID
	lin := s.lin
	lin.open, lin.channels, lin.endedAt = false, s.channels, s.end
	if s.lastID != "" {
		lin.lastID = s.lastID
	}
	r.waitCount(s.node)
}

// barrier publishes a marker to each of channels, and one to clients;
// it returns the markers' seqs by channel ("" for the clients').
func (r *run) barrier(channels, clients []string) map[string]int {
	out := map[string]int{}
	for _, ch := range channels {
		out[ch] = r.publish(r.rng.IntN(len(r.hubs)), markerTarget(ch), true)
	}
	if len(clients) > 0 {
		out[""] = r.publish(r.rng.IntN(len(r.hubs)), ssekit.Target{Clients: clients}, true)
	}
	return out
}

// awaitMarkers waits for the markers of s's channels and its id.
func (r *run) awaitMarkers(s *stream, markers map[string]int) {
	need := []int{markers[""]}
	for _, ch := range s.channels {
		need = append(need, markers[ch])
	}
	if !r.await(s, "its barrier's markers", func() bool {
		for _, seq := range need {
			if s.got[seq] == 0 {
				return false
			}
		}
		return true
	}) {
		s.lin.broken = true
	}
}

// finish closes every open stream after one barrier for all of them.
func (r *run) finish() {
	r.drainAll()
	var channels, clients []string
	for _, s := range r.streams {
		channels = append(channels, s.channels...)
		clients = append(clients, s.clientID)
	}
	slices.Sort(channels)
	markers := r.barrier(slices.Compact(channels), clients)
	for _, s := range r.streams {
		r.awaitMarkers(s, markers)
	}
	for _, s := range slices.Clone(r.streams) {
		r.closeStream(s, false)
	}
}

// refuse makes a request the table refuses — a topic the identity may
// not follow, or a name that is not one — and checks the refusal and
// that nothing was registered.
func (r *run) refuse() {
	ids := identities()
	id := ids[r.rng.IntN(len(ids))]
	ok, forbidden := allowedTopics(identify(id.key))
	node := r.rng.IntN(len(r.hubs))
	asked := pickTopics(r.rng, forbidden, 1+r.rng.IntN(2))
	want, code := http.StatusForbidden, ssekit.CodeTopicForbidden
	wantTopics := slices.Sorted(slices.Values(asked))
	if r.rng.IntN(6) == 0 {
		asked = []string{"bad topic"}
		want, code, wantTopics = http.StatusBadRequest, ssekit.CodeInvalidTopic, asked
	}
	asked = append(asked, pickTopics(r.rng, ok, r.rng.IntN(2))...)
	req, err := http.NewRequestWithContext(r.ctx, http.MethodGet, r.urls[node]+"?"+url.Values{ssekit.TopicParam: asked}.Encode(), nil)
	if err != nil {
		r.bad.add("refusal", "request for %q: %v", asked, err)
		return
	}
	req.Header.Set("X-User", id.key)
	resp, err := r.hc.Do(req)
	if err != nil {
		r.bad.add("refusal", "request for %q as %q: %v", asked, id.key, err)
		return
	}
	defer resp.Body.Close()
	var body ssekit.ErrorBody
	derr := json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != want || derr != nil || body.Error != code || !slices.Equal(body.Topics, wantTopics) {
		r.bad.add("refusal", "request for %q as %q: %d %+v (%v), want %d %s naming %q", asked, id.key, resp.StatusCode, body, derr, want, code, wantTopics)
		return
	}
	r.res.Refusals++
	r.checkCount(node)
}

// checkCount checks that node's hub counts the run's open streams on it.
func (r *run) checkCount(node int) {
	if got, want := r.hubs[node].GetTotalClientCount(), r.openOn(node); got != want {
		r.bad.add("count", "node %d counts %d connections, want %d", node, got, want)
	}
}

// waitCount waits for node's hub to notice the closes: it unregisters a
// stream once its request ends, after the client hung up.
func (r *run) waitCount(node int) {
	deadline := time.Now().Add(ssetest.Patience)
	for r.hubs[node].GetTotalClientCount() != r.openOn(node) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	r.checkCount(node)
}

func (r *run) openOn(node int) int {
	n := 0
	for _, s := range r.streams {
		if s.node == node {
			n++
		}
	}
	return n
}
