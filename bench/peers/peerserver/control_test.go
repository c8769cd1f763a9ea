package main

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/ssekit/sse/internal/benchwire"
)

// countingAdapter records what the in-process publisher sends, and fails
// the publishes to user "bad".
type countingAdapter struct {
	mu   sync.Mutex
	sent map[string][]string // user → payloads
}

func (a *countingAdapter) stream(http.ResponseWriter, *http.Request, string) {}
func (a *countingAdapter) close()                                            {}
func (a *countingAdapter) publish(_ context.Context, user string, data []byte) error {
	if user == "bad" {
		return errors.New("refused")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.sent[user] = append(a.sent[user], string(data))
	return nil
}

// TestRunPlan checks the in-process publisher's report: every event is
// counted once, numbered 1, 2, … within its user, addressed by the index
// in its payload, and the failed ones are listed.
func TestRunPlan(t *testing.T) {
	t.Parallel()
	a := &countingAdapter{sent: map[string][]string{}}
	plan := benchwire.Plan{Users: []string{"a", "b", "bad"}, Index: []uint64{4, 7, 9}, Count: 300, Concurrency: 3}
	rep := runPlan(t.Context(), a, plan)
	if rep.Attempted != 300 || rep.Accepted+rep.Failed != 300 || int64(len(rep.FailedTo)) != rep.Failed {
		t.Fatalf("attempted %d accepted %d failed %d (%d listed); want 300 in all", rep.Attempted, rep.Accepted, rep.Failed, len(rep.FailedTo))
	}
	var total uint64
	for i, u := range plan.Users {
		total += rep.Assigned[i]
		if u == "bad" {
			continue
		}
		seen := map[uint64]bool{}
		for _, p := range a.sent[u] {
			if !strings.Contains(p, `,"u":`+strconv.FormatUint(plan.Index[i], 10)+`,"n":`) {
				t.Errorf("user %s: payload %s has the wrong addressee", u, p)
			}
			n, _ := strconv.ParseUint(p[strings.LastIndex(p, `"n":`)+4:len(p)-1], 10, 64)
			if n < 1 || n > rep.Assigned[i] || seen[n] {
				t.Errorf("user %s: event numbered %d (of %d), seen before: %v", u, n, rep.Assigned[i], seen[n])
			}
			seen[n] = true
		}
	}
	if total != 300 {
		t.Errorf("numbered %d events over the users, want 300", total)
	}
	for _, f := range rep.FailedTo {
		if f[0] != 9 {
			t.Errorf("failed event %v is not user bad's (index 9)", f)
		}
	}
}
