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

// TestRacingResumes runs isolation.Racing on two hubs sharing one memory
// broker: a lineage that reconnects 60 times, alternately on each node,
// while 2,000 publishes race its reconnects, gets each of its events once.
func TestRacingResumes(t *testing.T) {
	t.Parallel()
	b := sse.NewMemoryBrokerLimits(sse.MemoryLimits{PerChannel: 100_000})
	t.Cleanup(func() { b.Close() })
	var nodes []isolation.RacingNode
	for range 2 {
		h, err := sse.New(sse.Config{Broker: b, DetachStreams: detachAll, AuthorizeTopic: sse.AllowAllTopics, BufferSize: 4096})
		if err != nil {
			t.Fatal(err)
		}
		srv := newServer(t, h, isolation.RacingHandler(h))
		nodes = append(nodes, isolation.RacingNode{Hub: h, URL: srv.URL})
	}
	isolation.Racing(t, nodes, 2000, 60)
}
