// Package jwks verifies tokens signed with an identity provider's rotating
// keys (RS256, ES256, EdDSA), from its JWK Set URL, for golang-jwt: the
// library equivalent of ssehub's --jwks-url, for an app that authenticates
// its own streams (HandlerOptions.Identify) with such tokens.
//
//	keys, err := jwks.Open(ctx, jwks.Options{URL: "https://idp.example.com/.well-known/jwks.json"})
//	…
//	defer keys.Close()
//	token, err := jwt.Parse(raw, keys.Keyfunc, jwt.WithValidMethods(jwks.Algorithms), jwt.WithExpirationRequired())
package jwks

import (
	"cmp"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// Options configures Open.
type Options struct {
	// URL is the JWK Set's: https, or http to a loopback host only (the
	// caller checks; ssehub does for --jwks-url).
	URL string
	// Refresh is how often the set is fetched again in the background.
	// Defaults to 15m.
	Refresh time.Duration
	// RefreshUnknownKID is the least time between two fetches for tokens
	// whose kid is not loaded. Defaults to 10s.
	RefreshUnknownKID time.Duration
	// Logger gets the fetches' failures. Defaults to slog.Default().
	Logger *slog.Logger
	// Transport fetches the set. Defaults to a clone of
	// http.DefaultTransport.
	Transport http.RoundTripper
}

// Algorithms are the algorithms Keyfunc verifies: give them to
// jwt.WithValidMethods.
var Algorithms = []string{jwt.SigningMethodRS256.Alg(), jwt.SigningMethodES256.Alg(), jwt.SigningMethodEdDSA.Alg()}

// jwksFetchTimeout bounds one fetch of the JWK Set: the one at start-up,
// each background refresh, and the one for an unknown kid, which the
// stream requests that asked for it wait for.
const jwksFetchTimeout = 10 * time.Second

// MaxSetBytes bounds the size of a JWK Set: a larger answer is a failed
// fetch. A provider's holds a few keys, a few KB; the bound keeps a URL
// that answers without end from filling the server's memory.
const MaxSetBytes = 1 << 20

// The triggers of a JWKS fetch: the label of its metrics and logs.
const (
	triggerStart      = "start"
	triggerInterval   = "interval"
	triggerUnknownKID = "unknown_kid"
)

// Set holds the identity provider's signing keys, from Options.URL, for
// a jwt.Keyfunc. github.com/MicahParks/jwkset fetches and
// caches them: once in Open, which fails if it cannot; every
// Options.Refresh on a goroutine of its own; and when a token names a kid
// that is not loaded, at most once per Options.RefreshUnknownKID (see
// refreshFor). A fetch that fails, or whose set does not parse, keeps the
// keys loaded; one that succeeds replaces them all, so that a key the
// provider removed verifies nothing after the next fetch.
// github.com/MicahParks/keyfunc/v3 turns a token's kid into its key,
// checking the key's own alg and use; Keyfunc then pins the algorithm to
// the key's type.
//
// The refresh goroutine sleeps between fetches: one GET of a few KB per
// Options.Refresh (15m). A token whose kid is loaded costs a scan of the
// few keys under jwkset's read lock, and no I/O; only an unknown kid may
// wait, at most jwksFetchTimeout, for a fetch.
//
// All methods are safe for concurrent use. Close stops the refresh
// goroutine and any fetch in flight.
type Set struct {
	url string
	log *slog.Logger

	// cache holds the keys of the last good fetch; reading it never
	// fetches. refetch reads through it and fetches the set again for a
	// kid it lacks: only refreshFor calls it, past its limit.
	cache   jwkset.Storage
	refetch jwkset.Storage
	kf      keyfunc.Keyfunc

	// unknownKID admits one fetch for unknown kids per
	// Options.RefreshUnknownKID, so that tokens with made-up kids cannot
	// make the hub hammer the provider. fetching is a semaphore: one such
	// fetch at a time, and the requests that come while it runs (a
	// rotation: every client's new token at once) wait for it and look
	// again, rather than being refused by the limit.
	unknownKID      *rate.Limiter
	unknownKIDEvery time.Duration
	fetching        chan struct{}

	// life ends with Close: it stops the refresh goroutine and cuts a
	// fetch in flight. transport is the fetches' own, whose idle
	// connections Close closes.
	life      context.Context
	cancel    context.CancelFunc
	transport http.RoundTripper
	// started is set once Open's fetch is done: a fetch before it is
	// the start-up's.
	started atomic.Bool

	refreshes, failures *prometheus.CounterVec
}

// triggerKey is the context key of the trigger of a fetch, when it is not
// the start-up's or the refresh goroutine's.
type triggerKey struct{}

// Open fetches the JWK Set of o.URL and returns its keys, kept fresh
// until Close. ctx bounds only this first fetch, which must succeed and
// bring at least one key that can verify tokens: a server that started
// without keys would refuse every such token, which ends a browser's
// EventSource for good, while its health check said all was well.
func Open(ctx context.Context, o Options) (*Set, error) {
	o.Refresh = cmp.Or(o.Refresh, 15*time.Minute)
	o.RefreshUnknownKID = cmp.Or(o.RefreshUnknownKID, 10*time.Second)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Transport == nil {
		o.Transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	life, cancel := context.WithCancel(context.Background())
	j := &Set{
		url:             o.URL,
		log:             o.Logger,
		unknownKID:      rate.NewLimiter(rate.Every(o.RefreshUnknownKID), 1),
		unknownKIDEvery: o.RefreshUnknownKID,
		fetching:        make(chan struct{}, 1),
		life:            life,
		cancel:          cancel,
		transport:       o.Transport,
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ssekit_jwks_refreshes_total",
			Help: "Fetches of the JWK Set, by trigger: start, interval (every refresh period), unknown_kid (a token named a key not loaded).",
		}, []string{"trigger"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ssekit_jwks_refresh_failures_total",
			Help: "Fetches of the JWK Set that failed (unreachable, not 200, not a valid JWK Set), by trigger; the keys loaded before are kept.",
		}, []string{"trigger"}),
	}
	for _, tr := range []string{triggerStart, triggerInterval, triggerUnknownKID} {
		j.refreshes.WithLabelValues(tr)
		j.failures.WithLabelValues(tr)
	}
	fail := func(err error) (*Set, error) {
		j.Close()
		return nil, fmt.Errorf("%s: %s", redact(j.url), oneLine(err))
	}
	client := &http.Client{
		Transport: roundTripper(j.fetch),
		// https is checked on --jwks-url; a redirect could lead anywhere.
		CheckRedirect: func(req *http.Request, _ []*http.Request) error {
			return fmt.Errorf("redirected to %s: give the JWK Set's own URL", redact(req.URL.String()))
		},
	}
	// A start-up cut short (SIGTERM) ends the first fetch; after it, only
	// close does.
	stop := context.AfterFunc(ctx, cancel)
	cache, err := jwkset.NewStorageFromHTTP(j.url, jwkset.HTTPClientStorageOptions{
		Client:              client,
		Ctx:                 life,
		HTTPTimeout:         jwksFetchTimeout,
		RefreshInterval:     o.Refresh,
		RefreshErrorHandler: j.fetchFailed,
	})
	j.started.Store(true)
	if !stop() {
		err = cmp.Or(err, ctx.Err())
	}
	if err != nil {
		return fail(err)
	}
	j.cache = cache
	j.refetch, err = jwkset.NewHTTPClient(jwkset.HTTPClientOptions{
		HTTPURLs: map[string]jwkset.Storage{j.url: cache},
		// refreshFor is the limit: the library fetches whenever asked.
		RefreshUnknownKID: rate.NewLimiter(rate.Inf, 1),
	})
	if err != nil {
		return fail(err)
	}
	j.kf, err = keyfunc.New(keyfunc.Options{
		Ctx:     life,
		Storage: cache,
		// A key for encryption ("use": "enc") never verifies a token.
		UseWhitelist: []jwkset.USE{jwkset.UseSig, ""},
	})
	if err != nil {
		return fail(err)
	}
	n := j.usableKeys()
	if n == 0 {
		return fail(errors.New("no key that can verify tokens: want signing keys with a kid, RSA (RS256), EC P-256 (ES256) or Ed25519 (EdDSA)"))
	}
	j.log.Info("jwks loaded", "url", redact(j.url), "keys", n, "refresh", o.Refresh.String())
	return j, nil
}

// Keyfunc is the jwt.Keyfunc of a token signed RS256, ES256 or EdDSA: the
// public key its kid names, if that key's algorithm is the token's. The
// algorithm is pinned by the key, never chosen by the token: the JWK's
// alg when it has one (checked by keyfunc), and always the one its type
// allows (keyAlg), so that a token cannot have an RSA key verify RS512 or
// PS256, nor a symmetric key of the set verify anything. A token without
// a kid is refused rather than tried against every key.
//
// A kid that is not loaded may wait for a fetch (refreshFor). A jwt.Keyfunc
// has no context, and the fetch is shared by every request that waits for
// it, so it is bounded by jwksFetchTimeout and Close, not by the request
// that happened to ask first.
func (j *Set) Keyfunc(t *jwt.Token) (any, error) {
	kid, ok := t.Header["kid"].(string)
	if !ok || kid == "" {
		return nil, errors.New("no kid in the header: a token signed with the identity provider's keys must name its key")
	}
	ctx, cancel := context.WithTimeout(j.life, jwksFetchTimeout)
	defer cancel()
	if !j.Loaded(ctx, kid) {
		if err := j.refreshFor(ctx, kid); err != nil {
			return nil, err
		}
	}
	key, err := j.kf.KeyfuncCtx(ctx)(t)
	if err != nil {
		return nil, fmt.Errorf("key %s: %s", quote(kid), oneLine(err))
	}
	if alg := keyAlg(key); alg != t.Method.Alg() {
		return nil, fmt.Errorf("key %s is for %s, not the token's %s", quote(kid), cmp.Or(alg, "no algorithm this hub accepts"), t.Method.Alg())
	}
	return key, nil
}

// refreshFor fetches the keys again for a token whose kid is not loaded,
// unless a fetch for an unknown kid ran less than
// Options.RefreshUnknownKID ago. It returns nil once kid is loaded.
func (j *Set) refreshFor(ctx context.Context, kid string) error {
	unknown := fmt.Errorf("unknown key %s: not among the identity provider's keys", quote(kid))
	select {
	case j.fetching <- struct{}{}:
	case <-ctx.Done():
		return unknown
	}
	defer func() { <-j.fetching }()
	// The fetch this one waited for may have brought it.
	if j.Loaded(ctx, kid) {
		return nil
	}
	if !j.unknownKID.Allow() {
		return fmt.Errorf("%w (they were fetched again less than %s ago)", unknown, j.unknownKIDEvery)
	}
	if _, err := j.refetch.KeyRead(context.WithValue(ctx, triggerKey{}, triggerUnknownKID), kid); err != nil {
		return unknown
	}
	return nil
}

// Loaded reports whether the key kid is loaded.
func (j *Set) Loaded(ctx context.Context, kid string) bool {
	_, err := j.cache.KeyRead(ctx, kid)
	return err == nil
}

// keyAlg is the one algorithm a key of the set verifies: RS256 for an RSA
// key, ES256 for an EC key on P-256, EdDSA for an Ed25519 key; "" for any
// other (another curve, a symmetric key), which verifies nothing.
func keyAlg(key any) string {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return jwt.SigningMethodRS256.Alg()
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() {
			return jwt.SigningMethodES256.Alg()
		}
	case ed25519.PublicKey:
		return jwt.SigningMethodEdDSA.Alg()
	}
	return ""
}

// usableKeys counts the keys of the cache that can verify a token: with a
// kid, for signing, of a type keyAlg knows, with no alg or that one.
func (j *Set) usableKeys() int {
	all, err := j.cache.KeyReadAll(j.life)
	if err != nil {
		return 0
	}
	n := 0
	for _, k := range all {
		m := k.Marshal()
		key := k.Key()
		if p, ok := key.(interface{ Public() crypto.PublicKey }); ok {
			key = p.Public()
		}
		alg := keyAlg(key)
		if m.KID != "" && alg != "" && (m.ALG == "" || string(m.ALG) == alg) && (m.USE == "" || m.USE == jwkset.UseSig) {
			n++
		}
	}
	return n
}

// fetch is the transport of the JWK Set's client: it counts each fetch
// under its trigger and bounds the answer to MaxSetBytes.
func (j *Set) fetch(r *http.Request) (*http.Response, error) {
	j.refreshes.WithLabelValues(j.trigger(r.Context())).Inc()
	resp, err := j.transport.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = &cappedBody{ReadCloser: resp.Body, left: MaxSetBytes + 1}
	return resp, nil
}

// fetchFailed is jwkset's RefreshErrorHandler: a background fetch or one
// for an unknown kid failed, and the keys loaded before are kept.
func (j *Set) fetchFailed(ctx context.Context, err error) {
	if j.life.Err() != nil {
		return // cut by close
	}
	tr := j.trigger(ctx)
	j.failures.WithLabelValues(tr).Inc()
	j.log.Warn("jwks fetch failed; keeping the keys loaded", "url", j.url, "trigger", tr, "err", oneLine(err))
}

// trigger returns what asked for the fetch of ctx.
func (j *Set) trigger(ctx context.Context) string {
	if tr, ok := ctx.Value(triggerKey{}).(string); ok {
		return tr
	}
	if !j.started.Load() {
		return triggerStart
	}
	return triggerInterval
}

// Collectors are the set's Prometheus metrics: its two counters, and the keys that
// can verify tokens, counted per scrape.
func (j *Set) Collectors() []prometheus.Collector {
	return []prometheus.Collector{
		j.refreshes,
		j.failures,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "ssekit_jwks_keys",
			Help: "Keys of the JWK Set loaded now that can verify tokens: signing keys with a kid, RSA, EC P-256 or Ed25519.",
		}, func() float64 { return float64(j.usableKeys()) }),
	}
}

// Close stops the refresh goroutine and any fetch in flight. It may be
// called on a nil *Set, and more than once.
func (j *Set) Close() {
	if j == nil {
		return
	}
	j.cancel()
	if t, ok := j.transport.(interface{ CloseIdleConnections() }); ok {
		t.CloseIdleConnections()
	}
}

// roundTripper makes a function an http.RoundTripper.
type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// errJWKSTooLarge fails the read of a JWK Set larger than MaxSetBytes.
var errJWKSTooLarge = fmt.Errorf("the JWK Set is larger than %d bytes", MaxSetBytes)

// cappedBody is a response body that fails once left bytes are read: left
// is one more than what may be read.
type cappedBody struct {
	io.ReadCloser
	left int64
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, errJWKSTooLarge
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	if b.left <= 0 {
		return n, errJWKSTooLarge
	}
	return n, err
}

// oneLine is err's message on one line: errors.Join, which the JWKS
// libraries use, puts each error on a line of its own.
func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}

// quote quotes a token's kid for an error, at most 64 bytes of it: a kid
// is the token holder's input.
func quote(s string) string {
	if len(s) > 64 {
		return strconv.Quote(s[:64]) + "…"
	}
	return strconv.Quote(s)
}

// redact is u without its password, if it has one.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparsable URL>"
	}
	return u.Redacted()
}
