package main

import (
	"bytes"
	"errors"
	"io"
	"time"
)

// maxLine bounds one line of the stream; a longer one is an error rather
// than a buffer that grows without end.
const maxLine = 1 << 20

// bom is the UTF-8 byte order mark, which a stream may start with.
var bom = []byte("\xEF\xBB\xBF")

var errLineTooLong = errors.New("ssebench: stream line longer than 1 MiB")

// parser decodes an event stream by the WHATWG rules ("Server-sent events",
// §9.2.6): lines end in CR, LF or CRLF; a leading BOM is skipped; "data"
// lines accumulate, joined by LF; "event" sets the type; "id" sets the last
// event id unless it holds NUL; a blank line dispatches an event that has
// data; comment lines start with ':'; a field's value loses one leading
// space.
//
// It is built to be cheap when the generator shares the machine with the
// server: the slices next returns point into buffers that are reused, so a
// steady stream allocates nothing.
type parser struct {
	r          io.Reader
	buf        []byte
	start, end int
	skipLF     bool  // the last line ended in CR: a following LF belongs to it
	started    bool  // the BOM check is done
	readAt     int64 // when the bytes being parsed arrived (Unix ns): one clock reading per read

	data   []byte // the event being built
	typ    []byte
	lastID []byte
	hasID  bool
}

func newParser(r io.Reader, size int) *parser {
	return &parser{r: r, buf: make([]byte, size)}
}

// next returns the next event's type and data; both are valid until the
// following call. It returns the reader's error (io.EOF at the end).
func (p *parser) next() (typ, data []byte, err error) {
	for {
		line, err := p.line()
		if err != nil {
			return nil, nil, err
		}
		if len(line) == 0 {
			if len(p.data) == 0 {
				p.typ = p.typ[:0]
				continue
			}
			// The trailing LF of the last data line is not part of the data.
			d := p.data[:len(p.data)-1]
			typ = p.typ
			p.data, p.typ = p.data[:0], p.typ[:0]
			return typ, d, nil
		}
		p.field(line)
	}
}

// field applies one non-blank line.
func (p *parser) field(line []byte) {
	if line[0] == ':' {
		return
	}
	name, value := line, []byte(nil)
	if i := bytes.IndexByte(line, ':'); i >= 0 {
		name, value = line[:i], line[i+1:]
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
	}
	switch string(name) { // the compiler does not allocate for this switch
	case "data":
		p.data = append(p.data, value...)
		p.data = append(p.data, '\n')
	case "event":
		p.typ = append(p.typ[:0], value...)
	case "id":
		if bytes.IndexByte(value, 0) < 0 {
			p.lastID = append(p.lastID[:0], value...)
			p.hasID = true
		}
	}
	// "retry" and unknown fields do not matter to a load generator.
}

// line returns the next line without its terminator, valid until the next
// call.
func (p *parser) line() ([]byte, error) {
	for {
		if p.skipLF && p.start < p.end {
			if p.buf[p.start] == '\n' {
				p.start++
			}
			p.skipLF = false
		}
		rest := p.buf[p.start:p.end]
		if !p.started {
			if len(rest) < len(bom) && !bytes.ContainsAny(rest, "\r\n") {
				if err := p.fill(); err != nil {
					return nil, err
				}
				continue
			}
			if bytes.HasPrefix(rest, bom) {
				p.start += len(bom)
				rest = rest[len(bom):]
			}
			p.started = true
		}
		if i := lineEnd(rest); i >= 0 {
			line := rest[:i]
			p.start += i + 1
			if rest[i] == '\r' {
				p.skipLF = true
			}
			return line, nil
		}
		if err := p.fill(); err != nil {
			return nil, err
		}
	}
}

// fill reads more bytes, first moving a partial line to the front of the
// buffer or, if the buffer is full of one line, growing it.
func (p *parser) fill() error {
	if p.start > 0 {
		n := copy(p.buf, p.buf[p.start:p.end])
		p.start, p.end = 0, n
	}
	if p.end == len(p.buf) {
		if len(p.buf) >= maxLine {
			return errLineTooLong
		}
		p.buf = append(p.buf, make([]byte, len(p.buf))...)
	}
	// io.Reader allows (0, nil); give up only if it keeps saying so.
	for range 100 {
		n, err := p.r.Read(p.buf[p.end:])
		if n > 0 {
			p.readAt = time.Now().UnixNano()
			p.end += n
			return nil
		}
		if err != nil {
			return err
		}
	}
	return io.ErrNoProgress
}

// lineEnd returns the index of the first CR or LF in b, or -1. Two
// IndexByte scans (vectorised) beat one IndexAny; CR is rare in practice.
func lineEnd(b []byte) int {
	i := bytes.IndexByte(b, '\n')
	limit := b
	if i >= 0 {
		limit = b[:i]
	}
	if j := bytes.IndexByte(limit, '\r'); j >= 0 {
		return j
	}
	return i
}
