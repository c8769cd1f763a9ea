package main

import (
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/ssekit/sse/ssekit"
)

// Rate limits bound how often one client may open a stream or publish, so
// that a reconnect loop, a scraper or a key-guessing script costs the hub a
// map lookup rather than a JWT check, a registration and a replay.
//
// A stream request over its limit is answered the way the hub answers every
// temporary refusal — 200 text/event-stream with a jittered retry field of
// at least the wait, a Retry-After header and no stream (ssekit.Hub.Refuse) —
// and not with the 429 the HTTP specification suggests: a browser's
// EventSource that gets any status but 200 closes for good and never
// reconnects, which would turn a moment's throttling into a dead page. A
// publish request over its limit gets a real 429 with Retry-After and a
// JSON error: publishers are backends that read status codes.

// maxLimiterKeys bounds the keys a limiterSet tracks at once. Past it, new
// keys share one bucket until idle keys expire, so that a flood of
// distinct addresses bounds memory and is still throttled.
const maxLimiterKeys = 100_000

// limiterSet is a token bucket per key (a client address or a user id).
// Memory is bounded without a goroutine: a key is forgotten once its
// bucket has been idle long enough to be full again — forgetting it then
// changes nothing — by a sweep that runs on access at most once per such
// period; and at most maxLimiterKeys keys are kept. It is safe for
// concurrent use.
type limiterSet struct {
	limit rate.Limit
	burst int
	idle  time.Duration // time for an empty bucket to fill up
	// maxKeys is maxLimiterKeys, a field so that tests can lower it.
	maxKeys int

	mu        sync.Mutex
	keys      map[string]*keyLimiter
	overflow  *rate.Limiter // shared by the keys past maxLimiterKeys
	lastSweep time.Time
}

type keyLimiter struct {
	lim  *rate.Limiter
	last time.Time // last request, for expiry
}

// newLimiterSet returns a set allowing perSecond requests a second per key
// with bursts of burst, or nil when perSecond is 0 (no limit).
func newLimiterSet(perSecond float64, burst int) *limiterSet {
	if perSecond <= 0 {
		return nil
	}
	fill := time.Duration(float64(burst) / perSecond * float64(time.Second))
	return &limiterSet{
		limit:    rate.Limit(perSecond),
		burst:    burst,
		idle:     max(fill, time.Second),
		maxKeys:  maxLimiterKeys,
		keys:     make(map[string]*keyLimiter),
		overflow: rate.NewLimiter(rate.Limit(perSecond), burst),
	}
}

// allow takes a token from key's bucket at now. When there is none it
// takes nothing and returns false with how long until there is one. A nil
// set allows everything.
func (s *limiterSet) allow(key string, now time.Time) (bool, time.Duration) {
	if s == nil {
		return true, 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Sub(s.lastSweep) >= s.idle {
		s.sweep(now)
	}
	lim := s.overflow
	if k, ok := s.keys[key]; ok {
		k.last = now
		lim = k.lim
	} else if len(s.keys) < s.maxKeys {
		lim = rate.NewLimiter(s.limit, s.burst)
		s.keys[key] = &keyLimiter{lim: lim, last: now}
	}
	r := lim.ReserveN(now, 1)
	if !r.OK() { // only when burst < 1, which the config refuses
		return false, s.idle
	}
	if wait := r.DelayFrom(now); wait > 0 {
		r.CancelAt(now) // a refused request must not use up a later token
		return false, wait
	}
	return true, 0
}

// sweep forgets the keys whose buckets are full again.
func (s *limiterSet) sweep(now time.Time) {
	for key, k := range s.keys {
		if now.Sub(k.last) >= s.idle {
			delete(s.keys, key)
		}
	}
	s.lastSweep = now
}

// size returns how many keys the set tracks.
func (s *limiterSet) size() int {
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.keys)
}

// clientIP finds the address a request comes from: the peer's, unless the
// peer is a trusted proxy, in which case X-Forwarded-For is read from the
// right, skipping trusted proxies, and the first untrusted hop is the
// client. Hops to its left were written by the client and prove nothing.
type clientIP struct {
	trusted []netip.Prefix
}

// key returns the rate-limit key of r's client: its address, or for IPv6
// its /64, which is what one subscriber line is usually given, so that an
// attacker cannot step through the addresses of its prefix.
func (c clientIP) key(r *http.Request) string {
	addr := c.addr(r)
	if !addr.IsValid() {
		return r.RemoteAddr // not TCP (a test recorder): still one key per peer
	}
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return p.String()
	}
	return addr.String()
}

// addr returns the client's address, the zero Addr when the peer's is not
// an IP address.
func (c clientIP) addr(r *http.Request) netip.Addr {
	peer := parseHop(r.RemoteAddr)
	if !peer.IsValid() || !c.isTrusted(peer) {
		return peer
	}
	// Several X-Forwarded-For headers are one list, in order (RFC 9110).
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		hop := parseHop(strings.TrimSpace(hops[i]))
		if !hop.IsValid() {
			// Our proxies write addresses: garbage came from the client
			// side, so the last trusted hop is the best we know.
			return client
		}
		client = hop
		if !c.isTrusted(hop) {
			return hop
		}
	}
	return client // every hop is a trusted proxy: the left-most one
}

func (c clientIP) isTrusted(a netip.Addr) bool {
	for _, p := range c.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseHop parses an address as RemoteAddr and proxies write it: bare, or
// with a port, IPv6 in brackets; an IPv4-mapped IPv6 address is IPv4.
func parseHop(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap()
	}
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")); err == nil {
		return a.Unmap().WithZone("")
	}
	return netip.Addr{}
}

// parseTrustedProxies parses a comma-separated list of CIDR prefixes or
// bare addresses.
func parseTrustedProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR prefix like 10.0.0.0/8 or an address", f)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// retryAfter formats a wait as a Retry-After value: whole seconds, rounded
// up, at least 1.
func retryAfter(wait time.Duration) string {
	return strconv.FormatInt(max(1, int64(math.Ceil(wait.Seconds()))), 10)
}

// limits are the server's rate limits; a nil set is no limit.
type limits struct {
	ip         clientIP
	streamIP   *limiterSet
	streamUser *limiterSet
	publishIP  *limiterSet
	now        func() time.Time
}

func newLimits(c config) *limits {
	return &limits{
		ip:         clientIP{trusted: c.TrustedProxies},
		streamIP:   newLimiterSet(c.StreamRateIP, c.StreamBurstIP),
		streamUser: newLimiterSet(c.StreamRateUser, c.StreamBurstUser),
		publishIP:  newLimiterSet(c.PublishRateIP, c.PublishBurstIP),
		now:        time.Now,
	}
}

// limitPublish answers 429 with Retry-After and a JSON error to a publish
// over its client's rate, before the key is even checked (so that guessing
// keys is throttled too), and passes the others to next.
func (a *app) limitPublish(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ok, wait := a.limits.publishIP.allow(a.limits.ip.key(r), a.limits.now()); !ok {
			a.metrics.rateLimited.WithLabelValues("publish").Inc()
			a.log.Debug("publish rate-limited", "remote", r.RemoteAddr, "wait", wait)
			w.Header().Set("Retry-After", retryAfter(wait))
			writeError(w, http.StatusTooManyRequests, "rate_limited", "too many publish requests from this address; retry after "+retryAfter(wait)+"s")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// streamHandler serves GET <prefix>/stream: ssekit.Hub.Handler, whose
// Identify applies the rate limits around the token's check — per client
// address before it, per user after — and sends a stream over either away
// with a retry hint (see the comment at the top of this file). The hub
// then checks the topics before the stream starts: one the token does not
// allow is a 403, a bad name or too many a 400, each with a JSON body
// naming it.
func (a *app) streamHandler() http.Handler {
	stream := a.hub.Handler(ssekit.HandlerOptions{Identify: a.identifyStream})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stream.ServeHTTP(w, withGrantSlot(r))
	})
}

// identifyStream is the stream's HandlerOptions.Identify: the rate limits
// and the token (identify), whose grants it leaves in r's slot for
// authorizeTopic. An expired token's error wraps ErrCredentialsExpired, so
// that its holder gets a new one and resumes, as after a session_ended.
func (a *app) identifyStream(r *http.Request) (ssekit.Identity, error) {
	now := a.limits.now()
	if ok, wait := a.limits.streamIP.allow(a.limits.ip.key(r), now); !ok {
		return ssekit.Identity{}, a.refuseStream(r, "ip", wait)
	}
	who, g, err := a.identify(r)
	if err != nil {
		return ssekit.Identity{}, err
	}
	if ok, wait := a.limits.streamUser.allow(who.User, now); !ok {
		return ssekit.Identity{}, a.refuseStream(r, "user", wait)
	}
	setGrants(r, g)
	return who, nil
}

// refuseStream counts and logs a stream turned away for a while, and
// returns the error that has the hub send it away.
func (a *app) refuseStream(r *http.Request, by string, wait time.Duration) error {
	a.metrics.rateLimited.WithLabelValues("stream").Inc()
	a.log.Debug("stream rate-limited", "by", by, "remote", r.RemoteAddr, "wait", wait)
	return &ssekit.TryLater{After: wait}
}
