package ssekit

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strings"
	"time"
)

// Message is one published event as brokers carry it: the encoded event,
// the channels it is appended to and the connections it is addressed to.
type Message struct {
	// ID is the broker's id of the publish, assigned by Publish and
	// returned to the publisher: unique, for logs and correlation. What a
	// client sees is its own position (see the package doc), not this.
	ID string

	// Channels are the channels the event is appended to, sorted and
	// without repeats: a user's ("user:<id>"), everyone's ("all").
	// Brokers treat the names as opaque strings.
	Channels []string

	// Positions[i] is the event's position in Channels[i], assigned by the
	// broker's Publish. Positions are ordered within a channel (CompareIDs)
	// and mean nothing across channels.
	Positions []string

	// Clients address connections by id. They are live only: an event
	// addressed to clients is kept in no channel's history for them. A
	// broker may deliver an event's channels and its clients separately:
	// the delivery for its clients then has Channels without Positions, so
	// that a connection that follows one of them, and gets the event
	// there, is not given it twice.
	Clients []string

	// Also, for a broker that stores and delivers each channel's copy of a
	// publish apart, are the publish's other channels that a connection
	// following this copy's may follow too: AlsoFollowed(all of them, this
	// one). A live copy has the one channel in Channels; a copy that Read
	// returns may have all of the publish's channels and positions, when
	// the broker knows them (redisbroker keeps them in a record), and
	// keeps Also as the mark that other copies may still come live. The
	// hub writes an event that reaches a connection through several of
	// its channels once (see the package doc). A broker that hands over
	// each publish whole leaves it nil.
	Also []string

	// Key is the publisher's idempotency key (see IdempotencyKey), or "".
	// A broker stores the first Message with a Key and answers a repeat
	// within its window with that publish's id and ErrReplayed, storing
	// and sending nothing, or with ErrKeyConflict when the repeat's Digest
	// differs. Concurrent repeats, on one node or several, store the event
	// once: the memory broker decides under the lock of its append; a
	// broker that records the key apart from the appends (redisbroker)
	// makes both steps safe to repeat. A broker that ignores Key would
	// store a retry twice: brokertest checks every broker for it.
	Key string

	// Type is the event type; Data is its JSON-encoded data.
	Type string
	Data []byte

	// Time is when the broker accepted the message; set by Publish.
	Time time.Time

	// writes is set by the Hub's Publish: where the deliveries that run
	// inside that Publish leave the quiet streams for the publisher to
	// write once the broker's lock is released (see publisherWrites). A
	// broker passes it along as it is; the memory broker writes them as
	// it returns, and keeps none in its history.
	writes *publisherWrites
}

// positionIn returns m's position in channel, or "" if m is not in it.
func (m *Message) positionIn(channel string) string {
	if len(m.Channels) == 1 {
		// The common case: one user, or everyone.
		if m.Channels[0] == channel {
			return m.Positions[0]
		}
		return ""
	}
	if i, ok := slices.BinarySearch(m.Channels, channel); ok {
		return m.Positions[i]
	}
	return ""
}

// Broker carries published events to the hub of every node, assigns their
// positions and keeps each channel's history. It is the seam between one
// process and a cluster: the hub does not know which broker it has.
// brokertest.Run is the contract every broker passes.
//
// Positions must be one or more unsigned decimal numbers joined by '-' (the
// memory broker's "epoch-seq", a Redis stream id) and must increase within
// a channel, field by field numerically, in publish order; CompareIDs
// orders them. Each channel has its own history, so one channel's traffic
// never trims another's.
//
// Implementations must be safe for concurrent use.
type Broker interface {
	// Publish appends m to each of m.Channels, assigning it a position in
	// each, and hands it to every subscription that follows one of them
	// (and, for m.Clients, to every subscription). It returns the id of the
	// publish, or an error when the broker could not accept it; a broker
	// whose channels live apart (a Redis Cluster) may then have stored it
	// in some of them. ctx bounds the call.
	Publish(ctx context.Context, m Message) (id string, err error)

	// Subscribe starts delivering to fn, one at a time per channel and in
	// position order within each, every message published after a Follow
	// of its channel has returned, and every message addressed to
	// clients, until ctx is done. fn must not block. Messages from
	// different channels may come from different goroutines. A broker may
	// deliver messages of channels nobody followed; a subscriber ignores
	// them. A broker that loses its connection resumes each channel from
	// the last position it delivered, so no channel sees a gap or a
	// duplicate. When it cannot (a channel's history broke: trimmed before
	// it was read, or lost), it delivers a message of TypeResync for that
	// channel, whose position is where the channel's unbroken history
	// starts again. ctx bounds the whole lifetime of the subscription: the
	// broker stops its goroutines when it is done.
	Subscribe(ctx context.Context, fn func(Message)) (Subscription, error)

	// Read returns, in position order, at most limit messages of channel
	// after the position after. It returns ErrUnknownID when after is not
	// a position of this channel's history, or when messages after it have
	// been trimmed: the caller must then be told that it lost history. An
	// empty result means nothing was published to channel after it. A
	// returned Message may carry other channels besides channel.
	Read(ctx context.Context, channel, after string, limit int) ([]Message, error)

	// Head returns channel's newest position, or a position before every
	// message yet to come when it has none: reading after it yields what
	// is published later.
	Head(ctx context.Context, channel string) (string, error)
}

// Subscription is a running Subscribe: the set of channels whose messages
// it must deliver.
type Subscription interface {
	// Follow returns once every message published to the channels after
	// it returns will reach the subscription's fn. Calls are counted: each
	// needs its Unfollow. ctx bounds the call.
	Follow(ctx context.Context, channels ...string) error

	// Unfollow undoes one Follow of each channel. A broker may go on
	// delivering a channel for a while (so that a client reconnecting at
	// once finds it followed still).
	Unfollow(channels ...string)
}

// CursorStore is an optional interface of a Broker: it keeps, for a
// connection whose position does not fit in an event id (ids stay within
// 128 bytes, see the package doc), the whole position under a short key
// that the id carries instead, where every node of the cluster can read
// it. A hub whose broker lacks it keeps them in its own memory, which
// resumes on that node only.
type CursorStore interface {
	// SaveCursor keeps value under key for about as long as the history
	// keeps events. Keys are derived from their value, so saving a key
	// twice saves the same value.
	SaveCursor(ctx context.Context, key, value string) error
	// LoadCursor returns the value saved under key, or ErrUnknownID.
	LoadCursor(ctx context.Context, key string) (string, error)
}

// errNoChannel is a broker's answer to a Message that addresses nothing.
var errNoChannel = errors.New("sse: message has no channel and no client")

// CheckMessage is the validation a broker's Publish applies to m: it must
// address at least one channel or client, with channels sorted and
// without repeats. It is exported for the brokers outside this package.
func CheckMessage(m *Message) error {
	if len(m.Channels) == 0 && len(m.Clients) == 0 {
		return errNoChannel
	}
	for i, ch := range m.Channels {
		if ch == "" || (i > 0 && m.Channels[i-1] >= ch) {
			return errors.New("sse: message channels must be non-empty, sorted and without repeats")
		}
	}
	return nil
}

// CompareIDs orders two positions of a channel: -1 if a is before b, 0 if
// equal, +1 if after. Positions are compared field by field ('-'
// separated) as unsigned decimal numbers; a malformed one sorts before
// every well-formed one.
func CompareIDs(a, b string) int {
	if a == b {
		return 0
	}
	okA, okB := ValidID(a), ValidID(b)
	switch {
	case !okA && !okB:
		return strings.Compare(a, b)
	case !okA:
		return -1
	case !okB:
		return 1
	}
	for {
		fa, ra, _ := strings.Cut(a, "-")
		fb, rb, _ := strings.Cut(b, "-")
		fa, fb = strings.TrimLeft(fa, "0"), strings.TrimLeft(fb, "0")
		if c := cmp.Compare(len(fa), len(fb)); c != 0 {
			return c
		}
		if c := strings.Compare(fa, fb); c != 0 {
			return c
		}
		a, b = ra, rb
		switch {
		case a == "" && b == "":
			return 0
		case a == "":
			return -1
		case b == "":
			return 1
		}
	}
}

// maxIDLen bounds an event id, so that a Last-Event-ID stays a cheap
// header that a browser sends cross-origin without a CORS preflight.
const maxIDLen = 128

// ValidID reports whether id has the form of a position: unsigned decimal
// numbers joined by single '-', at most 128 bytes.
func ValidID(id string) bool {
	if id == "" || len(id) > maxIDLen {
		return false
	}
	digits := 0
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '-' && digits > 0:
			digits = 0
		default:
			return false
		}
	}
	return digits > 0
}
