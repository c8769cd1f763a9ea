package redisbroker_test

import (
	"testing"

	sse "github.com/ssekit/sse"
	"github.com/ssekit/sse/brokertest"
	"github.com/ssekit/sse/redisbroker"
)

// TestConformance runs the broker conformance suite against the Redis
// broker on the shared Redis and on a Redis Cluster, with a history small
// enough for the trimming case.
func TestConformance(t *testing.T) {
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			rdb := be.client(t)
			brokertest.Run(t, func(t *testing.T) sse.Broker {
				return newBroker(t, rdb, redisbroker.Options{MaxLen: 100})
			})
		})
	}
}
