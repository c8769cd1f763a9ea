package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// BenchmarkPublishHandler is the cost of one targeted publish in ssehub's
// handler, without the network: auth, body checks, the hub's Publish and
// the answer, to 1,000 users' streams (registered, not read).
func BenchmarkPublishHandler(b *testing.B) {
	cfg := testConfig(&testing.T{}, "--publish-rate-ip", "0")
	cfg.fillDevSecrets()
	a, err := newApp(b.Context(), cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer a.close(b.Context())
	users := make([]string, 1000)
	for i := range users {
		users[i] = uuid.NewString()
	}
	bodies := make([]string, len(users))
	for i, u := range users {
		bodies[i] = fmt.Sprintf(`{"users":[%q],"type":"notification","data":{"title":"New follower!","n":%d}}`, u, i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/sse/publish", strings.NewReader(bodies[i%len(bodies)]))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+testKey)
		w := httptest.NewRecorder()
		a.handler.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
		i++
	}
}
