package redisbroker_test

import (
	"testing"

	sse "github.com/ssekit/sse"
	"github.com/ssekit/sse/brokertest"
	"github.com/ssekit/sse/redisbroker"
)

// TestConformance runs the broker conformance suite against the Redis
// broker on the shared Redis, with a history small enough for the
// trimming case.
func TestConformance(t *testing.T) {
	rdb := sharedRedis(t)
	brokertest.Run(t, func(t *testing.T) sse.Broker {
		return newBroker(t, rdb, redisbroker.Options{MaxLen: 100})
	})
}
