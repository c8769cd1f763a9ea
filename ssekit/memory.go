package ssekit

import (
	"context"
	"errors"
	"hash/maphash"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// ErrBrokerClosed is returned by a broker's methods after its Close.
var ErrBrokerClosed = errors.New("sse: broker closed")

// MemoryLimits bound a MemoryBroker's history.
type MemoryLimits struct {
	// PerChannel is how many events one channel keeps. At least 1.
	PerChannel int
	// MaxAge is how old a kept event may be; 0: no age bound.
	MaxAge time.Duration
	// MaxBytes bounds everything the broker keeps for its history (event
	// data and types, channel names, positions, bookkeeping); over it, the
	// broker's oldest events go first, in every channel. 0: no bound.
	MaxBytes int64
	// KeyWindow is how long an idempotency key is remembered (Message.Key);
	// 0 means DefaultKeyWindow; at most MaxKeyWindow.
	KeyWindow time.Duration
	// MaxKeys bounds how many idempotency keys are remembered; over it,
	// the oldest is forgotten first (a retry of that publish would then
	// be stored again). 0 means DefaultMaxKeys; negative, no bound.
	MaxKeys int
}

// The idempotency keys a broker remembers by default.
const (
	DefaultKeyWindow = 10 * time.Minute
	DefaultMaxKeys   = 100_000
)

// MemoryBroker is the embedded broker for a single process.
//
// Positions are "epoch-seq", where seq counts every publish of the broker:
// an event has the same position in each of its channels, and a channel's
// positions increase but skip other channels' numbers. The epoch is the
// broker's creation time, so positions from an earlier process are unknown
// to a new one and get a resync, never a wrong replay.
//
// Each channel keeps its own history, so one user's resume window does not
// shrink when other users get events: at most PerChannel events, none
// older than MaxAge, and everything together within MaxBytes (over it, the
// broker's oldest events go first, from every channel they are in; a
// client that needed one gets a resync, as for any other loss). A channel
// whose events are all gone keeps a tombstone — where its history ended —
// so that a client that saw its last event still resumes without a
// resync; tombstones count toward MaxBytes, and one dropped for room
// raises a watermark in a fixed table hashed by channel name, which can
// make a resume in a long-quiet channel ask for a resync, never miss one.
//
// Subscribers are called synchronously, in order, from Publish, with every
// message: a hub in the same process follows everything. It starts no
// goroutines. All methods are safe for concurrent use.
type MemoryBroker struct {
	lim   MemoryLimits
	epoch string
	now   func() time.Time
	seed  maphash.Seed

	mu      sync.Mutex
	seq     uint64
	head    string         // id(seq), kept so that Head allocates nothing
	bytes   int64          // counted size of everything kept
	log     deque[*record] // kept events, oldest first (refs 0: dropped)
	chans   map[string]*chanLog
	tombs   deque[tomb]       // channels that became empty, oldest first
	marks   [markSlots]uint64 // seq watermarks of forgotten tombstones
	cursors *cursorStore      // its own lock: cursors are not the history
	subs    map[*func(Message)]struct{}
	keys    keyTable
	closed  bool
}

var (
	_ Broker      = (*MemoryBroker)(nil)
	_ CursorStore = (*MemoryBroker)(nil)
)

// record is one kept event, shared by the channels that keep it.
type record struct {
	msg  Message
	seq  uint64
	size int64 // counted in MemoryBroker.bytes until refs drops to 0
	refs int   // channels still keeping it
}

// chanLog is one channel's history.
type chanLog struct {
	name    string
	entries deque[*record]
	// trimmed is the seq of the newest event dropped from this channel:
	// a position before it has lost history.
	trimmed uint64
	gen     uint64 // counts the times it became empty; a tomb names one
}

// tomb marks the moment a channel became empty.
type tomb struct {
	ch  *chanLog
	gen uint64
	at  time.Time
}

// markSlots is the size of the watermark table of forgotten channels
// (512 KiB).
const markSlots = 1 << 16

// Sizes counted per kept thing, beyond the bytes of its strings: the
// struct, its slots in slices and maps, allocation slack.
var (
	recordOverhead  = int64(unsafe.Sizeof(record{})) + 16
	perChannelSlot  = int64(unsafe.Sizeof("")*2) + 8 // Channels and Positions entries, a deque slot
	chanLogOverhead = int64(unsafe.Sizeof(chanLog{})) + 64
)

// NewMemoryBroker returns a broker whose channels keep at most size events
// each, none older than maxAge (0: no age bound), with no bound on their
// total; see NewMemoryBrokerLimits.
func NewMemoryBroker(size int, maxAge time.Duration) *MemoryBroker {
	return NewMemoryBrokerLimits(MemoryLimits{PerChannel: size, MaxAge: maxAge})
}

// NewMemoryBrokerLimits returns a broker with the given limits.
func NewMemoryBrokerLimits(lim MemoryLimits) *MemoryBroker {
	lim.PerChannel = max(lim.PerChannel, 1)
	if lim.KeyWindow <= 0 {
		lim.KeyWindow = DefaultKeyWindow
	}
	lim.KeyWindow = min(lim.KeyWindow, MaxKeyWindow)
	if lim.MaxKeys == 0 {
		lim.MaxKeys = DefaultMaxKeys
	}
	epoch := strconv.FormatInt(time.Now().UnixNano(), 10)
	return &MemoryBroker{
		keys:    keyTable{window: lim.KeyWindow, max: lim.MaxKeys},
		lim:     lim,
		epoch:   epoch,
		head:    epoch + "-0",
		now:     time.Now,
		seed:    maphash.MakeSeed(),
		chans:   make(map[string]*chanLog),
		cursors: newCursorStore(lim.MaxAge),
		subs:    make(map[*func(Message)]struct{}),
	}
}

// Keys returns how many idempotency keys the broker remembers, which
// MaxKeys bounds.
func (b *MemoryBroker) Keys() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	b.keys.lookup("", now) // forgets what expired
	return len(b.keys.byKey)
}

// Bytes returns the counted size of the history, which MaxBytes bounds.
func (b *MemoryBroker) Bytes() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.bytes
}

// Publish numbers m, keeps it in each of its channels and hands it to
// every subscriber before it returns; holding the lock across the hand-off
// is what keeps every subscriber's view in order. The broker keeps m's
// slices: the caller must not change them afterwards.
func (b *MemoryBroker) Publish(ctx context.Context, m Message) (string, error) {
	if err := CheckMessage(&m); err != nil {
		return "", err
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	// After the unlock (deferred calls run last in, first out): the quiet
	// streams the hub's delivery left to the publisher are written as soon
	// as the next publisher may go on, and before a broker wrapped around
	// this one does its own work.
	defer m.writes.run()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return "", ErrBrokerClosed
	}
	now := b.now()
	if m.Key != "" {
		if r, ok := b.keys.lookup(m.Key, now); ok {
			if r.digest != Digest(&m) {
				return "", ErrKeyConflict
			}
			return r.id, ErrReplayed
		}
	}
	b.seq++
	m.ID = b.id(b.seq)
	b.head = m.ID
	m.Time = now
	if len(m.Channels) > 0 {
		m.Positions = make([]string, len(m.Channels))
		for i := range m.Positions {
			m.Positions[i] = m.ID
		}
		kept := m
		kept.writes = nil // the publish's, not the history's
		r := &record{msg: kept, seq: b.seq, size: recordSize(&m)}
		for _, name := range m.Channels {
			ch := b.channel(name)
			if ch.entries.len() >= b.lim.PerChannel {
				b.dropOldest(ch, now)
			}
			ch.entries.push(r)
			r.refs++
		}
		b.log.push(r)
		b.bytes += r.size
	}
	b.trim(now)
	if m.Key != "" {
		b.keys.add(m.Key, m.ID, Digest(&m), now)
	}
	for fn := range b.subs {
		(*fn)(m)
	}
	return m.ID, nil
}

// recordSize counts what keeping m costs.
func recordSize(m *Message) int64 {
	n := recordOverhead + int64(len(m.Type)+len(m.Data)+len(m.ID))
	for _, ch := range m.Channels {
		n += perChannelSlot + int64(len(ch))
	}
	return n
}

// channel returns the history of name, creating it. A channel created
// anew inherits the watermark of any forgotten one under its hash: its
// history before that may have been lost.
func (b *MemoryBroker) channel(name string) *chanLog {
	ch := b.chans[name]
	if ch == nil {
		ch = &chanLog{name: name, trimmed: b.marks[b.slot(name)]}
		b.chans[name] = ch
		b.bytes += chanLogOverhead + int64(len(name))
	}
	return ch
}

func (b *MemoryBroker) slot(name string) int {
	return int(maphash.String(b.seed, name) % markSlots)
}

// dropOldest removes ch's oldest event.
func (b *MemoryBroker) dropOldest(ch *chanLog, now time.Time) {
	r := ch.entries.pop()
	ch.trimmed = r.seq
	if r.refs--; r.refs == 0 {
		b.bytes -= r.size
	}
	if ch.entries.len() == 0 {
		ch.gen++
		b.tombs.push(tomb{ch: ch, gen: ch.gen, at: now})
	}
}

// trim drops events older than MaxAge, then the oldest events or
// tombstones, whichever are older, while the history is over MaxBytes.
func (b *MemoryBroker) trim(now time.Time) {
	for b.log.len() > 0 {
		r := b.log.front()
		if r.refs == 0 { // dropped from every channel by their own bounds
			b.log.pop()
			continue
		}
		old := b.lim.MaxAge > 0 && now.Sub(r.msg.Time) > b.lim.MaxAge
		if !old && !b.over() {
			break
		}
		if !old && b.liveTomb() && !b.tombs.front().at.After(r.msg.Time) {
			b.forgetTomb()
			continue
		}
		b.log.pop()
		for _, name := range r.msg.Channels {
			if ch := b.chans[name]; ch != nil && ch.entries.len() > 0 && ch.entries.front() == r {
				b.dropOldest(ch, now)
			}
		}
	}
	for b.over() && b.liveTomb() {
		b.forgetTomb()
	}
}

func (b *MemoryBroker) over() bool { return b.lim.MaxBytes > 0 && b.bytes > b.lim.MaxBytes }

// liveTomb drops stale tombstones (of channels that got events again, or
// became empty again later) from the front and reports whether one is
// left.
func (b *MemoryBroker) liveTomb() bool {
	for b.tombs.len() > 0 {
		t := b.tombs.front()
		if t.ch.gen == t.gen && t.ch.entries.len() == 0 && b.chans[t.ch.name] == t.ch {
			return true
		}
		b.tombs.pop()
	}
	return false
}

// forgetTomb drops the oldest tombstone: its channel goes, and its
// watermark stays in the table.
func (b *MemoryBroker) forgetTomb() {
	ch := b.tombs.pop().ch
	delete(b.chans, ch.name)
	b.bytes -= chanLogOverhead + int64(len(ch.name))
	if s := b.slot(ch.name); b.marks[s] < ch.trimmed {
		b.marks[s] = ch.trimmed
	}
}

// Subscribe registers fn until ctx is done. fn gets every message.
func (b *MemoryBroker) Subscribe(ctx context.Context, fn func(Message)) (Subscription, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrBrokerClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	key := &fn
	b.subs[key] = struct{}{}
	context.AfterFunc(ctx, func() {
		b.mu.Lock()
		delete(b.subs, key)
		b.mu.Unlock()
	})
	return followAll{}, nil
}

// followAll is the Subscription of a broker that delivers every message.
type followAll struct{}

func (followAll) Follow(context.Context, ...string) error { return nil }
func (followAll) Unfollow(...string)                      {}

// Read returns channel's kept messages after the position after. They are
// copied out under the lock; their slices are shared and must not be
// changed.
func (b *MemoryBroker) Read(ctx context.Context, channel, after string, limit int) ([]Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrBrokerClosed
	}
	b.trim(b.now())
	seq, ok := b.parse(after)
	if !ok || seq > b.seq {
		return nil, ErrUnknownID
	}
	ch := b.chans[channel]
	if ch == nil {
		if seq < b.marks[b.slot(channel)] {
			return nil, ErrUnknownID
		}
		return nil, nil
	}
	if seq < ch.trimmed {
		return nil, ErrUnknownID
	}
	n := ch.entries.len()
	i := sort.Search(n, func(i int) bool { return ch.entries.at(i).seq > seq })
	out := make([]Message, 0, min(max(limit, 0), n-i))
	for ; i < n && len(out) < limit; i++ {
		out = append(out, ch.entries.at(i).msg)
	}
	return out, nil
}

// Head returns the broker's newest position, "epoch-0" before the first
// publish: it is the head of every channel.
func (b *MemoryBroker) Head(context.Context, string) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return "", ErrBrokerClosed
	}
	return b.head, nil
}

// SaveCursor keeps a cursor for MaxAge (an hour if MaxAge is 0), at most
// maxCursors of them.
func (b *MemoryBroker) SaveCursor(ctx context.Context, key, value string) error {
	if b.isClosed() {
		return ErrBrokerClosed
	}
	return b.cursors.SaveCursor(ctx, key, value)
}

// LoadCursor returns a saved cursor, or ErrUnknownID.
func (b *MemoryBroker) LoadCursor(ctx context.Context, key string) (string, error) {
	if b.isClosed() {
		return "", ErrBrokerClosed
	}
	return b.cursors.LoadCursor(ctx, key)
}

func (b *MemoryBroker) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// Close drops the subscribers and the history; later calls fail with
// ErrBrokerClosed.
func (b *MemoryBroker) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	clear(b.subs)
	b.log, b.tombs, b.chans = deque[*record]{}, deque[tomb]{}, nil
	b.cursors = newCursorStore(b.lim.MaxAge)
	b.bytes = 0
	return nil
}

func (b *MemoryBroker) id(seq uint64) string {
	return b.epoch + "-" + strconv.FormatUint(seq, 10)
}

// parse returns the seq of one of this broker's positions.
func (b *MemoryBroker) parse(id string) (uint64, bool) {
	epoch, seq, ok := strings.Cut(id, "-")
	if !ok || epoch != b.epoch {
		return 0, false
	}
	n, err := strconv.ParseUint(seq, 10, 64)
	return n, err == nil
}

// deque is a FIFO on a slice whose front is at head.
type deque[T any] struct {
	s    []T
	head int
}

func (d *deque[T]) len() int   { return len(d.s) - d.head }
func (d *deque[T]) push(v T)   { d.s = append(d.s, v) }
func (d *deque[T]) front() T   { return d.s[d.head] }
func (d *deque[T]) at(i int) T { return d.s[d.head+i] }
func (d *deque[T]) pop() (v T) {
	var zero T
	v, d.s[d.head] = d.s[d.head], zero
	d.head++
	// Move the live part down once the dead part is most of the slice, so
	// that pushes and pops stay amortized O(1) and the array is reused.
	if d.head >= 32 && d.head*2 >= len(d.s) {
		n := copy(d.s, d.s[d.head:])
		clear(d.s[n:])
		d.s, d.head = d.s[:n], 0
	}
	return v
}
