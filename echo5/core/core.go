// Package core is the module kit for Echo v5, as package
// github.com/ssekit/sse/core is for Echo v4: modules declare their routes,
// middleware and dependencies, and a Kit initializes them in dependency
// order and mounts them on one *echo.Echo. An app moving from v4 keeps its
// modules' shape and changes their handler types to v5's.
//
// Echo v5 has no Echo.Server and no Echo.Shutdown: a server runs from
// echo.StartConfig.Start until its context is done. Kit.Start serves the
// kit that way and closes the modules that hold open streams when the
// server shuts down; an app that runs its own http.Server calls Kit.Close
// from its RegisterOnShutdown instead.
package core

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"

	"github.com/labstack/echo/v5"

	"github.com/ssekit/sse/internal/kit"
)

// Module is a part of an application that the Kit mounts.
type Module interface {
	// Name identifies the module; it must be unique within a Kit.
	Name() string
	// Routes are mounted under KitConfig.RoutePrefix.
	Routes() []Route
	// Middleware is applied globally, in module order.
	Middleware() []echo.MiddlewareFunc
	// Dependencies names the modules that must be initialized first.
	Dependencies() []string
	// Init is called once, after the module's dependencies, with them.
	Init(deps map[string]Module) error
}

// Closer is implemented by modules that hold long-lived work, such as open
// event streams. Kit.Start closes them when its server shuts down:
// http.Server.Shutdown would otherwise wait for ever on a stream.
type Closer interface {
	Close() error
}

// Route is one endpoint of a module.
type Route struct {
	Method      string
	Path        string
	Handler     echo.HandlerFunc
	Middlewares []echo.MiddlewareFunc
	Name        string
	Description string
}

// KitConfig configures a Kit. Echo v4's kit has a Debug field too; Echo
// v5 has no debug mode.
type KitConfig struct {
	// RoutePrefix is prepended to every module route.
	RoutePrefix string
	// ErrorHandler replaces Echo's HTTP error handler.
	ErrorHandler echo.HTTPErrorHandler
}

// Errors from Register and Mount: the same values as Echo v4's kit's.
var (
	ErrMounted   = kit.ErrMounted
	ErrDuplicate = kit.ErrDuplicate
	ErrCycle     = kit.ErrCycle
	ErrMissing   = kit.ErrMissing
)

// Kit registers modules and mounts them on an Echo instance. It is meant
// to be set up from one goroutine at start-up; Close may be called from
// any goroutine.
type Kit struct {
	echo    *echo.Echo
	cfg     KitConfig
	reg     kit.Registry[Module]
	closers []Closer // the modules that are Closers, in mount order

	closeOnce sync.Once
	closeErr  error
}

// NewKit returns a kit mounting on e; a nil e makes a new *echo.Echo,
// which Echo returns.
func NewKit(e *echo.Echo, cfg KitConfig) *Kit {
	if e == nil {
		e = echo.New()
	}
	if cfg.ErrorHandler != nil {
		e.HTTPErrorHandler = cfg.ErrorHandler
	}
	return &Kit{echo: e, cfg: cfg}
}

// Echo returns the kit's Echo instance.
func (k *Kit) Echo() *echo.Echo { return k.echo }

// Register adds m. Its dependencies may be registered later, up to Mount.
func (k *Kit) Register(m Module) error { return k.reg.Register(m) }

// Get returns the registered module called name, or nil.
func (k *Kit) Get(name string) Module {
	m, _ := k.reg.Get(name)
	return m
}

// Mount initializes every module after its dependencies, applies their
// middleware and mounts their routes. It fails on a missing dependency, a
// cycle, a failing Init, an unsupported method or a route Echo refuses,
// and can run once.
func (k *Kit) Mount() error {
	var closers []Closer
	err := k.reg.Mount(Module.Init, func(m Module) error {
		k.echo.Use(m.Middleware()...)
		for _, r := range m.Routes() {
			method, err := kit.Method(r.Method, r.Path)
			if err != nil {
				return err
			}
			if _, err := k.echo.AddRoute(echo.Route{Method: method, Path: k.cfg.RoutePrefix + r.Path, Name: r.Name, Handler: r.Handler, Middlewares: r.Middlewares}); err != nil {
				return err
			}
		}
		if c, ok := m.(Closer); ok {
			closers = append(closers, c)
		}
		return nil
	})
	if err == nil {
		k.closers = closers
	}
	return err
}

// Start serves the kit's Echo with sc until ctx is done, as sc.Start
// does, and closes the kit's modules (Close) when the server starts to
// shut down, before it waits for open requests: without that an open event
// stream would hold the shutdown until sc.GracefulTimeout. sc's own
// BeforeServeFunc, if any, runs first. Start returns once the modules are
// closed (http.Server does not wait for its shutdown hooks), with sc.Start's
// error and theirs joined.
func (k *Kit) Start(ctx context.Context, sc echo.StartConfig) error {
	before := sc.BeforeServeFunc
	sc.BeforeServeFunc = func(s *http.Server) error {
		if before != nil {
			if err := before(s); err != nil {
				return err
			}
		}
		s.RegisterOnShutdown(func() { _ = k.Close() })
		return nil
	}
	err := sc.Start(ctx, k.echo)
	return errors.Join(err, k.Close())
}

// Close closes every mounted module that is a Closer, dependents before
// their dependencies, and returns their errors joined. Later calls return
// the first call's result.
func (k *Kit) Close() error {
	k.closeOnce.Do(func() {
		var errs []error
		for _, c := range slices.Backward(k.closers) {
			errs = append(errs, c.Close())
		}
		k.closeErr = errors.Join(errs...)
	})
	return k.closeErr
}
