// Package core is a small module kit for Echo: modules declare their
// routes, middleware and dependencies, and a Kit initializes them in
// dependency order and mounts them on one *echo.Echo.
package core

import (
	"github.com/labstack/echo/v4"

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
// event streams. The Kit closes them when its Echo server shuts down:
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

// KitConfig configures a Kit.
type KitConfig struct {
	// Debug turns on Echo's debug mode.
	Debug bool
	// RoutePrefix is prepended to every module route.
	RoutePrefix string
	// ErrorHandler replaces Echo's HTTP error handler.
	ErrorHandler echo.HTTPErrorHandler
}

// Errors from Register and Mount. Echo v5's kit, echo5/core, returns the
// same values.
var (
	ErrMounted   = kit.ErrMounted
	ErrDuplicate = kit.ErrDuplicate
	ErrCycle     = kit.ErrCycle
	ErrMissing   = kit.ErrMissing
)

// Kit registers modules and mounts them on an Echo instance. It is meant
// to be set up from one goroutine at start-up.
type Kit struct {
	echo *echo.Echo
	cfg  KitConfig
	reg  kit.Registry[Module]
}

// NewKit returns a kit mounting on e; a nil e makes a new *echo.Echo
// (with its banner hidden), which Echo returns.
func NewKit(e *echo.Echo, cfg KitConfig) *Kit {
	if e == nil {
		e = echo.New()
		e.HideBanner = true
	}
	e.Debug = e.Debug || cfg.Debug
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
// cycle, a failing Init or an unsupported method, and can run once.
func (k *Kit) Mount() error {
	return k.reg.Mount(Module.Init, func(m Module) error {
		k.echo.Use(m.Middleware()...)
		for _, r := range m.Routes() {
			method, err := kit.Method(r.Method, r.Path)
			if err != nil {
				return err
			}
			route := k.echo.Add(method, k.cfg.RoutePrefix+r.Path, r.Handler, r.Middlewares...)
			if r.Name != "" {
				route.Name = r.Name
			}
		}
		if c, ok := m.(Closer); ok {
			k.echo.Server.RegisterOnShutdown(func() { _ = c.Close() })
		}
		return nil
	})
}
