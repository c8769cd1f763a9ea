package ssekit_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ssekit/sse/internal/ssetest"
	"github.com/ssekit/sse/ssekit"
)

// topicsQuery is the query that asks for topics, after the rest.
func topicsQuery(rest string, topics ...string) string {
	q := url.Values{ssekit.TopicParam: topics}.Encode()
	if rest == "" {
		return q
	}
	return rest + "&" + q
}

func TestTopicsAreAskedWithTheRepeatedParam(t *testing.T) {
	t.Parallel()
	h := newIDHub(t, ssekit.Config{AuthorizeTopic: ssekit.AllowAllTopics})
	both := h.dialQ(t, "alice", "topic=board:7&topic=doc:42", "")
	board := h.dialQ(t, "bob", "topic=board:7", "")
	twice := h.dialQ(t, "", "topic=doc:42&topic=doc:42", "") // asked twice, followed once
	none := h.dialQ(t, "carol", "", "")
	for _, c := range []*conn{both, board, twice, none} {
		c.Connected()
	}
	for _, topic := range []string{"doc:42", "board:7", "board:8", "Doc:42"} { // names are case-sensitive
		if err := h.SendToTopic(topic, ssekit.Event{Type: topic}); err != nil {
			t.Fatal(err)
		}
	}
	h.SendToAll(ssekit.Event{Type: "end"})
	ssetest.ExpectNext(t, map[string]*conn{"both": both}, "doc:42", "board:7", "end")
	ssetest.ExpectNext(t, map[string]*conn{"board": board}, "board:7", "end")
	ssetest.ExpectNext(t, map[string]*conn{"twice": twice}, "doc:42", "end")
	ssetest.ExpectNext(t, map[string]*conn{"none": none}, "end")
	if err := h.SendToTopic("a b", ssekit.Event{Type: "x"}); !errors.Is(err, ssekit.ErrInvalidTarget) {
		t.Fatalf("SendToTopic(\"a b\") = %v, want ErrInvalidTarget", err)
	}
}

// An event addressed to a connection through several of its channels at
// once (its user, its tenant, two of its topics, its id) reaches it once,
// and moves its position in each of them: a resume from its id replays
// none of it.
func TestTargetCombinationsReachAConnectionOnce(t *testing.T) {
	t.Parallel()
	h := newIDHub(t, ssekit.Config{AuthorizeTopic: ssekit.AllowAllTopics})
	alice := h.dialQ(t, "alice", "tenant=acme&topic=t1&topic=t2", "")
	bob := h.dialQ(t, "bob", "tenant=acme", "")
	carol := h.dialQ(t, "carol", "tenant=globex&topic=t2", "")
	dave := h.dialQ(t, "dave", "tenant=globex", "")
	start := alice.Connected()
	for _, c := range []*conn{bob, carol, dave} {
		c.Connected()
	}
	targets := []ssekit.Target{
		{Users: []string{"alice"}, Tenants: []string{"acme"}, Topics: []string{"t1", "t2"}, Clients: []string{start.ClientID}},
		{Tenants: []string{"acme"}, Topics: []string{"t2", "t1"}},
		{Users: []string{"alice", "carol"}, Topics: []string{"t2"}},
		{Tenants: []string{"acme", "globex"}, Users: []string{"bob"}, Clients: []string{start.ClientID}},
		{Topics: []string{"t1"}, Clients: []string{start.ClientID}},
	}
	var last string
	for i, to := range targets {
		if _, err := h.Publish(t.Context(), to, ssekit.Event{Type: "combo", Data: i}); err != nil {
			t.Fatal(err)
		}
		ev := alice.NextOf()
		if ev.Type != "combo" || seqOf(t, ev.Data) != i {
			t.Fatalf("alice got %q %s, want combo %d", ev.Type, ev.Data, i)
		}
		last = ev.ID
	}
	h.SendToAll(ssekit.Event{Type: "end"})
	ssetest.ExpectNext(t, map[string]*conn{"alice": alice}, "end")
	// bob and dave through their tenants (and bob's user), carol through
	// her topic, her user and her tenant.
	for who, want := range map[string][]int{"bob": {0, 1, 3}, "carol": {0, 1, 2, 3}, "dave": {3}} {
		c := map[string]*conn{"bob": bob, "carol": carol, "dave": dave}[who]
		for _, n := range want {
			if ev := c.NextOf(); ev.Type != "combo" || seqOf(t, ev.Data) != n {
				t.Fatalf("%s got %q %s, want combo %d", who, ev.Type, ev.Data, n)
			}
		}
		ssetest.ExpectNext(t, map[string]*conn{who: c}, "end")
	}

	// Every channel of alice's moved: her last id is past the first
	// event's position in the user, tenant and both topics' channels.
	before, _, ok1 := ssetest.Positions(start.ID)
	after, _, ok2 := ssetest.Positions(last)
	if !ok1 || !ok2 || len(before) != 5 || len(after) != 5 {
		t.Fatalf("ids %q, %q: want five inline positions each", start.ID, last)
	}
	for tag, p := range before {
		if tag != "a" && ssekit.CompareIDs(after[tag], p) <= 0 {
			t.Errorf("channel %q did not move: %s then %s", tag, p, after[tag])
		}
	}
	alice.Close()
	h.SendToTopic("t2", ssekit.Event{Type: "after"})
	r := h.dialQ(t, "alice", "tenant=acme&topic=t1&topic=t2", last)
	if d := r.Connected(); !d.Resumed {
		t.Fatal("resumed = false")
	}
	ssetest.ExpectNext(t, map[string]*conn{"alice resumed": r}, "end", "after")
}

func TestTopicRefusalsRegisterNothing(t *testing.T) {
	t.Parallel()
	publicOnly := func(_ context.Context, _ ssekit.Identity, topic string) (bool, error) {
		return strings.HasPrefix(topic, "public:"), nil
	}
	many := make([]string, 17)
	for i := range many {
		many[i] = fmt.Sprint("public:", i)
	}
	secrets := make([]string, 20)
	for i := range secrets {
		secrets[i] = fmt.Sprintf("secret:%02d", i)
	}
	cases := []struct {
		name   string
		cfg    ssekit.Config
		query  string
		status int
		code   string
		topics []string // the body's Topics
		says   string   // the message contains it
	}{
		{"space in a name", ssekit.Config{AuthorizeTopic: ssekit.AllowAllTopics}, topicsQuery("", "ok", "a b"), 400, ssekit.CodeInvalidTopic, []string{"a b"}, `"a b"`},
		{"empty name", ssekit.Config{AuthorizeTopic: ssekit.AllowAllTopics}, "topic=", 400, ssekit.CodeInvalidTopic, []string{""}, "empty"},
		{"starts with a dot", ssekit.Config{AuthorizeTopic: ssekit.AllowAllTopics}, "topic=.x", 400, ssekit.CodeInvalidTopic, []string{".x"}, "must start with"},
		{"a Redis hash tag", ssekit.Config{AuthorizeTopic: ssekit.AllowAllTopics}, topicsQuery("", "doc{1}"), 400, ssekit.CodeInvalidTopic, []string{"doc{1}"}, "only letters"},
		// A refusal echoes a name clipped, and at most 16 names.
		{"too long", ssekit.Config{AuthorizeTopic: ssekit.AllowAllTopics}, topicsQuery("", strings.Repeat("x", 129)), 400, ssekit.CodeInvalidTopic, []string{strings.Repeat("x", 64) + "…"}, "over 128"},
		{"many not allowed", ssekit.Config{AuthorizeTopic: publicOnly, MaxTopics: -1}, topicsQuery("", secrets...), 403, ssekit.CodeTopicForbidden, secrets[:16], `"secret:15"`},
		{"invalid granted topic", ssekit.Config{AuthorizeTopic: ssekit.AllowAllTopics}, "grant=a%0Ab", 400, ssekit.CodeInvalidTopic, []string{"a\nb"}, "only letters"},
		{"over the default 16", ssekit.Config{AuthorizeTopic: ssekit.AllowAllTopics}, topicsQuery("", many...), 400, ssekit.CodeTooManyTopics, nil, "17 topics asked for, at most 16"},
		{"over MaxTopics with a grant", ssekit.Config{AuthorizeTopic: ssekit.AllowAllTopics, MaxTopics: 2}, topicsQuery("grant=g", "a", "b"), 400, ssekit.CodeTooManyTopics, nil, "3 topics asked for, at most 2"},
		{"not allowed", ssekit.Config{AuthorizeTopic: publicOnly}, topicsQuery("", "public:a", "secret:b", "secret:a"), 403, ssekit.CodeTopicForbidden, []string{"secret:a", "secret:b"}, `"secret:a", "secret:b"`},
		{"granted but not allowed", ssekit.Config{AuthorizeTopic: publicOnly}, "grant=secret:g&topic=public:a", 403, ssekit.CodeTopicForbidden, []string{"secret:g"}, `"secret:g"`},
		{"nil AuthorizeTopic", ssekit.Config{}, "topic=public:a", 403, ssekit.CodeTopicForbidden, []string{"public:a"}, "not allowed to follow topic"}, // the configuration is for the log, not the client
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newIDHub(t, tc.cfg)
			body := h.refused(t, "alice", tc.query, tc.status, tc.code)
			if !slices.Equal(body.Topics, tc.topics) {
				t.Errorf("body topics %q, want %q", body.Topics, tc.topics)
			}
			if !strings.Contains(body.Message, tc.says) {
				t.Errorf("message %q, want it to say %q", body.Message, tc.says)
			}
			// Nothing was served either: a stream without topics is.
			c := h.dialQ(t, "alice", "", "")
			c.Connected()
			if got := h.GetTotalClientCount(); got != 1 {
				t.Fatalf("GetTotalClientCount = %d, want 1", got)
			}
		})
	}
	// The limit counts distinct names; a negative one is no limit.
	h := newIDHub(t, ssekit.Config{AuthorizeTopic: ssekit.AllowAllTopics, MaxTopics: 1})
	h.dialQ(t, "alice", "topic=a&topic=a&grant=a", "").Connected()
	h = newIDHub(t, ssekit.Config{AuthorizeTopic: ssekit.AllowAllTopics, MaxTopics: -1})
	h.dialQ(t, "alice", topicsQuery("", many[:40%len(many)]...), "").Connected()
}

func TestTopicAuthorization(t *testing.T) {
	t.Parallel()
	type call struct {
		who   ssekit.Identity
		topic string
	}
	var mu sync.Mutex
	var calls []call
	allow := map[string]bool{"acme/alice/board:7": true, "acme/alice/doc:1": true, "globex/carol/board:7": true, "/ /public:news": true}
	cfg := ssekit.Config{AuthorizeTopic: func(ctx context.Context, who ssekit.Identity, topic string) (bool, error) {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, call{who, topic})
		key := who.Tenant + "/" + who.User + "/" + topic
		if who.User == "" {
			key = "/ /" + topic
		}
		return allow[key], nil
	}}
	h := newIDHub(t, cfg)
	takeCalls := func() []call {
		mu.Lock()
		defer mu.Unlock()
		out := calls
		calls = nil
		return out
	}

	// Allowed: asked and granted topics are each checked once, with the
	// tenant and the user.
	alice := h.dialQ(t, "alice", "tenant=acme&topic=board:7&grant=doc:1&topic=doc:1", "")
	alice.Connected()
	got := takeCalls()
	if len(got) != 2 || got[0].topic != "board:7" || got[1].topic != "doc:1" {
		t.Fatalf("authorizer calls %+v, want board:7 then doc:1, once each", got)
	}
	for _, c := range got {
		if c.who.User != "alice" || c.who.Tenant != "acme" || !slices.Equal(c.who.Topics, []string{"doc:1"}) {
			t.Fatalf("the authorizer saw %+v, want alice of acme with her granted topic", c.who)
		}
	}
	// The same topic in another tenant: carol of globex may, bob of
	// acme may not, alice of globex (another tenant's alice) may not.
	carol := h.dialQ(t, "carol", "tenant=globex&topic=board:7", "")
	carol.Connected()
	for _, who := range []string{"tenant=acme&user=bob", "tenant=globex&user=alice", "user=alice"} {
		body := h.refused(t, "", who+"&topic=board:7", http.StatusForbidden, ssekit.CodeTopicForbidden)
		if !slices.Equal(body.Topics, []string{"board:7"}) {
			t.Fatalf("%s: refused topics %q", who, body.Topics)
		}
	}
	// Anonymous streams ask too.
	anon := h.dialQ(t, "", "topic=public:news", "")
	anon.Connected()
	h.refused(t, "", "topic=board:7", http.StatusForbidden, ssekit.CodeTopicForbidden)

	h.SendToTopic("board:7", ssekit.Event{Type: "board"})
	h.SendToTopic("public:news", ssekit.Event{Type: "news"})
	h.SendToAll(ssekit.Event{Type: "end"})
	ssetest.ExpectNext(t, map[string]*conn{"alice": alice, "carol": carol}, "board", "end")
	ssetest.ExpectNext(t, map[string]*conn{"anonymous": anon}, "news", "end")
	if got := h.GetTotalClientCount(); got != 3 {
		t.Fatalf("GetTotalClientCount = %d, want the 3 allowed streams", got)
	}
}

// An authorizer that cannot decide sends the stream away with a retry
// hint, as a full hub does: a browser comes back later rather than giving
// up for good.
func TestTopicAuthorizerErrorSendsAwayWithRetry(t *testing.T) {
	t.Parallel()
	h := newIDHub(t, ssekit.Config{
		RetryInterval: time.Second,
		Logger:        slog.New(slog.DiscardHandler),
		AuthorizeTopic: func(context.Context, ssekit.Identity, string) (bool, error) {
			return false, errors.New("permissions database down")
		},
	})
	follows := h.broker.follows.Load()
	resp := ssetest.Get(t, h.srv.URL+"?topic=board:7", "alice")
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("got %d %q Retry-After %q, want 200 text/event-stream with Retry-After", resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Retry-After"))
	}
	body, err := io.ReadAll(resp.Body) // the stream ends by itself
	if err != nil {
		t.Fatal(err)
	}
	retry, ok := strings.CutPrefix(string(body), "retry: ")
	if ms, err := strconv.Atoi(strings.TrimSpace(retry)); !ok || err != nil || ms < 1000 || ms > 2000 {
		t.Fatalf("body %q, want only a retry of 1000–2000 ms", body)
	}
	if got := h.GetTotalClientCount(); got != 0 {
		t.Fatalf("GetTotalClientCount = %d", got)
	}
	if got := h.broker.follows.Load(); got != follows {
		t.Fatalf("the refused stream followed %d channels", got-follows)
	}
	if got := h.Stats().Rejected; got != 1 {
		t.Fatalf("Rejected = %d, want 1", got)
	}
}

// Authorization is asked again at every connection: a topic revoked
// between two connections is neither replayed to a resume that no longer
// asks for it nor allowed to one that does.
func TestRevokedTopicIsNotReplayed(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	allowed := true
	h := newIDHub(t, ssekit.Config{AuthorizeTopic: func(_ context.Context, who ssekit.Identity, topic string) (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		return allowed && who.User == "alice" && topic == "secret:x", nil
	}})
	c := h.dialQ(t, "alice", "tenant=acme&topic=secret:x", "")
	c.Connected()
	h.SendToTopic("secret:x", ssekit.Event{Type: "secret", Data: 1})
	last := c.NextOf().ID
	c.Close()
	ssetest.Eventually(t, "alice gone", func() bool { return h.GetTotalClientCount() == 0 })

	mu.Lock()
	allowed = false
	mu.Unlock()
	h.SendToTopic("secret:x", ssekit.Event{Type: "secret", Data: 2})
	h.Publish(t.Context(), ssekit.Target{Users: []string{"alice"}}, ssekit.Event{Type: "mine"})
	h.Publish(t.Context(), ssekit.Target{Topics: []string{"secret:x"}, Tenants: []string{"acme"}}, ssekit.Event{Type: "tenant-too"})

	body := h.refused(t, "alice", "tenant=acme&topic=secret:x", http.StatusForbidden, ssekit.CodeTopicForbidden)
	if !slices.Equal(body.Topics, []string{"secret:x"}) {
		t.Fatalf("refused topics %q, want secret:x", body.Topics)
	}
	r := h.dialQ(t, "alice", "tenant=acme", last)
	if d := r.Connected(); !d.Resumed {
		t.Fatal("resumed = false: the user's and tenant's channels resume")
	}
	// Her own event and the one for her tenant too, but not the topic's.
	h.SendToAll(ssekit.Event{Type: "end"})
	ssetest.ExpectNext(t, map[string]*conn{"alice resumed": r}, "mine", "tenant-too", "end")
}

// A topic's channel that lost history is named in the resync as
// "topic:<name>", so that a page knows which topic to fetch again.
func TestTopicResyncNamesTheTopic(t *testing.T) {
	t.Parallel()
	b := ssekit.NewMemoryBroker(3, 0)
	t.Cleanup(func() { b.Close() })
	h := newTestHub(t, ssekit.Config{Broker: b, AuthorizeTopic: ssekit.AllowAllTopics})
	c := ssetest.DialOK(t, h.srv.URL+"?topic=board:7&topic=doc:42", "alice", "")
	last := c.Connected().ID
	c.Close()
	for i := range 5 { // more than the topic's history keeps
		h.SendToTopic("board:7", ssekit.Event{Type: "n", Data: i})
	}
	h.SendToTopic("doc:42", ssekit.Event{Type: "doc"})
	r := ssetest.DialOK(t, h.srv.URL+"?topic=board:7&topic=doc:42", "alice", last)
	if d := r.Connected(); !d.Resumed {
		t.Fatal("resumed = false, but the other channels resume")
	}
	ev := r.NextOf()
	if ev.Type != ssekit.TypeResync || !slices.Equal(resyncChannels(t, ev), []string{"topic:board:7"}) {
		t.Fatalf("got %q %s, want a resync naming topic:board:7", ev.Type, ev.Data)
	}
	ssetest.ExpectNext(t, map[string]*conn{"alice": r}, "doc")
}
