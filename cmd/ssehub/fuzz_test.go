package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/ssekit/sse/ssekit"
)

// fuzzSub is the subject of the seed tokens.
const fuzzSub = "0b6e4f3c-6a9e-4d8c-9a39-6f4f5d2f8a11"

// seedToken signs a JWT by hand, so that seeds can carry any header and
// claims, including ones no library would sign.
func seedToken(alg, secret, claims string) string {
	enc := base64.RawURLEncoding.EncodeToString
	unsigned := enc([]byte(`{"alg":"`+alg+`","typ":"JWT"}`)) + "." + enc([]byte(claims))
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(unsigned))
	return unsigned + "." + enc(mac.Sum(nil))
}

// signedBySecret reports, without the JWT library, whether token is a
// compact JWS whose header says HS256 and whose signature is the HMAC-SHA256
// of its first two parts under secret: the independent check of what the
// verifier may accept.
func signedBySecret(token, secret string) bool {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return false
	}
	head, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return false
	}
	var h struct{ Alg string }
	if json.Unmarshal(head, &h) != nil || h.Alg != "HS256" {
		return false
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(parts[0] + "." + parts[1]))
	return hmac.Equal(sig, mac.Sum(nil))
}

// FuzzRequestToken feeds the stream's authentication arbitrary
// Authorization headers, query strings and Cookie headers, and checks that
// it never panics, that it takes the token from where it says, and that it
// accepts a token only when it is HS256-signed with the hub's secret, with
// a user uuid as subject, and a tenant and topics that are valid names.
// Seeds include valid tokens (expiring in 2100), with and without tenant
// and topic claims, tokens signed with another secret, alg none, HS512 and
// RS256 headers.
func FuzzRequestToken(f *testing.F) {
	v := newVerifier(testSecret, "", "", "tenant_id")
	claims := `{"sub":"` + fuzzSub + `","exp":4102444800}`
	good := seedToken("HS256", testSecret, claims)
	for _, tok := range []string{
		good,
		seedToken("HS256", testSecret+"x", claims),
		seedToken("HS512", testSecret, claims),
		seedToken("none", testSecret, claims),
		seedToken("RS256", testSecret, claims),
		seedToken("HS256", testSecret, `{"sub":"alice","exp":4102444800}`),
		seedToken("HS256", testSecret, `{"sub":"`+fuzzSub+`"}`),
		seedToken("HS256", testSecret, `{"sub":"`+fuzzSub+`","exp":1}`),
		seedToken("HS256", testSecret, `{"sub":"`+fuzzSub+`","exp":4102444800,"tenant_id":"acme","topics":["news"],"allowed_topics":["acme:*"]}`),
		seedToken("HS256", testSecret, `{"sub":"`+fuzzSub+`","exp":4102444800,"tenant_id":"a b","allowed_topics":["a*b"]}`),
		strings.TrimSuffix(good, good[strings.LastIndex(good, ".")+1:]), // unsigned
		"a.b.c", "", "....",
	} {
		f.Add("Bearer "+tok, "", "")
		f.Add("", "access_token="+url.QueryEscape(tok), "")
		f.Add("", "", tokenCookie+"="+tok)
	}
	f.Add("bearer   "+good+"  ", "", "")
	f.Add("Basic "+good, "access_token="+good, tokenCookie+"="+good)
	f.Add("", "access_token=&access_token="+good, tokenCookie+"=; "+tokenCookie+"="+good)
	f.Add("Bearer", "%zz", "=;;=")
	f.Fuzz(func(t *testing.T, auth, query, cookie string) {
		r := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/sse/stream", RawQuery: query}, Header: http.Header{}}
		if auth != "" {
			r.Header["Authorization"] = []string{auth}
		}
		if cookie != "" {
			r.Header["Cookie"] = []string{cookie}
		}
		tok, source, err := requestToken(r)
		if err != nil {
			if tok != "" {
				t.Fatalf("error %v with token %q", err, tok)
			}
			return
		}
		switch source {
		case "header":
			if auth == "" || !strings.Contains(auth, tok) {
				t.Fatalf("token %q said to come from header %q", tok, auth)
			}
		case "query":
			if auth != "" || tok != r.URL.Query().Get("access_token") {
				t.Fatalf("token %q said to come from query %q (header %q)", tok, query, auth)
			}
		case "cookie":
			if auth != "" || r.URL.Query().Get("access_token") != "" || !strings.Contains(cookie, tok) {
				t.Fatalf("token %q said to come from cookie %q", tok, cookie)
			}
		default:
			t.Fatalf("unknown source %q", source)
		}
		who, _, err := v.identify(tok)
		if err != nil {
			return
		}
		user := who.User
		if who.Tenant != "" && ssekit.ValidName(who.Tenant) != "" {
			t.Fatalf("accepted tenant %q, not a valid name", who.Tenant)
		}
		for _, topic := range who.Topics {
			if ssekit.ValidName(topic) != "" {
				t.Fatalf("accepted topic %q, not a valid name", topic)
			}
		}
		if !signedBySecret(tok, testSecret) {
			t.Fatalf("accepted %q, which is not HS256-signed with the secret", tok)
		}
		if u, perr := uuid.Parse(user); perr != nil || u.String() != user || u == uuid.Nil {
			t.Fatalf("accepted user %q, not a canonical uuid", user)
		}
	})
}

// FuzzPublishBody posts arbitrary bodies and content types to the publish
// handler and checks its contract: either 200 with the id of exactly one
// new event, whose type and data are valid and as sent, addressed to
// everyone only if the body says "all": true, to the tenant and topics
// sent and no other, with each field spelt exactly; or a 4xx with a JSON
// error and nothing published.
func FuzzPublishBody(f *testing.F) {
	// Small limits, so that the too-large paths are reached by small
	// inputs: the fuzzer minimizes every new input, and big ones slow it.
	// The hub allows fewer recipients than the handler, so that both
	// refusals are reached.
	rec := &recordingBroker{MemoryBroker: ssekit.NewMemoryBroker(4, 0)}
	hub := ssekit.NewHub(ssekit.Config{Broker: rec, MaxEventSize: 512, MaxRecipients: 3})
	f.Cleanup(func() { _ = hub.Close(); _ = rec.Close() })
	metrics := newServerMetrics(hub)
	h := &publishHandler{hub: hub, key: newKeyChecker(testKey), maxBody: 1 << 10, maxRecipients: 4, log: slog.New(slog.DiscardHandler), metrics: metrics}
	for _, body := range []string{
		`{"all":true,"type":"notification","data":{"title":"hi"}}`,
		`{"type":"notification","data":{"title":"hi"}}`,
		`{"all":false,"type":"t"}`, `{"all":null,"type":"t"}`, `{"all":true,"users":["` + fuzzSub + `"],"type":"t"}`,
		`{"users":[],"type":"t"}`, `{"users":null,"type":"t"}`, `{"clients":[],"type":"t"}`, `{"clients":null,"type":"t"}`,
		`{"users":["` + fuzzSub + `"],"users":[],"type":"t"}`, `{"Users":["` + fuzzSub + `"],"type":"t"}`,
		`{"users":["` + fuzzSub + `"],"type":"error"}`, `{"all":true,"type":"open"}`,
		`{"clients":["a","b","c","d"],"type":"t"}`, `{"clients":["a","b","c","d","e"],"type":"t"}`,
		`{"users":["` + fuzzSub + `"],"type":"t","data":1}`,
		`{"users":["` + strings.ToUpper(fuzzSub) + `"],"clients":["c-1"],"type":"a.b:c-d_e"}`,
		`{"clients":["x"],"type":"t","data":null}`,
		`{"type":"resync"}`, `{"type":"a b"}`, `{"type":""}`, `{"type":"t","data":}`,
		`{"type":"t"}{"type":"u"}`, `{"type":"t"} `, `{"user":["x"],"type":"t"}`,
		`{"users":"` + fuzzSub + `","type":"t"}`, `{"users":["00000000-0000-0000-0000-000000000000"],"type":"t"}`,
		`{"clients":["a b"],"type":"t"}`, `{"type":"t","data":"` + strings.Repeat("a", 600) + `"}`, `{"type":"t","data":"` + strings.Repeat("a", 1100) + `"}`,
		`{"all":true,"type":"t","data":"\ud800"}`, `{"all":true,"type":"t","data":"\u2028"}`, "{\"all\":true,\"type\":\"t\",\"data\":\"\xff\"}",
		`[]`, `null`, ``, `{"type":"t","Type":"u"}`, `{"TYPE":"t"}`,
		`{"tenant":"acme","type":"t"}`, `{"tenant":"","type":"t"}`, `{"tenant":null,"type":"t"}`, `{"tenant":["a"],"type":"t"}`,
		`{"tenant":"a b","type":"t"}`, `{"topics":["a","b:c"],"type":"t"}`, `{"topics":[],"type":"t"}`, `{"topics":["a*"],"type":"t"}`,
		`{"all":true,"tenant":"a","type":"t"}`, `{"all":true,"topics":["a"],"type":"t"}`, `{"Tenant":"a","type":"t"}`,
		`{"tenant":"a","topics":["b","b"],"users":["` + fuzzSub + `"],"type":"t"}`, `{"tenant":"a","topics":["b","c","d"],"type":"t"}`,
	} {
		f.Add(body, "application/json")
	}
	f.Add(`{"all":true,"type":"t"}`, "")
	f.Add(`{"all":true,"type":"t"}`, "application/x-www-form-urlencoded")
	f.Add(`{"all":true,"type":"t"}`, "application/cloudevents+json; charset=utf-8")
	f.Add(`{"all":true,"type":"t"}`, "application/json; charset=\"")
	f.Fuzz(func(t *testing.T, body, ctype string) {
		rec.take()
		req := httptest.NewRequest(http.MethodPost, "/sse/publish", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testKey)
		if ctype != "" {
			req.Header["Content-Type"] = []string{ctype}
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		published := rec.take()
		if ct := w.Header().Get("Content-Type"); ct != "application/json" {
			t.Fatalf("answer %d has Content-Type %q", w.Code, ct)
		}
		if w.Code != http.StatusOK {
			var e ssekit.ErrorBody
			if w.Code < 400 || w.Code > 499 || json.Unmarshal(w.Body.Bytes(), &e) != nil || e.Error == "" || e.Message == "" {
				t.Fatalf("refusal %d %q, want a 4xx with a JSON error", w.Code, w.Body)
			}
			if len(published) != 0 {
				t.Fatalf("refused with %d but published %d events", w.Code, len(published))
			}
			return
		}
		if isBatch([]byte(body)) {
			// A batch: each event answered on its own, and exactly the
			// ones answered 200 and not replayed were published.
			var resp batchResponse
			if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil || resp.Published+resp.Failed != len(resp.Results) {
				t.Fatalf("batch answered %q", w.Body)
			}
			fresh := 0
			for _, r := range resp.Results {
				if r.Status == http.StatusOK && !r.Replayed {
					fresh++
				}
			}
			if len(published) != fresh {
				t.Fatalf("batch answered %d new publishes but published %d", fresh, len(published))
			}
			return
		}
		var resp publishResponse
		if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil || !ssekit.ValidID(resp.ID) {
			t.Fatalf("200 with body %q", w.Body)
		}
		if len(published) != 1 || published[0].ID != resp.ID {
			t.Fatalf("200 id %s but published %d events", resp.ID, len(published))
		}
		m := published[0]
		var req2 publishRequest
		dec := json.NewDecoder(strings.NewReader(body))
		if err := dec.Decode(&req2); err != nil {
			t.Fatalf("published body %q that does not decode: %v", body, err)
		}
		if !typeRe.MatchString(m.Type) || ssekit.ReservedType(m.Type) != "" || m.Type != req2.Type {
			t.Fatalf("published type %q from %q", m.Type, req2.Type)
		}
		// Read the body a second way: as a map, which keeps one value per
		// exact key. Every key must be a field spelt exactly, and everyone
		// only what "all": true asked for.
		var fields map[string]json.RawMessage
		if err := json.Unmarshal([]byte(body), &fields); err != nil {
			t.Fatalf("published body %q that is not an object: %v", body, err)
		}
		for k := range fields {
			if !slices.Contains(publishFields, k) {
				t.Fatalf("published body %q with field %q", body, k)
			}
		}
		all := string(bytes.TrimSpace(fields["all"])) == "true"
		_, hasUsers := fields["users"]
		_, hasClients := fields["clients"]
		_, hasTenant := fields["tenant"]
		_, hasTopics := fields["topics"]
		everyone := slices.Equal(m.Channels, []string{ssekit.BroadcastChannel})
		if everyone != all || (all && (hasUsers || hasClients || hasTenant || hasTopics)) {
			t.Fatalf("published to everyone=%v from %q", everyone, body)
		}
		var mUsers, mNamed []string
		for _, ch := range m.Channels {
			if u, ok := strings.CutPrefix(ch, "user:"); ok {
				mUsers = append(mUsers, u)
			} else if ch != ssekit.BroadcastChannel {
				mNamed = append(mNamed, ch)
			}
		}
		n := len(req2.Users) + len(req2.Clients) + len(req2.Topics)
		if req2.Tenant != "" {
			n++
		}
		if n > 3 {
			t.Fatalf("published to %d addressees, over the hub's limit of 3", n)
		}
		// The tenant's and the topics' channels are those sent, each a
		// valid name.
		var named []string
		if req2.Tenant != "" {
			named = append(named, ssekit.TenantChannel(req2.Tenant))
		}
		for _, name := range req2.Topics {
			if ssekit.ValidName(name) != "" {
				t.Fatalf("published to topic %q, not a valid name", name)
			}
			named = append(named, ssekit.TopicChannel(name))
		}
		slices.Sort(named)
		if named = slices.Compact(named); !slices.Equal(mNamed, named) {
			t.Fatalf("published to channels %v, sent tenant %q and topics %v", mNamed, req2.Tenant, req2.Topics)
		}
		if !json.Valid(m.Data) || bytes.ContainsAny(m.Data, "\r\n") {
			t.Fatalf("published data %q is not one line of JSON", m.Data)
		}
		if len(req2.Data) > 0 && !jsonEqual(m.Data, req2.Data) {
			t.Fatalf("published data %s, sent %s", m.Data, req2.Data)
		}
		for _, u := range mUsers {
			if id, err := uuid.Parse(u); err != nil || id.String() != u {
				t.Fatalf("published to user %q, not a canonical uuid", u)
			}
		}
		// The hub addresses each user and client once: compare sets.
		users, clients := map[string]bool{}, map[string]bool{}
		for _, u := range req2.Users {
			users[uuid.MustParse(u).String()] = true
		}
		for _, c := range req2.Clients {
			clients[c] = true
		}
		if len(mUsers) != len(users) || len(m.Clients) != len(clients) {
			t.Fatalf("published to %d users %d clients, sent %d and %d", len(mUsers), len(m.Clients), len(users), len(clients))
		}
		for _, u := range mUsers {
			if !users[u] {
				t.Fatalf("published to user %q, not sent", u)
			}
		}
		for _, c := range m.Clients {
			if !clients[c] {
				t.Fatalf("published to client %q, not sent", c)
			}
		}
	})
}

// recordingBroker is the memory broker, keeping a copy of every message
// published, so that a test sees each publish whole: its channels and
// clients, which no single channel's history shows.
type recordingBroker struct {
	*ssekit.MemoryBroker
	mu  sync.Mutex
	got []ssekit.Message
}

func (b *recordingBroker) Publish(ctx context.Context, m ssekit.Message) (string, error) {
	id, err := b.MemoryBroker.Publish(ctx, m)
	if err == nil {
		m.ID = id
		b.mu.Lock()
		b.got = append(b.got, m)
		b.mu.Unlock()
	}
	return id, err
}

// take returns and forgets what was published.
func (b *recordingBroker) take() []ssekit.Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	got := b.got
	b.got = nil
	return got
}

// jsonEqual reports whether two JSON texts hold the same value. Strings
// compare after decoding, since the hub may re-escape them.
func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

// FuzzParseGrant checks the syntax of an "allowed_topics" entry: it is
// accepted only as a valid topic name, or as a valid name followed by one
// '*'; and the grant it makes allows exactly that name, or every topic
// that starts with it.
func FuzzParseGrant(f *testing.F) {
	for _, entry := range []string{
		"board:7", "org_42:*", "*", "**", "a*b", "board:**", "*board", "-x*", "", "a", "a b*", "é*",
		strings.Repeat("a", 128) + "*", strings.Repeat("a", 129), strings.Repeat("a", 129) + "*",
	} {
		f.Add(entry, "board:7")
		f.Add(entry, "org_42:doc")
	}
	f.Fuzz(func(t *testing.T, entry, topic string) {
		name, prefix, why := parseGrant(entry)
		if why != "" {
			if _, err := newGrants(nil, []string{entry}); err == nil {
				t.Fatalf("parseGrant(%q) refused it (%s), newGrants did not", entry, why)
			}
			return
		}
		if ssekit.ValidName(name) != "" {
			t.Fatalf("parseGrant(%q) accepted %q, not a valid name", entry, name)
		}
		if whole := name + map[bool]string{true: "*"}[prefix]; whole != entry {
			t.Fatalf("parseGrant(%q) = %q, %v: not the entry", entry, name, prefix)
		}
		g, err := newGrants(nil, []string{entry})
		if err != nil {
			t.Fatalf("newGrants(%q): %v", entry, err)
		}
		want := topic == name || prefix && strings.HasPrefix(topic, name)
		if got := g.allows(topic); got != want {
			t.Fatalf("grant %q allows(%q) = %v, want %v", entry, topic, got, want)
		}
	})
}
