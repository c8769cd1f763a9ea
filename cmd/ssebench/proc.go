package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's CPU times; 100 on
// every Linux architecture Go supports.
const clockTicks = 100

// procRSS returns the resident set size of pid in KiB (VmRSS).
func procRSS(pid int) (int64, error) {
	return procStatusKiB(pid, "VmRSS:")
}

// procStatusKiB reads one "Name:   123 kB" line of /proc/<pid>/status.
func procStatusKiB(pid int, key string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/status: no %s", pid, key)
	}
	f := bytes.Fields(b[i+len(key):])
	if len(f) == 0 {
		return 0, fmt.Errorf("/proc/%d/status: empty %s", pid, key)
	}
	return strconv.ParseInt(string(f[0]), 10, 64)
}

// procCPU returns the user+system CPU seconds of every thread of pid.
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces and parentheses: fields are
	// counted from the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	f := bytes.Fields(b[i+1:])
	// After ')': state is field 3 of the whole line, utime 14, stime 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	ut, err1 := strconv.ParseInt(string(f[11]), 10, 64)
	st, err2 := strconv.ParseInt(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad cpu times", pid)
	}
	return float64(ut+st) / clockTicks, nil
}

// rssSampler tracks the peak RSS of a process by polling it.
type rssSampler struct {
	peak atomic.Int64
	done chan struct{}
}

// sampleRSS polls pid's RSS every interval until ctx ends.
func sampleRSS(ctx context.Context, pid int, interval time.Duration) *rssSampler {
	s := &rssSampler{done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			if kib, err := procRSS(pid); err == nil && kib > s.peak.Load() {
				s.peak.Store(kib)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// procWrites returns how many write system calls pid has made (syscw in
// /proc/<pid>/io): deliveries per write shows how well a server batches.
func procWrites(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, err
	}
	i := bytes.Index(b, []byte("syscw:"))
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/io: no syscw", pid)
	}
	f := bytes.Fields(b[i+len("syscw:"):])
	if len(f) == 0 {
		return 0, fmt.Errorf("/proc/%d/io: empty syscw", pid)
	}
	return strconv.ParseInt(string(f[0]), 10, 64)
}
