package ssekit_test

import (
	"testing"

	"github.com/ssekit/sse/internal/isolation"
	"github.com/ssekit/sse/internal/ssetest"
	"github.com/ssekit/sse/ssekit"
)

// TestIsolation runs the randomized isolation test (internal/isolation)
// on two hubs that share one memory broker, as two nodes: three tenants'
// users, a kiosk and anonymous clients, 10,000 publishes to random
// targets of every kind while connections come and go and resume on
// either node; each connection receives exactly the events of the
// channels it follows, once.
func TestIsolation(t *testing.T) {
	t.Parallel()
	b := ssekit.NewMemoryBrokerLimits(ssekit.MemoryLimits{PerChannel: 100_000})
	t.Cleanup(func() { b.Close() })
	isolation.Run(t, isolation.Options{
		Broker: func(testing.TB, int) ssekit.Broker { return b },
		Hub:    ssekit.Config{DetachStreams: detachAll},
	})
}

// TestRacingResumes runs isolation.Racing on two hubs sharing one memory
// broker: a lineage that reconnects 60 times, alternately on each node,
// while 2,000 publishes race its reconnects, gets each of its events once.
func TestRacingResumes(t *testing.T) {
	t.Parallel()
	b := ssekit.NewMemoryBrokerLimits(ssekit.MemoryLimits{PerChannel: 100_000})
	t.Cleanup(func() { b.Close() })
	var nodes []isolation.RacingNode
	for range 2 {
		h, err := ssekit.New(ssekit.Config{Broker: b, DetachStreams: detachAll, AuthorizeTopic: ssekit.AllowAllTopics, BufferSize: 4096})
		if err != nil {
			t.Fatal(err)
		}
		srv := ssetest.Serve(t, h, isolation.RacingHandler(h))
		nodes = append(nodes, isolation.RacingNode{Hub: h, URL: srv.URL})
	}
	isolation.Racing(t, nodes, 2000, 60)
}
