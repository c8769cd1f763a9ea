package main

import (
	"sync/atomic"

	"github.com/ssekit/sse/internal/benchwire"
)

// hist is a log-linear histogram of microsecond values, in the manner of
// HdrHistogram but fixed-size and lock-free: record is one atomic add, so
// connection goroutines can share one without a mutex.
type hist struct {
	counts [benchwire.NBuckets]uint64
}

// bucketMid returns a representative value of bucket i: its midpoint.
func bucketMid(i int) uint64 {
	if i < 1<<benchwire.SubBits {
		return uint64(i)
	}
	shift := i>>benchwire.SubBits - 1
	low := uint64(i&(1<<benchwire.SubBits-1)+1<<benchwire.SubBits) << shift
	return low + (uint64(1)<<shift)/2
}

// record adds one value; safe for concurrent use.
func (h *hist) record(v uint64) { atomic.AddUint64(&h.counts[benchwire.Bucket(v)], 1) }

// merge adds o's counts into h; not concurrent with record on h.
func (h *hist) merge(o *hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
}

// total returns how many values were recorded.
func (h *hist) total() uint64 {
	var n uint64
	for _, c := range h.counts {
		n += c
	}
	return n
}

// quantile returns the value at q (0..1), 0 for an empty histogram.
func (h *hist) quantile(q float64) uint64 {
	n := h.total()
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n) + 0.5)
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return bucketMid(i)
		}
	}
	return 0
}

// max returns the representative value of the highest non-empty bucket.
func (h *hist) max() uint64 {
	for i := len(h.counts) - 1; i >= 0; i-- {
		if h.counts[i] > 0 {
			return bucketMid(i)
		}
	}
	return 0
}

// sparse returns the non-empty buckets as [index, count] pairs, the form
// a worker process sends its histogram in.
func (h *hist) sparse() [][2]uint64 {
	var out [][2]uint64
	for i, c := range h.counts {
		if c > 0 {
			out = append(out, [2]uint64{uint64(i), c})
		}
	}
	return out
}

// addSparse adds counts received in the sparse form.
func (h *hist) addSparse(s [][2]uint64) {
	for _, p := range s {
		if p[0] < benchwire.NBuckets {
			h.counts[p[0]] += p[1]
		}
	}
}

// Summary is a latency distribution in microseconds, as reported.
type Summary struct {
	Count uint64 `json:"count"`
	P50   uint64 `json:"p50_us"`
	P90   uint64 `json:"p90_us"`
	P99   uint64 `json:"p99_us"`
	Max   uint64 `json:"max_us"`
}

func (h *hist) summary() Summary {
	return Summary{Count: h.total(), P50: h.quantile(0.50), P90: h.quantile(0.90), P99: h.quantile(0.99), Max: h.max()}
}
