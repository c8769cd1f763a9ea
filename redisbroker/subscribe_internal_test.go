package redisbroker

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	sse "github.com/ssekit/sse"
)

// entry makes a stream entry that records prev as its predecessor.
func entry(id, prev string) redis.XMessage {
	return redis.XMessage{ID: id, Values: map[string]any{fieldPrev: prev, fieldType: "t", fieldData: "{}"}}
}

// TestReaderChain feeds a subscription's reader the entries of a stream
// whose history breaks, and checks what it hands the hub: everything once,
// a resync where entries were lost, and a start over from the new stream's
// beginning when Redis came back empty.
func TestReaderChain(t *testing.T) {
	b := &Broker{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	type step struct {
		in        redis.XMessage
		cont      bool     // handle's answer
		delivered []string // "type:id" handed to fn
		cursor    string
	}
	tests := []struct {
		name  string
		from  string
		steps []step
	}{
		{"unbroken", "5-0", []step{
			{entry("6-0", "5-0"), true, []string{"t:6-0"}, "6-0"},
			{entry("6-1", "6-0"), true, []string{"t:6-1"}, "6-1"},
		}},
		{"fresh stream", "0-0", []step{
			{entry("6-0", "0-0"), true, []string{"t:6-0"}, "6-0"},
		}},
		{"trimmed before read", "5-0", []step{
			{entry("9-0", "8-0"), true, []string{"resync:8-0", "t:9-0"}, "9-0"},
			{entry("10-0", "9-0"), true, []string{"t:10-0"}, "10-0"},
		}},
		{"Redis came back empty", "5-0", []step{
			// The new stream's first entry, with a higher id, says it had
			// no predecessor: start over from the new stream's start.
			{entry("7-0", "0-0"), false, []string{"resync:0-0"}, "0-0"},
			{entry("3-0", "0-0"), true, []string{"t:3-0"}, "3-0"},
			{entry("7-0", "3-0"), true, []string{"t:7-0"}, "7-0"},
		}},
		{"malformed predecessor", "5-0", []step{
			{redis.XMessage{ID: "6-0", Values: map[string]any{fieldType: "t"}}, true, []string{"resync:5-0", "t:6-0"}, "6-0"},
		}},
		{"no loop on a stream that keeps going back", "5-0", []step{
			{entry("7-0", "1-0"), false, []string{"resync:0-0"}, "0-0"},
			{entry("1-0", "0-0"), true, []string{"t:1-0"}, "1-0"},
			{entry("2-0", "1-0"), true, []string{"t:2-0"}, "2-0"},
			// 7-0 again still points back: now a gap, not a second reset.
			{entry("7-0", "1-0"), true, []string{"resync:1-0", "t:7-0"}, "7-0"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			r := &reader{b: b, cursor: tt.from, pos: tt.from, fn: func(m sse.Message) {
				got = append(got, m.Type+":"+m.ID)
			}}
			for i, s := range tt.steps {
				got = nil
				if cont := r.handle(context.Background(), s.in); cont != s.cont {
					t.Fatalf("step %d: handle(%s) = %v, want %v", i, s.in.ID, cont, s.cont)
				}
				if !slices.Equal(got, s.delivered) {
					t.Fatalf("step %d: delivered %v, want %v", i, got, s.delivered)
				}
				if r.cursor != s.cursor {
					t.Fatalf("step %d: cursor %q, want %q", i, r.cursor, s.cursor)
				}
			}
		})
	}
}

// TestReaderStopsDelivering: once the subscription's ctx is done, nothing
// more reaches fn.
func TestReaderStopsDelivering(t *testing.T) {
	b := &Broker{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	n := 0
	r := &reader{b: b, cursor: "1-0", pos: "1-0", fn: func(sse.Message) { n++ }}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r.handle(ctx, entry("2-0", "1-0"))
	if n != 0 {
		t.Fatalf("fn called %d times after ctx was done", n)
	}
}

// TestBackoff: the wait grows from minBackoff to maxBackoff and stays
// within [d/2, d].
func TestBackoff(t *testing.T) {
	for n := 1; n < 40; n++ {
		want := maxBackoff
		if n < 16 {
			want = min(minBackoff<<(n-1), maxBackoff)
		}
		for range 20 {
			if d := backoff(n); d < want/2 || d > want {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", n, d, want/2, want)
			}
		}
	}
	if got := backoff(1); got > minBackoff {
		t.Fatalf("first backoff %v is over %v", got, minBackoff)
	}
	if backoff(100) < maxBackoff/2 || backoff(100) > time.Duration(maxBackoff) {
		t.Fatal("backoff does not settle at its cap")
	}
}

// TestValidStreamID: only complete "ms-seq" ids that have a successor.
func TestValidStreamID(t *testing.T) {
	for id, want := range map[string]bool{
		"0-0": true, "1-2": true, "1795727522645-7": true,
		"": false, "5": false, "1-2-3": false, "a-1": false, "-1": false,
		"18446744073709551616-0":                    false, // over uint64
		"18446744073709551615-18446744073709551615": false,
		"18446744073709551615-0":                    true,
	} {
		if got := validStreamID(id); got != want {
			t.Errorf("validStreamID(%q) = %v, want %v", id, got, want)
		}
	}
}
