package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Result is the JSON report of one run.
type Result struct {
	Label   string    `json:"label,omitempty"`
	Time    time.Time `json:"time"`
	Machine Machine   `json:"machine"`
	Params  Params    `json:"params"`

	Connect struct {
		Established int      `json:"established"`
		Failed      int      `json:"failed"`
		Ended       int      `json:"ended_early"` // streams the server closed during the run
		Errors      []string `json:"errors,omitempty"`
		Seconds     float64  `json:"seconds"`
		Latency     Summary  `json:"latency"`
	} `json:"connect"`

	Publish struct {
		Attempted int64    `json:"attempted"`
		Accepted  int64    `json:"accepted"`
		Failed    int64    `json:"failed"`
		Requests  int64    `json:"requests"` // fewer than events with -batch
		Errors    []string `json:"errors,omitempty"`
		Seconds   float64  `json:"seconds"`
		PerSec    float64  `json:"per_sec"`
		RoundTrip Summary  `json:"round_trip"` // one request (or in-process call)
	} `json:"publish"`

	Delivery struct {
		// Expected is the accepted events × the established connections
		// (broadcast), or the sum over the connections of their user's
		// accepted events (targeted).
		Expected      int64   `json:"expected"`
		Received      int64   `json:"received"` // every bench event, duplicates included
		Unique        int64   `json:"unique"`
		Lost          int64   `json:"lost"`
		LossPct       float64 `json:"loss_pct"`
		ConnsWithLoss int     `json:"conns_with_loss"`
		Dups          int64   `json:"duplicates"`
		Misdelivered  int64   `json:"misdelivered"` // targeted events received by a stream of another user
		LateFailed    int64   `json:"late_failed"`  // events of failed publishes that arrived all the same
		Reorders      int64   `json:"reordered"`
		Other         int64   `json:"other_events"` // connected, heartbeat, …
		Seconds       float64 `json:"seconds"`      // first publish → last event received
		DrainSeconds  float64 `json:"drain_seconds"`
		PerSec        float64 `json:"per_sec"`
		Latency       Summary `json:"latency"` // publish → receive
	} `json:"delivery"`

	Server struct {
		PID               int     `json:"pid,omitempty"`
		RSSBeforeKiB      int64   `json:"rss_before_kib"`
		RSSIdleKiB        int64   `json:"rss_idle_kib"`
		RSSPeakKiB        int64   `json:"rss_peak_kib"`
		KiBPerConn        float64 `json:"kib_per_idle_conn"`
		CPUConnectSeconds float64 `json:"cpu_connect_s"`
		CPUSeconds        float64 `json:"cpu_s"` // publish start → drained
		CPUPerDeliveryUs  float64 `json:"cpu_us_per_delivery"`
		Writes            int64   `json:"write_syscalls"` // publish start → drained
		PerWrite          float64 `json:"deliveries_per_write"`
	} `json:"server"`

	Generator struct {
		Processes        int     `json:"processes"`
		CPUMasterSeconds float64 `json:"cpu_master_s"`
		CPUSeconds       float64 `json:"cpu_s"` // publish start → drained, every process
		CPUPerDeliveryUs float64 `json:"cpu_us_per_delivery"`
		CPUTotalSeconds  float64 `json:"cpu_total_s"`
	} `json:"generator"`
}

// Machine describes where the run happened.
type Machine struct {
	CPUs      int    `json:"cpus"`
	GoVersion string `json:"go"`
	Kernel    string `json:"kernel"`
	CPUModel  string `json:"cpu_model"`
	LoadAvg   string `json:"loadavg"` // at the start
}

// Params repeats the configuration that shapes the numbers.
type Params struct {
	URL         string  `json:"url"`
	Mode        string  `json:"mode"` // broadcast, targeted, or targeted in-process
	Batch       int     `json:"batch"`
	Conns       int     `json:"conns"`
	Users       int     `json:"users"`
	Rate        float64 `json:"rate"`
	Count       int     `json:"count"`
	Duration    string  `json:"duration"`
	Concurrency int     `json:"concurrency"`
	PayloadSize int     `json:"payload_size"`
}

func newResult(cfg Config) *Result {
	r := &Result{Label: cfg.Label, Time: time.Now().UTC(), Machine: machine()}
	mode := "broadcast"
	switch {
	case cfg.Publish.Control != "":
		mode = "targeted in-process"
	case cfg.Publish.Targeted:
		mode = "targeted"
	}
	r.Params = Params{
		URL: cfg.URL, Mode: mode, Batch: max(cfg.Publish.Batch, 1), Conns: cfg.Conns, Users: cfg.Users, Rate: cfg.Publish.Rate, Count: cfg.Publish.Count,
		Duration: cfg.Publish.Duration.String(), Concurrency: cfg.Publish.Concurrency, PayloadSize: cfg.Publish.PayloadSize,
	}
	r.Server.PID = cfg.PID
	return r
}

// machine reads the host's description.
func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		m.LoadAvg = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

// add folds the publishers' and workers' accounting into r.
func (r *Result) add(cfg Config, pub *pubResult, parts []workerResult) {
	var connLat, lat hist
	var firstAt, lastAt int64
	inProcess := cfg.Conns <= cfg.PerProc
	r.Generator.Processes = 1
	if !inProcess {
		r.Generator.Processes += len(parts)
	}
	r.Generator.CPUSeconds = r.Generator.CPUMasterSeconds
	r.Generator.CPUTotalSeconds = selfCPU()
	for _, p := range parts {
		c := &r.Connect
		c.Established += p.Established
		c.Failed += p.Failed
		c.Ended += p.Ended
		for _, e := range p.Errors {
			if len(c.Errors) < 5 && !slices.Contains(c.Errors, e) {
				c.Errors = append(c.Errors, e)
			}
		}
		connLat.addSparse(p.ConnectLat)
		lat.addSparse(p.Latency)
		d := &r.Delivery
		d.Received += p.Events
		d.Unique += p.Unique
		d.Dups += p.Dups
		d.Reorders += p.Reorders
		d.Lost += p.Lost
		d.Misdelivered += p.Misdelivered
		d.LateFailed += p.LateFailed
		d.Expected += p.Expected
		d.ConnsWithLoss += p.ConnsWithLoss
		d.Other += p.Other
		if p.FirstAt != 0 && (firstAt == 0 || p.FirstAt < firstAt) {
			firstAt = p.FirstAt
		}
		lastAt = max(lastAt, p.LastAt)
		if !inProcess {
			r.Generator.CPUSeconds += p.CPUWindow
			r.Generator.CPUTotalSeconds += p.CPUTotal
		}
	}
	r.Connect.Latency = connLat.summary()
	r.Publish.Attempted, r.Publish.Accepted, r.Publish.Failed = pub.Attempted, pub.Accepted, pub.Failed
	r.Publish.Requests = pub.Requests
	r.Publish.Errors = pub.Errors
	r.Publish.Seconds = pub.End.Sub(pub.Start).Seconds()
	if r.Publish.Seconds > 0 {
		r.Publish.PerSec = float64(pub.Accepted) / r.Publish.Seconds
	}
	r.Publish.RoundTrip = pub.RoundTrip.summary()

	d := &r.Delivery
	if d.Expected > 0 {
		d.LossPct = 100 * float64(d.Lost) / float64(d.Expected)
	}
	d.Latency = lat.summary()
	if lastAt > 0 {
		d.Seconds = float64(lastAt-pub.Start.UnixNano()) / 1e9
		if d.Seconds > 0 {
			d.PerSec = float64(d.Received) / d.Seconds
		}
	}
	s := &r.Server
	if r.Connect.Established > 0 && s.RSSIdleKiB > 0 {
		s.KiBPerConn = float64(s.RSSIdleKiB-s.RSSBeforeKiB) / float64(r.Connect.Established)
	}
	if s.Writes > 0 {
		s.PerWrite = float64(d.Received) / float64(s.Writes)
	}
	if d.Received > 0 {
		s.CPUPerDeliveryUs = s.CPUSeconds * 1e6 / float64(d.Received)
		r.Generator.CPUPerDeliveryUs = r.Generator.CPUSeconds * 1e6 / float64(d.Received)
	}
}

// writeSummary prints the human summary.
func (r *Result) writeSummary(w io.Writer) {
	c, p, d, s, g := &r.Connect, &r.Publish, &r.Delivery, &r.Server, &r.Generator
	if r.Label != "" {
		fmt.Fprintf(w, "== %s ==\n", r.Label)
	}
	fmt.Fprintf(w, "connections  %d established, %d failed, %d ended early; connect %.1fs, latency p50 %s p99 %s max %s\n",
		c.Established, c.Failed, c.Ended, c.Seconds, us(c.Latency.P50), us(c.Latency.P99), us(c.Latency.Max))
	for _, e := range c.Errors {
		fmt.Fprintf(w, "  error: %s\n", e)
	}
	fmt.Fprintf(w, "publish      %s: %d accepted, %d failed in %.2fs (%.0f/s), %d requests; round trip p50 %s p99 %s\n",
		r.Params.Mode, p.Accepted, p.Failed, p.Seconds, p.PerSec, p.Requests, us(p.RoundTrip.P50), us(p.RoundTrip.P99))
	for _, e := range p.Errors {
		fmt.Fprintf(w, "  error: %s\n", e)
	}
	fmt.Fprintf(w, "delivery     %d/%d received (%d lost = %.3f%% on %d conns, %d dup, %d reordered, %d misdelivered) in %.2fs: %.0f deliveries/s\n",
		d.Unique, d.Expected, d.Lost, d.LossPct, d.ConnsWithLoss, d.Dups, d.Reorders, d.Misdelivered, d.Seconds, d.PerSec)
	if d.LateFailed > 0 {
		fmt.Fprintf(w, "  %d events of failed publishes arrived all the same\n", d.LateFailed)
	}
	fmt.Fprintf(w, "latency      publish→receive p50 %s p90 %s p99 %s max %s\n",
		us(d.Latency.P50), us(d.Latency.P90), us(d.Latency.P99), us(d.Latency.Max))
	if s.PID > 0 {
		fmt.Fprintf(w, "server       RSS before %d KiB, idle %d KiB (%.1f KiB/conn), peak %d KiB; CPU %.2fs (%.2f µs/delivery), connect CPU %.2fs; %.1f deliveries/write\n",
			s.RSSBeforeKiB, s.RSSIdleKiB, s.KiBPerConn, s.RSSPeakKiB, s.CPUSeconds, s.CPUPerDeliveryUs, s.CPUConnectSeconds, s.PerWrite)
	}
	fmt.Fprintf(w, "generator    %d process(es), CPU %.2fs in the window (%.2f µs/delivery), %.2fs in all\n",
		g.Processes, g.CPUSeconds, g.CPUPerDeliveryUs, g.CPUTotalSeconds)
}

// us formats microseconds for people.
func us(v uint64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fs", float64(v)/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fms", float64(v)/1e3)
	}
	return fmt.Sprintf("%dµs", v)
}
