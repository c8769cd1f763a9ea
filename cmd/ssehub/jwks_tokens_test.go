package main

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// TestJWKSRefusesBadTokens checks every kind of token the keys must not
// let in — algorithm confusion, alg none, no kid, a token whose alg is
// not its key's, a key for encryption or a symmetric one in the set — and
// that every check of an HS256 token holds for one signed with the JWKS
// (exp, iss, aud, numeric dates, sub), an expired token that is valid
// otherwise being answered credentials_expired. None of them fetches the
// set.
func TestJWKSRefusesBadTokens(t *testing.T) {
	t.Parallel()
	rsaKey := newSigningKey(t, "rsa", "rsa", jwkset.AlgRS256, jwkset.UseSig)
	rsaNoAlg := newSigningKey(t, "rsa2", "rsa-no-alg", "", "")
	ecKey := newSigningKey(t, "ec", "ec", "", "")
	edKey := newSigningKey(t, "ed", "ed", "", "")
	ec384 := newSigningKey(t, "ec384", "ec384", "", "")
	ec384LyingAlg := newSigningKey(t, "ec384", "ec384-es256", jwkset.AlgES256, "")
	pss := newSigningKey(t, "rsa", "rsa-pss", jwkset.AlgPS256, "")
	enc := newSigningKey(t, "rsa2", "rsa-enc", "", jwkset.UseEnc)
	oct := signingKey{kid: "oct", jwk: jwkset.JWKMarshal{KTY: jwkset.KtyOct, KID: "oct", K: base64.RawURLEncoding.EncodeToString(testHMACed)}}
	p := newIDP(t, rsaKey, rsaNoAlg, ecKey, edKey, ec384, ec384LyingAlg, pss, enc, oct)

	rsaPub := &rsaKey.private.(*rsa.PrivateKey).PublicKey
	der, err := x509.MarshalPKIXPublicKey(rsaPub)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	jwkJSON, err := json.Marshal(rsaKey.jwk)
	if err != nil {
		t.Fatal(err)
	}
	user := newUser()
	const iss, aud = "https://idp.example.com", "ssehub"
	valid := func(extra jwt.MapClaims) jwt.MapClaims {
		c := userClaims(user, jwt.MapClaims{"iss": iss, "aud": aud})
		for k, v := range extra {
			c[k] = v
		}
		return c
	}
	kid := func(k string) map[string]any { return map[string]any{"kid": k} }
	now := time.Now()
	cases := []struct {
		name, token string
	}{
		{"HS256 signed with the RSA key's PEM", signWith(t, jwt.SigningMethodHS256, pemBytes, kid("rsa"), valid(nil))},
		{"HS256 signed with the RSA key's DER", signWith(t, jwt.SigningMethodHS256, der, kid("rsa"), valid(nil))},
		{"HS256 signed with the RSA key's JWK", signWith(t, jwt.SigningMethodHS256, jwkJSON, kid("rsa"), valid(nil))},
		{"HS256 signed with the set's symmetric key", signWith(t, jwt.SigningMethodHS256, testHMACed, kid("oct"), valid(nil))},
		{"HS256 signed with another secret", signWith(t, jwt.SigningMethodHS256, []byte(testSecret+"-not-this-hubs"), kid("rsa"), valid(nil))},
		{"alg none", signWith(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, kid("rsa"), valid(nil))},
		{"no kid", signWith(t, jwt.SigningMethodRS256, rsaKey.private, nil, valid(nil))},
		{"empty kid", signWith(t, jwt.SigningMethodRS256, rsaKey.private, kid(""), valid(nil))},
		{"kid a number", signWith(t, jwt.SigningMethodRS256, rsaKey.private, map[string]any{"kid": 7}, valid(nil))},
		{"ES256 token naming an RSA key", signWith(t, jwt.SigningMethodES256, ecKey.private, kid("rsa-no-alg"), valid(nil))},
		{"RS256 token naming an EC key", signWith(t, jwt.SigningMethodRS256, rsaKey.private, kid("ec"), valid(nil))},
		{"EdDSA token naming an RSA key", signWith(t, jwt.SigningMethodEdDSA, edKey.private, kid("rsa"), valid(nil))},
		{"RS256 token naming an Ed25519 key", signWith(t, jwt.SigningMethodRS256, rsaKey.private, kid("ed"), valid(nil))},
		{"RS256 by a key whose JWK says PS256", signWith(t, jwt.SigningMethodRS256, pss.private, kid("rsa-pss"), valid(nil))},
		{"PS256 by an RSA key without alg", signWith(t, jwt.SigningMethodPS256, rsaNoAlg.private, kid("rsa-no-alg"), valid(nil))},
		{"RS512 by an RSA key without alg", signWith(t, jwt.SigningMethodRS512, rsaNoAlg.private, kid("rsa-no-alg"), valid(nil))},
		{"ES384 by a P-384 key", signWith(t, jwt.SigningMethodES384, ec384.private, kid("ec384"), valid(nil))},
		{"ES256 naming a P-384 key whose JWK says ES256", signWith(t, jwt.SigningMethodES256, ecKey.private, kid("ec384-es256"), valid(nil))},
		{"RS256 naming the set's symmetric key", signWith(t, jwt.SigningMethodRS256, rsaKey.private, kid("oct"), valid(nil))},
		{"RS256 by a key for encryption", signWith(t, jwt.SigningMethodRS256, enc.private, kid("rsa-enc"), valid(nil))},
		{"RS256 by another key than its kid's", signWith(t, jwt.SigningMethodRS256, rsaNoAlg.private, kid("rsa"), valid(nil))},
		{"expired, by another key than its kid's", signWith(t, jwt.SigningMethodRS256, rsaNoAlg.private, kid("rsa"), valid(jwt.MapClaims{"exp": now.Add(-time.Hour).Unix()}))},
		{"expired, wrong audience", rsaKey.sign(t, valid(jwt.MapClaims{"exp": now.Add(-time.Hour).Unix(), "aud": "another-app"}))},
		{"not yet valid", edKey.sign(t, valid(jwt.MapClaims{"nbf": now.Add(time.Hour).Unix()}))},
		{"no exp", ecKey.sign(t, jwt.MapClaims{"sub": user, "iss": iss, "aud": aud})},
		{"wrong issuer", rsaKey.sign(t, valid(jwt.MapClaims{"iss": "https://evil.example.com"}))},
		{"wrong audience", rsaKey.sign(t, valid(jwt.MapClaims{"aud": "another-app"}))},
		{"sub not a uuid", edKey.sign(t, valid(jwt.MapClaims{"sub": "alice"}))},
		{"exp a string", rsaKey.signRaw(t, `{"sub":"`+user+`","iss":"`+iss+`","aud":"`+aud+`","exp":"9999999999"}`)},
		{"tenant not a name", ecKey.sign(t, valid(jwt.MapClaims{"tenant_id": "a b"}))},
		{"topics not a list", ecKey.sign(t, valid(jwt.MapClaims{"topics": "news"}))},
	}
	for _, withSecret := range []bool{false, true} {
		t.Run(fmt.Sprintf("secret=%v", withSecret), func(t *testing.T) {
			args := []string{"--jwt-issuer", iss, "--jwt-audience", aud}
			if withSecret {
				args = append(args, "--jwt-secret", testSecret)
			}
			ta := newTestApp(t, jwksConfig(t, p.url(), args...), nil)
			for _, tc := range cases {
				req, _ := http.NewRequest(http.MethodGet, ta.srv.URL+"/sse/stream", nil)
				req.Header.Set("Authorization", "Bearer "+tc.token)
				if status, body := doJSON(t, req); status != http.StatusUnauthorized || body["error"] != "unauthorized" {
					t.Errorf("%s: got %d %v, want 401", tc.name, status, body)
				}
			}
			// Valid but for its exp: the client is to get a new token and
			// resume, not to give up.
			expired := rsaKey.sign(t, valid(jwt.MapClaims{"exp": now.Add(-time.Hour).Unix()}))
			if status, body := refused(t, ta.srv.URL+"/sse/stream", expired); status != http.StatusUnauthorized || body["error"] != "credentials_expired" {
				t.Errorf("expired: got %d %v, want 401 credentials_expired", status, body)
			}
			// The checks above are what refused them, not a broken setup.
			if got := streamStatus(t, ta.srv.URL, rsaKey.sign(t, valid(nil))); got != http.StatusOK {
				t.Errorf("a valid token: status %d, want 200", got)
			}
		})
	}
	if got := p.requests.Load(); got != 2 {
		t.Errorf("JWKS requests = %d, want 2, one per hub's start: no refused token fetched the set", got)
	}
}

// TestJWKSTenantAndTopics checks that the tenant and topic claims of a
// token signed with the provider's keys work as those of an HS256 one:
// the same verification path reads them.
func TestJWKSTenantAndTopics(t *testing.T) {
	t.Parallel()
	k := newSigningKey(t, "ed", "ed", jwkset.AlgEdDSA, jwkset.UseSig)
	p := newIDP(t, k)
	ta := newTestApp(t, jwksConfig(t, p.url(), "--tenant-claim", "org"), nil)
	tok := k.sign(t, userClaims(newUser(), jwt.MapClaims{
		"org": "acme", "topics": []string{"acme:news"}, "allowed_topics": []string{"acme:board:*"},
	}))
	s := subscribe(t, streamURL(ta.srv.URL, "acme:board:7"), tok)
	mustPublish(t, ta.srv.URL, `{"tenant":"acme","type":"for_acme"}`)
	mustPublish(t, ta.srv.URL, `{"tenant":"globex","type":"for_globex"}`)
	mustPublish(t, ta.srv.URL, `{"topics":["acme:news"],"type":"for_news"}`)
	mustPublish(t, ta.srv.URL, `{"topics":["acme:board:7"],"type":"for_board"}`)
	mustPublish(t, ta.srv.URL, `{"all":true,"type":"end"}`)
	if got, want := s.until(t, "end"), []string{"for_acme", "for_news", "for_board"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if status, body := refused(t, streamURL(ta.srv.URL, "globex:board:1"), tok); status != http.StatusForbidden || body["error"] != "topic_forbidden" {
		t.Errorf("a topic the token does not allow: %d %v, want 403 topic_forbidden", status, body)
	}
}

// TestConfigJWKS checks the settings of the provider's keys: either the
// secret or the JWKS, or both; a URL the keys can be trusted from; and a
// URL's password never echoed.
func TestConfigJWKS(t *testing.T) {
	t.Parallel()
	const idpURL = "https://idp.example.com/.well-known/jwks.json"
	accepted := [][]string{
		{"--publish-key", testKey, "--jwks-url", idpURL},
		{"--publish-key", testKey, "--jwt-secret", testSecret, "--jwks-url", idpURL},
		{"--publish-key", testKey, "--jwt-secret", testSecret},
		{"--dev", "--jwks-url", idpURL},
		{"--publish-key", testKey, "--jwks-url", "http://127.0.0.1:8081/jwks.json"},
		{"--publish-key", testKey, "--jwks-url", "http://127.8.9.10/jwks.json"},
		{"--publish-key", testKey, "--jwks-url", "http://[::1]:8081/jwks.json"},
		{"--publish-key", testKey, "--jwks-url", "http://localhost:8081/jwks.json"},
		{"--publish-key", testKey, "--jwks-url", "HTTP://LOCALHOST/jwks.json"},
		{"--publish-key", testKey, "--jwks-url", idpURL, "--jwks-refresh", "1s", "--jwks-refresh-unknown-kid", "1s"},
	}
	for _, args := range accepted {
		if _, err := parseConfig(args, noEnv, nil); err != nil {
			t.Errorf("%v: %v", args, err)
		}
	}
	c, err := parseConfig([]string{"--publish-key", testKey, "--jwks-url", idpURL}, noEnv, nil)
	if err != nil || c.JWTSecret != "" || c.JWKSRefresh != 15*time.Minute || c.JWKSRefreshUnknownKID != 10*time.Second {
		t.Errorf("JWKS only: secret %q, refresh %v, unknown kid %v, err %v; want no secret, 15m, 10s", c.JWTSecret, c.JWKSRefresh, c.JWKSRefreshUnknownKID, err)
	}

	refused := []struct {
		args []string
		want []string // the error must contain each
	}{
		{[]string{"--publish-key", testKey}, []string{"--jwt-secret (SSEHUB_JWT_SECRET)", "--jwks-url (SSEHUB_JWKS_URL)", "--dev"}},
		{[]string{"--publish-key", testKey, "--jwks-url", idpURL, "--jwt-secret", "short"}, []string{"--jwt-secret", "too short"}},
		{[]string{"--jwks-url", idpURL}, []string{"--publish-key"}},
		{[]string{"--publish-key", testKey, "--jwks-url", "https://ssehub:hunter2@idp.example.com/jwks.json"}, []string{"--jwks-url", "credentials"}},
		{[]string{"--publish-key", testKey, "--jwks-url", "http://idp.example.com/jwks.json"}, []string{"--jwks-url", "use https://"}},
		{[]string{"--publish-key", testKey, "--jwks-url", "http://app.localhost/jwks.json"}, []string{"--jwks-url", "use https://"}},
		{[]string{"--publish-key", testKey, "--jwt-secret", testSecret, "--jwks-refresh", "1h"}, []string{"--jwks-refresh (SSEHUB_JWKS_REFRESH)", "needs --jwks-url"}},
	}
	for _, tc := range refused {
		_, err := parseConfig(tc.args, noEnv, nil)
		if err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: err = %v, want a one-line error", tc.args, err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q lacks %q", tc.args, err, w)
			}
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%v: error %q shows the password", tc.args, err)
		}
	}
}
