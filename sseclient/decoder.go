package sseclient

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// Event is one dispatched event.
type Event struct {
	// ID is the last event id at dispatch, as a browser's
	// MessageEvent.lastEventId: it persists across events until an id field
	// changes it, so an event sent without an id carries the previous one.
	ID string
	// Type is the event name; "message" when the stream named none.
	Type string
	// Data is the event's data lines joined with "\n". It belongs to the
	// caller: the decoder never writes to it again.
	Data []byte
}

// Decode unmarshals the event's data as JSON into v.
func (e Event) Decode(v any) error {
	return json.Unmarshal(e.Data, v)
}

// ErrEventTooLarge reports an event, or a single line, longer than the
// decoder's maximum event size. The stream cannot be resynchronised after
// it, so the decoder returns it from every later Next.
var ErrEventTooLarge = errors.New("sseclient: event too large")

// DefaultMaxEventSize is the maximum event size of a new Decoder: 1 MiB.
const DefaultMaxEventSize = 1 << 20

const (
	// initialBufSize is the first size of the read buffer; it grows, for
	// long lines only, up to the maximum event size plus lineSlack.
	initialBufSize = 16 << 10
	// lineSlack lets a line hold a field name and ": " on top of a value
	// of the maximum event size.
	lineSlack = 64
	// maxTypes bounds the interned event types, so that a server sending
	// a new type per event cannot grow the table without bound.
	maxTypes = 64
	// maxEmptyReads bounds the reads in a row that return neither data nor
	// an error, as bufio does, so a broken io.Reader cannot spin Next.
	maxEmptyReads = 100
	// keepDataCap is the largest data scratch buffer kept between events.
	keepDataCap = 64 << 10
)

// Decoder parses an event stream as the WHATWG HTML standard's "interpret
// an event stream" does: it skips a leading UTF-8 BOM, accepts LF, CR and
// CRLF line endings (mixed), ignores comments and unknown fields, joins
// data lines with "\n", ignores an id containing NUL and a retry that is not
// all digits, and discards the unterminated last event at the end of the
// stream.
//
// A Decoder reads its input through its own buffer, which never grows past
// the maximum event size plus a few bytes, so a hostile stream cannot make
// it allocate without bound. Apart from that buffer, each event costs the
// allocation of its Data and, when it changed, its ID; types are interned.
//
// A Decoder is not safe for concurrent use.
type Decoder struct {
	r          io.Reader
	buf        []byte // buf[start:end] is read but not yet parsed
	start, end int
	err        error // sticky: the error Next returns from now on
	readErr    error // an error that came with data, returned by the next fill
	max        int
	bomDone    bool
	skipLF     bool // the last line ended with CR: a LF right after it is part of that ending

	data     []byte // data buffer: every data line followed by "\n"
	hasData  bool
	typ      string // event type buffer, interned
	idBuf    string // last event id buffer
	lastID   string // last event id string, set at dispatch
	retry    time.Duration
	retryOK  bool
	types    map[string]string
	lastType string // the last interned type
}

// NewDecoder returns a Decoder that reads r, with a maximum event size of
// DefaultMaxEventSize (1 MiB).
func NewDecoder(r io.Reader) *Decoder {
	return &Decoder{r: r, max: DefaultMaxEventSize}
}

// SetMaxEventSize bounds the size of one event's data, and of any line, in
// bytes; past it Next returns an error wrapping ErrEventTooLarge. Values
// below 1 restore the default, 1 MiB. Call it before the first Next.
func (d *Decoder) SetMaxEventSize(n int) {
	if n < 1 {
		n = DefaultMaxEventSize
	}
	d.max = n
}

// SetLastEventID sets the last event id buffer, which an event inherits
// when no id field changed it. A client that reconnects seeds its new
// decoder with the id it resumed from, as browsers do, so that events sent
// without an id before the first one with an id still carry it.
func (d *Decoder) SetLastEventID(id string) {
	d.idBuf = id
	d.lastID = id
}

// LastEventID returns the last event id string: the id buffer's value at
// the last dispatch. A dispatch with no data lines updates it too, without
// an event, so a client reconnects with LastEventID, not with the ID of the
// last Event it got.
func (d *Decoder) LastEventID() string { return d.lastID }

// Retry returns the reconnection time of the last valid retry field seen,
// and whether there was one. The retry field applies when it is read, even
// if its event is never dispatched.
func (d *Decoder) Retry() (time.Duration, bool) { return d.retry, d.retryOK }

// Next returns the next event. It returns io.EOF when the stream ends
// cleanly, after discarding an unterminated last event; a read error as
// it is; and an error wrapping ErrEventTooLarge when an event or a line
// is over the maximum size. After an error, Next returns it again.
func (d *Decoder) Next() (Event, error) {
	if d.err != nil {
		return Event{}, d.err
	}
	for {
		line, err := d.readLine()
		if err != nil {
			d.err = err
			d.data, d.hasData, d.typ = d.data[:0], false, ""
			return Event{}, err
		}
		if len(line) == 0 {
			if ev, ok := d.dispatch(); ok {
				return ev, nil
			}
			continue
		}
		if err := d.field(line); err != nil {
			d.err = err
			return Event{}, err
		}
	}
}

// field processes one non-empty line.
func (d *Decoder) field(line []byte) error {
	if line[0] == ':' {
		return nil // a comment
	}
	name, value := line, line[len(line):]
	if i := bytes.IndexByte(line, ':'); i >= 0 {
		name, value = line[:i], line[i+1:]
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
	}
	switch string(name) { // no allocation: the compiler compares in place
	case "data":
		if len(d.data)+len(value) > d.max {
			return fmt.Errorf("%w: data over %d bytes", ErrEventTooLarge, d.max)
		}
		d.data = append(d.data, value...)
		d.data = append(d.data, '\n')
		d.hasData = true
	case "event":
		d.typ = d.intern(value)
	case "id":
		if bytes.IndexByte(value, 0) < 0 && string(value) != d.idBuf {
			d.idBuf = string(value)
		}
	case "retry":
		if ms, ok := parseDigits(value); ok {
			d.retry, d.retryOK = ms, true
		}
	}
	return nil
}

// maxRetry caps a retry field so that a long run of digits cannot
// overflow a Duration.
const maxRetry = 1<<63 - 1

// parseDigits parses a retry value in milliseconds: one or more ASCII
// digits and nothing else, saturating at the largest Duration.
func parseDigits(b []byte) (time.Duration, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var ms int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		if ms <= (maxRetry/int64(time.Millisecond)-9)/10 {
			ms = ms*10 + int64(c-'0')
		} else {
			ms = maxRetry / int64(time.Millisecond)
		}
	}
	return time.Duration(ms) * time.Millisecond, true
}

// dispatch ends the pending event at a blank line. It reports false when
// there is nothing to hand out (no data line), which still moves the last
// event id, as the standard says.
func (d *Decoder) dispatch() (Event, bool) {
	d.lastID = d.idBuf
	if !d.hasData {
		d.typ = ""
		return Event{}, false
	}
	data := make([]byte, len(d.data)-1) // without the final "\n"
	copy(data, d.data)
	typ := d.typ
	if typ == "" {
		typ = "message"
	}
	if cap(d.data) > keepDataCap {
		d.data = nil
	} else {
		d.data = d.data[:0]
	}
	d.hasData, d.typ = false, ""
	return Event{ID: d.lastID, Type: typ, Data: data}, true
}

// intern returns b as a string, allocating only for a type it has not
// seen: streams repeat a handful of types.
func (d *Decoder) intern(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if string(b) == "message" {
		return "message"
	}
	if string(b) == d.lastType { // most streams repeat one type
		return d.lastType
	}
	if s, ok := d.types[string(b)]; ok {
		d.lastType = s
		return s
	}
	s := string(b)
	if d.types == nil {
		d.types = make(map[string]string)
	}
	if len(d.types) < maxTypes {
		d.types[s] = s
	}
	d.lastType = s
	return s
}

var bom = []byte("\xEF\xBB\xBF")

// readLine returns the next line without its ending. The slice is valid
// until the next call. At the end of the input, a partial last line is
// dropped and io.EOF returned.
func (d *Decoder) readLine() ([]byte, error) {
	for !d.bomDone {
		win := d.buf[d.start:d.end]
		if len(win) >= len(bom) || !bytes.HasPrefix(bom, win) {
			if bytes.HasPrefix(win, bom) {
				d.start += len(bom)
			}
			d.bomDone = true
			break
		}
		if err := d.fill(); err != nil {
			d.bomDone = true
			return nil, err
		}
	}
	scanned := 0 // bytes of the window already known to hold no line ending
	for {
		if d.skipLF && d.start < d.end {
			if d.buf[d.start] == '\n' {
				d.start++
			}
			d.skipLF = false
		}
		win := d.buf[d.start:d.end]
		if i := indexEOL(win, scanned); i >= 0 {
			d.start += i + 1
			if win[i] == '\r' {
				d.skipLF = true
			}
			return win[:i], nil
		}
		scanned = len(win)
		if len(win) > d.max+lineSlack {
			return nil, fmt.Errorf("%w: line over %d bytes", ErrEventTooLarge, d.max+lineSlack)
		}
		if err := d.fill(); err != nil {
			return nil, err
		}
	}
}

// indexEOL returns the index of the first CR or LF in b at or after from.
func indexEOL(b []byte, from int) int {
	b = b[from:]
	lf := bytes.IndexByte(b, '\n')
	head := b
	if lf >= 0 {
		head = b[:lf]
	}
	if cr := bytes.IndexByte(head, '\r'); cr >= 0 {
		return from + cr
	}
	if lf >= 0 {
		return from + lf
	}
	return -1
}

// fill reads more input after the unparsed bytes, moving them to the front
// or growing the buffer (up to the line limit) to make room.
func (d *Decoder) fill() error {
	if d.start > 0 {
		d.end = copy(d.buf, d.buf[d.start:d.end])
		d.start = 0
	}
	if d.end == len(d.buf) {
		limit := d.max + lineSlack + 1 // one more byte to see a line is too long
		size := max(initialBufSize, 2*len(d.buf))
		if size > limit {
			size = max(limit, len(d.buf))
		}
		if size == len(d.buf) {
			// Only readLine's length check stops a full buffer; this is
			// a safety net so that a logic slip cannot spin here.
			return fmt.Errorf("%w: line over %d bytes", ErrEventTooLarge, d.max+lineSlack)
		}
		nb := make([]byte, size)
		copy(nb, d.buf[:d.end])
		d.buf = nb
	}
	if err := d.readErr; err != nil {
		return err
	}
	for range maxEmptyReads {
		n, err := d.r.Read(d.buf[d.end:])
		d.end += n
		if n > 0 {
			// Parse what came first; a reader need not repeat its error.
			d.readErr = err
			return nil
		}
		if err != nil {
			return err
		}
	}
	return io.ErrNoProgress
}
