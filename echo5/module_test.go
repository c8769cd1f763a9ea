package echo5_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v5"
	"github.com/labstack/echo/v5/middleware"
	"go.uber.org/goleak"

	"github.com/ssekit/sse/echo5"
	"github.com/ssekit/sse/echo5/core"
	"github.com/ssekit/sse/internal/moduletest"
	"github.com/ssekit/sse/internal/ssetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestModule runs the Echo modules' table (internal/moduletest) against
// the Echo v5 module and kit, as package sse runs it against Echo v4's.
func TestModule(t *testing.T) {
	t.Parallel()
	moduletest.Run(t, moduletest.Framework{New: newApp})
}

// newApp is moduletest.Framework.New on Echo v5.
func newApp(t *testing.T, cfg moduletest.Config) moduletest.App {
	t.Helper()
	skip := func(c *echo.Context) bool { return c.Path() == cfg.StreamPath() }
	mcfg := echo5.ModuleConfig{Hub: cfg.Hub, RoutePrefix: cfg.RoutePrefix, RequireAuth: cfg.RequireAuth, TenantKey: cfg.TenantKey, Middleware: echoMiddleware(cfg.Route, skip)}
	if cfg.UserID != nil {
		mcfg.UserID = func(c *echo.Context) (string, error) { return cfg.UserID(c.Request()) }
	}
	app := core.NewKit(nil, core.KitConfig{RoutePrefix: cfg.KitPrefix})
	e := app.Echo()
	if cfg.Auth != nil {
		e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
			return func(c *echo.Context) error {
				for k, v := range cfg.Auth(c.Request()) {
					c.Set(k, v)
				}
				return next(c)
			}
		})
	}
	e.Use(echoMiddleware(cfg.Global, skip)...)
	if err := app.Register(echo5.NewModule(mcfg)); err != nil {
		t.Fatal(err)
	}
	if err := app.Mount(); err != nil {
		t.Fatal(err)
	}
	return moduletest.App{Handler: e, Serve: func(ln net.Listener) func(context.Context) error {
		ctx, cancel := context.WithCancel(context.Background())
		shutdownErr := make(chan error, 1)
		served := make(chan error, 1)
		go func() {
			served <- app.Start(ctx, echo.StartConfig{
				Listener: ln, HideBanner: true, HidePort: true,
				// Shorter than the stop's patience: a shutdown that open
				// streams held fails here, with its error.
				GracefulTimeout: ssetest.Patience / 2,
				OnShutdownError: func(err error) { shutdownErr <- err },
			})
		}()
		return func(stopCtx context.Context) error {
			cancel()
			select {
			case err := <-served:
				if err != nil {
					return fmt.Errorf("Start returned %w", err)
				}
			case <-stopCtx.Done():
				return stopCtx.Err()
			}
			select {
			case err := <-shutdownErr:
				return fmt.Errorf("graceful shutdown: %w", err)
			default:
				return nil
			}
		}
	}}
}

// echoMiddleware is ms on Echo v5, set up as docs/echo.md shows;
// SkippedOnStream skips the stream route with skip.
func echoMiddleware(ms []moduletest.Middleware, skip middleware.Skipper) []echo.MiddlewareFunc {
	var out []echo.MiddlewareFunc
	dump := func(*echo.Context, []byte, []byte, error) {}
	// Echo v5 has no Timeout middleware; an app moving from v4's wraps
	// http.TimeoutHandler, the one v4's used.
	timeout := echo.WrapMiddleware(func(h http.Handler) http.Handler { return http.TimeoutHandler(h, time.Minute, "timeout") })
	for _, m := range ms {
		switch m {
		case moduletest.Timeout:
			out = append(out, timeout)
		case moduletest.ContextTimeout:
			out = append(out, middleware.ContextTimeout(time.Hour))
		case moduletest.BodyDump:
			out = append(out, middleware.BodyDump(dump))
		case moduletest.Gzip:
			out = append(out, middleware.Gzip())
		case moduletest.SkippedOnStream:
			out = append(out,
				skipping(skip, timeout),
				middleware.ContextTimeoutWithConfig(middleware.ContextTimeoutConfig{Skipper: skip, Timeout: time.Hour}),
				middleware.BodyDumpWithConfig(middleware.BodyDumpConfig{Skipper: skip, Handler: dump}),
			)
		default:
			panic(fmt.Sprintf("moduletest middleware %d", m))
		}
	}
	return out
}

// skipping runs m on the requests skip does not skip, for middleware with
// no Skipper of its own (docs/echo.md).
func skipping(skip middleware.Skipper, m echo.MiddlewareFunc) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		withM := m(next)
		return func(c *echo.Context) error {
			if skip(c) {
				return next(c)
			}
			return withM(c)
		}
	}
}

// An app on Echo v5 compiles no Echo v4, and one on Echo v4 no Echo v5.
func TestEchoMajorsDoNotMix(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		pkgs      []string
		forbidden string
	}{
		{[]string{"github.com/ssekit/sse/echo5", "github.com/ssekit/sse/echo5/core"}, "github.com/labstack/echo/v4"},
		{[]string{"github.com/ssekit/sse", "github.com/ssekit/sse/core"}, "github.com/labstack/echo/v5"},
	} {
		out, err := exec.Command("go", append([]string{"list", "-deps", "-f", "{{.ImportPath}}"}, tc.pkgs...)...).Output()
		if err != nil {
			t.Fatalf("go list: %v", err)
		}
		deps := strings.Fields(string(out))
		if len(deps) < len(tc.pkgs) {
			t.Fatalf("go list %v listed %v", tc.pkgs, deps)
		}
		for _, dep := range deps {
			if dep == tc.forbidden || strings.HasPrefix(dep, tc.forbidden+"/") {
				t.Errorf("%v depend on %s", tc.pkgs, dep)
			}
		}
	}
}
