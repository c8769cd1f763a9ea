// Package appctx reads whom a stream is for from what an app's auth
// middleware left in its web framework's request context, the same way
// for every framework adapter (Echo v4 in package sse, Echo v5 in package
// echo5): each passes its context's Get.
package appctx

import (
	"fmt"
	"net/http"
	"reflect"
	"strconv"

	"github.com/google/uuid"

	"github.com/ssekit/sse/ssekit"
)

// UserKeys are the context keys the default user lookup reads, in order.
var UserKeys = []string{"user_id", "account_id"}

// UserID is the modules' default user lookup: the uuid.UUID under
// "user_id", else under "account_id", else no user.
func UserID(get func(key string) any) string {
	for _, key := range UserKeys {
		if id, ok := get(key).(uuid.UUID); ok && id != uuid.Nil {
			return id.String()
		}
	}
	return ""
}

// Identity is whom a request is for: user from userID, tenant from the
// context value under tenantKey. A tenant value no id can be read from is
// the app's bug: the error wraps ssekit.ErrInvalidTenant, which the hub
// answers 500 invalid_tenant.
func Identity(get func(key string) any, user string, tenantKey string) (ssekit.Identity, error) {
	who := ssekit.Identity{User: user}
	v := get(tenantKey)
	tenant, ok := Tenant(v)
	if !ok {
		return ssekit.Identity{}, fmt.Errorf("%w: the tenant id under %q in the Echo context is a %T: want a string, uuid.UUID, integer or fmt.Stringer (ModuleConfig.TenantKey)", ssekit.ErrInvalidTenant, tenantKey, v)
	}
	who.Tenant = tenant
	return who, nil
}

// Tenant returns the tenant id v stands for: "" for none (nil, a nil
// pointer, uuid.Nil), the text of a string, integer or fmt.Stringer
// (named types too: type OrgID string), or false for anything else.
func Tenant(v any) (string, bool) {
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

// Defaults of the modules' config, the same for every Echo major.
const (
	DefaultRoutePrefix = "/sse"
	DefaultTenantKey   = "tenant_id"
)

// Serve serves the stream of one request through hub.Handler, for a
// module: user is the module's UserID for the request, get its
// context's Get, tenantKey the module's TenantKey.
func Serve(hub *ssekit.Hub, w http.ResponseWriter, r *http.Request, requireAuth bool, user func() (string, error), get func(key string) any, tenantKey string) {
	hub.Handler(ssekit.HandlerOptions{
		Identify: func(*http.Request) (ssekit.Identity, error) {
			id, err := user()
			if err != nil {
				return ssekit.Identity{}, err
			}
			return Identity(get, id, tenantKey)
		},
		RequireAuth: requireAuth,
	}).ServeHTTP(w, r)
}
