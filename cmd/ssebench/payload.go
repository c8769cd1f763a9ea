package main

import (
	"bytes"
	"strconv"
)

// A payload identifies one published event: g is its global sequence
// number (1, 2, … in the order publishes started), p the publisher that
// sent it, s that publisher's own sequence number (publishers send one at
// a time, so the server receives each publisher's events in s order and
// every connection must see them in that order), t the send time in Unix
// nanoseconds. The optional x pads it to a chosen size.
//
//	{"g":17,"p":2,"s":5,"t":1764190000123456789,"x":"…"}
type payload struct {
	g, p, s uint64
	t       int64
}

// appendPayload appends the JSON of pl, padded with an "x" field so that
// the whole is at least size bytes.
func appendPayload(b []byte, pl payload, size int) []byte {
	start := len(b)
	b = append(b, `{"g":`...)
	b = strconv.AppendUint(b, pl.g, 10)
	b = append(b, `,"p":`...)
	b = strconv.AppendUint(b, pl.p, 10)
	b = append(b, `,"s":`...)
	b = strconv.AppendUint(b, pl.s, 10)
	b = append(b, `,"t":`...)
	b = strconv.AppendInt(b, pl.t, 10)
	if pad := size - (len(b) - start) - len(`,"x":""}`); pad > 0 {
		b = append(b, `,"x":"`...)
		for range pad {
			b = append(b, 'x')
		}
		b = append(b, '"')
	}
	return append(b, '}')
}

// parsePayload finds the fields of a payload in data without allocating.
// Servers may re-encode the JSON (reorder keys, add spaces), so each key is
// looked up on its own. ok is false when data is not a payload (a
// connected or heartbeat event, say).
func parsePayload(data []byte) (pl payload, ok bool) {
	if pl, ok = parseOwnPayload(data); ok {
		return pl, true
	}
	var okG, okP, okS, okT bool
	pl.g, okG = field(data, `"g":`)
	pl.p, okP = field(data, `"p":`)
	pl.s, okS = field(data, `"s":`)
	var t uint64
	t, okT = field(data, `"t":`)
	pl.t = int64(t)
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
		data = data[len(f.key):]
		i := 0
		for ; i < len(data) && data[i] >= '0' && data[i] <= '9'; i++ {
			*f.v = *f.v*10 + uint64(data[i]-'0')
		}
		if i == 0 {
			return pl, false
		}
		data = data[i:]
	}
	pl.t = int64(t)
	return pl, true
}
