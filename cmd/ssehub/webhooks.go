package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"hash/fnv"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ssekit/sse/ssekit"
)

// Presence webhooks: each time a user comes online (its first stream on
// any node) or goes offline (no stream anywhere for --webhook-debounce),
// the hub POSTs a signed JSON body to --webhook-url. In cluster mode the
// node whose Redis script saw the change sends it, so each change is sent
// by exactly one node.
//
// Delivery is at least once: a retry carries the same id, for the
// receiver to drop repeats. A user's changes carry a seq that grows with
// each (decided in the user's Redis slot, whichever node sends it): they
// can arrive out of order (two nodes, retries), and the receiver keeps
// the highest seq of each user. The body and the signature are documented
// in docs/ssehub.md, with a receiver's check.

// The webhook's event types.
const (
	webhookOnline  = "user.online"
	webhookOffline = "user.offline"
)

// signatureHeader carries a delivery's signature: "t=<unix seconds>,
// v1=<hex HMAC-SHA256(secret, "<t>.<body>")>", as Stripe signs its
// webhooks, so that a receiver checks the body and its age with one key.
const signatureHeader = "Ssekit-Signature"

// webhookEvent is the body of a delivery.
type webhookEvent struct {
	ID     string    `json:"id"`   // unique per change; the same on every retry
	Type   string    `json:"type"` // user.online or user.offline
	User   string    `json:"user"`
	Tenant string    `json:"tenant,omitempty"` // the tenant of the stream that made the change
	Time   time.Time `json:"time"`             // when the hub saw the change
	// Seq orders the user's changes: higher is newer (PresenceChange.Seq).
	Seq int64 `json:"seq"`
}

// Retries: attempts are spaced by an exponential backoff from
// webhookBackoff, doubled each time up to webhookMaxBackoff, with full
// jitter, for webhookAttempts attempts in all (about a minute), each
// bounded by webhookTimeout.
const (
	webhookAttempts   = 6
	webhookBackoff    = time.Second
	webhookMaxBackoff = 30 * time.Second
	webhookTimeout    = 10 * time.Second
	// webhookWorkers deliver at once; a user's changes this node sends
	// always go through the same one, in order. (Changes sent by other
	// nodes are not ordered with them: receivers order by seq.)
	webhookWorkers = 4
)

// webhooks delivers presence changes to one URL. enqueue never blocks:
// a change that finds its worker's queue full is dropped and counted.
// Its goroutines (webhookWorkers) stop in close.
type webhooks struct {
	url     string
	secret  []byte
	client  *http.Client
	log     *slog.Logger
	backoff time.Duration // the first retry's; doubled each time
	queues  []chan webhookEvent
	stop    context.Context // done when close gives up on what is queued
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	once    sync.Once
	// mu orders enqueue's sends against close's closing of the queues:
	// closed is set under it, and a change that comes later is dropped.
	mu     sync.RWMutex
	closed bool

	sent, failed, dropped prometheus.Counter
}

// newWebhooks starts the workers of cfg's webhook, or returns nil when
// none is configured.
func newWebhooks(cfg config, log *slog.Logger) *webhooks {
	if cfg.WebhookURL == "" {
		return nil
	}
	w := &webhooks{
		url:    cfg.WebhookURL,
		secret: []byte(cfg.WebhookSecret),
		log:    log,
		client: &http.Client{
			Timeout: webhookTimeout,
			// A redirect is a misconfigured URL, not something to follow
			// with a signed body.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		backoff: cfg.webhookBackoff,
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ssekit_webhook_sent_total",
			Help: "Presence webhooks (user.online, user.offline) the receiver accepted with a 2xx.",
		}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ssekit_webhook_failed_total",
			Help: "Presence webhooks given up on after their last attempt, or refused by the receiver with a 4xx other than 408 and 429.",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ssekit_webhook_dropped_total",
			Help: "Presence webhooks dropped unsent: the queue (--webhook-queue) was full, or the hub shut down before their turn.",
		}),
	}
	if w.backoff <= 0 {
		w.backoff = webhookBackoff
	}
	w.stop, w.cancel = context.WithCancel(context.Background())
	per := max(cfg.WebhookQueue/webhookWorkers, 1)
	for range webhookWorkers {
		q := make(chan webhookEvent, per)
		w.queues = append(w.queues, q)
		w.wg.Go(func() { w.work(q) })
	}
	return w
}

// collectors returns the webhook's metrics.
func (w *webhooks) collectors() []prometheus.Collector {
	return []prometheus.Collector{w.sent, w.failed, w.dropped}
}

// enqueue queues a change for delivery, without blocking: it is the
// hub's Config.OnPresence, which runs on the goroutine that saw the
// change.
func (w *webhooks) enqueue(ch ssekit.PresenceChange) {
	ev := webhookEvent{ID: "evt_" + uuid.NewString(), Type: webhookOffline, User: ch.User, Tenant: ch.Tenant, Time: ch.Time.UTC(), Seq: ch.Seq}
	if ch.Online {
		ev.Type = webhookOnline
	}
	h := fnv.New32a()
	h.Write([]byte(ch.User))
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		w.dropped.Inc()
		return
	}
	select {
	case w.queues[h.Sum32()%uint32(len(w.queues))] <- ev:
	default:
		w.dropped.Inc()
		w.log.Warn("webhook queue full: change dropped", "type", ev.Type, "user", ev.User)
	}
}

// work delivers one queue's changes in order until close.
func (w *webhooks) work(q chan webhookEvent) {
	for {
		select {
		case ev, ok := <-q:
			if !ok {
				return
			}
			w.deliver(ev)
		case <-w.stop.Done():
			// Out of time: what is left is dropped, and counted.
			w.dropped.Add(float64(len(q)))
			return
		}
	}
}

// deliver sends ev, retrying as the constants say, until it is accepted,
// refused for good, out of attempts, or close gives up.
func (w *webhooks) deliver(ev webhookEvent) {
	body, err := json.Marshal(ev)
	if err != nil { // a struct of strings and a time: cannot happen
		w.failed.Inc()
		return
	}
	wait := w.backoff
	for attempt := 1; ; attempt++ {
		status, err := w.post(body)
		switch {
		case err == nil && status/100 == 2:
			w.sent.Inc()
			return
		case err == nil && status/100 == 4 && status != http.StatusRequestTimeout && status != http.StatusTooManyRequests:
			w.failed.Inc()
			w.log.Warn("webhook refused; not retried", "status", status, "type", ev.Type, "id", ev.ID)
			return
		case attempt == webhookAttempts:
			w.failed.Inc()
			w.log.Warn("webhook failed; giving up", "attempts", attempt, "status", status, "err", err, "type", ev.Type, "id", ev.ID)
			return
		}
		// Full jitter: receivers that come back are not hit by every
		// node's retries at once.
		t := time.NewTimer(time.Duration(rand.Int64N(int64(wait)) + 1))
		select {
		case <-t.C:
		case <-w.stop.Done():
			t.Stop()
			w.dropped.Inc()
			return
		}
		wait = min(2*wait, webhookMaxBackoff)
	}
}

// post makes one attempt, signed at this moment (a retry is signed
// again, so that its timestamp stays within a receiver's tolerance).
func (w *webhooks) post(body []byte) (int, error) {
	req, err := http.NewRequestWithContext(w.stop, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "ssehub-webhook")
	req.Header.Set(signatureHeader, signWebhook(w.secret, time.Now().Unix(), body))
	resp, err := w.client.Do(req)
	if err != nil {
		return 0, err
	}
	// Read (a little of) the answer, so that the connection is reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	return resp.StatusCode, nil
}

// signWebhook returns the signature header of body sent at unix time t.
func signWebhook(secret []byte, t int64, body []byte) string {
	ts := strconv.FormatInt(t, 10)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts))
	mac.Write([]byte("."))
	mac.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

// close stops taking changes and delivers what is queued until ctx is
// done (or webhookTimeout, for a ctx without a deadline), then drops the
// rest (counted) and waits for the workers.
func (w *webhooks) close(ctx context.Context) {
	if w == nil {
		return
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, webhookTimeout)
		defer cancel()
	}
	w.once.Do(func() {
		w.mu.Lock()
		w.closed = true
		for _, q := range w.queues {
			close(q)
		}
		w.mu.Unlock()
		stop := context.AfterFunc(ctx, w.cancel)
		w.wg.Wait()
		stop()
		w.cancel()
	})
}
