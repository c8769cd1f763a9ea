package main

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	keyset "github.com/ssekit/sse/jwks"
	"github.com/ssekit/sse/ssekit"
)

// tokenCookie is the cookie a subscriber token may come in, for browsers
// whose EventSource cannot set headers.
const tokenCookie = "sse_token"

// clockSkew is the leeway on exp and nbf, for servers whose clocks differ
// by a little.
const clockSkew = 30 * time.Second

// errNoToken is the refusal of a stream request that carries no token.
var errNoToken = errors.New("no token: send Authorization: Bearer <jwt>, the sse_token cookie or ?access_token=<jwt>")

// verifier checks subscriber tokens: JWTs signed HS256 with the hub's
// secret or RS256, ES256 or EdDSA with the identity provider's keys (see
// key), whose sub is the user's uuid, and which may name a tenant and
// topics (see identify). It is safe for concurrent use.
type verifier struct {
	secret []byte // empty without --jwt-secret
	keys   *jwks  // nil without --jwks-url
	parser *jwt.Parser
	// opts are the parser's options, for expiredAt's parser.
	opts []jwt.ParserOption
	// tenantClaim is the claim that holds a token's tenant id
	// (--tenant-claim).
	tenantClaim string
}

// The claims of a subscriber token that name topics: arrays of strings.
const (
	// topicsClaim lists topics the stream follows without asking for them.
	topicsClaim = "topics"
	// allowedTopicsClaim lists the topic names and prefix patterns
	// ("board:*") the stream may ask for with ?topic=.
	allowedTopicsClaim = "allowed_topics"
)

// newVerifier returns a verifier for secret. issuer and audience, when not
// empty, must match the token's iss and aud; tenantClaim names the claim
// that holds a token's tenant id.
func newVerifier(secret, issuer, audience, tenantClaim string) *verifier {
	opts := []jwt.ParserOption{
		// Pinning the methods, and each to its own kind of key (see key),
		// is what refuses alg:none and algorithm confusion: an RS256 token
		// whose "public key" is our secret, an HS256 one whose "secret" is
		// a public key of the JWKS.
		jwt.WithValidMethods(acceptedAlgs),
		jwt.WithExpirationRequired(), // a token without exp would be valid for ever
		jwt.WithLeeway(clockSkew),
	}
	if issuer != "" {
		opts = append(opts, jwt.WithIssuer(issuer))
	}
	if audience != "" {
		opts = append(opts, jwt.WithAudience(audience))
	}
	return &verifier{secret: []byte(secret), parser: jwt.NewParser(opts...), opts: opts, tenantClaim: tenantClaim}
}

// identify returns whom a valid token's stream is for — its user (the
// canonical uuid string of sub), its tenant, the topics it follows by
// default, and when it expires (exp itself: the leeway is for accepting a
// token, and the hub ends the stream at Expires) — and the topics it may
// follow. A claim of the wrong type, a tenant id or topic name that
// ssekit.ValidName refuses, or a malformed pattern makes the whole token
// invalid: a backend that signs a bad claim is told so at once, rather
// than finding out when a topic is refused.
//
// A token that expired (beyond the leeway) but passes every other check
// is refused with an *expiredError, which wraps ssekit.ErrCredentialsExpired:
// its holder is to get a new one and resume, not to give up.
func (v *verifier) identify(token string) (ssekit.Identity, *grants, error) {
	var who ssekit.Identity
	var claims numericDateClaims
	_, err := v.parser.ParseWithClaims(token, &claims, v.key)
	var expired time.Time
	if errors.Is(err, jwt.ErrTokenExpired) {
		if expired = v.expiredAt(token, claims); !expired.IsZero() {
			err = nil // refused below, once the rest is checked
		}
	}
	if err != nil {
		return who, nil, fmt.Errorf("invalid token: %w", err)
	}
	u, err := uuid.Parse(claims.Subject)
	if err != nil || u == uuid.Nil {
		return who, nil, fmt.Errorf("invalid token: sub %s is not a user uuid", quoteInput(claims.Subject))
	}
	// Canonical form, so that publishing to "ABC…" reaches the stream of
	// a token that said "abc…".
	who.User = u.String()
	if who.Tenant, err = tenantClaim(claims.raw, v.tenantClaim); err != nil {
		return who, nil, fmt.Errorf("invalid token: %w", err)
	}
	if who.Topics, err = nameList(claims.raw, topicsClaim); err != nil {
		return who, nil, fmt.Errorf("invalid token: %w", err)
	}
	allowed, err := nameList(claims.raw, allowedTopicsClaim)
	if err != nil {
		return who, nil, fmt.Errorf("invalid token: %w", err)
	}
	g, err := newGrants(who.Topics, allowed)
	if err != nil {
		return who, nil, fmt.Errorf("invalid token: %w", err)
	}
	if !expired.IsZero() {
		return ssekit.Identity{}, nil, &expiredError{exp: expired}
	}
	// WithExpirationRequired: a token that got here has an exp.
	who.Expires = claims.ExpiresAt.Time
	return who, g, nil
}

// expiredAt returns the exp of a token that the parser refused as expired
// (claims being what it decoded), if the token was valid in every other
// respect just before then — signature, key, algorithm, iss, aud, nbf —
// and the zero time otherwise. It verifies the token again, on a clock set
// to that instant: only tokens that expired pay for it, and the parser's
// error, which joins every failed claim, need not be taken apart.
func (v *verifier) expiredAt(token string, claims numericDateClaims) time.Time {
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil {
		return time.Time{}
	}
	before := exp.Add(-time.Nanosecond)
	p := jwt.NewParser(append(slices.Clip(v.opts), jwt.WithTimeFunc(func() time.Time { return before }))...)
	if _, err := p.ParseWithClaims(token, &numericDateClaims{}, v.key); err != nil {
		return time.Time{}
	}
	return exp.Time
}

// expiredError refuses a token that has expired and is valid otherwise.
// It wraps ssekit.ErrCredentialsExpired, which the stream handler answers
// with 401 credentials_expired rather than unauthorized, and
// jwt.ErrTokenExpired.
type expiredError struct{ exp time.Time }

func (e *expiredError) Error() string {
	return "token expired at " + e.exp.UTC().Format(time.RFC3339) + ": get a new one and resume from the last event id"
}

func (e *expiredError) Unwrap() []error {
	return []error{ssekit.ErrCredentialsExpired, jwt.ErrTokenExpired}
}

// tenantClaim returns the tenant id in the claim name of raw: "" when the
// claim is absent, else a string that is a valid name.
func tenantClaim(raw map[string]json.RawMessage, name string) (string, error) {
	value, ok := raw[name]
	if !ok {
		return "", nil
	}
	var tenant string
	if string(value) == "null" || json.Unmarshal(value, &tenant) != nil {
		return "", fmt.Errorf("claim %s is not a string: want a tenant id, or no %s claim for a stream without a tenant", name, name)
	}
	if why := ssekit.ValidName(tenant); why != "" {
		return "", fmt.Errorf("claim %s: tenant id %s %s", name, quoteInput(tenant), why)
	}
	return tenant, nil
}

// nameList returns the strings of the claim name of raw, nil when the
// claim is absent. Each is checked by its user: the topics by newGrants,
// the patterns by parseGrant.
func nameList(raw map[string]json.RawMessage, name string) ([]string, error) {
	value, ok := raw[name]
	if !ok {
		return nil, nil
	}
	var list []string
	if string(value) == "null" || json.Unmarshal(value, &list) != nil {
		return nil, fmt.Errorf("claim %s is not an array of strings", name)
	}
	return list, nil
}

// numericDateClaims are the registered claims, with exp, nbf and iat held
// to RFC 7519: a NumericDate is a JSON number. golang-jwt also takes a
// numeric string ("exp":"9999999999"), which no conforming signer sends; a
// token that has one was made by hand or by a broken library, and is
// refused rather than guessed at. raw keeps every claim, for those whose
// name is a setting (the tenant's) or ssehub's own (the topics').
type numericDateClaims struct {
	jwt.RegisteredClaims
	raw map[string]json.RawMessage
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
	c.raw = raw
	return json.Unmarshal(b, &c.RegisteredClaims)
}

// mint signs a token for user, valid for ttl, in tenant ("" for none) and
// allowed the topic names and patterns of allowed. Only dev mode mints: in
// production the app's backend does, with the shared secret.
func (v *verifier) mint(user, tenant string, allowed []string, ttl time.Duration) (token string, exp time.Time, err error) {
	now := time.Now()
	// exp is a whole second, the token's own: a NumericDate has no more.
	exp = now.Add(ttl).Truncate(time.Second)
	claims := jwt.MapClaims{"sub": user, "iat": now.Unix(), "exp": exp.Unix()}
	if tenant != "" {
		claims[v.tenantClaim] = tenant
	}
	if allowed != nil {
		claims[allowedTopicsClaim] = allowed
	}
	token, err = jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(v.secret)
	return token, exp, err
}

// acceptedAlgs are the algorithms a subscriber token may be signed with:
// HS256 with the secret, and the JWK Set's.
var acceptedAlgs = append([]string{jwt.SigningMethodHS256.Alg()}, keyset.Algorithms...)

// key is identify's jwt.Keyfunc: the key t must be signed with, found by
// its alg, one of acceptedAlgs. The alg picks where the key comes from,
// never what it is: HS256 gets the secret and nothing else does; RS256,
// ES256 and EdDSA get the key of the JWKS that t's kid names, only if
// that key is for t's alg (jwks.key). A hub without a secret, or without
// a JWKS, refuses the algorithms that need it.
func (v *verifier) key(t *jwt.Token) (any, error) {
	if t.Method.Alg() == jwt.SigningMethodHS256.Alg() {
		if len(v.secret) == 0 {
			return nil, errors.New("HS256 is not accepted: this hub verifies tokens signed with its identity provider's keys (RS256, ES256, EdDSA)")
		}
		return v.secret, nil
	}
	if v.keys == nil {
		return nil, fmt.Errorf("%s is not accepted: this hub verifies HS256 tokens only", t.Method.Alg())
	}
	return v.keys.Keyfunc(t)
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

// authorize answers 401 (counted under endpoint, and logged) unless r
// carries the publish key as a bearer token, which every route of the
// publish key (publish, presence) asks for.
func (k keyChecker) authorize(w http.ResponseWriter, r *http.Request, endpoint string, m *serverMetrics, log *slog.Logger) bool {
	if key, ok := bearer(r.Header.Get("Authorization")); ok && k.ok(key) {
		return true
	}
	m.authFailures.WithLabelValues(endpoint).Inc()
	log.Info(endpoint+" refused", "reason", "wrong or missing publish key", "remote", r.RemoteAddr)
	w.Header().Set("WWW-Authenticate", `Bearer realm="ssehub publish"`)
	writeError(w, http.StatusUnauthorized, "unauthorized", "send the publish key as Authorization: Bearer <key>")
	return false
}

// randomSecret returns n random bytes, base64url-encoded, for dev mode.
func randomSecret(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (it panics instead)
	return base64.RawURLEncoding.EncodeToString(b)
}
