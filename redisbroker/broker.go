// Package redisbroker is the sse.Broker of a cluster: hubs on any number of
// nodes that share one Redis (and one Prefix) behave as one hub.
//
// Every event is one entry of a Redis stream. Publish appends it (XADD in a
// small script, see below) and the stream assigns its id, so ids are
// ordered cluster-wide; every node's subscription reads the stream with
// XREAD from the last id it delivered, so a node that loses Redis for a
// while resumes where it stopped; Replay reads it with XRANGE, so a client
// may resume on any node. The history is bounded by MaxLen and MaxAge.
//
// Each entry also records the id of the entry before it. That chain is what
// makes sse.ErrUnknownID exact, which Redis alone cannot: trimming leaves no
// trace of where it stopped, so only the chain tells "nothing after this id
// was lost" from "something was". The subscription checks the same chain on
// every entry it reads, and announces a break (entries trimmed before it
// read them, or a Redis that restarted empty) to its hub as a resync
// message instead of skipping silently. The script also remembers each
// publish's random nonce for DedupeWindow, so that a send the Redis client
// retried after a lost reply is stored once, not twice.
//
// The broker uses a client the caller opened and never dials by itself;
// the caller closes the client after the broker. Presence (StartPresence,
// ClusterStatus) lets the nodes see each other.
//
// Keys, all in one Redis Cluster hash slot ("{Prefix}"):
//
//	{Prefix}:stream          the events
//	{Prefix}:pub:<nonce>     a publish's id, for DedupeWindow
//	{Prefix}:nodes           sorted set of nodes that reported presence
//	{Prefix}:node:<name>     hash: one node's counts, expires with PresenceTTL
//	{Prefix}:users:<name>    set: one node's connected users, same expiry
package redisbroker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	sse "github.com/ssekit/sse"
)

// ErrHistoryGap is returned by Replay when entries it had not yet read were
// trimmed while it was reading, after it had already handed some to fn. The
// hub ends such a stream; the client reconnects and gets a resync.
var ErrHistoryGap = errors.New("redisbroker: history trimmed during replay")

// Options configures a Broker. The zero value of every field means its
// default; New copies the options.
type Options struct {
	// Prefix names the broker's keys. Hubs share events when they share a
	// Redis and a Prefix. Defaults to "ssekit".
	Prefix string

	// MaxLen bounds the history by count. Trimming is approximate (whole
	// stream nodes, so Redis may keep up to ~100 more), but the replay's
	// sse.ErrUnknownID is exact. Defaults to 10000. Negative: no bound.
	MaxLen int64

	// MaxAge bounds the history by age, on Redis's clock, approximately as
	// MaxLen. Defaults to 10m, as the hub's in-memory history. Negative:
	// no bound.
	MaxAge time.Duration

	// Block is how long one XREAD of a subscription waits for new entries.
	// It also bounds how long a subscription takes to stop once its ctx is
	// done, since a blocked read cannot be interrupted. Defaults to 1s.
	Block time.Duration

	// ReadCount is the most entries one XREAD or XRANGE page returns.
	// Defaults to 512.
	ReadCount int64

	// DedupeWindow is how long a publish is remembered so that a send the
	// Redis client retries (after a timeout that lost the reply) is stored
	// once. It must exceed the client's whole retry span. Defaults to 1m.
	DedupeWindow time.Duration

	// Node names this process in the cluster status. Defaults to
	// "<hostname>-<pid>-<random>".
	Node string

	// PresenceInterval is how often StartPresence refreshes this node's
	// counts. Defaults to 5s.
	PresenceInterval time.Duration

	// PresenceTTL is how long a node's counts outlive its last refresh: a
	// node that died drops out of ClusterStatus after it. Defaults to three
	// PresenceIntervals.
	PresenceTTL time.Duration

	// Logger receives the broker's warnings: a subscription that lost
	// Redis, a break in the history. Defaults to slog.Default().
	Logger *slog.Logger
}

func (o Options) withDefaults() (Options, error) {
	if o.Prefix == "" {
		o.Prefix = "ssekit"
	}
	if o.MaxLen == 0 {
		o.MaxLen = 10000
	}
	if o.MaxAge == 0 {
		o.MaxAge = 10 * time.Minute
	}
	if o.Block == 0 {
		o.Block = time.Second
	}
	if o.ReadCount == 0 {
		o.ReadCount = 512
	}
	if o.DedupeWindow == 0 {
		o.DedupeWindow = time.Minute
	}
	if o.Node == "" {
		host, _ := os.Hostname()
		o.Node = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), nonce(3))
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
		return o, fmt.Errorf("redisbroker: Prefix %q must not contain braces: it becomes the keys' hash tag", o.Prefix)
	case strings.ContainsAny(o.Node, " \r\n"):
		return o, fmt.Errorf("redisbroker: Node %q must not contain white space", o.Node)
	case o.Block < 0:
		return o, fmt.Errorf("redisbroker: Block %v is negative", o.Block)
	case o.ReadCount < 0:
		return o, fmt.Errorf("redisbroker: ReadCount %d is negative", o.ReadCount)
	case o.DedupeWindow < time.Millisecond:
		return o, fmt.Errorf("redisbroker: DedupeWindow %v is under 1ms", o.DedupeWindow)
	case o.PresenceInterval < 0:
		return o, fmt.Errorf("redisbroker: PresenceInterval %v is negative", o.PresenceInterval)
	case o.PresenceTTL <= o.PresenceInterval:
		return o, fmt.Errorf("redisbroker: PresenceTTL %v must exceed PresenceInterval %v", o.PresenceTTL, o.PresenceInterval)
	}
	return o, nil
}

// Broker is an sse.Broker on a Redis stream. Each Subscribe starts one
// goroutine, which stops when its ctx is done or the broker is closed;
// StartPresence starts one more. Close stops them all and waits for them.
// All methods are safe for concurrent use.
type Broker struct {
	rdb    redis.UniversalClient
	opts   Options
	stream string
	log    *slog.Logger

	life context.Context // done once Close is called
	end  context.CancelFunc
	mu   sync.Mutex // orders wg.Add against Close's Wait
	wg   sync.WaitGroup

	presence bool // StartPresence was called; guarded by mu
}

var _ sse.Broker = (*Broker)(nil)

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
	b.stream = b.key("stream")
	return b, nil
}

// key returns the name of one of the broker's keys.
func (b *Broker) key(name string) string { return "{" + b.opts.Prefix + "}:" + name }

// Stream returns the name of the Redis stream that holds the events.
func (b *Broker) Stream() string { return b.stream }

// Node returns the name this broker reports its presence under.
func (b *Broker) Node() string { return b.opts.Node }

func (b *Broker) isClosed() bool { return b.life.Err() != nil }

// Close stops every subscription and the presence refresh, and waits for
// their goroutines; a subscription blocked in a read takes up to Block to
// notice. Later calls fail with sse.ErrBrokerClosed. It does not close the
// Redis client, which belongs to the caller.
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
		return sse.ErrBrokerClosed
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

// publishScript appends one event to the stream with the id of the entry
// before it ("prev"), trims the history by count and by age (on Redis's
// clock) and remembers the publish's nonce, so that a retried call returns
// the id of the first instead of storing the event twice. The newest entry
// is never trimmed, so XREVRANGE's first entry is the last generated id.
//
// KEYS[1] stream, KEYS[2] nonce key; ARGV[1] MaxLen (0: none), ARGV[2]
// MaxAge in ms (0: none), ARGV[3] DedupeWindow in ms, ARGV[4…] fields.
var publishScript = redis.NewScript(`
local done = redis.call('GET', KEYS[2])
if done then return done end
local prev = '0-0'
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if last[1] then prev = last[1][1] end
local id = redis.call('XADD', KEYS[1], '*', 'prev', prev, unpack(ARGV, 4))
local maxlen = tonumber(ARGV[1])
if maxlen > 0 then redis.call('XTRIM', KEYS[1], 'MAXLEN', '~', maxlen) end
local maxage = tonumber(ARGV[2])
if maxage > 0 then
	local now = redis.call('TIME')
	local minid = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - maxage
	if minid > 0 then redis.call('XTRIM', KEYS[1], 'MINID', '~', string.format('%d', minid)) end
end
redis.call('SET', KEYS[2], id, 'PX', ARGV[3])
return id
`)

// Entry fields.
const (
	fieldPrev    = "prev"
	fieldType    = "type"
	fieldData    = "data"
	fieldUsers   = "users"   // JSON array, absent when empty
	fieldClients = "clients" // JSON array, absent when empty
)

// Publish appends m to the stream in one round trip and returns the id
// Redis gave it. An error means the event was not stored (or, for a reply
// lost in transit, that it is unknown whether it was: the caller's retry is
// then a new event). ctx bounds the call.
func (b *Broker) Publish(ctx context.Context, m sse.Message) (string, error) {
	if b.isClosed() {
		return "", sse.ErrBrokerClosed
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	return b.publish(ctx, m, nonce(12))
}

// publish appends m under a given nonce: a second call with the same nonce
// within DedupeWindow returns the first call's id and stores nothing.
func (b *Broker) publish(ctx context.Context, m sse.Message, nonce string) (string, error) {
	maxLen := max(b.opts.MaxLen, 0)
	maxAge := max(b.opts.MaxAge.Milliseconds(), 0)
	args := []any{maxLen, maxAge, b.opts.DedupeWindow.Milliseconds(), fieldType, m.Type, fieldData, m.Data}
	if len(m.Users) > 0 {
		users, _ := json.Marshal(m.Users) // []string always marshals
		args = append(args, fieldUsers, users)
	}
	if len(m.Clients) > 0 {
		clients, _ := json.Marshal(m.Clients)
		args = append(args, fieldClients, clients)
	}
	keys := []string{b.stream, b.key("pub:" + nonce)}
	id, err := publishScript.Run(ctx, b.rdb, keys, args...).Text()
	if err != nil {
		return "", fmt.Errorf("redisbroker: publish to %s: %w", b.stream, err)
	}
	return id, nil
}

// Head returns the stream's last generated id, "0-0" when the stream does
// not exist yet.
func (b *Broker) Head(ctx context.Context) (string, error) {
	if b.isClosed() {
		return "", sse.ErrBrokerClosed
	}
	info, err := b.rdb.XInfoStream(ctx, b.stream).Result()
	if isNoSuchKey(err) {
		return "0-0", nil
	}
	if err != nil {
		return "", fmt.Errorf("redisbroker: xinfo stream %s: %w", b.stream, err)
	}
	return info.LastGeneratedID, nil
}

// Replay hands fn the entries after afterID, up to the newest one when it
// was called, reading XRANGE pages of ReadCount. It returns
// sse.ErrUnknownID, having called fn for nothing, when afterID is malformed,
// was never issued, or entries after it were trimmed; ErrHistoryGap when
// trimming overtook it after it had begun handing entries to fn.
func (b *Broker) Replay(ctx context.Context, afterID string, fn func(sse.Message) error) error {
	if b.isClosed() {
		return sse.ErrBrokerClosed
	}
	if !validStreamID(afterID) {
		return sse.ErrUnknownID
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// The head and the first page come from one transaction, so that
	// "nothing after afterID" is never mistaken for "afterID is unknown"
	// while publishers append.
	var info *redis.XInfoStreamCmd
	var first *redis.XMessageSliceCmd
	_, err := b.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		info = p.XInfoStream(ctx, b.stream)
		first = p.XRangeN(ctx, b.stream, "("+afterID, "+", b.opts.ReadCount)
		return nil
	})
	head := "0-0"
	switch ierr := info.Err(); {
	case ierr == nil:
		head = info.Val().LastGeneratedID
	case isNoSuchKey(ierr):
	default:
		if err == nil {
			err = ierr
		}
		return fmt.Errorf("redisbroker: replay %s after %s: %w", b.stream, afterID, err)
	}
	if err := first.Err(); err != nil {
		return fmt.Errorf("redisbroker: replay %s after %s: %w", b.stream, afterID, err)
	}
	page := first.Val()
	if len(page) == 0 {
		if afterID != head && sse.CompareIDs(afterID, head) != 0 {
			return sse.ErrUnknownID // in the future, or everything after it is gone
		}
		return nil
	}
	if !chained(afterID, page) {
		return sse.ErrUnknownID
	}
	for {
		for _, xm := range page {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := fn(decode(xm)); err != nil {
				return err
			}
		}
		cursor := page[len(page)-1].ID
		if sse.CompareIDs(cursor, head) >= 0 {
			return nil
		}
		page, err = b.rdb.XRangeN(ctx, b.stream, "("+cursor, head, b.opts.ReadCount).Result()
		if err != nil {
			return fmt.Errorf("redisbroker: replay %s after %s: %w", b.stream, cursor, err)
		}
		if len(page) == 0 || !chained(cursor, page) {
			return fmt.Errorf("replay %s after %s: %w", b.stream, cursor, ErrHistoryGap)
		}
	}
}

// chained reports whether page follows after without a gap: each entry
// records the id of the one before it.
func chained(after string, page []redis.XMessage) bool {
	for _, xm := range page {
		prev, _ := xm.Values[fieldPrev].(string)
		if prev != after && sse.CompareIDs(prev, after) != 0 {
			return false
		}
		after = xm.ID
	}
	return true
}

// decode turns a stream entry into a message. A malformed users or
// clients field (not written by this broker) leaves that address empty.
func decode(xm redis.XMessage) sse.Message {
	m := sse.Message{ID: xm.ID, Time: idTime(xm.ID)}
	m.Type, _ = xm.Values[fieldType].(string)
	if d, ok := xm.Values[fieldData].(string); ok {
		m.Data = []byte(d)
	}
	if u, ok := xm.Values[fieldUsers].(string); ok {
		_ = json.Unmarshal([]byte(u), &m.Users)
	}
	if c, ok := xm.Values[fieldClients].(string); ok {
		_ = json.Unmarshal([]byte(c), &m.Clients)
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
	if !sse.ValidID(id) {
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

// isNoSuchKey reports Redis's answer to XINFO STREAM on a missing stream.
func isNoSuchKey(err error) bool {
	return err != nil && strings.Contains(err.Error(), "no such key")
}

// nonce returns n random bytes in hex.
func nonce(n int) string {
	p := make([]byte, n)
	_, _ = rand.Read(p) // crypto/rand.Read never fails
	return hex.EncodeToString(p)
}
