package redisbroker_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssekit/sse/redisbroker"
	"github.com/ssekit/sse/ssekit"
)

// BenchmarkPublish measures one publish to one user (one script round
// trip: dedupe check, XADD with the predecessor's position, trimming, the
// announcement) on the shared Redis, from parallel publishers.
func BenchmarkPublish(b *testing.B) {
	rdb := sharedRedis(b)
	br := newBroker(b, rdb, redisbroker.Options{MaxLen: 10000})
	m := ssekit.Message{Channels: []string{ssekit.UserChannel("6f1c7e0e-8d3a-4a59-9c1e-2b7d1c0e9a11")}, Type: "notification", Data: []byte(`{"title":"New follower!","n":1}`)}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := br.Publish(b.Context(), m); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkPublishDelivered measures publish-to-subscriber throughput: b.N
// events published in parallel, timed until the subscription has handed
// them all over.
func BenchmarkPublishDelivered(b *testing.B) {
	rdb := sharedRedis(b)
	br := newBroker(b, rdb, redisbroker.Options{MaxLen: 10000})
	got := make(chan struct{}, 1)
	var n atomic.Int64
	sub, err := br.Subscribe(b.Context(), func(ssekit.Message) {
		if n.Add(1) == int64(b.N) {
			got <- struct{}{}
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := sub.Follow(b.Context(), ssekit.BroadcastChannel); err != nil {
		b.Fatal(err)
	}
	m := ssekit.Message{Channels: []string{ssekit.BroadcastChannel}, Type: "t", Data: []byte(`{"n":1}`)}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := br.Publish(b.Context(), m); err != nil {
				b.Error(err)
				return
			}
		}
	})
	select {
	case <-got:
	case <-time.After(time.Minute):
		b.Fatalf("the subscription handed over %d of %d events within a minute", n.Load(), b.N)
	}
}

// BenchmarkPublishTwoChannels measures a publish to two channels: two
// users (no connection follows both, so the copies carry no Also and no
// record of positions is kept) against a user and a topic (each copy
// names the other, and the publish's positions are recorded for Read).
func BenchmarkPublishTwoChannels(b *testing.B) {
	rdb := sharedRedis(b)
	br := newBroker(b, rdb, redisbroker.Options{MaxLen: 10000})
	for name, chans := range map[string][]string{
		"users":      {ssekit.UserChannel("a"), ssekit.UserChannel("b")},
		"user+topic": {ssekit.TopicChannel("board"), ssekit.UserChannel("a")},
	} {
		b.Run(name, func(b *testing.B) {
			m := ssekit.Message{Channels: chans, Type: "notification", Data: []byte(`{"title":"New follower!","n":1}`)}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := br.Publish(b.Context(), m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
