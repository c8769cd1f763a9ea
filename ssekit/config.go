package ssekit

import (
	"fmt"
	"log/slog"
	"time"
)

// OverflowPolicy says what the hub does when a connection's buffer is full.
type OverflowPolicy int

const (
	// OverflowDisconnect ends the stream of a client that cannot keep up.
	// Its EventSource reconnects with Last-Event-ID and the broker replays
	// what it missed, so nothing is lost. The default.
	OverflowDisconnect OverflowPolicy = iota
	// OverflowDrop skips the event for that client and keeps the stream
	// open: the client silently misses it. Counted in Stats.Dropped.
	OverflowDrop
)

// Config tunes a Hub. The zero value of every field means its default;
// DefaultConfig spells the defaults out.
//
// The History fields size the in-memory broker the hub makes when Broker
// is nil, which is what a single-node app runs: one Config tunes the whole
// hub, replay window included, as the seed's users expect. A broker given
// in Broker has its own options (redisbroker.Options), and they are
// ignored.
type Config struct {
	// BufferSize is how many events may wait for one connection's writer
	// before the OverflowPolicy applies. Defaults to 10.
	BufferSize int

	// ClientTimeout is how long one write to a connection may stall before
	// the connection is closed, so that a peer that stopped reading cannot
	// pin a goroutine. Defaults to 5m.
	ClientTimeout time.Duration

	// HeartbeatInterval is how long a stream may stay silent before the hub
	// writes a heartbeat event. Defaults to 30s. Negative disables.
	HeartbeatInterval time.Duration

	// MaxClients caps concurrent connections on this hub; the next one gets
	// a retry hint and its stream ends before it is registered. Defaults to
	// 1000. Negative means unlimited.
	MaxClients int

	// MaxClientsPerUser caps one user's concurrent connections; a new one
	// closes that user's oldest. Defaults to 5. Negative means unlimited.
	MaxClientsPerUser int

	// HistorySize bounds how many events the in-memory broker keeps for
	// replay in each channel: every user's own, and the broadcast one.
	// Defaults to 1000. Ignored when Broker is set.
	HistorySize int

	// HistoryAge bounds how old a kept event may be. Defaults to 10m.
	// Ignored when Broker is set, except that it also bounds how long the
	// hub keeps a cursor for a broker without a CursorStore.
	HistoryAge time.Duration

	// HistoryBytes bounds everything the in-memory broker keeps for its
	// history, in all channels together; over it, the oldest events go
	// first, and a client that needed one gets a resync. Defaults to 64
	// MiB. Negative means unbounded. Ignored when Broker is set.
	HistoryBytes int64

	// IdempotencyWindow is how long the in-memory broker remembers a
	// publish's IdempotencyKey: a repeat within it is answered with the
	// first publish's id and sends nothing. Defaults to 10m; at most 24h
	// (MaxKeyWindow). Ignored when Broker is set.
	IdempotencyWindow time.Duration

	// MaxIdempotencyKeys bounds how many keys the in-memory broker
	// remembers (about 150 bytes each); over it, the oldest is forgotten
	// first. Defaults to 100,000. Negative means unbounded. Ignored when
	// Broker is set.
	MaxIdempotencyKeys int

	// MaxEventSize bounds an event's encoded type and data, in bytes; a
	// larger send fails with ErrEventTooLarge. Defaults to 64 KiB.
	MaxEventSize int

	// MaxRecipients bounds how many users, tenants, topics and clients
	// one send may address; a larger one fails with ErrTooManyRecipients.
	// Each addressee costs a routing step, and each channel a place in the
	// history. Defaults to 1000. Negative means unlimited.
	MaxRecipients int

	// MaxTopics bounds how many topics one stream may follow: the ones its
	// request asks for and its Identity's. A request for more is refused
	// with 400 before its stream starts. Defaults to 16. Negative means
	// unlimited.
	MaxTopics int

	// AuthorizeTopic decides, before a stream starts, whether it may
	// follow each topic it asks for; see TopicAuthorizer. Nil allows no
	// topic: a request that names one is refused with 403. AllowAllTopics
	// makes every topic public.
	AuthorizeTopic TopicAuthorizer

	// CheckSession re-checks a stream's session while it is open: before
	// it starts (after authentication), every SessionCheckInterval, and
	// for one user's streams on every node when the app calls
	// Hub.RecheckSessions ("log out everywhere"). An error wrapping
	// ErrSessionRevoked ends the stream with a TypeSessionEnded event
	// (reason "revoked"), or refuses the request with 401
	// session_revoked; any other error is a failure to decide, which
	// keeps an open stream (and is logged) and sends a new one away to
	// retry. It runs on a goroutine of its own, never under a hub lock.
	// Nil: sessions are not checked.
	CheckSession SessionChecker

	// SessionCheckInterval is how often CheckSession runs for each open
	// stream (each stream draws 80–100 % of it). Zero: only before the
	// stream starts and on RecheckSessions.
	SessionCheckInterval time.Duration

	// Overflow is what happens when a connection's buffer is full.
	// Defaults to OverflowDisconnect.
	Overflow OverflowPolicy

	// MaxStreamAge ends a stream once it is this old (each stream draws its
	// own age between 80 % and 100 % of it, so a fleet of clients does not
	// reconnect at once); the client resumes where it was. Defaults to 1h.
	// Negative disables.
	MaxStreamAge time.Duration

	// WriteDelay bounds how long a queued event may wait for a busy
	// stream to be woken. A stream is busy when it wrote twice within
	// about WriteDelay, the last time less than WriteDelay ago, or its
	// last write carried more than one event: its events
	// wait until its last write is WriteDelay old, so that it gathers what
	// arrives meanwhile into one write — the write system call is most of
	// what a delivery costs — and a publish only appends to queues. An
	// event for any other stream (one event to one user now and then)
	// wakes it at once, however busy the hub is, and so does a queue half
	// full. Defaults to 25ms. Negative disables: every event wakes its
	// stream at once.
	WriteDelay time.Duration

	// DetachStreams takes each HTTP/1.x stream over from net/http: the
	// hub hijacks the connection, writes the response head itself (the
	// body then ends with the connection, as HTTP/1.x allows, instead of
	// being chunked) and serves the stream itself, so that ServeStream
	// returns at once. What net/http keeps per request — its read and
	// write buffers, the handler's stack — is freed, and on Linux an idle
	// stream holds no goroutine either (the hub watches the sockets for
	// hang-ups with one epoll set, and a stream's writes run on a
	// goroutine started when it has something to do, or, for an event to
	// a quiet stream, on the publisher's goroutine): an idle stream
	// costs a few KiB instead of tens (docs/PERFORMANCE.md). Middleware
	// then sees the handler return at once, and http.Server.Shutdown no
	// longer waits for the streams: close the hub, which ends and waits
	// for them. HTTP/2 streams and ResponseWriters that cannot be hijacked
	// are served as usual. Off by default; cmd/ssehub turns it on.
	DetachStreams bool

	// RetryInterval is the reconnection delay the hub asks browsers for (the
	// retry field). Streams refused for load get a jittered 1–2× of it.
	// Defaults to 3s.
	RetryInterval time.Duration

	// Broker carries events between publishers and hubs and keeps their
	// history. Defaults to an in-memory broker sized by HistorySize and
	// HistoryAge, which the hub closes with itself; a Broker given here is
	// the caller's to close, after the hub.
	Broker Broker

	// OnConnect is called once for each stream the hub registers, on the
	// request's goroutine before the stream's first event is written (and
	// before a detached stream is handed over), under no lock of the hub:
	// a slow hook delays only its own stream, and a panic in it is
	// logged, not fatal. A stream refused before it was registered (over
	// MaxClients, a bad topic, shutting down) calls neither hook. Nil:
	// none.
	OnConnect func(ConnInfo)

	// OnDisconnect is called once for each stream OnConnect was called
	// for, after it ended, whatever ended it (ConnInfo.Reason), on the
	// goroutine that served it (the request's, or the hub's for a
	// detached stream), under the same terms. Shutdown waits for it.
	// Nil: none.
	OnDisconnect func(ConnInfo)

	// OnPresence is told when a user comes online (its first stream on
	// any node) and goes offline (no stream on any node for
	// PresenceDebounce), once per change across the cluster: with a
	// PresenceStore broker, on the one node that saw the change (see
	// redisbroker.Broker.StartPresence), else on this hub. It must not
	// block (hand the change to a queue): a user's changes are reported
	// in order, one at a time. Changes pending when the hub shuts down
	// are not reported. Nil: none.
	OnPresence func(PresenceChange)

	// PresenceDebounce is how long a user whose last stream ended must
	// stay without one before OnPresence reports it offline, so that a
	// page reload or a reconnect is no change. Defaults to 5s. Negative
	// means none.
	PresenceDebounce time.Duration

	// Logger receives the hub's rare warnings (a failing broker, a replay
	// error). Defaults to slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns the defaults: BufferSize 10, ClientTimeout 5m,
// HeartbeatInterval 30s, MaxClients 1000, MaxClientsPerUser 5, and the
// rest as documented on each field.
func DefaultConfig() Config {
	return Config{
		BufferSize:         10,
		ClientTimeout:      5 * time.Minute,
		HeartbeatInterval:  30 * time.Second,
		MaxClients:         1000,
		MaxClientsPerUser:  5,
		HistorySize:        1000,
		HistoryAge:         10 * time.Minute,
		HistoryBytes:       64 << 20,
		IdempotencyWindow:  DefaultKeyWindow,
		MaxIdempotencyKeys: DefaultMaxKeys,
		MaxEventSize:       64 << 10,
		MaxRecipients:      1000,
		MaxTopics:          16,
		MaxStreamAge:       time.Hour,
		WriteDelay:         25 * time.Millisecond,
		RetryInterval:      3 * time.Second,
		PresenceDebounce:   defaultPresenceDebounce,
	}
}

// withDefaults fills the zero fields and checks the rest.
func (c Config) withDefaults() (Config, error) {
	d := DefaultConfig()
	orDefault(&c.BufferSize, d.BufferSize)
	orDefault(&c.ClientTimeout, d.ClientTimeout)
	orDefault(&c.HeartbeatInterval, d.HeartbeatInterval)
	orDefault(&c.MaxClients, d.MaxClients)
	orDefault(&c.MaxClientsPerUser, d.MaxClientsPerUser)
	orDefault(&c.HistorySize, d.HistorySize)
	orDefault(&c.HistoryAge, d.HistoryAge)
	orDefault(&c.HistoryBytes, d.HistoryBytes)
	orDefault(&c.IdempotencyWindow, d.IdempotencyWindow)
	orDefault(&c.MaxIdempotencyKeys, d.MaxIdempotencyKeys)
	orDefault(&c.MaxEventSize, d.MaxEventSize)
	orDefault(&c.MaxRecipients, d.MaxRecipients)
	orDefault(&c.MaxTopics, d.MaxTopics)
	orDefault(&c.MaxStreamAge, d.MaxStreamAge)
	orDefault(&c.RetryInterval, d.RetryInterval)
	orDefault(&c.WriteDelay, d.WriteDelay)
	orDefault(&c.PresenceDebounce, d.PresenceDebounce)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	switch {
	case c.BufferSize < 0:
		return c, fmt.Errorf("%w: BufferSize %d is negative", ErrInvalidConfig, c.BufferSize)
	case c.ClientTimeout < 0:
		return c, fmt.Errorf("%w: ClientTimeout %v is negative", ErrInvalidConfig, c.ClientTimeout)
	case c.SessionCheckInterval < 0:
		return c, fmt.Errorf("%w: SessionCheckInterval %v is negative", ErrInvalidConfig, c.SessionCheckInterval)
	case c.HistorySize < 0:
		return c, fmt.Errorf("%w: HistorySize %d is negative", ErrInvalidConfig, c.HistorySize)
	case c.IdempotencyWindow < 0 || c.IdempotencyWindow > MaxKeyWindow:
		return c, fmt.Errorf("%w: IdempotencyWindow %v is outside 0 to %v", ErrInvalidConfig, c.IdempotencyWindow, MaxKeyWindow)
	case c.HistoryAge < 0:
		return c, fmt.Errorf("%w: HistoryAge %v is negative", ErrInvalidConfig, c.HistoryAge)
	case c.MaxEventSize < 0:
		return c, fmt.Errorf("%w: MaxEventSize %d is negative", ErrInvalidConfig, c.MaxEventSize)
	case c.RetryInterval < 0:
		return c, fmt.Errorf("%w: RetryInterval %v is negative", ErrInvalidConfig, c.RetryInterval)
	case c.Overflow != OverflowDisconnect && c.Overflow != OverflowDrop:
		return c, fmt.Errorf("%w: unknown Overflow policy %d", ErrInvalidConfig, c.Overflow)
	}
	return c, nil
}

// orDefault sets *v to d when *v is its zero value.
func orDefault[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}
