package sse

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrBrokerClosed is returned by a broker's methods after its Close.
var ErrBrokerClosed = errors.New("sse: broker closed")

// MemoryBroker is the embedded broker for a single process: it numbers
// events "epoch-seq", keeps a bounded history in a ring and calls its
// subscribers synchronously, in order, from Publish. The epoch is the
// broker's creation time, so ids from an earlier process are unknown to a
// new one and get a resync, never a wrong replay.
//
// It starts no goroutines. All methods are safe for concurrent use.
type MemoryBroker struct {
	maxAge time.Duration
	epoch  string
	now    func() time.Time

	mu      sync.Mutex
	seq     uint64
	ring    []Message // capacity = history size; ring[start] is the oldest
	start   int
	n       int
	trimmed uint64 // seq of the newest message dropped from history
	subs    map[*func(Message)]struct{}
	closed  bool
}

var _ Broker = (*MemoryBroker)(nil)

// NewMemoryBroker returns a broker that keeps at most size events, none
// older than maxAge (0: no age bound).
func NewMemoryBroker(size int, maxAge time.Duration) *MemoryBroker {
	if size < 1 {
		size = 1
	}
	return &MemoryBroker{
		maxAge: maxAge,
		epoch:  strconv.FormatInt(time.Now().UnixNano(), 10),
		now:    time.Now,
		ring:   make([]Message, size),
		subs:   make(map[*func(Message)]struct{}),
	}
}

// Publish numbers m, keeps it and hands it to every subscriber before it
// returns; holding the lock across the hand-off is what keeps every
// subscriber's view in id order.
func (b *MemoryBroker) Publish(ctx context.Context, m Message) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return "", ErrBrokerClosed
	}
	b.seq++
	m.ID = b.id(b.seq)
	m.Time = b.now()
	b.expire(m.Time)
	if b.n == len(b.ring) {
		b.drop()
	}
	b.ring[(b.start+b.n)%len(b.ring)] = m
	b.n++
	for fn := range b.subs {
		(*fn)(m)
	}
	return m.ID, nil
}

// Subscribe registers fn until ctx is done.
func (b *MemoryBroker) Subscribe(ctx context.Context, fn func(Message)) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrBrokerClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	key := &fn
	b.subs[key] = struct{}{}
	context.AfterFunc(ctx, func() {
		b.mu.Lock()
		delete(b.subs, key)
		b.mu.Unlock()
	})
	return nil
}

// Replay hands fn the kept messages after afterID. The messages are copied
// out under the lock and fn runs without it, so a slow reader never holds
// up publishers.
func (b *MemoryBroker) Replay(ctx context.Context, afterID string, fn func(Message) error) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrBrokerClosed
	}
	b.expire(b.now())
	seq, ok := b.parse(afterID)
	if !ok || seq > b.seq || seq < b.trimmed {
		b.mu.Unlock()
		return ErrUnknownID
	}
	// Kept messages have consecutive seqs, the oldest being trimmed+1.
	skip := int(seq - b.trimmed)
	out := make([]Message, 0, b.n-skip)
	for i := skip; i < b.n; i++ {
		out = append(out, b.ring[(b.start+i)%len(b.ring)])
	}
	b.mu.Unlock()
	for _, m := range out {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(m); err != nil {
			return err
		}
	}
	return nil
}

// Head returns the newest id, "epoch-0" before the first publish.
func (b *MemoryBroker) Head(context.Context) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return "", ErrBrokerClosed
	}
	return b.id(b.seq), nil
}

// Close drops the subscribers and the history; later calls fail with
// ErrBrokerClosed.
func (b *MemoryBroker) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	clear(b.subs)
	b.ring, b.n = nil, 0
	return nil
}

func (b *MemoryBroker) id(seq uint64) string {
	return b.epoch + "-" + strconv.FormatUint(seq, 10)
}

// parse returns the seq of one of this broker's ids.
func (b *MemoryBroker) parse(id string) (uint64, bool) {
	epoch, seq, ok := strings.Cut(id, "-")
	if !ok || epoch != b.epoch {
		return 0, false
	}
	n, err := strconv.ParseUint(seq, 10, 64)
	return n, err == nil
}

// expire drops messages older than maxAge.
func (b *MemoryBroker) expire(now time.Time) {
	if b.maxAge <= 0 {
		return
	}
	for b.n > 0 && now.Sub(b.ring[b.start].Time) > b.maxAge {
		b.drop()
	}
}

// drop removes the oldest kept message.
func (b *MemoryBroker) drop() {
	b.trimmed++
	b.ring[b.start] = Message{}
	b.start = (b.start + 1) % len(b.ring)
	b.n--
}
