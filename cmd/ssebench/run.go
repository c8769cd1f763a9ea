package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/ssekit/sse/internal/benchwire"
)

// run parses args, runs the benchmark and writes the reports.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	res, err := bench(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	summary := stdout
	switch cfg.JSONOut {
	case "":
	case "-":
		summary = stderr
		if err := writeJSON(stdout, res); err != nil {
			return err
		}
	default:
		f, err := os.Create(cfg.JSONOut)
		if err != nil {
			return err
		}
		if err := writeJSON(f, res); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	res.writeSummary(summary)
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// bench runs one benchmark: connect, settle, publish, drain, close.
// Progress goes to log.
func bench(ctx context.Context, cfg Config, log io.Writer) (*Result, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.MaxDuration)
	defer cancel()
	res := newResult(cfg)
	if err := waitReady(ctx, cfg.URL, cfg.WaitReady); err != nil {
		return nil, err
	}
	if cfg.PID > 0 {
		res.Server.RSSBeforeKiB, _ = procRSS(cfg.PID)
		sctx, stop := context.WithCancel(ctx)
		s := sampleRSS(sctx, cfg.PID, 100*time.Millisecond)
		defer func() { stop(); <-s.done }()
		defer func() { res.Server.RSSPeakKiB = s.peak.Load() }()
	}

	workers, err := startWorkers(cfg)
	if err != nil {
		return nil, err
	}
	closed := false
	defer func() {
		if !closed {
			for _, w := range workers {
				if r, ok := w.(*remoteWorker); ok {
					r.abort()
				} else {
					w.Close()
				}
			}
		}
	}()

	// Connect.
	cpu0 := serverCPU(cfg.PID)
	start := time.Now()
	var connMu sync.Mutex
	var connUsers []uint64 // the user of every established connection
	err = each(workers, func(w workerAPI) error {
		users, err := w.Connect(ctx)
		connMu.Lock()
		connUsers = append(connUsers, users...)
		connMu.Unlock()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	res.Connect.Seconds = time.Since(start).Seconds()
	res.Server.CPUConnectSeconds = serverCPU(cfg.PID) - cpu0
	fmt.Fprintf(log, "ssebench: connected in %.1fs\n", res.Connect.Seconds)

	// Idle.
	if !benchwire.SleepCtx(ctx, cfg.IdleWait) {
		return nil, ctx.Err()
	}
	if cfg.PID > 0 {
		res.Server.RSSIdleKiB, _ = procRSS(cfg.PID)
	}

	// Publish and drain.
	if err := each(workers, workerAPI.Mark); err != nil {
		return nil, err
	}
	gen0 := selfCPU()
	cpu0 = serverCPU(cfg.PID)
	writes0 := serverWrites(cfg.PID)
	var pub *pubResult
	if cfg.publishing() {
		if pub, err = publish(ctx, cfg.Publish, connUsers); err != nil {
			return nil, fmt.Errorf("publish: %w", err)
		}
	} else {
		pub = &pubResult{Start: time.Now(), End: time.Now()}
	}
	fmt.Fprintf(log, "ssebench: published %d/%d in %.1fs; draining\n", pub.Accepted, pub.Attempted, pub.End.Sub(pub.Start).Seconds())
	drainStart := time.Now()
	if err := each(workers, func(w workerAPI) error { _, err := w.Drain(pub.Expect, cfg.Drain); return err }); err != nil {
		return nil, err
	}
	res.Delivery.DrainSeconds = time.Since(drainStart).Seconds()
	res.Server.CPUSeconds = serverCPU(cfg.PID) - cpu0
	res.Server.Writes = serverWrites(cfg.PID) - writes0
	res.Generator.CPUMasterSeconds = selfCPU() - gen0

	// Close and add up.
	closed = true
	var mu sync.Mutex
	var parts []workerResult
	err = each(workers, func(w workerAPI) error {
		r, err := w.Close()
		mu.Lock()
		parts = append(parts, r)
		mu.Unlock()
		return err
	})
	if err != nil {
		return nil, err
	}
	res.add(cfg, pub, parts)
	return res, nil
}

// startWorkers splits the connections: one in-process worker when they fit
// in one process, otherwise child processes of at most PerProc each.
func startWorkers(cfg Config) ([]workerAPI, error) {
	wc := workerConfig{
		URL: cfg.URL, Headers: cfg.Headers, Users: cfg.Users, Src: cfg.Src, JWTSecret: cfg.JWTSecret, JWTClaims: cfg.JWTClaims,
		DialConcurrency: cfg.DialConcurrency, ConnectTimeout: cfg.ConnectTimeout,
	}
	if cfg.Conns <= cfg.PerProc {
		wc.From, wc.To = 0, cfg.Conns
		return []workerAPI{newWorker(wc)}, nil
	}
	n := (cfg.Conns + cfg.PerProc - 1) / cfg.PerProc
	var ws []workerAPI
	for i := range n {
		c := wc
		c.From, c.To = i*cfg.Conns/n, (i+1)*cfg.Conns/n
		r, err := startRemote(c)
		if err != nil {
			for _, w := range ws {
				w.(*remoteWorker).abort()
			}
			return nil, err
		}
		ws = append(ws, r)
	}
	return ws, nil
}

// each calls fn for every worker concurrently and joins the errors.
func each(ws []workerAPI, fn func(workerAPI) error) error {
	errs := make([]error, len(ws))
	var wg sync.WaitGroup
	for i, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(w)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// serverCPU returns pid's CPU seconds, 0 without a pid.
func serverCPU(pid int) float64 {
	if pid <= 0 {
		return 0
	}
	s, _ := procCPU(pid)
	return s
}

// serverWrites returns pid's write system calls, 0 without a pid.
func serverWrites(pid int) int64 {
	if pid <= 0 {
		return 0
	}
	n, _ := procWrites(pid)
	return n
}

// waitReady waits until the stream URL's host accepts TCP connections.
func waitReady(ctx context.Context, rawURL string, d time.Duration) error {
	u, err := url.Parse(strings.NewReplacer("{i}", "0", "{user}", "u", "{token}", "t").Replace(rawURL))
	if err != nil {
		return err
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "80")
	}
	deadline := time.Now().Add(d)
	for {
		c, err := net.DialTimeout("tcp", host, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("server not ready: %w", err)
		}
		if !benchwire.SleepCtx(ctx, 50*time.Millisecond) {
			return ctx.Err()
		}
	}
}
