package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/ssekit/sse/internal/benchwire"
)

// The in-process publisher: library users call SendToUser from inside
// their server, so that is what -publish-control measures. ssebench posts
// a plan (benchwire.Plan) to the server's control URL; the server publishes
// the events itself, with the payloads ssebench would have sent, and
// answers when done with what it did (benchwire.Report); the streams are
// then drained and accounted exactly as in an HTTP-published run.
// peerserver's POST /control/publish speaks this protocol.

// publishInProcess has the server publish the run's events.
func publishInProcess(ctx context.Context, cfg publishConfig, connUsers []uint64) (*pubResult, error) {
	addr := newAddressing(connUsers)
	if len(addr.users) == 0 {
		return nil, errors.New("targeted: no connected user to address")
	}
	plan := benchwire.Plan{
		Index: addr.users, Rate: cfg.Rate, Count: cfg.Count, Duration: cfg.Duration,
		Concurrency: max(cfg.Concurrency, 1), PayloadSize: cfg.PayloadSize,
	}
	for _, u := range addr.users {
		plan.Users = append(plan.Users, string(addr.names[u]))
	}
	body, err := json.Marshal(plan)
	if err != nil {
		return nil, err
	}
	// The answer comes when the server is done publishing.
	bound := cfg.Duration + cfg.Timeout
	if cfg.Count > 0 && cfg.Rate > 0 {
		bound = max(bound, time.Duration(float64(cfg.Count)/cfg.Rate*1e9)+cfg.Timeout)
	}
	if cfg.Duration == 0 && cfg.Rate == 0 {
		bound = 0 // a count as fast as accepted: only ctx (-max-duration) bounds it
	}
	client := &http.Client{Timeout: bound}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.Control, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxMsg))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("control: status %s: %.200s", resp.Status, b)
	}
	var rep benchwire.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	return reportResult(&rep, addr.users)
}

// reportResult turns the server's report into the publishers' result.
func reportResult(rep *benchwire.Report, index []uint64) (*pubResult, error) {
	if len(rep.Assigned) != len(index) {
		return nil, fmt.Errorf("control: %d counts for %d users", len(rep.Assigned), len(index))
	}
	res := &pubResult{
		Attempted: rep.Attempted, Accepted: rep.Accepted, Failed: rep.Failed, Requests: rep.Attempted,
		Errors: rep.Errors, Start: time.Unix(0, rep.StartNs), End: time.Unix(0, rep.EndNs),
	}
	res.RoundTrip.addSparse(rep.CallHist)
	e := expectation{PerUser: make([]int64, index[len(index)-1]+1), Failed: rep.FailedTo}
	for i, u := range index {
		e.PerUser[u] = int64(rep.Assigned[i])
	}
	for _, f := range rep.FailedTo {
		if f[0] >= uint64(len(e.PerUser)) {
			return nil, fmt.Errorf("control: failed event for unknown user %d", f[0])
		}
		e.PerUser[f[0]]--
	}
	res.Expect = e
	return res, nil
}
