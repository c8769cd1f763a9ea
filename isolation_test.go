package sse_test

import (
	"testing"

	"github.com/ssekit/sse"
	"github.com/ssekit/sse/internal/isolation"
)

// TestIsolation runs the randomized isolation test (internal/isolation)
// on two hubs that share one memory broker, as two nodes: three tenants'
// users, a kiosk and anonymous clients, 10,000 publishes to random
// targets of every kind while connections come and go and resume on
// either node; each connection receives exactly the events of the
// channels it follows, once.
func TestIsolation(t *testing.T) {
	t.Parallel()
	b := sse.NewMemoryBrokerLimits(sse.MemoryLimits{PerChannel: 100_000})
	t.Cleanup(func() { b.Close() })
	isolation.Run(t, isolation.Options{
		Broker: func(testing.TB, int) sse.Broker { return b },
		Hub:    sse.Config{DetachStreams: detachAll},
	})
}
