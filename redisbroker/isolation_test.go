package redisbroker_test

import (
	"testing"

	sse "github.com/ssekit/sse"
	"github.com/ssekit/sse/internal/isolation"
	"github.com/ssekit/sse/redisbroker"
)

// TestIsolation runs the randomized isolation test (internal/isolation)
// on two hubs, each with its own broker and Redis client under one
// prefix, on one Redis and on a Redis Cluster: 10,000 publishes to
// random targets of every kind while connections come and go and resume
// on either node; each connection receives exactly the events of the
// channels it follows, once — none of another tenant, none of a topic it
// was not allowed.
func TestIsolation(t *testing.T) {
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			prefix := uniquePrefix(t, be.client(t))
			isolation.Run(t, isolation.Options{
				Broker: func(_ testing.TB, node int) sse.Broker {
					// No trimming: a resume must find everything it missed.
					return newBroker(t, be.client(t), redisbroker.Options{Prefix: prefix, MaxLen: -1, Logger: testLogger(t)})
				},
			})
		})
	}
}
