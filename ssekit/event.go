package ssekit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Event is what the hub sends to clients: a type (the EventSource listener
// name), JSON data, and an id the broker assigns.
type Event struct {
	// ID is the event's position in the stream. The broker assigns it when
	// the event is published, so leave it empty when sending: a non-empty ID
	// on a send is rejected with ErrInvalidEvent.
	ID string `json:"id,omitempty"`

	// Type is the event name ("notification", "badge_update", …). Empty
	// means the browser's default, "message". It must be valid UTF-8
	// without CR, LF or NUL, and neither one of the hub's own types
	// (TypeConnected, TypeHeartbeat, TypeResync, TypeSessionEnded) nor a
	// name a browser's EventSource gives meaning to ("error", "open"; see
	// ReservedType).
	Type string `json:"type"`

	// Data is marshalled with encoding/json once per event, whoever the
	// recipients are. A json.RawMessage of valid JSON is sent as is
	// (compacted onto one line); a []byte is marshalled like any value, to a
	// base64 JSON string.
	Data any `json:"data"`
}

// Event types the hub itself sends.
const (
	// TypeConnected opens every stream; its data has client_id, timestamp
	// and resumed.
	TypeConnected = "connected"
	// TypeHeartbeat keeps idle streams alive; it carries no id, so it never
	// moves the browser's last event id.
	TypeHeartbeat = "heartbeat"
	// TypeResync tells the client that the events it missed are no longer
	// in the history (or its Last-Event-ID was unknown): refetch your state.
	TypeResync = "resync"
)

// ReservedType reports why an event type cannot be sent, or "" if it can:
// the hub's own types, which clients act on (a resync makes an app
// refetch everything), and the names a browser's EventSource dispatches
// for itself: an event named "error" fires onerror and "open" fires
// onopen (seen in Chromium), so an app would think its stream failed or
// reopened. Types are case-sensitive, as EventSource's are.
func ReservedType(typ string) string {
	switch typ {
	case TypeConnected, TypeHeartbeat, TypeResync, TypeSessionEnded, typeSessionCheck:
		return "the hub's own"
	case "error", "open":
		return "an EventSource event of its own (it would fire on" + typ + ")"
	}
	return ""
}

// payload is an event validated and encoded once: its type and its JSON
// data, ready to be framed with whatever id the broker assigns.
type payload struct {
	typ  string
	data []byte
}

// encode validates ev and marshals its data. maxSize bounds the data's
// encoded size (0: unbounded).
func encode(ev Event, maxSize int) (payload, error) {
	if ev.ID != "" {
		if err := checkField("ID", ev.ID); err != nil {
			return payload{}, err
		}
		return payload{}, fmt.Errorf("%w: ID %s is assigned by the broker; leave it empty", ErrInvalidEvent, quoteShort(ev.ID))
	}
	if err := checkField("Type", ev.Type); err != nil {
		return payload{}, err
	}
	if why := ReservedType(ev.Type); why != "" {
		return payload{}, fmt.Errorf("%w: Type %s is %s", ErrInvalidEvent, quoteShort(ev.Type), why)
	}
	var data []byte
	switch d := ev.Data.(type) {
	case json.RawMessage:
		if !json.Valid(d) || !utf8.Valid(d) {
			return payload{}, fmt.Errorf("%w: Data is not valid UTF-8 JSON", ErrInvalidEvent)
		}
		data = compact(d)
	default:
		var err error
		if data, err = json.Marshal(ev.Data); err != nil {
			return payload{}, fmt.Errorf("%w: marshal Data: %v", ErrInvalidEvent, err)
		}
	}
	if maxSize > 0 && len(data)+len(ev.Type) > maxSize {
		return payload{}, fmt.Errorf("%w: %d bytes, limit %d", ErrEventTooLarge, len(data)+len(ev.Type), maxSize)
	}
	return payload{typ: ev.Type, data: data}, nil
}

// compact returns raw JSON without insignificant white space, so that it
// fits on one data line.
func compact(raw []byte) []byte {
	if !bytes.ContainsAny(raw, "\r\n") {
		return raw
	}
	var b bytes.Buffer
	_ = json.Compact(&b, raw) // raw was checked with json.Valid
	return b.Bytes()
}

// checkField rejects what would break the framing of an event stream, and
// bytes a browser would decode to something else (invalid UTF-8).
func checkField(name, v string) error {
	if i := strings.IndexAny(v, "\r\n\x00"); i >= 0 {
		return fmt.Errorf("%w: %s %s contains %q", ErrInvalidEvent, name, quoteShort(v), v[i])
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("%w: %s %s is not valid UTF-8", ErrInvalidEvent, name, quoteShort(v))
	}
	return nil
}

// quoteShort quotes at most the first 64 bytes of a caller's value for an
// error: enough to recognise it, while a huge one does not become a huge
// error message (and log line) in whatever reports it.
func quoteShort(v string) string {
	if len(v) <= 64 {
		return strconv.Quote(v)
	}
	return strconv.Quote(v[:64]) + "…"
}

// appendFrame appends one event in the WHATWG wire format. Data is JSON
// from encoding/json, which never holds a raw line break, so one data line
// carries it; a break is still split into data lines rather than trusted.
func appendFrame(b []byte, id, typ string, data []byte) []byte {
	if id != "" {
		b = append(b, "id: "...)
		b = append(b, id...)
		b = append(b, '\n')
	}
	if typ != "" {
		b = append(b, "event: "...)
		b = append(b, typ...)
		b = append(b, '\n')
	}
	for {
		i := bytes.IndexAny(data, "\r\n")
		if i < 0 {
			break
		}
		b = append(b, "data: "...)
		b = append(b, data[:i]...)
		b = append(b, '\n')
		if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		data = data[i+1:]
	}
	b = append(b, "data: "...)
	b = append(b, data...)
	return append(b, '\n', '\n')
}

// frameSize is the exact length appendFrame produces for a one-line data.
func frameSize(id, typ string, data []byte) int {
	n := len("data: ") + len(data) + 2
	if id != "" {
		n += len("id: ") + len(id) + 1
	}
	if typ != "" {
		n += len("event: ") + len(typ) + 1
	}
	return n
}

// appendRetry appends a retry field, which tells the browser how long to
// wait before it reconnects.
func appendRetry(b []byte, ms int64) []byte {
	b = append(b, "retry: "...)
	b = strconv.AppendInt(b, ms, 10)
	return append(b, '\n', '\n')
}
