package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/ssekit/sse/internal/httpjson"
	"github.com/ssekit/sse/ssekit"
)

// healthTimeout bounds the cluster check of one /healthz request.
const healthTimeout = 2 * time.Second

// app is the server's routes over one hub. newApp builds it; serve runs it
// behind an http.Server and shuts it down.
type app struct {
	cfg     config
	log     *slog.Logger
	hub     *ssekit.Hub
	cluster cluster // nil in memory mode
	verify  *verifier
	metrics *serverMetrics
	limits  *limits
	hooks   *webhooks // nil without --webhook-url
	handler http.Handler
}

// newApp builds the hub (on the cluster's broker, when there is one) and
// the routes, after loading the keys of --jwks-url, if set (openJWKS);
// ctx bounds only that. cfg must hold a publish key, and a JWT secret
// unless it has a JWKS URL (see fillDevSecrets). The caller owns the
// result and stops it with close, which also closes cl.
func newApp(ctx context.Context, cfg config, log *slog.Logger, cl cluster) (*app, error) {
	var keys *jwks
	if cfg.JWKSURL != "" {
		var err error
		if keys, err = openJWKS(ctx, cfg, log); err != nil {
			return nil, err
		}
	}
	hc := hubConfig(cfg, log)
	if cl != nil {
		hc.Broker = cl.Broker()
	}
	hooks := newWebhooks(cfg, log)
	if hooks != nil {
		hc.OnPresence = hooks.enqueue
	}
	hub, err := ssekit.New(hc)
	if err != nil {
		keys.Close()
		hooks.close(ctx)
		return nil, err
	}
	if cl != nil {
		cl.Start(hub)
	}
	a := &app{
		cfg:     cfg,
		log:     log,
		hub:     hub,
		cluster: cl,
		verify:  newVerifier(cfg.JWTSecret, cfg.JWTIssuer, cfg.JWTAudience, cfg.TenantClaim),
		metrics: newServerMetrics(hub),
		limits:  newLimits(cfg),
		hooks:   hooks,
	}
	if hooks != nil {
		a.metrics.registry.MustRegister(hooks.collectors()...)
	}
	if keys != nil {
		a.verify.keys = keys
		a.metrics.registry.MustRegister(keys.Collectors()...)
	}
	a.handler = a.routes()
	return a, nil
}

// hubConfig translates the settings to the library's Config, whose zero
// values mean "default" and negative ones "none": ssehub's flags say 0 for
// "none", which is what a person typing a flag expects.
func hubConfig(c config, log *slog.Logger) ssekit.Config {
	none := func(v int) int {
		if v == 0 {
			return -1
		}
		return v
	}
	none64 := func(v int64) int64 {
		if v == 0 {
			return -1
		}
		return v
	}
	noneD := func(d time.Duration) time.Duration {
		if d == 0 {
			return -1
		}
		return d
	}
	overflow := ssekit.OverflowDisconnect
	if c.Overflow == "drop" {
		overflow = ssekit.OverflowDrop
	}
	return ssekit.Config{
		BufferSize:        c.BufferSize,
		ClientTimeout:     c.ClientTimeout,
		HeartbeatInterval: noneD(c.Heartbeat),
		MaxClients:        none(c.MaxClients),
		MaxClientsPerUser: none(c.MaxClientsPerUser),
		HistorySize:       c.HistorySize,
		HistoryAge:        c.HistoryAge,
		HistoryBytes:      none64(c.HistoryBytes),
		MaxEventSize:      c.MaxEventSize,
		MaxRecipients:     none(c.MaxRecipients),
		MaxTopics:         none(c.MaxTopics),
		AuthorizeTopic:    authorizeTopic,
		Overflow:          overflow,
		MaxStreamAge:      noneD(c.MaxStreamAge),
		WriteDelay:        noneD(c.WriteDelay),
		DetachStreams:     c.DetachStreams,
		RetryInterval:     c.Retry,
		PresenceDebounce:  noneD(c.WebhookDebounce),
		Logger:            log,

		IdempotencyWindow:  c.IdempotencyWindow,
		MaxIdempotencyKeys: none(c.MaxIdempotencyKeys),
	}
}

// routes returns the server's handler.
func (a *app) routes() http.Handler {
	mux := http.NewServeMux()
	p := a.cfg.Prefix
	// ReadTimeout does not cut streams: net/http clears the read deadline
	// once a request without a body is read (TestStreamOutlivesReadTimeout).
	mux.Handle(p+"/stream", a.cors(a.streamHandler()))
	key := newKeyChecker(a.cfg.PublishKey)
	mux.Handle(p+"/publish", a.cors(only(http.MethodPost, a.limitPublish(&publishHandler{
		hub:           a.hub,
		key:           key,
		maxBody:       int64(a.cfg.MaxPublishBytes),
		maxBatch:      int64(a.cfg.MaxBatchBytes),
		maxRecipients: a.cfg.MaxRecipients,
		keyWindow:     a.cfg.IdempotencyWindow,
		log:           a.log,
		metrics:       a.metrics,
	}))))
	mux.Handle(p+"/status", a.cors(only(http.MethodGet, http.HandlerFunc(a.status))))
	mux.Handle(p+"/presence", a.cors(only(http.MethodGet, a.limitPublish(&presenceHandler{
		hub:     a.hub,
		key:     key,
		log:     a.log,
		metrics: a.metrics,
	}))))
	mux.Handle("/metrics", only(http.MethodGet, a.metrics.handler()))
	mux.Handle("/healthz", only(http.MethodGet, http.HandlerFunc(a.healthz)))
	a.demoRoutes(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no route "+r.URL.Path)
	})
	return secureHeaders(mux)
}

// identify returns whom a stream request is for, and the topics it may
// follow: what its subscriber token says (see verifier.identify).
//
// A token within the leeway past its exp is valid, but the hub would
// refuse its stream (401 credentials_expired: its Identity.Expires has
// passed); it is refused here instead, as one beyond the leeway is, so
// that every expired token is answered, counted and logged alike.
func (a *app) identify(r *http.Request) (ssekit.Identity, *grants, error) {
	token, source, err := requestToken(r)
	if err == nil {
		var who ssekit.Identity
		var g *grants
		if who, g, err = a.verify.identify(token); err == nil && !time.Now().Before(who.Expires) {
			err = &expiredError{exp: who.Expires}
		}
		if err == nil {
			a.log.Debug("stream authenticated", "user", who.User, "tenant", who.Tenant, "source", source)
			return who, g, nil
		}
	}
	a.metrics.authFailures.WithLabelValues("stream").Inc()
	a.log.Info("stream refused", "err", err, "source", source, "remote", r.RemoteAddr)
	return ssekit.Identity{}, nil, err
}

// status serves <prefix>/status: this node's hub, or with scope=cluster
// the cluster's view.
func (a *app) status(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Query().Get("scope") {
	case "", "node":
		a.hub.StatusHandler().ServeHTTP(w, r)
	case "cluster":
		if a.cluster == nil {
			writeError(w, http.StatusNotFound, "not_found", "cluster mode is off (no --redis-url or --redis-cluster)")
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
		defer cancel()
		st, err := a.cluster.Status(ctx)
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
			return
		}
		httpjson.Write(w, http.StatusOK, st)
	default:
		writeError(w, http.StatusBadRequest, "bad_request", "scope must be node or cluster")
	}
}

// health is the body of /healthz.
type health struct {
	Status  string `json:"status"`
	Failing string `json:"failing,omitempty"` // the dependency that failed
	Error   string `json:"error,omitempty"`
}

// healthz answers 200 while this node can serve, 503 naming what fails:
// the hub once it is shutting down, the cluster when it does not answer.
func (a *app) healthz(w http.ResponseWriter, r *http.Request) {
	if a.hub.Status().Status == "closed" {
		httpjson.Write(w, http.StatusServiceUnavailable, health{Status: "unavailable", Failing: "hub", Error: "shutting down"})
		return
	}
	if a.cluster != nil {
		ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
		defer cancel()
		if err := a.cluster.Ping(ctx); err != nil {
			httpjson.Write(w, http.StatusServiceUnavailable, health{Status: "unavailable", Failing: "cluster", Error: err.Error()})
			return
		}
	}
	httpjson.Write(w, http.StatusOK, health{Status: "ok"})
}

// close shuts the hub down within ctx, then what it used (closeAfterHub).
func (a *app) close(ctx context.Context) error {
	return errors.Join(a.hub.Shutdown(ctx), a.closeAfterHub(ctx))
}

// closeAfterHub stops refreshing the JWKS and closes the cluster, whose
// broker the hub used until it stopped; then the webhooks, last, since
// the cluster's presence reports changes until it closes. What is still
// queued for them when ctx ends is dropped.
func (a *app) closeAfterHub(ctx context.Context) error {
	a.verify.keys.Close()
	var err error
	if a.cluster != nil {
		err = a.cluster.Close()
	}
	a.hooks.close(ctx)
	return err
}

// cors lets the configured origins call next with credentials (cookies),
// and answers their preflights. Other origins get no CORS headers, so
// their pages cannot read the response.
func (a *app) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		if _, ok := h["Vary"]; ok {
			h.Add("Vary", "Origin")
		} else {
			h["Vary"] = varyOrigin
		}
		origin := r.Header.Get("Origin")
		allowed := origin != "" && slices.Contains(a.cfg.CORSOrigins, strings.ToLower(origin))
		if allowed {
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Credentials", "true")
			h.Set("Access-Control-Expose-Headers", replayedHeader)
		}
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			if allowed {
				h.Set("Access-Control-Allow-Methods", "GET, POST")
				h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Last-Event-ID, Cache-Control, "+idempotencyHeader)
				h.Set("Access-Control-Max-Age", "600")
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// only refuses every method but method (and HEAD for GET) with a JSON 405.
func only(method string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != method && !(method == http.MethodGet && r.Method == http.MethodHead) {
			w.Header().Set("Allow", method)
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use "+method)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Header values every answer carries, shared rather than made per
// request: a Header value is only ever replaced or appended to, and an
// append to a slice of capacity 1 copies it.
var (
	nosniff    = []string{"nosniff"}
	noReferrer = []string{"no-referrer"}
	varyOrigin = []string{"Origin"}
)

// secureHeaders sets the headers every response should carry.
func secureHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["X-Content-Type-Options"] = nosniff
		// Tokens may travel in the query string: never leak them onward.
		h["Referrer-Policy"] = noReferrer
		next.ServeHTTP(w, r)
	})
}

// writeError writes status with the hub's error body.
func writeError(w http.ResponseWriter, status int, code, message string) {
	httpjson.Write(w, status, ssekit.ErrorBody{Error: code, Message: message})
}

// newHTTPServer returns the server for h, with the timeouts that keep slow
// clients from holding connections.
func newHTTPServer(c config, h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler: h,
		// A client that trickles its headers (slowloris) is cut after this.
		ReadHeaderTimeout: c.ReadHeaderTimeout,
		ReadTimeout:       c.ReadTimeout,
		IdleTimeout:       c.IdleTimeout,
		// No WriteTimeout: it would cut every stream. The hub bounds each
		// write to a stream with a deadline of its own (client-timeout).
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}
