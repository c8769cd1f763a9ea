package sseclient_test

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"testing"

	"github.com/ssekit/sse/sseclient"
)

// benchStream returns n events shaped like the hub's: an id, a type and a
// one-line JSON payload of about 150 bytes, with a heartbeat every 50.
func benchStream(n int) []byte {
	var b bytes.Buffer
	b.WriteString("retry: 3000\n\n")
	for i := range n {
		if i%50 == 49 {
			b.WriteString("event: heartbeat\ndata: {\"timestamp\":\"2026-11-26T21:00:00Z\"}\n\n")
			continue
		}
		fmt.Fprintf(&b, "id: 1764190800000000000-%d\nevent: notification\n"+
			"data: {\"type\":\"follow\",\"title\":\"New follower!\",\"message\":\"Ada Lovelace followed you\",\"extra\":{\"user_id\":\"%08d-7c1e-4a52-9f3e-2b6f8d7e9a10\"}}\n\n", i, i)
	}
	return b.Bytes()
}

// BenchmarkDecoder parses a stream of 1000 hub-shaped events per
// iteration and reports throughput, events per second and allocations per
// event.
func BenchmarkDecoder(b *testing.B) {
	const n = 1000
	stream := benchStream(n)
	r := bytes.NewReader(stream)
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	var events int
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	for b.Loop() {
		r.Reset(stream)
		d := sseclient.NewDecoder(r)
		for {
			_, err := d.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			events++
		}
	}
	if events != b.N*n {
		b.Fatalf("%d events, want %d", events, b.N*n)
	}
	b.StopTimer()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(events), "allocs/event")
}
