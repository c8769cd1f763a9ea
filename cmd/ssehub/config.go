package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ssekit/sse/ssekit"
)

// envPrefix starts the name of every environment variable ssehub reads.
const envPrefix = "SSEHUB_"

// Minimum lengths of the secrets, so that a weak one is refused at start-up
// rather than discovered later: RFC 7518 asks for an HS256 key of at least
// 256 bits.
const (
	minSecretLen     = 32
	minPublishKeyLen = 16
)

// The listen address when --addr is not set: every interface in
// production, where a firewall or a load balancer stands in front; only
// loopback in dev mode, whose demo page hands a token and the publish key
// to whoever asks.
const (
	defaultAddr = ":8080"
	devAddr     = "127.0.0.1:8080"
)

// config is every setting of the server, after flags, environment and
// defaults have been applied and checked.
type config struct {
	Addr        string
	Prefix      string
	JWTSecret   string
	PublishKey  string
	JWTIssuer   string
	JWTAudience string
	TenantClaim string // the claim that holds a token's tenant id
	CORSOrigins []string

	// The identity provider's keys (jwks.go): the URL of its JWK Set ("":
	// none), how often it is fetched again, and the least time between
	// two fetches asked for by tokens whose kid is not loaded (check
	// keeps it at 1s or more; 0, which only tests set, is no limit).
	JWKSURL               string
	JWKSRefresh           time.Duration
	JWKSRefreshUnknownKID time.Duration

	// Cluster mode: at most one of RedisURL (one Redis) and RedisCluster
	// (a Redis Cluster's seed addresses, then ssehub's parameters after a
	// '?'); the password and TLS of the latter, which has no URL for them;
	// and the replicas every publish waits for, in either.
	RedisURL             string
	RedisCluster         string
	RedisClusterUser     string
	RedisClusterPassword string
	RedisClusterTLS      bool
	RedisWaitReplicas    int

	HistorySize       int // per channel
	HistoryAge        time.Duration
	HistoryBytes      int64 // memory mode, all channels; 0: no bound
	MaxClients        int   // 0: unlimited
	MaxClientsPerUser int   // 0: unlimited
	BufferSize        int
	Overflow          string // "disconnect" or "drop"
	MaxEventSize      int
	MaxRecipients     int // 0: unlimited
	MaxTopics         int // per stream; 0: unlimited
	MaxPublishBytes   int
	MaxBatchBytes     int
	Heartbeat         time.Duration // 0: disabled
	ClientTimeout     time.Duration
	MaxStreamAge      time.Duration // 0: disabled
	WriteDelay        time.Duration // 0: disabled
	DetachStreams     bool
	Retry             time.Duration
	DevTokenTTL       time.Duration

	// How long a publish's Idempotency-Key is remembered, in memory or in
	// Redis, and how many keys memory mode remembers at most (0: no bound).
	IdempotencyWindow  time.Duration
	MaxIdempotencyKeys int

	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	IdleTimeout       time.Duration
	ShutdownTimeout   time.Duration

	// Rate limits (ratelimit.go): requests a second and burst; a rate of
	// 0 is no limit.
	StreamRateIP    float64
	StreamBurstIP   int
	StreamRateUser  float64
	StreamBurstUser int
	PublishRateIP   float64
	PublishBurstIP  int
	// TrustedProxies are the peers whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix

	// Presence webhooks (webhooks.go): where to POST user.online and
	// user.offline ("": none), the HMAC key they are signed with, how long
	// a user must stay without a stream to be offline (also the hub's
	// PresenceDebounce, webhook or not), and how many may wait. The
	// backoff of the first retry is not a flag: tests shorten it.
	WebhookURL      string
	WebhookSecret   string
	WebhookDebounce time.Duration
	WebhookQueue    int
	webhookBackoff  time.Duration

	LogLevel  slog.Level
	LogFormat string // "text" or "json"

	// Dev is --dev, never inferred: both secrets are generated for this
	// run (fillDevSecrets), the hub listens on loopback unless --addr is
	// set, and the demo page may mint tokens for loopback hosts.
	Dev bool
}

// errHelp is returned by parseConfig when --help was asked for; the usage
// has been written and the program should exit 0.
var errHelp = errors.New("help requested")

// envName returns the environment variable of a flag: SSEHUB_ and the flag
// name in upper case with '_' for '-'.
func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// newServeFlags declares every server setting on a new FlagSet, writing
// into c, which holds the defaults.
func newServeFlags(c *config) *flag.FlagSet {
	fs := flag.NewFlagSet("ssehub", flag.ContinueOnError)
	str := func(p *string, name, usage string) { fs.StringVar(p, name, *p, usage) }
	num := func(p *int, name, usage string) { fs.IntVar(p, name, *p, usage) }
	dur := func(p *time.Duration, name, usage string) { fs.DurationVar(p, name, *p, usage) }
	num64 := func(p *float64, name, usage string) { fs.Float64Var(p, name, *p, usage) }

	str(&c.Addr, "addr", "listen address, host:port (with --dev: "+devAddr+")")
	fs.BoolVar(&c.Dev, "dev", c.Dev, "dev mode, for a local trial: generated secrets (--jwt-secret and --publish-key must not be set), a loopback address, and a demo page that mints tokens for anyone on this machine who asks; never expose it")
	str(&c.Prefix, "prefix", "route prefix of the stream, publish and status endpoints")
	str(&c.RedisURL, "redis-url", "Redis URL for cluster mode on one Redis (redis://…); empty runs in memory on one node, unless --redis-cluster is set")
	str(&c.RedisCluster, "redis-cluster", "comma-separated host:port seed addresses of a Redis Cluster for cluster mode, optionally followed by ?prefix=…&node=…&presence_interval=…&presence_ttl=… as in --redis-url; not with --redis-url")
	str(&c.RedisClusterUser, "redis-cluster-user", "ACL user of the Redis Cluster's nodes, with --redis-cluster-password (default: the default user); only with --redis-cluster")
	str(&c.RedisClusterPassword, "redis-cluster-password", "password (AUTH) of the Redis Cluster's nodes; only with --redis-cluster (--redis-url carries its own)")
	fs.BoolVar(&c.RedisClusterTLS, "redis-cluster-tls", c.RedisClusterTLS, "connect to the Redis Cluster's nodes with TLS, verifying their certificates; only with --redis-cluster")
	num(&c.RedisWaitReplicas, "redis-wait-replicas", "replicas that must hold each event before a publish is answered (Redis WAIT): with 1 and a replica per master, a failover loses no event a publisher was told was stored; a publish not confirmed within 1s answers 503; 0 does not wait")
	str(&c.JWTSecret, "jwt-secret", fmt.Sprintf("HS256 secret that subscriber tokens are signed with, at least %d bytes; required unless --jwks-url is set, and not with --dev, which generates one", minSecretLen))
	str(&c.PublishKey, "publish-key", fmt.Sprintf("API key publishers send as Authorization: Bearer, at least %d bytes, not the JWT secret; required, except with --dev, which generates one", minPublishKeyLen))
	str(&c.JWTIssuer, "jwt-issuer", "if set, subscriber tokens must have this iss claim")
	str(&c.JWTAudience, "jwt-audience", "if set, subscriber tokens must have this aud claim")
	str(&c.JWKSURL, "jwks-url", "URL of your identity provider's JWK Set (https://, or http:// to a loopback host): subscriber tokens signed RS256, ES256 or EdDSA by its keys, named by kid, are accepted, instead of or beside --jwt-secret's HS256 ones; fetched at start-up, which fails if it cannot be")
	dur(&c.JWKSRefresh, "jwks-refresh", "how often the keys of --jwks-url are fetched again; a failed fetch keeps the keys loaded")
	dur(&c.JWKSRefreshUnknownKID, "jwks-refresh-unknown-kid", "a token whose kid is not among the loaded keys has them fetched again at once, at most once per this long; meanwhile such tokens are refused")
	str(&c.TenantClaim, "tenant-claim", "the subscriber token claim that holds the stream's tenant id (a string; a token without it has no tenant)")
	fs.Func("cors-origins", "comma-separated origins (scheme://host[:port]) whose pages may subscribe and publish with credentials; empty allows same-origin only", func(s string) error {
		origins, err := parseOrigins(s)
		if err != nil {
			return err
		}
		c.CORSOrigins = origins
		return nil
	})
	num(&c.HistorySize, "history-size", "events kept for replay on reconnect, per channel: each user's own history and the broadcast one, in memory and in Redis")
	dur(&c.HistoryAge, "history-age", "how long an event is kept for replay, in memory and in Redis")
	fs.Int64Var(&c.HistoryBytes, "history-bytes", c.HistoryBytes, "in memory mode, bound on the whole history, all channels together, in bytes: over it the oldest events go first (a client that needed one gets a resync); 0 for no bound")
	dur(&c.IdempotencyWindow, "idempotency-window", "how long a publish's Idempotency-Key is remembered: a repeat within it is answered with the first publish's id and sends nothing; at most "+shortDuration(ssekit.MaxKeyWindow))
	num(&c.MaxIdempotencyKeys, "max-idempotency-keys", "in memory mode, most Idempotency-Keys remembered (about 150 bytes each): over it the oldest is forgotten first, and a retry of its publish would be stored again; 0 for no bound")
	num(&c.MaxClients, "max-clients", "concurrent streams on this node; 0 for no limit")
	num(&c.MaxClientsPerUser, "max-clients-per-user", "concurrent streams of one user, a new one closes the oldest; 0 for no limit")
	num(&c.BufferSize, "buffer-size", "events queued per stream before the overflow policy applies")
	str(&c.Overflow, "overflow", "what a full stream buffer does: disconnect (the client reconnects and replays) or drop (the client misses the event)")
	num(&c.MaxEventSize, "max-event-size", "largest event type + data, in bytes")
	num(&c.MaxRecipients, "max-recipients", "most users, clients, tenants and topics one publish may name, together; 0 for no limit")
	num(&c.MaxTopics, "max-topics", "most topics one stream may follow, its token's and its ?topic= ones together; over it, 400 before the stream starts; 0 for no limit")
	num(&c.MaxPublishBytes, "max-publish-bytes", "largest publish request body, in bytes")
	num(&c.MaxBatchBytes, "max-batch-bytes", "largest batch publish request body (a JSON array of up to 1000 events), in bytes")
	dur(&c.Heartbeat, "heartbeat", "heartbeat interval of an idle stream; 0 disables")
	dur(&c.ClientTimeout, "client-timeout", "how long a write to a stream may stall before the stream is closed")
	dur(&c.MaxStreamAge, "max-stream-age", "streams are rotated (closed, and resumed by the client) after about this long; 0 disables")
	fs.BoolVar(&c.DetachStreams, "detach-streams", c.DetachStreams, "serve HTTP/1.x streams off net/http (hijacked, the body ends with the connection): half the memory per idle stream")
	dur(&c.WriteDelay, "write-delay", "while the hub is busy, how long an event may wait so that a stream writes many events at once; 0 writes each at once")
	dur(&c.Retry, "retry", "reconnection delay sent to clients (the SSE retry field)")
	dur(&c.DevTokenTTL, "dev-token-ttl", "lifetime of the tokens the demo page gets in dev mode")
	dur(&c.ReadHeaderTimeout, "read-header-timeout", "time to read a request's headers, against slow clients (slowloris)")
	dur(&c.ReadTimeout, "read-timeout", "time to read a whole request, body included (streams, which have no body, are not cut by it)")
	dur(&c.IdleTimeout, "idle-timeout", "how long an idle keep-alive connection stays open")
	dur(&c.ShutdownTimeout, "shutdown-timeout", "on SIGTERM, time to end the streams (spread over its first half) and drain before exiting")
	num64(&c.StreamRateIP, "stream-rate-ip", "streams a client address may open per second (an IPv6 client's /64); over it, a retry hint instead of a stream; 0 for no limit")
	num(&c.StreamBurstIP, "stream-burst-ip", "streams a client address may open at once before --stream-rate-ip applies")
	num64(&c.StreamRateUser, "stream-rate-user", "streams one user may open per second; over it, a retry hint instead of a stream; 0 for no limit")
	num(&c.StreamBurstUser, "stream-burst-user", "streams one user may open at once before --stream-rate-user applies")
	num64(&c.PublishRateIP, "publish-rate-ip", "publish requests a client address may make per second; over it, 429 with Retry-After; 0 for no limit")
	num(&c.PublishBurstIP, "publish-burst-ip", "publish requests a client address may make at once before --publish-rate-ip applies")
	fs.Func("trusted-proxies", "comma-separated CIDR prefixes of reverse proxies whose X-Forwarded-For names the client (the right-most untrusted hop); empty: the client is the TCP peer. Behind a proxy, set it, or every client shares the proxy's rate limit", func(s string) error {
		p, err := parseTrustedProxies(s)
		if err != nil {
			return err
		}
		c.TrustedProxies = p
		return nil
	})
	str(&c.WebhookURL, "webhook-url", "URL (https://, or http:// to a loopback host) that user.online and user.offline presence changes are POSTed to, signed with --webhook-secret (see docs/ssehub.md); empty: no webhook")
	str(&c.WebhookSecret, "webhook-secret", fmt.Sprintf("HMAC-SHA256 key of the Ssekit-Signature header of each webhook, at least %d bytes; required with --webhook-url", minWebhookSecretLen))
	dur(&c.WebhookDebounce, "webhook-debounce", "how long a user must stay without a stream before it is offline (user.offline): a reconnect within it is no change")
	num(&c.WebhookQueue, "webhook-queue", "most webhooks waiting to be sent; over it, a change is dropped (ssekit_webhook_dropped_total)")
	fs.Func("log-level", "log level: debug, info, warn or error (default info)", func(s string) error {
		return c.LogLevel.UnmarshalText([]byte(s))
	})
	str(&c.LogFormat, "log-format", "log format: text or json")
	return fs
}

// defaultConfig returns the settings before flags and environment.
func defaultConfig() config {
	return config{
		Addr:              defaultAddr,
		Prefix:            "/sse",
		TenantClaim:       "tenant_id",
		JWKSRefresh:       15 * time.Minute,
		HistorySize:       1000,
		HistoryAge:        10 * time.Minute,
		HistoryBytes:      64 << 20,
		MaxClients:        1000,
		MaxClientsPerUser: 5,
		BufferSize:        10,
		Overflow:          "disconnect",
		MaxEventSize:      64 << 10,
		MaxRecipients:     1000,
		MaxTopics:         16,
		MaxPublishBytes:   1 << 20,
		MaxBatchBytes:     8 << 20,
		Heartbeat:         30 * time.Second,
		ClientTimeout:     time.Minute,
		MaxStreamAge:      time.Hour,
		WriteDelay:        25 * time.Millisecond,
		DetachStreams:     true,
		Retry:             3 * time.Second,
		DevTokenTTL:       12 * time.Hour,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ShutdownTimeout:   10 * time.Second,
		StreamRateIP:      10,
		StreamBurstIP:     20,
		StreamRateUser:    2,
		StreamBurstUser:   10,
		PublishRateIP:     1000,
		PublishBurstIP:    2000,
		LogLevel:          slog.LevelInfo,
		LogFormat:         "text",
		WebhookDebounce:   5 * time.Second,
		WebhookQueue:      1000,

		IdempotencyWindow:  ssekit.DefaultKeyWindow,
		MaxIdempotencyKeys: ssekit.DefaultMaxKeys,

		JWKSRefreshUnknownKID: 10 * time.Second,
	}
}

// parseConfig reads the settings from args (flags win), then getenv (for
// every flag not on the command line), then the defaults, and checks them.
// Its errors are one line naming the setting. For --help it writes the
// usage to usage and returns errHelp.
func parseConfig(args []string, getenv func(string) string, usage io.Writer) (config, error) {
	c := defaultConfig()
	fs := newServeFlags(&c)
	fs.SetOutput(io.Discard) // errors are returned as one line, not printed with the usage
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printServeUsage(usage, fs)
			return c, errHelp
		}
		return c, flagError(fs, err)
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q (subcommands: publish)", fs.Arg(0))
	}
	onCommandLine := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCommandLine[f.Name] = true })
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if envErr != nil || onCommandLine[f.Name] {
			return
		}
		if v := getenv(envName(f.Name)); v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = valueError(f, v, err)
			}
		}
	})
	if envErr != nil {
		return c, envErr
	}
	if c.Dev && !onCommandLine["addr"] && getenv(envName("addr")) == "" {
		c.Addr = devAddr
	}
	if err := c.check(); err != nil {
		return c, err
	}
	return c, nil
}

// flagErrRe matches the flag package's errors for a bad value (a bool
// flag words it differently).
var flagErrRe = regexp.MustCompile(`^invalid (?:boolean )?value "(.*)" for (?:flag )?-([a-z-]+): `)

// flagError rewrites the flag package's error for a bad value in the form
// of the other setting errors, which name the flag and its variable.
func flagError(fs *flag.FlagSet, err error) error {
	m := flagErrRe.FindStringSubmatch(err.Error())
	if m == nil {
		return err // an unknown flag, a missing value: already one line
	}
	f := fs.Lookup(m[2])
	if f == nil {
		return err
	}
	v, _ := strconv.Unquote(`"` + m[1] + `"`)
	// The flag package formats the Value's error with %v: keep its text.
	return valueError(f, v, errors.New(strings.TrimPrefix(err.Error(), m[0])))
}

// valueError is the error for value v of setting f.
func valueError(f *flag.Flag, v string, err error) error {
	msg := "invalid"
	if err != nil {
		msg = err.Error()
	}
	if g, ok := f.Value.(flag.Getter); ok {
		// The flag package's own types only say "parse error".
		switch g.Get().(type) {
		case time.Duration:
			msg = "want a duration like 30s, 5m or 1h"
		case int, int64:
			msg = "want a whole number"
		case float64:
			msg = "want a number"
		case bool:
			msg = "want true or false"
		}
	}
	return fmt.Errorf("--%s (%s): invalid value %q: %s", f.Name, envName(f.Name), v, msg)
}

// prefixRe is what a route prefix may be: path segments of unreserved
// characters (ServeMux patterns give meaning to others, like '{').
var prefixRe = regexp.MustCompile(`^(/[A-Za-z0-9._~-]+)*$`)

// badSetting is the error for setting name: one line naming its flag and
// its variable, then what is wrong.
func badSetting(name, format string, args ...any) error {
	return fmt.Errorf("--%s (%s): %s", name, envName(name), fmt.Sprintf(format, args...))
}

// check validates c. Each error names its setting.
func (c *config) check() error {
	bad := badSetting
	c.Prefix = strings.TrimSuffix(c.Prefix, "/")
	if !prefixRe.MatchString(c.Prefix) {
		return bad("prefix", "%q is not a path like /sse", c.Prefix)
	}
	if c.Prefix == "/assets" || strings.HasPrefix(c.Prefix, "/assets/") {
		return bad("prefix", "%q is taken by the demo page's files", c.Prefix)
	}
	if c.Addr == "" {
		return bad("addr", "must not be empty")
	}
	if err := c.checkRedis(); err != nil {
		return err
	}
	if err := c.checkJWKS(); err != nil {
		return err
	}
	if err := c.checkSecrets(); err != nil {
		return err
	}
	if err := c.checkWebhook(); err != nil {
		return err
	}
	positive := []struct {
		name string
		v    int
	}{{"history-size", c.HistorySize}, {"buffer-size", c.BufferSize}, {"max-event-size", c.MaxEventSize}, {"max-publish-bytes", c.MaxPublishBytes}, {"max-batch-bytes", c.MaxBatchBytes}}
	for _, p := range positive {
		if p.v <= 0 {
			return bad(p.name, "must be positive, got %d", p.v)
		}
	}
	if c.HistoryBytes < 0 {
		return bad("history-bytes", "must be 0 (no bound) or positive, got %d", c.HistoryBytes)
	}
	if c.MaxIdempotencyKeys < 0 {
		return bad("max-idempotency-keys", "must be 0 (no bound) or positive, got %d", c.MaxIdempotencyKeys)
	}
	if c.IdempotencyWindow <= 0 || c.IdempotencyWindow > ssekit.MaxKeyWindow {
		return bad("idempotency-window", "must be positive and at most %s, got %v", shortDuration(ssekit.MaxKeyWindow), c.IdempotencyWindow)
	}
	if c.MaxClients < 0 {
		return bad("max-clients", "must be 0 (no limit) or positive, got %d", c.MaxClients)
	}
	if c.MaxRecipients < 0 {
		return bad("max-recipients", "must be 0 (no limit) or positive, got %d", c.MaxRecipients)
	}
	if c.MaxTopics < 0 {
		return bad("max-topics", "must be 0 (no limit) or positive, got %d", c.MaxTopics)
	}
	if err := checkTenantClaim(c.TenantClaim); err != nil {
		return err
	}
	if c.MaxClientsPerUser < 0 {
		return bad("max-clients-per-user", "must be 0 (no limit) or positive, got %d", c.MaxClientsPerUser)
	}
	if c.MaxEventSize > c.MaxPublishBytes {
		return bad("max-event-size", "%d is larger than --max-publish-bytes %d, so no such event could be published", c.MaxEventSize, c.MaxPublishBytes)
	}
	durations := []struct {
		name      string
		v         time.Duration
		zeroValid bool
	}{
		{"history-age", c.HistoryAge, false},
		{"heartbeat", c.Heartbeat, true},
		{"client-timeout", c.ClientTimeout, false},
		{"max-stream-age", c.MaxStreamAge, true},
		{"write-delay", c.WriteDelay, true},
		{"retry", c.Retry, false},
		{"dev-token-ttl", c.DevTokenTTL, false},
		{"read-header-timeout", c.ReadHeaderTimeout, false},
		{"read-timeout", c.ReadTimeout, false},
		{"idle-timeout", c.IdleTimeout, false},
		{"shutdown-timeout", c.ShutdownTimeout, false},
	}
	for _, d := range durations {
		switch {
		case d.v < 0:
			return bad(d.name, "must not be negative, got %v", d.v)
		case d.v == 0 && !d.zeroValid:
			return bad(d.name, "must be positive")
		}
	}
	if c.Retry < time.Millisecond {
		return bad("retry", "must be at least 1ms, got %v", c.Retry)
	}
	rates := []struct {
		rateName, burstName string
		rate                float64
		burst               int
	}{
		{"stream-rate-ip", "stream-burst-ip", c.StreamRateIP, c.StreamBurstIP},
		{"stream-rate-user", "stream-burst-user", c.StreamRateUser, c.StreamBurstUser},
		{"publish-rate-ip", "publish-burst-ip", c.PublishRateIP, c.PublishBurstIP},
	}
	for _, r := range rates {
		switch {
		case r.rate < 0 || math.IsNaN(r.rate) || math.IsInf(r.rate, 0):
			return bad(r.rateName, "must be 0 (no limit) or a positive number, got %v", r.rate)
		case r.rate > 0 && r.burst < 1:
			return bad(r.burstName, "must be at least 1 while --%s is set, got %d", r.rateName, r.burst)
		}
	}
	if c.Overflow != "disconnect" && c.Overflow != "drop" {
		return bad("overflow", "%q is not disconnect or drop", c.Overflow)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return bad("log-format", "%q is not text or json", c.LogFormat)
	}
	return nil
}

// otherClaims are the claims whose meaning is set: the registered ones and
// ssehub's own. The tenant's claim cannot be one of them.
var otherClaims = []string{"sub", "exp", "nbf", "iat", "iss", "aud", "jti", topicsClaim, allowedTopicsClaim}

// checkTenantClaim checks --tenant-claim: a name, and not one of a claim
// that means something else.
func checkTenantClaim(name string) error {
	switch {
	case name == "":
		return badSetting("tenant-claim", "must not be empty: name the token claim that holds the tenant id, e.g. tenant_id")
	case slices.Contains(otherClaims, name):
		return badSetting("tenant-claim", "%q is a claim with a meaning of its own: name the claim that holds the tenant id", name)
	}
	return nil
}

// checkRedis checks the cluster settings: one Redis or one Redis
// Cluster, not both, and the settings of either only with it. The
// parameters are parsed as cluster mode will parse them, so that a bad
// one stops start-up before anything connects.
func (c *config) checkRedis() error {
	bad := badSetting
	if c.RedisURL != "" {
		u, err := url.Parse(c.RedisURL)
		if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix") {
			return bad("redis-url", "%q is not a redis://, rediss:// or unix:// URL", redact(c.RedisURL))
		}
		if _, _, err := parseClusterURL(c.RedisURL); err != nil {
			return bad("redis-url", "%s: %v", redact(c.RedisURL), err)
		}
	}
	if c.RedisCluster != "" {
		if c.RedisURL != "" {
			return bad("redis-cluster", "must not be set with --redis-url (SSEHUB_REDIS_URL): cluster mode runs on one Redis or on one Redis Cluster; set one of them")
		}
		if _, _, err := parseClusterSeeds(c.RedisCluster); err != nil {
			return bad("redis-cluster", "%v", err)
		}
	} else {
		if c.RedisClusterUser != "" {
			return bad("redis-cluster-user", "needs --redis-cluster (SSEHUB_REDIS_CLUSTER); the user of --redis-url goes in the URL (redis://user:password@host:port)")
		}
		if c.RedisClusterPassword != "" {
			return bad("redis-cluster-password", "needs --redis-cluster (SSEHUB_REDIS_CLUSTER); the password of --redis-url goes in the URL (redis://:password@host:port)")
		}
		if c.RedisClusterTLS {
			return bad("redis-cluster-tls", "needs --redis-cluster (SSEHUB_REDIS_CLUSTER); --redis-url asks for TLS with rediss://")
		}
	}
	switch {
	case c.RedisWaitReplicas < 0:
		return bad("redis-wait-replicas", "must be 0 (no wait) or positive, got %d", c.RedisWaitReplicas)
	case c.RedisWaitReplicas > 0 && c.RedisURL == "" && c.RedisCluster == "":
		return bad("redis-wait-replicas", "needs --redis-url (SSEHUB_REDIS_URL) or --redis-cluster (SSEHUB_REDIS_CLUSTER): memory mode has no replicas")
	}
	return nil
}

// checkSecrets makes dev mode something only ever asked for. Without
// --dev the publish key is required, and so is the JWT secret unless
// --jwks-url verifies tokens instead, so that a hub whose secret went
// missing from its environment fails to start instead of minting tokens
// for anyone. With --dev neither may be given: dev mode generates its
// own, and hands its publish key to any loopback page that asks (POST
// /demo/token), which must never be an operator's key.
func (c *config) checkSecrets() error {
	if c.Dev {
		for _, s := range []struct{ name, v string }{{"jwt-secret", c.JWTSecret}, {"publish-key", c.PublishKey}} {
			if s.v != "" {
				return badSetting(s.name, "must not be set with --dev: dev mode generates its own secrets and gives its publish key to the demo page; drop --dev to use yours")
			}
		}
		return nil
	}
	const orDev = "(or --dev, for a local trial with generated secrets)"
	switch {
	case c.JWTSecret == "" && c.JWKSURL == "":
		return badSetting("jwt-secret", "required: the HS256 secret your backend signs subscriber tokens with, at least %d bytes, or --jwks-url (SSEHUB_JWKS_URL) for your identity provider's keys %s", minSecretLen, orDev)
	case c.JWTSecret != "" && len(c.JWTSecret) < minSecretLen:
		return badSetting("jwt-secret", "too short: %d bytes, need at least %d", len(c.JWTSecret), minSecretLen)
	case c.PublishKey == "":
		return badSetting("publish-key", "required: the key publishers send, at least %d bytes %s", minPublishKeyLen, orDev)
	case len(c.PublishKey) < minPublishKeyLen:
		return badSetting("publish-key", "too short: %d bytes, need at least %d", len(c.PublishKey), minPublishKeyLen)
	case c.PublishKey == c.JWTSecret:
		// A publisher holding the key could then sign tokens for any user.
		return badSetting("publish-key", "must differ from --jwt-secret (SSEHUB_JWT_SECRET): publishers must not be able to sign subscriber tokens")
	}
	return nil
}

// minWebhookSecretLen is the shortest --webhook-secret.
const minWebhookSecretLen = 16

// checkWebhook checks the webhook settings: a URL the signed changes may
// go to (as --jwks-url's: https, or http to loopback), with its secret,
// and the secret only with it.
func (c *config) checkWebhook() error {
	switch {
	case c.WebhookDebounce < 0:
		return badSetting("webhook-debounce", "must not be negative, got %v", c.WebhookDebounce)
	case c.WebhookQueue < 1:
		return badSetting("webhook-queue", "must be positive, got %d", c.WebhookQueue)
	case c.WebhookURL == "" && c.WebhookSecret != "":
		return badSetting("webhook-secret", "needs --webhook-url (SSEHUB_WEBHOOK_URL): there is nothing to sign")
	case c.WebhookURL == "":
		return nil
	case c.WebhookSecret == "":
		return badSetting("webhook-secret", "required with --webhook-url: the key receivers check each webhook's signature with, at least %d bytes", minWebhookSecretLen)
	case len(c.WebhookSecret) < minWebhookSecretLen:
		return badSetting("webhook-secret", "too short: %d bytes, need at least %d", len(c.WebhookSecret), minWebhookSecretLen)
	}
	if _, err := checkSecureURL(c.WebhookURL, "https://app.example.com/hooks/presence", "the webhooks say who is online"); err != nil {
		return badSetting("webhook-url", "%v", err)
	}
	return nil
}

// minJWKSInterval is the shortest --jwks-refresh and
// --jwks-refresh-unknown-kid: the identity provider is fetched from no
// more often than that, whatever the tokens say.
const minJWKSInterval = time.Second

// checkJWKS checks the settings of the identity provider's keys: a URL
// the keys can be trusted from, and the refresh settings only with it.
func (c *config) checkJWKS() error {
	d := defaultConfig()
	intervals := []struct {
		name   string
		v, def time.Duration
	}{
		{"jwks-refresh", c.JWKSRefresh, d.JWKSRefresh},
		{"jwks-refresh-unknown-kid", c.JWKSRefreshUnknownKID, d.JWKSRefreshUnknownKID},
	}
	if c.JWKSURL != "" {
		if err := checkJWKSURL(c.JWKSURL); err != nil {
			return badSetting("jwks-url", "%v", err)
		}
	}
	for _, iv := range intervals {
		switch {
		case c.JWKSURL == "" && iv.v != iv.def:
			// Most likely a URL whose variable is misspelt.
			return badSetting(iv.name, "needs --jwks-url (SSEHUB_JWKS_URL): there are no keys to refresh")
		case c.JWKSURL != "" && iv.v < minJWKSInterval:
			return badSetting(iv.name, "must be at least %s, got %v", minJWKSInterval, iv.v)
		}
	}
	return nil
}

// checkJWKSURL checks that raw is a URL the identity provider's keys may
// come from: https, since whoever can change the keys on the way can sign
// tokens for any user; plain http only to a loopback host (a sidecar, a
// test), which no one else is on the way to. A JWK Set is public, so
// credentials in the URL are a mistake: refused, and never echoed.
func checkJWKSURL(raw string) error {
	u, err := checkSecureURL(raw, "https://idp.example.com/.well-known/jwks.json", "whoever can change the keys on the way can sign tokens for any user")
	if err == nil && u.User != nil {
		err = fmt.Errorf("%q has credentials: a JWK Set is public, give its URL without them", redact(raw))
	}
	return err
}

// checkSecureURL checks that raw is an https:// URL, or http:// to a
// loopback host, and returns it parsed: example shows a good one, and why
// says what plain http to another host would give away.
func checkSecureURL(raw, example, why string) (*url.URL, error) {
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Opaque != "" || u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("%q is not a URL like %s", redact(raw), example)
	case u.Scheme == "https", u.Scheme == "http" && loopbackIP(u.Hostname()):
		return u, nil
	case u.Scheme == "http":
		return nil, fmt.Errorf("%q is plain http to a host that is not loopback: use https://, since %s", redact(raw), why)
	}
	return nil, fmt.Errorf("%q is not an https:// URL (http:// only to a loopback host)", redact(raw))
}

// loopbackIP reports whether host, from a URL, is this machine: localhost,
// or an address in 127.0.0.0/8 or ::1. Unlike loopbackHost (a browser's
// Host header), names under .localhost are not taken: the hub resolves
// them itself, through whatever DNS it is given.
func loopbackIP(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	addr, err := netip.ParseAddr(host)
	return err == nil && addr.Zone() == "" && addr.IsLoopback()
}

// parseOrigins parses a comma-separated list of origins. A wildcard is
// refused wherever it is: the hub allows credentials (cookies), which
// browsers never combine with "*", and matches origins exactly, so that
// "https://*.example.com" could only ever be a typo for a list (and
// reflecting any origin would let every site read a user's stream).
func parseOrigins(s string) ([]string, error) {
	var out []string
	for _, o := range strings.Split(s, ",") {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		if strings.Contains(o, "*") {
			return nil, fmt.Errorf("%q has a wildcard: wildcards are not supported, list the origins, e.g. https://app.example.com,https://admin.example.com", o)
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return nil, fmt.Errorf("%q is not an origin like https://app.example.com", o)
		}
		out = append(out, strings.ToLower(u.Scheme+"://"+u.Host))
	}
	return out, nil
}

// shortDuration writes d as a person would, without zero minutes and
// seconds: 24h, not 24h0m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if t, ok := strings.CutSuffix(s, "m0s"); ok {
		s = t + "m"
		if t, ok := strings.CutSuffix(s, "h0m"); ok {
			s = t + "h"
		}
	}
	return s
}

// redact hides the password of a URL, for error messages and logs.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparsable URL>"
	}
	return u.Redacted()
}

// printServeUsage writes the help of the server command: every setting
// with its environment variable and default.
func printServeUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, `ssehub — a Server-Sent Events hub that any backend publishes to over HTTP.

Usage:
  ssehub [flags]             serve (every flag can also be set by its env var);
                             needs --publish-key and --jwt-secret, --jwks-url or both,
                             or --dev for a local trial
  ssehub publish [flags]     publish one event through a running hub (ssehub publish --help)

Endpoints:
  GET  <prefix>/stream   subscribe: a JWT, HS256 with --jwt-secret or RS256/ES256/EdDSA with a kid
                         of --jwks-url (sub = user uuid; optional tenant claim, "topics",
                         "allowed_topics") in Authorization: Bearer, the sse_token cookie or
                         ?access_token=; ?topic=NAME (repeatable) follows topics the token allows
  POST <prefix>/publish  publish: Authorization: Bearer <publish key>, Content-Type: application/json,
                         {"users":[…],"clients":[…],"tenant":"…","topics":[…],"type":"…","data":…}
                         or {"all":true,"type":"…",…}; optional Idempotency-Key: <key>, so that a retry
                         within --idempotency-window is stored once and answered "replayed": true
  GET  <prefix>/presence?user=<uuid>&user=…  whether each user (at most 100) has a stream on any node:
                         Authorization: Bearer <publish key>; --webhook-url also POSTs user.online and
                         user.offline, signed (docs/ssehub.md)
  GET  <prefix>/status, GET /metrics, GET /healthz, demo page at /

Flags:
`)
	printFlags(w, fs, func(string) bool { return true })
}

// printFlags lists fs's flags with their non-empty default and, for those
// hasEnv accepts, their environment variable.
func printFlags(w io.Writer, fs *flag.FlagSet, hasEnv func(name string) bool) {
	fs.VisitAll(func(f *flag.Flag) {
		typ, usage := flag.UnquoteUsage(f)
		fmt.Fprintf(w, "  --%s %s\n        %s\n", f.Name, typ, usage)
		var notes []string
		if hasEnv(f.Name) {
			notes = append(notes, "env "+envName(f.Name))
		}
		if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "[]" {
			notes = append(notes, "default "+strconv.Quote(f.DefValue))
		}
		if len(notes) > 0 {
			fmt.Fprintf(w, "        %s\n", strings.Join(notes, ", "))
		}
	})
}
