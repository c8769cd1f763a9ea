package sse_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/ssekit/sse"
	"github.com/ssekit/sse/core"
	"github.com/ssekit/sse/internal/ssetest"
)

// tenantCtx stands in for an app's auth middleware that puts the tenant
// in the Echo context, under key, as value.
func tenantCtx(key string, value any) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if id, err := uuid.Parse(c.Request().Header.Get("X-User")); err == nil {
				c.Set("user_id", id)
			}
			c.Set(key, value)
			return next(c)
		}
	}
}

type orgID struct{ n int }

func (o orgID) String() string { return fmt.Sprintf("org-%d", o.n) }

// orgName is an app's named string type for tenant ids.
type orgName string

func TestModuleReadsTheTenantFromTheContext(t *testing.T) {
	t.Parallel()
	tenantUUID := uuid.MustParse("0b0e7d1c-1f1e-4d1c-9a3b-5c6d7e8f9a0b")
	cases := []struct {
		name      string
		key       string // ModuleConfig.TenantKey; "" for the default
		ctxKey    string // where the middleware puts it
		value     any
		want      string // the tenant id; "" for none
		wantError string // the 500's message contains it
	}{
		{name: "string", ctxKey: "tenant_id", value: "acme", want: "acme"},
		{name: "uuid.UUID", ctxKey: "tenant_id", value: tenantUUID, want: tenantUUID.String()},
		{name: "int", ctxKey: "tenant_id", value: 42, want: "42"},
		{name: "int64", ctxKey: "tenant_id", value: int64(7), want: "7"},
		{name: "fmt.Stringer", ctxKey: "tenant_id", value: orgID{3}, want: "org-3"},
		{name: "custom key", key: "org", ctxKey: "org", value: "globex", want: "globex"},
		{name: "custom key ignores tenant_id", key: "org", ctxKey: "tenant_id", value: "acme", want: ""},
		{name: "nil uuid is no tenant", ctxKey: "tenant_id", value: uuid.Nil, want: ""},
		{name: "named string", ctxKey: "tenant_id", value: orgName("initech"), want: "initech"},
		{name: "int32", ctxKey: "tenant_id", value: int32(9), want: "9"},
		{name: "uint", ctxKey: "tenant_id", value: uint(11), want: "11"},
		{name: "nil pointer is no tenant", ctxKey: "tenant_id", value: (*orgID)(nil), want: ""},
		{name: "float", ctxKey: "tenant_id", value: 3.5, wantError: `"tenant_id" in the Echo context is a float64`},
		{name: "byte slice", key: "org", ctxKey: "org", value: []byte("acme"), wantError: `"org" in the Echo context is a []uint8`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			hub := sse.NewHub(sse.Config{DetachStreams: ssetest.Detach})
			mod := sse.NewModule(sse.ModuleConfig{Hub: hub, TenantKey: tc.key, RequireAuth: true})
			app := core.NewKit(nil, core.KitConfig{})
			app.Echo().Use(tenantCtx(tc.ctxKey, tc.value))
			if err := app.Register(mod); err != nil {
				t.Fatal(err)
			}
			if err := app.Mount(); err != nil {
				t.Fatal(err)
			}
			srv := ssetest.Serve(t, hub, app.Echo())
			user := uuid.New()
			if tc.wantError != "" {
				resp := ssetest.Get(t, srv.URL+"/sse/stream", user.String())
				defer resp.Body.Close()
				var body sse.ErrorBody
				if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
					t.Fatal(err)
				}
				if resp.StatusCode != http.StatusInternalServerError || body.Error != sse.CodeInvalidTenant || !strings.Contains(body.Message, tc.wantError) {
					t.Fatalf("got %d %+v, want 500 %s with a message containing %q", resp.StatusCode, body, sse.CodeInvalidTenant, tc.wantError)
				}
				if got := hub.GetTotalClientCount(); got != 0 {
					t.Fatalf("GetTotalClientCount = %d after a refusal", got)
				}
				return
			}
			c := dialURLUser(t, srv.URL+"/sse/stream", user)
			c.Connected()
			if tc.want != "" {
				hub.SendToTenant(tc.want, sse.Event{Type: "tenant"})
			}
			hub.SendToTenant("someone-else", sse.Event{Type: "other-tenant"})
			hub.SendToAll(sse.Event{Type: "end"})
			want := []string{"end"}
			if tc.want != "" {
				want = []string{"tenant", "end"}
			}
			ssetest.ExpectNext(t, map[string]*ssetest.Conn{"stream": c}, want...)
		})
	}
}

// A tenant's events stay in its tenant over the Echo module as over
// Handler: two tenants' users, each with two tabs.
func TestModuleTenantsDoNotSeeEachOther(t *testing.T) {
	t.Parallel()
	hub := sse.NewHub(sse.Config{DetachStreams: ssetest.Detach})
	mod := sse.NewModule(sse.ModuleConfig{Hub: hub})
	app := core.NewKit(nil, core.KitConfig{})
	app.Echo().Use(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			user, tenant, _ := strings.Cut(c.Request().Header.Get("X-User"), "@")
			c.Set("user_id", uuid.NewSHA1(uuid.NameSpaceOID, []byte(user)))
			c.Set("tenant_id", tenant)
			return next(c)
		}
	})
	if err := app.Register(mod); err != nil {
		t.Fatal(err)
	}
	if err := app.Mount(); err != nil {
		t.Fatal(err)
	}
	srv := ssetest.Serve(t, hub, app.Echo())
	conns := map[string]*ssetest.Conn{}
	for _, who := range []string{"alice@acme", "bob@acme", "carol@globex"} {
		for tab := range 2 {
			c := ssetest.DialOK(t, srv.URL+"/sse/stream", who, "")
			c.Connected()
			conns[fmt.Sprint(who, " tab ", tab)] = c
		}
	}
	hub.SendToTenant("acme", sse.Event{Type: "acme"})
	hub.SendToTenant("globex", sse.Event{Type: "globex"})
	for who, c := range conns {
		_, tenant, _ := strings.Cut(who, "@")
		tenant, _, _ = strings.Cut(tenant, " ")
		ssetest.ExpectNext(t, map[string]*ssetest.Conn{who: c}, tenant)
	}
	hub.SendToAll(sse.Event{Type: "end"})
	ssetest.ExpectNext(t, conns, "end")
	if got := hub.ConnectedUserIDs(); len(got) != 3 {
		t.Fatalf("ConnectedUserIDs = %v, want 3 users", got)
	}
}
