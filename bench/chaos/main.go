// Command chaos checks ssehub's delivery promise in cluster mode under
// faults. It starts its own Redis — one redis-server on a free loopback
// port (-redis one), or a Redis Cluster of 3 masters with a replica each
// (-redis cluster, internal/rediscluster) — and -nodes ssehub processes on
// it, connects -clients subscribers (sseclient, the Go client, which
// reconnects with Last-Event-ID) and publishes events, half to everyone
// and half to one user, through a random live node. Each publish has its
// own Idempotency-Key; on any doubt (an error, a timeout, a 5xx) the
// publisher retries it, same body and key, on another node, so that the
// hub stores it once: a client that gets a publish's seq again at a later
// position got a copy the publisher has no id for (unattributed), which
// must not happen.
//
// The hub keeps one history per channel (everyone's, each user's), and a
// client's position is its position in each channel it follows, so the
// accounting is per channel: received events are matched to publishes by
// the seq in their data (never by id), seqs must go up within a channel,
// and ids must never go back. At the end it publishes an end marker to
// everyone and one to every user, waits until every client has the
// markers of its channels, and accounts, client by client, for every
// event addressed to it since its first stream opened: delivered exactly
// once, announced lost by a resync naming its channel, or lost. Lost must
// be 0, and so must duplicates, unattributed copies and events out of
// order.
//
// Two modes:
//
//   - chaos (default): kill -9 a random node and restart it every
//     -kill-every; every -redis-every restart Redis (one Redis) or kill -9
//     a master, let its replica take over and restart the old master,
//     which rejoins as a replica (a Redis Cluster).
//   - -storm: the clients spread evenly over the nodes; after -warmup,
//     kill -9 node 0 for good and measure the time until every one of its
//     clients has resumed on another node and received the next event to
//     everyone, and the Redis commands (INFO commandstats of the masters)
//     spent per resume.
//
// For example:
//
//	go run ./bench/chaos -ssehub /path/to/ssehub -clients 1000 -duration 60s
//	go run ./bench/chaos -ssehub /path/to/ssehub -redis cluster -wait-replicas 1
//	go run ./bench/chaos -ssehub /path/to/ssehub -redis cluster -storm -clients 10000
//
// scripts/chaos.sh builds ssehub and runs this. Every process it starts is
// killed when it returns (and by the kernel if it dies), and every phase
// is bounded in time.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"syscall"
	"time"
)

// config is one run.
type config struct {
	SSEHub       string
	RedisServer  string
	Redis        string // "one" or "cluster"
	WaitReplicas int
	Nodes        int
	Clients      int
	Users        int
	Duration     time.Duration
	Rate         float64
	KillEvery    time.Duration
	Down         time.Duration
	RedisEvery   time.Duration
	Drain        time.Duration
	Summary      string
	Persist      bool
	Storm        bool
	Warmup       time.Duration
	StormWithin  time.Duration
	Sources      int
	LoseEvery    int
	CPUProfile   string
}

func main() { os.Exit(mainCode()) }

// mainCode runs the program and returns its exit code, after its deferred
// calls (the CPU profile's end) have run.
func mainCode() int {
	c, err := parseFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 2
	}
	// On SIGINT or SIGTERM the run stops early and still stops every
	// process it started.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if c.CPUProfile != "" {
		f, err := os.Create(c.CPUProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "chaos: cpu profile:", err)
			return 2
		}
		defer pprof.StopCPUProfile()
	}
	if err := run(ctx, c); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 1
	}
	return 0
}

// parseFlags reads the flags and checks them.
func parseFlags() (config, error) {
	var c config
	flag.StringVar(&c.SSEHub, "ssehub", "", "the ssehub binary (required)")
	flag.StringVar(&c.RedisServer, "redis-server", "redis-server", "the redis-server binary (one Redis)")
	flag.StringVar(&c.Redis, "redis", "one", "one: a private redis-server; cluster: a private Redis Cluster, 3 masters with a replica each")
	flag.IntVar(&c.WaitReplicas, "wait-replicas", 0, "Redis Cluster: publishes acknowledged only once this many replicas hold them (--redis-wait-replicas)")
	flag.IntVar(&c.Nodes, "nodes", 3, "ssehub nodes")
	flag.IntVar(&c.Clients, "clients", 2000, "subscribers")
	flag.IntVar(&c.Users, "users", 0, "distinct users over the subscribers (0: 500, or clients/2 with -storm)")
	flag.DurationVar(&c.Duration, "duration", 2*time.Minute, "chaos: how long to publish under faults")
	flag.Float64Var(&c.Rate, "rate", 20, "events published per second (half to everyone, half to one user)")
	flag.DurationVar(&c.KillEvery, "kill-every", 10*time.Second, "chaos: kill -9 a random node this often (0: never)")
	flag.DurationVar(&c.Down, "down", 3*time.Second, "how long a killed node or Redis stays down")
	flag.DurationVar(&c.RedisEvery, "redis-every", 15*time.Second, "chaos: restart Redis, or fail a cluster master over, this often (0: never)")
	flag.DurationVar(&c.Drain, "drain", 90*time.Second, "bound on the wait for every client to have its channels' end markers")
	flag.BoolVar(&c.Persist, "persist", true, "Redis keeps its data on disk (append-only file), so that a restart keeps the history")
	flag.StringVar(&c.Summary, "summary", "chaos-summary", "where to write the summary (.md and .json are appended)")
	flag.BoolVar(&c.Storm, "storm", false, "resume storm: kill -9 one node for good and measure its clients' resumes")
	flag.DurationVar(&c.Warmup, "warmup", 10*time.Second, "storm: publishing before the kill (its second half measures the background Redis commands)")
	flag.DurationVar(&c.StormWithin, "storm-within", 2*time.Minute, "storm: bound on the wait for the killed node's clients")
	flag.IntVar(&c.Sources, "sources", 1, "spread the clients' dials over 127.0.0.1 … 127.0.0.<sources> (against ephemeral port exhaustion)")
	flag.IntVar(&c.LoseEvery, "lose-every", 0, "drop the answer to the first attempt of about one publish in this many, as a connection cut after the hub stored the event would, and retry it under its Idempotency-Key: the hub must answer the retry as a replay (0: never)")
	flag.StringVar(&c.CPUProfile, "cpuprofile", "", "write this program's CPU profile here (to see what the clients cost)")
	flag.Parse()
	if c.Users == 0 {
		c.Users = 500
		if c.Storm {
			c.Users = max(1, c.Clients/2)
		}
	}
	switch {
	case c.SSEHub == "":
		return c, errors.New("-ssehub is required")
	case c.Redis != "one" && c.Redis != "cluster":
		return c, fmt.Errorf("-redis %q: want one or cluster", c.Redis)
	case c.WaitReplicas < 0 || c.WaitReplicas > 1:
		return c, fmt.Errorf("-wait-replicas %d: the cluster has one replica per master", c.WaitReplicas)
	case c.WaitReplicas > 0 && c.Redis != "cluster":
		return c, errors.New("-wait-replicas needs -redis cluster: one Redis has no replica")
	case c.Nodes < 2 || c.Clients < 1 || c.Users < 1 || c.Rate <= 0 || c.Duration <= 0:
		return c, errors.New("need -nodes ≥ 2, positive -clients, -users, -rate and -duration")
	case c.LoseEvery < 0:
		return c, fmt.Errorf("-lose-every %d: want 0 (never) or a positive count", c.LoseEvery)
	case c.Sources < 1 || c.Sources > 250:
		return c, fmt.Errorf("-sources %d: want 1 to 250", c.Sources)
	}
	return c, nil
}

// logf reports progress on stderr, timestamped, so that a run's log
// lines up with the processes' logs.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "chaos %s: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// randHex returns n random bytes in hex: the run's secrets.
func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// run starts the store, the nodes and the clients, runs the mode, drains
// and writes the summary. Every process it started is stopped when it
// returns, clients first, then nodes, then Redis.
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

	st, err := openStore(ctx, c, dir, logFile)
	if err != nil {
		return err
	}
	defer st.stop()
	h, err := newHubs(c, st, dir, logFile)
	if err != nil {
		return err
	}
	defer h.stop()
	for i := range c.Nodes {
		if err := h.start(i); err != nil {
			return err
		}
	}
	logf("%s; %d nodes on %v", st.describe(), c.Nodes, h.ports)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	subs, stopSubs := subscribe(ctx, h, c)
	defer stopSubs()
	// Every client's first stream must be open before anything is
	// published, so that each has a starting point to be judged from.
	if err := waitStarted(subs, 2*time.Minute+time.Duration(c.Clients/50)*time.Second); err != nil {
		return err
	}
	users := distinctUsers(subs)
	logf("%d clients connected (%d users)", c.Clients, len(users))
	sum := newSummary(c, st)
	sum.Users = len(users)
	pubr := newPublisher(h, c.LoseEvery)
	if c.Storm {
		sum.Storm, err = storm(ctx, c, h, st, subs, pubr, users)
		if err != nil {
			return err
		}
		sum.Faults = []string{fmt.Sprintf("kill -9 node%d (not restarted)", sum.Storm.KilledNode)}
	} else {
		sum.Faults, sum.FaultErrors = chaos(ctx, c, h, st, pubr, users)
		if err := h.startDead(); err != nil { // every node back, for the drain
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	sum.Behind = drain(ctx, c, subs, pubr, users)
	stopSubs()
	return finish(sum, subs, pubr, c.Summary)
}

// openStore starts the Redis of c.Redis.
func openStore(ctx context.Context, c config, dir string, log *os.File) (store, error) {
	if c.Redis == "cluster" {
		return startCluster(ctx, c, dir)
	}
	return startOneRedis(c, dir, log)
}

// chaos publishes for the run's duration while injecting faults, and
// returns what it did and the faults that did not heal.
func chaos(ctx context.Context, c config, h *hubs, st store, pubr *publisher, users []string) ([]string, []string) {
	logf("publishing %.0f/s for %v under faults", c.Rate, c.Duration)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		pubr.run(ctx, stop, c.Rate, func() string { return users[mrand.IntN(len(users))] })
	}()
	did, errs := inject(ctx, h, st, c)
	close(stop)
	<-done
	pubs, ps := pubr.snapshot()
	logf("published %d events (%d failed attempts, retried); faults: %v", len(pubs), ps.fails, did)
	return did, errs
}

// drain publishes the end markers, to everyone and to every user, and
// waits, at most -drain, until every client has its channels' markers. It
// returns how many clients do not.
func drain(ctx context.Context, c config, subs []*subscriber, pubr *publisher, users []string) int {
	allSeq, userSeq := pubr.markers(ctx, users)
	logf("end markers published; waiting for every client to have them")
	deadline := time.Now().Add(c.Drain)
	for {
		all := pubr.lookup(allSeq)
		behind := 0
		for _, s := range subs {
			if !s.caughtUp([2]pub{all, pubr.lookup(userSeq[s.user])}) {
				behind++
			}
		}
		if behind == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return behind
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// distinctUsers returns the clients' users, each once.
func distinctUsers(subs []*subscriber) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range subs {
		if !seen[s.user] {
			seen[s.user] = true
			out = append(out, s.user)
		}
	}
	return out
}
