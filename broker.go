package sse

import (
	"context"
	"strings"
	"time"
)

// Message is one published event as brokers carry it: the encoded event and
// whom it is addressed to.
type Message struct {
	// ID is assigned by the broker's Publish; leave it empty when publishing.
	ID string
	// Users and Clients address the event; both empty means everyone.
	// An event addressed to users and clients reaches both.
	Users   []string
	Clients []string
	// Type is the event type; Data is its JSON-encoded data.
	Type string
	Data []byte
	// Time is when the broker accepted the message; set by Publish.
	Time time.Time
}

// Broadcast reports whether m is addressed to everyone.
func (m *Message) Broadcast() bool { return len(m.Users) == 0 && len(m.Clients) == 0 }

// addressedTo reports whether m reaches a connection of user (may be "",
// anonymous) with the given client id.
func (m *Message) addressedTo(user, client string) bool {
	if m.Broadcast() {
		return true
	}
	if user != "" {
		for _, u := range m.Users {
			if u == user {
				return true
			}
		}
	}
	for _, c := range m.Clients {
		if c == client {
			return true
		}
	}
	return false
}

// Broker carries published events to the hub of every node, assigns their
// ids and keeps their history. It is the seam between one process and a
// cluster: the hub does not know which broker it has.
//
// Ids must be one or more unsigned decimal numbers joined by '-' (the memory
// broker's "epoch-seq", a Redis stream id, a JetStream sequence) and must
// increase, field by field numerically, in publish order; CompareIDs orders
// them.
//
// Implementations must be safe for concurrent use.
type Broker interface {
	// Publish assigns m the next id, stores it in the history and delivers
	// it to every subscription, on every node. It returns the id, or an
	// error when the broker could not accept the message (which is then not
	// delivered anywhere). ctx bounds the call.
	Publish(ctx context.Context, m Message) (id string, err error)

	// Subscribe delivers to fn, one at a time and in id order, every message
	// published after Subscribe returns, until ctx is done. fn must not block.
	// A broker that loses its connection resumes from the last id it
	// delivered, so a subscription sees no gap and no duplicate. When it
	// cannot (its history broke: trimmed before it was read, or lost), it
	// delivers a broadcast message of TypeResync, whose id is where the
	// unbroken history starts again, so that every client is told. ctx
	// bounds the whole lifetime of the subscription: the broker stops its
	// goroutines when it is done.
	Subscribe(ctx context.Context, fn func(Message)) error

	// Replay calls fn, in id order, with every message after afterID that is
	// still in the history, up to the newest. It returns ErrUnknownID, having
	// called fn for nothing, when afterID is not in the history or when
	// messages after it have been trimmed. It stops at the first error fn
	// returns and returns it.
	Replay(ctx context.Context, afterID string, fn func(Message) error) error

	// Head returns the id of the newest message, or the broker's starting
	// id when there is none; replaying after it yields what is published
	// later.
	Head(ctx context.Context) (string, error)
}

// CompareIDs orders two broker ids: -1 if a is before b, 0 if equal, +1 if
// after. Ids are compared field by field ('-' separated) as unsigned decimal
// numbers; a malformed id sorts before every well-formed one.
func CompareIDs(a, b string) int {
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
		if c := len(fa) - len(fb); c != 0 {
			return sign(c)
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

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}

// maxIDLen bounds an id, so that a Last-Event-ID stays a cheap header.
const maxIDLen = 128

// ValidID reports whether id has the broker id form: unsigned decimal
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
