package main

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"time"
)

// inject breaks things until d is over, one fault at a time: every
// -kill-every a random node gets kill -9 and is restarted after -down
// (at least one node stays up), every -redis-every the store's fault (a
// Redis restart, or a master's failover and restart). No fault starts
// that could not end before d does. It returns what it did, and the
// errors of faults that did not heal: the run fails on those.
func inject(ctx context.Context, h *hubs, st store, c config) (did, errs []string) {
	end := time.Now().Add(c.Duration)
	nextKill := time.Now().Add(c.KillEvery)
	nextRedis := time.Now().Add(c.RedisEvery)
	for time.Now().Before(end) && ctx.Err() == nil {
		now := time.Now()
		switch {
		case c.RedisEvery > 0 && now.After(nextRedis) && now.Add(c.Down+10*time.Second).Before(end):
			what, err := st.fault(ctx)
			if err != nil {
				logf("store fault: %v", err)
				errs = append(errs, err.Error())
			} else {
				did = append(did, what)
			}
			nextRedis = time.Now().Add(c.RedisEvery)
		case c.KillEvery > 0 && now.After(nextKill) && now.Add(c.Down+5*time.Second).Before(end):
			if what, err := killAndRestart(h, c.Down); err != nil {
				errs = append(errs, err.Error())
			} else if what != "" {
				did = append(did, what)
			}
			nextKill = time.Now().Add(c.KillEvery)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return did, errs
}

// killAndRestart kills a random live node with SIGKILL and restarts it
// after down; it does nothing when fewer than two nodes are live.
func killAndRestart(h *hubs, down time.Duration) (string, error) {
	live := h.liveNodes()
	if len(live) < 2 {
		return "", nil
	}
	i := live[mrand.IntN(len(live))]
	logf("kill -9 node %d", i)
	h.kill(i)
	time.Sleep(down)
	if err := h.start(i); err != nil {
		return "", fmt.Errorf("node %d restart: %w", i, err)
	}
	return fmt.Sprintf("kill -9 node%d", i), nil
}
