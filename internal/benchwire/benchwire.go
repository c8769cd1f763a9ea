// Package benchwire is what the load generator (cmd/ssebench) and the
// benchmark's peer servers (bench/peers/peerserver) must agree on: the
// event payload, the histogram's buckets, and the in-process publisher's
// control protocol (Plan, Report). One definition, so that the two sides
// cannot drift.
package benchwire

import (
	"context"
	"math/bits"
	"strconv"
	"time"
)

// AppendPayload appends an event's payload: g its global sequence number,
// p the publisher, s that publisher's own sequence number, t the send time
// in Unix nanoseconds and, for an event to one user (n > 0), u the user's
// index and n the event's number among that user's events; padded with an
// "x" field so that the whole is at least size bytes.
//
//	{"g":17,"p":2,"s":5,"t":1764190000123456789,"x":"…"}
//	{"g":18,"p":2,"s":6,"t":1764190000123466789,"u":4711,"n":3}
func AppendPayload(b []byte, g, p, s uint64, t int64, u, n uint64, size int) []byte {
	start := len(b)
	b = append(b, `{"g":`...)
	b = strconv.AppendUint(b, g, 10)
	b = append(b, `,"p":`...)
	b = strconv.AppendUint(b, p, 10)
	b = append(b, `,"s":`...)
	b = strconv.AppendUint(b, s, 10)
	b = append(b, `,"t":`...)
	b = strconv.AppendInt(b, t, 10)
	if n > 0 {
		b = append(b, `,"u":`...)
		b = strconv.AppendUint(b, u, 10)
		b = append(b, `,"n":`...)
		b = strconv.AppendUint(b, n, 10)
	}
	if pad := size - (len(b) - start) - len(`,"x":""}`); pad > 0 {
		b = append(b, `,"x":"`...)
		for range pad {
			b = append(b, 'x')
		}
		b = append(b, '"')
	}
	return append(b, '}')
}

// SubBits sets the histograms' precision: 2^SubBits buckets per power of
// two, so a bucket is at most 1/32 (3 %) wide relative to its values.
const SubBits = 5

// NBuckets covers every uint64 value.
const NBuckets = (64 - SubBits) << SubBits

// Bucket maps v to its bucket: values below 2^SubBits have their own
// bucket, larger ones share a power-of-two range split 2^SubBits ways.
// A Report's histogram is in these buckets, so that the generator adds
// it into its own.
func Bucket(v uint64) int {
	if v < 1<<SubBits {
		return int(v)
	}
	shift := bits.Len64(v) - SubBits - 1
	return (shift+1)<<SubBits + int(v>>shift) - 1<<SubBits
}

// Plan is the body of an in-process publisher's control request
// (ssebench -publish-control): the server publishes these targeted events
// from inside its own process, with the payloads ssebench would have sent.
type Plan struct {
	Users       []string      `json:"users"` // ids of the connected users, the addressees
	Index       []uint64      `json:"index"` // their indices, the payloads' u, in the same order
	Rate        float64       `json:"rate"`  // events/s over all publishers; 0: as fast as accepted
	Count       int           `json:"count"` // 0: until Duration
	Duration    time.Duration `json:"duration_ns"`
	Concurrency int           `json:"concurrency"` // publishing goroutines
	PayloadSize int           `json:"payload_size"`
}

// Report is the answer to a Plan: counts, the events numbered for each
// user and the failed ones, and the publish call's duration as a
// histogram (sparse [Bucket, count] pairs, microseconds).
type Report struct {
	Attempted int64       `json:"attempted"`
	Accepted  int64       `json:"accepted"`
	Failed    int64       `json:"failed"`
	Errors    []string    `json:"errors,omitempty"`
	StartNs   int64       `json:"start_ns"`
	EndNs     int64       `json:"end_ns"`
	Assigned  []uint64    `json:"assigned"`            // by entry of Users: n ran 1..Assigned
	FailedTo  [][2]uint64 `json:"failed_to,omitempty"` // (index, n) of failed publishes
	CallHist  [][2]uint64 `json:"call_hist"`
}

// SleepCtx sleeps for d; it reports false if ctx ended first.
func SleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
