// Command soak holds many event streams open on a running ssehub for a
// long time, with a steady publish rate and churn, and checks that nothing
// leaks and no client sees a gap or a duplicate.
//
// The coordinator (the default role) samples the hub's RSS, goroutines and
// open descriptors from /metrics every -sample, starts -procs generator
// processes (itself with -gen) that open -conns streams between them,
// publishes broadcast events numbered 1, 2, 3… at -rate for -duration
// while the generators churn -churn streams a second (half resume with
// Last-Event-ID, half are replaced by a new user's fresh stream), then
// waits for every open stream to have the last event, closes them all and
// waits for the hub to come back to its idle baseline. It writes a summary
// (Markdown and JSON) and an SVG plot of RSS and goroutines over time.
//
//	go run ./bench/soak -hub http://127.0.0.1:18080 -secret … -key … -conns 500 -duration 1m
//
// scripts/soak.sh starts the hub and runs this with the full settings.
// Every phase is bounded in time; the generators exit when their stdin
// closes, so that nothing outlives the coordinator.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// config is one soak run.
type config struct {
	Hub      string        // base URL of the hub
	Prefix   string        // route prefix
	Secret   string        // JWT secret, to sign subscriber tokens
	Key      string        // publish key
	Conns    int           // streams held, over all generators
	Procs    int           // generator processes
	Duration time.Duration // publishing time
	Rate     float64       // broadcast events a second
	Churn    float64       // streams churned a second, over all generators
	Sample   time.Duration // sampling interval
	Settle   time.Duration // bound on each wait (ramp-up, drain, recovery)
	Tail     time.Duration // bound on the wait for the heap after the run
	Src      []string      // loopback source addresses for the streams
	SVG      string        // plot output
	Summary  string        // summary output, without extension (.md, .json)
	Label    string
}

func main() {
	var c config
	var src string
	var gen int
	flag.StringVar(&c.Hub, "hub", "http://127.0.0.1:18080", "base URL of the ssehub under test (loopback only)")
	flag.StringVar(&c.Prefix, "prefix", "/sse", "the hub's route prefix")
	flag.StringVar(&c.Secret, "secret", os.Getenv("SSEHUB_JWT_SECRET"), "the hub's JWT secret (default $SSEHUB_JWT_SECRET)")
	flag.StringVar(&c.Key, "key", os.Getenv("SSEHUB_PUBLISH_KEY"), "the hub's publish key (default $SSEHUB_PUBLISH_KEY)")
	flag.IntVar(&c.Conns, "conns", 500, "streams to hold, over all generator processes")
	flag.IntVar(&c.Procs, "procs", 2, "generator processes (each holds conns/procs streams: mind the per-process fd limit)")
	flag.DurationVar(&c.Duration, "duration", time.Minute, "how long to publish while holding the streams")
	flag.Float64Var(&c.Rate, "rate", 5, "broadcast events per second")
	flag.Float64Var(&c.Churn, "churn", 10, "streams closed and reopened per second, over all generators")
	flag.DurationVar(&c.Sample, "sample", 5*time.Second, "how often to sample the hub's RSS, goroutines and fds")
	flag.DurationVar(&c.Settle, "settle", 2*time.Minute, "bound on ramp-up, on the final drain and on the return to baseline")
	flag.DurationVar(&c.Tail, "tail", 5*time.Minute, "after the streams close, how long to wait for the heap to come back (the runtime forces a GC every 2 minutes)")
	flag.StringVar(&src, "src", "127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5", "comma-separated loopback source addresses of the streams")
	flag.StringVar(&c.SVG, "svg", "soak.svg", "where to write the plot")
	flag.StringVar(&c.Summary, "summary", "soak-summary", "where to write the summary (.md and .json are appended)")
	flag.StringVar(&c.Label, "label", "", "a name for this run, in the summary")
	flag.IntVar(&gen, "gen", -1, "internal: run as generator number n")
	flag.Parse()
	c.Src = strings.Split(src, ",")
	if err := c.check(); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(2)
	}
	var err error
	if gen >= 0 {
		err = runGenerator(c, gen)
	} else {
		err = coordinate(c)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

// check refuses settings that could not work, and any target that is not
// on this machine's loopback.
func (c *config) check() error {
	switch {
	case c.Secret == "" || c.Key == "":
		return errors.New("-secret and -key (or SSEHUB_JWT_SECRET and SSEHUB_PUBLISH_KEY) are required")
	case c.Conns < 1 || c.Procs < 1 || c.Procs > c.Conns:
		return errors.New("need 1 ≤ -procs ≤ -conns")
	case c.Rate <= 0 || c.Churn < 0 || c.Duration <= 0 || c.Sample <= 0:
		return errors.New("-rate, -duration and -sample must be positive, -churn not negative")
	}
	host, _, err := net.SplitHostPort(strings.TrimPrefix(strings.TrimPrefix(c.Hub, "http://"), "https://"))
	if err != nil {
		return fmt.Errorf("-hub %q: %w", c.Hub, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-hub %q is not a loopback address", c.Hub)
	}
	for _, s := range c.Src {
		if ip := net.ParseIP(s); s != "" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("-src %q is not a loopback address", s)
		}
	}
	return nil
}

// sample is one reading of the hub's /metrics.
type sample struct {
	T          float64 `json:"t"` // seconds since the start
	RSS        float64 `json:"rss_bytes"`
	HeapInuse  float64 `json:"heap_inuse_bytes"`
	HeapAlloc  float64 `json:"heap_alloc_bytes"` // live objects, and garbage not yet collected
	Goroutines float64 `json:"goroutines"`
	FDs        float64 `json:"open_fds"`
	Clients    float64 `json:"clients"`
	GCs        float64 `json:"gcs"` // completed GC cycles
}

// scrape reads one sample from the hub.
func scrape(ctx context.Context, hub string) (sample, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, hub+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return sample{}, err
	}
	defer resp.Body.Close()
	var s sample
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			continue
		}
		switch name {
		case "process_resident_memory_bytes":
			s.RSS = v
		case "go_memstats_heap_inuse_bytes":
			s.HeapInuse = v
		case "go_memstats_heap_alloc_bytes":
			s.HeapAlloc = v
		case "go_goroutines":
			s.Goroutines = v
		case "process_open_fds":
			s.FDs = v
		case "ssekit_connected_clients":
			s.Clients = v
		case "go_gc_duration_seconds_count":
			s.GCs = v
		}
	}
	return s, sc.Err()
}

// sampler scrapes the hub every interval until stopped.
type sampler struct {
	start time.Time
	mu    sync.Mutex
	all   []sample
	marks []mark
}

// mark is a phase boundary on the plot.
type mark struct {
	T     float64 `json:"t"`
	Label string  `json:"label"`
}

func (s *sampler) run(ctx context.Context, hub string, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		s.take(ctx, hub)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// take scrapes once and keeps the sample; it returns it.
func (s *sampler) take(ctx context.Context, hub string) (sample, error) {
	sm, err := scrape(ctx, hub)
	if err != nil {
		return sm, err
	}
	sm.T = time.Since(s.start).Seconds()
	s.mu.Lock()
	s.all = append(s.all, sm)
	s.mu.Unlock()
	return sm, nil
}

func (s *sampler) mark(label string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.marks = append(s.marks, mark{time.Since(s.start).Seconds(), label})
}

func (s *sampler) snapshot() ([]sample, []mark) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sample(nil), s.all...), append([]mark(nil), s.marks...)
}

// genResult is what a generator reports at the end.
type genResult struct {
	Streams     int   `json:"streams"`      // streams opened (fresh or resumed)
	Fresh       int   `json:"fresh"`        // of which fresh
	Resumed     int   `json:"resumed"`      // of which resumed with Last-Event-ID
	Refused     int   `json:"refused"`      // answered with a retry hint and no stream
	Unplanned   int   `json:"unplanned"`    // streams the server or network ended
	ConnectErrs int   `json:"connect_errs"` // failed connection attempts
	Events      int64 `json:"events"`       // numbered events received
	Gaps        int64 `json:"gaps"`         // events missing between two received
	Dups        int64 `json:"duplicates"`   // events received again or out of order
	Resyncs     int   `json:"resyncs"`      // resync events (a loss announced)
	Behind      int   `json:"behind"`       // streams without the last event at the end
	Users       int   `json:"users"`        // distinct users over the run
}

func (g *genResult) add(o genResult) {
	g.Streams += o.Streams
	g.Fresh += o.Fresh
	g.Resumed += o.Resumed
	g.Refused += o.Refused
	g.Unplanned += o.Unplanned
	g.ConnectErrs += o.ConnectErrs
	g.Events += o.Events
	g.Gaps += o.Gaps
	g.Dups += o.Dups
	g.Resyncs += o.Resyncs
	g.Behind += o.Behind
	g.Users += o.Users
}

// After the run, once collected, the allocated heap may exceed its idle
// baseline by heapSlack — caches: the history, the metrics registry — plus
// heapPerPeakStream for each stream held at the peak: the runtime never
// frees a goroutine's descriptor (it reuses it), a stream has two (the
// request's and the connection's), and maps keep their size. What a leak
// would hold grows instead with the streams opened over the run, churn
// included (cmd/ssehub's TestStreamsLeaveNoMemoryBehind measures that
// directly: a few bytes per stream).
const (
	heapSlack         = 8 << 20
	heapPerPeakStream = 2 << 10
)

// summary is the result of a run.
type summary struct {
	Label       string    `json:"label"`
	Started     time.Time `json:"started"`
	Config      config    `json:"config"`
	Published   int64     `json:"published"`
	PublishErrs int64     `json:"publish_errors"`
	Clients     genResult `json:"clients"`
	Baseline    sample    `json:"baseline"`
	Peak        sample    `json:"peak"`
	After       sample    `json:"after"`
	Recovered   bool      `json:"recovered"`
	RecoverSecs float64   `json:"recover_secs"`
	// HeapRecovered: the Go heap's allocated bytes came back within
	// HeapLimit (see heapSlack) after two collections, HeapSecs after the
	// streams closed. (Heap in use also counts spans kept partly full by
	// fragmentation: reported, not judged.)
	HeapRecovered bool        `json:"heap_recovered"`
	HeapSecs      float64     `json:"heap_secs"`
	HeapLimit     float64     `json:"heap_limit_bytes"`
	GCsAtClose    float64     `json:"gcs_at_close"`
	Samples       int         `json:"samples"`
	Marks         []mark      `json:"marks"`
	Verdict       string      `json:"verdict"`
	Problems      []string    `json:"problems,omitempty"`
	Generators    []genResult `json:"-"`
}

// generator is one running generator process.
type generator struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Scanner
}

// startGenerator starts generator n for conns streams.
func startGenerator(c config, n, conns int, churn float64) (*generator, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "-gen", strconv.Itoa(n), "-hub", c.Hub, "-prefix", c.Prefix,
		"-secret", c.Secret, "-key", c.Key, "-conns", strconv.Itoa(conns), "-procs", "1",
		"-churn", strconv.FormatFloat(churn, 'f', -1, 64), "-settle", c.Settle.String(),
		"-src", strings.Join(c.Src, ","))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(stdout)
	sc.Buffer(nil, 1<<20)
	return &generator{cmd: cmd, stdin: stdin, out: sc}, nil
}

// expect reads the generator's next line, which must start with want.
func (g *generator) expect(want string, within time.Duration) (string, error) {
	line := make(chan string, 1)
	go func() {
		if g.out.Scan() {
			line <- g.out.Text()
		}
		close(line)
	}()
	select {
	case l, ok := <-line:
		if !ok || !strings.HasPrefix(l, want) {
			return "", fmt.Errorf("generator said %q, want %q", l, want)
		}
		return strings.TrimSpace(strings.TrimPrefix(l, want)), nil
	case <-time.After(within):
		return "", fmt.Errorf("generator did not say %q within %v", want, within)
	}
}

// stop ends the generator: closing its stdin makes it exit; a kill if not.
func (g *generator) stop() {
	_ = g.stdin.Close()
	done := make(chan struct{})
	go func() { _ = g.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = g.cmd.Process.Kill()
		<-done
	}
}

// coordinate runs the whole soak.
func coordinate(c config) (err error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sum := summary{Label: c.Label, Started: time.Now().UTC(), Config: c}
	smp := &sampler{start: time.Now()}
	if err := waitHealthy(c.Hub, c.Settle); err != nil {
		return err
	}
	// The idle baseline: the hub as started, before any stream.
	time.Sleep(2 * time.Second)
	if sum.Baseline, err = smp.take(ctx, c.Hub); err != nil {
		return err
	}
	sctx, stopSampling := context.WithCancel(ctx)
	var sw sync.WaitGroup
	sw.Add(1)
	go func() { defer sw.Done(); smp.run(sctx, c.Hub, c.Sample) }()
	defer func() { stopSampling(); sw.Wait() }()

	var gens []*generator
	defer func() {
		for _, g := range gens {
			g.stop()
		}
	}()
	for i := range c.Procs {
		n := c.Conns / c.Procs
		if i < c.Conns%c.Procs {
			n++
		}
		g, err := startGenerator(c, i, n, c.Churn/float64(c.Procs))
		if err != nil {
			return err
		}
		gens = append(gens, g)
	}
	smp.mark("connecting")
	for i, g := range gens {
		if _, err := g.expect("ready", c.Settle); err != nil {
			return fmt.Errorf("generator %d: %w", i, err)
		}
	}
	smp.mark("all connected, publishing")
	log("all %d streams open; publishing %.0f/s for %v with %.0f/s churn", c.Conns, c.Rate, c.Duration, c.Churn)
	for _, g := range gens {
		fmt.Fprintln(g.stdin, "churn")
	}
	var lastID string
	sum.Published, sum.PublishErrs, lastID = publishFor(ctx, c)
	smp.mark("publishing ends")
	log("published %d (%d errors), the last as %s; draining", sum.Published, sum.PublishErrs, lastID)
	if lastID == "" {
		return errors.New("nothing was published")
	}
	for _, g := range gens {
		fmt.Fprintf(g.stdin, "stop %s\n", lastID)
	}
	for i, g := range gens {
		line, err := g.expect("result", c.Settle+30*time.Second)
		if err != nil {
			return fmt.Errorf("generator %d: %w", i, err)
		}
		var r genResult
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return fmt.Errorf("generator %d result %q: %w", i, line, err)
		}
		sum.Generators = append(sum.Generators, r)
		sum.Clients.add(r)
	}
	for _, g := range gens {
		g.stop()
	}
	gens = nil
	smp.mark("all closed")
	closed := time.Now()
	log("all streams closed; waiting for the hub's idle baseline")
	deadline := closed.Add(c.Settle)
	for time.Now().Before(deadline) {
		s, err := smp.take(ctx, c.Hub)
		if err == nil && s.Clients == 0 && s.Goroutines <= sum.Baseline.Goroutines+5 && s.FDs <= sum.Baseline.FDs+5 {
			sum.Recovered = true
			break
		}
		time.Sleep(time.Second)
	}
	sum.RecoverSecs = time.Since(closed).Seconds()
	// The heap only shrinks at a collection, and an idle hub allocates too
	// little to start one: the runtime forces one every two minutes. Wait
	// for it (bounded by -tail), so that the memory figure after the run
	// says whether anything was kept, not when the GC last ran.
	log("streams, goroutines and fds back after %.0fs; waiting for the heap (up to %v)", sum.RecoverSecs, c.Tail)
	atClose, _ := smp.take(ctx, c.Hub)
	samples, _ := smp.snapshot()
	for _, s := range samples {
		sum.Peak.Clients = max(sum.Peak.Clients, s.Clients)
	}
	heapLimit := sum.Baseline.HeapAlloc + heapSlack + heapPerPeakStream*sum.Peak.Clients
	sum.HeapLimit = heapLimit
	sum.GCsAtClose = atClose.GCs
	for end := time.Now().Add(c.Tail); time.Now().Before(end); time.Sleep(time.Second) {
		// Judged only after a collection that began once every stream was
		// closed: before it, the heap still holds what the run freed.
		if s, err := smp.take(ctx, c.Hub); err == nil && s.GCs >= atClose.GCs+2 && s.HeapAlloc <= heapLimit {
			sum.HeapRecovered = true
			break
		}
	}
	sum.HeapSecs = time.Since(closed).Seconds()
	time.Sleep(min(c.Tail, 2*c.Sample)) // the idle tail, on the plot
	sum.After, _ = smp.take(ctx, c.Hub)
	stopSampling()
	sw.Wait()
	samples, marks := smp.snapshot()
	sum.Samples, sum.Marks = len(samples), marks
	for _, s := range samples {
		sum.Peak.RSS = max(sum.Peak.RSS, s.RSS)
		sum.Peak.HeapInuse = max(sum.Peak.HeapInuse, s.HeapInuse)
		sum.Peak.HeapAlloc = max(sum.Peak.HeapAlloc, s.HeapAlloc)
		sum.Peak.Goroutines = max(sum.Peak.Goroutines, s.Goroutines)
		sum.Peak.FDs = max(sum.Peak.FDs, s.FDs)
		sum.Peak.Clients = max(sum.Peak.Clients, s.Clients)
	}
	sum.judge()
	if err := os.WriteFile(c.SVG, plot(samples, marks, c), 0o644); err != nil {
		return err
	}
	js, _ := json.MarshalIndent(sum, "", "  ")
	if err := os.WriteFile(c.Summary+".json", append(js, '\n'), 0o644); err != nil {
		return err
	}
	md := sum.markdown(c.SVG)
	if err := os.WriteFile(c.Summary+".md", []byte(md), 0o644); err != nil {
		return err
	}
	fmt.Print(md)
	if sum.Verdict != "pass" {
		return errors.New("soak failed: " + strings.Join(sum.Problems, "; "))
	}
	return nil
}

// judge sets the verdict: no gap, no duplicate, no resync, every stream
// with the last event, nothing lost by the publisher, and the hub back to
// its baseline of streams, goroutines and descriptors.
func (s *summary) judge() {
	add := func(ok bool, format string, args ...any) {
		if !ok {
			s.Problems = append(s.Problems, fmt.Sprintf(format, args...))
		}
	}
	add(s.Clients.Gaps == 0, "%d events missing (gaps)", s.Clients.Gaps)
	add(s.Clients.Dups == 0, "%d duplicate or out-of-order events", s.Clients.Dups)
	add(s.Clients.Resyncs == 0, "%d resyncs", s.Clients.Resyncs)
	add(s.Clients.Behind == 0, "%d streams without the last event", s.Clients.Behind)
	add(s.PublishErrs == 0, "%d publish errors", s.PublishErrs)
	add(s.HeapRecovered, "Go heap allocated %.0f MB after the run and %.0f collections, over the bound of %.0f MB", s.After.HeapAlloc/1e6, s.After.GCs-s.GCsAtClose, s.HeapLimit/1e6)
	add(s.Recovered, "hub not back to its baseline within %.0fs (clients %.0f, goroutines %.0f vs %.0f, fds %.0f vs %.0f)",
		s.RecoverSecs, s.After.Clients, s.After.Goroutines, s.Baseline.Goroutines, s.After.FDs, s.Baseline.FDs)
	// Churn keeps a few streams between two connections at any moment.
	add(s.Peak.Clients >= 0.98*float64(s.Config.Conns), "peak %.0f streams, want about %d", s.Peak.Clients, s.Config.Conns)
	s.Verdict = "pass"
	if len(s.Problems) > 0 {
		s.Verdict = "FAIL"
	}
}

// markdown renders the summary for docs/RELIABILITY.md.
func (s *summary) markdown(svg string) string {
	mb := func(b float64) string { return fmt.Sprintf("%.0f MB", b/1e6) }
	var b strings.Builder
	fmt.Fprintf(&b, "Soak %s — %s, verdict: **%s**\n\n", s.Label, s.Started.Format("2006-01-02 15:04 UTC"), s.Verdict)
	fmt.Fprintf(&b, "%d streams held for %v over %d processes; %.0f broadcast events/s; %.0f streams/s churned (half resumed with Last-Event-ID, half replaced by a new user).\n\n",
		s.Config.Conns, s.Config.Duration, s.Config.Procs, s.Config.Rate, s.Config.Churn)
	fmt.Fprintf(&b, "| | idle baseline | peak | after |\n|---|---|---|---|\n")
	fmt.Fprintf(&b, "| RSS | %s | %s | %s |\n", mb(s.Baseline.RSS), mb(s.Peak.RSS), mb(s.After.RSS))
	fmt.Fprintf(&b, "| Go heap allocated | %s | %s | %s |\n", mb(s.Baseline.HeapAlloc), mb(s.Peak.HeapAlloc), mb(s.After.HeapAlloc))
	fmt.Fprintf(&b, "| Go heap in use (spans) | %s | %s | %s |\n", mb(s.Baseline.HeapInuse), mb(s.Peak.HeapInuse), mb(s.After.HeapInuse))
	fmt.Fprintf(&b, "| goroutines | %.0f | %.0f | %.0f |\n", s.Baseline.Goroutines, s.Peak.Goroutines, s.After.Goroutines)
	fmt.Fprintf(&b, "| open fds | %.0f | %.0f | %.0f |\n", s.Baseline.FDs, s.Peak.FDs, s.After.FDs)
	fmt.Fprintf(&b, "| streams | %.0f | %.0f | %.0f |\n\n", s.Baseline.Clients, s.Peak.Clients, s.After.Clients)
	c := s.Clients
	fmt.Fprintf(&b, "| published | publish errors | events received | gaps | duplicates | resyncs | streams behind at the end |\n|---|---|---|---|---|---|---|\n")
	fmt.Fprintf(&b, "| %d | %d | %d | %d | %d | %d | %d |\n\n", s.Published, s.PublishErrs, c.Events, c.Gaps, c.Dups, c.Resyncs, c.Behind)
	fmt.Fprintf(&b, "After the last stream closed, streams, goroutines and fds were back at the baseline in %.0f s, and the Go heap's allocated bytes came within the bound of %.0f MB (the baseline + 8 MB + 2 KB per stream held at the peak, for the goroutine descriptors the runtime keeps) in %.0f s, after %.0f collections (the runtime forces one every 2 minutes on an idle process). RSS and heap in use are reported, not judged: the runtime returns freed pages to the OS gradually, and keeps spans that fragmentation leaves partly full.\n\n", s.RecoverSecs, s.HeapLimit/1e6, s.HeapSecs, s.After.GCs-s.GCsAtClose)
	fmt.Fprintf(&b, "Streams opened: %d (%d fresh, %d resumed) by %d users; %d refused with a retry hint (and retried), %d ended by the server or network, %d failed connection attempts. %d samples.\n",
		c.Streams, c.Fresh, c.Resumed, c.Users, c.Refused, c.Unplanned, c.ConnectErrs, s.Samples)
	if len(s.Problems) > 0 {
		fmt.Fprintf(&b, "\nProblems: %s.\n", strings.Join(s.Problems, "; "))
	}
	return b.String()
}

// waitHealthy waits for the hub's /healthz.
func waitHealthy(hub string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		resp, err := http.Get(hub + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s/healthz not ready within %v", hub, within)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// publishFor publishes broadcast events numbered from 1 at c.Rate for
// c.Duration and returns how many were accepted and the id of the last.
// A number is used once accepted, so the clients expect exactly
// 1…published.
func publishFor(ctx context.Context, c config) (published, errs int64, lastID string) {
	client := &http.Client{Timeout: 10 * time.Second}
	interval := time.Duration(float64(time.Second) / c.Rate)
	t := time.NewTicker(interval)
	defer t.Stop()
	end := time.Now().Add(c.Duration)
	for time.Now().Before(end) {
		select {
		case <-ctx.Done():
			return published, errs, lastID
		case <-t.C:
		}
		body := fmt.Sprintf(`{"all":true,"type":"soak","data":{"seq":%d}}`, published+1)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.Hub+c.Prefix+"/publish", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+c.Key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			errs++
			log("publish %d: %v", published+1, err)
			continue
		}
		var ok struct{ ID string }
		err = json.NewDecoder(resp.Body).Decode(&ok)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || err != nil {
			errs++
			log("publish %d: %s (%v)", published+1, resp.Status, err)
			continue
		}
		published++
		lastID = ok.ID
	}
	return published, errs, lastID
}

func log(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "soak %s: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}
