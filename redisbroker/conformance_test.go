package redisbroker_test

import (
	"sync"
	"testing"
	"time"

	"github.com/ssekit/sse/brokertest"
	"github.com/ssekit/sse/redisbroker"
	"github.com/ssekit/sse/ssekit"
)

// TestConformance runs the broker conformance suite against the Redis
// broker on the shared Redis and on a Redis Cluster, with a history small
// enough for the trimming case. A broker's peer is another node of its
// cluster: a broker with its own client under the same prefix.
func TestConformance(t *testing.T) {
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			rdb := be.client(t)
			var prefixes sync.Map // *redisbroker.Broker: its prefix
			brokertest.Run(t, func(t *testing.T) ssekit.Broker {
				prefix := uniquePrefix(t, rdb)
				b := newBroker(t, rdb, redisbroker.Options{Prefix: prefix, MaxLen: 100})
				prefixes.Store(b, prefix)
				return b
			}, brokertest.WithPeer(func(t *testing.T, b ssekit.Broker) ssekit.Broker {
				prefix, ok := prefixes.Load(b)
				if !ok {
					t.Fatalf("a peer of a broker the suite's newBroker did not make")
				}
				return newBroker(t, be.client(t), redisbroker.Options{Prefix: prefix.(string), MaxLen: 100})
			}), brokertest.WithKeyWindow(func(t *testing.T, window time.Duration) ssekit.Broker {
				return newBroker(t, rdb, redisbroker.Options{MaxLen: 100, KeyWindow: window})
			}))
		})
	}
}
