package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/ssekit/sse/ssekit"
)

// publisher is the publish command's client of POST <prefix>/publish.
type publisher struct {
	endpoint string
	key      string
	timeout  time.Duration
	client   *http.Client
}

// batchBytes bounds the body of one batch the command sends, under the
// hub's default --max-batch-bytes (8 MiB).
const batchBytes = 4 << 20

// post sends one publish body (with its Idempotency-Key, if any) and
// returns the answer's body, or an error naming the hub's reason.
func (p *publisher) post(ctx context.Context, body []byte, idemKey string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+p.key)
	req.Header.Set("Content-Type", "application/json")
	if idemKey != "" {
		req.Header.Set(idempotencyHeader, idemKey)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("publish: read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error, Message string }
		if json.Unmarshal(raw, &e) == nil && e.Message != "" {
			return nil, fmt.Errorf("publish: %s: %s", resp.Status, e.Message)
		}
		return nil, fmt.Errorf("publish: %s", resp.Status)
	}
	return raw, nil
}

// lineResult is the command's answer for one line of a batch file.
type lineResult struct {
	Line int `json:"line"`
	batchResult
}

// batchFile publishes the NDJSON file name ("-": stdin) in batches of up
// to ssekit.MaxBatch events and batchBytes, writing one JSON result per
// event line to stdout, in order. A line that is not a JSON object is
// answered without being sent; blank lines are skipped. It fails when any
// event failed, or a batch could not be sent (its lines' results say so,
// and the lines after it are not sent).
func (p *publisher) batchFile(ctx context.Context, name string, stdin io.Reader, stdout io.Writer) error {
	in := stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return fmt.Errorf("publish: --batch: %w", err)
		}
		defer f.Close()
		in = f
	}
	out := json.NewEncoder(stdout)
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), batchBytes)
	var (
		lines  []int // the line of each event of the batch being gathered
		body   = []byte{'['}
		failed int
		total  int
	)
	flush := func() error {
		if len(lines) == 0 {
			return nil
		}
		body = append(body, ']')
		results, err := p.sendBatch(ctx, body, len(lines))
		for i, line := range lines {
			r := lineResult{Line: line}
			if err != nil {
				r.batchResult = batchResult{Error: "not_sent", Message: err.Error()}
			} else {
				r.batchResult = results[i]
			}
			if r.Status != http.StatusOK {
				failed++
			}
			_ = out.Encode(r)
		}
		lines, body = lines[:0], append(body[:0], '[')
		return err
	}
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		total++
		if line[0] != '{' || !json.Valid(line) {
			failed++
			_ = out.Encode(lineResult{Line: n, batchResult: batchResult{Status: http.StatusBadRequest, Error: "bad_request", Message: "not a JSON object: each line is one publish body"}})
			continue
		}
		if len(lines) == ssekit.MaxBatch || len(body)+len(line)+2 > batchBytes {
			if err := flush(); err != nil {
				return err
			}
		}
		if len(lines) > 0 {
			body = append(body, ',')
		}
		body = append(body, line...)
		lines = append(lines, n)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("publish: --batch: read: %w", err)
	}
	if err := flush(); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("publish: %d of %d events failed (see their results)", failed, total)
	}
	return nil
}

// sendBatch posts one batch of n events and returns their results.
func (p *publisher) sendBatch(ctx context.Context, body []byte, n int) ([]batchResult, error) {
	raw, err := p.post(ctx, body, "")
	if err != nil {
		return nil, err
	}
	var resp batchResponse
	if err := json.Unmarshal(raw, &resp); err != nil || len(resp.Results) != n {
		return nil, errors.New("publish: unexpected answer to a batch")
	}
	return resp.Results, nil
}
