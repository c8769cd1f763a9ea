package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// commandStats sums the calls of each command over the INFO commandstats
// of addrs (the masters). Commands a script runs count under their own
// names as well as under the script's (EVALSHA). Each address gets a
// fresh plain connection (RESP2, no CLIENT SETINFO), so that the only
// command this adds is INFO itself, which the caller leaves out.
func commandStats(ctx context.Context, addrs []string) (map[string]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out := map[string]int64{}
	for _, addr := range addrs {
		rdb := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, DisableIdentity: true, MaxRetries: -1, PoolSize: 1})
		text, err := rdb.Info(ctx, "commandstats").Result()
		rdb.Close()
		if err != nil {
			return nil, fmt.Errorf("INFO commandstats of %s: %w", addr, err)
		}
		for name, calls := range parseCommandStats(text) {
			out[name] += calls
		}
	}
	return out, nil
}

// parseCommandStats reads the lines "cmdstat_<name>:calls=N,usec=…" of an
// INFO commandstats reply.
func parseCommandStats(text string) map[string]int64 {
	out := map[string]int64{}
	for line := range strings.Lines(text) {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_")
		if !ok {
			continue
		}
		name, fields, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		for f := range strings.SplitSeq(fields, ",") {
			if v, ok := strings.CutPrefix(f, "calls="); ok {
				if n, err := strconv.ParseInt(v, 10, 64); err == nil {
					out[name] = n
				}
			}
		}
	}
	return out
}

// statsAt is a commandstats snapshot and when it was taken.
type statsAt struct {
	at    time.Time
	calls map[string]int64
}

// snapshotStats takes a snapshot of the masters' commandstats.
func snapshotStats(ctx context.Context, st store) (statsAt, error) {
	addrs, err := st.masters(ctx)
	if err != nil {
		return statsAt{}, err
	}
	calls, err := commandStats(ctx, addrs)
	return statsAt{at: time.Now(), calls: calls}, err
}

// perResume returns, by command, the calls made over the window (from, to]
// minus what the background (publishing, presence) made at the rate seen
// over (base, from], divided by resumes. Commands under 0.01 a resume are
// left out, and so is INFO (this program's own).
func perResume(base, from, to statsAt, resumes int) (raw map[string]int64, per map[string]float64) {
	raw, per = map[string]int64{}, map[string]float64{}
	window := to.at.Sub(from.at).Seconds()
	baseSpan := from.at.Sub(base.at).Seconds()
	for name, n := range to.calls {
		if name == "info" {
			continue
		}
		d := n - from.calls[name]
		if d <= 0 {
			continue
		}
		raw[name] = d
		background := 0.0
		if baseSpan > 0 {
			background = float64(from.calls[name]-base.calls[name]) / baseSpan * window
		}
		if resumes > 0 {
			if v := (float64(d) - background) / float64(resumes); v >= 0.01 {
				per[name] = v
			}
		}
	}
	return raw, per
}
