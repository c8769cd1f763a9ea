package main

import (
	"bytes"
	"flag"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ssekit/sse/ssekit"
)

// TestConfigDevModeOnlyWhenAsked checks that dev mode is never inferred:
// without --dev a missing secret stops start-up, naming it and --dev;
// with --dev a secret of the operator's is refused, since dev mode hands
// its publish key to any page that asks; and a dev hub listens on
// loopback unless told otherwise.
func TestConfigDevModeOnlyWhenAsked(t *testing.T) {
	t.Parallel()
	refused := []struct {
		name string
		args []string
		env  map[string]string
		want []string // the error must contain each
	}{
		{"nothing", nil, nil, []string{"--jwt-secret (SSEHUB_JWT_SECRET)", "--dev"}},
		{"key only", []string{"--publish-key", testKey}, nil, []string{"--jwt-secret", "--dev"}},
		{"secret only", []string{"--jwt-secret", testSecret}, nil, []string{"--publish-key (SSEHUB_PUBLISH_KEY)", "--dev"}},
		{"secret only, env", nil, map[string]string{"SSEHUB_JWT_SECRET": testSecret}, []string{"--publish-key", "--dev"}},
		{"dev with a secret", []string{"--dev", "--jwt-secret", testSecret}, nil, []string{"--jwt-secret", "--dev"}},
		{"dev with a key", []string{"--dev", "--publish-key", testKey}, nil, []string{"--publish-key", "--dev"}},
		{"dev with an env key", []string{"--dev"}, map[string]string{"SSEHUB_PUBLISH_KEY": testKey}, []string{"--publish-key"}},
		{"env dev with an env secret", nil, map[string]string{"SSEHUB_DEV": "true", "SSEHUB_JWT_SECRET": testSecret}, []string{"--jwt-secret"}},
	}
	for _, tc := range refused {
		_, err := parseConfig(tc.args, func(k string) string { return tc.env[k] }, nil)
		if err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: err = %v, want a one-line error", tc.name, err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q lacks %q", tc.name, err, w)
			}
		}
	}

	c, err := parseConfig([]string{"--dev"}, noEnv, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Dev || c.Addr != "127.0.0.1:8080" || c.Prefix != "/sse" {
		t.Errorf("--dev: Dev %v Addr %q Prefix %q, want dev mode on 127.0.0.1:8080 with /sse", c.Dev, c.Addr, c.Prefix)
	}
	c.fillDevSecrets()
	if len(c.JWTSecret) < minSecretLen || len(c.PublishKey) < minPublishKeyLen || c.JWTSecret == c.PublishKey {
		t.Errorf("dev secrets not generated: secret %d bytes, key %d bytes", len(c.JWTSecret), len(c.PublishKey))
	}
	env := map[string]string{"SSEHUB_DEV": "1", "SSEHUB_ADDR": ":9001"}
	if c, err := parseConfig(nil, func(k string) string { return env[k] }, nil); err != nil || !c.Dev || c.Addr != ":9001" {
		t.Errorf("SSEHUB_DEV=1 SSEHUB_ADDR=:9001: Dev %v Addr %q err %v, want dev mode on :9001", c.Dev, c.Addr, err)
	}
	if c, err := parseConfig([]string{"--dev", "--addr", ":9000"}, noEnv, nil); err != nil || c.Addr != ":9000" {
		t.Errorf("--dev --addr :9000: Addr %q err %v, want :9000", c.Addr, err)
	}
	c, err = parseConfig([]string{"--jwt-secret", testSecret, "--publish-key", testKey}, noEnv, nil)
	if err != nil || c.Dev || c.Addr != ":8080" {
		t.Errorf("production: Dev %v Addr %q err %v, want not dev on :8080", c.Dev, c.Addr, err)
	}
}

// TestConfigEverySetting sets every setting once as a flag and once as an
// environment variable and checks it took effect.
func TestConfigEverySetting(t *testing.T) {
	t.Parallel()
	cases := []struct {
		flag, value string
		check       func(c config) bool
	}{
		{"addr", "127.0.0.1:9999", func(c config) bool { return c.Addr == "127.0.0.1:9999" }},
		{"dev", "true", func(c config) bool { return c.Dev && c.Addr == "127.0.0.1:8080" }},
		{"prefix", "/events/", func(c config) bool { return c.Prefix == "/events" }},
		{"redis-url", "redis://localhost:6379/0", func(c config) bool { return c.RedisURL == "redis://localhost:6379/0" }},
		{"redis-url", "redis://localhost:6379/0?prefix=app&node=web-1", func(c config) bool { return c.RedisURL == "redis://localhost:6379/0?prefix=app&node=web-1" }},
		{"redis-cluster", "10.0.0.1:7000, 10.0.0.2:7000,[::1]:7001", func(c config) bool {
			seeds, _, err := parseClusterSeeds(c.RedisCluster)
			return err == nil && slices.Equal(seeds, []string{"10.0.0.1:7000", "10.0.0.2:7000", "[::1]:7001"})
		}},
		{"redis-cluster", "10.0.0.1:7000?prefix=app&node=web-1&presence_interval=2s&presence_ttl=10s", func(c config) bool {
			seeds, bopts, err := parseClusterSeeds(c.RedisCluster)
			return err == nil && slices.Equal(seeds, []string{"10.0.0.1:7000"}) && bopts.Prefix == "app" && bopts.Node == "web-1" &&
				bopts.PresenceInterval == 2*time.Second && bopts.PresenceTTL == 10*time.Second
		}},
		{"redis-cluster-user", "ssehub", func(c config) bool {
			return c.RedisClusterUser == "ssehub" && redisClusterOptions([]string{"h:1"}, c.RedisClusterUser, c.RedisClusterPassword, c.RedisClusterTLS).Username == "ssehub"
		}},
		{"redis-cluster-password", "hunter2", func(c config) bool {
			return c.RedisClusterPassword == "hunter2" && redisClusterOptions([]string{"h:1"}, c.RedisClusterUser, c.RedisClusterPassword, c.RedisClusterTLS).Password == "hunter2"
		}},
		{"redis-cluster-tls", "true", func(c config) bool {
			return c.RedisClusterTLS && redisClusterOptions([]string{"h:1"}, c.RedisClusterUser, c.RedisClusterPassword, c.RedisClusterTLS).TLSConfig != nil
		}},
		{"redis-wait-replicas", "1", func(c config) bool { return c.RedisWaitReplicas == 1 }},
		{"jwt-secret", testSecret, func(c config) bool { return c.JWTSecret == testSecret && !c.Dev }},
		{"publish-key", testKey, func(c config) bool { return c.PublishKey == testKey }},
		{"jwt-issuer", "https://auth.example.com", func(c config) bool { return c.JWTIssuer == "https://auth.example.com" }},
		{"jwt-audience", "ssehub", func(c config) bool { return c.JWTAudience == "ssehub" }},
		{"tenant-claim", "org", func(c config) bool { return c.TenantClaim == "org" }},
		{"jwks-url", "https://idp.example.com/.well-known/jwks.json", func(c config) bool { return c.JWKSURL == "https://idp.example.com/.well-known/jwks.json" }},
		{"jwks-url", "http://127.0.0.1:8081/jwks.json", func(c config) bool { return c.JWKSURL == "http://127.0.0.1:8081/jwks.json" }},
		{"jwks-refresh", "1h", func(c config) bool { return c.JWKSRefresh == time.Hour }},
		{"jwks-refresh-unknown-kid", "30s", func(c config) bool { return c.JWKSRefreshUnknownKID == 30*time.Second }},
		{"cors-origins", "https://a.example.com, HTTP://LOCALHOST:3000", func(c config) bool {
			return slices.Equal(c.CORSOrigins, []string{"https://a.example.com", "http://localhost:3000"})
		}},
		{"history-size", "50", func(c config) bool { return c.HistorySize == 50 }},
		{"history-age", "90s", func(c config) bool { return c.HistoryAge == 90*time.Second }},
		{"history-bytes", "1048576", func(c config) bool { return c.HistoryBytes == 1<<20 && hubConfig(c, nil).HistoryBytes == 1<<20 }},
		{"history-bytes", "0", func(c config) bool { return c.HistoryBytes == 0 && hubConfig(c, nil).HistoryBytes < 0 }},
		{"idempotency-window", "1h", func(c config) bool {
			return c.IdempotencyWindow == time.Hour && hubConfig(c, nil).IdempotencyWindow == time.Hour
		}},
		{"idempotency-window", "24h", func(c config) bool { return hubConfig(c, nil).IdempotencyWindow == ssekit.MaxKeyWindow }},
		{"max-idempotency-keys", "500", func(c config) bool { return c.MaxIdempotencyKeys == 500 && hubConfig(c, nil).MaxIdempotencyKeys == 500 }},
		{"max-idempotency-keys", "0", func(c config) bool { return c.MaxIdempotencyKeys == 0 && hubConfig(c, nil).MaxIdempotencyKeys < 0 }},
		{"max-clients", "0", func(c config) bool { return c.MaxClients == 0 && hubConfig(c, nil).MaxClients < 0 }},
		{"max-clients-per-user", "2", func(c config) bool { return c.MaxClientsPerUser == 2 }},
		{"buffer-size", "64", func(c config) bool { return c.BufferSize == 64 }},
		{"overflow", "drop", func(c config) bool { return c.Overflow == "drop" }},
		{"max-event-size", "1024", func(c config) bool { return c.MaxEventSize == 1024 }},
		{"max-recipients", "5", func(c config) bool { return c.MaxRecipients == 5 && hubConfig(c, nil).MaxRecipients == 5 }},
		{"max-recipients", "0", func(c config) bool { return c.MaxRecipients == 0 && hubConfig(c, nil).MaxRecipients < 0 }},
		{"max-topics", "4", func(c config) bool { return c.MaxTopics == 4 && hubConfig(c, nil).MaxTopics == 4 }},
		{"max-topics", "0", func(c config) bool { return c.MaxTopics == 0 && hubConfig(c, nil).MaxTopics < 0 }},
		{"max-publish-bytes", "2097152", func(c config) bool { return c.MaxPublishBytes == 2<<20 }},
		{"max-batch-bytes", "16777216", func(c config) bool { return c.MaxBatchBytes == 16<<20 }},
		{"heartbeat", "0", func(c config) bool { return c.Heartbeat == 0 && hubConfig(c, nil).HeartbeatInterval < 0 }},
		{"client-timeout", "15s", func(c config) bool { return c.ClientTimeout == 15*time.Second }},
		{"max-stream-age", "30m", func(c config) bool { return c.MaxStreamAge == 30*time.Minute }},
		{"write-delay", "25ms", func(c config) bool { return hubConfig(c, nil).WriteDelay == 25*time.Millisecond }},
		{"write-delay", "0", func(c config) bool { return hubConfig(c, nil).WriteDelay < 0 }},
		{"detach-streams", "false", func(c config) bool { return !hubConfig(c, nil).DetachStreams }},
		{"retry", "500ms", func(c config) bool { return c.Retry == 500*time.Millisecond }},
		{"dev-token-ttl", "1h", func(c config) bool { return c.DevTokenTTL == time.Hour }},
		{"read-header-timeout", "2s", func(c config) bool { return c.ReadHeaderTimeout == 2*time.Second }},
		{"read-timeout", "10s", func(c config) bool { return c.ReadTimeout == 10*time.Second }},
		{"idle-timeout", "1m", func(c config) bool { return c.IdleTimeout == time.Minute }},
		{"shutdown-timeout", "3s", func(c config) bool { return c.ShutdownTimeout == 3*time.Second }},
		{"stream-rate-ip", "2.5", func(c config) bool { return c.StreamRateIP == 2.5 && newLimits(c).streamIP != nil }},
		{"stream-burst-ip", "7", func(c config) bool { return c.StreamBurstIP == 7 }},
		{"stream-rate-user", "0", func(c config) bool { return c.StreamRateUser == 0 && newLimits(c).streamUser == nil }},
		{"stream-burst-user", "3", func(c config) bool { return c.StreamBurstUser == 3 }},
		{"publish-rate-ip", "50", func(c config) bool { return c.PublishRateIP == 50 }},
		{"publish-burst-ip", "100", func(c config) bool { return c.PublishBurstIP == 100 }},
		{"trusted-proxies", "10.0.0.0/8, 192.168.1.7 ,fd00::/8", func(c config) bool {
			return slices.Equal(c.TrustedProxies, []netip.Prefix{
				netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.7/32"), netip.MustParsePrefix("fd00::/8"),
			})
		}},
		{"log-level", "debug", func(c config) bool { return c.LogLevel == slog.LevelDebug }},
		{"log-format", "json", func(c config) bool { return c.LogFormat == "json" }},
		{"webhook-url", "https://app.example.com/hooks", func(c config) bool { return c.WebhookURL == "https://app.example.com/hooks" }},
		{"webhook-secret", "whsec-0123456789abcdef", func(c config) bool { return c.WebhookSecret == "whsec-0123456789abcdef" }},
		{"webhook-debounce", "0s", func(c config) bool { return c.WebhookDebounce == 0 && hubConfig(c, nil).PresenceDebounce < 0 }},
		{"webhook-queue", "7", func(c config) bool { return c.WebhookQueue == 7 }},
	}
	// Every flag must be in the table, so that a new one gets a test.
	var tested []string
	for _, tc := range cases {
		tested = append(tested, tc.flag)
	}
	dc := defaultConfig()
	newServeFlags(&dc).VisitAll(func(f *flag.Flag) {
		if !slices.Contains(tested, f.Name) {
			t.Errorf("flag --%s has no case here", f.Name)
		}
	})
	for _, tc := range cases {
		t.Run(tc.flag, func(t *testing.T) {
			// Both secrets, but the one under test; none for dev mode; a
			// Redis Cluster for the settings that need one.
			base := []string{"--jwt-secret", testSecret, "--publish-key", testKey}
			switch tc.flag {
			case "jwt-secret":
				base = []string{"--publish-key", testKey}
			case "publish-key":
				base = []string{"--jwt-secret", testSecret}
			case "dev":
				base = nil
			case "redis-cluster-user", "redis-cluster-password", "redis-cluster-tls", "redis-wait-replicas":
				base = append(base, "--redis-cluster", "127.0.0.1:7000")
			case "jwks-refresh", "jwks-refresh-unknown-kid":
				base = append(base, "--jwks-url", "https://idp.example.com/.well-known/jwks.json")
			case "webhook-url":
				base = append(base, "--webhook-secret", "whsec-0123456789abcdef")
			case "webhook-secret":
				base = append(base, "--webhook-url", "https://app.example.com/hooks")
			}
			c, err := parseConfig(append(base, "--"+tc.flag+"="+tc.value), noEnv, nil)
			if err != nil {
				t.Fatalf("flag: %v", err)
			}
			if !tc.check(c) {
				t.Errorf("--%s %q did not take effect: %+v", tc.flag, tc.value, c)
			}
			env := map[string]string{envName(tc.flag): tc.value}
			c, err = parseConfig(base, func(k string) string { return env[k] }, nil)
			if err != nil {
				t.Fatalf("env: %v", err)
			}
			if !tc.check(c) {
				t.Errorf("%s=%q did not take effect: %+v", envName(tc.flag), tc.value, c)
			}
		})
	}
}

// TestConfigIdempotencyDefaults checks that ssehub's defaults for the
// idempotency keys are the library's, as --help and the docs say.
func TestConfigIdempotencyDefaults(t *testing.T) {
	t.Parallel()
	hc := hubConfig(testConfig(t), nil)
	if hc.IdempotencyWindow != ssekit.DefaultKeyWindow || hc.MaxIdempotencyKeys != ssekit.DefaultMaxKeys {
		t.Errorf("window %v, max keys %d; want the library's %v and %d", hc.IdempotencyWindow, hc.MaxIdempotencyKeys, ssekit.DefaultKeyWindow, ssekit.DefaultMaxKeys)
	}
	for d, want := range map[time.Duration]string{ssekit.MaxKeyWindow: "24h", 10 * time.Minute: "10m", 90 * time.Minute: "1h30m", 200 * time.Millisecond: "200ms", 90 * time.Second: "1m30s"} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestConfigFlagWinsOverEnv(t *testing.T) {
	t.Parallel()
	env := map[string]string{"SSEHUB_ADDR": ":1111", "SSEHUB_PREFIX": "/from-env", "SSEHUB_JWT_SECRET": testSecret, "SSEHUB_PUBLISH_KEY": testKey}
	c, err := parseConfig([]string{"--addr", ":2222"}, func(k string) string { return env[k] }, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Addr, ":2222"; got != want {
		t.Errorf("Addr = %q, want the flag's %q", got, want)
	}
	if got, want := c.Prefix, "/from-env"; got != want {
		t.Errorf("Prefix = %q, want the env's %q", got, want)
	}
}

// TestConfigInvalid checks that every invalid value stops start-up with
// one line naming the setting, from a flag and from the environment.
func TestConfigInvalid(t *testing.T) {
	t.Parallel()
	jwks := []string{"--jwt-secret", testSecret, "--publish-key", testKey, "--jwks-url", "https://idp.example.com/.well-known/jwks.json"}
	cases := []struct {
		flag, value string
		extra       []string // other flags the case needs
	}{
		{"prefix", "sse", nil},
		{"prefix", "/a b", nil},
		{"prefix", "/{x}", nil},
		{"prefix", "/assets", nil},
		{"redis-url", "http://localhost:6379", nil},
		{"redis-url", "redis://localhost:6379/0?presence_ttl=0s", nil},
		{"redis-url", "redis://localhost:6379/0?no_such_option=1", nil},
		{"redis-cluster", "localhost", nil},
		{"redis-cluster", "localhost:7000,", nil},
		{"redis-cluster", ":7000", nil},
		{"redis-cluster", "localhost:port", nil},
		{"redis-cluster", "localhost:70000", nil},
		{"redis-cluster", "redis://localhost:7000", nil},
		{"redis-cluster", "localhost:7000?presence_interval=soon", nil},
		{"redis-cluster", "localhost:7000?dial_timeout=2s", nil},
		{"redis-cluster", "localhost:7000", []string{"--redis-url", "redis://localhost:6379/0", "--jwt-secret", testSecret, "--publish-key", testKey}},
		{"redis-cluster-user", "ssehub", nil},
		{"redis-cluster-user", "ssehub", []string{"--redis-url", "redis://localhost:6379/0", "--jwt-secret", testSecret, "--publish-key", testKey}},
		{"redis-cluster-password", "hunter2", nil},
		{"redis-cluster-password", "hunter2", []string{"--redis-url", "redis://localhost:6379/0", "--jwt-secret", testSecret, "--publish-key", testKey}},
		{"redis-cluster-tls", "true", nil},
		{"redis-cluster-tls", "yes please", []string{"--redis-cluster", "localhost:7000", "--jwt-secret", testSecret, "--publish-key", testKey}},
		{"redis-wait-replicas", "1", nil},
		{"redis-wait-replicas", "-1", []string{"--redis-cluster", "localhost:7000", "--jwt-secret", testSecret, "--publish-key", testKey}},
		{"redis-wait-replicas", "one", []string{"--redis-cluster", "localhost:7000", "--jwt-secret", testSecret, "--publish-key", testKey}},
		{"jwt-secret", "too-short", []string{"--publish-key", testKey}},
		{"jwt-secret", testSecret, []string{"--dev"}},
		{"publish-key", "short", []string{"--jwt-secret", testSecret}},
		{"publish-key", testSecret, []string{"--jwt-secret", testSecret}},
		{"publish-key", testKey, []string{"--dev"}},
		{"dev", "maybe", nil},
		{"jwks-url", "ftp://idp.example.com/jwks.json", nil},
		{"jwks-url", "idp.example.com/jwks.json", nil},
		{"jwks-url", "https:///jwks.json", nil},
		{"jwks-url", "https://user:secret@idp.example.com/jwks.json", nil},
		{"jwks-url", "http://idp.example.com/jwks.json", nil},
		{"jwks-url", "http://10.0.0.1/jwks.json", nil},
		{"jwks-url", "http://app.localhost/jwks.json", nil},
		{"jwks-refresh", "1h", nil},
		{"jwks-refresh", "0", jwks},
		{"jwks-refresh", "500ms", jwks},
		{"jwks-refresh", "soon", jwks},
		{"jwks-refresh-unknown-kid", "1m", nil},
		{"jwks-refresh-unknown-kid", "-1s", jwks},
		{"jwks-refresh-unknown-kid", "0", jwks},
		{"cors-origins", "*", nil},
		{"cors-origins", "https://*.example.com", nil},
		{"cors-origins", "https://a.example.com, *", nil},
		{"cors-origins", "http://localhost:*", nil},
		{"cors-origins", "https://a.example.com/path", nil},
		{"cors-origins", "not an origin", nil},
		{"history-size", "0", nil},
		{"history-size", "many", nil},
		{"history-age", "-1s", nil},
		{"history-age", "ten", nil},
		{"history-bytes", "-1", nil},
		{"history-bytes", "64MiB", nil},
		{"idempotency-window", "0", nil},
		{"idempotency-window", "-1s", nil},
		{"idempotency-window", "25h", nil},
		{"idempotency-window", "a day", nil},
		{"max-idempotency-keys", "-1", nil},
		{"max-idempotency-keys", "many", nil},
		{"max-clients", "-1", nil},
		{"max-clients-per-user", "-2", nil},
		{"buffer-size", "0", nil},
		{"overflow", "block", nil},
		{"max-event-size", "0", nil},
		{"max-event-size", "4194304", nil}, // over max-publish-bytes
		{"max-recipients", "-1", nil},
		{"max-recipients", "all", nil},
		{"max-topics", "-1", nil},
		{"max-topics", "many", nil},
		{"tenant-claim", "sub", nil},
		{"tenant-claim", "allowed_topics", nil},
		{"max-publish-bytes", "-5", nil},
		{"max-batch-bytes", "0", nil},
		{"heartbeat", "-1s", nil},
		{"heartbeat", "often", nil},
		{"client-timeout", "0", nil},
		{"max-stream-age", "-1m", nil},
		{"write-delay", "-1ms", nil},
		{"detach-streams", "sometimes", nil},
		{"retry", "0", nil},
		{"dev-token-ttl", "0", nil},
		{"read-header-timeout", "0", nil},
		{"read-timeout", "-1s", nil},
		{"idle-timeout", "0s", nil},
		{"shutdown-timeout", "0", nil},
		{"stream-rate-ip", "-1", nil},
		{"stream-rate-ip", "fast", nil},
		{"stream-rate-ip", "NaN", nil},
		{"stream-burst-ip", "0", nil},
		{"stream-rate-user", "+Inf", nil},
		{"stream-burst-user", "-1", nil},
		{"publish-rate-ip", "-0.5", nil},
		{"publish-burst-ip", "0", nil},
		{"trusted-proxies", "10.0.0.0/33", nil},
		{"trusted-proxies", "proxy.internal", nil},
		{"log-level", "loud", nil},
		{"log-format", "xml", nil},
	}
	for _, tc := range cases {
		t.Run(tc.flag+"="+tc.value, func(t *testing.T) {
			want := "--" + tc.flag + " (" + envName(tc.flag) + ")"
			check := func(how string, err error) {
				t.Helper()
				if err == nil {
					t.Fatalf("%s: no error", how)
				}
				if msg := err.Error(); !strings.Contains(msg, want) || strings.Contains(msg, "\n") {
					t.Errorf("%s: error %q is not one line naming %s", how, msg, want)
				}
			}
			// Valid secrets, unless the case brings its own.
			extra := tc.extra
			if extra == nil {
				extra = []string{"--jwt-secret", testSecret, "--publish-key", testKey}
			}
			_, err := parseConfig(append(slices.Clone(extra), "--"+tc.flag+"="+tc.value), noEnv, nil)
			check("flag", err)
			env := map[string]string{envName(tc.flag): tc.value}
			_, err = parseConfig(extra, func(k string) string { return env[k] }, nil)
			check("env", err)
		})
	}
}

// TestConfigRefusesCORSWildcards checks that an origin with a wildcard
// anywhere is refused with a message that says to list the origins: the
// hub matches origins exactly, so "https://*.example.com" would otherwise
// be taken as a literal host and allow nothing, or worse, if matching
// ever became lenient.
func TestConfigRefusesCORSWildcards(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"*", "https://*.example.com", "https://app.example.com,https://*.example.com", "http://localhost:*"} {
		_, err := parseConfig([]string{"--jwt-secret", testSecret, "--publish-key", testKey, "--cors-origins", v}, noEnv, nil)
		if err == nil || !strings.Contains(err.Error(), "wildcards are not supported") || !strings.Contains(err.Error(), "list the origins") {
			t.Errorf("--cors-origins %q: err = %v, want one saying wildcards are not supported", v, err)
		}
	}
}

// TestConfigKeyIsNotTheSecret checks that a publish key equal to the JWT
// secret stops start-up: whoever holds one would hold both, and could
// sign tokens for any user with the key a publisher was given.
func TestConfigKeyIsNotTheSecret(t *testing.T) {
	t.Parallel()
	_, err := parseConfig([]string{"--jwt-secret", testSecret, "--publish-key", testSecret}, noEnv, nil)
	if err == nil || !strings.Contains(err.Error(), "--publish-key") || !strings.Contains(err.Error(), "--jwt-secret") {
		t.Fatalf("err = %v, want one naming --publish-key and --jwt-secret", err)
	}
	if strings.Contains(err.Error(), testSecret) {
		t.Errorf("error %q shows the secret", err)
	}
}

func TestConfigUnknownFlagAndArgument(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--nope"}, {"serve-please"}} {
		if _, err := parseConfig(args, noEnv, nil); err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: err = %v, want a one-line error", args, err)
		}
	}
}

// TestHelp checks that --help documents every setting with its variable,
// and exits 0 (run returns nil).
func TestHelp(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := run(t.Context(), []string{"--help"}, noEnv, &out, &out); err != nil {
		t.Fatalf("run --help: %v", err)
	}
	dc := defaultConfig()
	newServeFlags(&dc).VisitAll(func(f *flag.Flag) {
		for _, want := range []string{"--" + f.Name + " ", envName(f.Name)} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("help lacks %q", want)
			}
		}
	})
	out.Reset()
	if err := run(t.Context(), []string{"publish", "--help"}, noEnv, &out, &out); err != nil {
		t.Fatalf("run publish --help: %v", err)
	}
	if !strings.Contains(out.String(), "--publish-key") {
		t.Errorf("publish help lacks --publish-key:\n%s", out.String())
	}
}
