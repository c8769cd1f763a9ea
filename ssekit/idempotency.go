package ssekit

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"time"
)

// Idempotent publishing. A publisher cannot tell "the hub never got it"
// from "the hub stored it and died before answering"; it names the publish
// with a key, retries on any doubt, and the broker stores the first
// publish with that key and answers every repeat within its window with
// the first's id, storing and sending nothing.

var (
	// ErrReplayed is a broker's answer to a Publish whose Message.Key it
	// has stored within its window, with the same target and event: the
	// id returned with it is the first publish's, and nothing was stored
	// or sent this time, except that a broker that records the key apart
	// from the appends (redisbroker) first completes a first publish whose
	// node died before it reached all its channels. Hub.Publish reports it
	// as a success (see Replayed).
	ErrReplayed = errors.New("sse: publish replayed")

	// ErrKeyConflict reports a publish whose idempotency key was used
	// within the window for a different target or event. Nothing was
	// published.
	ErrKeyConflict = errors.New("sse: idempotency key reused for a different publish")

	// ErrInvalidKey reports an idempotency key that is empty, longer than
	// MaxKeyLen or not visible ASCII. Nothing was published.
	ErrInvalidKey = errors.New("sse: invalid idempotency key")
)

// MaxKeyLen bounds an idempotency key.
const MaxKeyLen = 255

// MaxKeyWindow bounds how long a broker may remember an idempotency key.
const MaxKeyWindow = 24 * time.Hour

// CheckKey reports why key cannot be an idempotency key, or nil: 1 to
// MaxKeyLen bytes of visible ASCII (what an HTTP header carries intact).
func CheckKey(key string) error {
	if key == "" || len(key) > MaxKeyLen {
		return fmt.Errorf("%w: %d bytes, want 1 to %d", ErrInvalidKey, len(key), MaxKeyLen)
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c < '!' || c > '~' {
			return fmt.Errorf("%w: byte %d is %q: want visible ASCII", ErrInvalidKey, i, c)
		}
	}
	return nil
}

// Digest returns what tells two publishes with one idempotency key apart:
// a hash of m's channels, clients, type and data (not of its id, key or
// time). A broker keeps it with the key and refuses a repeat whose digest
// differs with ErrKeyConflict.
func Digest(m *Message) string {
	h := sha256.New()
	for _, list := range [][]string{m.Channels, m.Clients} {
		writeField(h, len(list), nil)
		for _, s := range list {
			writeField(h, len(s), []byte(s))
		}
	}
	writeField(h, len(m.Type), []byte(m.Type))
	writeField(h, len(m.Data), m.Data)
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:18])
}

// writeField writes a length and its bytes, so that fields cannot run into
// each other.
func writeField(h hash.Hash, n int, b []byte) {
	var l [8]byte
	binary.BigEndian.PutUint64(l[:], uint64(n))
	h.Write(l[:])
	h.Write(b)
}

// PublishOption sets an option of one Publish.
type PublishOption func(*publishOptions)

type publishOptions struct {
	key        string
	replayed   *bool
	recipients *Recipients // see CountRecipients
}

// IdempotencyKey names a publish, so that a retry of it is delivered
// once: the broker stores the first publish with key and answers a
// repeat within its window (Config.IdempotencyWindow for the in-memory
// broker; redisbroker.Options.KeyWindow) with the first's id, storing and
// sending nothing. A repeat with a different target or event fails with
// ErrKeyConflict. Keys are the caller's: a uuid per publish, or the id of
// what the event is about.
func IdempotencyKey(key string) PublishOption {
	return func(o *publishOptions) { o.key = key }
}

// Replayed has Publish report in *replayed whether its answer is a replay:
// the id of an earlier publish with the same IdempotencyKey, and nothing
// sent this time.
func Replayed(replayed *bool) PublishOption {
	return func(o *publishOptions) { o.replayed = replayed }
}

// keyTable is the memory broker's record of idempotency keys: bounded in
// count, expiring after a window, the oldest forgotten first. Its caller
// holds the broker's lock.
type keyTable struct {
	window time.Duration
	max    int
	byKey  map[string]keyRecord
	order  deque[keyEntry] // insertion order: the oldest expires first
}

type keyRecord struct {
	id, digest string
	expires    time.Time
}

type keyEntry struct {
	key     string
	expires time.Time
}

// lookup returns the record of key, forgetting what expired by now.
func (t *keyTable) lookup(key string, now time.Time) (keyRecord, bool) {
	for t.order.len() > 0 && !t.order.front().expires.After(now) {
		t.forgetOldest()
	}
	r, ok := t.byKey[key]
	return r, ok
}

// add records key for the publish id, forgetting the oldest key when the
// table is full.
func (t *keyTable) add(key, id, digest string, now time.Time) {
	if t.byKey == nil {
		t.byKey = make(map[string]keyRecord)
	}
	for t.max > 0 && len(t.byKey) >= t.max {
		t.forgetOldest()
	}
	exp := now.Add(t.window)
	t.byKey[key] = keyRecord{id: id, digest: digest, expires: exp}
	t.order.push(keyEntry{key: key, expires: exp})
}

func (t *keyTable) forgetOldest() {
	e := t.order.pop()
	if r, ok := t.byKey[e.key]; ok && r.expires.Equal(e.expires) {
		delete(t.byKey, e.key)
	}
}
