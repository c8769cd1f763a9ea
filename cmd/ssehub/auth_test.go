package main

import (
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestStreamRefusesBadTokens checks that every kind of bad subscriber
// token gets a 401 with a JSON error, never a stream: credentials_expired
// for one that is valid but for its exp, within the leeway or beyond it,
// and unauthorized for any other, an expired one that is also bad
// included.
func TestStreamRefusesBadTokens(t *testing.T) {
	t.Parallel()
	// No address limit: the cases outnumber its burst.
	ta := newTestApp(t, testConfig(t, "--jwt-issuer", "https://auth.example.com", "--stream-rate-ip", "0"), nil)
	user := newUser()
	now := time.Now()
	valid := func(extra jwt.MapClaims) jwt.MapClaims {
		c := jwt.MapClaims{"sub": user, "exp": now.Add(time.Hour).Unix(), "iss": "https://auth.example.com"}
		for k, v := range extra {
			c[k] = v
		}
		return c
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rs256, err := jwt.NewWithClaims(jwt.SigningMethodRS256, valid(nil)).SignedString(rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, valid(nil)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	hs256 := func(c jwt.MapClaims) string { return signHS(t, jwt.SigningMethodHS256, testSecret, c) }
	expired := jwt.MapClaims{"exp": now.Add(-time.Hour).Unix()}
	const unauthorized, credentialsExpired = "unauthorized", "credentials_expired"
	cases := []struct {
		name string
		edit func(*http.Request)
		want string // the error code
	}{
		{"no token", nil, unauthorized},
		{"expired", bearerAuth(hs256(valid(expired))), credentialsExpired},
		{"expired within the leeway", bearerAuth(hs256(valid(jwt.MapClaims{"exp": now.Add(-time.Second).Unix()}))), credentialsExpired},
		{"expired, in a cookie", func(r *http.Request) {
			r.AddCookie(&http.Cookie{Name: tokenCookie, Value: hs256(valid(expired))})
		}, credentialsExpired},
		{"expired, in the query", func(r *http.Request) {
			r.URL.RawQuery = url.Values{"access_token": {hs256(valid(expired))}}.Encode()
		}, credentialsExpired},
		{"expired, wrong key", bearerAuth(signHS(t, jwt.SigningMethodHS256, testSecret+"-other", valid(expired))), unauthorized},
		{"expired, wrong issuer", bearerAuth(hs256(valid(jwt.MapClaims{"exp": now.Add(-time.Hour).Unix(), "iss": "https://evil.example.com"}))), unauthorized},
		{"expired, not yet valid", bearerAuth(hs256(valid(jwt.MapClaims{"exp": now.Add(-time.Hour).Unix(), "nbf": now.Unix()}))), unauthorized},
		{"expired, sub not a uuid", bearerAuth(hs256(valid(jwt.MapClaims{"exp": now.Add(-time.Hour).Unix(), "sub": "alice"}))), unauthorized},
		{"expired, topics not a list", bearerAuth(hs256(valid(jwt.MapClaims{"exp": now.Add(-time.Hour).Unix(), "topics": "news"}))), unauthorized},
		{"expired, HS512", bearerAuth(signHS(t, jwt.SigningMethodHS512, testSecret, valid(expired))), unauthorized},
		{"not yet valid", bearerAuth(hs256(valid(jwt.MapClaims{"nbf": now.Add(time.Hour).Unix()}))), unauthorized},
		{"no exp", bearerAuth(hs256(jwt.MapClaims{"sub": user, "iss": "https://auth.example.com"})), unauthorized},
		{"wrong key", bearerAuth(signHS(t, jwt.SigningMethodHS256, testSecret+"-other", valid(nil))), unauthorized},
		{"alg none", bearerAuth(none), unauthorized},
		{"RS256", bearerAuth(rs256), unauthorized},
		{"HS512 with the right secret", bearerAuth(signHS(t, jwt.SigningMethodHS512, testSecret, valid(nil))), unauthorized},
		{"sub not a uuid", bearerAuth(hs256(valid(jwt.MapClaims{"sub": "alice"}))), unauthorized},
		{"no sub", bearerAuth(hs256(jwt.MapClaims{"exp": now.Add(time.Hour).Unix(), "iss": "https://auth.example.com"})), unauthorized},
		{"wrong issuer", bearerAuth(hs256(valid(jwt.MapClaims{"iss": "https://evil.example.com"}))), unauthorized},
		{"garbage", bearerAuth("not.a.jwt"), unauthorized},
		// RFC 7519's NumericDate is a JSON number; golang-jwt also takes a
		// numeric string, which a hand-rolled signer may send by mistake.
		{"exp a string", bearerAuth(seedToken("HS256", testSecret, `{"sub":"`+user+`","iss":"https://auth.example.com","exp":"9999999999"}`)), unauthorized},
		{"nbf a string", bearerAuth(seedToken("HS256", testSecret, `{"sub":"`+user+`","iss":"https://auth.example.com","exp":9999999999,"nbf":"0"}`)), unauthorized},
		{"iat a string", bearerAuth(seedToken("HS256", testSecret, `{"sub":"`+user+`","iss":"https://auth.example.com","exp":9999999999,"iat":"0"}`)), unauthorized},
		// encoding/json matches keys case-insensitively, the last one winning.
		{"EXP a string after exp", bearerAuth(seedToken("HS256", testSecret, `{"sub":"`+user+`","iss":"https://auth.example.com","exp":1,"EXP":"9999999999"}`)), unauthorized},
		{"escaped exp a string", bearerAuth(seedToken("HS256", testSecret, `{"sub":"`+user+`","iss":"https://auth.example.com","\u0065xp":"9999999999"}`)), unauthorized},
		{"basic scheme", func(r *http.Request) { r.Header.Set("Authorization", "Basic dXNlcjpwYXNz") }, unauthorized},
		{"bad cookie", func(r *http.Request) { r.AddCookie(&http.Cookie{Name: tokenCookie, Value: "x.y.z"}) }, unauthorized},
		{"bad query", func(r *http.Request) { r.URL.RawQuery = "access_token=x.y.z" }, unauthorized},
		{"good cookie, bad header", func(r *http.Request) {
			r.AddCookie(&http.Cookie{Name: tokenCookie, Value: token(t, user)})
			r.Header.Set("Authorization", "Bearer x.y.z")
		}, unauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, ta.srv.URL+"/sse/stream", nil)
			if tc.edit != nil {
				tc.edit(req)
			}
			status, body := doJSON(t, req)
			if status != http.StatusUnauthorized || body["error"] != tc.want || body["message"] == "" {
				t.Errorf("got %d %v, want 401 %s with a JSON error", status, body, tc.want)
			}
		})
	}
	if got := ta.hub.Stats().Clients; got != 0 {
		t.Errorf("Clients = %d after refusals, want 0", got)
	}
}

// TestStreamTokenSources checks the three places a token may come from,
// and that the stream belongs to the token's user.
func TestStreamTokenSources(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, testConfig(t), nil)
	cases := []struct {
		name string
		edit func(tok string) func(*http.Request)
	}{
		{"header", bearerAuth},
		{"lower-case scheme", func(tok string) func(*http.Request) {
			return func(r *http.Request) { r.Header.Set("Authorization", "bearer "+tok) }
		}},
		{"cookie", func(tok string) func(*http.Request) {
			return func(r *http.Request) { r.AddCookie(&http.Cookie{Name: tokenCookie, Value: tok}) }
		}},
		{"query", func(tok string) func(*http.Request) {
			return func(r *http.Request) { r.URL.RawQuery = url.Values{"access_token": {tok}}.Encode() }
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			user := newUser()
			// An upper-case sub must still match the canonical user id.
			s := openStream(t, ta.srv.URL+"/sse/stream", tc.edit(token(t, strings.ToUpper(user))))
			s.nextOf(t, "connected")
			status, body := publish(t, ta.srv.URL, testKey, mustJSON(map[string]any{"users": []string{user}, "type": "hello", "data": tc.name}))
			if status != http.StatusOK {
				t.Fatalf("publish: %d %v", status, body)
			}
			ev := s.nextOf(t, "hello")
			if got, want := positionIn(t, ev.ID, "u"), body["id"]; got != want || string(ev.Data) != mustJSON(tc.name) {
				t.Errorf("event %+v: position %s in the user's channel, want the publish's %v with data %q", ev, got, want, tc.name)
			}
		})
	}
}

func TestVerifierMintRoundTrip(t *testing.T) {
	t.Parallel()
	v := newVerifier(testSecret, "", "", "org")
	user := newUser()
	tok, exp, err := v.mint(user, "acme", []string{"acme:*", "news"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !exp.After(time.Now()) {
		t.Errorf("exp %v is not in the future", exp)
	}
	who, g, err := v.identify(tok)
	if err != nil || who.User != user || who.Tenant != "acme" || who.Topics != nil {
		t.Fatalf("identify = %+v, %v; want user %q in tenant acme, no default topics", who, err, user)
	}
	for topic, want := range map[string]bool{"acme:board:1": true, "news": true, "news:x": false, "other:1": false} {
		if got := g.allows(topic); got != want {
			t.Errorf("allows(%q) = %v, want %v", topic, got, want)
		}
	}
}

func TestKeyChecker(t *testing.T) {
	t.Parallel()
	k := newKeyChecker(testKey)
	for key, want := range map[string]bool{testKey: true, testKey + "x": false, "": false, testKey[:5]: false} {
		if got := k.ok(key); got != want {
			t.Errorf("ok(%q) = %v, want %v", key, got, want)
		}
	}
}

// TestVerifierTakesNumericDates checks that refusing string dates keeps
// every JSON number a NumericDate may be: whole, fractional, exponent.
func TestVerifierTakesNumericDates(t *testing.T) {
	t.Parallel()
	v := newVerifier(testSecret, "", "", "tenant_id")
	user := newUser()
	for _, claims := range []string{
		`{"sub":"` + user + `","exp":9999999999}`,
		`{"sub":"` + user + `","exp":9999999999.5,"nbf":1.25,"iat":1e9}`,
		`{"sub":"` + user + `","exp":9.999999999e9,"nbf":null}`,
	} {
		if got, _, err := v.identify(seedToken("HS256", testSecret, claims)); err != nil || got.User != user {
			t.Errorf("%s: identify = %+v, %v; want user %q", claims, got, err, user)
		}
	}
}
