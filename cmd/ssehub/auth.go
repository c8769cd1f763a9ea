package main

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// tokenCookie is the cookie a subscriber token may come in, for browsers
// whose EventSource cannot set headers.
const tokenCookie = "sse_token"

// clockSkew is the leeway on exp and nbf, for servers whose clocks differ
// by a little.
const clockSkew = 30 * time.Second

// errNoToken is the refusal of a stream request that carries no token.
var errNoToken = errors.New("no token: send Authorization: Bearer <jwt>, the sse_token cookie or ?access_token=<jwt>")

// verifier checks subscriber tokens: HS256 JWTs signed with the hub's
// secret, whose sub is the user's uuid. It is safe for concurrent use.
type verifier struct {
	secret []byte
	parser *jwt.Parser
}

// newVerifier returns a verifier for secret. issuer and audience, when not
// empty, must match the token's iss and aud.
func newVerifier(secret, issuer, audience string) *verifier {
	opts := []jwt.ParserOption{
		// Pinning the method is what refuses alg:none and an RS256 token
		// whose "public key" is our secret (algorithm confusion).
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(), // a token without exp would be valid for ever
		jwt.WithLeeway(clockSkew),
	}
	if issuer != "" {
		opts = append(opts, jwt.WithIssuer(issuer))
	}
	if audience != "" {
		opts = append(opts, jwt.WithAudience(audience))
	}
	return &verifier{secret: []byte(secret), parser: jwt.NewParser(opts...)}
}

// userID returns the canonical uuid string of the token's subject.
func (v *verifier) userID(token string) (string, error) {
	var claims numericDateClaims
	_, err := v.parser.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return v.secret, nil })
	if err != nil {
		return "", fmt.Errorf("invalid token: %w", err)
	}
	u, err := uuid.Parse(claims.Subject)
	if err != nil || u == uuid.Nil {
		return "", fmt.Errorf("invalid token: sub %s is not a user uuid", quoteInput(claims.Subject))
	}
	// Canonical form, so that publishing to "ABC…" reaches the stream of
	// a token that said "abc…".
	return u.String(), nil
}

// numericDateClaims are the registered claims, with exp, nbf and iat held
// to RFC 7519: a NumericDate is a JSON number. golang-jwt also takes a
// numeric string ("exp":"9999999999"), which no conforming signer sends; a
// token that has one was made by hand or by a broken library, and is
// refused rather than guessed at.
type numericDateClaims struct {
	jwt.RegisteredClaims
}

// dateClaims are the claims that must be JSON numbers.
var dateClaims = []string{"exp", "nbf", "iat"}

// UnmarshalJSON refuses a string exp, nbf or iat, then decodes the
// registered claims. Keys are compared as encoding/json matches them, after
// unescaping and ignoring case, since "EXP" would fill ExpiresAt too.
func (c *numericDateClaims) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	for key, value := range raw {
		for _, name := range dateClaims {
			if strings.EqualFold(key, name) && len(value) > 0 && value[0] == '"' {
				return fmt.Errorf("claim %s is a string: a NumericDate is a JSON number (RFC 7519)", name)
			}
		}
	}
	return json.Unmarshal(b, &c.RegisteredClaims)
}

// mint signs a token for user, valid for ttl. Only dev mode mints: in
// production the app's backend does, with the shared secret.
func (v *verifier) mint(user string, ttl time.Duration) (token string, exp time.Time, err error) {
	now := time.Now()
	exp = now.Add(ttl)
	claims := jwt.RegisteredClaims{
		Subject:   user,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(exp),
	}
	token, err = jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(v.secret)
	return token, exp, err
}

// requestToken returns the subscriber token of r and where it was found.
// An explicit token (header, then query) wins over the ambient cookie, so
// that a pasted token is not shadowed by a stale cookie.
func requestToken(r *http.Request) (token, source string, err error) {
	if h := r.Header.Get("Authorization"); h != "" {
		t, ok := bearer(h)
		if !ok {
			return "", "header", errors.New("the Authorization header is not Bearer <token>")
		}
		return t, "header", nil
	}
	if t := r.URL.Query().Get("access_token"); t != "" {
		return t, "query", nil
	}
	if c, err := r.Cookie(tokenCookie); err == nil && c.Value != "" {
		return c.Value, "cookie", nil
	}
	return "", "", errNoToken
}

// bearer returns the credentials of an Authorization header of the Bearer
// scheme, whose name is case-insensitive (RFC 9110).
func bearer(header string) (string, bool) {
	scheme, cred, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	cred = strings.TrimSpace(cred)
	return cred, cred != ""
}

// keyChecker compares publish keys in constant time.
type keyChecker struct{ sum [sha256.Size]byte }

func newKeyChecker(key string) keyChecker { return keyChecker{sha256.Sum256([]byte(key))} }

// ok reports whether key is the publish key. Comparing digests keeps the
// time independent of the key's length as well as of its bytes.
func (k keyChecker) ok(key string) bool {
	sum := sha256.Sum256([]byte(key))
	return subtle.ConstantTimeCompare(sum[:], k.sum[:]) == 1
}

// randomSecret returns n random bytes, base64url-encoded, for dev mode.
func randomSecret(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (it panics instead)
	return base64.RawURLEncoding.EncodeToString(b)
}
