package ssekit

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
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
	tenantPrefix     = "tenant:"
	topicPrefix      = "topic:"
)

// UserChannel returns the channel of a user's connections: "user:<id>".
func UserChannel(user string) string { return userPrefix + user }

// TenantChannel returns the channel of a tenant's connections:
// "tenant:<id>".
func TenantChannel(tenant string) string { return tenantPrefix + tenant }

// TopicChannel returns the channel of a topic's followers: "topic:<name>".
func TopicChannel(topic string) string { return topicPrefix + topic }

// channelKind is the name a resync gives a channel: "all", "user",
// "tenant" (a connection has at most one of each, which the client knows),
// the channel's own name for a topic ("topic:<name>", so that a page knows
// which topic to fetch again) or any other.
func channelKind(ch string) string {
	switch {
	case strings.HasPrefix(ch, userPrefix):
		return "user"
	case strings.HasPrefix(ch, tenantPrefix):
		return "tenant"
	}
	return ch
}

// MaxNameLen bounds a topic name and a tenant id.
const MaxNameLen = 128

// ValidName reports why name cannot be a topic name or a tenant id, or ""
// when it can: 1 to MaxNameLen bytes of ASCII letters, digits and
// "-_.:/@", starting with a letter or digit. Names are case-sensitive. The
// set leaves out what would be ambiguous in a URL, a header or a log line,
// the '*' of ssehub's patterns, and the braces of a Redis Cluster hash tag
// (a channel is a Redis key).
func ValidName(name string) string {
	switch {
	case name == "":
		return "is empty"
	case len(name) > MaxNameLen:
		return fmt.Sprintf("is %d bytes, over %d", len(name), MaxNameLen)
	case !isAlnum(name[0]):
		return "must start with a letter or a digit"
	}
	for i := 1; i < len(name); i++ {
		if c := name[i]; !isAlnum(c) && !strings.ContainsRune("-_.:/@", rune(c)) {
			return fmt.Sprintf("has %q at byte %d: only letters, digits and - _ . : / @ are allowed", c, i)
		}
	}
	return ""
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// AlsoFollowed returns the channels of a publish to channels (sorted) that
// a connection following ch may follow too, ch itself left out: every one
// but the other users' and tenants' (a connection has one user and one
// tenant). A broker that stores and delivers each channel's copy of a
// publish apart (Redis) keeps it with ch's copy as Message.Also, so that
// the hub writes the event once to a connection that follows several of
// the channels. Nil when the publish has one channel.
func AlsoFollowed(channels []string, ch string) []string {
	if len(channels) < 2 {
		return nil
	}
	var out []string
	for _, o := range channels {
		if o == ch || sameSingleKind(o, ch) {
			continue
		}
		out = append(out, o)
	}
	return out
}

// sameSingleKind reports whether a and b are both user channels or both
// tenant channels: channels that no connection follows together.
func sameSingleKind(a, b string) bool {
	for _, p := range []string{userPrefix, tenantPrefix} {
		if strings.HasPrefix(a, p) && strings.HasPrefix(b, p) {
			return true
		}
	}
	return false
}

// channelTag is what marks a channel's position in an event id: "a" for
// everyone's, "u" for the user's, and for any other channel a letter of
// its kind and letters of a hash of its name — "t" and two for a
// tenant's, "x" and five for a topic's or any other — so that an id stays
// short whatever the names (a stream's whole position fits in one id, up
// to its user, its tenant and two topics). A tag depends on its channel's
// name alone: a resume reads each channel's own position whatever else
// the stream follows now, and a stream in another tenant than before
// starts that tenant's channel at its head (unless the two tenants share
// a tag, one pair in 676: then it replays what that tenant's channel got
// since its position, events it is allowed now). Two topics whose tags
// collide (one pair in about 12 million) cannot be followed together:
// newClient refuses them, naming both.
func channelTag(ch string) string {
	switch {
	case ch == BroadcastChannel:
		return "a"
	case strings.HasPrefix(ch, userPrefix):
		return "u"
	}
	h := fnv.New32a()
	h.Write([]byte(ch))
	if strings.HasPrefix(ch, tenantPrefix) {
		return hashTag('t', uint64(h.Sum32()), 2)
	}
	return hashTag('x', uint64(h.Sum32()), 5)
}

// hashTag spells n as letters letters after the letter first.
func hashTag(first byte, n uint64, letters int) string {
	tag := make([]byte, 1+letters)
	tag[0] = first
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
