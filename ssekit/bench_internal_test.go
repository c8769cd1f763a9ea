package ssekit

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
)

func BenchmarkEncode(b *testing.B) {
	ev := NotificationEvent("follow", "New follower!", "Jo Doe is now following you", map[string]any{"user_id": 42})
	b.ReportAllocs()
	for b.Loop() {
		p, err := encode(ev, 0)
		if err != nil {
			b.Fatal(err)
		}
		_ = appendFrame(make([]byte, 0, frameSize("1700000000000-1", p.typ, p.data)), "1700000000000-1", p.typ, p.data)
	}
}

// benchHub registers n clients over users users, each drained by its own
// goroutine the way a stream's writer drains it (without a socket), and
// returns the hub and a stop function.
func benchHub(b *testing.B, n, users int) (*Hub, func()) {
	b.Helper()
	h, err := New(Config{MaxClients: -1, MaxClientsPerUser: -1, BufferSize: benchBuffer, HistorySize: 1024})
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := range n {
		c, _ := newFollower(strconv.Itoa(i), "user"+strconv.Itoa(i%users), nil, benchBuffer, nil)
		c.catchingUp = false
		if _, ok := h.reg.add(c, -1, -1); !ok {
			b.Fatal("add")
		}
		wake := c.parkChannel()
		wg.Add(1)
		go func() {
			defer wg.Done()
			var spare []*queuedEvent
			for {
				select {
				case <-wake:
					q, _, _ := c.take(spare, monotonic())
					clear(q)
					spare = q[:0]
				case <-stop:
					return
				}
			}
		}()
	}
	return h, func() {
		close(stop)
		wg.Wait()
		h.Close()
	}
}

func BenchmarkSendToUser(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("conns=%d", n), func(b *testing.B) {
			h, stop := benchHub(b, n, n/2) // two connections per user
			defer stop()
			ev := BadgeUpdateEvent(3)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := h.Publish(context.Background(), Target{Users: []string{"user" + strconv.Itoa(i%(n/2))}}, ev); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

func BenchmarkSendToAll(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("conns=%d", n), func(b *testing.B) {
			h, stop := benchHub(b, n, n)
			defer stop()
			ev := Event{Type: "announcement", Data: map[string]any{"message": "System maintenance in 10 minutes"}}
			b.ReportAllocs()
			for b.Loop() {
				if err := h.SendToAll(ev); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/delivery")
			if d := h.Stats().Disconnects[ReasonOverflow]; d > 0 {
				b.Logf("%d overflow disconnects: the drainers fell behind", d)
			}
		})
	}
}

// benchBuffer is deep enough that the drainers, which share two cores with
// the publisher, never overflow: the benchmarks measure delivery, not
// disconnects.
const benchBuffer = 1 << 14
