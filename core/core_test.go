package core_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/ssekit/sse/core"
)

// mod is a module that records its Init calls in a shared log.
type mod struct {
	name    string
	deps    []string
	routes  []core.Route
	mw      []echo.MiddlewareFunc
	initErr error
	log     *[]string
	gotDeps map[string]core.Module
}

func (m *mod) Name() string                      { return m.name }
func (m *mod) Routes() []core.Route              { return m.routes }
func (m *mod) Middleware() []echo.MiddlewareFunc { return m.mw }
func (m *mod) Dependencies() []string            { return m.deps }
func (m *mod) Init(deps map[string]core.Module) error {
	*m.log = append(*m.log, m.name)
	m.gotDeps = deps
	return m.initErr
}

func TestMountInitializesInDependencyOrder(t *testing.T) {
	var log []string
	// Registered before their dependencies: order comes from Dependencies.
	c := &mod{name: "c", deps: []string{"b", "a"}, log: &log}
	b := &mod{name: "b", deps: []string{"a"}, log: &log}
	a := &mod{name: "a", log: &log}
	k := core.NewKit(nil, core.KitConfig{})
	for _, m := range []core.Module{c, b, a} {
		if err := k.Register(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := k.Mount(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "b", "c"}; !slices.Equal(log, want) {
		t.Fatalf("init order %v, want %v", log, want)
	}
	if c.gotDeps["a"] != a || c.gotDeps["b"] != b || len(c.gotDeps) != 2 {
		t.Fatalf("c got deps %v", c.gotDeps)
	}
	if k.Get("b") != b || k.Get("zz") != nil {
		t.Fatal("Get")
	}
}

func TestRegisterAndMountErrors(t *testing.T) {
	var log []string
	tests := []struct {
		name    string
		modules []core.Module
		want    error
	}{
		{"cycle", []core.Module{&mod{name: "a", deps: []string{"b"}, log: &log}, &mod{name: "b", deps: []string{"a"}, log: &log}}, core.ErrCycle},
		{"self cycle", []core.Module{&mod{name: "a", deps: []string{"a"}, log: &log}}, core.ErrCycle},
		{"missing", []core.Module{&mod{name: "a", deps: []string{"ghost"}, log: &log}}, core.ErrMissing},
		{"init fails", []core.Module{&mod{name: "a", initErr: errors.New("boom"), log: &log}}, nil},
		{"bad method", []core.Module{&mod{name: "a", log: &log, routes: []core.Route{{Method: "BREW", Path: "/x", Handler: ok}}}}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := core.NewKit(nil, core.KitConfig{})
			for _, m := range tc.modules {
				if err := k.Register(m); err != nil {
					t.Fatal(err)
				}
			}
			err := k.Mount()
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("Mount: %v, want %v", err, tc.want)
			}
		})
	}
	k := core.NewKit(nil, core.KitConfig{})
	if err := k.Register(&mod{name: "a", log: &log}); err != nil {
		t.Fatal(err)
	}
	if err := k.Register(&mod{name: "a", log: &log}); !errors.Is(err, core.ErrDuplicate) {
		t.Fatalf("duplicate: %v", err)
	}
	if err := k.Mount(); err != nil {
		t.Fatal(err)
	}
	if err := k.Register(&mod{name: "b", log: &log}); !errors.Is(err, core.ErrMounted) {
		t.Fatalf("register after mount: %v", err)
	}
	if err := k.Mount(); !errors.Is(err, core.ErrMounted) {
		t.Fatalf("second mount: %v", err)
	}
}

func ok(c echo.Context) error { return c.String(http.StatusOK, c.Path()) }

func TestRoutesMiddlewareAndPrefix(t *testing.T) {
	var log []string
	var order []string
	global := func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error { order = append(order, "global"); return next(c) }
	}
	route := func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error { order = append(order, "route"); return next(c) }
	}
	m := &mod{name: "m", log: &log, mw: []echo.MiddlewareFunc{global}, routes: []core.Route{
		{Method: "get", Path: "/things", Handler: ok, Middlewares: []echo.MiddlewareFunc{route}, Name: "things"},
		{Method: http.MethodPost, Path: "/things", Handler: ok},
	}}
	e := echo.New()
	k := core.NewKit(e, core.KitConfig{RoutePrefix: "/api"})
	if k.Echo() != e {
		t.Fatal("Echo() is not the instance given")
	}
	k.Register(m)
	if err := k.Mount(); err != nil {
		t.Fatal(err)
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
	if got := e.Reverse("things"); got != "/api/things" {
		t.Fatalf("route name: Reverse = %q", got)
	}
}

func TestNilEchoMakesOne(t *testing.T) {
	k := core.NewKit(nil, core.KitConfig{Debug: true})
	if k.Echo() == nil || !k.Echo().Debug {
		t.Fatal("NewKit(nil) made no Echo, or ignored Debug")
	}
}
