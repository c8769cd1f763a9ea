package redisbroker_test

import (
	"slices"
	"testing"

	"github.com/ssekit/sse/internal/ssetest"
	"github.com/ssekit/sse/redisbroker"
	"github.com/ssekit/sse/ssekit"
)

// TestUserAndTopicOnce: the broker stores and delivers each channel's
// copy of a publish apart, so a stream that follows its user's channel
// and a topic hears a publish to both twice; it receives it once, live,
// and when it resumes on another node after publishes made while it was
// away, on one Redis and on a Redis Cluster alike.
func TestUserAndTopicOnce(t *testing.T) {
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			prefix := uniquePrefix(t, be.client(t))
			cfg := ssekit.Config{AuthorizeTopic: ssekit.AllowAllTopics}
			a := newNode(t, be, prefix, redisbroker.Options{}, cfg)
			b := newNode(t, be, prefix, redisbroker.Options{}, cfg)
			const user, topic = "alice", "board"
			dial := func(n *node, lastID string) *conn {
				return ssetest.DialOK(t, n.srv.URL+"?"+ssekit.TopicParam+"="+topic, user, lastID)
			}
			// round publishes every mix of the stream's two channels and
			// others, then one marker to each of the two alone, and
			// returns what the stream must receive. A second copy of an
			// event comes in its channel before that channel's marker, so
			// reading as many events as are due, markers included, shows
			// any copy written twice.
			var log pubLog
			round := func(n *node, seq int) []published {
				var due []published
				for _, to := range []ssekit.Target{
					{Users: []string{user}, Topics: []string{topic}},
					{Users: []string{user, "bob"}, Topics: []string{topic, "other"}},
					{Users: []string{"bob"}, Topics: []string{topic}},
					{Users: []string{user}, Topics: []string{"other"}},
					{Users: []string{user}},
					{Topics: []string{topic}},
					{Users: []string{"bob"}, Topics: []string{"other"}}, // not to the stream
					{Users: []string{user}, Topics: []string{topic}},
					{Users: []string{user}}, // the markers
					{Topics: []string{topic}},
				} {
					p := log.publish(t, n, to, seq)
					seq++
					if p.id == "" {
						t.FailNow() // log.publish said why
					}
					if slices.Contains(to.Users, user) || slices.Contains(to.Topics, topic) {
						due = append(due, p)
					}
				}
				return due
			}

			live := dial(a, "")
			live.Connected()
			due := round(a, 0)
			got := live.Take(len(due))
			checkReceived(t, "live on A", got, due)
			last := got[len(got)-1].ID
			live.Close()
			ssetest.Eventually(t, "the stream gone from A", func() bool { return a.hub.GetTotalClientCount() == 0 })

			// Published while the stream is away, on both nodes.
			missed := append(round(a, 100), round(b, 200)...)
			resumed := dial(b, last)
			if d := resumed.Connected(); !d.Resumed {
				t.Fatal("the resumed stream on B says resumed=false")
			}
			checkReceived(t, "resumed on B", resumed.Take(len(missed)), missed)
			due = round(a, 300)
			checkReceived(t, "live on B after the resume", resumed.Take(len(due)), due)
		})
	}
}
