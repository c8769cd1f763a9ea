package core_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/labstack/echo/v5"
	"go.uber.org/goleak"

	"github.com/ssekit/sse/echo5/core"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// mod is a module that records its Init calls in a shared log and counts
// its Close calls.
type mod struct {
	name   string
	deps   []string
	routes []core.Route
	mw     []echo.MiddlewareFunc
	log    *[]string
}

func (m *mod) Name() string                      { return m.name }
func (m *mod) Routes() []core.Route              { return m.routes }
func (m *mod) Middleware() []echo.MiddlewareFunc { return m.mw }
func (m *mod) Dependencies() []string            { return m.deps }
func (m *mod) Init(map[string]core.Module) error {
	*m.log = append(*m.log, "init "+m.name)
	return nil
}

// closing is a mod that is a core.Closer.
type closing struct {
	mod
	err error
}

func (c *closing) Close() error {
	*c.log = append(*c.log, "close "+c.name)
	return c.err
}

func ok(c *echo.Context) error { return c.String(http.StatusOK, c.Path()) }

// The kit's Echo v5 half: routes under the prefix with their names and
// route middleware, global middleware, the modules in dependency order
// (the order and its errors are internal/kit's, tested there).
func TestRoutesMiddlewareAndPrefix(t *testing.T) {
	t.Parallel()
	var log, order []string
	global := func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c *echo.Context) error { order = append(order, "global"); return next(c) }
	}
	route := func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c *echo.Context) error { order = append(order, "route"); return next(c) }
	}
	m := &mod{name: "m", deps: []string{"base"}, log: &log, mw: []echo.MiddlewareFunc{global}, routes: []core.Route{
		{Method: "get", Path: "/things", Handler: ok, Middlewares: []echo.MiddlewareFunc{route}, Name: "things"},
		{Method: http.MethodPost, Path: "/things", Handler: ok},
	}}
	e := echo.New()
	k := core.NewKit(e, core.KitConfig{RoutePrefix: "/api"})
	if k.Echo() != e {
		t.Fatal("Echo() is not the instance given")
	}
	for _, m := range []core.Module{m, &mod{name: "base", log: &log}} {
		if err := k.Register(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := k.Register(&mod{name: "m", log: &log}); !errors.Is(err, core.ErrDuplicate) {
		t.Fatalf("duplicate: %v", err)
	}
	if err := k.Mount(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"init base", "init m"}; !slices.Equal(log, want) {
		t.Fatalf("init order %v, want %v", log, want)
	}
	if k.Get("m") != m || k.Get("zz") != nil {
		t.Fatal("Get")
	}
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, httptest.NewRequest(method, "/api/things", nil))
		if rec.Code != http.StatusOK || rec.Body.String() != "/api/things" {
			t.Fatalf("%s /api/things: %d %q", method, rec.Code, rec.Body)
		}
	}
	if want := []string{"global", "route", "global"}; !slices.Equal(order, want) {
		t.Fatalf("middleware order %v, want %v", order, want)
	}
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/things", nil))
	if rec.Code != http.StatusNotFound {
		t.Fatalf("unprefixed path: %d, want 404", rec.Code)
	}
	if got, err := e.Router().Routes().Reverse("things"); err != nil || got != "/api/things" {
		t.Fatalf("route name: Reverse = %q, %v", got, err)
	}
	if err := k.Mount(); !errors.Is(err, core.ErrMounted) {
		t.Fatalf("second mount: %v", err)
	}
}

func TestMountErrors(t *testing.T) {
	t.Parallel()
	// A log of each case's own: the cases run in parallel.
	for name, m := range map[string]core.Module{
		"bad method":    &mod{name: "a", log: new([]string), routes: []core.Route{{Method: "BREW", Path: "/x", Handler: ok}}},
		"missing":       &mod{name: "a", log: new([]string), deps: []string{"ghost"}},
		"route refused": &mod{name: "a", log: new([]string), routes: []core.Route{{Method: http.MethodGet, Path: "/refused", Handler: ok}}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := echo.New()
			e.OnAddRoute = func(r echo.Route) error {
				if r.Path == "/refused" {
					return errors.New("refused by OnAddRoute")
				}
				return nil
			}
			k := core.NewKit(e, core.KitConfig{})
			if err := k.Register(m); err != nil {
				t.Fatal(err)
			}
			if err := k.Mount(); err == nil {
				t.Fatal("Mount succeeded")
			}
		})
	}
}

func TestErrorHandler(t *testing.T) {
	t.Parallel()
	var handled atomic.Bool
	k := core.NewKit(nil, core.KitConfig{ErrorHandler: func(c *echo.Context, err error) {
		handled.Store(true)
		_ = c.NoContent(http.StatusTeapot)
	}})
	rec := httptest.NewRecorder()
	k.Echo().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/nowhere", nil))
	if !handled.Load() || rec.Code != http.StatusTeapot {
		t.Fatalf("ErrorHandler not used: %d", rec.Code)
	}
}

// Start closes the modules that are Closers when its server shuts down,
// dependents first, after the app's own BeforeServeFunc, and returns after
// them with their error; Close after that returns the same result.
func TestStartClosesModulesAtShutdown(t *testing.T) {
	t.Parallel()
	var log []string
	boom := errors.New("boom")
	k := core.NewKit(nil, core.KitConfig{})
	for _, m := range []core.Module{
		&closing{mod: mod{name: "app", deps: []string{"sse"}, log: &log}},
		&mod{name: "plain", log: &log},
		&closing{mod: mod{name: "sse", log: &log}, err: boom},
	} {
		if err := k.Register(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := k.Mount(); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var before atomic.Bool
	served := make(chan error, 1)
	go func() {
		served <- k.Start(ctx, echo.StartConfig{Listener: ln, HideBanner: true, HidePort: true, BeforeServeFunc: func(*http.Server) error {
			before.Store(true)
			return nil
		}})
	}()
	resp, err := http.Get("http://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cancel()
	if err := <-served; !errors.Is(err, boom) {
		t.Fatalf("Start: %v, want the modules' close error %v", err, boom)
	}
	if !before.Load() {
		t.Fatal("the app's BeforeServeFunc did not run")
	}
	want := []string{"init sse", "init app", "init plain", "close app", "close sse"}
	if !slices.Equal(log, want) {
		t.Fatalf("log %v, want %v", log, want)
	}
	if err := k.Close(); !errors.Is(err, boom) {
		t.Fatalf("Close after shutdown: %v, want the first close's %v", err, boom)
	}
	if len(log) != len(want) {
		t.Fatalf("modules closed twice: %v", log)
	}
}
