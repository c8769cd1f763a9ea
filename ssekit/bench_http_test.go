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
	benchBroadcast(b, ssekit.Config{MaxClients: -1, BufferSize: 4096, HistorySize: 64}, 100, 1000)
}

// BenchmarkBroadcastDetached is BenchmarkBroadcastHTTP with DetachStreams,
// as ssehub serves its streams: on Linux an idle stream holds no goroutine
// and is written on wake-ups, and this is the price of that on a
// broadcast (WriteDelay at its default, so that busy streams are woken in
// rounds, as in production).
func BenchmarkBroadcastDetached(b *testing.B) {
	benchBroadcast(b, ssekit.Config{MaxClients: -1, MaxClientsPerUser: -1, BufferSize: 4096, HistorySize: 64, DetachStreams: true}, 1000, 5000)
}

// benchBroadcast runs the broadcast benchmark on a hub of cfg for each
// number of streams. Besides ns/delivery it reports the process's CPU time
// per delivery (server and clients), which other load on the machine
// disturbs less than the elapsed time.
func benchBroadcast(b *testing.B, cfg ssekit.Config, conns ...int) {
	for _, n := range conns {
		b.Run(fmt.Sprintf("conns=%d", n), func(b *testing.B) {
			hub := ssekit.NewHub(cfg)
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
				r := bufio.NewReaderSize(resp.Body, 16<<10)
				if _, err := r.ReadSlice('\n'); err != nil { // the stream is open
					b.Fatal(err)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					// Count frames by their blank line; no parsing, so that
					// the server's cost dominates.
					buf := make([]byte, 16<<10)
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
			// Every stream's connected event is in: count from there.
			for received.Load() < int64(n) {
			}
			base := received.Load()
			cpu0 := cpuTime()
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
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N*n), "cpu-ns/delivery")
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
