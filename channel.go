package sse

import (
	"crypto/sha256"
	"encoding/binary"
	"hash/fnv"
	"strconv"
	"strings"
)

// Channels. Every connection follows the broadcast channel and, when it
// has a user, that user's channel; an event is appended to the channels it
// is addressed to. The names are what brokers see (and what a Redis key
// shows); the tags are what the event ids carry.
const (
	// BroadcastChannel is everyone's channel: Target.All, SendToAll.
	BroadcastChannel = "all"
	userPrefix       = "user:"
)

// UserChannel returns the channel of a user's connections: "user:<id>".
func UserChannel(user string) string { return userPrefix + user }

// channelKind is the name a resync gives a channel: "all", "user", or
// the channel's own name for any other.
func channelKind(ch string) string {
	if strings.HasPrefix(ch, userPrefix) {
		return "user"
	}
	return ch
}

// channelTag is what marks a channel's position in an event id: "a" for
// everyone's, "u" for the user's, and for any other channel "x" and five
// letters of a hash of its name, so that an id stays short whatever the
// names. newClient refuses a set of channels two of which share a tag.
func channelTag(ch string) string {
	switch {
	case ch == BroadcastChannel:
		return "a"
	case strings.HasPrefix(ch, userPrefix):
		return "u"
	}
	h := fnv.New32a()
	h.Write([]byte(ch))
	n := h.Sum32()
	tag := []byte{'x', 0, 0, 0, 0, 0}
	for i := 1; i < len(tag); i++ {
		tag[i] = byte('a' + n%26)
		n /= 26
	}
	return string(tag)
}

// cursorTag marks a cursor key in an event id: the positions it stands
// for are kept by the hub's CursorStore.
const cursorTag = 'c'

// An event id is the connection's position: one component per channel it
// follows, "<tag><position>", joined by '.', in the connection's channel
// order — "a1764460800000-0.u1764460800123-4". Tags are lowercase letters
// and positions start with a digit, so a component splits without a
// separator. Every byte is one a browser sends in Last-Event-ID across
// origins without a CORS preflight (letters, digits, '-' and '.'), and the
// whole stays within maxIDLen; a connection whose components would not fit
// carries a cursor instead ("c<key>", then the components that changed
// since the cursor was saved).

// appendPositions appends the components of tags and pos: the whole id
// when it fits, or a cursor's value.
func appendPositions(b []byte, tags, pos []string) []byte {
	for k := range tags {
		if k > 0 {
			b = append(b, '.')
		}
		b = append(b, tags[k]...)
		b = append(b, pos[k]...)
	}
	return b
}

// appendDelta appends the id that refers to a cursor saved for base: the
// cursor's component, then those of pos that differ from base.
func appendDelta(b []byte, key string, tags, pos, base []string) []byte {
	b = append(b, cursorTag)
	b = append(b, key...)
	for k := range tags {
		if pos[k] != base[k] {
			b = append(b, '.')
			b = append(b, tags[k]...)
			b = append(b, pos[k]...)
		}
	}
	return b
}

// cursorKey derives a cursor's key from its value, so that connections at
// the same position share one: 64 bits of SHA-256, in base 36.
func cursorKey(value []byte) string {
	sum := sha256.Sum256(value)
	return strconv.FormatUint(binary.BigEndian.Uint64(sum[:8]), 36)
}

// parsedID is a Last-Event-ID taken apart: a cursor key (or "") and the
// positions by tag that it carries inline.
type parsedID struct {
	cursor string
	pos    map[string]string
}

// parseID takes an event id (or a cursor's value) of at most limit bytes
// apart. It reports false for anything that is not one this hub writes: an
// id of an earlier version of ssekit, a forged or truncated one. Such a
// client gets a resync of every channel.
func parseID(id string, limit int) (parsedID, bool) {
	var p parsedID
	if id == "" || len(id) > limit {
		return p, false
	}
	for i, comp := range strings.Split(id, ".") {
		if i == 0 && comp != "" && comp[0] == cursorTag {
			// No channel's tag starts with the cursor's letter.
			if !isBase36(comp[1:]) {
				return p, false
			}
			p.cursor = comp[1:]
			continue
		}
		j := 0
		for j < len(comp) && comp[j] >= 'a' && comp[j] <= 'z' {
			j++
		}
		tag, rest := comp[:j], comp[j:]
		if tag == "" || !ValidID(rest) {
			return p, false
		}
		if p.pos == nil {
			p.pos = make(map[string]string, 2)
		}
		if _, dup := p.pos[tag]; dup {
			return p, false
		}
		p.pos[tag] = rest
	}
	return p, true
}

// isBase36 reports whether s is a non-empty run of digits and lowercase
// letters, as cursorKey writes.
func isBase36(s string) bool {
	if s == "" || len(s) > 13 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}
