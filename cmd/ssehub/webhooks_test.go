package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/ssekit/sse/internal/ssetest"
	"github.com/ssekit/sse/ssekit"
)

const testWebhookSecret = "whsec-test-0123456789abcdef"

// verifyWebhook is a receiver's check, as docs/ssehub.md gives it: the
// signature over "<t>.<body>" compared in constant time, and a timestamp
// within five minutes of now, so that a delivery captured and sent again
// later is refused. (The receiver also drops a delivery id it has seen.)
func verifyWebhook(secret []byte, header string, body []byte, now time.Time) error {
	var ts string
	var sigs []string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	t, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return errors.New("malformed Ssekit-Signature")
	}
	mac := hmac.New(sha256.New, secret)
	fmt.Fprintf(mac, "%d.", t)
	mac.Write(body)
	want := []byte(hex.EncodeToString(mac.Sum(nil)))
	ok := false
	for _, s := range sigs {
		ok = ok || hmac.Equal([]byte(s), want)
	}
	if !ok {
		return errors.New("signature does not match")
	}
	if age := now.Sub(time.Unix(t, 0)); age > 5*time.Minute || age < -5*time.Minute {
		return errors.New("timestamp outside the tolerance: a replay?")
	}
	return nil
}

// webhookMemory is what a receiver keeps, as docs/ssehub.md gives it:
// the ids it has processed, each for 10 minutes (a delivery is accepted
// while its t is within 5 minutes of the receiver's clock either side, and
// a retry is signed again: 5 minutes of the id would let a replay of a
// delivery signed in the receiver's future through), and the highest seq
// of each user, since changes can arrive out of order.
type webhookMemory struct {
	mu   sync.Mutex
	ids  map[string]time.Time // id → when it may be forgotten
	seqs map[string]int64     // user → the seq of its newest change applied
}

// apply reports whether ev is to be acted on: an id not seen in the last
// 10 minutes, and a change newer than the user's last one. Either way the
// receiver answers 2xx.
func (m *webhookMemory) apply(ev webhookEvent, now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ids == nil {
		m.ids, m.seqs = map[string]time.Time{}, map[string]int64{}
	}
	for id, until := range m.ids {
		if now.After(until) {
			delete(m.ids, id)
		}
	}
	if _, seen := m.ids[ev.ID]; seen {
		return false
	}
	m.ids[ev.ID] = now.Add(10 * time.Minute)
	if ev.Seq <= m.seqs[ev.User] {
		return false // older than what the receiver has: out of order
	}
	m.seqs[ev.User] = ev.Seq
	return true
}

// receiver is a webhook endpoint: it answers 500 to the first fail
// requests, then 200, and keeps every request.
type receiver struct {
	srv  *httptest.Server
	mu   sync.Mutex
	fail int
	reqs []delivery
	// block, when set, holds each request until it is closed.
	block chan struct{}
	// entered receives a value as each request arrives, when set.
	entered chan struct{}
}

// delivery is one request a receiver got.
type delivery struct {
	sig    string
	body   []byte
	ev     webhookEvent
	status int
}

func newReceiver(t *testing.T, fail int) *receiver {
	r := &receiver{fail: fail}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if r.entered != nil {
			r.entered <- struct{}{}
		}
		if r.block != nil {
			<-r.block
		}
		body, _ := io.ReadAll(req.Body)
		d := delivery{sig: req.Header.Get(signatureHeader), body: body, status: http.StatusOK}
		if err := json.Unmarshal(body, &d.ev); err != nil {
			t.Errorf("webhook body %q: %v", body, err)
		}
		r.mu.Lock()
		if r.fail > 0 {
			r.fail--
			d.status = http.StatusInternalServerError
		}
		r.reqs = append(r.reqs, d)
		r.mu.Unlock()
		w.WriteHeader(d.status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// accepted returns the deliveries answered 200, one per id, in order.
func (r *receiver) accepted() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[string]bool{}
	var out []delivery
	for _, d := range r.reqs {
		if d.status == http.StatusOK && !seen[d.ev.ID] {
			seen[d.ev.ID] = true
			out = append(out, d)
		}
	}
	return out
}

func (r *receiver) all() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.reqs...)
}

// types returns the types of ds, with their user.
func types(ds []delivery) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.ev.Type+" "+d.ev.User)
	}
	return out
}

// TestWebhooks: a user whose stream opens, closes and reopens faster than
// the debounce, several times, makes one user.online and, once it stays
// away, one user.offline; the first attempt, answered 500, is retried
// with the same id; every delivery passes the documented check, which
// refuses it sent again later, or altered; the metrics count them.
func TestWebhooks(t *testing.T) {
	t.Parallel()
	recv := newReceiver(t, 1)
	const debounce = 5 * time.Second // far longer than three reconnects
	cfg := testConfig(t, "--webhook-url", recv.srv.URL+"/hooks", "--webhook-secret", testWebhookSecret, "--webhook-debounce", debounce.String())
	cfg.webhookBackoff = 20 * time.Millisecond
	ta := newTestApp(t, cfg, nil)
	user := uuid.NewString()
	s := openStream(t, ta.srv.URL+"/sse/stream", bearerAuth(token(t, user)))
	s.nextOf(t, "connected")
	start := time.Now()
	for range 3 { // fast reconnects: no change
		s.close()
		s = openStream(t, ta.srv.URL+"/sse/stream", bearerAuth(token(t, user)))
		s.nextOf(t, "connected")
	}
	if took := time.Since(start); took > debounce/2 {
		t.Fatalf("three reconnects took %v, over half the debounce: the test cannot tell them from a change", took)
	}
	s.close()
	ssetest.Eventually(t, "user.offline", func() bool { return len(recv.accepted()) >= 2 })
	got := types(recv.accepted())
	if want := []string{webhookOnline + " " + user, webhookOffline + " " + user}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("webhooks %q, want %q", got, want)
	}
	all := recv.all()
	if all[0].status != http.StatusInternalServerError || all[1].ev.ID != all[0].ev.ID {
		t.Fatalf("first attempts %q: want the first answered 500, then retried with its id", types(all[:2]))
	}
	now := time.Now()
	var mem webhookMemory
	var applied []string
	for _, d := range all {
		if err := verifyWebhook([]byte(testWebhookSecret), d.sig, d.body, now); err != nil {
			t.Fatalf("delivery %s: %v", d.ev.ID, err)
		}
		if d.status == http.StatusOK && mem.apply(d.ev, now) {
			applied = append(applied, d.ev.Type)
		}
	}
	if acc := recv.accepted(); acc[0].ev.Seq <= 0 || acc[1].ev.Seq <= acc[0].ev.Seq {
		t.Fatalf("seqs %d then %d: want them growing", acc[0].ev.Seq, acc[1].ev.Seq)
	}
	if strings.Join(applied, ",") != webhookOnline+","+webhookOffline {
		t.Fatalf("the receiver's memory applied %q, want online then offline", applied)
	}
	first := all[1]
	// Its t is still within the tolerance 4 minutes later: the id is kept.
	if mem.apply(first.ev, now.Add(4*time.Minute)) {
		t.Fatal("the receiver's memory applied a delivery again within the tolerance")
	}
	if err := verifyWebhook([]byte(testWebhookSecret), first.sig, first.body, now.Add(6*time.Minute)); err == nil {
		t.Fatal("the documented check accepted a delivery replayed six minutes later")
	}
	altered := []byte(strings.Replace(string(first.body), user, uuid.NewString(), 1))
	if err := verifyWebhook([]byte(testWebhookSecret), first.sig, altered, now); err == nil {
		t.Fatal("the documented check accepted an altered body")
	}
	if err := verifyWebhook([]byte("another-secret-0123456789"), first.sig, first.body, now); err == nil {
		t.Fatal("the documented check accepted another key's signature")
	}
	if sent := counterValue(ta.hooks.sent); sent < 2 {
		t.Fatalf("ssekit_webhook_sent_total = %v, want 2", sent)
	}
}

// TestWebhookMemoryOrders: a receiver that keeps the highest seq of each
// user ends with the newest change whatever the order of arrival: an
// online sent by one node, retried, arriving after the offline another
// node sent later, is dropped.
func TestWebhookMemoryOrders(t *testing.T) {
	t.Parallel()
	now := time.Now()
	on := webhookEvent{ID: "evt_1", Type: webhookOnline, User: "u", Seq: 100}
	off := webhookEvent{ID: "evt_2", Type: webhookOffline, User: "u", Seq: 101}
	var mem webhookMemory
	if !mem.apply(off, now) || mem.apply(on, now) || mem.apply(off, now.Add(9*time.Minute)) {
		t.Fatal("the offline, then the older online, then the offline again: want only the first applied")
	}
	if !mem.apply(webhookEvent{ID: "evt_3", Type: webhookOnline, User: "u", Seq: 102}, now) {
		t.Fatal("a newer online was not applied")
	}
}

// TestWebhookQueueDrops: with the receiver stuck and the queue full, a
// change is dropped, not waited for, and counted; close gives up on what
// is queued at its deadline, counting it dropped too, and its workers
// end.
func TestWebhookQueueDrops(t *testing.T) {
	t.Parallel()
	recv := newReceiver(t, 0)
	recv.block, recv.entered = make(chan struct{}), make(chan struct{}, 100)
	cfg := testConfig(t, "--webhook-url", recv.srv.URL, "--webhook-secret", testWebhookSecret, "--webhook-queue", "4")
	w := newWebhooks(cfg, slog.New(slog.DiscardHandler))
	change := ssekit.PresenceChange{User: "u", Online: true, Time: time.Now()}
	w.enqueue(change) // taken by its worker, which the receiver holds
	<-recv.entered
	w.enqueue(change) // the worker's queue holds one
	for range 3 {
		w.enqueue(change)
	}
	if d := counterValue(w.dropped); d != 3 {
		t.Fatalf("ssekit_webhook_dropped_total = %v, want 3", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // no time left: the queued one is dropped, the held one cut
	w.close(ctx)
	close(recv.block)
	// The queued one and the one in flight.
	if d := counterValue(w.dropped); d != 5 {
		t.Fatalf("after close, ssekit_webhook_dropped_total = %v, want 5", d)
	}
	w.enqueue(change) // after close: dropped, never a send on a closed queue
	if d := counterValue(w.dropped); d != 6 {
		t.Fatalf("a change after close: ssekit_webhook_dropped_total = %v, want 6", d)
	}
}

// TestWebhookConfig: the webhook's settings are checked at start-up.
func TestWebhookConfig(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"--webhook-url", "https://app.example.com/h"},
		{"--webhook-url", "https://app.example.com/h", "--webhook-secret", "short"},
		{"--webhook-secret", testWebhookSecret},
		{"--webhook-url", "http://app.example.com/h", "--webhook-secret", testWebhookSecret},
		{"--webhook-url", "ftp://app.example.com/h", "--webhook-secret", testWebhookSecret},
		{"--webhook-url", "app.example.com/h", "--webhook-secret", testWebhookSecret},
		{"--webhook-debounce", "-1s"},
		{"--webhook-queue", "0"},
	} {
		all := append([]string{"--jwt-secret", testSecret, "--publish-key", testKey}, args...)
		if _, err := parseConfig(all, noEnv, io.Discard); err == nil || !strings.Contains(err.Error(), "--webhook-") {
			t.Errorf("%q: err %v, want one naming the webhook setting", args, err)
		}
	}
	c := testConfig(t, "--webhook-url", "http://127.0.0.1:9/h", "--webhook-secret", testWebhookSecret)
	if c.WebhookDebounce != 5*time.Second || hubConfig(c, nil).PresenceDebounce != 5*time.Second {
		t.Fatalf("default debounce %v, want 5s, also the hub's", c.WebhookDebounce)
	}
}

// counterValue reads a counter.
func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}
