package redisbroker

import (
	"slices"
	"strings"
	"testing"
	"time"

	sse "github.com/ssekit/sse"
)

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

// TestAnnouncementFields: what the script announces and encodeClients
// writes reads back whole, whatever the bytes; anything else is refused.
func TestAnnouncementFields(t *testing.T) {
	m := sse.Message{Channels: []string{"all", "user:a:b"}, Clients: []string{"c1", "c:2"}, Type: "t:1", Data: []byte("{\"x\":\"3:4\\n\"}")}
	got, err := decodeClients(encodeClients("1-2", m))
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != "1-2" || got.Type != m.Type || string(got.Data) != string(m.Data) ||
		!slices.Equal(got.Clients, m.Clients) || !slices.Equal(got.Channels, m.Channels) || got.Positions != nil {
		t.Fatalf("round trip: %+v, want %+v without positions", got, m)
	}
	f, err := fields("3:1-26:1-1:ab1:x0:0:", 5)
	if err != nil || !slices.Equal(f, []string{"1-2", "1-1:ab", "x", "", ""}) {
		t.Fatalf("fields = %q, %v", f, err)
	}
	for _, bad := range []string{"", "3:ab", "x:1", "1:a", "1:a1:b1:c1:d1:e1:f", "99999999999999999999:a", "-1:a" + strings.Repeat("1:a", 4)} {
		if f, err := fields(bad, 5); err == nil {
			t.Errorf("fields(%q) = %q, want an error", bad, f)
		}
	}
}
