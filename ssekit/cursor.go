package ssekit

import (
	"context"
	"sync"
	"time"
)

// cursorStore keeps cursors in this process's memory: the MemoryBroker's,
// and the CursorStore of a hub whose broker has none (a client then
// resumes from a cursor on this node only). It is safe for concurrent use.
type cursorStore struct {
	maxAge time.Duration
	mu     sync.Mutex
	cache  cursorCache
}

var _ CursorStore = (*cursorStore)(nil)

func newCursorStore(maxAge time.Duration) *cursorStore {
	return &cursorStore{maxAge: maxAge, cache: cursorCache{m: make(map[string]cursorEntry)}}
}

// SaveCursor keeps a cursor for maxAge (an hour if it is 0), at most
// maxCursors of them.
func (l *cursorStore) SaveCursor(_ context.Context, key, value string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cache.save(key, value, time.Now(), l.maxAge)
	return nil
}

// LoadCursor returns a saved cursor, or ErrUnknownID.
func (l *cursorStore) LoadCursor(_ context.Context, key string) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cache.load(key, time.Now(), l.maxAge)
}

// maxCursors bounds the cursors a cursorStore keeps.
const maxCursors = 1 << 16

type cursorEntry struct {
	value string
	at    time.Time
	n     uint64 // which save this is, to tell a stale order slot
}

type cursorSlot struct {
	key string
	n   uint64
}

// cursorCache keeps cursors by key, expiring the oldest first.
type cursorCache struct {
	m     map[string]cursorEntry
	order deque[cursorSlot] // in save order; a key saved again is moved to the back
	n     uint64
}

func (c *cursorCache) save(key, value string, now time.Time, maxAge time.Duration) {
	c.n++
	c.m[key] = cursorEntry{value, now, c.n}
	c.order.push(cursorSlot{key, c.n})
	c.expire(now, maxAge)
}

func (c *cursorCache) load(key string, now time.Time, maxAge time.Duration) (string, error) {
	c.expire(now, maxAge)
	e, ok := c.m[key]
	if !ok {
		return "", ErrUnknownID
	}
	return e.value, nil
}

func (c *cursorCache) expire(now time.Time, maxAge time.Duration) {
	if maxAge <= 0 {
		maxAge = time.Hour
	}
	for c.order.len() > 0 {
		s := c.order.front()
		e, ok := c.m[s.key]
		if ok && e.n == s.n {
			if len(c.m) <= maxCursors && now.Sub(e.at) <= maxAge {
				return
			}
			delete(c.m, s.key)
		}
		c.order.pop()
	}
}
