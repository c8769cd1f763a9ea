package main

import (
	"github.com/ssekit/sse/internal/ssetest"
	keyset "github.com/ssekit/sse/jwks"

	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// signingKey is a key of the test identity provider: its private half
// signs tokens, its public half is in the JWK Set under kid.
type signingKey struct {
	kid     string
	method  jwt.SigningMethod
	private crypto.Signer
	jwk     jwkset.JWKMarshal
}

// Keys are generated once: RSA generation is slow under -race.
var (
	testRSA    = sync.OnceValues(func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 2048) })
	testRSA2   = sync.OnceValues(func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 2048) })
	testEC     = sync.OnceValues(func() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) })
	testEC384  = sync.OnceValues(func() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P384(), rand.Reader) })
	testEd     = sync.OnceValues(func() (ed25519.PrivateKey, error) { _, k, err := ed25519.GenerateKey(rand.Reader); return k, err })
	testHMACed = []byte("a symmetric key that a JWK Set should never hold")
)

// newSigningKey returns the key priv of kind "rsa", "rsa2", "ec", "ec384"
// or "ed", under kid, its JWK with alg and use ("" to leave them out).
func newSigningKey(t *testing.T, kind, kid string, alg jwkset.ALG, use jwkset.USE) signingKey {
	t.Helper()
	var (
		priv   crypto.Signer
		method jwt.SigningMethod
		err    error
	)
	switch kind {
	case "rsa":
		priv, err = testRSA()
		method = jwt.SigningMethodRS256
	case "rsa2":
		priv, err = testRSA2()
		method = jwt.SigningMethodRS256
	case "ec":
		priv, err = testEC()
		method = jwt.SigningMethodES256
	case "ec384":
		priv, err = testEC384()
		method = jwt.SigningMethodES384
	case "ed":
		priv, err = testEd()
		method = jwt.SigningMethodEdDSA
	default:
		t.Fatalf("no key kind %q", kind)
	}
	if err != nil {
		t.Fatal(err)
	}
	jwk, err := jwkset.NewJWKFromKey(priv.Public(), jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: kid, ALG: alg, USE: use}})
	if err != nil {
		t.Fatal(err)
	}
	return signingKey{kid: kid, method: method, private: priv, jwk: jwk.Marshal()}
}

// sign signs claims with k, naming k's kid.
func (k signingKey) sign(t *testing.T, claims jwt.MapClaims) string {
	t.Helper()
	return signWith(t, k.method, k.private, map[string]any{"kid": k.kid}, claims)
}

// signWith signs claims with method and key, with header fields added (a
// nil value removes the field).
func signWith(t *testing.T, method jwt.SigningMethod, key any, header map[string]any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	for k, v := range header {
		if v == nil {
			delete(tok.Header, k)
			continue
		}
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// signRaw signs claims, JSON as is, with k: for claims no library would
// encode.
func (k signingKey) signRaw(t *testing.T, claims string) string {
	t.Helper()
	enc := base64.RawURLEncoding.EncodeToString
	unsigned := enc([]byte(`{"alg":"`+k.method.Alg()+`","kid":"`+k.kid+`","typ":"JWT"}`)) + "." + enc([]byte(claims))
	sig, err := k.method.Sign(unsigned, k.private)
	if err != nil {
		t.Fatal(err)
	}
	return unsigned + "." + enc(sig)
}

// userClaims are the claims of a valid token for user, with extra added.
func userClaims(user string, extra jwt.MapClaims) jwt.MapClaims {
	c := jwt.MapClaims{"sub": user, "exp": time.Now().Add(time.Hour).Unix()}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

// idp is an identity provider's JWK Set served on loopback, whose keys a
// test rotates, and which it can take down.
type idp struct {
	srv      *httptest.Server
	requests atomic.Int64

	mu   sync.Mutex
	body []byte // what GET answers
	code int    // its status
}

// newIDP serves keys. The server is closed at cleanup, after what the
// test registers later (the hub).
func newIDP(t *testing.T, keys ...signingKey) *idp {
	t.Helper()
	p := &idp{}
	p.serve(t, keys...)
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.requests.Add(1)
		p.mu.Lock()
		body, code := p.body, p.code
		p.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = w.Write(body)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// serve makes the JWK Set hold keys, from the next fetch on.
func (p *idp) serve(t *testing.T, keys ...signingKey) {
	t.Helper()
	p.answer(http.StatusOK, jwksBody(t, keys...))
}

// jwksBody is the JWK Set of keys, public halves only.
func jwksBody(t *testing.T, keys ...signingKey) []byte {
	t.Helper()
	set := jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{}}
	for _, k := range keys {
		set.Keys = append(set.Keys, k.jwk)
	}
	body, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// answer makes every fetch from now on get code and body.
func (p *idp) answer(code int, body []byte) {
	p.mu.Lock()
	p.body, p.code = body, code
	p.mu.Unlock()
}

// url is the JWK Set's URL.
func (p *idp) url() string { return p.srv.URL + "/.well-known/jwks.json" }

// jwksConfig returns a valid config whose tokens are verified with the
// keys of jwksURL only, no secret, and rate limits off; args are added.
func jwksConfig(t *testing.T, jwksURL string, args ...string) config {
	t.Helper()
	all := append([]string{"--addr", "127.0.0.1:0", "--publish-key", testKey, "--jwks-url", jwksURL,
		"--stream-rate-ip", "0", "--stream-rate-user", "0"}, args...)
	c, err := parseConfig(all, noEnv, io.Discard)
	if err != nil {
		t.Fatalf("parseConfig: %v", err)
	}
	return c
}

// streamStatus returns the status of a stream request with tok, closing
// the stream if one started.
func streamStatus(t *testing.T, base, tok string) int {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/sse/stream", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestJWKSAlgorithms checks that a token signed RS256, ES256 or EdDSA by a
// key of the JWK Set opens a stream for its user, with and without alg in
// the JWK, whether or not the hub also has a secret; and that with one,
// HS256 tokens still do. Nothing but the start-up fetches the set.
func TestJWKSAlgorithms(t *testing.T) {
	t.Parallel()
	keys := []signingKey{
		newSigningKey(t, "rsa", "rsa-1", jwkset.AlgRS256, jwkset.UseSig),
		newSigningKey(t, "rsa2", "rsa-no-alg", "", ""),
		newSigningKey(t, "ec", "ec-1", jwkset.AlgES256, ""),
		newSigningKey(t, "ec", "ec-no-alg", "", jwkset.UseSig),
		newSigningKey(t, "ed", "ed-1", jwkset.AlgEdDSA, jwkset.UseSig),
		newSigningKey(t, "ed", "ed-no-alg", "", ""),
	}
	p := newIDP(t, keys...)
	for _, withSecret := range []bool{false, true} {
		t.Run(fmt.Sprintf("secret=%v", withSecret), func(t *testing.T) {
			var args []string
			if withSecret {
				args = []string{"--jwt-secret", testSecret}
			}
			ta := newTestApp(t, jwksConfig(t, p.url(), args...), nil)
			for _, k := range keys {
				user := newUser()
				s := subscribe(t, streamURL(ta.srv.URL), k.sign(t, userClaims(user, nil)))
				mustPublish(t, ta.srv.URL, mustJSON(map[string]any{"users": []string{user}, "type": "hello", "data": k.kid}))
				if ev := s.next(t); ev.Type != "hello" || string(ev.Data) != mustJSON(k.kid) {
					t.Errorf("%s: got %+v, want the hello event for its user", k.kid, ev)
				}
			}
			hs := token(t, newUser())
			if got, want := streamStatus(t, ta.srv.URL, hs), map[bool]int{false: 401, true: 200}[withSecret]; got != want {
				t.Errorf("HS256 token signed with the test secret: status %d, want %d", got, want)
			}
			if got := metricValue(t, ta.srv.URL, "ssekit_jwks_keys"); got != float64(len(keys)) {
				t.Errorf("ssekit_jwks_keys = %v, want %d", got, len(keys))
			}
			if got := metricValue(t, ta.srv.URL, `ssekit_jwks_refreshes_total{trigger="start"}`); got != 1 {
				t.Errorf(`refreshes{start} = %v, want 1`, got)
			}
			if got := metricValue(t, ta.srv.URL, `ssekit_jwks_refreshes_total{trigger="unknown_kid"}`); got != 0 {
				t.Errorf(`refreshes{unknown_kid} = %v, want 0: every kid was loaded`, got)
			}
		})
	}
}

// TestJWKSRotation rotates the provider's keys under a running hub: a
// token of the new key has the set fetched again and is accepted without
// a restart; the removed key's tokens are refused from then on.
func TestJWKSRotation(t *testing.T) {
	t.Parallel()
	old := newSigningKey(t, "rsa", "2024-old", jwkset.AlgRS256, jwkset.UseSig)
	rotated := newSigningKey(t, "ec", "2025-new", jwkset.AlgES256, jwkset.UseSig)
	p := newIDP(t, old)
	ta := newTestApp(t, jwksConfig(t, p.url()), nil)
	user := newUser()
	if got := streamStatus(t, ta.srv.URL, old.sign(t, userClaims(user, nil))); got != http.StatusOK {
		t.Fatalf("old key before the rotation: %d, want 200", got)
	}
	p.serve(t, rotated) // the old key is gone from the set
	if got := streamStatus(t, ta.srv.URL, rotated.sign(t, userClaims(user, nil))); got != http.StatusOK {
		t.Fatalf("rotated-in key: %d, want 200", got)
	}
	if got := streamStatus(t, ta.srv.URL, old.sign(t, userClaims(user, nil))); got != http.StatusUnauthorized {
		t.Fatalf("removed key after the refresh: %d, want 401", got)
	}
	// The start-up's fetch and the new kid's; the removed kid is unknown
	// now, but within --jwks-refresh-unknown-kid of that fetch.
	if got := p.requests.Load(); got != 2 {
		t.Errorf("JWKS requests = %d, want 2", got)
	}
	if got := metricValue(t, ta.srv.URL, `ssekit_jwks_refreshes_total{trigger="unknown_kid"}`); got != 1 {
		t.Errorf(`refreshes{unknown_kid} = %v, want 1`, got)
	}
}

// TestJWKSRotationAllAtOnce checks that the streams that arrive together
// with a new kid, as every client does after a rotation, all wait for one
// fetch and are accepted, rather than being refused by its rate limit.
func TestJWKSRotationAllAtOnce(t *testing.T) {
	t.Parallel()
	p := newIDP(t, newSigningKey(t, "rsa", "old", "", ""))
	ta := newTestApp(t, jwksConfig(t, p.url(), "--jwks-refresh-unknown-kid", "1h"), nil)
	rotated := newSigningKey(t, "ed", "new", "", "")
	p.serve(t, rotated)
	const n = 16
	errs := make(chan error, n)
	for range n {
		go func() {
			_, _, err := ta.verify.identify(rotated.sign(t, userClaims(newUser(), nil)))
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("identify: %v", err)
		}
	}
	if got := p.requests.Load(); got != 2 {
		t.Errorf("JWKS requests = %d, want 2: the start-up's and one for the new kid", got)
	}
}

// TestJWKSUnknownKIDRateLimit sends tokens with made-up kids, at once
// and one after the other, and counts the requests the JWKS server gets:
// one fetch for all of them within --jwks-refresh-unknown-kid.
func TestJWKSUnknownKIDRateLimit(t *testing.T) {
	t.Parallel()
	k := newSigningKey(t, "rsa", "real", jwkset.AlgRS256, "")
	p := newIDP(t, k)
	ta := newTestApp(t, jwksConfig(t, p.url(), "--jwks-refresh-unknown-kid", "1h"), nil)
	forged := func(i int) string {
		return signWith(t, jwt.SigningMethodRS256, k.private, map[string]any{"kid": fmt.Sprintf("made-up-%d", i)}, userClaims(newUser(), nil))
	}
	const n = 16
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if _, _, err := ta.verify.identify(forged(i)); err == nil || !strings.Contains(err.Error(), "unknown key") {
				t.Errorf("made-up kid %d: err = %v, want an unknown key", i, err)
			}
		})
	}
	wg.Wait()
	for i := n; i < 2*n; i++ {
		if got := streamStatus(t, ta.srv.URL, forged(i)); got != http.StatusUnauthorized {
			t.Errorf("made-up kid %d: status %d, want 401", i, got)
		}
	}
	if got := p.requests.Load(); got != 2 {
		t.Errorf("JWKS requests = %d, want 2: the start-up's and one for all the unknown kids", got)
	}
	if got := streamStatus(t, ta.srv.URL, k.sign(t, userClaims(newUser(), nil))); got != http.StatusOK {
		t.Errorf("the real key: status %d, want 200", got)
	}
}

// TestJWKSDown takes the JWKS server down in several ways under a
// running hub: a token of a loaded key is still accepted, one of a key the
// hub has not loaded is refused, the failed fetch is counted, and the
// keys loaded survive it.
func TestJWKSDown(t *testing.T) {
	t.Parallel()
	known := newSigningKey(t, "ec", "known", "", "")
	other := newSigningKey(t, "rsa", "not-loaded", "", "")
	modes := []struct {
		name string
		down func(p *idp)
	}{
		{"503", func(p *idp) { p.answer(http.StatusServiceUnavailable, []byte(`{"keys":[]}`)) }},
		{"not JSON", func(p *idp) { p.answer(http.StatusOK, []byte("<html>maintenance</html>")) }},
		{"invalid key", func(p *idp) {
			p.answer(http.StatusOK, []byte(`{"keys":[{"kty":"RSA","kid":"not-loaded","n":"!!","e":"AQAB"}]}`))
		}},
		{"too large", func(p *idp) {
			p.answer(http.StatusOK, append(append([]byte(`{"keys":[],"pad":"`), bytes.Repeat([]byte("x"), keyset.MaxSetBytes)...), `"}`...))
		}},
		{"connection refused", func(p *idp) { p.srv.Close() }},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			p := newIDP(t, known)
			ta := newTestApp(t, jwksConfig(t, p.url()), nil)
			m.down(p)
			if got := streamStatus(t, ta.srv.URL, other.sign(t, userClaims(newUser(), nil))); got != http.StatusUnauthorized {
				t.Errorf("a key not loaded: status %d, want 401", got)
			}
			if got := streamStatus(t, ta.srv.URL, known.sign(t, userClaims(newUser(), nil))); got != http.StatusOK {
				t.Errorf("a loaded key: status %d, want 200", got)
			}
			if got := metricValue(t, ta.srv.URL, `ssekit_jwks_refreshes_total{trigger="unknown_kid"}`); got != 1 {
				t.Errorf(`refreshes{unknown_kid} = %v, want 1`, got)
			}
			if got := metricValue(t, ta.srv.URL, `ssekit_jwks_refresh_failures_total{trigger="unknown_kid"}`); got != 1 {
				t.Errorf(`failures{unknown_kid} = %v, want 1`, got)
			}
			if got := metricValue(t, ta.srv.URL, "ssekit_jwks_keys"); got != 1 {
				t.Errorf("ssekit_jwks_keys = %v, want the 1 loaded before", got)
			}
		})
	}
}

// TestJWKSStartup checks that a hub whose JWK Set cannot be loaded at
// start-up does not start: run returns one line naming --jwks-url,
// whether the set is unreachable, broken, or holds no key that can verify
// a token; and that a redirect, even to a good set, is not followed.
func TestJWKSStartup(t *testing.T) {
	t.Parallel()
	good := newSigningKey(t, "rsa", "good", "", "")
	cases := []struct {
		name string
		// setup breaks p, which serves good, and returns the URL to
		// start with.
		setup func(t *testing.T, p *idp) string
	}{
		{"503", func(t *testing.T, p *idp) string { p.answer(http.StatusServiceUnavailable, nil); return p.url() }},
		{"not JSON", func(t *testing.T, p *idp) string { p.answer(http.StatusOK, []byte("<html>")); return p.url() }},
		{"no keys", func(t *testing.T, p *idp) string { p.serve(t); return p.url() }},
		{"no key that can verify", func(t *testing.T, p *idp) string {
			p.serve(t, newSigningKey(t, "ec384", "p384", "", ""), newSigningKey(t, "rsa", "enc", "", jwkset.UseEnc),
				newSigningKey(t, "rsa", "", "", ""), newSigningKey(t, "ec", "lying", jwkset.AlgRS256, ""))
			return p.url()
		}},
		{"too large", func(t *testing.T, p *idp) string {
			p.answer(http.StatusOK, append([]byte(`{"keys":[],"pad":"`), bytes.Repeat([]byte("x"), keyset.MaxSetBytes)...))
			return p.url()
		}},
		{"connection refused", func(t *testing.T, p *idp) string { p.srv.Close(); return p.url() }},
		{"redirect", func(t *testing.T, p *idp) string {
			srv := httptest.NewServer(http.RedirectHandler(p.url(), http.StatusFound))
			t.Cleanup(srv.Close)
			t.Cleanup(func() {
				if got := p.requests.Load(); got != 0 {
					t.Errorf("the redirect's target got %d requests, want 0", got)
				}
			})
			return srv.URL
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			jwksURL := tc.setup(t, newIDP(t, good))
			args := []string{"--addr", "127.0.0.1:0", "--publish-key", testKey, "--jwks-url", jwksURL}
			err := run(t.Context(), args, noEnv, io.Discard, io.Discard)
			if err == nil {
				t.Fatal("run: no error, want one naming --jwks-url")
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "--jwks-url (SSEHUB_JWKS_URL): ") || strings.Contains(msg, "\n") {
				t.Errorf("error %q is not one line naming --jwks-url", msg)
			}
		})
	}
}

// TestJWKSStartupCutShort checks that a start-up cut short (SIGTERM while
// the provider does not answer) ends the first fetch at once.
func TestJWKSStartupCutShort(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	ctx, cancel := context.WithCancel(t.Context())
	cfg := jwksConfig(t, srv.URL)
	errc := make(chan error, 1)
	go func() {
		_, err := newApp(ctx, cfg, slog.New(slog.DiscardHandler), nil)
		errc <- err
	}()
	cancel()
	select {
	case err := <-errc:
		if err == nil || !strings.Contains(err.Error(), "--jwks-url") {
			t.Errorf("newApp: err = %v, want one naming --jwks-url", err)
		}
	case <-time.After(ssetest.Patience):
		t.Fatal("newApp did not return after its context was done")
	}
}
