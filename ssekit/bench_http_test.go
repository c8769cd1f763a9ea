package ssekit_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ssekit/sse/ssekit"
)

// BenchmarkBroadcastHTTP measures a broadcast reaching n real loopback
// HTTP streams, from SendToAll to the bytes read by each client: the
// server's fan-out, its writes, and (on the same cores) the clients' reads.
// Each op is one broadcast; ns/delivery divides by n.
func BenchmarkBroadcastHTTP(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("conns=%d", n), func(b *testing.B) {
			hub := ssekit.NewHub(ssekit.Config{MaxClients: -1, BufferSize: 4096, HistorySize: 64})
			srv := httptest.NewServer(hub.Handler(ssekit.HandlerOptions{}))
			tr := &http.Transport{MaxConnsPerHost: 0, MaxIdleConnsPerHost: n}
			client := &http.Client{Transport: tr}
			var received atomic.Int64
			var wg sync.WaitGroup
			bodies := make([]io.Closer, n)
			for i := range n {
				resp, err := client.Get(srv.URL)
				if err != nil {
					b.Fatal(err)
				}
				bodies[i] = resp.Body
				r := bufio.NewReaderSize(resp.Body, 64<<10)
				if _, err := r.ReadSlice('\n'); err != nil { // the stream is open
					b.Fatal(err)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					// Count frames by their blank line; no parsing, so that
					// the server's cost dominates.
					buf := make([]byte, 64<<10)
					for {
						k, err := r.Read(buf)
						received.Add(int64(bytes.Count(buf[:k], []byte("\n\n"))))
						if err != nil {
							return
						}
					}
				}()
			}
			for hub.GetTotalClientCount() < n {
			}
			ev := ssekit.Event{Type: "tick", Data: map[string]any{"seq": 1, "msg": "hello, everyone"}}
			base := received.Load()
			b.ResetTimer()
			for b.Loop() {
				if err := hub.SendToAll(ev); err != nil {
					b.Fatal(err)
				}
			}
			want := base + int64(b.N*n)
			for received.Load() < want {
				if d := hub.Stats().Disconnects[ssekit.ReasonOverflow]; d > 0 {
					b.Fatalf("%d clients overflowed", d)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/delivery")
			hub.Close()
			for _, body := range bodies {
				body.Close()
			}
			wg.Wait()
			srv.Close()
			tr.CloseIdleConnections()
		})
	}
}
