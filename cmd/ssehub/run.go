package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
)

// run is the whole program: `ssehub publish …` publishes one event,
// anything else serves until ctx is done, then shuts down cleanly and
// returns nil. Settings come from args, then getenv. --help writes the
// usage to stdout and returns nil.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "publish" {
		return publishCommand(ctx, args[1:], getenv, stdout)
	}
	cfg, err := parseConfig(args, getenv, stdout)
	if errors.Is(err, errHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	return serve(ctx, cfg, stderr)
}

// fillDevSecrets generates, in dev mode, the JWT secret and the publish
// key that were not given.
func (c *config) fillDevSecrets() {
	if !c.Dev {
		return
	}
	c.JWTSecret = randomSecret(32)
	if c.PublishKey == "" {
		c.PublishKey = randomSecret(24)
		c.GeneratedKey = true
	}
}

// serve runs the hub server until ctx is done. Shutdown stops accepting,
// ends every stream (spread over the first half of cfg.ShutdownTimeout, so
// that clients do not all reconnect at once), waits for the connections
// to close and returns nil; past the timeout it closes what is left.
func serve(ctx context.Context, cfg config, stderr io.Writer) error {
	log := newLogger(cfg, stderr)
	cfg.fillDevSecrets()

	var cl cluster
	if cfg.RedisURL != "" {
		c, err := openCluster(ctx, cfg.RedisURL, historyLimits{cfg.HistorySize, cfg.HistoryAge}, log)
		if err != nil {
			return fmt.Errorf("--redis-url (SSEHUB_REDIS_URL) %s: %w", redact(cfg.RedisURL), err)
		}
		cl = c
	}
	a, err := newApp(cfg, log, cl)
	if err != nil {
		if cl != nil {
			_ = cl.Close()
		}
		return err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		_ = a.close(context.Background())
		return fmt.Errorf("--addr (SSEHUB_ADDR): %w", err)
	}
	srv := newHTTPServer(cfg, a.handler, log)

	// http.Server.Shutdown waits for connections to go idle, which a
	// stream never does: the hub must end them, as soon as Shutdown has
	// closed the listeners. shutdownCtx is set before Shutdown runs the hook.
	var shutdownCtx context.Context
	hubDone := make(chan error, 1)
	srv.RegisterOnShutdown(func() { hubDone <- a.hub.Shutdown(shutdownCtx) })

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	mode := "memory"
	if cl != nil {
		mode = "cluster"
	}
	if cfg.Dev {
		announceDevMode(log, stderr, cfg, ln.Addr())
	}
	log.Info("listening", "addr", ln.Addr().String(), "url", baseURL(ln.Addr()), "prefix", cfg.Prefix, "mode", mode, "dev", cfg.Dev)

	select {
	case err := <-serveErr:
		// The listener failed: nothing to drain.
		_ = a.close(context.Background())
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}

	log.Info("shutting down", "timeout", cfg.ShutdownTimeout.String(), "streams", a.hub.GetTotalClientCount())
	var cancel context.CancelFunc
	shutdownCtx, cancel = context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Warn("drain timed out; closing the remaining connections", "err", err)
		_ = srv.Close()
	}
	<-serveErr // http.ErrServerClosed, once the listener is closed
	// The hook ran as soon as Shutdown closed the listeners; its hub
	// shutdown returns by shutdownCtx's deadline at the latest.
	if err := <-hubDone; err != nil {
		log.Warn("hub shutdown", "err", err)
	}
	if cl != nil {
		// After the hub, which published through the cluster's broker.
		if err := cl.Close(); err != nil {
			log.Warn("cluster close", "err", err)
		}
	}
	log.Info("stopped")
	return nil
}

// baseURL returns a URL a person on this machine can open for addr.
func baseURL(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "http://" + addr.String()
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// announceDevMode says loudly that this hub is in dev mode, with the
// generated secrets, so that nobody runs it so by mistake. In text format
// it is a banner for a person; in JSON format a warning record for the
// log pipeline.
func announceDevMode(log *slog.Logger, w io.Writer, cfg config, addr net.Addr) {
	if cfg.LogFormat == "json" {
		log.Warn("DEV MODE: generated secrets; the demo page mints tokens for anyone; set --jwt-secret and --publish-key in production",
			"jwt_secret", cfg.JWTSecret, "publish_key", cfg.PublishKey, "publish_key_generated", cfg.GeneratedKey)
		return
	}
	base := baseURL(addr)
	key := cfg.PublishKey
	if !cfg.GeneratedKey {
		key = "(the one you set)"
	}
	bar := strings.Repeat("=", 78)
	fmt.Fprintf(w, `%s
  DEV MODE: no --jwt-secret was given, so secrets were generated for this run
  and the demo page mints a token for anyone who asks. Never expose this.
  For production set --jwt-secret and --publish-key (or SSEHUB_JWT_SECRET and
  SSEHUB_PUBLISH_KEY).

    SSEHUB_JWT_SECRET=%s
    SSEHUB_PUBLISH_KEY=%s

  Demo page:  %s/
  Publish:    curl -H 'Authorization: Bearer %s' -H 'Content-Type: application/json' \
                -d '{"type":"notification","data":{"title":"Hello"}}' %s%s/publish
%s
`, bar, cfg.JWTSecret, key, base, cfg.PublishKey, base, cfg.Prefix, bar)
}
