package ssetest

import (
	"strings"
	"sync"
)

// Log is a hub's log (slog.NewTextHandler(&log, nil)) that a test reads
// while the hub's goroutines write it.
type Log struct {
	mu  sync.Mutex
	buf strings.Builder
}

// Write implements io.Writer.
func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// Count returns how many times s is in the log.
func (l *Log) Count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.buf.String(), s)
}

// String returns the log.
func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
