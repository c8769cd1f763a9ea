package ssekit_test

import (
	"testing"
	"time"

	"github.com/ssekit/sse/brokertest"
	"github.com/ssekit/sse/ssekit"
)

// TestMemoryBrokerConformance runs the broker conformance suite against the
// in-memory broker, with a history small enough for the trimming case.
func TestMemoryBrokerConformance(t *testing.T) {
	brokertest.Run(t, func(t *testing.T) ssekit.Broker {
		b := ssekit.NewMemoryBroker(64, 0)
		t.Cleanup(func() { b.Close() })
		return b
	}, brokertest.WithKeyWindow(func(t *testing.T, window time.Duration) ssekit.Broker {
		b := ssekit.NewMemoryBrokerLimits(ssekit.MemoryLimits{PerChannel: 64, KeyWindow: window})
		t.Cleanup(func() { b.Close() })
		return b
	}))
}
