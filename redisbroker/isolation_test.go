package redisbroker_test

import (
	"testing"

	"github.com/ssekit/sse/internal/isolation"
	"github.com/ssekit/sse/redisbroker"
	"github.com/ssekit/sse/ssekit"
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
				Broker: func(_ testing.TB, node int) ssekit.Broker {
					// No trimming: a resume must find everything it missed.
					return newBroker(t, be.client(t), redisbroker.Options{Prefix: prefix, MaxLen: -1, Logger: testLogger(t)})
				},
			})
		})
	}
}

// TestRacingResumes runs isolation.Racing on two nodes, on one Redis and
// on a Redis Cluster: publishes to a stream's user and topic, together
// and apart, race its reconnects on alternating nodes; each of its events
// comes once — the copies of one publish in two channels included, which
// the Redis broker stores and delivers apart.
func TestRacingResumes(t *testing.T) {
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			prefix := uniquePrefix(t, be.client(t))
			cfg := ssekit.Config{AuthorizeTopic: ssekit.AllowAllTopics}
			var nodes []isolation.RacingNode
			for range 2 {
				n := newNode(t, be, prefix, redisbroker.Options{MaxLen: -1}, cfg)
				nodes = append(nodes, isolation.RacingNode{Hub: n.hub, URL: n.srv.URL})
			}
			isolation.Racing(t, nodes, 2000, 60)
		})
	}
}
