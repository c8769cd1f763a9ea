package main

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ssekit/sse/internal/ssetest"
)

// online asks p's presence route whether user is online.
func (p *hubProc) online(t *testing.T, user string) bool {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, p.url+"/sse/presence?user="+user, nil)
	req.Header.Set("Authorization", "Bearer "+clusterKey)
	status, body := doJSON(t, req)
	if status != http.StatusOK {
		t.Fatalf("presence on %s: %d %v", p.name, status, body)
	}
	on, _ := userState(t, body, user)
	return on
}

// TestClusterPresenceProcesses runs two ssehub processes on one Redis,
// sending their webhooks to one receiver. A user with a stream on A is
// online on B; once its stream ends, offline on B, and the receiver gets
// one user.online and one user.offline in all, from either node, with a
// valid signature. A user of A, which is then killed with SIGKILL, is
// offline on B within presence_ttl, and B sends its user.offline within
// presence_ttl + presence_interval (the documented bound).
func TestClusterPresenceProcesses(t *testing.T) {
	bin := ssehubBinary(t)
	_, prefix := sharedRedis(t)
	recv := newReceiver(t, 0)
	// A lease long against the refresh interval: under a loaded CI a
	// live node's refresh must not stall past its lease (see the note in
	// docs/cluster.md on a node whose lease lapses while it runs).
	const interval, ttl, debounce = 200 * time.Millisecond, 3 * time.Second, 800 * time.Millisecond
	start := func(node string) *hubProc {
		return startHub(t, bin, node, fmt.Sprintf("redis://%s/0?prefix=%s&node=%s&presence_interval=%v&presence_ttl=%v", ssetest.RedisAddr(), prefix, node, interval, ttl),
			"--webhook-url", recv.srv.URL, "--webhook-secret", testWebhookSecret, "--webhook-debounce", debounce.String())
	}
	a, b := start("node-a"), start("node-b")
	changes := func(user string) []string {
		var out []string
		for _, d := range recv.accepted() {
			if d.ev.User == user {
				out = append(out, d.ev.Type)
				if err := verifyWebhook([]byte(testWebhookSecret), d.sig, d.body, time.Now()); err != nil {
					t.Fatalf("webhook %s: %v", d.ev.ID, err)
				}
			}
		}
		return out
	}

	alice := uuid.NewString()
	s := a.subscribe(t, alice, "")
	s.opening()
	ssetest.Eventually(t, "node B to see alice online", func() bool { return b.online(t, alice) })
	s.cancel()
	<-s.done
	ssetest.Eventually(t, "node B to see alice offline", func() bool { return !b.online(t, alice) })
	ssetest.Eventually(t, "alice's user.offline", func() bool { return len(changes(alice)) >= 2 })
	if got := changes(alice); !slices.Equal(got, []string{webhookOnline, webhookOffline}) {
		t.Fatalf("alice's webhooks %q, want one user.online then one user.offline", got)
	}

	bob := uuid.NewString()
	a.subscribe(t, bob, "").opening()
	ssetest.Eventually(t, "node B to see bob online", func() bool { return b.online(t, bob) })
	a.kill()
	killed := time.Now()
	ssetest.Eventually(t, "node B to see bob offline", func() bool { return !b.online(t, bob) })
	offline := time.Since(killed)
	ssetest.Eventually(t, "bob's user.offline", func() bool { return len(changes(bob)) >= 2 })
	sent := time.Since(killed)
	if got := changes(bob); !slices.Equal(got, []string{webhookOnline, webhookOffline}) {
		t.Fatalf("bob's webhooks %q, want one user.online then one user.offline", got)
	}
	t.Logf("after SIGKILL: bob offline on B in %v (bound presence_ttl %v), user.offline received in %v (bound %v)", offline, ttl, sent, ttl+interval)
	// The slack is for a loaded machine; the bound is what docs/cluster.md
	// promises.
	if slack := 10 * time.Second; offline > ttl+slack || sent > ttl+interval+slack {
		t.Fatalf("bob offline after %v, reported after %v: over the bounds %v and %v", offline, sent, ttl, ttl+interval)
	}
}
