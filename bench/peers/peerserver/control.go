package main

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ssekit/sse/internal/benchwire"
)

// POST /control/publish is the in-process publisher: ssebench's
// -publish-control posts a plan, and the server publishes targeted events
// from inside its own process, through the adapter's publish (for ssekit
// that is Hub.Publish with Target{Users: …}, what SendToUser does), then
// answers with what it did. The protocol and the payload are
// internal/benchwire's, which ssebench uses too.

// maxPlan bounds a plan's body: an id and an index per user.
const maxPlan = 16 << 20

// controlHandler serves POST /control/publish for a. The request's
// context bounds the run: ssebench giving up stops the publishers.
func controlHandler(a adapter) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var plan benchwire.Plan
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxPlan))
		if err := dec.Decode(&plan); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		switch {
		case len(plan.Users) == 0 || len(plan.Users) != len(plan.Index):
			http.Error(w, "users and index must be as long, and not empty", http.StatusBadRequest)
			return
		case plan.Count <= 0 && plan.Duration <= 0:
			http.Error(w, "a plan needs a count or a duration", http.StatusBadRequest)
			return
		}
		rep := runPlan(r.Context(), a, plan)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(rep)
	}
}

// runPlan publishes the plan's events: Concurrency goroutines share the
// schedule (event g is due at start + (g-1)/Rate) as ssebench's
// publishers do, each event to a random user of the plan, numbered among
// that user's events.
func runPlan(ctx context.Context, a adapter, plan benchwire.Plan) *benchwire.Report {
	conc := max(plan.Concurrency, 1)
	seq := make([]atomic.Uint64, len(plan.Users))
	var calls callHist
	var next atomic.Uint64
	var attempted, accepted, failedN atomic.Int64
	var mu sync.Mutex
	var errs []string
	var failed [][2]uint64
	start := time.Now()
	var wg sync.WaitGroup
	for p := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(p), uint64(start.UnixNano())))
			var buf []byte
			var s uint64
			for {
				g := next.Add(1)
				if plan.Count > 0 && g > uint64(plan.Count) {
					return
				}
				var due time.Time
				if plan.Rate > 0 {
					due = start.Add(time.Duration(float64(g-1) / plan.Rate * 1e9))
					if d := time.Until(due); d > 0 && !benchwire.SleepCtx(ctx, d) {
						return
					}
				}
				if ctx.Err() != nil || (plan.Duration > 0 && time.Since(start) >= plan.Duration) {
					return
				}
				s++
				now := time.Now()
				sent := now
				if !due.IsZero() {
					sent = due // no coordinated omission, as in ssebench
				}
				i := rng.IntN(len(plan.Users))
				n := seq[i].Add(1)
				// The hub keeps the data it is given (json.RawMessage):
				// each event gets a buffer of its own.
				buf = benchwire.AppendPayload(make([]byte, 0, len(buf)), g, uint64(p), s, sent.UnixNano(), plan.Index[i], n, plan.PayloadSize)
				err := a.publish(ctx, plan.Users[i], buf)
				calls.record(uint64(time.Since(now).Microseconds()))
				attempted.Add(1)
				if err != nil {
					failedN.Add(1)
					mu.Lock()
					failed = append(failed, [2]uint64{plan.Index[i], n})
					if len(errs) < 5 && !slices.Contains(errs, err.Error()) {
						errs = append(errs, err.Error())
					}
					mu.Unlock()
					continue
				}
				accepted.Add(1)
			}
		}()
	}
	wg.Wait()
	rep := &benchwire.Report{
		Attempted: attempted.Load(), Accepted: accepted.Load(), Failed: failedN.Load(), Errors: errs,
		StartNs: start.UnixNano(), EndNs: time.Now().UnixNano(), FailedTo: failed, CallHist: calls.sparse(),
		Assigned: make([]uint64, len(seq)),
	}
	for i := range seq {
		rep.Assigned[i] = seq[i].Load()
	}
	return rep
}

// callHist counts the publish call's durations in ssebench's histogram
// buckets (benchwire.Bucket), so that the report's buckets add into its
// own.
type callHist struct {
	counts [benchwire.NBuckets]atomic.Uint64
}

func (h *callHist) record(v uint64) { h.counts[benchwire.Bucket(v)].Add(1) }

func (h *callHist) sparse() [][2]uint64 {
	var out [][2]uint64
	for i := range h.counts {
		if c := h.counts[i].Load(); c > 0 {
			out = append(out, [2]uint64{uint64(i), c})
		}
	}
	return out
}
