package sse_test

import (
	"testing"

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
	})
}
