package sse

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/ssekit/sse/core"
	"github.com/ssekit/sse/internal/appctx"
)

// ModuleConfig configures the Echo module.
type ModuleConfig struct {
	// Hub serves the streams. Nil makes one with DefaultConfig, which the
	// module then owns.
	Hub *Hub

	// RoutePrefix is where the routes are mounted: <prefix>/stream and
	// <prefix>/status. Defaults to "/sse".
	RoutePrefix string

	// RequireAuth refuses a stream without a user with 401.
	RequireAuth bool

	// UserID returns the user of a request: "" for none, an error to refuse
	// it with 401. Defaults to the uuid.UUID the app's auth middleware put
	// in the Echo context under "user_id", else "account_id"; replace it for
	// string ids or JWT claims.
	UserID func(c echo.Context) (string, error)

	// TenantKey is the Echo context key the app's auth middleware puts
	// the request's tenant id under: a string, a uuid.UUID, an integer or
	// a fmt.Stringer (named types of them too). Defaults to "tenant_id". A
	// request without one, or with a nil pointer, has no tenant; one with
	// any other type is the app's bug, answered 500 invalid_tenant.
	TenantKey string

	// Middleware runs before the stream and status handlers (route-level,
	// not global).
	Middleware []echo.MiddlewareFunc
}

// Module is the Echo adapter over Hub.Handler and Hub.StatusHandler, for
// core.Kit. It starts nothing; its Close closes the hub, which the kit calls
// when its Echo server shuts down.
type Module struct {
	cfg ModuleConfig
}

var _ core.Module = (*Module)(nil)

// NewModule returns the module.
func NewModule(cfg ModuleConfig) *Module {
	if cfg.Hub == nil {
		cfg.Hub = NewHub(DefaultConfig())
	}
	if cfg.RoutePrefix == "" {
		cfg.RoutePrefix = appctx.DefaultRoutePrefix
	}
	if cfg.UserID == nil {
		cfg.UserID = ContextUserID
	}
	if cfg.TenantKey == "" {
		cfg.TenantKey = appctx.DefaultTenantKey
	}
	return &Module{cfg: cfg}
}

// ContextUserID is the default ModuleConfig.UserID: the uuid.UUID under
// "user_id", else under "account_id", else no user.
func ContextUserID(c echo.Context) (string, error) {
	return appctx.UserID(c.Get), nil
}

// Name implements core.Module.
func (m *Module) Name() string { return "sse" }

// Routes implements core.Module: GET <prefix>/stream and GET <prefix>/status.
func (m *Module) Routes() []core.Route {
	return []core.Route{
		{Method: http.MethodGet, Path: m.cfg.RoutePrefix + "/stream", Handler: m.stream, Middlewares: m.cfg.Middleware, Name: "sse.stream", Description: "Server-Sent Events stream"},
		{Method: http.MethodGet, Path: m.cfg.RoutePrefix + "/status", Handler: m.status, Middlewares: m.cfg.Middleware, Name: "sse.status", Description: "Connection counts"},
	}
}

// Middleware implements core.Module; the module adds no global middleware.
func (m *Module) Middleware() []echo.MiddlewareFunc { return nil }

// Dependencies implements core.Module.
func (m *Module) Dependencies() []string { return nil }

// Init implements core.Module.
func (m *Module) Init(map[string]core.Module) error { return nil }

// GetHub returns the module's hub.
func (m *Module) GetHub() *Hub { return m.cfg.Hub }

// Close closes the hub, ending its streams; see Hub.Shutdown.
func (m *Module) Close() error { return m.cfg.Hub.Close() }

func (m *Module) stream(c echo.Context) error {
	user := func() (string, error) { return m.cfg.UserID(c) }
	appctx.Serve(m.cfg.Hub, c.Response(), c.Request(), m.cfg.RequireAuth, user, c.Get, m.cfg.TenantKey)
	return nil
}

func (m *Module) status(c echo.Context) error {
	return c.JSON(http.StatusOK, m.cfg.Hub.Status())
}
