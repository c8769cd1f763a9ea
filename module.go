package sse

import (
	"fmt"
	"net/http"
	"reflect"
	"strconv"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/ssekit/sse/core"
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

// Module is the Echo adapter over Hub.ServeStream and Hub.StatusHandler, for
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
		cfg.RoutePrefix = "/sse"
	}
	if cfg.UserID == nil {
		cfg.UserID = ContextUserID
	}
	if cfg.TenantKey == "" {
		cfg.TenantKey = "tenant_id"
	}
	return &Module{cfg: cfg}
}

// ContextUserID is the default ModuleConfig.UserID: the uuid.UUID under
// "user_id", else under "account_id", else no user.
func ContextUserID(c echo.Context) (string, error) {
	for _, key := range []string{"user_id", "account_id"} {
		if id, ok := c.Get(key).(uuid.UUID); ok && id != uuid.Nil {
			return id.String(), nil
		}
	}
	return "", nil
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
	var who Identity
	user, err := m.cfg.UserID(c)
	if err == nil {
		who.User = user
		var ok bool
		if who.Tenant, ok = contextTenant(c.Get(m.cfg.TenantKey)); !ok {
			// The app's auth put something no id is read from: its bug,
			// not the client's credentials.
			msg := fmt.Sprintf("the tenant id under %q in the Echo context is a %T: want a string, uuid.UUID, integer or fmt.Stringer (ModuleConfig.TenantKey)", m.cfg.TenantKey, c.Get(m.cfg.TenantKey))
			m.cfg.Hub.cfg.Logger.Error("sse: "+msg, "key", m.cfg.TenantKey)
			WriteError(c.Response(), http.StatusInternalServerError, CodeInvalidTenant, msg)
			return nil
		}
	}
	m.cfg.Hub.serveAuthenticated(c.Response(), c.Request(), who, err, m.cfg.RequireAuth)
	return nil
}

// contextTenant returns the tenant id v stands for: "" for none (nil, a
// nil pointer, uuid.Nil), the text of a string, integer or fmt.Stringer
// (named types too: type OrgID string), or false for anything else.
func contextTenant(v any) (string, bool) {
	switch t := v.(type) {
	case nil:
		return "", true
	case uuid.UUID:
		if t == uuid.Nil {
			return "", true
		}
		return t.String(), true
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Pointer && rv.IsNil() {
		return "", true // a nil *T, which String would likely panic on
	}
	if s, ok := v.(fmt.Stringer); ok {
		return s.String(), true
	}
	switch rv.Kind() {
	case reflect.String:
		return rv.String(), true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(rv.Int(), 10), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.FormatUint(rv.Uint(), 10), true
	}
	return "", false
}

func (m *Module) status(c echo.Context) error {
	return c.JSON(http.StatusOK, m.cfg.Hub.Status())
}
