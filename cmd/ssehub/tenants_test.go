package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ssekit/sse/internal/ssetest"
	"github.com/ssekit/sse/sseclient"
	"github.com/ssekit/sse/ssekit"
)

// tokenWith signs a token for user with the test secret, valid for an
// hour, with claims added.
func tokenWith(t *testing.T, user string, claims jwt.MapClaims) string {
	t.Helper()
	c := jwt.MapClaims{"sub": user, "exp": time.Now().Add(time.Hour).Unix()}
	for k, v := range claims {
		c[k] = v
	}
	return signHS(t, jwt.SigningMethodHS256, testSecret, c)
}

// streamURL returns the stream URL of base asking for topics.
func streamURL(base string, topics ...string) string {
	if len(topics) == 0 {
		return base + "/sse/stream"
	}
	return base + "/sse/stream?" + url.Values{"topic": topics}.Encode()
}

// subscription is a stream read as a browser reads it, by the sseclient
// decoder.
type subscription struct {
	resp *http.Response
	dec  *sseclient.Decoder
}

// subscribe opens rawURL with tok, checks for a 200 event stream and reads
// its connected event. The stream is closed at cleanup.
func subscribe(t *testing.T, rawURL, tok string) *subscription {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET %s: %v", rawURL, err)
	}
	t.Cleanup(func() {
		cancel()
		resp.Body.Close()
	})
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s %s", rawURL, resp.Status, body)
	}
	s := &subscription{resp: resp, dec: sseclient.NewDecoder(resp.Body)}
	if ev := s.next(t); ev.Type != "connected" {
		t.Fatalf("GET %s: first event %q, want connected", rawURL, ev.Type)
	}
	return s
}

// next returns the next event that is not a heartbeat. A stream silent
// for ssetest.Patience is closed, which fails the test.
func (s *subscription) next(t *testing.T) sseclient.Event {
	t.Helper()
	timer := time.AfterFunc(ssetest.Patience, func() { s.resp.Body.Close() })
	defer timer.Stop()
	for {
		ev, err := s.dec.Next()
		if err != nil {
			t.Fatalf("waiting for an event: %v", err)
		}
		if ev.Type != "heartbeat" {
			return ev
		}
	}
}

// until returns the types of the events before the first of type end.
func (s *subscription) until(t *testing.T, end string) []string {
	t.Helper()
	var got []string
	for {
		ev := s.next(t)
		if ev.Type == end {
			return got
		}
		got = append(got, ev.Type)
	}
}

// refused GETs rawURL with tok and returns the status and JSON body of
// a refused stream request.
func refused(t *testing.T, rawURL, tok string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, rawURL, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	return doJSON(t, req)
}

// mustPublish publishes body and fails t unless it is accepted.
func mustPublish(t *testing.T, base, body string) {
	t.Helper()
	if status, out := publish(t, base, testKey, body); status != http.StatusOK {
		t.Fatalf("publish %s: %d %v", body, status, out)
	}
}

// TestTokenTopics checks the topic claims of subscriber tokens through
// the server: what "allowed_topics" (names and prefix patterns) and
// "topics" let a stream ask for; that a topic they do not allow refuses
// the stream with 403 and a JSON body naming it; and that a malformed
// claim makes the token invalid (401).
func TestTokenTopics(t *testing.T) {
	t.Parallel()
	// No address limit: the cases outnumber its burst.
	ta := newTestApp(t, testConfig(t, "--stream-rate-ip", "0"), nil)
	many := make([]string, 17)
	for i := range many {
		many[i] = fmt.Sprintf("t:%d", i)
	}
	cases := []struct {
		name   string
		claims jwt.MapClaims
		topics []string // asked for with ?topic=
		status int
		code   string
		want   []string // the message must contain each
	}{
		{"exact name", jwt.MapClaims{"allowed_topics": []string{"board:7"}}, []string{"board:7"}, 200, "", nil},
		{"pattern", jwt.MapClaims{"allowed_topics": []string{"org_42:*"}}, []string{"org_42:doc:1", "org_42:board"}, 200, "", nil},
		{"pattern's bare prefix", jwt.MapClaims{"allowed_topics": []string{"org_42:*"}}, []string{"org_42:"}, 200, "", nil},
		{"default topic asked again", jwt.MapClaims{"topics": []string{"news"}}, []string{"news"}, 200, "", nil},
		{"tenant and topics", jwt.MapClaims{"tenant_id": "acme", "topics": []string{"acme:all"}, "allowed_topics": []string{"acme:*"}}, []string{"acme:x"}, 200, "", nil},
		{"empty claims", jwt.MapClaims{"topics": []string{}, "allowed_topics": []string{}}, nil, 200, "", nil},
		{"denied name", jwt.MapClaims{"allowed_topics": []string{"board:7"}}, []string{"board:8"}, 403, "topic_forbidden", []string{`not allowed to follow topic "board:8"`}},
		{"denied beside an allowed one", jwt.MapClaims{"allowed_topics": []string{"org_42:*"}}, []string{"org_42:a", "org_43:a"}, 403, "topic_forbidden", []string{`"org_43:a"`}},
		{"name is not a pattern", jwt.MapClaims{"allowed_topics": []string{"board"}}, []string{"board:1"}, 403, "topic_forbidden", []string{`"board:1"`}},
		{"no grants", nil, []string{"news"}, 403, "topic_forbidden", []string{`"news"`}},
		{"a tenant grants no topic", jwt.MapClaims{"tenant_id": "acme"}, []string{"acme:x"}, 403, "topic_forbidden", []string{`"acme:x"`}},
		{"bad topic name", jwt.MapClaims{"allowed_topics": []string{"a:*"}}, []string{"a: b"}, 400, "invalid_topic", []string{`"a: b"`}},
		{"too many topics", jwt.MapClaims{"allowed_topics": []string{"t:*"}}, many, 400, "too_many_topics", []string{"17", "16"}},
		{"too many with the token's", jwt.MapClaims{"topics": many[:10], "allowed_topics": []string{"t:*"}}, many[10:], 400, "too_many_topics", []string{"17"}},
		{"star inside", jwt.MapClaims{"allowed_topics": []string{"a*b"}}, nil, 401, "unauthorized", []string{"allowed_topics[0]", `"a*b"`, "'*'"}},
		{"two stars", jwt.MapClaims{"allowed_topics": []string{"ok", "board:**"}}, nil, 401, "unauthorized", []string{"allowed_topics[1]"}},
		{"star alone", jwt.MapClaims{"allowed_topics": []string{"*"}}, nil, 401, "unauthorized", []string{"allowed_topics[0]", "nothing before"}},
		{"bad prefix", jwt.MapClaims{"allowed_topics": []string{"-x:*"}}, nil, 401, "unauthorized", []string{"allowed_topics[0]", "letter or a digit"}},
		{"allowed_topics a string", jwt.MapClaims{"allowed_topics": "board:*"}, nil, 401, "unauthorized", []string{"allowed_topics", "array"}},
		{"topics null", jwt.MapClaims{"topics": nil}, nil, 401, "unauthorized", []string{"topics", "array"}},
		{"bad default topic", jwt.MapClaims{"topics": []string{"news", "a b"}}, nil, 401, "unauthorized", []string{"topics[1]", `"a b"`}},
		{"default topic with a star", jwt.MapClaims{"topics": []string{"news:*"}}, nil, 401, "unauthorized", []string{"topics[0]"}},
		{"bad tenant", jwt.MapClaims{"tenant_id": "a b"}, nil, 401, "unauthorized", []string{"tenant_id", `"a b"`}},
		{"long tenant", jwt.MapClaims{"tenant_id": strings.Repeat("a", 129)}, nil, 401, "unauthorized", []string{"tenant_id", "over 128"}},
		{"empty tenant", jwt.MapClaims{"tenant_id": ""}, nil, 401, "unauthorized", []string{"tenant_id", "empty"}},
		{"tenant a number", jwt.MapClaims{"tenant_id": 42}, nil, 401, "unauthorized", []string{"tenant_id", "not a string"}},
		{"tenant null", jwt.MapClaims{"tenant_id": nil}, nil, 401, "unauthorized", []string{"tenant_id", "not a string"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok := tokenWith(t, newUser(), tc.claims)
			u := streamURL(ta.srv.URL, tc.topics...)
			if tc.status == http.StatusOK {
				subscribe(t, u, tok)
				return
			}
			status, body := refused(t, u, tok)
			msg, _ := body["message"].(string)
			if status != tc.status || body["error"] != tc.code {
				t.Fatalf("got %d %v, want %d %s", status, body, tc.status, tc.code)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q lacks %s", msg, w)
				}
			}
		})
	}
	// The body of a 403 lists the refused topics, for a page to drop them.
	user := newUser()
	tok := tokenWith(t, user, jwt.MapClaims{"allowed_topics": []string{"a:*"}})
	_, body := refused(t, streamURL(ta.srv.URL, "a:1", "b:1", "c:1"), tok)
	if got, want := fmt.Sprint(body["topics"]), "[b:1 c:1]"; got != want {
		t.Errorf("refused topics %s, want %s", got, want)
	}
	// A resume is asked again: a token that no longer grants the topic
	// cannot resume the stream that followed it.
	s := subscribe(t, streamURL(ta.srv.URL, "a:1"), tok)
	mustPublish(t, ta.srv.URL, `{"topics":["a:1"],"type":"x"}`)
	last := s.next(t).ID
	resume := streamURL(ta.srv.URL, "a:1") + "&lastEventId=" + url.QueryEscape(last)
	if status, body := refused(t, resume, tokenWith(t, user, nil)); status != http.StatusForbidden {
		t.Errorf("resume with a token without the grant: got %d %v, want 403", status, body)
	}
}

// TestTenantIsolation checks that a publish to a tenant reaches every
// stream of that tenant and no other — not another tenant's, not one
// without a tenant — and that a topic reaches its followers only, through
// the server, read as a browser reads it.
func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, testConfig(t), nil)
	acme := func(claims jwt.MapClaims) string {
		claims["tenant_id"] = "acme"
		return tokenWith(t, newUser(), claims)
	}
	alice := subscribe(t, streamURL(ta.srv.URL), acme(jwt.MapClaims{}))
	carol := subscribe(t, streamURL(ta.srv.URL, "acme:board:1"), acme(jwt.MapClaims{"allowed_topics": []string{"acme:*"}}))
	dave := subscribe(t, streamURL(ta.srv.URL), acme(jwt.MapClaims{"topics": []string{"acme:board:1"}}))
	bob := subscribe(t, streamURL(ta.srv.URL), tokenWith(t, newUser(), jwt.MapClaims{"tenant_id": "globex"}))
	// The same name in the other tenant's claim: ids are compared
	// exactly, so "ACME" is another tenant.
	eve := subscribe(t, streamURL(ta.srv.URL), tokenWith(t, newUser(), jwt.MapClaims{"tenant_id": "ACME"}))
	nobody := subscribe(t, streamURL(ta.srv.URL), token(t, newUser()))

	mustPublish(t, ta.srv.URL, `{"tenant":"acme","type":"for_acme"}`)
	mustPublish(t, ta.srv.URL, `{"tenant":"globex","type":"for_globex"}`)
	mustPublish(t, ta.srv.URL, `{"topics":["acme:board:1"],"type":"for_board"}`)
	// To the tenant and to a topic its streams follow: once to each.
	mustPublish(t, ta.srv.URL, `{"tenant":"acme","topics":["acme:board:1"],"type":"for_both"}`)
	mustPublish(t, ta.srv.URL, `{"all":true,"type":"end"}`)

	for name, tc := range map[string]struct {
		s    *subscription
		want []string
	}{
		"acme":                     {alice, []string{"for_acme", "for_both"}},
		"acme, topic asked for":    {carol, []string{"for_acme", "for_board", "for_both"}},
		"acme, topic of the token": {dave, []string{"for_acme", "for_board", "for_both"}},
		"globex":                   {bob, []string{"for_globex"}},
		"ACME":                     {eve, nil},
		"no tenant":                {nobody, nil},
	} {
		if got := tc.s.until(t, "end"); !slices.Equal(got, tc.want) {
			t.Errorf("%s got %v, want %v", name, got, tc.want)
		}
	}
}

// TestTenantClaimSetting checks that --tenant-claim names the claim the
// tenant is read from, and that the default claim then means nothing.
func TestTenantClaimSetting(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, testConfig(t, "--tenant-claim", "org"), nil)
	inOrg := subscribe(t, streamURL(ta.srv.URL), tokenWith(t, newUser(), jwt.MapClaims{"org": "acme"}))
	// Not the tenant's claim any more: neither read nor checked.
	other := subscribe(t, streamURL(ta.srv.URL), tokenWith(t, newUser(), jwt.MapClaims{"tenant_id": "acme bad"}))
	if status, body := refused(t, streamURL(ta.srv.URL), tokenWith(t, newUser(), jwt.MapClaims{"org": []string{"acme"}})); status != 401 || !strings.Contains(body["message"].(string), "org") {
		t.Errorf("org claim an array: got %d %v, want 401 naming the claim", status, body)
	}
	mustPublish(t, ta.srv.URL, `{"tenant":"acme","type":"for_acme"}`)
	mustPublish(t, ta.srv.URL, `{"all":true,"type":"end"}`)
	if got := inOrg.until(t, "end"); !slices.Equal(got, []string{"for_acme"}) {
		t.Errorf("org acme got %v, want [for_acme]", got)
	}
	if got := other.until(t, "end"); got != nil {
		t.Errorf("tenant_id acme got %v, want nothing", got)
	}

	if _, err := parseConfig([]string{"--jwt-secret", testSecret, "--publish-key", testKey, "--tenant-claim="}, noEnv, nil); err == nil || !strings.Contains(err.Error(), "--tenant-claim") {
		t.Errorf("empty --tenant-claim: err = %v, want one naming it", err)
	}
	c := testConfig(t)
	if c.TenantClaim != "tenant_id" || c.MaxTopics != 16 || hubConfig(c, nil).MaxTopics != 16 || hubConfig(c, nil).AuthorizeTopic == nil {
		t.Errorf("defaults: tenant claim %q, max topics %d; want tenant_id, 16 and an authorizer", c.TenantClaim, c.MaxTopics)
	}
}

// TestMaxTopicsSetting checks --max-topics through the server: one over
// it is a 400 before the stream starts, and 0 lifts the limit.
func TestMaxTopicsSetting(t *testing.T) {
	t.Parallel()
	grant := jwt.MapClaims{"allowed_topics": []string{"t:*"}}
	two := newTestApp(t, testConfig(t, "--max-topics", "2"), nil)
	subscribe(t, streamURL(two.srv.URL, "t:1", "t:2"), tokenWith(t, newUser(), grant))
	if status, body := refused(t, streamURL(two.srv.URL, "t:1", "t:2", "t:3"), tokenWith(t, newUser(), grant)); status != 400 || body["error"] != "too_many_topics" {
		t.Errorf("3 topics over 2: got %d %v, want 400 too_many_topics", status, body)
	}
	unlimited := newTestApp(t, testConfig(t, "--max-topics", "0"), nil)
	many := make([]string, 40)
	for i := range many {
		many[i] = fmt.Sprintf("t:%d", i)
	}
	s := subscribe(t, streamURL(unlimited.srv.URL, many...), tokenWith(t, newUser(), grant))
	mustPublish(t, unlimited.srv.URL, `{"topics":["t:39"],"type":"last"}`)
	if ev := s.next(t); ev.Type != "last" {
		t.Errorf("got %q, want the event to the 40th topic", ev.Type)
	}
}

// TestPublishTenantAndTopics checks the publish body's "tenant" and
// "topics": as strict as "users" and "clients" — present means someone,
// names are checked, "all" excludes them, every id counts toward
// --max-recipients — and nothing is published when they are refused.
func TestPublishTenantAndTopics(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, testConfig(t, "--max-recipients", "3"), nil)
	user := newUser()
	cases := []struct {
		name, body string
		code       string
		want       []string // the message must contain each
	}{
		{"tenant null", `{"tenant":null,"type":"x"}`, "bad_request", []string{`"tenant"`, "null"}},
		{"tenant empty", `{"tenant":"","type":"x"}`, "bad_request", []string{`"tenant"`, "empty"}},
		{"tenant a list", `{"tenant":["acme"],"type":"x"}`, "bad_request", []string{`"tenant"`, "string"}},
		{"tenant a number", `{"tenant":7,"type":"x"}`, "bad_request", []string{`"tenant"`, "string"}},
		{"tenant not a name", `{"tenant":"acme corp","type":"x"}`, "bad_request", []string{"tenant", `"acme corp"`, "' '"}},
		{"tenant too long", `{"tenant":"` + strings.Repeat("a", 129) + `","type":"x"}`, "bad_request", []string{"tenant", "over 128"}},
		{"tenant empty beside users", `{"users":["` + user + `"],"tenant":"","type":"x"}`, "bad_request", []string{`"tenant"`}},
		{"tenant twice", `{"tenant":"a","tenant":"b","type":"x"}`, "bad_request", []string{`"tenant"`, "twice"}},
		{"Tenant", `{"Tenant":"a","type":"x"}`, "bad_request", []string{`"Tenant"`, "tenant, topics"}},
		{"tenants", `{"tenants":["a"],"type":"x"}`, "bad_request", []string{`"tenants"`}},
		{"topics null", `{"topics":null,"type":"x"}`, "bad_request", []string{`"topics"`, "null"}},
		{"topics empty", `{"topics":[],"type":"x"}`, "bad_request", []string{`"topics"`, "empty"}},
		{"topics empty beside a tenant", `{"tenant":"acme","topics":[],"type":"x"}`, "bad_request", []string{`"topics"`}},
		{"topics a string", `{"topics":"news","type":"x"}`, "bad_request", []string{"topics"}},
		{"topic not a name", `{"topics":["news","a*"],"type":"x"}`, "bad_request", []string{"topics[1]", `"a*"`}},
		{"topic empty", `{"topics":[""],"type":"x"}`, "bad_request", []string{"topics[0]", "empty"}},
		{"topic", `{"topic":["news"],"type":"x"}`, "bad_request", []string{`"topic"`}},
		{"all with tenant", `{"all":true,"tenant":"acme","type":"x"}`, "bad_request", []string{`"all"`, `"tenant"`}},
		{"all with topics", `{"all":true,"topics":["news"],"type":"x"}`, "bad_request", []string{`"all"`, `"topics"`}},
		{"no addressee", `{"type":"x"}`, "bad_request", []string{`"tenant"`, `"topics"`}},
		{"over max-recipients", `{"tenant":"acme","topics":["a","b"],"users":["` + user + `"],"type":"x"}`, "too_many_recipients", []string{"4", "--max-recipients"}},
		{"over max-recipients in topics", `{"topics":["a","b","c","d"],"type":"x"}`, "too_many_recipients", []string{"--max-recipients"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := publish(t, ta.srv.URL, testKey, tc.body)
			msg, _ := body["message"].(string)
			if status != http.StatusBadRequest || body["error"] != tc.code {
				t.Fatalf("got %d %v, want 400 %s", status, body, tc.code)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q lacks %s", msg, w)
				}
			}
		})
	}
	if got := ta.hub.Stats().Published; got != 0 {
		t.Fatalf("Published = %d after only refused publishes, want 0", got)
	}
	for _, body := range []string{
		`{"tenant":"acme","type":"x"}`,
		`{"topics":["news","news:sport"],"type":"x"}`,
		`{"tenant":"acme","topics":["news"],"users":["` + user + `"],"type":"x"}`,
		`{"all":false,"tenant":"acme.eu-1/team@x","type":"x"}`,
		`{"clients":["c-1"],"topics":["` + strings.Repeat("n", 128) + `"],"type":"x"}`,
	} {
		mustPublish(t, ta.srv.URL, body)
	}
}

// TestPublishMetricsByTarget checks ssekit_publishes_total: an accepted
// publish counts once under each kind of addressee it names, a refused
// one under none, and every kind is exported from the start.
func TestPublishMetricsByTarget(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, testConfig(t), nil)
	user := newUser()
	sample := func(kind string) string { return `ssekit_publishes_total{target="` + kind + `"}` }
	for _, kind := range []string{"all", "users", "clients", "tenant", "topics"} {
		if got := metricValue(t, ta.srv.URL, sample(kind)); got != 0 {
			t.Errorf("%s before any publish = %v, want 0", sample(kind), got)
		}
	}
	// The sample exists even at 0: metricValue returns 0 for a missing
	// one too, so look for the line.
	resp, err := http.Get(ta.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(text), sample("topics")+" 0") {
		t.Errorf("metrics lack %s 0 before any publish", sample("topics"))
	}

	for _, body := range []string{
		`{"all":true,"type":"x"}`,
		`{"users":["` + user + `"],"type":"x"}`,
		`{"users":["` + user + `"],"clients":["c-1","c-2"],"type":"x"}`,
		`{"tenant":"acme","type":"x"}`,
		`{"tenant":"acme","topics":["a","b"],"type":"x"}`,
	} {
		mustPublish(t, ta.srv.URL, body)
	}
	publish(t, ta.srv.URL, testKey, `{"topics":[],"type":"x"}`)             // refused: empty
	publish(t, ta.srv.URL, testKey, `{"tenant":"a b","type":"x"}`)          // refused: not a name
	publish(t, ta.srv.URL, "not-the-key-at-all", `{"all":true,"type":"x"}`) // refused: key
	for kind, want := range map[string]float64{"all": 1, "users": 2, "clients": 1, "tenant": 2, "topics": 1} {
		if got := metricValue(t, ta.srv.URL, sample(kind)); got != want {
			t.Errorf("%s = %v, want %v", sample(kind), got, want)
		}
	}
}

// TestPublishCommandTenantAndTopics runs `ssehub publish --tenant` and
// `--topic` against an in-process server, and checks that their empty,
// repeated or conflicting values are errors before anything is sent.
func TestPublishCommandTenantAndTopics(t *testing.T) {
	t.Parallel()
	r := startRun(t, nil, testEnv)
	getenv := func(k string) string {
		return map[string]string{"SSEHUB_URL": r.url, "SSEHUB_PUBLISH_KEY": testKey}[k]
	}
	s := subscribe(t, streamURL(r.url, "news", "sport"), tokenWith(t, newUser(), jwt.MapClaims{"tenant_id": "acme", "allowed_topics": []string{"news", "sport"}}))
	other := subscribe(t, streamURL(r.url), tokenWith(t, newUser(), jwt.MapClaims{"tenant_id": "globex"}))
	var out strings.Builder
	for _, args := range [][]string{
		{"--tenant", "acme", "--type", "to_tenant"},
		{"--topic", "news", "--topic", "weather", "--type", "to_topics"},
		{"--topic", "sport,weather", "--tenant", "acme", "--type", "to_both"},
	} {
		out.Reset()
		if err := run(t.Context(), append([]string{"publish"}, args...), getenv, &out, &out); err != nil {
			t.Fatalf("publish %v: %v", args, err)
		}
		if strings.TrimSpace(out.String()) == "" {
			t.Errorf("publish %v printed no id", args)
		}
	}
	if err := run(t.Context(), []string{"publish", "--all", "--type", "end"}, getenv, &out, &out); err != nil {
		t.Fatal(err)
	}
	if got, want := s.until(t, "end"), []string{"to_tenant", "to_topics", "to_both"}; !slices.Equal(got, want) {
		t.Errorf("acme stream got %v, want %v", got, want)
	}
	if got := other.until(t, "end"); got != nil {
		t.Errorf("globex stream got %v, want nothing", got)
	}

	cases := []refusedCommand{
		{"no addressee", []string{"--type", "x"}, []string{"--tenant", "--topic", "--all"}},
		{"empty tenant", []string{"--tenant", "", "--type", "x"}, []string{"--tenant"}},
		{"blank tenant", []string{"--tenant", " ", "--type", "x"}, []string{"--tenant"}},
		{"two tenants", []string{"--tenant", "a", "--tenant", "b", "--type", "x"}, []string{"--tenant", "one tenant"}},
		{"empty topic", []string{"--topic", "", "--type", "x"}, []string{"--topic"}},
		{"empty topic in a list", []string{"--topic", "a,,b", "--type", "x"}, []string{"--topic"}},
		{"all with tenant", []string{"--all", "--tenant", "a", "--type", "x"}, []string{"--all", "--tenant"}},
		{"all with topic", []string{"--all", "--topic", "a", "--type", "x"}, []string{"--all", "--topic"}},
		{"bad tenant", []string{"--tenant", "a b", "--type", "x"}, []string{"400", `"a b"`}},
		{"bad topic", []string{"--topic", "a*", "--type", "x"}, []string{"400", "topics[0]"}},
	}
	refusedCommands(t, r.url, getenv, cases)
}

// TestDemoTokenTenantAndTopics checks what dev mode's token grants: the
// demo tenant and the demo:* topics, and no other topic.
func TestDemoTokenTenantAndTopics(t *testing.T) {
	t.Parallel()
	devCfg, err := parseConfig([]string{"--dev", "--addr", "127.0.0.1:0"}, noEnv, nil)
	if err != nil {
		t.Fatal(err)
	}
	dev := newTestApp(t, devCfg, nil)
	req, _ := http.NewRequest(http.MethodPost, dev.srv.URL+"/demo/token", strings.NewReader(`{}`))
	status, out := doJSON(t, req)
	tok, _ := out["token"].(string)
	if status != 200 || out["tenant"] != demoTenant || fmt.Sprint(out["allowed_topics"]) != "[demo:*]" || tok == "" {
		t.Fatalf("dev token: %d %v, want the demo tenant and demo:*", status, out)
	}
	req, _ = http.NewRequest(http.MethodGet, dev.srv.URL+"/demo/config", nil)
	if _, cfg := doJSON(t, req); cfg["tenant_claim"] != "tenant_id" {
		t.Errorf("demo config %v, want tenant_claim tenant_id", cfg)
	}
	s := subscribe(t, streamURL(dev.srv.URL, "demo:news"), tok)
	mustPublishWith(t, dev.srv.URL, out["publish_key"].(string), `{"tenant":"demo","type":"to_tenant"}`)
	mustPublishWith(t, dev.srv.URL, out["publish_key"].(string), `{"topics":["demo:news"],"type":"to_topic"}`)
	if got, want := []string{s.next(t).Type, s.next(t).Type}, []string{"to_tenant", "to_topic"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	status, body := refused(t, streamURL(dev.srv.URL, "demo:news", "secret:x"), tok)
	if status != 403 || body["message"] != `not allowed to follow topic "secret:x"` {
		t.Errorf("secret:x: got %d %v, want 403 naming it", status, body)
	}
}

// mustPublishWith publishes body with key and fails t unless it is
// accepted.
func mustPublishWith(t *testing.T, base, key, body string) {
	t.Helper()
	if status, out := publish(t, base, key, body); status != http.StatusOK {
		t.Fatalf("publish %s: %d %v", body, status, out)
	}
}

// TestGrants checks the matching of topic grants: exact names, prefix
// patterns (whose '*' may stand for nothing), and nothing for a nil one.
func TestGrants(t *testing.T) {
	t.Parallel()
	g, err := newGrants([]string{"news"}, []string{"board:7", "org_42:*", "a*"})
	if err != nil {
		t.Fatal(err)
	}
	for topic, want := range map[string]bool{
		"news": true, "board:7": true, "org_42:": true, "org_42:doc:1": true, "a": true, "abc": true,
		"news:x": false, "board:70": false, "board:": false, "org_42": false, "org_43:x": false, "b": false,
	} {
		if got := g.allows(topic); got != want {
			t.Errorf("allows(%q) = %v, want %v", topic, got, want)
		}
	}
	var none *grants
	if none.allows("news") {
		t.Error("a nil grants allows a topic")
	}
	ok, err := authorizeTopic(context.Background(), ssekit.Identity{}, "news")
	if ok || err != nil {
		t.Errorf("authorizeTopic without grants = %v, %v; want false", ok, err)
	}
}
