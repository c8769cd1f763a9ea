package redisbroker

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ssekit/sse/ssekit"
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
	m := ssekit.Message{Channels: []string{"all", "user:a:b"}, Clients: []string{"c1", "c:2"}, Type: "t:1", Data: []byte("{\"x\":\"3:4\\n\"}")}
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

// TestNames: an Also reads back whole whatever bytes the names hold (a
// user id may hold a newline, a colon or digits), and nothing is "".
func TestNames(t *testing.T) {
	for _, names := range [][]string{
		nil,
		{"topic:board"},
		{"all", "tenant:acme", "topic:a", "user:12:3", "user:line\nbreak", "user:", "user:ü{x}"},
	} {
		enc := encodeNames(names)
		got, err := decodeNames(enc)
		if err != nil || !slices.Equal(got, names) {
			t.Errorf("decodeNames(encodeNames(%q)) = %q, %v", names, got, err)
		}
		if (enc == "") != (len(names) == 0) {
			t.Errorf("encodeNames(%q) = %q: empty exactly when there are no names", names, enc)
		}
	}
	var b []byte
	for _, f := range []string{"1-2", "1-1", "p1", "t:1", "{}"} {
		b = appendField(b, f)
	}
	ann := string(b)
	if f, also, err := announcement(ann); err != nil || len(f) != 5 || also != nil {
		t.Errorf("announcement(%q) = %q, %q, %v; want five fields and no Also", ann, f, also, err)
	}
	ann = string(appendField(b, encodeNames([]string{"topic:a", "user:b"})))
	if f, also, err := announcement(ann); err != nil || len(f) != 6 || !slices.Equal(also, []string{"topic:a", "user:b"}) {
		t.Errorf("announcement(%q) = %q, %q, %v; want six fields and the Also", ann, f, also, err)
	}
	for _, bad := range []string{"3:1-2", "1:a1:b1:c1:d", "1:a1:b1:c1:d1:e1:f1:g", "1:a1:b1:c1:d1:e1:f"} {
		if f, also, err := announcement(bad); err == nil {
			t.Errorf("announcement(%q) = %q, %q; want an error", bad, f, also)
		}
	}
	for _, bad := range []string{"x", "3:ab", "9:topic"} {
		if got, err := decodeNames(bad); err == nil {
			t.Errorf("decodeNames(%q) = %q, want an error", bad, got)
		}
	}
}

// TestAlsoArgs: each channel's copy carries what ssekit.AlsoFollowed says,
// however the publish mixes users, tenants, topics and other channels.
func TestAlsoArgs(t *testing.T) {
	users := func(n int) []string {
		var out []string
		for i := range n {
			out = append(out, ssekit.UserChannel(fmt.Sprint("u", i)))
		}
		return out
	}
	for _, chans := range [][]string{
		nil,
		{"user:a"},
		{"all"},
		users(50),
		append(users(3), ssekit.TopicChannel("board")),
		append(users(20), ssekit.TopicChannel("a"), ssekit.TopicChannel("b"), ssekit.TenantChannel("x"), ssekit.TenantChannel("y")),
		{ssekit.TenantChannel("x"), ssekit.TenantChannel("y")},
		{ssekit.TopicChannel("a"), ssekit.TopicChannel("b"), ssekit.TopicChannel("c")},
		{"custom", "other", ssekit.UserChannel("a\nb"), ssekit.UserChannel("c")},
	} {
		slices.Sort(chans)
		got := alsoArgs(chans)
		if len(got) != len(chans) {
			t.Fatalf("alsoArgs(%q) has %d entries, want one per channel", chans, len(got))
		}
		for i, ch := range chans {
			if want := encodeNames(ssekit.AlsoFollowed(chans, ch)); got[i] != want {
				t.Errorf("alsoArgs(%q)[%q] = %q, want %q", chans, ch, got[i], want)
			}
		}
	}
}
