// Package redisbroker is the ssekit.Broker of a cluster: hubs on any number of
// nodes that share one Redis, or one Redis Cluster, and one Prefix behave
// as one hub.
//
// Each channel (a user's, everyone's) is its own Redis stream, with its own
// history, in its own cluster hash slot, so channels spread over the
// cluster's masters. Publish appends an event to each of its channels with
// one small script per channel, which also announces it on the channel's
// shard Pub/Sub channel (SPUBLISH, Redis ≥ 7), in the same atomic step.
// Each node subscribes (SSUBSCRIBE) only to the channels its connections
// follow, plus everyone's, so that a node reads its own users' events and
// the broadcasts, not the whole cluster's traffic; a channel stays
// subscribed for Linger after its last connection leaves, for the client
// that reconnects at once. Read pages through a channel's stream (XRANGE),
// so a client may resume on any node, and a resume reads only its own
// channels.
//
// Each entry also records the position of the entry before it in its
// channel. That chain is what makes ssekit.ErrUnknownID exact, which Redis
// alone cannot: trimming leaves no trace of where it stopped, so only the
// chain tells "nothing after this position was lost" from "something
// was". A subscription checks the same chain on every event it hears: an
// event whose predecessor it did not deliver (Pub/Sub lost it while a
// connection was down, or go-redis resubscribed behind its back) makes it
// read the missing ones from the stream first, and announce a resync for
// that channel if they were trimmed meanwhile, never skip silently. After
// a connection error it also reads each of its channels' streams from the
// last event it delivered.
//
// Each channel's copy of a publish is stored and delivered apart, so a
// connection that follows several channels of one publish (its user's and
// a topic's) hears it once per channel. The copy's entry and announcement
// name the publish's other channels that such a connection may follow
// (ssekit.Message.Also), and the hub writes the event once.
//
// A channel's stream expires MaxAge after its last event; its last
// position is remembered for PositionTTL, so that a client that saw a
// quiet channel's last event resumes without a resync. The script also
// remembers each publish's id for DedupeWindow, so that a send the Redis
// client retried after a lost reply is stored once, not twice.
//
// A publish with an idempotency key (ssekit.Message.Key) is recorded under
// that key for KeyWindow, in the key's own slot, before its appends; a
// repeat, from any node, appends under the recorded publish id, which
// stores nothing where the first publish is already stored and completes
// it where it is not, and answers ssekit.ErrReplayed (see Publish).
//
// The broker uses a client the caller opened (a *redis.Client for one
// server, a *redis.ClusterClient for a Redis Cluster) and never dials by
// itself; the caller closes the client after the broker. Presence
// (StartPresence, UsersOnline, ClusterStatus) tells who is online on any
// node and lets the nodes see each other (presence.go).
//
// Keys; a channel's share its hash slot ("{Prefix:channel}"):
//
//	{Prefix:channel}             the channel's events (a stream)
//	{Prefix:channel}:last        its newest position, for PositionTTL
//	{Prefix:channel}:pub:<id>    a publish's position, for DedupeWindow (KeyWindow if keyed)
//	{Prefix:channel}:live        shard Pub/Sub channel of its new events
//	{Prefix}:clients             shard Pub/Sub channel of events to clients
//	{Prefix:cursor:<key>}        a connection's position (ssekit.CursorStore)
//	{Prefix:key:<sha256>}:idem   a keyed publish's id and digest, for KeyWindow
//	{Prefix:user:<id>}:on         who holds the user online: node → lease expiry (presence.go)
//	{Prefix:user:<id>}:st         the user's reported presence: online, left, tenant
//	{Prefix:node:<name>}:users    the users a node answers for (:sweeping while a survivor finishes them)
//	{Prefix:node:<name>}:status   the node's counts, for ClusterStatus
//	{Prefix}:nodes, {Prefix}:online   node → lease expiry; users reported online
package redisbroker

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ssekit/sse/ssekit"
)

// Options configures a Broker. The zero value of every field means its
// default; New copies the options.
type Options struct {
	// Prefix names the broker's keys. Hubs share events when they share a
	// Redis and a Prefix. Defaults to "ssekit".
	Prefix string

	// MaxLen bounds each channel's history by count. Trimming is
	// approximate (whole stream nodes, so Redis may keep up to ~100 more),
	// but the replay's ssekit.ErrUnknownID is exact. Defaults to 1000, as the
	// hub's in-memory history. Negative: no bound.
	MaxLen int64

	// MaxAge bounds each channel's history by age, on Redis's clock,
	// approximately as MaxLen; a channel's whole stream expires MaxAge
	// after its last event. Defaults to 10m, as the hub's in-memory
	// history. Negative: no bound.
	MaxAge time.Duration

	// PositionTTL is how long a channel's newest position is remembered
	// after its last event, so that a client that had seen it resumes
	// without a resync after the events themselves expired. Defaults to
	// 24h; at least MaxAge. Ignored when MaxAge is negative (positions are
	// then kept as long as the events).
	PositionTTL time.Duration

	// Linger is how long a node stays subscribed to a channel after its
	// last connection following it left, so that a client reconnecting at
	// once does not pay for a new subscription. Defaults to 30s.
	Linger time.Duration

	// ReadCount is the most entries one read of a subscription's gap fill
	// returns. Defaults to 512.
	ReadCount int64

	// WaitReplicas is how many replicas must hold an event before Publish
	// reports it stored (WAIT after the append, on the channel's master).
	// Redis replicates asynchronously: with 0, an event a master accepted
	// and a crash lost before any replica had it is gone, and a node that
	// never heard it cannot tell; with 1 (and a replica per master), a
	// replica promoted by a failover has every event Publish reported.
	// Defaults to 0. A publish whose replicas do not answer within
	// WaitTimeout fails (the event may still be delivered: a retry is a
	// second event).
	WaitReplicas int

	// WaitTimeout bounds the wait for WaitReplicas. Defaults to 1s.
	WaitTimeout time.Duration

	// DedupeWindow is how long a publish is remembered so that a send the
	// Redis client retries (after a timeout that lost the reply) is stored
	// once. It must exceed the client's whole retry span. Defaults to 1m.
	DedupeWindow time.Duration

	// KeyWindow is how long a publish's idempotency key (ssekit.Message.Key)
	// is remembered: a repeat within it is answered with the first
	// publish's id and stores nothing. It costs Redis memory for as long:
	// each keyed publish keeps a record of its key (about 200 bytes), and
	// its dedupe keys (one per channel, about 170 bytes each) for
	// KeyWindow instead of DedupeWindow, so that a repeat finds them; a
	// keyed publish to 1,000 users keeps about 170 KB until its window
	// ends. Defaults to 10m (ssekit.DefaultKeyWindow); at most 24h
	// (ssekit.MaxKeyWindow).
	KeyWindow time.Duration

	// Node names this process in the cluster status. Defaults to
	// "<hostname>-<pid>-<random>".
	Node string

	// PresenceInterval is how often StartPresence renews the presence of
	// this node's users and its counts, and looks for dead nodes whose
	// users to finish. Defaults to 5s.
	PresenceInterval time.Duration

	// PresenceTTL is how long a node's leases on its users, and its
	// counts, outlive its last refresh: a node that died has its users
	// offline after it, reported offline (and the node out of
	// ClusterStatus) within PresenceTTL + PresenceInterval. Defaults to
	// three PresenceIntervals.
	PresenceTTL time.Duration

	// Logger receives the broker's warnings: a subscription that lost
	// Redis, a break in a channel's history. Defaults to slog.Default().
	Logger *slog.Logger
}

func (o Options) withDefaults() (Options, error) {
	if o.Prefix == "" {
		o.Prefix = "ssekit"
	}
	if o.MaxLen == 0 {
		o.MaxLen = 1000
	}
	if o.MaxAge == 0 {
		o.MaxAge = 10 * time.Minute
	}
	if o.PositionTTL == 0 {
		o.PositionTTL = 24 * time.Hour
	}
	if o.Linger == 0 {
		o.Linger = 30 * time.Second
	}
	if o.ReadCount == 0 {
		o.ReadCount = 512
	}
	if o.WaitTimeout == 0 {
		o.WaitTimeout = time.Second
	}
	if o.DedupeWindow == 0 {
		o.DedupeWindow = time.Minute
	}
	if o.KeyWindow == 0 {
		o.KeyWindow = ssekit.DefaultKeyWindow
	}
	if o.Node == "" {
		host, _ := os.Hostname()
		o.Node = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), strconv.FormatUint(randomUint64()%(1<<24), 36))
	}
	if o.PresenceInterval == 0 {
		o.PresenceInterval = 5 * time.Second
	}
	if o.PresenceTTL == 0 {
		o.PresenceTTL = 3 * o.PresenceInterval
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	switch {
	case strings.ContainsAny(o.Prefix, "{}"):
		return o, fmt.Errorf("redisbroker: Prefix %q must not contain braces: it is part of the keys' hash tags", o.Prefix)
	case strings.ContainsAny(o.Node, " \r\n"):
		return o, fmt.Errorf("redisbroker: Node %q must not contain white space", o.Node)
	case o.ReadCount < 0:
		return o, fmt.Errorf("redisbroker: ReadCount %d is negative", o.ReadCount)
	case o.Linger < 0:
		return o, fmt.Errorf("redisbroker: Linger %v is negative", o.Linger)
	case o.WaitReplicas < 0 || o.WaitTimeout < 0:
		return o, fmt.Errorf("redisbroker: WaitReplicas %d or WaitTimeout %v is negative", o.WaitReplicas, o.WaitTimeout)
	case o.DedupeWindow < time.Millisecond:
		return o, fmt.Errorf("redisbroker: DedupeWindow %v is under 1ms", o.DedupeWindow)
	case o.KeyWindow < time.Millisecond || o.KeyWindow > ssekit.MaxKeyWindow:
		return o, fmt.Errorf("redisbroker: KeyWindow %v is outside 1ms to %v", o.KeyWindow, ssekit.MaxKeyWindow)
	case o.MaxAge > 0 && o.PositionTTL < o.MaxAge:
		return o, fmt.Errorf("redisbroker: PositionTTL %v is shorter than MaxAge %v", o.PositionTTL, o.MaxAge)
	case o.PresenceInterval < 0:
		return o, fmt.Errorf("redisbroker: PresenceInterval %v is negative", o.PresenceInterval)
	case o.PresenceTTL <= o.PresenceInterval:
		return o, fmt.Errorf("redisbroker: PresenceTTL %v must exceed PresenceInterval %v", o.PresenceTTL, o.PresenceInterval)
	}
	return o, nil
}

// Broker is an ssekit.Broker on Redis streams, one per channel. Each
// Subscribe starts one goroutine, plus one per Redis master its channels
// live on; StartPresence starts one more. Close stops them all and waits
// for them. All methods are safe for concurrent use.
type Broker struct {
	rdb  redis.UniversalClient
	opts Options
	log  *slog.Logger

	life context.Context // done once Close is called
	end  context.CancelFunc
	mu   sync.Mutex // orders wg.Add against Close's Wait
	wg   sync.WaitGroup

	// presence is StartPresence's reporter once it was called (set under
	// mu, read by UserChanged without it); nil before.
	presence atomic.Pointer[presence]

	// ops counts the Redis commands the broker sent, by kind, for the
	// measurements of docs/cluster.md.
	ops opCounters
}

var (
	_ ssekit.Broker      = (*Broker)(nil)
	_ ssekit.CursorStore = (*Broker)(nil)
)

// New returns a broker on rdb, which the caller opened and closes after
// the broker's Close. It does not talk to Redis: use Ping to check it.
func New(rdb redis.UniversalClient, opts Options) (*Broker, error) {
	if rdb == nil {
		return nil, errors.New("redisbroker: nil Redis client")
	}
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	b := &Broker{rdb: rdb, opts: opts, log: opts.Logger}
	b.life, b.end = context.WithCancel(context.Background())
	return b, nil
}

// channelKey returns the key of a channel's stream; its other keys add a
// suffix, so that all of them share its hash slot.
func (b *Broker) channelKey(channel string) string {
	return "{" + b.opts.Prefix + ":" + channel + "}"
}

// key returns one of the broker's keys outside any channel, in the
// prefix's own slot.
func (b *Broker) key(name string) string { return "{" + b.opts.Prefix + "}:" + name }

// StreamKey returns the name of the Redis stream that holds a channel's
// events.
func (b *Broker) StreamKey(channel string) string { return b.channelKey(channel) }

// Node returns the name this broker reports its presence under.
func (b *Broker) Node() string { return b.opts.Node }

func (b *Broker) isClosed() bool { return b.life.Err() != nil }

// Close stops every subscription and the presence refresh, and waits for
// their goroutines. Later calls fail with ssekit.ErrBrokerClosed. It does not
// close the Redis client, which belongs to the caller.
func (b *Broker) Close() error {
	b.mu.Lock()
	b.end()
	b.mu.Unlock()
	b.wg.Wait()
	return nil
}

// goWithContext runs fn on a goroutine that Close waits for, with a ctx
// that is done when ctx is or when the broker closes.
func (b *Broker) goWithContext(ctx context.Context, fn func(ctx context.Context)) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.isClosed() {
		return ssekit.ErrBrokerClosed
	}
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(b.life, cancel)
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		defer stop()
		defer cancel()
		fn(ctx)
	}()
	return nil
}

// Ping checks that Redis answers.
func (b *Broker) Ping(ctx context.Context) error {
	if err := b.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redisbroker: ping: %w", err)
	}
	return nil
}

// Entry fields.
const (
	fieldPrev = "prev"
	fieldPub  = "pub" // the publish's id
	fieldType = "type"
	fieldData = "data"
	fieldAlso = "also" // encodeNames(Message.Also); only when not empty
)

// Head returns the channel's newest position, "0-0" when it has none (or
// had none within PositionTTL).
func (b *Broker) Head(ctx context.Context, channel string) (string, error) {
	if b.isClosed() {
		return "", ssekit.ErrBrokerClosed
	}
	k := b.channelKey(channel)
	var last *redis.StringCmd
	var top *redis.XMessageSliceCmd
	b.ops.add(opHead, 1)
	_, err := b.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		last = p.Get(ctx, k+":last")
		top = p.XRevRangeN(ctx, k, "+", "-", 1)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return "", fmt.Errorf("redisbroker: head of %s: %w", channel, err)
	}
	return headOf(last, top), nil
}

// headOf returns the newest position from a channel's remembered one and
// its stream's newest entry, whichever is later.
func headOf(last *redis.StringCmd, top *redis.XMessageSliceCmd) string {
	head := "0-0"
	if v, err := last.Result(); err == nil {
		head = v
	}
	if t := top.Val(); len(t) > 0 && ssekit.CompareIDs(t[0].ID, head) > 0 {
		head = t[0].ID
	}
	return head
}

// Read returns at most limit of channel's entries after the position
// after. It returns ssekit.ErrUnknownID when after is malformed, was never
// issued, or entries after it were trimmed.
func (b *Broker) Read(ctx context.Context, channel, after string, limit int) ([]ssekit.Message, error) {
	if b.isClosed() {
		return nil, ssekit.ErrBrokerClosed
	}
	if !validStreamID(after) {
		return nil, ssekit.ErrUnknownID
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// The head and the page come from one transaction, so that "nothing
	// after it" is never mistaken for "it is unknown" while publishers
	// append.
	k := b.channelKey(channel)
	var last *redis.StringCmd
	var top, page *redis.XMessageSliceCmd
	b.ops.add(opRead, 1)
	_, err := b.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		last = p.Get(ctx, k+":last")
		top = p.XRevRangeN(ctx, k, "+", "-", 1)
		page = p.XRangeN(ctx, k, "("+after, "+", int64(max(limit, 1)))
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("redisbroker: read %s after %s: %w", channel, after, err)
	}
	entries := page.Val()
	if len(entries) == 0 {
		if head := headOf(last, top); ssekit.CompareIDs(after, head) != 0 {
			return nil, ssekit.ErrUnknownID // in the future, or everything after it is gone
		}
		return nil, nil
	}
	if !chained(after, entries) {
		return nil, ssekit.ErrUnknownID
	}
	out := make([]ssekit.Message, len(entries))
	for i, xm := range entries {
		out[i] = decode(channel, xm)
	}
	b.withPositions(ctx, channel, out)
	return out, nil
}

// chained reports whether entries follow after without a gap: each entry
// records the position of the one before it.
func chained(after string, entries []redis.XMessage) bool {
	for _, xm := range entries {
		prev, _ := xm.Values[fieldPrev].(string)
		if prev != after && ssekit.CompareIDs(prev, after) != 0 {
			return false
		}
		after = xm.ID
	}
	return true
}

// decode turns a stream entry of channel into a message.
func decode(channel string, xm redis.XMessage) ssekit.Message {
	m := ssekit.Message{Channels: []string{channel}, Positions: []string{xm.ID}, Time: idTime(xm.ID)}
	m.ID, _ = xm.Values[fieldPub].(string)
	m.Type, _ = xm.Values[fieldType].(string)
	if d, ok := xm.Values[fieldData].(string); ok {
		m.Data = []byte(d)
	}
	if a, ok := xm.Values[fieldAlso].(string); ok {
		// Only the publish script writes entries; an Also it could not
		// have written is left out, and the event may then reach a
		// connection twice rather than not at all.
		m.Also, _ = decodeNames(a)
	}
	return m
}

// idTime returns when Redis accepted an entry: its id's millisecond part.
func idTime(id string) time.Time {
	ms, _, _ := strings.Cut(id, "-")
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(n)
}

// validStreamID reports whether id is a complete Redis stream id, "ms-seq",
// that has an id after it (so that an exclusive range from it is valid).
func validStreamID(id string) bool {
	if !ssekit.ValidID(id) {
		return false
	}
	ms, seq, ok := strings.Cut(id, "-")
	if !ok || strings.Contains(seq, "-") {
		return false
	}
	a, err1 := strconv.ParseUint(ms, 10, 64)
	c, err2 := strconv.ParseUint(seq, 10, 64)
	return err1 == nil && err2 == nil && !(a == math.MaxUint64 && c == math.MaxUint64)
}

// SaveCursor keeps a connection's position under key for PositionTTL (or
// MaxAge), in the key's own hash slot.
func (b *Broker) SaveCursor(ctx context.Context, key, value string) error {
	if b.isClosed() {
		return ssekit.ErrBrokerClosed
	}
	ttl := b.opts.PositionTTL
	if b.opts.MaxAge < 0 {
		ttl = 0
	}
	b.ops.add(opCursor, 1)
	if err := b.rdb.Set(ctx, b.channelKey("cursor:"+key), value, ttl).Err(); err != nil {
		return fmt.Errorf("redisbroker: save cursor: %w", err)
	}
	return nil
}

// LoadCursor returns a saved position, or ssekit.ErrUnknownID.
func (b *Broker) LoadCursor(ctx context.Context, key string) (string, error) {
	if b.isClosed() {
		return "", ssekit.ErrBrokerClosed
	}
	b.ops.add(opCursor, 1)
	v, err := b.rdb.Get(ctx, b.channelKey("cursor:"+key)).Result()
	if errors.Is(err, redis.Nil) {
		return "", ssekit.ErrUnknownID
	}
	if err != nil {
		return "", fmt.Errorf("redisbroker: load cursor: %w", err)
	}
	return v, nil
}

func randomUint64() uint64 {
	var p [8]byte
	_, _ = rand.Read(p[:]) // crypto/rand.Read never fails
	return binary.BigEndian.Uint64(p[:])
}
