package main

import (
	"context"
	mrand "math/rand/v2"
	"slices"
	"time"
)

// stormSummary is what a resume storm measured: one node of three killed
// with SIGKILL and not restarted, and its clients resuming on the others.
type stormSummary struct {
	KilledNode int   `json:"killed_node"`
	PerNode    []int `json:"clients_per_node_before"`
	Moved      int   `json:"clients_moved"` // the killed node's clients
	// Resumed of them had a stream on another node within the bound;
	// NotResumed of those were told by their connected event that the
	// stream did not resume (a resync followed).
	Resumed    int `json:"moved_resumed"`
	NotResumed int `json:"moved_not_resumed"`
	// TimeToResumeAll is from the kill until every moved client had a
	// stream on another node; the percentiles are of each client's time.
	TimeToResumeAllMs float64 `json:"time_to_resume_all_ms"`
	ResumeP50Ms       float64 `json:"resume_p50_ms"`
	ResumeP99Ms       float64 `json:"resume_p99_ms"`
	// The phases of a move, p50/p99/max in ms over the moved clients:
	// from the kill until the client saw its stream end; the reconnection
	// delay it drew then, from [0, retry]; from the end of that delay
	// until another node answered 200 (the dial and the hub's resume,
	// which reads the first page of each channel before it answers); and
	// from then until the connected event arrived.
	Dropped [3]float64 `json:"phase_kill_to_drop_ms"`
	Delay   [3]float64 `json:"phase_reconnect_delay_ms"`
	Redial  [3]float64 `json:"phase_dial_and_resume_to_200_ms"`
	Resume  [3]float64 `json:"phase_200_to_connected_ms"`
	// TimeToLiveAll is from the kill until every moved client had, after
	// resuming, also received the next event to everyone: the storm is
	// over when this holds, and the Redis window closes.
	TimeToLiveAllMs float64 `json:"time_to_resume_and_next_event_all_ms"`
	// The next event of each client's user channel: UserEvents moved
	// clients got one published after they resumed, before the end
	// markers (a user's events are rare at this rate); Markers of them
	// got their user's end marker (all must). The latencies are the
	// longest from such an event's publish to its receipt.
	UserEvents       int     `json:"moved_user_events_after_resume"`
	UserLatencyMaxMs float64 `json:"user_event_latency_max_ms"`
	Markers          int     `json:"moved_user_markers"`
	MarkerLatencyMs  float64 `json:"moved_user_marker_latency_max_ms"`
	// The Redis commands, summed over the masters' INFO commandstats, in
	// the window from the kill until the storm was over (WindowMs): raw,
	// and per resume after taking off the background (publishing,
	// presence) at the rate measured before the kill.
	WindowMs         float64            `json:"window_ms"`
	ResumesInWindow  int                `json:"resumes_in_window"`
	Commands         map[string]int64   `json:"redis_commands_in_window"`
	PerResume        map[string]float64 `json:"redis_commands_per_resume"`
	PerResumeTotal   float64            `json:"redis_commands_per_resume_total"`
	BaselineWindowMs float64            `json:"baseline_window_ms"`
	NotLive          int                `json:"moved_without_next_event"`
	// CPUBusy is the share of the machine's CPU (every core, every
	// process: the machine is shared) busy during the window, in percent:
	// near 100, the times above are the machine's, not the hub's.
	CPUBusy float64 `json:"machine_cpu_busy_percent"`

	moved []*subscriber // the killed node's clients
}

// storm runs the resume storm: publishing at the configured rate
// throughout, it measures the background commands over -warmup, kills
// node 0 with SIGKILL (its clients were spread evenly, a third on it),
// and waits, at most -storm-within, until every client of that node has
// resumed on another node and received the next event to everyone. The
// publisher is stopped when storm returns.
func storm(ctx context.Context, c config, h *hubs, st store, subs []*subscriber, pubr *publisher, users []string) (*stormSummary, error) {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		pubr.run(ctx, stop, c.Rate, func() string { return users[mrand.IntN(len(users))] })
	}()
	defer func() { close(stop); <-done }()

	const killed = 0
	ss := &stormSummary{KilledNode: killed, PerNode: make([]int, c.Nodes)}
	sleep(ctx, c.Warmup/2)
	base, err := snapshotStats(ctx, st)
	if err != nil {
		return nil, err
	}
	sleep(ctx, c.Warmup/2)
	moved := watch(subs, killed, ss.PerNode)
	ss.Moved, ss.moved = len(moved), moved
	before, err := snapshotStats(ctx, st)
	if err != nil {
		return nil, err
	}
	resumes0 := resumesTotal.Load()
	logf("storm: %d clients per node %v; kill -9 node %d (%d clients), not restarted", len(subs), ss.PerNode, killed, ss.Moved)
	cpu0 := readCPU()
	killedAt := time.Now()
	h.kill(killed)
	over := waitMoved(ctx, moved, c.StormWithin)
	ss.CPUBusy = busySince(cpu0)
	after, err := snapshotStats(ctx, st)
	if err != nil {
		return nil, err
	}
	ss.ResumesInWindow = int(resumesTotal.Load() - resumes0)
	ss.WindowMs = ms(after.at.Sub(before.at))
	ss.BaselineWindowMs = ms(before.at.Sub(base.at))
	ss.Commands, ss.PerResume = perResume(base, before, after, ss.ResumesInWindow)
	for _, v := range ss.PerResume {
		ss.PerResumeTotal += v
	}
	ss.times(moved, killedAt)
	if !over {
		logf("storm: %d of %d moved clients had not resumed and received the next event to everyone within %v", ss.NotLive, ss.Moved, c.StormWithin)
	}
	logf("storm: %d of %d resumed; all within %.0f ms (with the next event to everyone: %.0f ms); %d resumes, %.1f Redis commands per resume",
		ss.Resumed, ss.Moved, ss.TimeToResumeAllMs, ss.TimeToLiveAllMs, ss.ResumesInWindow, ss.PerResumeTotal)
	return ss, nil
}

// watch marks the clients whose stream is on node killed, before it is
// killed, and counts every client's node into perNode.
func watch(subs []*subscriber, killed int, perNode []int) []*subscriber {
	var moved []*subscriber
	for _, s := range subs {
		s.mu.Lock()
		if s.node >= 0 && s.node < len(perNode) {
			perNode[s.node]++
		}
		if s.node == killed {
			s.watch = &stormWatch{killed: killed}
			moved = append(moved, s)
		}
		s.mu.Unlock()
	}
	return moved
}

// waitMoved waits until every moved client has resumed on another node
// and received an event to everyone since, at most within. It reports
// whether they all did.
func waitMoved(ctx context.Context, moved []*subscriber, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		all := true
		for _, s := range moved {
			s.mu.Lock()
			ok := !s.watch.nextAll.IsZero()
			s.mu.Unlock()
			if !ok {
				all = false
				break
			}
		}
		if all {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// times fills in the storm's times from the moved clients' watches.
func (ss *stormSummary) times(moved []*subscriber, killedAt time.Time) {
	var resume, dropped, delay, redial, catchUp []float64
	for _, s := range moved {
		s.mu.Lock()
		w := *s.watch
		s.mu.Unlock()
		if w.nextAll.IsZero() {
			ss.NotLive++
		} else {
			ss.TimeToLiveAllMs = max(ss.TimeToLiveAllMs, ms(w.nextAll.Sub(killedAt)))
		}
		if w.resumedAt.IsZero() {
			continue
		}
		ss.Resumed++
		if !w.resumed {
			ss.NotResumed++
		}
		resume = append(resume, ms(w.resumedAt.Sub(killedAt)))
		if !w.droppedAt.IsZero() && !w.headersAt.IsZero() {
			dropped = append(dropped, ms(w.droppedAt.Sub(killedAt)))
			delay = append(delay, ms(w.delay))
			redial = append(redial, ms(w.headersAt.Sub(w.droppedAt)-w.delay))
			catchUp = append(catchUp, ms(w.resumedAt.Sub(w.headersAt)))
		}
	}
	q := quantiles(resume)
	ss.ResumeP50Ms, ss.ResumeP99Ms, ss.TimeToResumeAllMs = q[0], q[1], q[2]
	ss.Dropped, ss.Delay = quantiles(dropped), quantiles(delay)
	ss.Redial, ss.Resume = quantiles(redial), quantiles(catchUp)
}

// quantiles returns the p50, p99 and max of xs (zeros if empty).
func quantiles(xs []float64) [3]float64 {
	if len(xs) == 0 {
		return [3]float64{}
	}
	slices.Sort(xs)
	n := len(xs)
	return [3]float64{xs[n/2], xs[min(n-1, n*99/100)], xs[n-1]}
}

// userLatencies fills in, once the end markers are in, how long the moved
// clients' user events published after their resume took from publish to
// receipt: those before the end markers, and the markers.
func (ss *stormSummary) userLatencies(moved []*subscriber) {
	for _, s := range moved {
		s.mu.Lock()
		w := *s.watch
		s.mu.Unlock()
		if w.userGot {
			ss.UserEvents++
			ss.UserLatencyMaxMs = max(ss.UserLatencyMaxMs, ms(w.userLat))
		}
		if w.markerGot {
			ss.Markers++
			ss.MarkerLatencyMs = max(ss.MarkerLatencyMs, ms(w.markerLat))
		}
	}
}

// sleep waits for d, or until ctx is done.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// ms is d in milliseconds.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
