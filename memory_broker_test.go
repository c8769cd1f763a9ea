package sse_test

import (
	"testing"
	"time"

	sse "github.com/ssekit/sse"
	"github.com/ssekit/sse/brokertest"
)

// TestMemoryBrokerConformance runs the broker conformance suite against the
// in-memory broker, with a history small enough for the trimming case.
func TestMemoryBrokerConformance(t *testing.T) {
	brokertest.Run(t, func(t *testing.T) sse.Broker {
		b := sse.NewMemoryBroker(64, 0)
		t.Cleanup(func() { b.Close() })
		return b
	}, brokertest.WithKeyWindow(func(t *testing.T, window time.Duration) sse.Broker {
		b := sse.NewMemoryBrokerLimits(sse.MemoryLimits{PerChannel: 64, KeyWindow: window})
		t.Cleanup(func() { b.Close() })
		return b
	}))
}
