package main

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// memorySet is a JWK Set served from memory, for the hub's JWKS client
// inside a synctest bubble, which real connections would leave.
type memorySet struct {
	mu       sync.Mutex
	body     []byte
	down     bool
	requests int
}

func (m *memorySet) RoundTrip(r *http.Request) (*http.Response, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.requests++
	if m.down {
		return nil, fmt.Errorf("dial %s: connection refused", r.URL.Host)
	}
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: io.NopCloser(bytes.NewReader(m.body)), Request: r}, nil
}

func (m *memorySet) serve(t *testing.T, keys ...signingKey) {
	t.Helper()
	body := jwksBody(t, keys...)
	m.mu.Lock()
	m.body, m.down = body, false
	m.mu.Unlock()
}

func (m *memorySet) setDown() {
	m.mu.Lock()
	m.down = true
	m.mu.Unlock()
}

func (m *memorySet) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.requests
}

// TestJWKSRefreshOnAClock runs the JWKS client on synctest's fake clock:
// the keys are fetched again every --jwks-refresh, a rotation replacing
// them without any token asking; a refresh that fails keeps them; and a
// fetch for an unknown kid happens at most once per
// --jwks-refresh-unknown-kid, counted in fetches, not in time.
func TestJWKSRefreshOnAClock(t *testing.T) {
	t.Parallel()
	k1 := newSigningKey(t, "rsa", "k1", "", "")
	k2 := newSigningKey(t, "ec", "k2", "", "")
	k3 := newSigningKey(t, "ed", "k3", "", "")
	synctest.Test(t, func(t *testing.T) {
		set := &memorySet{}
		set.serve(t, k1)
		cfg := jwksConfig(t, "https://idp.example.com/.well-known/jwks.json")
		j, err := newJWKS(t.Context(), cfg, slog.New(slog.DiscardHandler), set)
		if err != nil {
			t.Fatal(err)
		}
		defer j.Close()
		reg := prometheus.NewRegistry()
		reg.MustRegister(j.Collectors()...)
		v := newVerifier("", "", "", "tenant_id")
		v.keys = j
		accepts := func(k signingKey) bool {
			_, _, err := v.identify(k.sign(t, userClaims(newUser(), nil)))
			return err == nil
		}
		loaded := func(kid string) bool { return j.Loaded(t.Context(), kid) }
		// Past a tick, and once the refresh goroutine waits for the next.
		nextTick := func() {
			time.Sleep(cfg.JWKSRefresh + time.Second)
			synctest.Wait()
		}

		set.serve(t, k2)
		nextTick()
		if !loaded("k2") || loaded("k1") {
			t.Errorf("after a refresh: k2 loaded %v, k1 loaded %v; want only k2", loaded("k2"), loaded("k1"))
		}
		if got := gathered(t, reg, "ssekit_jwks_refreshes_total", "interval"); got != 1 {
			t.Errorf("refreshes{interval} = %v, want 1", got)
		}

		set.setDown()
		nextTick()
		if got := gathered(t, reg, "ssekit_jwks_refresh_failures_total", "interval"); got != 1 {
			t.Errorf("failures{interval} = %v, want 1", got)
		}
		if !accepts(k2) {
			t.Error("k2 refused while the set is down, want it accepted")
		}

		// Down, then up with k3: the unknown kid's fetch failed, and the
		// next is not before --jwks-refresh-unknown-kid.
		before := set.count()
		if accepts(k3) {
			t.Error("k3 accepted while the set is down")
		}
		set.serve(t, k2, k3)
		if accepts(k3) {
			t.Error("k3 accepted within --jwks-refresh-unknown-kid of the last fetch for an unknown kid")
		}
		if got := set.count() - before; got != 1 {
			t.Errorf("fetches for unknown kids = %d, want 1", got)
		}
		time.Sleep(cfg.JWKSRefreshUnknownKID)
		if !accepts(k3) {
			t.Error("k3 refused once --jwks-refresh-unknown-kid has passed")
		}
		if got := set.count() - before; got != 2 {
			t.Errorf("fetches for unknown kids = %d, want 2", got)
		}
	})
}

// gathered returns the value of the counter name{trigger} of reg.
func gathered(t *testing.T, reg *prometheus.Registry, name, trigger string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "trigger" && l.GetValue() == trigger {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{trigger=%q}", name, trigger)
	return 0
}
