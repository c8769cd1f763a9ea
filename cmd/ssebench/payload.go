package main

import (
	"bytes"

	"github.com/ssekit/sse/internal/benchwire"
)

// A payload identifies one published event: g is its global sequence
// number (1, 2, … in the order publishes started), p the publisher that
// sent it, s that publisher's own sequence number (publishers send one at
// a time, so the server receives each publisher's events in s order and
// every connection must see them in that order), t the send time in Unix
// nanoseconds. A targeted event (-targeted) also names its addressee: u is
// the user's index (connection i's user is i mod -users) and n the event's
// number among that user's events (1, 2, …), so that a stream checks both
// that it is the addressee and, with a bitmap as small as the user's share
// of the events, that none is missing or repeated. The optional x pads it
// to a chosen size.
//
//	{"g":17,"p":2,"s":5,"t":1764190000123456789,"x":"…"}
//	{"g":18,"p":2,"s":6,"t":1764190000123466789,"u":4711,"n":3}
type payload struct {
	g, p, s uint64
	t       int64
	u, n    uint64 // n is 0 for an event to everyone
}

// targeted reports whether pl is addressed to one user.
func (pl payload) targeted() bool { return pl.n > 0 }

// appendPayload appends the JSON of pl (benchwire.AppendPayload), padded
// so that the whole is at least size bytes.
func appendPayload(b []byte, pl payload, size int) []byte {
	return benchwire.AppendPayload(b, pl.g, pl.p, pl.s, pl.t, pl.u, pl.n, size)
}

// parsePayload finds the fields of a payload in data without allocating.
// The payload may be the whole data or wrapped in the server's own
// envelope (Centrifugo's {"channel":…,"pub":{"data":{…}}}); servers may
// also re-encode the JSON (reorder keys, add spaces), and then each key is
// looked up on its own. ok is false when data is not a payload (a
// connected or heartbeat event, say).
func parsePayload(data []byte) (pl payload, ok bool) {
	if pl, ok = parseOwnPayload(data); ok {
		return pl, true
	}
	if i := bytes.Index(data, []byte(`{"g":`)); i > 0 {
		if pl, ok = parseOwnPayload(data[i:]); ok {
			return pl, true
		}
	}
	var okG, okP, okS, okT bool
	pl = payload{}
	pl.g, okG = field(data, `"g":`)
	pl.p, okP = field(data, `"p":`)
	pl.s, okS = field(data, `"s":`)
	var t uint64
	t, okT = field(data, `"t":`)
	pl.t = int64(t)
	if n, okN := field(data, `"n":`); okN {
		u, okU := field(data, `"u":`)
		if !okU {
			return pl, false
		}
		pl.u, pl.n = u, n
	}
	return pl, okG && okP && okS && okT
}

// field parses the unsigned number after key.
func field(data []byte, key string) (uint64, bool) {
	i := bytes.Index(data, []byte(key))
	if i < 0 {
		return 0, false
	}
	i += len(key)
	for i < len(data) && data[i] == ' ' {
		i++
	}
	var n uint64
	start := i
	for ; i < len(data) && data[i] >= '0' && data[i] <= '9'; i++ {
		n = n*10 + uint64(data[i]-'0')
	}
	return n, i > start
}

// parseOwnPayload reads a payload laid out as appendPayload writes it, in
// one pass: the common case, when the server passes the JSON through.
func parseOwnPayload(data []byte) (pl payload, ok bool) {
	var t uint64
	for _, f := range []struct {
		key string
		v   *uint64
	}{{`{"g":`, &pl.g}, {`,"p":`, &pl.p}, {`,"s":`, &pl.s}, {`,"t":`, &t}} {
		if !bytes.HasPrefix(data, []byte(f.key)) {
			return pl, false
		}
		var ok bool
		if *f.v, data, ok = number(data[len(f.key):]); !ok {
			return pl, false
		}
	}
	pl.t = int64(t)
	if bytes.HasPrefix(data, []byte(`,"u":`)) {
		var ok bool
		if pl.u, data, ok = number(data[len(`,"u":`):]); !ok {
			return pl, false
		}
		if !bytes.HasPrefix(data, []byte(`,"n":`)) {
			return pl, false
		}
		if pl.n, _, ok = number(data[len(`,"n":`):]); !ok {
			return pl, false
		}
	}
	return pl, true
}

// number parses the unsigned decimal at the start of data and returns the
// rest.
func number(data []byte) (n uint64, rest []byte, ok bool) {
	i := 0
	for ; i < len(data) && data[i] >= '0' && data[i] <= '9'; i++ {
		n = n*10 + uint64(data[i]-'0')
	}
	return n, data[i:], i > 0
}
