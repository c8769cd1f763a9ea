package sse_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"go.uber.org/goleak"

	"github.com/ssekit/sse"
	"github.com/ssekit/sse/core"
	"github.com/ssekit/sse/internal/moduletest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestModule runs the Echo modules' table (internal/moduletest) against
// the Echo v4 module and kit; package echo5 runs it against Echo v5's.
func TestModule(t *testing.T) {
	t.Parallel()
	moduletest.Run(t, moduletest.Framework{New: newApp})
}

// newApp is moduletest.Framework.New on Echo v4.
func newApp(t *testing.T, cfg moduletest.Config) moduletest.App {
	t.Helper()
	skip := func(c echo.Context) bool { return c.Path() == cfg.StreamPath() }
	mcfg := sse.ModuleConfig{Hub: cfg.Hub, RoutePrefix: cfg.RoutePrefix, RequireAuth: cfg.RequireAuth, TenantKey: cfg.TenantKey, Middleware: echoMiddleware(cfg.Route, skip)}
	if cfg.UserID != nil {
		mcfg.UserID = func(c echo.Context) (string, error) { return cfg.UserID(c.Request()) }
	}
	app := core.NewKit(nil, core.KitConfig{RoutePrefix: cfg.KitPrefix})
	e := app.Echo()
	if cfg.Auth != nil {
		e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
			return func(c echo.Context) error {
				for k, v := range cfg.Auth(c.Request()) {
					c.Set(k, v)
				}
				return next(c)
			}
		})
	}
	e.Use(echoMiddleware(cfg.Global, skip)...)
	if err := app.Register(sse.NewModule(mcfg)); err != nil {
		t.Fatal(err)
	}
	if err := app.Mount(); err != nil {
		t.Fatal(err)
	}
	return moduletest.App{Handler: e, Serve: func(ln net.Listener) func(context.Context) error {
		e.Listener = ln
		served := make(chan error, 1)
		go func() { served <- e.Start("") }()
		return func(ctx context.Context) error {
			if err := e.Shutdown(ctx); err != nil {
				return fmt.Errorf("echo Shutdown: %w", err)
			}
			if err := <-served; !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("Start returned %v", err)
			}
			return nil
		}
	}}
}

// echoMiddleware is ms on Echo v4, set up as docs/echo.md shows;
// SkippedOnStream skips the stream route with skip.
func echoMiddleware(ms []moduletest.Middleware, skip middleware.Skipper) []echo.MiddlewareFunc {
	var out []echo.MiddlewareFunc
	dump := func(echo.Context, []byte, []byte) {}
	for _, m := range ms {
		switch m {
		case moduletest.Timeout:
			//lint:ignore SA1019 apps still have it: the hub must refuse it cleanly
			out = append(out, middleware.TimeoutWithConfig(middleware.TimeoutConfig{Timeout: time.Minute}))
		case moduletest.ContextTimeout:
			out = append(out, middleware.ContextTimeout(time.Hour))
		case moduletest.BodyDump:
			out = append(out, middleware.BodyDump(dump))
		case moduletest.Gzip:
			out = append(out, middleware.Gzip())
		case moduletest.SkippedOnStream:
			out = append(out,
				//lint:ignore SA1019 apps still have it: skipped on the stream route, as documented
				middleware.TimeoutWithConfig(middleware.TimeoutConfig{Skipper: skip, Timeout: time.Minute}),
				middleware.ContextTimeoutWithConfig(middleware.ContextTimeoutConfig{Skipper: skip, Timeout: time.Hour}),
				middleware.BodyDumpWithConfig(middleware.BodyDumpConfig{Skipper: skip, Handler: dump}),
			)
		default:
			panic(fmt.Sprintf("moduletest middleware %d", m))
		}
	}
	return out
}
