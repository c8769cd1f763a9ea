package sseclient

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// minRetry floors the base delay, so that a server sending "retry: 0"
// cannot turn the client into a reconnect loop.
const minRetry = 100 * time.Millisecond

// backoff computes reconnection delays: exponential growth from a base
// (the server's retry field, or Client.DefaultRetry) with full jitter, up
// to a cap. It is owned by one Subscribe call.
type backoff struct {
	base, max time.Duration
	failures  int               // attempts since the last connection that delivered an event
	randN     func(int64) int64 // [0, n); rand.Int64N, replaced in tests
}

func newBackoff(base, max time.Duration) *backoff {
	b := &backoff{max: max, randN: rand.Int64N}
	b.setBase(base)
	return b
}

// setBase applies a retry field; the cap bounds it too, so a server cannot
// park its clients for longer than the client allows.
func (b *backoff) setBase(d time.Duration) {
	b.base = min(max(d, minRetry), b.max)
}

// reset starts over after a connection that delivered an event.
func (b *backoff) reset() { b.failures = 0 }

// next returns the delay before the next attempt: uniform in
// [0, min(max, base·2^failures)] ("full jitter"), then counts the failure.
// A connection that delivered an event resets the count, so the first
// retry after it waits at most the base, as a browser would.
func (b *backoff) next() time.Duration {
	bound := b.base
	for i := 0; i < b.failures && bound < b.max; i++ {
		bound *= 2
	}
	bound = min(bound, b.max)
	b.failures++
	return time.Duration(b.randN(int64(bound) + 1))
}

// retryAfter parses a Retry-After header: delay-seconds or an HTTP date.
// It returns 0 when absent, invalid or in the past.
func retryAfter(h string, now time.Time) time.Duration {
	if h == "" {
		return 0
	}
	if s, err := strconv.ParseInt(h, 10, 64); err == nil {
		if s <= 0 {
			return 0
		}
		// Saturate rather than overflow on absurd values.
		if s > int64(maxRetry/time.Second) {
			return maxRetry
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
