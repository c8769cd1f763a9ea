package main

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ssekit/sse/redisbroker"
	"github.com/ssekit/sse/ssekit"
)

// hubCollector exports a hub's Stats as Prometheus metrics. It reads one
// snapshot per scrape, so the hub pays nothing per event for metrics.
type hubCollector struct {
	hub *ssekit.Hub

	clients, users             *prometheus.Desc
	published, delivered       *prometheus.Desc
	replayed, resyncs, dropped *prometheus.Desc
	rejected, disconnects      *prometheus.Desc
}

var _ prometheus.Collector = (*hubCollector)(nil)

func newHubCollector(hub *ssekit.Hub) *hubCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("ssekit_"+name, help, labels, nil)
	}
	return &hubCollector{
		hub:         hub,
		clients:     d("connected_clients", "Event streams open on this node."),
		users:       d("connected_users", "Users with at least one stream open on this node."),
		published:   d("events_published_total", "Events published through this node, by event type.", "type"),
		delivered:   d("events_delivered_total", "Event frames queued to streams of this node, by event type (a broadcast to n streams counts n).", "type"),
		replayed:    d("events_replayed_total", "Events written from the history to resuming streams."),
		resyncs:     d("resyncs_total", "Resync events sent to streams that lost events of a channel: their Last-Event-ID was no longer in its history, or the history broke."),
		dropped:     d("events_dropped_total", "Events skipped for a stream whose buffer was full (overflow=drop).", "reason"),
		rejected:    d("streams_rejected_total", "Streams turned away with a retry hint: node full or shutting down."),
		disconnects: d("disconnects_total", "Streams ended, by reason.", "reason"),
	}
}

// Describe implements prometheus.Collector.
func (c *hubCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.clients, c.users, c.published, c.delivered, c.replayed, c.resyncs, c.dropped, c.rejected, c.disconnects} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *hubCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.hub.Stats()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(c.clients, float64(st.Clients))
	gauge(c.users, float64(st.Users))
	for typ, ts := range st.ByType {
		counter(c.published, ts.Published, typ)
		counter(c.delivered, ts.Delivered, typ)
	}
	counter(c.replayed, st.Replayed)
	counter(c.resyncs, st.Resyncs)
	counter(c.dropped, st.Dropped, "overflow")
	counter(c.rejected, st.Rejected)
	for reason, n := range st.Disconnects {
		counter(c.disconnects, n, reason)
	}
}

// serverMetrics are what the server itself counts, beside the hub.
type serverMetrics struct {
	registry        *prometheus.Registry
	authFailures    *prometheus.CounterVec
	publishRejected *prometheus.CounterVec
	rateLimited     *prometheus.CounterVec
	publishes       *prometheus.CounterVec
	keyReplays      prometheus.Counter
	keyConflicts    prometheus.Counter
}

// targetKinds are the values of ssekit_publishes_total's target label: the
// kinds of addressee a publish may name.
var targetKinds = []string{"all", "users", "clients", "tenant", "topics"}

// newServerMetrics returns a registry with the hub's metrics, the
// server's, and the Go runtime and process collectors.
func newServerMetrics(hub *ssekit.Hub) *serverMetrics {
	m := &serverMetrics{
		registry: prometheus.NewRegistry(),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ssekit_auth_failures_total",
			Help: "Requests refused with 401, by endpoint (stream, publish or presence).",
		}, []string{"endpoint"}),
		publishRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ssekit_publish_rejected_total",
			Help: "Publish requests refused for their input, by HTTP status.",
		}, []string{"code"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ssekit_rate_limited_total",
			Help: "Requests over a rate limit, by endpoint: streams turned away with a retry hint, publishes answered 429.",
		}, []string{"endpoint"}),
		publishes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ssekit_publishes_total",
			Help: "Publish requests accepted, by kind of target: all, users, clients, tenant, topics (a publish to several kinds counts once under each). A replay is not counted here but in ssekit_idempotency_replays_total.",
		}, []string{"target"}),
		keyReplays: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ssekit_idempotency_replays_total",
			Help: "Publish requests answered with the id of an earlier publish with the same Idempotency-Key, storing and sending nothing: retries of a publish that had been stored.",
		}),
		keyConflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ssekit_idempotency_conflicts_total",
			Help: "Publish requests refused with 422: their Idempotency-Key was used within the window for a different publish.",
		}),
	}
	// Every kind from the start, so that a dashboard's rate() sees the
	// first publish of a kind rather than a series appearing at 1.
	for _, kind := range targetKinds {
		m.publishes.WithLabelValues(kind)
	}
	m.registry.MustRegister(
		newHubCollector(hub),
		m.authFailures,
		m.publishRejected,
		m.rateLimited,
		m.publishes,
		m.keyReplays,
		m.keyConflicts,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	// The keys a memory broker remembers, read per scrape (under the
	// broker's lock, as a publish takes it). A Redis broker's keys expire
	// in Redis on their own, and counting them would cost a SCAN: cluster
	// mode counts the keys this node recorded instead, from which the
	// keys Redis holds are the increase over --idempotency-window.
	switch b := hub.Broker().(type) {
	case *ssekit.MemoryBroker:
		m.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "ssekit_idempotency_keys",
			Help: "Idempotency-Keys the in-memory broker remembers, within --idempotency-window and at most --max-idempotency-keys.",
		}, func() float64 { return float64(b.Keys()) }))
	case *redisbroker.Broker:
		m.registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "ssekit_idempotency_keys_recorded_total",
			Help: "Idempotency-Keys this node recorded in Redis, each kept for --idempotency-window: increase(...[window]) summed over the nodes is what Redis holds.",
		}, func() float64 { return float64(b.Ops().KeysRecorded) }))
	}
	return m
}

// countPublish counts an accepted publish to t under each kind of
// addressee it names.
func (m *serverMetrics) countPublish(t ssekit.Target) {
	count := func(kind string, named bool) {
		if named {
			m.publishes.WithLabelValues(kind).Inc()
		}
	}
	count("all", t.All)
	count("users", t.Users != nil)
	count("clients", t.Clients != nil)
	count("tenant", t.Tenants != nil)
	count("topics", t.Topics != nil)
}

// handler serves the registry in the Prometheus text format.
func (m *serverMetrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}
