package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
)

// run is the whole program: `ssehub publish …` publishes one event,
// anything else serves until ctx is done, then shuts down cleanly and
// returns nil. Settings come from args, then getenv. --help writes the
// usage to stdout and returns nil.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "publish" {
		return publishCommand(ctx, args[1:], getenv, os.Stdin, stdout, stderr)
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
// key (check has made sure that none was given).
func (c *config) fillDevSecrets() {
	if !c.Dev {
		return
	}
	c.JWTSecret = randomSecret(32)
	c.PublishKey = randomSecret(24)
}

// serve runs the hub server until ctx is done. Shutdown stops accepting,
// ends every stream (spread over the first half of cfg.ShutdownTimeout, so
// that clients do not all reconnect at once), waits for the connections
// to close and returns nil; past the timeout it closes what is left.
func serve(ctx context.Context, cfg config, stderr io.Writer) error {
	log := newLogger(cfg, stderr)
	cfg.fillDevSecrets()

	var cl cluster
	if cfg.RedisURL != "" || cfg.RedisCluster != "" {
		c, err := openCluster(ctx, cfg, log)
		if err != nil {
			return err
		}
		cl = c
	}
	a, err := newApp(ctx, cfg, log, cl)
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
		warnIfExposed(log, ln.Addr())
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
	if err := a.closeAfterHub(shutdownCtx); err != nil {
		log.Warn("cluster close", "err", err)
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

// announceDevMode says loudly that this hub is in dev mode, so that nobody
// runs it so by mistake. In text format it is a banner for the person at
// the terminal who asked for --dev, with the generated secrets to try the
// hub with. In JSON format it is a warning record without them: a log
// pipeline is read by many people and kept for long, and a secret has no
// place in it.
func announceDevMode(log *slog.Logger, w io.Writer, cfg config, addr net.Addr) {
	if cfg.LogFormat == "json" {
		log.Warn("DEV MODE (--dev): secrets were generated for this run and are never logged " +
			"(the text log format prints them in a banner; the demo page gets the publish key with its token); " +
			"/demo/token mints a token for anyone on this machine; never expose this hub")
		return
	}
	base := baseURL(addr)
	bar := strings.Repeat("=", 78)
	fmt.Fprintf(w, `%s
  DEV MODE (--dev): secrets were generated for this run, and the demo page
  mints a token for anyone on this machine who asks. Never expose this.
  For production drop --dev and set --jwt-secret and --publish-key (or
  SSEHUB_JWT_SECRET and SSEHUB_PUBLISH_KEY).

    SSEHUB_JWT_SECRET=%s
    SSEHUB_PUBLISH_KEY=%s

  Demo page:  %s/
  Publish:    curl -H 'Authorization: Bearer %s' -H 'Content-Type: application/json' \
                -d '{"all":true,"type":"notification","data":{"title":"Hello"}}' %s%s/publish
%s
`, bar, cfg.JWTSecret, cfg.PublishKey, base, cfg.PublishKey, base, cfg.Prefix, bar)
}

// warnIfExposed warns when a dev hub listens beyond loopback, as it does
// when --addr says so: /demo/token's Host check stops only browsers (DNS
// rebinding), and any other client that reaches the hub can send
// Host: localhost and get a token and the publish key.
func warnIfExposed(log *slog.Logger, addr net.Addr) {
	if ta, ok := addr.(*net.TCPAddr); ok && !ta.IP.IsLoopback() {
		log.Warn("DEV MODE on a non-loopback address: anyone who can reach it can mint tokens and get the publish key; listen on 127.0.0.1", "addr", addr.String())
	}
}
