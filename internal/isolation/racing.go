package isolation

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ssekit/sse/internal/ssetest"
	"github.com/ssekit/sse/ssekit"
)

// RacingNode is one node of a Racing run: a hub and the URL of its stream
// handler, which identifies a stream by the X-User header and follows the
// topics of its ?topic= parameters (AuthorizeTopic must allow them).
type RacingNode struct {
	Hub *ssekit.Hub
	URL string
}

// Racing checks the resume promise while publishes race the reconnects,
// which Run's sequenced schedule never lets them do: one client lineage
// (user "racer", following topic "race") reconnects again and again,
// alternately on each node, resuming from the last id it read, while two
// publishers, one per node, publish without pause to the lineage's user,
// its topic, both at once (the write-once of one publish reaching a
// stream through two channels), both with others, and to others only. The
// lineage must end with every event addressed to it exactly once, and
// none other. Everything is bounded: publishes in count, reconnects in
// count, every read by ssetest.Patience.
func Racing(t *testing.T, nodes []RacingNode, publishes, reconnects int) {
	t.Helper()
	const user, topic = "racer", "race"
	targets := []ssekit.Target{
		{Users: []string{user}},
		{Topics: []string{topic}},
		{Users: []string{user}, Topics: []string{topic}},
		{Users: []string{user, "other"}, Topics: []string{topic, "elsewhere"}},
		{Users: []string{"other"}, Topics: []string{"elsewhere"}},
		{Users: []string{"other"}},
	}
	forUs := func(to ssekit.Target) bool {
		return len(to.Users) > 0 && to.Users[0] == user || len(to.Topics) > 0 && to.Topics[0] == topic
	}

	dial := func(n RacingNode, lastID string) (*ssetest.Conn, string) {
		c := ssetest.DialOK(t, n.URL+"?"+ssekit.TopicParam+"="+topic, user, lastID)
		return c, c.Connected().ID
	}
	c, last := dial(nodes[0], "")

	var mu sync.Mutex
	due := map[int]bool{} // seq → addressed to the lineage
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	errs := make(chan error, 2)
	for p := range 2 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(p), 42))
			for i := range publishes / 2 {
				seq := 2*i + p
				to := targets[rng.IntN(len(targets))]
				mu.Lock()
				due[seq] = forUs(to)
				mu.Unlock()
				if _, err := nodes[p%len(nodes)].Hub.Publish(ctx, to, ssekit.Event{Type: "n", Data: seq}); err != nil {
					errs <- fmt.Errorf("publish %d: %w", seq, err)
					return
				}
				if i%10 == 9 {
					// A breath, so that an in-memory broker's publishes
					// (microseconds each) still span many reconnects.
					time.Sleep(time.Millisecond)
				}
			}
		})
	}

	got := map[int]int{}
	read := func(c *ssetest.Conn, n int) {
		for range n {
			ev := c.NextOf()
			if ev.Type != "n" {
				continue
			}
			seq, err := strconv.Atoi(string(ev.Data))
			if err != nil {
				t.Fatalf("event data %q", ev.Data)
			}
			got[seq]++
			last = ev.ID
		}
	}
	// Reconnect at least reconnects times, and on while the publishers
	// run (up to ten times as many), so that the reconnects span them.
	published := make(chan struct{})
	go func() { wg.Wait(); close(published) }()
	racing := 0
	for r := 0; r < 10*reconnects; r++ {
		select {
		case <-published:
			if r >= reconnects {
				r = 10 * reconnects // done
				continue
			}
		default:
			racing++
		}
		read(c, 1+r%3)
		c.Close()
		c, _ = dial(nodes[(r+1)%len(nodes)], last)
	}
	<-published
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// The end marker, to the user's channel: everything before it in that
	// channel has come by then, and the topic's through its own marker.
	nodes[0].Hub.Publish(context.Background(), ssekit.Target{Users: []string{user}}, ssekit.Event{Type: "end-user"})
	nodes[0].Hub.Publish(context.Background(), ssekit.Target{Topics: []string{topic}}, ssekit.Event{Type: "end-topic"})
	ends := 0
	for ends < 2 {
		ev := c.NextOf()
		switch ev.Type {
		case "end-user", "end-topic":
			ends++
			continue
		case "n":
		default:
			continue
		}
		seq, _ := strconv.Atoi(string(ev.Data))
		got[seq]++
	}
	c.Close()

	var missing, twice, wrong []int
	for seq, ours := range due {
		switch n := got[seq]; {
		case ours && n == 0:
			missing = append(missing, seq)
		case ours && n > 1:
			twice = append(twice, seq)
		case !ours && n > 0:
			wrong = append(wrong, seq)
		}
	}
	if len(missing)+len(twice)+len(wrong) > 0 {
		t.Fatalf("%d publishes, %d reconnects: missing %v, twice %v, not addressed to the stream %v", publishes, reconnects, head(missing), head(twice), head(wrong))
	}
	t.Logf("%d publishes (%d to the lineage), %d reconnects while they ran: each once", publishes, count(due), racing)
}

func head(s []int) []int { return s[:min(len(s), 10)] }

func count(due map[int]bool) int {
	n := 0
	for _, ours := range due {
		if ours {
			n++
		}
	}
	return n
}

// RacingHandler is the stream handler a Racing node serves.
func RacingHandler(h *ssekit.Hub) http.Handler {
	return h.Handler(ssekit.HandlerOptions{Authenticate: func(r *http.Request) (string, error) { return r.Header.Get("X-User"), nil }})
}
