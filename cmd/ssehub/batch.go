package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/ssekit/sse/internal/httpjson"
	"github.com/ssekit/sse/ssekit"
)

// A batch is a POST <prefix>/publish whose body is a JSON array of
// publishes, each with the fields of one publish and its own
// "idempotency_key": one request for a backend's many events to many
// addressees (ssekit.PublishBatch). Each event is checked and published
// on its own, and answered in "results", in order: a bad event is refused
// alone. The request as a whole is refused only when it is not an array
// of objects, over ssekit.MaxBatch events or over --max-batch-bytes.

// batchResult is the answer to one event of a batch: its id (and whether
// it was a replay), or the status and error a single publish of it would
// have had.
type batchResult struct {
	ID       string `json:"id,omitempty"`
	Replayed bool   `json:"replayed,omitempty"`
	Status   int    `json:"status"`
	Error    string `json:"error,omitempty"`
	Message  string `json:"message,omitempty"`
}

// batchResponse is the answer to a batch: one result per event, and how
// many were published.
type batchResponse struct {
	Published int           `json:"published"`
	Failed    int           `json:"failed"`
	Results   []batchResult `json:"results"`
}

// isBatch reports whether a publish body is a batch: a JSON array.
func isBatch(body []byte) bool {
	b := bytes.TrimLeft(body, " \t\r\n")
	return len(b) > 0 && b[0] == '['
}

// serveBatch publishes a batch: 200 with a result per event whatever
// became of each, or a 4xx for a body that is not a batch at all.
func (p *publishHandler) serveBatch(w http.ResponseWriter, r *http.Request, body []byte) {
	var items []json.RawMessage
	if err := json.Unmarshal(body, &items); err != nil {
		p.refuse(w, http.StatusBadRequest, fmt.Errorf("malformed JSON batch: %w", err))
		return
	}
	if len(items) == 0 {
		p.refuse(w, http.StatusBadRequest, fmt.Errorf("empty batch: send 1 to %d events", ssekit.MaxBatch))
		return
	}
	for i, raw := range items {
		if raw = bytes.TrimSpace(raw); raw[0] != '{' {
			p.refuse(w, http.StatusBadRequest, fmt.Errorf("malformed JSON batch: events[%d] is not an object: a batch is an array of publish bodies", i))
			return
		}
	}
	if len(items) > ssekit.MaxBatch {
		p.refuse(w, http.StatusRequestEntityTooLarge, fmt.Errorf("%d events in one batch: send at most %d per request", len(items), ssekit.MaxBatch))
		return
	}
	resp := batchResponse{Results: make([]batchResult, len(items))}
	pubs := make([]ssekit.Publication, 0, len(items))
	at := make([]int, 0, len(items)) // the item each publication is
	fail := func(i, status int, err error) {
		p.rejected(status)
		resp.Results[i] = batchResult{Status: status, Error: errorCode(status, err), Message: fmt.Sprintf("events[%d]: %v", i, err)}
		resp.Failed++
	}
	for i, raw := range items {
		req, err := decodeFields(raw, batchFields) // valid: the array was decoded
		if err != nil {
			fail(i, http.StatusBadRequest, err)
			continue
		}
		target, err := checkTarget(req.publishRequest, p.maxRecipients)
		if err == nil && req.IdempotencyKey != "" {
			if ssekit.CheckKey(req.IdempotencyKey) != nil {
				err = fmt.Errorf("idempotency_key %s is not a key: send 1 to %d bytes of visible ASCII without spaces, such as a UUID", quoteInput(req.IdempotencyKey), ssekit.MaxKeyLen)
			}
		}
		if err != nil {
			fail(i, http.StatusBadRequest, err)
			continue
		}
		pubs = append(pubs, ssekit.Publication{To: target, Event: req.event(), Key: req.IdempotencyKey})
		at = append(at, i)
	}
	results, err := p.hub.PublishBatch(r.Context(), pubs)
	if err != nil { // checked above: more than MaxBatch
		p.refuse(w, http.StatusRequestEntityTooLarge, err)
		return
	}
	for k, res := range results {
		i := at[k]
		if res.Err != nil {
			status, err := p.failure(res.Err, pubs[k].Key, pubs[k].Event.Type)
			fail(i, status, err)
			continue
		}
		if res.Replayed {
			p.metrics.keyReplays.Inc()
		} else {
			p.metrics.countPublish(pubs[k].To)
		}
		resp.Results[i] = batchResult{ID: res.ID, Replayed: res.Replayed, Status: http.StatusOK}
		resp.Published++
	}
	p.log.Debug("batch published", "events", len(items), "published", resp.Published, "failed", resp.Failed)
	httpjson.Write(w, http.StatusOK, resp)
}
