package sseclient_test

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/ssekit/sse/sseclient"
)

// reference parses stream by the letter of the WHATWG algorithm, on whole
// strings, with no concern for speed: the oracle FuzzDecoder checks the
// Decoder against.
func reference(stream string) []sseclient.Event {
	stream = strings.TrimPrefix(stream, "\uFEFF")
	var lines []string
	for {
		i := strings.IndexAny(stream, "\r\n")
		if i < 0 {
			break // an unterminated last line is not a line
		}
		lines = append(lines, stream[:i])
		if stream[i] == '\r' && i+1 < len(stream) && stream[i+1] == '\n' {
			i++
		}
		stream = stream[i+1:]
	}
	var out []sseclient.Event
	var data, typ, idBuf, lastID string
	for _, line := range lines {
		if line == "" {
			lastID = idBuf
			if data == "" {
				typ = ""
				continue
			}
			data = strings.TrimSuffix(data, "\n")
			ev := sseclient.Event{ID: lastID, Type: typ, Data: []byte(data)}
			if ev.Type == "" {
				ev.Type = "message"
			}
			out = append(out, ev)
			data, typ = "", ""
			continue
		}
		if line[0] == ':' {
			continue
		}
		name, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch name {
		case "event":
			typ = value
		case "data":
			data += value + "\n"
		case "id":
			if !strings.Contains(value, "\x00") {
				idBuf = value
			}
		}
	}
	return out
}

// FuzzDecoder checks the Decoder against reference, reading the input
// whole and one byte at a time, and checks that no event is over the size
// limit.
func FuzzDecoder(f *testing.F) {
	for _, s := range []string{
		"data: hello\n\n",
		"\uFEFFid: 1\r\nevent: x\r\ndata: a\r\ndata: b\r\n\r\n",
		"data\rdata:\r\r:comment\nretry: 10\nid: a\x00b\n\n",
		"data: a\n\ndata: unterminated\n",
		"event: e\nid\ndata:  two spaces\r\n\n\r",
	} {
		f.Add([]byte(s), 0)
	}
	f.Fuzz(func(t *testing.T, in []byte, max int) {
		max = max%128 + 1
		if max < 1 {
			max += 128
		}
		want := reference(string(in))
		for _, r := range []io.Reader{strings.NewReader(string(in)), iotest.OneByteReader(strings.NewReader(string(in)))} {
			d := sseclient.NewDecoder(r)
			var got []sseclient.Event
			var err error
			for range len(in) + 1 {
				var ev sseclient.Event
				if ev, err = d.Next(); err != nil {
					break
				}
				got = append(got, ev)
			}
			if err != io.EOF {
				t.Fatalf("err = %v, want io.EOF", err)
			}
			if render(got) != render(want) {
				t.Fatalf("decoder: %q\nreference: %q", render(got), render(want))
			}
		}
		// With a small limit: a prefix of the same events, then either
		// EOF or ErrEventTooLarge, and nothing over the limit.
		d := sseclient.NewDecoder(strings.NewReader(string(in)))
		d.SetMaxEventSize(max)
		for i := range len(in) + 1 {
			ev, err := d.Next()
			if err == io.EOF {
				if i != len(want) {
					t.Fatalf("EOF after %d events, want %d", i, len(want))
				}
				break
			}
			if errors.Is(err, sseclient.ErrEventTooLarge) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(ev.Data) > max {
				t.Fatalf("event of %d bytes with limit %d", len(ev.Data), max)
			}
			if render([]sseclient.Event{ev}) != render(want[i:i+1]) {
				t.Fatalf("event %d = %q, want %q", i, render([]sseclient.Event{ev}), render(want[i:i+1]))
			}
		}
	})
}

// endless is an io.Reader of endless bytes that counts what it gave.
type endless struct {
	b byte
	n int
}

func (e *endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = e.b
	}
	e.n += len(p)
	return len(p), nil
}

// TestDecoderBoundedMemory: a line that never ends is refused after about
// the limit's worth of input, not read (and buffered) for ever.
func TestDecoderBoundedMemory(t *testing.T) {
	t.Parallel()
	for _, max := range []int{1, 1000, 64 << 10, 1 << 20} {
		r := &endless{b: 'x'}
		d := sseclient.NewDecoder(r)
		d.SetMaxEventSize(max)
		if _, err := d.Next(); !errors.Is(err, sseclient.ErrEventTooLarge) {
			t.Fatalf("max %d: err = %v, want ErrEventTooLarge", max, err)
		}
		// The buffer starts at 16 KiB and doubles up to max+65 bytes.
		if limit := 2*max + 32<<10; r.n > limit {
			t.Errorf("max %d: read %d bytes before refusing, want at most %d", max, r.n, limit)
		}
	}
}
