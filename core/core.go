// Package core is a small module kit for Echo: modules declare their
// routes, middleware and dependencies, and a Kit initializes them in
// dependency order and mounts them on one *echo.Echo.
package core

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/labstack/echo/v4"
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

// Errors from Register and Mount.
var (
	ErrMounted   = errors.New("core: kit already mounted")
	ErrDuplicate = errors.New("core: module already registered")
	ErrCycle     = errors.New("core: dependency cycle")
	ErrMissing   = errors.New("core: dependency not registered")
)

// Kit registers modules and mounts them on an Echo instance. It is meant
// to be set up from one goroutine at start-up.
type Kit struct {
	echo    *echo.Echo
	cfg     KitConfig
	modules map[string]Module
	order   []string // registration order, for deterministic mounting
	mounted bool
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
	return &Kit{echo: e, cfg: cfg, modules: make(map[string]Module)}
}

// Echo returns the kit's Echo instance.
func (k *Kit) Echo() *echo.Echo { return k.echo }

// Register adds m. Its dependencies may be registered later, up to Mount.
func (k *Kit) Register(m Module) error {
	if k.mounted {
		return fmt.Errorf("%w: cannot register %q", ErrMounted, m.Name())
	}
	name := m.Name()
	if _, dup := k.modules[name]; dup {
		return fmt.Errorf("%w: %q", ErrDuplicate, name)
	}
	k.modules[name] = m
	k.order = append(k.order, name)
	return nil
}

// Get returns the registered module called name, or nil.
func (k *Kit) Get(name string) Module { return k.modules[name] }

// Mount initializes every module after its dependencies, applies their
// middleware and mounts their routes. It fails on a missing dependency, a
// cycle, a failing Init or an unsupported method, and can run once.
func (k *Kit) Mount() error {
	if k.mounted {
		return ErrMounted
	}
	order, err := k.sorted()
	if err != nil {
		return err
	}
	for _, name := range order {
		m := k.modules[name]
		deps := make(map[string]Module, len(m.Dependencies()))
		for _, d := range m.Dependencies() {
			deps[d] = k.modules[d]
		}
		if err := m.Init(deps); err != nil {
			return fmt.Errorf("core: init %q: %w", name, err)
		}
	}
	for _, name := range order {
		m := k.modules[name]
		k.echo.Use(m.Middleware()...)
		for _, r := range m.Routes() {
			if err := k.mount(r); err != nil {
				return fmt.Errorf("core: module %q: %w", name, err)
			}
		}
		if c, ok := m.(Closer); ok {
			k.echo.Server.RegisterOnShutdown(func() { _ = c.Close() })
		}
	}
	k.mounted = true
	return nil
}

func (k *Kit) mount(r Route) error {
	method := strings.ToUpper(r.Method)
	switch method {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete,
		http.MethodPatch, http.MethodHead, http.MethodOptions:
	default:
		return fmt.Errorf("unsupported method %q for %s", r.Method, r.Path)
	}
	route := k.echo.Add(method, k.cfg.RoutePrefix+r.Path, r.Handler, r.Middlewares...)
	if r.Name != "" {
		route.Name = r.Name
	}
	return nil
}

// sorted returns the module names in dependency order (registration order
// among independent modules).
func (k *Kit) sorted() ([]string, error) {
	const (
		visiting = 1
		done     = 2
	)
	state := make(map[string]int, len(k.modules))
	out := make([]string, 0, len(k.modules))
	var visit func(name string, path []string) error
	visit = func(name string, path []string) error {
		switch state[name] {
		case done:
			return nil
		case visiting:
			return fmt.Errorf("%w: %s", ErrCycle, strings.Join(append(path, name), " -> "))
		}
		m, ok := k.modules[name]
		if !ok {
			return fmt.Errorf("%w: %q needed by %q", ErrMissing, name, path[len(path)-1])
		}
		state[name] = visiting
		deps := append([]string(nil), m.Dependencies()...)
		sort.Strings(deps)
		for _, d := range deps {
			if err := visit(d, append(path, name)); err != nil {
				return err
			}
		}
		state[name] = done
		out = append(out, name)
		return nil
	}
	for _, name := range k.order {
		if err := visit(name, nil); err != nil {
			return nil, err
		}
	}
	return out, nil
}
